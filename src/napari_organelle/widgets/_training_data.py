"""Training data for the "Fine-tune models" dock: a folder / archive, or open layers.

FolderData: a path (typed, or from Folder... / Archive...), read by ``datasets.load_labelled`` in the
background when Load (or Train) is pressed; the counts per class, skipped files and warnings show
under it. LayerRows: one row per image layer: the layer, its class (one of the model's classes, a class typed under
"Other classes", or "per plane (layer metadata)" for a stack whose ``metadata["classes"]`` names each
plane), an optional DNA layer (suggested by name and shape) and how many images it gives (a stack
gives one per plane). ``dataset`` turns the rows into LabelledImages. A row whose layer was closed
says so and is reported when training; it never switches to another layer.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, LineEdit, PushButton, TextEdit, show_file_dialog
from psygnal import Signal

from ..classes import CLASSES, canonical_class
from ..preprocess import InputError
from ._jobs import in_background, narrow, notify_error
from ._layers import is_dna_name, unwrap

PER_PLANE = "per plane (layer metadata)"
CLOSED = "(layer closed)"


def _planes(layer) -> list[np.ndarray]:
    """Image layer -> 2D planes (a stack gives one per plane; RGB stays one image per plane)."""
    data = layer.data[0] if layer.multiscale else layer.data
    lead = tuple(data.shape)[: -3 if layer.rgb else -2]
    return [np.asarray(data[i]) for i in np.ndindex(*lead)] if lead else [np.asarray(data)]


def _n_planes(layer) -> int:
    data = layer.data[0] if layer.multiscale else layer.data
    return int(np.prod(tuple(data.shape)[: -3 if layer.rgb else -2], dtype=int))


def plane_classes(layer) -> list[str] | None:
    """The per-plane classes a stack's metadata names (``metadata["classes"]``, one per plane)."""
    classes = layer.metadata.get("classes") if layer is not None else None
    if isinstance(classes, (list, tuple)) and len(classes) == _n_planes(layer) > 1:
        return [str(c) for c in classes]
    return None


def _load_job(path: str, kind: str):
    from ..datasets import load_labelled

    try:
        return path, load_labelled(path, min_classes=1 if kind == "autoencoder" else 2), None
    except Exception as exc:  # noqa: BLE001 - shown in the GUI thread
        return path, None, exc


def describe(data) -> str:
    counts = data.counts()
    n_cls = sum(1 for v in counts.values() if v)
    lines = [str(data.description or ""), f"{len(data.samples)} images in {n_cls} class{'' if n_cls == 1 else 'es'}"
             + (" (with DNA)" if data.has_dna() else " (no DNA channel)") + ":",
             ", ".join(f"{c} {n}" for c, n in counts.items())]
    if data.skipped:
        lines += [f"Skipped {len(data.skipped)} file(s):"] + [f"  {f}: {why}" for f, why in data.skipped[:20]]
    return "\n".join([x for x in lines if x] + [f"Warning: {w}" for w in data.warnings])


class FolderData(Container):
    """Path, Folder... / Archive... / Load, and what the loaded images are."""

    loaded = Signal(object)  # the LabelledImages (None when loading failed)

    def __init__(self, kind) -> None:
        self._kind = kind
        self.path = LineEdit(label="Path", tooltip="A folder with one sub-folder per class (the autoencoder: any "
                                                   "folder of images), or a .zip / .tgz archive.")
        self.folder_button, self.archive_button = PushButton(text="Folder..."), PushButton(text="Archive...")
        self.load_button = PushButton(text="Load", tooltip="Read the images now and count them (Train loads too).")
        self.summary = TextEdit(value="", tooltip="Counts per class, skipped files and warnings.")
        self.summary.read_only = True
        self.summary.native.setPlaceholderText("Counts per class, skipped files and warnings appear here.")
        self.summary.native.setMaximumHeight(96)
        buttons = Container(widgets=[self.folder_button, self.archive_button, self.load_button], layout="horizontal",
                            labels=False)
        buttons.margins = (0, 0, 0, 0)
        super().__init__(widgets=[self.path, buttons, self.summary])
        self.margins = (0, 0, 0, 0)
        self.dataset = self.dataset_path = self.failed_path = self.worker = None
        self.folder_button.changed.connect(lambda *_: self._browse("d"))
        self.archive_button.changed.connect(lambda *_: self._browse("r"))
        self.load_button.changed.connect(lambda *_: self.load())

    def data(self):
        """The loaded images when they are the path's, else the path (Train loads it), or None."""
        path = self.path.value.strip()
        return (self.dataset if self.dataset is not None and self.dataset_path == path else path) or None

    def _browse(self, mode: str) -> None:
        path = show_file_dialog(mode=mode, caption="Labelled images", start_path=self.path.value or str(Path.home()),
                                filter=None if mode == "d" else "Archives (*.zip *.tgz *.tar.gz *.tar *.tar.bz2 *.tar.xz)")
        if path:
            self.set_path(path, load=True)

    def set_path(self, path, load: bool = False) -> None:
        self.path.value = os.fspath(path)
        if load:
            self.load()

    def retry_failed(self) -> None:
        if self.path.value.strip() == self.failed_path and self.worker is None:
            self.load()

    def load(self):
        """Read the folder / archive in the background; returns the worker (None when there is no path)."""
        path = self.path.value.strip()
        if not path:
            notify_error(InputError("Type or choose a folder or archive of labelled images first."), "Fine-tuning")
            return None
        self.load_button.enabled, self.summary.value = False, f"Loading {path} ..."
        self.worker = in_background(_load_job, self._loaded, path, self._kind())
        return self.worker

    def _loaded(self, payload) -> None:
        path, data, exc = payload
        self.worker, self.load_button.enabled = None, True
        self.failed_path = path if exc is not None else None
        self.dataset, self.dataset_path = (data, path) if exc is None else (None, None)
        if exc is not None:
            self.summary.value = f"Could not load {path}:\n{exc}"
            notify_error(exc, "Loading the images")
        else:
            self.summary.value = describe(data)
            problems = list(data.warnings) + [f"{f}: {why}" for f, why in data.skipped[:1]]
            if problems:  # e.g. a class folder without images: say so where the user looks
                from napari.utils.notifications import show_warning

                more = len(data.warnings) + len(data.skipped) - 1
                show_warning(f"Loaded {len(data.samples)} images from {path}, but: {problems[0]}"
                             + (f" (and {more} more; see 'Data')" if more > 0 else ""))
        self.loaded.emit(data)


class LayerRow(Container):
    """[layer, x] / [class, DNA, images]."""

    def __init__(self, owner: "LayerRows", layer, label: str, dna) -> None:
        self.owner, self._layer, self._dna, self._resetting = owner, layer, dna, False
        self.layer = ComboBox(choices=self._layer_choices, tooltip="The image layer (a stack: one image a plane).")
        self.remove_button = PushButton(text="x", tooltip="Remove this row.")
        self.cls = ComboBox(choices=self._class_choices, tooltip="Its class; add your own under 'Other classes'.")
        self.dna = ComboBox(choices=self._dna_choices, tooltip="Its DNA layer (optional).")
        self.n_images = Label(value="")
        top = Container(widgets=[self.layer, self.remove_button], layout="horizontal", labels=False)
        bottom = Container(widgets=[self.cls, self.dna, self.n_images], layout="horizontal", labels=False)
        for c in (top, bottom):
            c.margins = (0, 0, 0, 0)
        super().__init__(widgets=[top, bottom], labels=False)
        self.margins = (0, 2, 0, 6)
        self.remove_button.native.setMaximumWidth(28)
        narrow(self)
        self.reset_choices()
        self.cls.value = label
        self.layer.changed.connect(self._chose_layer)
        self.dna.changed.connect(self._chose_dna)
        self.remove_button.changed.connect(lambda *_: owner.remove_row(self))

    def _images(self):
        from napari.layers import Image

        return [x for x in self.owner.viewer.layers if isinstance(x, Image)]

    def _layer_choices(self, _):
        items = [(x.name, x) for x in self._images()]
        return items + ([] if any(x is self._layer for _, x in items) else [(CLOSED, None)])

    def _dna_choices(self, _):
        return [("(none)", None)] + [(x.name, x) for x in self._images()]

    def _class_choices(self, _):
        names = ([PER_PLANE] if plane_classes(self._layer) else []) + self.owner.classes()
        return [("(choose a class)", "")] + [(c, c) for c in names]

    def reset_choices(self, *args) -> None:  # the viewer changed: re-list, keep this row's own layers
        self._resetting = True
        try:
            keep = self.cls.value
            super().reset_choices(*args)
            if not any(x is self._dna for x in self._images()):
                self._dna = None
            self.layer.value, self.dna.value = self._layer if any(x is self._layer for x in self._images()) else None, \
                self._dna
            if keep in self.cls.choices:
                self.cls.value = keep
            self.n_images.value = f"{_n_planes(self._layer)} img" if self.layer.value is not None else ""
        finally:
            self._resetting = False

    def _chose_layer(self, value) -> None:
        if not self._resetting and value is not None:
            self._layer = value
            self.reset_choices()

    def _chose_dna(self, value) -> None:
        if not self._resetting:
            self._dna = value


class LayerRows(Container):
    """The rows, "Add selected layers" and "Other classes"."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.kind = "classifier"
        self.model_classes: list[str] = list(CLASSES)
        self.rows: list[LayerRow] = []
        self.add_button = PushButton(text="Add selected layers")
        self.other = LineEdit(label="Other classes", tooltip="Your own class names, comma separated: they join "
                                                            "the class lists (the model gets a new head).")
        self._rows_box = Container(labels=False)
        self._rows_box.margins = (0, 0, 0, 0)
        super().__init__(widgets=[self._rows_box, self.add_button, self.other], labels=False)
        self.margins = (0, 0, 0, 0)
        self.add_button.changed.connect(self._add_selected)
        self.other.changed.connect(lambda *_: self.reset_choices())

    def classes(self) -> list[str]:
        other = [c.strip() for c in self.other.value.split(",") if c.strip()]
        return list(dict.fromkeys(self.model_classes + other))

    def set_kind(self, kind: str, model_classes=None) -> None:
        self.kind = kind
        if model_classes:
            self.model_classes = list(model_classes)
        for row in self.rows:
            row.cls.visible = kind == "classifier"
        self.other.visible = kind == "classifier"
        self.reset_choices()

    def suggest_dna(self, layer):
        """A DNA-named layer with the image's size and one plane or as many planes, the closest name first."""
        from napari.layers import Image

        def fits(x):
            return (isinstance(x, Image) and x is not layer and is_dna_name(x.name)
                    and tuple(x.data.shape[-2:]) == tuple(layer.data.shape[-2:])
                    and _n_planes(x) in (1, _n_planes(layer)))

        def shared(x):
            return len(set(x.name.lower().split()) & set(layer.name.lower().split()))

        return max((x for x in self.viewer.layers if fits(x)), key=shared, default=None)

    def add_layer_row(self, layer, label: str | None = None, dna="suggest") -> LayerRow:
        """Add a row for ``layer`` (an Image layer or its name); ``label`` None: from the layer's metadata
        (per plane) or name; ``dna``: a layer, its name, None, or "suggest"."""
        layer = unwrap(self.viewer.layers[layer]) if isinstance(layer, str) else unwrap(layer)
        if isinstance(dna, str):
            dna = self.suggest_dna(layer) if dna == "suggest" else unwrap(self.viewer.layers[dna])
        if label is None:
            label = PER_PLANE if plane_classes(layer) else (layer.metadata.get("organelle_class")
                                                            or canonical_class(layer.name) or "")
        if label and label != PER_PLANE and label not in self.classes():
            self.other.value = ", ".join([c for c in self.other.value.split(",") if c.strip()] + [label])
        row = LayerRow(self, layer, label, dna)
        row.cls.visible = self.kind == "classifier"
        self.rows.append(row)
        self._rows_box.append(row)
        return row

    def remove_row(self, row: LayerRow) -> None:
        self.rows.remove(row)
        self._rows_box.remove(row)

    def _add_selected(self, *_) -> None:
        from napari.layers import Image

        chosen = [x for x in self.viewer.layers.selection if isinstance(x, Image)]
        if not chosen:
            notify_error(InputError("There is no image layer to add: select image layers in the layer list (or "
                                    "open an image, File > Open) first."), "Fine-tuning")
            return
        present = {id(r._layer) for r in self.rows} | {id(self.suggest_dna(x)) for x in chosen}
        for layer in chosen:  # a DNA layer that goes with another chosen layer is its DNA, not a row
            if id(unwrap(layer)) not in present:
                self.add_layer_row(layer)

    def dataset(self):
        """The rows as LabelledImages (one sample per plane); InputError for a row that cannot be used."""
        from ..datasets import UNLABELLED, LabelledImages, Sample

        if not self.rows:
            raise InputError("No layer rows yet: select image layers in the layer list and press 'Add selected "
                             "layers'.")
        clf = self.kind == "classifier"
        samples, names = [], []
        for r, row in enumerate(self.rows, start=1):
            layer, dna_layer, raw = row.layer.value, row.dna.value, (row.cls.value or "").strip()
            if layer is None:
                raise InputError(f"Row {r} of the layer table has no image layer (was it closed?). Pick one or "
                                 "remove the row.")
            planes = _planes(layer)
            if clf and raw == PER_PLANE:
                labels = [canonical_class(c) or c for c in plane_classes(layer)]
            elif clf and not raw:
                raise InputError(f"Give the layer {layer.name!r} (row {r}) a class: pick one, or type a new one "
                                 "under 'Other classes'.")
            else:
                labels = [(canonical_class(raw) or raw) if clf else UNLABELLED] * len(planes)
            dna = [None] * len(planes)
            if dna_layer is not None:
                d = _planes(dna_layer)
                if len(d) not in (1, len(planes)):
                    raise InputError(f"The DNA layer {dna_layer.name!r} has {len(d)} planes but the image layer "
                                     f"{layer.name!r} has {len(planes)}. Choose a DNA layer with one plane or the "
                                     "same number of planes.")
                dna = d * len(planes) if len(d) == 1 else d
            for i, (p, d, lab) in enumerate(zip(planes, dna, labels)):
                if d is not None and tuple(d.shape[:2]) != tuple(p.shape[:2]):
                    raise InputError(f"The DNA layer {dna_layer.name!r} ({d.shape[0]}x{d.shape[1]}) and the image "
                                     f"layer {layer.name!r} ({p.shape[0]}x{p.shape[1]}) differ in size; choose a "
                                     "matching DNA layer or none.")
                samples.append(Sample(protein=p, dna=d, label=lab, source=f"layer:{layer.name}"
                                      + (f"[{i}]" if len(planes) > 1 else "")))
            names.append(f"{layer.name} ({raw if clf else 'no class'}, {len(planes)})")
        found = [s.label for s in samples]
        classes = [c for c in CLASSES if c in found] + [c for c in dict.fromkeys(found) if c not in CLASSES]
        return LabelledImages(samples=samples, classes=classes, skipped=[], warnings=[],
                              description="napari layers: " + "; ".join(names))
