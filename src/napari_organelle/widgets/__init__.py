"""napari docks of napari-organelle (the only package that imports Qt or napari).

Importing this package first blocks ``triton`` when a Qt/GL application is already running in the
process: importing torchvision (which pulls in triton through torch._dynamo) after Mesa's software
OpenGL is live segfaults otherwise (see ``napari_organelle._safe_imports``). Every widget module
imports this package first, so the guard runs before any torch or torchvision import.
"""

from .._safe_imports import guard_triton

guard_triton()

__all__ = ["ClassifyWidget", "ReconstructWidget"]


def __getattr__(name):  # lazy: docking one widget should not import the others
    if name == "ClassifyWidget":
        from .classify import ClassifyWidget

        return ClassifyWidget
    if name == "ReconstructWidget":
        from .reconstruct import ReconstructWidget

        return ReconstructWidget
    raise AttributeError(name)
