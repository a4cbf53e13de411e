"""The "Classify organelles" dock: which organelle does this protein label?

Modes: the whole image (the plane on screen for a stack), each plane of a stack, or each cell of a
Labels layer. Work runs in a napari thread worker with progress and Cancel; results go to a bar chart,
a table (CSV export), the protein layer's metadata, the Labels layer's features and, optionally, a
class-activation-map layer and a layer colouring each cell by its predicted class.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from ..classes import class_color
from ..preprocess import InputError, as_plane
from ._devices import DeviceComboBox
from ._common import (
    Job,
    JobControls,
    LayerCombo,
    ModelPicker,
    ProbabilityChart,
    ResultsTable,
    current_plane_index,
    find_layer,
    legend_html,
    notify_error,
    yx_shape,
)

WHOLE, STACK, CELLS = "whole image", "each plane of a stack", "each labelled cell"
MODES = (WHOLE, STACK, CELLS)
_DNA_WORDS = ("dna", "dapi", "hoechst")


def transform_kwargs_2d(layer, index: tuple = ()) -> dict:
    """Transform keywords placing a 2D (Y, X) result over plane ``index`` of ``layer``'s last two axes.

    For an nD layer this is the (Y, X) block of its whole data-to-world transform (scale, translate,
    rotate, shear and affine composed), plus where plane ``index`` sits when that transform mixes the
    leading axes into Y and X. A layer without rotation or shear keeps plain scale / translate."""
    from napari.utils.transforms import Affine

    from ._common import layer_transform_kwargs

    kw = layer_transform_kwargs(layer)
    n = len(kw["scale"])
    if n == 2:
        return kw
    extra = {k: kw[k][-2:] for k in ("units", "axis_labels") if k in kw}
    full = layer.affine.compose(Affine(scale=layer.scale, translate=layer.translate, rotate=layer.rotate,
                                       shear=layer.shear, ndim=n)).affine_matrix
    block = full[n - 2:n, n - 2:n]
    shift = full[n - 2:n, n] + full[n - 2:n, :n - 2] @ np.asarray(index if len(index) == n - 2 else [0] * (n - 2),
                                                                    dtype=float)
    plain = np.asarray(layer.affine.affine_matrix)
    simple = (np.allclose(layer.rotate, np.eye(n)) and np.allclose(layer.shear, np.eye(n) if np.ndim(layer.shear) == 2
                                                                  else 0)
              and np.allclose(full[n - 2:n, :n - 2], 0))
    if simple:  # keep scale / translate as the user set them (what napari shows in the layer controls)
        aff = np.eye(3)
        aff[:2, :2] = plain[n - 2:n, n - 2:n]
        aff[:2, 2] = plain[n - 2:n, n]
        return {"scale": kw["scale"][-2:], "translate": kw["translate"][-2:], "affine": aff, **extra}
    aff = np.eye(3)
    aff[:2, :2] = block
    aff[:2, 2] = shift
    return {"scale": (1.0, 1.0), "translate": (0.0, 0.0), "affine": aff, **extra}


def _lead_shape(layer) -> tuple[int, ...]:
    shape = tuple(layer.data.shape)
    if getattr(layer, "rgb", False):
        shape = shape[:-1]
    return shape[:-2]


def _rgb_note(layer) -> str:
    if not getattr(layer, "rgb", False):
        return ""
    return ("<i>RGB layer: classified from the brightest colour at each pixel. If the DNA is one of its "
            "colours, split it (right-click the layer > Split RGB) and choose the protein and DNA "
            "layers.</i><br>")


def _plane_label(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else ",".join(str(i) for i in index)


class ClassifyWidget(JobControls, QWidget):
    """Dock: classify the protein image (optionally with its DNA image) into the organelle classes."""

    cancel_message = "Stopping..."
    message_label_attr = "summary"

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._result: dict | None = None

        self.protein_combo = LayerCombo(napari_viewer, Image, avoid=_DNA_WORDS)
        self.dna_combo = LayerCombo(napari_viewer, Image, optional=True, prefer=_DNA_WORDS)
        self.model_picker = ModelPicker("classifier")
        self.device_combo = DeviceComboBox(what="classification", release_copies_on_cpu=True)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(MODES)
        self.labels_combo = LayerCombo(napari_viewer, Labels)
        self.ood_check = QCheckBox("out-of-distribution check (autoencoder)")
        self.ood_check.setToolTip("Score how unlike the training cells each image is, with the active "
                                  "autoencoder; unusual images are flagged 'uncertain'.")
        self.cam_check = QCheckBox("class-activation map")
        self.cam_check.setToolTip("Add a layer showing where in the image the evidence for the predicted "
                                  "class lies.")
        buttons = self._make_job_controls("Classify")
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.chart = ProbabilityChart()
        self.table = ResultsTable()
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setVisible(False)

        form = QFormLayout()
        form.addRow("Protein image", self.protein_combo)
        form.addRow("DNA image", self.dna_combo)
        form.addRow("Model", self.model_picker)
        form.addRow("Run on", self.device_combo)
        form.addRow("Mode", self.mode_combo)
        self._labels_label = QLabel("Cells (Labels)")
        form.addRow(self._labels_label, self.labels_combo)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.ood_check)
        lay.addWidget(self.cam_check)
        lay.addLayout(buttons)
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.summary)
        lay.addWidget(self.chart)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.legend)

        self.mode_combo.currentTextChanged.connect(self._on_mode_changed)
        self.protein_combo.currentIndexChanged.connect(self._on_protein_changed)
        # A DNA layer added after the dock opened (a sample, a file dropped in) is suggested too,
        # unless the user has picked the DNA layer (or '(none)') themselves.
        self._dna_chosen_by_user = False
        self._protein_chosen_by_user = False
        self.dna_combo.activated.connect(self._on_dna_chosen)
        self.protein_combo.activated.connect(self._on_protein_chosen)
        napari_viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self.table.row_selected.connect(self._on_row_selected)
        napari_viewer.dims.events.current_step.connect(self._on_dims)
        self._on_protein_changed()
        self._on_mode_changed(self.mode_combo.currentText())

    # ------------------------------------------------------------------ settings
    @property
    def mode(self) -> str:
        return self.mode_combo.currentText()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode_combo.setCurrentText(mode)

    def _on_mode_changed(self, mode: str) -> None:
        cells = mode == CELLS
        self.labels_combo.setEnabled(cells)
        self._labels_label.setEnabled(cells)
        self.cam_check.setEnabled(not cells)
        self.cam_check.setToolTip("Not available per cell; use 'whole image' on a crop." if cells else
                                  "Add a layer showing where in the image the evidence for the "
                                  "predicted class lies.")

    def _on_protein_changed(self, *_) -> None:
        try:
            layer = self.protein_combo.layer()
        except RuntimeError:  # pragma: no cover - widget deleted
            return
        if layer is None:
            return
        # A stack suggests per-plane mode, a single image the whole-image mode (the user can change it).
        if _lead_shape(layer) and self.mode == WHOLE:
            self.mode_combo.setCurrentText(STACK)
        elif not _lead_shape(layer) and self.mode == STACK:
            self.mode_combo.setCurrentText(WHOLE)
        self._suggest_dna(layer)

    def _on_dna_chosen(self, *_) -> None:
        self._dna_chosen_by_user = True

    def _on_protein_chosen(self, *_) -> None:
        self._protein_chosen_by_user = True

    def _on_layer_inserted(self, event=None) -> None:
        try:
            self.protein_combo.refresh()
            self.dna_combo.refresh()
            layer = self.protein_combo.layer()
        except RuntimeError:  # pragma: no cover - dock closed
            return
        if layer is not None and not self._protein_chosen_by_user and \
                any(w in layer.name.lower() for w in _DNA_WORDS):
            better = [x for x in self.protein_combo.layers() if not any(w in x.name.lower() for w in _DNA_WORDS)]
            if better:  # the DNA image arrived first and was the only choice; the protein is here now
                self.protein_combo.set_layer(better[0])
                return  # _on_protein_changed suggests the DNA layer
        if layer is not None and not self._dna_chosen_by_user and self.dna_combo.layer() is None:
            self._suggest_dna(layer)

    def _suggest_dna(self, layer) -> None:
        """Choose a DNA layer of the protein's (Y, X) size whose name says DNA (DAPI, Hoechst)."""
        dna = self.dna_combo.layer()
        if dna is None or yx_shape(dna) != yx_shape(layer):
            for cand in self.dna_combo.layers():
                if cand.name != layer.name and any(w in cand.name.lower() for w in _DNA_WORDS) \
                        and yx_shape(cand) == yx_shape(layer):
                    self.dna_combo.set_layer(cand)
                    break
            else:
                if dna is not None:
                    self.dna_combo.set_layer(None)

    # ------------------------------------------------------------------ inputs
    def _collect(self) -> dict:
        """Read the chosen layers into plain arrays (main thread); raise InputError if unusable."""
        protein = self.protein_combo.layer()
        if protein is None:
            raise InputError("Select the protein image layer to classify (open an image or a sample: "
                             "File > Open Sample > Organelle classifier).")
        dna = self.dna_combo.layer()
        if dna is not None and dna.name == protein.name:
            raise InputError("The DNA image is the protein layer itself; choose the DNA layer or '(none)'.")
        if dna is not None and yx_shape(dna) != yx_shape(protein):
            p, d = yx_shape(protein), yx_shape(dna)
            raise InputError(
                f"The protein layer '{protein.name}' is {p[0]}x{p[1]} pixels but the DNA layer "
                f"'{dna.name}' is {d[0]}x{d[1]}; they must show the same cell at the same size. "
                "Choose the DNA layer of the same cell, or '(none)' to classify without DNA."
            )
        for layer, what in ((protein, "protein"), (dna, "DNA")):
            if layer is not None and getattr(layer, "multiscale", False):
                raise InputError(f"The {what} layer '{layer.name}' is a multiscale (pyramid) layer; classify a "
                                 "single resolution level saved as its own layer (its full-resolution level "
                                 "for one cell, or a crop of it).")
        mode = self.mode
        spec: dict = {"mode": mode, "protein": protein, "dna": dna}
        lead = _lead_shape(protein)
        dna_lead = _lead_shape(dna) if dna is not None else ()
        # Only shapes are looked at here; the pixels are read in the worker ("load"), so a lazy (dask,
        # zarr) layer never blocks napari while its planes are computed or fetched.
        p_data = protein.data
        d_data = dna.data if dna is not None else None
        d_index = current_plane_index(self.viewer, dna) if dna is not None and dna_lead else ()

        def dna_plane(index):
            if d_data is None:
                return None
            if not dna_lead:
                return np.asarray(d_data)
            if dna_lead == lead:
                return np.asarray(d_data[index])
            return np.asarray(d_data[d_index])

        if mode == STACK:
            if not lead:
                raise InputError(f"'{protein.name}' is a single 2D image, not a stack. Choose the mode "
                                 "'whole image'.")
            if dna is not None and dna_lead and dna_lead != lead:
                raise InputError(f"The protein stack has planes {lead} but the DNA stack has {dna_lead}; "
                                 "give a DNA stack with the same planes, or a single DNA image.")
            indices = list(np.ndindex(*lead))
            spec["indices"] = indices

            def load():
                data = np.asarray(p_data)
                return {"pairs": [(data[i], dna_plane(i)) for i in indices]}

            spec["load"] = load
            return spec

        index = current_plane_index(self.viewer, protein)
        spec["index"] = index
        loaders = [lambda: {"plane": np.asarray(p_data[index]) if index else np.asarray(p_data),
                            "dna_plane": dna_plane(index)}]
        if mode == CELLS:
            labels = self.labels_combo.layer()
            if labels is None:
                raise InputError("'each labelled cell' needs a Labels layer of the cells (segment or paint "
                                 "them first, or open File > Open Sample > Simulated field of cells).")
            if getattr(labels, "multiscale", False):
                raise InputError(f"The Labels layer '{labels.name}' is multiscale; use a single-resolution "
                                 "Labels layer of the same image.")
            lab_shape = tuple(labels.data.shape[-2:])
            if lab_shape != yx_shape(protein):
                raise InputError(
                    f"The Labels layer '{labels.name}' is {lab_shape[0]}x{lab_shape[1]} but the protein "
                    f"image is {yx_shape(protein)[0]}x{yx_shape(protein)[1]}; segment the same image.")
            l_data = labels.data
            l_index = current_plane_index(self.viewer, labels) if labels.ndim > 2 else ()
            spec["labels"] = labels
            spec["labels_index"] = l_index
            loaders.append(lambda: {"labels_plane": np.asarray(l_data[l_index] if l_index else l_data)})

        def load():
            out: dict = {}
            for f in loaders:
                out.update(f())
            return out

        spec["load"] = load
        return spec

    # ------------------------------------------------------------------ run
    def run(self) -> Job | None:
        """Start classifying (returns the running Job, or None if the inputs are unusable)."""
        if (busy := self._busy_job()) is not None:
            return busy
        try:
            spec = self._collect()
            clf = self.model_picker.active()
            ae = None
            if self.ood_check.isChecked():
                from ._state import STATE

                ae = STATE.get_active("autoencoder")
            from .. import inference  # imports torch (the triton guard already ran)
            from ..training import resolve_device

            device = resolve_device(self.device_combo.device())  # an unavailable device is refused here
        except Exception as exc:
            self._show_message(notify_error(exc, "Classification"))
            return None
        want_cam = self.cam_check.isChecked() and spec["mode"] != CELLS
        mode = spec["mode"]

        def work(progress, stop):
            nonlocal clf, ae
            spec.update(spec.pop("load")())  # read the pixels here, off the GUI thread
            clf = inference.model_on(clf, device)  # a copy on the GPU; the CPU model stays as it is
            ae = inference.model_on(ae, device) if ae is not None else None
            out: dict = {"spec": spec, "model": clf, "cams": None}
            if mode == WHOLE:
                progress(0, 2 if want_cam else 1)
                res = inference.classify(spec["plane"], spec["dna_plane"], model=clf, autoencoder=ae)
                progress(1, 2 if want_cam else 1)
                out["results"] = [res]
                if want_cam and not stop.is_set():
                    out["cams"] = [inference.activation_map(spec["plane"], spec["dna_plane"], model=clf,
                                                            target=res.label)]
                    progress(2, 2)
            elif mode == STACK:
                pairs = spec["pairs"]
                n = len(pairs)
                total = 2 * n if want_cam else n
                res = inference.classify_batch(pairs, clf, batch_size=8, autoencoder=ae,
                                               progress=lambda d, t: progress(d, total), should_stop=stop,
                                               skip_unusable=True)  # a blank plane must not fail the rest
                if stop.is_set() or len(res) < n:
                    raise InterruptedError
                out["results"] = res
                if want_cam:
                    cams = []
                    for k, ((p, d), r) in enumerate(zip(pairs, res)):
                        if stop.is_set():
                            raise InterruptedError
                        cams.append(inference.activation_map(p, d, model=clf, target=r.label) if r.classified
                                    else np.zeros(as_plane(p).shape, np.float32))  # (Y, X), RGB too
                        progress(n + k + 1, total)
                    out["cams"] = cams
            else:
                res = inference.classify_cells(spec["plane"], spec["labels_plane"], spec["dna_plane"],
                                               clf, autoencoder=ae, batch_size=8, progress=progress,
                                               should_stop=stop)
                if stop.is_set():
                    raise InterruptedError
                out["cells"] = res
            return out

        return self.start_job(work, desc="Classifying organelles", on_done=self._on_done,
                              error_title="Classification",
                              message=f"Classifying '{spec['protein'].name}' ({mode})...")

    # ------------------------------------------------------------------ results
    def _on_done(self, out: dict) -> None:
        spec = out["spec"]
        mode = spec["mode"]
        protein = spec["protein"]
        if not any(layer is protein for layer in self.viewer.layers):  # the layer itself, not its name
            self._show_message(f"The protein layer '{protein.name}' was removed while it was being classified; "
                               "the results were not added.")
            return
        labels = spec.get("labels")
        if labels is not None and not any(layer is labels for layer in self.viewer.layers):
            self._show_message(f"The Labels layer '{labels.name}' was removed while its cells were being "
                               "classified; the results were not added.")
            return
        clf = out["model"]
        meta_base = {"mode": mode, "model": getattr(clf, "name", ""),
                     "model_path": str(getattr(clf, "path", "") or ""), "classes": list(clf.classes),
                     "dna_layer": spec["dna"].name if spec["dna"] is not None else None}
        if mode == CELLS:
            self._show_cells(out, meta_base)
            return
        results = out["results"]
        expected = self._expected_classes(protein, len(results))
        rows = []
        if mode == WHOLE:
            r = results[0]
            row = {"image": protein.name}
            if spec["index"]:
                row["plane"] = _plane_label(spec["index"])
            row.update(r.as_row())
            rows.append(row)
            protein.metadata["organelle"] = {**meta_base, **dataclasses.asdict(r), "plane": list(spec["index"]),
                                             "rows": rows}
            self._result = {"mode": WHOLE, "layer": protein.name, "results": results, "indices": [spec["index"]]}
        else:
            for k, (idx, r) in enumerate(zip(spec["indices"], results)):
                row = {"image": protein.name, "plane": _plane_label(idx)}
                if expected is not None:
                    row["expected"] = expected[k]
                row.update(r.as_row())
                rows.append(row)
            protein.metadata["organelle"] = {**meta_base, "rows": rows,
                                             "planes": [dataclasses.asdict(r) for r in results]}
            self._result = {"mode": STACK, "layer": protein.name, "results": results,
                            "indices": spec["indices"]}
        self.table.set_rows(rows)
        self.legend.setVisible(False)
        if out["cams"] is not None:
            self._add_cam(spec, results, out["cams"])
        if mode == STACK:
            counts = Counter(r.label for r in results)
            summary = ", ".join(f"{c} {n}" for c, n in counts.most_common())
            n_unc = sum(r.uncertain for r in results)
            text = f"<b>{len(results)} planes</b>: {summary}"
            if expected is not None:
                ok = sum(e == r.label for e, r in zip(expected, results))
                text += f"<br>{ok}/{len(results)} match the planes' known classes (layer metadata)."
            n_not = sum(not r.classified for r in results)
            if n_unc - n_not:
                text += f"<br>{n_unc - n_not} uncertain (highlighted)."
            if n_not:
                text += (f"<br>{n_not} plane{'s' if n_not > 1 else ''} not classified (no usable signal; "
                         "the table's note says why).")
            if _rgb_note(protein):
                text += "<br>" + _rgb_note(protein).removesuffix("<br>")
            if len(results) == 2 and spec["dna"] is None:
                text += ("<br><i>Two planes: if this layer is one cell's protein and DNA channels (a "
                         "2-channel file), split it (right-click the layer > Split Stack) and choose the "
                         "second layer as the DNA image.</i>")
            self._result["summary"] = text
            self._show_message(text)
            self._on_dims()
        else:
            self._show_single(results[0], protein.name, prefix=_rgb_note(protein))
            self.table.select_row(0)

    def _expected_classes(self, layer, n: int):
        classes = layer.metadata.get("classes") if hasattr(layer.metadata, "get") else None
        if isinstance(classes, (list, tuple)) and len(classes) == n and n > 1:
            return [str(c) for c in classes]
        return None

    def _show_single(self, r, where: str, prefix: str = "") -> None:
        """Show one result; ``prefix`` (the summary of a stack's run) stays above it."""
        if not r.classified:
            self._show_message(f"{prefix}<b>Not classified</b> ({where}): {r.note}")
            self.chart.set_probabilities(r.probabilities, f"Not classified: {where}")
            return
        color = class_color(r.label)
        text = prefix + (f"<span style='font-size:15px'><b style='color:{color}'>{r.label}</b> "
                f"{100 * r.confidence:.0f}%</span> &nbsp;({where})")
        if r.ood_score is not None:
            text += f"<br>out-of-distribution score {r.ood_score:.2f} (about 1 = like the training cells)"
        if r.uncertain:
            text += "<br><b>Uncertain</b>: low confidence or unlike the training cells; check by eye."
        if not r.has_dna:
            text += "<br>No DNA image given: classified from the protein alone."
        self._show_message(text)
        self.chart.set_probabilities(r.probabilities, f"Class probabilities: {where}", highlight=r.label)

    def _on_row_selected(self, row: int) -> None:
        res = self._result
        if not res:
            return
        if res["mode"] == CELLS:
            ids = res["ids"]
            if 0 <= row < len(ids):
                self._show_single(res["results"][row], f"cell {ids[row]}")
        elif res["mode"] == STACK:
            if 0 <= row < len(res["results"]):
                idx = res["indices"][row]
                layer = find_layer(self.viewer, res["layer"])
                if layer is not None:
                    self._goto_plane(layer, idx)
                self._show_plane(row)

    def _goto_plane(self, layer, idx) -> None:
        lead = len(idx)
        data_pt = list(layer.world_to_data(self.viewer.dims.point))
        data_pt[:lead] = list(idx)
        world = layer.data_to_world(data_pt)
        step = list(self.viewer.dims.point)
        nd = len(step)
        for k in range(lead):
            step[nd - layer.ndim + k] = world[k]
        self.viewer.dims.point = step

    def _show_plane(self, k: int) -> None:
        res = self._result
        r = res["results"][k]
        where = f"plane {_plane_label(res['indices'][k])} of '{res['layer']}'"
        self._show_single(r, where, prefix=res.get("summary", "") + "<br>" if res.get("summary") else "")
        self.table.select_row(k)

    def _on_dims(self, event=None) -> None:
        res = self._result
        if not res or res["mode"] != STACK:
            return
        layer = find_layer(self.viewer, res["layer"])
        if layer is None:
            return
        try:
            idx = current_plane_index(self.viewer, layer)
            k = res["indices"].index(idx)
        except (ValueError, RuntimeError):
            return
        try:
            self._show_plane(k)
        except RuntimeError:  # pragma: no cover - widget deleted
            pass

    def _show_cells(self, out: dict, meta_base: dict) -> None:
        import pandas as pd

        spec = out["spec"]
        protein, labels = spec["protein"], spec["labels"]
        cells = out["cells"]
        ids = sorted(cells)
        true = None
        feats = labels.features
        if "true_class" in feats.columns and "index" in feats.columns:
            true = dict(zip(feats["index"].astype(int), feats["true_class"].astype(str)))
        rows, frows = [], []
        for i in ids:
            r = cells[i]
            row = {"image": protein.name, "cell": i}
            if true is not None:
                row["expected"] = true.get(i, "")
            row.update(r.as_row())
            rows.append(row)
            frows.append({"index": i, **r.as_row()})
        new = pd.DataFrame(frows, columns=["index"] + list(cells[ids[0]].as_row()) if ids else ["index"])
        # The user's own per-cell columns (measurements, annotations) are never dropped or overwritten:
        # results are merged in by label id ('index') when that is unambiguous, otherwise the Labels
        # layer's table is left as it is and the results live in the predicted-classes layer.
        ours_before = set(labels.metadata.get("organelle_columns", []) or [])
        user_cols = [c for c in feats.columns if c != "index" and c not in ours_before]
        clash = [c for c in user_cols if c in new.columns]
        kept_note = ""
        if not len(feats) or not user_cols:
            labels.features = new
        elif "index" in feats.columns and not clash:
            merged = feats[["index"] + user_cols].merge(new, on="index", how="outer")
            labels.features = merged.reset_index(drop=True)
        else:
            why = (f"it has columns named like the results ({', '.join(map(str, clash))})" if clash else
                   "it has no 'index' column giving each row's label id")
            kept_note = (f"<br>The Labels layer's own table was left untouched ({why}); the per-cell results "
                         f"are in the features of '{protein.name} predicted classes'.")
        if not kept_note:
            labels.metadata["organelle_columns"] = [c for c in new.columns if c != "index"]
        labels.metadata["organelle"] = {**meta_base, "protein_layer": protein.name, "rows": rows}
        protein.metadata["organelle"] = {**meta_base, "labels_layer": labels.name, "rows": rows,
                                         "cells": {int(i): dataclasses.asdict(cells[i]) for i in ids}}
        self.table.set_rows(rows)
        self._result = {"mode": CELLS, "layer": protein.name, "ids": ids, "results": [cells[i] for i in ids]}
        self._add_class_layer(protein, labels, spec["labels_plane"], cells, new, spec.get("labels_index") or ())
        counts = Counter(cells[i].label for i in ids)
        present = [c for c in meta_base["classes"] if counts.get(c)]
        self.legend.setText("<b>Predicted classes</b> (cells): " + legend_html(present, counts))
        self.legend.setVisible(True)
        n_not = sum(not cells[i].classified for i in ids)
        n_unc = sum(cells[i].uncertain for i in ids) - n_not
        text = f"<b>{len(ids) - n_not} cells</b> classified in '{protein.name}'."
        if true is not None:
            ok = sum(true.get(i) == cells[i].label for i in ids)
            text += f"<br>{ok}/{len(ids)} match the cells' known classes (Labels features)."
        if n_unc:
            text += f"<br>{n_unc} uncertain (highlighted)."
        if n_not:
            text += (f"<br>{n_not} cell{'s' if n_not > 1 else ''} not classified (no usable signal in the "
                     "crop; grey in the class layer, the table's note says why).")
        text += kept_note
        self._show_message(text)
        if ids:
            self.table.select_row(0)
            r = cells[ids[0]]
            self.chart.set_probabilities(r.probabilities, f"Class probabilities: cell {ids[0]}", highlight=r.label)

    def _add_class_layer(self, protein, labels, lab_plane, cells, features, index: tuple = ()) -> None:
        name = f"{protein.name} predicted classes"
        colormap = {None: "transparent", 0: "transparent"}
        for i, r in cells.items():
            colormap[int(i)] = class_color(r.label)
        data = np.asarray(lab_plane)
        existing = find_layer(self.viewer, name)
        kw = transform_kwargs_2d(labels, index)
        if isinstance(existing, Labels) and existing.data.shape == data.shape:
            existing.data = data.copy()
            existing.colormap = colormap
            existing.features = features
            for key in ("scale", "translate", "affine"):  # the Labels layer may have moved since
                if key in kw:
                    setattr(existing, key, kw[key])
            layer = existing
        else:
            if existing is not None:
                self.viewer.layers.remove(existing)
            layer = self.viewer.add_labels(data.copy(), name=name, colormap=colormap, features=features,
                                           opacity=0.45, **kw)
        layer.metadata["organelle_legend"] = {r.label: class_color(r.label) for r in cells.values()}
        layer.metadata["organelle_source"] = protein.name

    def _add_cam(self, spec, results, cams) -> None:
        protein = spec["protein"]
        if spec["mode"] == WHOLE:
            data = cams[0]
            name = f"{protein.name} CAM ({results[0].label})"
            kw = transform_kwargs_2d(protein, spec.get("index") or ())
        else:
            lead = _lead_shape(protein)
            data = np.stack(cams).reshape(lead + cams[0].shape)
            name = f"{protein.name} CAM (predicted class)"
            from ._common import layer_transform_kwargs

            kw = layer_transform_kwargs(protein)
        for layer in list(self.viewer.layers):  # one CAM layer per source: replace the previous one
            if layer.metadata.get("organelle_cam_of") == protein.name:
                self.viewer.layers.remove(layer)
        self.viewer.add_image(data, name=name, colormap="inferno", blending="additive", opacity=0.6,
                              contrast_limits=(0.0, 1.0),
                              metadata={"organelle_cam_of": protein.name,
                                        "targets": [r.label for r in results]}, **kw)


def make_classify_widget(napari_viewer) -> ClassifyWidget:
    """Factory kept for scripts: ``make_classify_widget(viewer)`` == ``ClassifyWidget(viewer)``."""
    return ClassifyWidget(napari_viewer)
