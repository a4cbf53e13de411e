"""``indep_c``: a renderer of simulated fluorescence cells written from docs/biology.md alone.

One call draws one cell as a noise-free specimen (protein and DNA densities, cell and nucleus
masks); the shared imaging model adds optics and camera afterwards. The order of work keeps the
class out of everything but the protein's biology:

1. the cell (``_indep_c_cell.make_cell``): state (a few percent mitotic, in four phases, and
   rounded), cell line (HeLa, spread U2OS/fibroblast, compact epithelial, hiPSC), outline (round,
   polygonal, lobed, protrusive, fan, elongated, triangular; ruffled edges; straight edges where a
   neighbour touches; filopodia), nucleus (size and position by line, kidney or lobed shapes,
   binucleate cells, micronuclei), nucleoli, thickness (thick over the nucleus, thin at the edge),
   centrosome side; for mitosis chromosomes, spindle poles and daughter cells;
2. the DNA stain (``_indep_c_cell.make_dna``) and the expression level;
3. only then, from the same generator, the protein of class ``cls``
   (``_indep_c_organelles.DRAWERS``) plus diffuse background protein.

So the same generator state gives the same cell body, nucleus and DNA whatever the class.
Sizes are physical: the pixel size is the cell's physical extent over its extent in pixels.
"""

from __future__ import annotations

import numpy as np

from ..classes import CLASSES
from ..preprocess import InputError
from ._indep_c_cell import make_cell, make_dna
from ._indep_c_organelles import DRAWERS, background
from .base import RenderedCell

NAME = "indep_c"
#: Below this a spread cell (up to 80 um) would need pixels over 2 um.
MIN_DIAMETER = 48


def render(cls: str, rng: np.random.Generator, *, size: int, diameter: float) -> RenderedCell:
    """Draw one cell of class ``cls`` (see base.py for the contract)."""
    if cls not in CLASSES:
        raise InputError(f"Unknown class {cls!r}; use one of {', '.join(CLASSES)}.")
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"rng must be a numpy.random.Generator (got {type(rng).__name__}); "
                         f"pass numpy.random.default_rng(seed).")
    try:
        size, diameter = int(size), float(diameter)
    except (TypeError, ValueError):
        raise InputError(f"size and diameter must be numbers (got {size!r}, {diameter!r}).") from None
    if not np.isfinite(diameter) or diameter < MIN_DIAMETER:
        raise InputError(f"diameter {diameter!r} px is too small to draw a cell at a light-microscope pixel "
                         f"size; use {MIN_DIAMETER}-400 pixels (80-400 is typical).")
    if size < 1.25 * diameter:
        raise InputError(f"size {size} is smaller than 1.25 x diameter ({1.25 * diameter:.0f} px); "
                         f"use a size of at least {int(np.ceil(1.25 * diameter))} or a smaller diameter.")
    g = make_cell(rng, size, diameter)
    dna, dna_gain = make_dna(g, rng)
    expression = float(np.exp(rng.uniform(np.log(0.35), np.log(2.5))))
    S, kind, level, info = DRAWERS[cls](g, rng, dna)
    bg = background(g, kind, rng)
    prot = (np.maximum(S, 0) + np.float32(level) * bg) * g.cell_aa
    vals = prot[g.cell]
    ref = max(float(np.percentile(vals, 99.9)), float(vals.max()) / 6, 1e-12)
    prot *= np.float32(expression / ref)

    out_p = np.zeros((size, size), np.float32)
    out_d = np.zeros((size, size), np.float32)
    cell = np.zeros((size, size), bool)
    nuc = np.zeros((size, size), bool)
    sl = (slice(g.fy, g.fy + g.h), slice(g.fx, g.fx + g.w))
    out_p[sl] = prot
    out_d[sl] = np.maximum(dna, 0)
    cell[sl] = g.cell
    nuc[sl] = g.nuc & g.cell
    info = dict(info)
    info.update({
        "line": g.line, "shape": g.kind, "phase": g.phase, "expression": round(expression, 3),
        "dna_gain": round(dna_gain, 3), "background": round(float(level), 3), "background_kind": kind,
        "nuclei": len(g.nuclei), "micronuclei": len(g.micro), "neighbour_edges": len(g.clips),
        "filopodia": 0 if g.filo is None else int(len(g.filo)),
    })
    return RenderedCell(protein=out_p, dna=out_d, cell=cell, nucleus=nuc, pixel_size_um=float(g.p),
                        state=g.state, info=info)
