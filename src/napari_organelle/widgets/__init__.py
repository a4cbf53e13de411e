"""napari docks of napari-organelle (the only package that imports Qt or napari), built on magicgui.

Importing this package blocks ``triton`` (unless it is imported already): these widgets only ever run
inside a Qt/GL application, and importing triton (through torchvision, torch._dynamo or
torch.utils.flop_counter) once Mesa's software OpenGL is live segfaults (see
``napari_organelle._safe_imports``), whether napari was imported before this package (the Plugins
menu) or after it (``napari-organelle demo``). Every widget module imports this package first.

It also keeps a core for napari's GUI thread when torch's thread count is chosen
(:func:`napari_organelle._threads.keep_for_gui`).
"""

from .._safe_imports import guard_triton
from .._threads import keep_for_gui

guard_triton(gui=True)
# napari's GUI thread keeps a core: the docks' workers (classify, reconstruct, fine-tune) give torch
# the other cores that no other process keeps busy (napari_organelle._threads).
keep_for_gui(1)

__all__ = ["ClassifyWidget", "ReconstructWidget", "FinetuneWidget"]
_MODULES = {"ClassifyWidget": "classify", "ReconstructWidget": "reconstruct", "FinetuneWidget": "finetune"}


def __getattr__(name):  # lazy: docking one widget does not import the others
    if name in _MODULES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(name)
