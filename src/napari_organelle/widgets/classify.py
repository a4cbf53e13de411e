"""The "Classify organelles" dock: which organelle does this protein label?

Controls first (layers, model, device, mode, options), then what Classify does (a generator run in a
napari thread worker: it reads the pixels, moves the model, classifies and yields progress), then
how results are shown: a bar chart, a table (CSV export), the protein layer's metadata, the Labels
layer's features, and optionally a class-activation-map layer and a layer of cells coloured by class.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Optional

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, create_widget
from napari.layers import Image, Labels

from ..classes import class_color
from ..preprocess import InputError, as_plane
from ._charts import ProbabilityChart, embed
from ._devices import device_picker
from ._jobs import fit_dock, Progress, RunControls, notify_error, stream, wrapped_label
from ._layers import (current_plane_index, goto_plane, in_viewer, is_dna_name, lead_shape, merge_features,
                      transform_kwargs, transform_kwargs_2d, upsert_labels, yx_shape)
from ._models import ModelPicker, model_card_text
from ._state import STATE
from ._table import ResultsTable

WHOLE, STACK, CELLS, AUTO = "whole image", "each plane of a stack", "each labelled cell", \
    "each cell (found automatically)"
MODES = [WHOLE, STACK, CELLS, AUTO]
BATCH = 8


def _plane_label(index: tuple[int, ...]) -> str:
    return ",".join(str(i) for i in index)


def _read(data, index=()):
    return np.asarray(data[index] if index else data)


class ClassifyWidget(Container):
    """Dock: classify the protein image (with its DNA image, if there is one) into the organelle classes."""

    def __init__(self, napari_viewer) -> None:
        self.viewer = napari_viewer
        # -- controls
        self.protein = create_widget(annotation=Image, label="Protein", options={"tooltip": "The protein image."})
        self.dna = create_widget(annotation=Optional[Image], label="DNA",
                                 options={"tooltip": "The DNA (DAPI, Hoechst) image of the same cells, or none."})
        self.dna.null_string = "(none)"
        self.model = ModelPicker("classifier")
        self.model.label = "Model"
        self.device = device_picker("classification", label="Run on", release_copies_on_cpu=True)
        self.mode = ComboBox(label="Mode", choices=MODES, value=WHOLE)
        self.cells = create_widget(annotation=Labels, label="Cells", options={"tooltip": "The cells, one label each."})
        self.ood = CheckBox(text="out-of-distribution check (autoencoder)",
                            tooltip="Score how unlike the training cells each image is; unusual ones are flagged.")
        self.cam = CheckBox(text="class-activation map",
                            tooltip="Add a layer showing where in the cell the evidence for the answer lies.")
        self.controls = RunControls("Classify")
        # -- results
        self.chart = ProbabilityChart()
        chart_box = Container(labels=False)
        embed(chart_box, self.chart)
        self.table = ResultsTable()
        self.legend = wrapped_label()
        self.legend.visible = False
        self.body = Container(widgets=[self.protein, self.dna, self.model, self.device, self.mode, self.cells,
                                  self.ood, self.cam, self.controls, chart_box, self.table, self.legend])
        super().__init__(labels=False)
        fit_dock(self, self.body, 260)
        self._result: dict | None = None
        self._user: set[str] = set()      # controls the user set (never changed for them)
        self._auto = False
        self._last_protein = None
        self._problem = False             # the message is an input problem (cleared when inputs change)
        for name in ("protein", "dna", "mode", "cells"):
            getattr(self, name).changed.connect(lambda *_, n=name: self._on_input(n))
        self.controls.button.changed.connect(self._clicked)
        self.table.row_selected.connect(self._on_row_selected)
        napari_viewer.dims.events.current_step.connect(self._on_dims)
        self.reset_choices()

    # ------------------------------------------------------------------ controls
    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode.value = mode

    def reset_choices(self, *args) -> None:
        """napari calls this when layers are added, removed, renamed: re-list, then re-suggest."""
        self._auto = True
        try:
            self.body.reset_choices(*args)
            self._suggest()
        finally:
            self._auto = False
        self._on_input(None)

    def _on_input(self, name) -> None:
        if name is not None and not self._auto:
            self._user.add(name)
        if name == "protein" and not self._auto:
            self._auto = True
            try:
                self._suggest()
            finally:
                self._auto = False
        cells = self.mode.value in (CELLS, AUTO)
        self.cells.enabled, self.cam.enabled = self.mode.value == CELLS, not cells
        if self._problem:  # the problem it described may be gone: never leave a stale message
            self._problem = False
            self.controls.say("")

    def _suggest(self) -> None:
        """A protein layer whose name is not DNA-like, the mode its shape suggests, and a DNA layer of its
        size whose name says DNA (DAPI, Hoechst), unless the user chose these themselves."""
        layers = [x for x in self.protein.choices if x is not None]
        p = self.protein.value
        if p is not None and is_dna_name(p.name) and "protein" not in self._user:
            p = next((x for x in layers if not is_dna_name(x.name)), p)
            self.protein.value = p
        if p is None:
            return
        if p is not self._last_protein:
            self._last_protein = p
            if lead_shape(p) and self.mode.value == WHOLE:
                self.mode.value = STACK
            elif not lead_shape(p) and self.mode.value == STACK:
                self.mode.value = WHOLE
        d = self.dna.value
        if "dna" not in self._user and (d is None or d is p or yx_shape(d) != yx_shape(p)):
            self.dna.value = next((x for x in layers if x is not p and is_dna_name(x.name)
                                   and yx_shape(x) == yx_shape(p)), None)

    def _collect(self) -> dict:
        """The run's inputs as shapes and lazy readers (main thread; pixels are read in the worker)."""
        protein, dna, mode = self.protein.value, self.dna.value, self.mode.value
        if protein is None:
            raise InputError("Select the protein image layer to classify (open an image or a sample: "
                             "File > Open Sample > Organelle classifier).")
        if dna is not None and dna is protein:
            raise InputError("The DNA image is the protein layer itself; choose the DNA layer or '(none)'.")
        if dna is not None and yx_shape(dna) != yx_shape(protein):
            (py, px), (dy, dx) = yx_shape(protein), yx_shape(dna)
            raise InputError(f"The protein layer '{protein.name}' is {py}x{px} pixels but the DNA layer "
                             f"'{dna.name}' is {dy}x{dx}; they must show the same cell at the same size. Choose "
                             "the DNA layer of the same cell, or '(none)' to classify without DNA.")
        for layer, what in ((protein, "protein"), (dna, "DNA")):
            if layer is not None and layer.multiscale:
                raise InputError(f"The {what} layer '{layer.name}' is a multiscale (pyramid) layer; classify a single "
                                 "resolution level saved as its own layer (or a crop of it).")
        lead, d_lead = lead_shape(protein), lead_shape(dna) if dna is not None else ()
        if mode == STACK and not lead:
            raise InputError(f"'{protein.name}' is a single 2D image, not a stack. Choose the mode 'whole image'.")
        if mode == STACK and d_lead and d_lead != lead:
            raise InputError(f"The protein stack has planes {lead} but the DNA stack has {d_lead}; give a DNA "
                             "stack with the same planes, or a single DNA image.")
        index = current_plane_index(self.viewer, protein)
        d_index = current_plane_index(self.viewer, dna) if d_lead else ()
        spec = {"mode": mode, "protein": protein, "dna": dna, "index": index, "p_data": protein.data,
                "d_data": dna.data if dna is not None else None, "cam": self.cam.value and mode in (WHOLE, STACK),
                "ood": self.ood.value, "device": self.device.value, "d_same": d_lead == lead, "d_index": d_index,
                "indices": list(np.ndindex(*lead)) if mode == STACK else [index]}
        if mode == CELLS:
            labels = self.cells.value
            if labels is None:
                raise InputError("'each labelled cell' needs a Labels layer of the cells (segment or paint them "
                                 "first, or open File > Open Sample > Simulated field of cells).")
            if labels.multiscale:
                raise InputError(f"The Labels layer '{labels.name}' is multiscale; use a single-resolution one.")
            if tuple(labels.data.shape[-2:]) != yx_shape(protein):
                (ly, lx), (py, px) = labels.data.shape[-2:], yx_shape(protein)
                raise InputError(f"The Labels layer '{labels.name}' is {ly}x{lx} but the protein image is "
                                 f"{py}x{px}; segment the same image.")
            spec.update(labels=labels, l_data=labels.data,
                        l_index=current_plane_index(self.viewer, labels) if labels.ndim > 2 else ())
        return spec

    # ------------------------------------------------------------------ what Classify does
    def _clicked(self, *_) -> None:
        if self.controls.busy:
            self.controls.stop()
        else:
            self.run()

    def run(self):
        """Start classifying; returns the running Job (the same one while it runs), or None."""
        if self.controls.busy:
            return self.controls.job
        try:
            spec = self._collect()
        except InputError as exc:
            self.controls.say(notify_error(exc, "Classification"))
            self._problem = True
            return None
        return self.controls.start(lambda job: _classify(spec, job), desc="Classifying organelles",
                                   on_done=self._show, what="Classification",
                                   message=f"Classifying '{spec['protein'].name}' ({spec['mode']})...")

    # ------------------------------------------------------------------ how results are shown
    def _show(self, out: dict) -> None:
        spec, clf = out["spec"], out["model"]
        protein, labels = spec["protein"], spec.get("labels")
        self.model.remember_card(out["source_model"], out["card"])
        for layer, what in ((protein, "protein layer"), (labels, "Labels layer")):
            if layer is not None and not in_viewer(self.viewer, layer):
                self.controls.say(f"The {what} '{layer.name}' was removed while it was being classified; the "
                                  "results were not added.")
                return
        meta = {"mode": spec["mode"], "model": clf.name, "model_path": str(clf.path or ""),
                "classes": list(clf.classes), "dna_layer": spec["dna"].name if spec["dna"] is not None else None}
        if spec["mode"] == AUTO:
            if not out["cells"]:
                self.controls.say(f"No cells to classify in '{protein.name}': {out['note']}.")
                return
            spec["labels"], spec["l_index"] = self._add_found_cells(protein, out["labels_plane"], spec["index"]), ()
        if spec["mode"] in (CELLS, AUTO):
            return self._show_cells(out, meta)
        results, indices = out["results"], spec["indices"]
        classes = protein.metadata.get("classes")
        expected = [str(c) for c in classes] if isinstance(classes, (list, tuple)) and \
            len(classes) == len(results) > 1 else None
        rows = []
        for k, (idx, r) in enumerate(zip(indices, results)):
            row = {"image": protein.name, **({"plane": _plane_label(idx)} if idx else {})}
            if expected is not None:
                row["expected"] = expected[k]
            rows.append({**row, **r.as_row()})
        if spec["mode"] == WHOLE:
            protein.metadata["organelle"] = {**meta, **dataclasses.asdict(results[0]), "plane": list(spec["index"]),
                                             "rows": rows}
        else:
            protein.metadata["organelle"] = {**meta, "rows": rows, "planes": [dataclasses.asdict(r) for r in results]}
        self._result = {"mode": spec["mode"], "layer": protein, "results": results, "indices": indices}
        self.table.set_rows(rows)
        self.legend.visible = False
        if out["cams"] is not None:
            self._add_cam(spec, results, out["cams"])
        rgb = ("RGB layer: classified from the brightest colour at each pixel. If the DNA is one of its colours, "
               "split it (right-click the layer > Split RGB) and choose the protein and DNA layers.<br>"
               if protein.rgb else "")
        if spec["mode"] == WHOLE:
            self._show_one(results[0], protein.name, prefix=rgb)
            self.table.select_row(0)
            return
        n_not = sum(not r.classified for r in results)
        text = (f"<b>{len(results)} planes</b>: " + ", ".join(f"{c} {n}" for c, n in
                                                             Counter(r.label for r in results).most_common()))
        if expected is not None:
            text += f"<br>{sum(e == r.label for e, r in zip(expected, results))}/{len(results)} match the planes' " \
                    "known classes (layer metadata)."
        if (n_unc := sum(r.uncertain for r in results) - n_not):
            text += f"<br>{n_unc} uncertain (highlighted)."
        if n_not:
            text += f"<br>{n_not} plane{'s' if n_not > 1 else ''} not classified (no usable signal; the note says why)."
        if len(results) == 2 and spec["dna"] is None:
            text += ("<br><i>Two planes: if they are one cell's protein and DNA channels, open the file with this "
                     "plugin's reader (it makes two layers) or split the layer (right-click > Split Stack).</i>")
        self._result["summary"] = text + ("<br>" + rgb if rgb else "")
        self.controls.say(self._result["summary"])
        self._on_dims()

    def _show_one(self, r, where: str, prefix: str = "") -> None:
        if not r.classified:
            self.controls.say(f"{prefix}<b>Not classified</b> ({where}): {r.note}")
            self.chart.set_probabilities(r.probabilities, f"Not classified: {where}")
            return
        text = (f"{prefix}<span style='font-size:15px'><b style='color:{class_color(r.label)}'>{r.label}</b> "
                f"{100 * r.confidence:.0f}%</span> ({where})")
        if r.ood_score is not None:
            text += f"<br>out-of-distribution score {r.ood_score:.2f} (about 1 = like the training cells)"
        if r.uncertain:
            text += "<br><b>Uncertain</b>: low confidence or unlike the training cells; check by eye."
        if not r.has_dna:
            text += "<br>No DNA image given: classified from the protein alone."
        self.controls.say(text)
        self.chart.set_probabilities(r.probabilities, f"Class probabilities: {where}", highlight=r.label)

    def _on_row_selected(self, row: int) -> None:
        res = self._result
        if not res or not 0 <= row < len(res["results"]):
            return
        if res["mode"] == CELLS:
            self._show_one(res["results"][row], f"cell {res['ids'][row]}", prefix=res["summary"] + "<br>")
        elif res["mode"] == STACK and in_viewer(self.viewer, res["layer"]):
            goto_plane(self.viewer, res["layer"], res["indices"][row])  # the slider follows: _on_dims shows it

    def _on_dims(self, *_) -> None:
        res = self._result
        if not res or res["mode"] != STACK or not in_viewer(self.viewer, res["layer"]):
            return
        try:
            k = res["indices"].index(current_plane_index(self.viewer, res["layer"]))
            where = f"plane {_plane_label(res['indices'][k])} of '{res['layer'].name}'"
            self._show_one(res["results"][k], where, prefix=res["summary"] + "<br>")
            self.table.select_row(k)
        except (ValueError, RuntimeError):  # a plane not classified, or the dock was closed
            pass

    def _show_cells(self, out: dict, meta: dict) -> None:
        import pandas as pd

        spec, cells = out["spec"], out["cells"]
        protein, labels = spec["protein"], spec["labels"]
        ids = sorted(cells)
        feats = labels.features
        true = (dict(zip(feats["index"].astype(int), feats["true_class"].astype(str)))
                if {"true_class", "index"} <= set(feats.columns) else None)
        rows = [{"image": protein.name, "cell": i, **({"expected": true.get(i, "")} if true else {}),
                 **cells[i].as_row()} for i in ids]
        new = pd.DataFrame([{"index": i, **cells[i].as_row()} for i in ids])
        why = merge_features(labels, new)
        kept = (f"<br>The Labels layer's own table was left untouched ({why}); the per-cell results are in the "
                f"features of '{protein.name} predicted classes'." if why else "")
        labels.metadata["organelle"] = {**meta, "protein_layer": protein.name, "rows": rows}
        protein.metadata["organelle"] = {**meta, "labels_layer": labels.name, "rows": rows,
                                         "cells": {int(i): dataclasses.asdict(cells[i]) for i in ids}}
        self.table.set_rows(rows)
        self._add_class_layer(protein, labels, out["labels_plane"], cells, new, spec["l_index"])
        counts = Counter(cells[i].label for i in ids)
        swatches = "&nbsp;&nbsp; ".join(f"<span style='color:{class_color(c)}'>&#9632;</span>&nbsp;{c} ({counts[c]})"
                                        for c in meta["classes"] if counts.get(c))
        self.legend.value = "<b>Predicted classes</b> (cells): " + swatches
        self.legend.visible = True
        n_not = sum(not cells[i].classified for i in ids)
        text = f"<b>{len(ids) - n_not} cells</b> classified in '{protein.name}'."
        if true is not None:
            text += f"<br>{sum(true.get(i) == cells[i].label for i in ids)}/{len(ids)} match the cells' known classes."
        if (n_unc := sum(cells[i].uncertain for i in ids) - n_not):
            text += f"<br>{n_unc} uncertain (highlighted)."
        if n_not:
            text += (f"<br>{n_not} cell{'s' if n_not > 1 else ''} not classified (no usable signal in the crop; grey "
                     "in the class layer, the note says why).")
        if out["spec"]["mode"] == AUTO:
            text += (f"<br>Cells found automatically{' (' + out['note'] + ')' if out['note'] else ''}: the Labels "
                     f"layer '{labels.name}'. Correct it if needed (paint, erase) and press Classify again: the mode "
                     "is now 'each labelled cell' on that layer.")
        self._result = {"mode": CELLS, "layer": protein, "ids": ids, "results": [cells[i] for i in ids],
                        "summary": text + kept}
        if ids:
            self.table.select_row(0)
            self._on_row_selected(0)

    def _add_found_cells(self, protein, labels_plane, index):
        """The cells the finder drew, as an editable Labels layer; the next Classify uses it (edited or not)."""
        layer = upsert_labels(self.viewer, f"{protein.name} cells", labels_plane, opacity=0.35,
                              **transform_kwargs_2d(protein, index))
        layer.metadata["organelle_found_in"] = protein.name
        self.cells.value, self.mode.value = layer, CELLS
        return layer

    def _add_class_layer(self, protein, labels, plane, cells, features, index) -> None:
        colormap = {None: "transparent", 0: "transparent", **{int(i): class_color(r.label) for i, r in cells.items()}}
        layer = upsert_labels(self.viewer, f"{protein.name} predicted classes", plane.copy(), colormap=colormap,
                              features=features, opacity=0.45, **transform_kwargs_2d(labels, index))
        layer.metadata["organelle_legend"] = {r.label: class_color(r.label) for r in cells.values()}
        layer.metadata["organelle_source"] = protein.name

    def _add_cam(self, spec, results, cams) -> None:
        protein = spec["protein"]
        if spec["mode"] == WHOLE:
            data, label = cams[0], results[0].label
            kw = transform_kwargs_2d(protein, spec["index"])
        else:
            data, label = np.stack(cams).reshape(lead_shape(protein) + cams[0].shape), "predicted class"
            kw = transform_kwargs(protein)
        for layer in list(self.viewer.layers):  # one CAM layer per source: replace the previous one
            if layer.metadata.get("organelle_cam_of") == protein.name:
                self.viewer.layers.remove(layer)
        self.viewer.add_image(data, name=f"{protein.name} CAM ({label})", colormap="inferno", blending="additive",
                              opacity=0.6, contrast_limits=(0.0, 1.0),
                              metadata={"organelle_cam_of": protein.name, "targets": [r.label for r in results]},
                              **kw)


def _classify(spec: dict, job):
    """The worker: read the pixels, move the models, classify, yield Progress; return what to show."""
    from .. import inference
    from ..training import resolve_device

    device = resolve_device(spec["device"])  # an unavailable device is refused here
    source = STATE.get_active("classifier")
    clf = inference.model_on(source, device)  # a copy on a GPU; the CPU model stays as it is
    ae = inference.model_on(STATE.get_active("autoencoder"), device) if spec["ood"] else None
    mode, p_data, d_data = spec["mode"], spec["p_data"], spec["d_data"]

    def dna(index):
        if d_data is None:
            return None
        return _read(d_data, index if spec["d_same"] else spec["d_index"])

    out = {"spec": spec, "model": clf, "cams": None, "source_model": source}
    if mode == AUTO:  # segmentation.find_cells, then each cell as in CELLS
        plane = _read(p_data, spec["index"])
        field = yield from stream(lambda report: inference.classify_field(
            plane, dna(spec["index"]), clf, autoencoder=ae, progress=lambda d, t: report(Progress(d, t)),
            should_stop=job.stop), job)
        out.update(cells=field.cells, labels_plane=field.labels, note=field.note)
    elif mode == CELLS:
        plane, labels_plane = _read(p_data, spec["index"]), _read(spec["l_data"], spec["l_index"])
        out["labels_plane"] = labels_plane
        out["cells"] = yield from stream(lambda report: inference.classify_cells(
            plane, labels_plane, dna(spec["index"]), clf, autoencoder=ae, batch_size=BATCH,
            progress=lambda d, t: report(Progress(d, t)), should_stop=job.stop), job)
    else:
        pairs = [(_read(p_data, i), dna(i)) for i in spec["indices"]]
        total = len(pairs) * (2 if spec["cam"] else 1)
        if mode == WHOLE:
            results = [inference.classify(*pairs[0], model=clf, autoencoder=ae)]
        else:
            results = []
            for r in inference.iter_classify(pairs, clf, batch_size=BATCH, autoencoder=ae, should_stop=job.stop,
                                             skip_unusable=True):  # a blank plane must not fail the rest
                results.append(r)
                yield Progress(len(results), total)
        out["results"] = results
        if spec["cam"]:
            out["cams"] = []
            for k, ((p, d), r) in enumerate(zip(pairs, results)):
                out["cams"].append(inference.activation_map(p, d, clf, target=r.label, inside_cell=True)
                                   if r.classified else np.zeros(as_plane(p).shape, np.float32))
                yield Progress(len(pairs) + k + 1, total)
    out["card"] = model_card_text(source)
    return out
