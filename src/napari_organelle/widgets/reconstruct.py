"""The "Reconstruct images" dock.

Controls (image, autoencoder, device, residual), then what Reconstruct does (``inference.reconstruct``
in a worker, plane by plane, stoppable), then how results are shown: "<name> reconstruction" and
"<name> residual" exactly over the source layer (updated in place on a re-run), MSE / PSNR / SSIM in
the dock and in the layers' metadata.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, Container, create_widget
from napari.layers import Image

from ..preprocess import InputError
from ._devices import device_picker
from ._jobs import fit_dock, Progress, RunControls, notify_error, stream
from ._layers import in_viewer, transform_kwargs, upsert_image
from ._models import ModelPicker, model_card_text
from ._state import STATE


def residual_colormap():
    """Diverging and dark at 0, for napari's dark canvas: blue where the reconstruction is brighter than
    the input, red where the input has signal the autoencoder did not reproduce."""
    from napari.utils.colormaps import Colormap

    return Colormap([[0.15, 0.45, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0], [1.0, 0.2, 0.1, 1.0]],
                    name="organelle residual (blue - black - red)")


def _symmetric_limit(residual: np.ndarray) -> float:
    r = np.abs(np.asarray(residual, dtype=np.float32)).ravel()
    r = r[:: max(1, r.size // 1_000_000)]
    r = r[np.isfinite(r)]
    m = float(np.percentile(r, 99.5)) if r.size else 1.0
    return m if m > 0 else (float(r.max()) if r.size and r.max() > 0 else 1.0)


class ReconstructWidget(Container):
    """Dock: reconstruct an image with the autoencoder and show what it could not reproduce."""

    def __init__(self, napari_viewer) -> None:
        self.viewer = napari_viewer
        self.image = create_widget(annotation=Image, label="Image", options={"tooltip": "2D image or stack."})
        self.model = ModelPicker("autoencoder", label="Autoencoder")
        self.model.label = "Model"
        self.device = device_picker("the reconstruction", label="Run on", release_copies_on_cpu=True)
        self.residual = CheckBox(text="add residual layer (input - reconstruction)", value=True)
        self.controls = RunControls("Reconstruct")
        self.body = Container(widgets=[self.image, self.model, self.device, self.residual, self.controls])
        super().__init__(labels=False)
        fit_dock(self, self.body, 200)
        self.last_metrics: dict | None = None
        self._problem = False
        self.controls.button.changed.connect(self._clicked)
        self.image.changed.connect(self._on_input)
        self.reset_choices()

    def reset_choices(self, *args) -> None:
        self.body.reset_choices(*args)
        img = self.image.value
        if img is not None and any(s in img.name for s in (" reconstruction", " residual", " CAM (")):
            self.image.value = next((x for x in self.image.choices if x is not None and not any(
                s in x.name for s in (" reconstruction", " residual", " CAM ("))), img)
        self._on_input()

    def _on_input(self, *_) -> None:
        if self._problem:
            self._problem = False
            self.controls.say("")

    def _clicked(self, *_) -> None:
        if self.controls.busy:
            self.controls.stop("Stopping...")
        else:
            self.run()

    # ------------------------------------------------------------------ what Reconstruct does
    def run(self):
        """Start reconstructing the chosen layer (returns the Job, or None if it cannot start)."""
        if self.controls.busy:
            return self.controls.job
        layer = self.image.value
        try:
            if layer is None:
                raise InputError("Select an image layer to reconstruct.")
            if layer.rgb:
                raise InputError(f"'{layer.name}' is an RGB layer; the autoencoder works on one channel. Split the "
                                 "channels (right-click the layer > Split RGB) and pick one.")
            if layer.multiscale:
                raise InputError(f"'{layer.name}' is a multiscale (pyramid) layer; reconstruct a single resolution "
                                 "level saved as its own layer.")
        except InputError as exc:
            self.controls.say(notify_error(exc, "Reconstruction"))
            self._problem = True
            return None
        data, device, add_residual = layer.data, self.device.value, self.residual.value
        kw, contrast = transform_kwargs(layer), tuple(float(c) for c in layer.contrast_limits)

        def work(job):
            from .. import inference
            from ..training import resolve_device

            dev = resolve_device(device)  # an unavailable device is refused here, in the worker
            source = STATE.get_active("autoencoder")
            ae = inference.model_on(source, dev)
            n = int(np.prod(data.shape[:-2])) if len(data.shape) > 2 else 1
            yield Progress(0, n)
            rec = yield from stream(lambda report: inference.reconstruct(
                np.asarray(data), ae, progress=lambda d, t: report(Progress(d, t)), should_stop=job.stop), job)
            return rec, source, model_card_text(source)

        def done(payload):
            rec, source, card = payload
            self.model.remember_card(source, card)
            if not in_viewer(self.viewer, layer):  # the layer itself, not one that took its name
                self.controls.say(f"The layer '{layer.name}' was removed while it was being reconstructed; the "
                                  "results were not added.")
                return
            self._show(layer, rec, source, kw, contrast, add_residual)

        return self.controls.start(work, desc="Autoencoder reconstruction", on_done=done, what="Reconstruction",
                                   message=f"Reconstructing '{layer.name}'...")

    # ------------------------------------------------------------------ how results are shown
    def _show(self, src, rec, ae, kw, contrast, add_residual) -> None:
        metrics = {"mse": float(rec.mse), "psnr": float(rec.psnr), "ssim": float(rec.ssim),
                   "downscale": float(rec.downscale), "model": ae.name, "model_path": str(ae.path or ""),
                   "source_layer": src.name}
        if rec.per_plane:
            metrics["per_plane"] = rec.per_plane
        self.last_metrics = metrics
        meta = {"organelle_reconstruction": metrics}
        lo, hi = contrast
        upsert_image(self.viewer, f"{src.name} reconstruction", np.asarray(rec.reconstruction, np.float32),
                     contrast_limits=(lo, hi if hi > lo else lo + 1.0), colormap="gray", metadata=meta, **kw)
        if add_residual:
            m = _symmetric_limit(rec.residual)
            upsert_image(self.viewer, f"{src.name} residual", np.asarray(rec.residual, np.float32),
                         contrast_limits=(-m, m), colormap=residual_colormap(), metadata=meta, **kw)
        src.metadata["organelle_reconstruction"] = {k: v for k, v in metrics.items() if k != "per_plane"}
        psnr = "inf" if not np.isfinite(rec.psnr) else f"{rec.psnr:.1f} dB"
        text = (f"<b>{src.name}</b> reconstructed by <i>{ae.name}</i><br>MSE {rec.mse:.5f} &nbsp; PSNR {psnr} "
                f"&nbsp; SSIM {rec.ssim:.3f}<br><span style='color:#9aa'>(each plane scaled to [0, 1]; mean over "
                "planes)</span>")
        if (n_const := sum(bool(d.get("constant")) for d in rec.per_plane)):
            text += (f"<br>{n_const} constant plane{'s' if n_const > 1 else ''} (no signal) kept as "
                     f"{'they are' if n_const > 1 else 'it is'} and left out of the averages.")
        if rec.ssim < 0.5:
            text += ("<br>Low similarity: this image is unlike the autoencoder's training cells (different "
                     "organism, stain or magnification?).")
        if add_residual:
            text += "<br>Residual: red = signal the autoencoder missed, blue = added, black = reproduced."
        self.controls.say(text)
