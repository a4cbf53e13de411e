"""The active models shared by the three docks.

"Use this model" in the fine-tune dock makes a model active here; the classify and reconstruct docks
listen to ``STATE.changed`` and switch to it. Bundled models are loaded lazily, on first use, in a
worker thread (``get_active`` may block on torch and the disk: never call it in the GUI thread).
"""

from __future__ import annotations

import threading

from psygnal import Signal


class ModelState:
    """Which classifier and autoencoder the docks use now (one instance per process: STATE)."""

    changed = Signal(str)          # the kind ("classifier" | "autoencoder") whose active model changed
    models_changed = Signal(str)   # a model of this kind was saved into the store (pickers re-list)

    def __init__(self) -> None:
        self._active: dict[str, object] = {}
        self._lock = threading.Lock()

    def get_active(self, kind: str):
        """The active LoadedModel of ``kind``; the bundled one until the user picks another."""
        with self._lock:
            if kind not in self._active:
                from ..checkpoints import resolve_model

                self._active[kind] = resolve_model(None, kind=kind)
            return self._active[kind]

    def peek(self, kind: str):
        """The active model if one was loaded or chosen already, else None (never loads)."""
        return self._active.get(kind)

    def set_active(self, kind: str, loaded) -> None:
        if kind not in ("classifier", "autoencoder"):
            raise ValueError(f"unknown model kind {kind!r}")
        self._active[kind] = loaded
        self.changed.emit(kind)

    def reset(self) -> None:
        self._active.clear()


STATE = ModelState()
