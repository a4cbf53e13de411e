"""The "Run on" / "Device" drop-down: what :func:`napari_organelle.training.available_devices` lists.

``auto`` (with what it picks, e.g. "auto (-> cuda:0 NVIDIA H200)"), ``cpu``, each ``cuda:N`` with its
name and ``mps`` on Apple silicon; the value is the id the core takes (``TrainConfig(device=...)``).
Listing GPUs imports torch, so the list is filled in the background; ``auto`` and ``cpu`` are there
from the start.
"""

from __future__ import annotations

import sys

from magicgui.widgets import ComboBox

from ._jobs import in_background


#: What this machine has, once listed (``auto`` and ``cpu`` until then).
_DEVICES: list[tuple[str, str]] = [("auto", "auto"), ("cpu", "cpu")]


def _list_devices() -> list[tuple[str, str]]:
    from ..training import available_devices

    return [(str(desc), str(dev)) for dev, desc in available_devices()]


def device_picker(what: str = "training", *, label: str = "Device", release_copies_on_cpu: bool = False,
                  fill: bool = True) -> ComboBox:
    combo = ComboBox(label=label, choices=lambda _: _DEVICES, value="auto",
                     tooltip=f"Where {what} runs. 'auto' picks the first CUDA GPU, else Apple MPS, else the CPU.")

    def filled(choices):
        current = combo.value
        _DEVICES[:] = choices
        combo.choices = []  # rebuilt in the engine's order
        combo.reset_choices()
        combo.value = current if current in combo.choices else "auto"

    if fill:
        in_background(_list_devices, filled)
    if release_copies_on_cpu:  # inference docks: back on the CPU, free the models' GPU copies
        def release(value):
            if value == "cpu" and "napari_organelle.inference" in sys.modules:
                sys.modules["napari_organelle.inference"].release_device_copies()
        combo.changed.connect(release)
    return combo
