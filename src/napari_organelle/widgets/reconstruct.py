"""The "Reconstruct with autoencoder" dock.

Runs the active autoencoder over an image layer (plane by plane for stacks) in a thread worker, adds
"<name> reconstruction" (and optionally "<name> residual") exactly over the source layer, and reports
MSE, PSNR and SSIM. Running again updates those layers instead of adding new ones.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from ..preprocess import InputError
from ._devices import DeviceComboBox
from ._common import (
    Job,
    JobControls,
    LayerCombo,
    ModelPicker,
    find_layer,
    layer_transform_kwargs,
    notify_error,
)

#: Diverging, dark at 0 (readable on napari's dark canvas): blue where the reconstruction is brighter
#: than the input, red where the input has signal the autoencoder did not reproduce.
RESIDUAL_COLORMAP = "twilight"


def _symmetric_limit(residual: np.ndarray) -> float:
    r = np.abs(np.asarray(residual, dtype=np.float32))
    r = r[np.isfinite(r)]
    if r.size == 0:
        return 1.0
    m = float(np.percentile(r[:: max(1, r.size // 1_000_000)], 99.5))
    return m if m > 0 else (float(r.max()) or 1.0)


class ReconstructWidget(JobControls, QWidget):
    """Dock: reconstruct an image with the autoencoder and show what it could not reproduce."""

    cancel_message = "Stopping after the current plane..."
    message_label_attr = "metrics_label"

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.last_metrics: dict | None = None

        self.image_combo = LayerCombo(napari_viewer, Image, avoid=("reconstruction", "residual", "cam ("))
        self.model_picker = ModelPicker("autoencoder")
        self.device_combo = DeviceComboBox(what="the reconstruction", release_copies_on_cpu=True)
        self.residual_check = QCheckBox("add residual layer (input - reconstruction)")
        self.residual_check.setChecked(True)
        buttons = self._make_job_controls("Reconstruct")
        self.metrics_label = QLabel("")
        self.metrics_label.setWordWrap(True)
        self.metrics_label.setTextFormat(Qt.TextFormat.RichText)
        self.metrics_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Autoencoder", self.model_picker)
        form.addRow("Run on", self.device_combo)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.residual_check)
        lay.addLayout(buttons)
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.metrics_label)
        lay.addStretch(1)

    def run(self) -> Job | None:
        """Start reconstructing the chosen layer (returns the Job, or None if it cannot start)."""
        if (busy := self._busy_job()) is not None:
            return busy
        try:
            layer = self.image_combo.layer()
            if layer is None:
                raise InputError("Select an image layer to reconstruct.")
            if getattr(layer, "rgb", False):
                raise InputError(f"'{layer.name}' is an RGB layer; the autoencoder works on one channel. "
                                 "Split the channels (right-click the layer > Split RGB) and pick one.")
            if getattr(layer, "multiscale", False):
                raise InputError(f"'{layer.name}' is a multiscale (pyramid) layer; reconstruct a single "
                                 "resolution level saved as its own layer.")
            ae = self.model_picker.active()
            from .. import inference  # imports torch (the triton guard already ran)
            from ..training import resolve_device

            device = resolve_device(self.device_combo.device())  # an unavailable device is refused here
            data = layer.data  # read in the worker: a lazy (dask, zarr) layer must not block napari
        except Exception as exc:
            self._show_message(notify_error(exc, "Reconstruction"))
            return None
        name = layer.name
        kw = layer_transform_kwargs(layer)
        contrast = tuple(float(c) for c in layer.contrast_limits)
        add_residual = self.residual_check.isChecked()

        def work(progress, stop):
            progress(0, int(np.prod(data.shape[:-2])) if len(data.shape) > 2 else 1)
            return inference.reconstruct(np.asarray(data), inference.model_on(ae, device), progress=progress,
                                         should_stop=stop)

        def done(rec):
            if not any(x is layer for x in self.viewer.layers):  # the layer itself, not its name
                self._show_message(f"The layer '{name}' was removed while it was being reconstructed; the "
                                   "results were not added.")
                return
            self._show_result(name, rec, kw, contrast, add_residual, ae, layer)

        return self.start_job(work, desc="Autoencoder reconstruction", on_done=done,
                              error_title="Reconstruction", message=f"Reconstructing '{name}'...")

    def _upsert(self, name: str, data: np.ndarray, **kwargs):
        """Update the layer called ``name`` if it exists with the same shape, else add it."""
        existing = find_layer(self.viewer, name)
        if isinstance(existing, Image) and existing.data.shape == data.shape:
            existing.data = data
            for key in ("contrast_limits", "colormap", "scale", "translate", "rotate", "shear", "affine"):
                if key in kwargs:
                    setattr(existing, key, kwargs[key])
            existing.metadata.update(kwargs.get("metadata", {}))
            return existing
        if existing is not None:
            self.viewer.layers.remove(existing)
        return self.viewer.add_image(data, name=name, **kwargs)

    def _show_result(self, name, rec, kw, contrast, add_residual, ae, src=None) -> None:
        metrics = {"mse": float(rec.mse), "psnr": float(rec.psnr), "ssim": float(rec.ssim),
                   "downscale": float(getattr(rec, "downscale", 1.0)),
                   "model": getattr(ae, "name", ""), "model_path": str(getattr(ae, "path", "") or ""),
                   "source_layer": name}
        per_plane = getattr(rec, "per_plane", None)
        if per_plane:
            metrics["per_plane"] = per_plane
        self.last_metrics = metrics
        meta = {"organelle_reconstruction": metrics}
        lo, hi = contrast
        if not hi > lo:
            hi = lo + 1.0
        self._upsert(f"{name} reconstruction", np.asarray(rec.reconstruction, dtype=np.float32),
                     contrast_limits=(lo, hi), colormap="gray", metadata=meta, **kw)
        if add_residual:
            m = _symmetric_limit(rec.residual)
            self._upsert(f"{name} residual", np.asarray(rec.residual, dtype=np.float32),
                         contrast_limits=(-m, m), colormap=RESIDUAL_COLORMAP, metadata=meta, **kw)
        src = src if src is not None else find_layer(self.viewer, name)
        if src is not None:
            src.metadata["organelle_reconstruction"] = {k: v for k, v in metrics.items() if k != "per_plane"}
        psnr = "inf" if not np.isfinite(rec.psnr) else f"{rec.psnr:.1f} dB"
        text = (f"<b>{name}</b> reconstructed by <i>{metrics['model']}</i><br>"
                f"MSE {rec.mse:.5f} &nbsp; PSNR {psnr} &nbsp; SSIM {rec.ssim:.3f}"
                "<br><span style='color:#9aa'>(on each plane scaled to [0, 1]; mean over planes)</span>")
        if metrics["downscale"] > 1:
            text += f"<br>Large image: processed at 1/{metrics['downscale']:g} resolution."
        n_const = sum(bool(d.get("constant")) for d in (per_plane or []))
        if n_const:
            text += (f"<br>{n_const} constant plane{'s' if n_const > 1 else ''} (no signal) kept as "
                     f"{'they are' if n_const > 1 else 'it is'} and left out of the averages.")
        if rec.ssim < 0.5:
            text += ("<br>Low similarity: this image is unlike the autoencoder's training cells "
                     "(different organism, stain or magnification?).")
        self._show_message(text)


def make_reconstruct_widget(napari_viewer) -> ReconstructWidget:
    """Factory kept for scripts: same as ``ReconstructWidget(viewer)``."""
    return ReconstructWidget(napari_viewer)
