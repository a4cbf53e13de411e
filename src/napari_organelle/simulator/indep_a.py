"""``indep_a``: a renderer of simulated fluorescence cells written from docs/biology.md.

One call draws one cell as a noise-free specimen (see ``base.py`` for the contract):

1. the cell (``_indep_a_geom``): a cell line (HeLa, spread U2OS/fibroblast, compact epithelial, stem
   cell), its outline (roundish, polygonal, with protrusions, spindle, triangular, fan-shaped,
   ruffled), its physical size and so the pixel size, an off-centre nucleus (sometimes kidney-shaped
   or lobed, sometimes two, sometimes a micronucleus), nucleoli, the thickness profile and how much
   of it the (confocal or widefield) image integrates; a few percent of cells are rounded or mitotic
   (prometaphase, metaphase, anaphase, telophase with a midbody bridge). The DNA channel follows.
   None of this depends on the class, and it is drawn first from ``rng``;
2. the protein (``_indep_a_classes``): one drawer per class, each choosing among the variants the
   biology describes, drawing at physical sizes (sub-pixel lines anti-aliased with the right
   brightness per unit length);
3. a diffuse background of unbound protein (cytoplasmic or nuclear, from almost none to a good
   fraction of the structure), scaled so the brightest structures are ~1, times an expression level
   that varies ~7x from cell to cell.
"""

from __future__ import annotations

import numpy as np

from ..classes import CLASSES
from ._indep_a_classes import DRAWERS
from ._indep_a_draw import loguniform, smooth_noise
from ._indep_a_geom import make_geometry
from .base import RenderedCell

NAME = "indep_a"


def render(cls: str, rng: np.random.Generator, *, size: int, diameter: float) -> RenderedCell:
    """One simulated cell of class ``cls`` on a ``size`` x ``size`` grid (see base.py)."""
    if cls not in CLASSES:
        raise ValueError(f"unknown class {cls!r}; expected one of {', '.join(CLASSES)}")
    size = int(size)
    diameter = float(diameter)
    if not np.isfinite(diameter) or diameter < 48:
        # an 80 µm fibroblast drawn smaller than this would need pixels over 2 µm
        raise ValueError(f"diameter {diameter!r} is too small; use at least 48 pixels (80-400 in practice)")
    if size < 1.25 * diameter:
        raise ValueError(f"size {size} is smaller than 1.25 x diameter ({1.25 * diameter:.0f}); "
                         "use a larger size or a smaller diameter")
    g = make_geometry(rng, size, diameter)
    g.dmax = 1.08 * diameter - 2.0
    P, comp, info, extra = DRAWERS[cls](g, rng)
    P = np.asarray(P, np.float32)

    cell = g.cell if extra is None else (g.cell | extra)
    vals = P[cell]
    vals = vals[vals > 0]
    ref = float(np.partition(vals, int(0.999 * (vals.size - 1)))[int(0.999 * (vals.size - 1))]) if vals.size else 1.0
    P = P / max(ref, 1e-12)

    # unbound / cytosolic protein and antibody background
    bgfrac = float(loguniform(rng, 0.004, 0.12))
    tex = np.clip(1 + 0.25 * smooth_noise(g.hw, 3.0 / g.px, rng), 0.3, None)
    if comp == "nuc":
        bg = g.nucsoft + rng.uniform(0.03, 0.25) * g.vol * g.cyto
    else:
        bg = g.vol * g.cyto + g.over_nuc * g.nucsoft * (0.7 if g.state == "interphase" else 1.0)
        if comp == "cyto-dim":  # a compact organelle against a dark cytoplasm (Golgi)
            bg = bg * 0.4
    expr = float(loguniform(rng, 0.35, 2.5))
    P = expr * (P + bgfrac * bg * tex)
    cover = g.soft if extra is None else np.maximum(g.soft, extra)
    P = np.clip(P * cover, 0, None)

    protein = np.zeros((size, size), np.float32)
    dna = np.zeros((size, size), np.float32)
    cmask = np.zeros((size, size), bool)
    nmask = np.zeros((size, size), bool)
    y0, x0 = g.off
    sl = (slice(y0, y0 + g.hw[0]), slice(x0, x0 + g.hw[1]))
    protein[sl] = P
    dna[sl] = g.dna
    cmask[sl] = cell
    nmask[sl] = g.nuc & g.cell
    info = dict(g.info, **info, expression=round(expr, 3), background=round(bgfrac, 4))
    return RenderedCell(protein=protein, dna=dna, cell=cmask, nucleus=nmask, pixel_size_um=float(g.px),
                        state=g.state, info=info)
