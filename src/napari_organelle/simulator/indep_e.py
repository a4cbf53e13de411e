"""``indep_e``: an independently written renderer of simulated fluorescence cells.

Written from docs/biology.md only. A cell (``_indep_e_cell``: cell line, outline, nucleus,
nucleoli, thickness, DNA; the same for every class) is drawn first, then the protein of one class
on it with drawing primitives from ``_indep_e_draw`` (anti-aliased point splats of polylines,
persistent random walks that bend along the cell edge, Delaunay networks, discs and rings).

Each class picks one of several variants (``info["variant"]``) and continuous parameters (density,
fineness, placement, contrast against a diffuse cytoplasmic background) so that a class covers the
range of looks the biology describes, not one characteristic look.
"""

from __future__ import annotations

import numpy as np

from ..classes import CLASSES
from ._indep_e_cell import make_cell
from ._indep_e_organelles import _BG_SCALE, _DRAW, _NUCLEAR
from .base import RenderedCell

NAME = "indep_e"


def _paste(c, a, dtype):
    out = np.zeros((c.frame, c.frame), dtype)
    y0, x0 = c.off
    out[y0:y0 + a.shape[0], x0:x0 + a.shape[1]] = a
    return out


def render(cls: str, rng: np.random.Generator, *, size: int, diameter: float) -> RenderedCell:
    """One noise-free cell of class ``cls`` on a ``size`` x ``size`` grid (see base.py)."""
    if cls not in CLASSES:
        raise ValueError(f"unknown class {cls!r}; expected one of {', '.join(CLASSES)}")
    if size < 1.25 * diameter:
        raise ValueError(f"size {size} must be at least 1.25 x diameter ({diameter})")
    c = make_cell(rng, size, diameter)
    info = dict(c.info)
    struct = _DRAW[cls](c, rng, info)
    struct = np.clip(np.nan_to_num(struct), 0, None) * c.cell
    ref = float(np.percentile(struct[c.cell], 99.8)) if c.cell.any() else 0.0
    ref = max(ref, 0.3 * float(struct.max()), 1e-12)
    struct = struct / ref
    # unbound protein / antibody background, from almost nothing to a third of the structure
    bg = rng.uniform(0.0, 0.33) ** 1.3 * _BG_SCALE.get(cls, 1.0)
    if cls in _NUCLEAR and c.state != "mitotic":
        where = c.nuc_soft + c.cyto * rng.uniform(0.05, 0.4)
    else:
        where = c.cyto + (c.nucleus if c.state == "mitotic" else c.nuc_soft) * rng.uniform(0.2, 0.7)
    protein = struct + bg * c.T * where
    expression = float(np.exp(rng.uniform(np.log(0.35), np.log(2.5))))
    protein = protein / max(float(protein.max()), 1e-12) * expression * rng.uniform(0.9, 1.1)
    protein = _paste(c, protein * c.cell, np.float32)
    dna = _paste(c, np.clip(c.dna, 0, None) * c.cell, np.float32)
    info.update(state=c.state, expression=round(expression, 2), background=round(float(bg), 3))
    for k, val in list(info.items()):
        if isinstance(val, (np.generic,)):
            info[k] = val.item()
    nucleus = _paste(c, c.nucleus & c.cell, bool)
    return RenderedCell(protein=protein, dna=dna, cell=_paste(c, c.cell, bool), nucleus=nucleus,
                        pixel_size_um=float(c.px), state=c.state, info=info)
