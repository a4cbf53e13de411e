"""Simulated fluorescence cells from several independently written renderers.

* ``base``: the renderer interface (``render(cls, rng, *, size, diameter) -> RenderedCell``) and
  its contract; ``preview``: a contact sheet of one renderer;
* one module per renderer; ``RENDERERS`` names them (``classic`` wraps ``phantoms.py``'s two styles);
* ``imaging``: the shared, widely randomised microscope and camera every renderer passes through;
* ``scene``: neighbours, imperfect segmentation, border cuts and the product's per-cell crop;
* ``trainset``: labelled classifier inputs from any set of renderers, in parallel, reproducibly.

numpy and scipy (and Pillow for JPEG) only, plus the product's own preprocessing; no Qt.
"""

from __future__ import annotations

import importlib

#: Registry name -> (module, function) of every renderer.
RENDERERS: dict[str, tuple[str, str]] = {
    "default": ("classic", "render_default"),
    "alt": ("classic", "render_alt"),
    "indep_a": ("indep_a", "render"),
    "indep_b": ("indep_b", "render"),
    "indep_c": ("indep_c", "render"),
    "indep_d": ("indep_d", "render"),
    "indep_e": ("indep_e", "render"),
    "indep_f": ("indep_f", "render"),
    "indep_g": ("indep_g", "render"),
    "indep_h": ("indep_h", "render"),
    "indep_i": ("indep_i", "render"),
}


def get_renderer(name: str):
    """The render function of the renderer ``name`` (see RENDERERS)."""
    if name not in RENDERERS:
        raise ValueError(f"Unknown renderer {name!r}; known: {', '.join(RENDERERS)}.")
    mod, fn = RENDERERS[name]
    return getattr(importlib.import_module(f"{__name__}.{mod}"), fn)


def available_renderers() -> list[str]:
    """Renderers whose module is present (a checkout may lack one still being written)."""
    out = []
    for name in RENDERERS:
        try:
            get_renderer(name)
        except ImportError:
            continue
        out.append(name)
    return out
