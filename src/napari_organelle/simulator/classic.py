"""The first two renderers (``phantoms.py``'s "default" and "alt" styles) behind the renderer
interface of base.py: their noise-free signal, cell and nucleus masks, without their own acquisition
(the shared imaging model replaces it)."""

from __future__ import annotations

import numpy as np

from .base import RenderedCell

#: The classic renderers draw structures for a 382-px frame whose cells average ~306 px across.
_REF_DIAMETER = 306.0
#: Physical size the classic renderers' cells stand for (um across), for the imaging model's PSF.
_CELL_UM = 32.0


def render(cls: str, rng: np.random.Generator, *, size: int, diameter: float, style: str = "default") -> RenderedCell:
    from .. import phantoms

    size = int(size)
    frac = float(diameter) / size
    # the classic cells' mean diameter is scale * size; elongated ones reach ~1.2x that
    lo, hi = 0.78 * frac, 0.92 * frac
    protein, dna, cell, _ = phantoms._render_signal(cls, rng, size, style, scale_range=(lo, hi),
                                                    unit=float(diameter) / _REF_DIAMETER)
    return RenderedCell(protein=np.maximum(protein, 0).astype(np.float32),
                        dna=np.maximum(dna, 0).astype(np.float32),
                        cell=np.asarray(cell.body, bool), nucleus=np.asarray(cell.nuc & cell.body, bool),
                        pixel_size_um=float(_CELL_UM / float(diameter)), state="interphase",
                        info={"style": style})


def render_default(cls, rng, *, size, diameter):
    return render(cls, rng, size=size, diameter=diameter, style="default")


def render_alt(cls, rng, *, size, diameter):
    return render(cls, rng, size=size, diameter=diameter, style="alt")
