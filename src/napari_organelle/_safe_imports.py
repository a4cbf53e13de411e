"""Imports that are unsafe once napari/vispy has created an OpenGL context.

``torchvision`` imports ``torch._dynamo``, which imports ``triton`` when it is installed. Triton ships
its own LLVM; loading it into a process where Mesa's software OpenGL (llvmpipe, itself built on a
different LLVM) is already live segfaults. The fix: when a GL/Qt application is already imported and
triton is not, mark triton as unavailable (``sys.modules["triton"] = None``) before importing
torchvision. Torch then runs without its GPU compiler (``torch.compile`` falls back / is unused in
the GUI). A plain script (no GL/Qt module imported) is never touched, so GPU benchmarks keep
``torch.compile``.
"""

from __future__ import annotations

import sys

#: Modules whose presence means a GL / Qt application may own an OpenGL context in this process.
GL_MODULES = ("vispy", "napari", "PyQt6", "PyQt5", "PySide6")


def gl_app_loaded() -> bool:
    """True when any GL/Qt module is already imported."""
    return any(name in sys.modules for name in GL_MODULES)


def guard_triton(gui: bool = False) -> bool:
    """Block ``triton`` if a GL/Qt app is loaded (or ``gui``: the caller is about to start one) and
    triton is not imported yet.

    Returns True when triton was blocked (now or earlier). Safe to call many times. The widgets call
    it with ``gui=True`` when they are imported, whatever was imported before them: ``napari-organelle
    demo`` imports the widgets before napari exists, and its first model card (FLOP counting through
    ``torch.utils.flop_counter``) would otherwise import triton after the viewer's GL context.
    """
    if "triton" in sys.modules:
        return sys.modules["triton"] is None
    if gui or gl_app_loaded():
        sys.modules["triton"] = None  # type: ignore[assignment]
        return True
    return False


def import_torchvision():
    """Import and return ``torchvision`` safely (see module docstring)."""
    guard_triton()
    import torchvision

    return torchvision
