"""The "Open layers" training data of the "Fine-tune models" dock: a table of image layers.

One row per image layer: the layer, its class (editable: new names make new classes), an optional
DNA layer and the number of images it gives (a stack gives one per plane). ``layers_dataset`` turns
the table into LabelledImages. The rows follow the viewer: renamed, added and removed layers update
the combo boxes.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from ..classes import CLASSES, canonical_class
from ..preprocess import InputError
from ._common import notify_error


def _layer_planes(layer) -> list[np.ndarray]:
    """Image layer -> list of 2D planes (a stack gives one per plane; RGB stays one image)."""
    data = layer.data
    if getattr(layer, "multiscale", False):
        data = data[0]
    if getattr(layer, "rgb", False):
        arr = data
        lead = arr.shape[:-3]
        if not lead:
            return [np.asarray(arr)]
        return [np.asarray(arr[idx]) for idx in np.ndindex(*lead)]
    shape = tuple(data.shape)
    if len(shape) <= 2:
        return [np.asarray(data)]
    return [np.asarray(data[idx]) for idx in np.ndindex(*shape[:-2])]


def _n_planes(layer) -> int:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    shape = tuple(data.shape)
    spatial = 3 if getattr(layer, "rgb", False) else 2
    return int(np.prod(shape[:-spatial])) if len(shape) > spatial else 1


class LayerTableMixin:
    """The open-layers table of :class:`~.finetune.FinetuneWidget`.

    The dock provides ``viewer``, ``data_tabs`` (the tab widget; the table is its tab 1), ``kind``
    ("classifier" or "autoencoder") and ``_model_classes()``; it adds :meth:`_build_layers_tab` to
    ``data_tabs`` and calls :meth:`_connect_viewer` once.
    """

    COL_LAYER, COL_CLASS, COL_DNA, COL_PLANES = range(4)

    def _build_layers_tab(self) -> QWidget:
        """The 'Open layers' tab: the table and its Add / Remove buttons."""
        ltab = QWidget()
        llay = QVBoxLayout(ltab)
        self.layers_table = QTableWidget(0, 4)
        self.layers_table.setHorizontalHeaderLabels(["image layer", "class", "DNA layer", "images"])
        self.layers_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        hdr = self.layers_table.horizontalHeader()
        for c in range(3):
            hdr.setSectionResizeMode(c, QHeaderView.ResizeMode.Stretch)
        hdr.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.layers_table.setMinimumHeight(110)
        self.layers_table.setMaximumHeight(220)
        self.layers_table.setToolTip(
            "One row per image layer; a stack contributes one image per plane. Type a new name in "
            "'class' to train on your own classes. The DNA layer is optional.")
        llay.addWidget(self.layers_table)
        row3 = QHBoxLayout()
        self.add_layers_button = QPushButton("Add selected layers")
        self.remove_row_button = QPushButton("Remove row")
        row3.addWidget(self.add_layers_button)
        row3.addWidget(self.remove_row_button)
        llay.addLayout(row3)
        self.add_layers_button.clicked.connect(self._add_selected_layers)
        self.remove_row_button.clicked.connect(self._remove_selected_rows)
        return ltab

    def _connect_viewer(self) -> None:
        ev = self.viewer.layers.events
        ev.inserted.connect(self._on_layers_changed)
        ev.removed.connect(self._on_layers_changed)
        ev.moved.connect(self._on_layers_changed)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._on_layers_changed)

    def _image_layers(self) -> list:
        from napari.layers import Image

        return [lay for lay in self.viewer.layers if isinstance(lay, Image)]

    def _fill_layer_combo(self, combo: QComboBox, selected, *, with_none: bool) -> None:
        combo.blockSignals(True)
        try:
            combo.clear()
            if with_none:
                combo.addItem("(none)", None)
            for lay in self._image_layers():
                combo.addItem(lay.name, lay)
            # The row's layer, matched by identity or by name (napari hands plugins proxy objects, a new
            # one per access, and layer names are unique). A row whose layer is gone stays blank
            # (or '(none)'): it must never silently switch to another layer.
            name = getattr(selected, "name", None)
            idx = 0 if with_none else -1
            if selected is not None:
                for i in range(combo.count()):
                    data = combo.itemData(i)
                    if data is selected or (data is not None and name is not None and combo.itemText(i) == name):
                        idx = i
                        break
            combo.setCurrentIndex(idx)
        finally:
            combo.blockSignals(False)

    def _class_names_in_table(self) -> list[str]:
        names = []
        for r in range(self.layers_table.rowCount()):
            combo = self.layers_table.cellWidget(r, self.COL_CLASS)
            if combo is not None:
                t = combo.currentText().strip()
                if t and t not in names:
                    names.append(t)
        return names

    def _refresh_class_items(self) -> None:
        base = self._model_classes()
        extra = [c for c in self._class_names_in_table() if c not in base]
        for r in range(self.layers_table.rowCount()):
            combo = self.layers_table.cellWidget(r, self.COL_CLASS)
            if combo is None:
                continue
            text = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(base + extra)
            combo.setEditText(text)
            combo.blockSignals(False)

    def add_layer_row(self, layer, label: str | None = None, dna=None) -> int:
        """Add a table row for ``layer`` (an Image layer or its name); returns the row index."""
        if isinstance(layer, str):
            layer = self.viewer.layers[layer]
        if isinstance(dna, str):
            dna = self.viewer.layers[dna]
        r = self.layers_table.rowCount()
        self.layers_table.insertRow(r)
        lcombo = QComboBox()
        self._fill_layer_combo(lcombo, layer, with_none=False)
        ccombo = QComboBox()
        ccombo.setEditable(True)
        ccombo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        ccombo.addItems(self._model_classes())
        if label is None:
            label = canonical_class(getattr(layer, "name", "")) or ""
        ccombo.setEditText(label)
        ccombo.lineEdit().setCursorPosition(0)
        ccombo.lineEdit().setPlaceholderText("class name")
        dcombo = QComboBox()
        self._fill_layer_combo(dcombo, dna, with_none=True)
        self.layers_table.setCellWidget(r, self.COL_LAYER, lcombo)
        self.layers_table.setCellWidget(r, self.COL_CLASS, ccombo)
        self.layers_table.setCellWidget(r, self.COL_DNA, dcombo)
        self.layers_table.setCellWidget(r, self.COL_PLANES, QLabel(""))
        lcombo.currentIndexChanged.connect(self._update_plane_counts)
        self._update_plane_counts()
        self.data_tabs.setCurrentIndex(1)
        return r

    def _update_plane_counts(self, *_) -> None:
        for r in range(self.layers_table.rowCount()):
            combo = self.layers_table.cellWidget(r, self.COL_LAYER)
            lab = self.layers_table.cellWidget(r, self.COL_PLANES)
            lay = combo.currentData() if combo is not None else None
            if lab is not None:
                lab.setText(str(_n_planes(lay)) if lay is not None else "")

    def _add_selected_layers(self) -> None:
        from napari.layers import Image

        selected = [lay for lay in self.viewer.layers.selection if isinstance(lay, Image)]
        if not selected:
            active = self.viewer.layers.selection.active
            selected = [active] if isinstance(active, Image) else self._image_layers()[:1]
        if not selected:
            notify_error(InputError("There is no image layer to add. Open an image (File > Open) first."),
                         "Fine-tuning")
            return
        present = {self.layers_table.cellWidget(r, self.COL_LAYER).currentData()
                   for r in range(self.layers_table.rowCount())}
        for lay in selected:
            if lay not in present:
                self.add_layer_row(lay)

    def _remove_selected_rows(self) -> None:
        rows = sorted({i.row() for i in self.layers_table.selectedIndexes()}, reverse=True)
        if not rows and self.layers_table.rowCount():
            rows = [self.layers_table.rowCount() - 1]
        for r in rows:
            self.layers_table.removeRow(r)

    def _on_layers_changed(self, event=None) -> None:
        if event is not None and getattr(event, "type", "") == "inserted":
            try:
                event.value.events.name.connect(self._on_layers_changed)
            except Exception:  # pragma: no cover
                pass
        try:
            for r in range(self.layers_table.rowCount()):
                for col, with_none in ((self.COL_LAYER, False), (self.COL_DNA, True)):
                    combo = self.layers_table.cellWidget(r, col)
                    if combo is not None:
                        self._fill_layer_combo(combo, combo.currentData(), with_none=with_none)
            self._update_plane_counts()
        except RuntimeError:  # pragma: no cover - widget deleted, viewer still emitting
            pass

    def layers_dataset(self):
        """The table as LabelledImages (one sample per plane); raises InputError for bad rows."""
        from ..datasets import UNLABELLED, LabelledImages, Sample

        clf = self.kind == "classifier"
        samples, warnings, names = [], [], []
        for r in range(self.layers_table.rowCount()):
            layer = self.layers_table.cellWidget(r, self.COL_LAYER).currentData()
            if layer is None:
                raise InputError(f"Row {r + 1} of the layer table has no image layer (was it closed?). "
                                 "Pick one or remove the row.")
            raw = self.layers_table.cellWidget(r, self.COL_CLASS).currentText().strip()
            if clf and not raw:
                raise InputError(f"Give the layer {layer.name!r} (row {r + 1}) a class: pick one or type "
                                 "a new class name.")
            label = (canonical_class(raw) or raw) if raw else UNLABELLED  # autoencoder: no class needed
            dna_layer = self.layers_table.cellWidget(r, self.COL_DNA).currentData()
            planes = _layer_planes(layer)
            dna_planes: list = [None] * len(planes)
            if dna_layer is not None:
                d = _layer_planes(dna_layer)
                if len(d) == 1:
                    dna_planes = d * len(planes)
                elif len(d) == len(planes):
                    dna_planes = d
                else:
                    raise InputError(
                        f"The DNA layer {dna_layer.name!r} has {len(d)} planes but the image layer "
                        f"{layer.name!r} has {len(planes)}. Choose a DNA layer with one plane or the "
                        "same number of planes.")
            for i, (p, d) in enumerate(zip(planes, dna_planes)):
                if d is not None and tuple(d.shape[:2]) != tuple(p.shape[:2]):
                    raise InputError(
                        f"The DNA layer {dna_layer.name!r} ({d.shape[0]}x{d.shape[1]}) and the image "
                        f"layer {layer.name!r} ({p.shape[0]}x{p.shape[1]}) differ in size; choose a "
                        "matching DNA layer or none.")
                src = f"layer:{layer.name}" + (f"[{i}]" if len(planes) > 1 else "")
                samples.append(Sample(protein=p, dna=d, label=label, source=src))
            names.append(f"{layer.name} ({label}, {len(planes)})")
        labels = [s.label for s in samples]
        canon = [c for c in CLASSES if c in labels]
        classes = canon + [c for c in dict.fromkeys(labels) if c not in canon]
        return LabelledImages(samples=samples, classes=classes, skipped=[], warnings=warnings,
                              description="napari layers: " + "; ".join(names))
