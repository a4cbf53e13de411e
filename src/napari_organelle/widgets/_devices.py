"""A device drop-down over :func:`napari_organelle.training.available_devices`.

It lists what this machine has: ``auto`` (with what auto picks, e.g. "auto (-> cuda:0 NVIDIA H200)"),
``cpu``, each ``cuda:N`` with its name, and ``mps`` on Apple silicon. The item data is the device id
the engine understands (``TrainConfig(device=...)``).
"""

from __future__ import annotations

import logging

from qtpy.QtWidgets import QComboBox, QWidget

logger = logging.getLogger(__name__)


def device_choices() -> list[tuple[str, str]]:
    """``[(id, description), ...]``, ``auto`` first; falls back to a local probe if the engine fails."""
    try:
        from ..training import available_devices

        items = [(str(i), str(d)) for i, d in available_devices()]
        if items:
            return items
    except Exception:  # pragma: no cover - engine missing or broken: still offer something usable
        logger.debug("training.available_devices() failed; probing torch directly", exc_info=True)
    return _probe_devices()


def _probe_devices() -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = [("cpu", "cpu")]
    auto = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                items.append((f"cuda:{i}", f"cuda:{i} {torch.cuda.get_device_name(i)}"))
            auto = items[1][1]
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            items.append(("mps", "mps (Apple GPU)"))
            if auto == "cpu":
                auto = "mps"
    except Exception:  # pragma: no cover
        pass
    return [("auto", f"auto (-> {auto})"), *items]


class DeviceComboBox(QComboBox):
    """Drop-down of the devices this machine has; ``device()`` returns the id for TrainConfig."""

    def __init__(self, parent: QWidget | None = None, what: str = "training", *,
                 release_copies_on_cpu: bool = False) -> None:
        super().__init__(parent)
        self.setToolTip(
            f"Where {what} runs. 'auto' picks the first CUDA GPU, else Apple MPS, else the CPU."
        )
        self.refresh()
        if release_copies_on_cpu:  # inference docks: back on the CPU, free the models' GPU copies
            self.currentIndexChanged.connect(self._release_if_cpu)

    def _release_if_cpu(self, *_) -> None:
        if self.device() == "cpu":
            from ..inference import release_device_copies

            release_device_copies()

    def refresh(self) -> None:
        """Re-list the devices, keeping the current choice when it still exists."""
        current = self.device() if self.count() else "auto"
        self.blockSignals(True)
        try:
            self.clear()
            for dev_id, desc in device_choices():
                self.addItem(desc, dev_id)
        finally:
            self.blockSignals(False)
        self.set_device(current)

    def device(self) -> str:
        data = self.currentData()
        return str(data) if data is not None else "auto"

    def set_device(self, dev_id: str) -> bool:
        """Select ``dev_id``; returns False (and keeps the selection) when this machine lacks it."""
        idx = self.findData(dev_id)
        if idx < 0:
            return False
        self.setCurrentIndex(idx)
        return True

    def ids(self) -> list[str]:
        return [str(self.itemData(i)) for i in range(self.count())]
