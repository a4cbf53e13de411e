"""The model picker: choose the active classifier / autoencoder, and read its card.

Choices are the models ``checkpoints.list_models`` finds (the bundled one first, then the user's
store) plus "Load from file...". The choice is shared through ``STATE`` ("Use this model" in the
fine-tune dock shows up here). Listing, loading and the card (it counts FLOPs) need torch and the
disk, so they run in the background; the GUI thread only shows their results.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, show_file_dialog

from ._jobs import in_background, notify_error, wrapped_label
from ._state import STATE

LOAD_FROM_FILE = "Load from file..."
BUNDLED = {"classifier": "bundled-classifier", "autoencoder": "bundled-autoencoder"}


def model_card_text(loaded) -> str:
    """A short card: the simulated-cells caveat first (a short dock never hides it), then what the
    model is, what data trained it and what it measured."""
    text = str(loaded.card)
    meta = getattr(loaded, "meta", {}) or {}
    data = str((meta.get("training") or {}).get("data", ""))
    metrics = meta.get("metrics") or {}
    lines = [text]
    if loaded.kind == "classifier" and "accuracy" not in text.lower():
        key = next((k for k in ("test_accuracy", "val_accuracy") if metrics.get(k) is not None), None)
        if key:
            lines.append(f"{key.replace('_', ' ')}: {100 * float(metrics[key]):.1f} %")
    if "simulat" in (text + data).lower():
        lines.insert(0, "These weights learned from simulated cells: check them on your own labelled images "
                        "(or fine-tune) before trusting them on real microscopy.")
    return "\n".join(lines)


def short_card(loaded, text: str) -> str:
    """What fits under the picker: the simulated-cells caveat, what the model is and its headline figure
    (the whole card is the tooltip)."""
    lines = text.splitlines()
    m = loaded.metrics
    what = f"{loaded.name}: {loaded.arch} {loaded.kind}" + (f", {len(loaded.classes)} classes" if loaded.classes else "")
    real = (m.get("real_cells") or {}).get("hpa | protein+dna") if isinstance(m.get("real_cells"), dict) else None
    if isinstance(real, dict) and isinstance(real.get("accuracy"), (int, float)):
        what += f"; accuracy on real HPA cells {real['accuracy']:.0%} ({real.get('cells', '?')} cells)"
    else:
        for key, fmt in (("test_accuracy", "{:.1%}"), ("val_accuracy", "{:.1%}"), ("test_psnr", "{:.1f} dB"),
                         ("val_psnr", "{:.1f} dB")):
            if isinstance(m.get(key), (int, float)):
                what += f"; {key.replace('_', ' ')} {fmt.format(m[key])}"
                break
    return "\n".join([ln for ln in lines[:1] if ln.startswith("These weights")] + [what])


def _list(kind: str):
    from ..checkpoints import list_models

    return [(m.name, m.summary) for m in list_models(kind) if not m.error]


def _load(kind: str, name_or_path):
    from ..checkpoints import resolve_model

    loaded = resolve_model(name_or_path, kind=kind)
    return loaded, model_card_text(loaded)


class ModelPicker(Container):
    """A ComboBox of the models of one kind and the active model's card below it."""

    def __init__(self, kind: str, label: str = "Model") -> None:
        self.kind = kind
        self._names = [BUNDLED[kind]]
        self.combo = ComboBox(label=label, choices=lambda _: self._names + [LOAD_FROM_FILE],
                              tooltip="The model this dock uses (shared by the docks). Load from file... takes "
                                      "a .pt checkpoint.")
        self.card = wrapped_label("(reading the model list...)")
        self.card.native.setStyleSheet("color: #b0b8c0; font-size: 11px;")
        super().__init__(widgets=[self.combo, self.card], labels=False)
        self.margins = (0, 0, 0, 0)
        self._summaries: dict[str, str] = {}
        self._cards: dict[int, str] = {}   # id(LoadedModel) -> its card text
        self._updating = False
        self.loading = None                # the background load, while one runs
        self.combo.changed.connect(self._on_chosen)
        STATE.changed.connect(self._on_state)
        STATE.models_changed.connect(self._on_models_changed)
        self.refresh()

    # -- what is shown
    def refresh(self) -> None:
        """Re-list the models (in the background)."""
        in_background(_list, self._listed, self.kind)

    def _listed(self, items) -> None:
        self._summaries = dict(items)
        self.show_active()

    def show_active(self) -> None:
        """Select the active model (the bundled one before the first run) and show its card."""
        active = STATE.peek(self.kind)
        name = getattr(active, "name", None) or BUNDLED[self.kind]
        names = list(self._summaries) or [BUNDLED[self.kind]]
        if name not in names:
            names.append(name)  # e.g. a fine-tuned model in use but not saved
        self._updating = True
        try:
            if names != self._names:
                self._names = names
                self.combo.choices = []  # rebuilt in order: "Load from file..." stays last
                self.combo.reset_choices()
            self.combo.value = name
        finally:
            self._updating = False
        if active is None:
            self.card.value = f"{self._summaries.get(name, name)}\n(loads on first run)"
        elif id(active) in self._cards:
            self._set_card(active, self._cards[id(active)])
        else:
            self.card.value = f"{name} (reading its card...)"
            in_background(lambda m: (m, model_card_text(m)), self._card_ready, active)

    def _card_ready(self, payload) -> None:
        loaded, text = payload
        self._cards[id(loaded)] = text
        if STATE.peek(self.kind) is loaded:
            self._set_card(loaded, text)

    def _set_card(self, loaded, text: str) -> None:
        self.card.value, self.card.tooltip = short_card(loaded, text) + " (hover: full card)", text

    def remember_card(self, loaded, text: str) -> None:
        """A dock's worker loaded ``loaded`` and wrote its card: show it without computing it again."""
        self._cards[id(loaded)] = text
        self.show_active()

    # -- what the user does
    def _on_chosen(self, value) -> None:
        if self._updating or value is None:
            return
        if value == LOAD_FROM_FILE:
            path = show_file_dialog(mode="r", caption=f"Load a {self.kind} checkpoint",
                                    filter="Models (*.pt *.pth *.zip);;All files (*)")
            if not path:
                self.show_active()
                return
            value = path
        active = STATE.peek(self.kind)
        if active is not None and getattr(active, "name", None) == value:
            return
        self.load(value)

    def load(self, name_or_path):
        """Load a model by store name or path in the background; it becomes the active one (errors are
        notified and the previous model stays). Returns the worker."""
        self.card.value = f"Loading {name_or_path} ..."

        def loaded(payload):
            self.loading = None
            model, text = payload
            self._cards[id(model)] = text
            STATE.set_active(self.kind, model)

        def failed(exc):
            self.loading = None
            notify_error(exc, f"Loading the {self.kind}")
            self.show_active()

        self.loading = in_background(_load, loaded, self.kind, name_or_path, on_error=failed)
        return self.loading

    def _on_state(self, kind: str) -> None:
        if kind == self.kind:
            try:
                self.show_active()
            except RuntimeError:  # this dock was closed; STATE lives on
                STATE.changed.disconnect(self._on_state)

    def _on_models_changed(self, kind: str) -> None:
        if kind == self.kind:
            self.refresh()
