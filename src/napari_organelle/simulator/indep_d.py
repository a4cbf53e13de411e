"""``indep_d``: an independent renderer of simulated fluorescence cells (docs/biology.md).

Three files: ``_indep_d_cell`` (class-independent: outline, nuclei, nucleoli, thickness, DNA and the
drawing primitives), ``_indep_d_classes`` (the protein of each class) and this entry module.

* Cell: one of four cell lines (HeLa 20-40 um, U2OS-like spread / fan cells 40-80 um, compact
  epithelial 15-30 um, hiPSC 10-18 um) drawn as a star-shaped polar outline (ellipse + low harmonics,
  protrusions, ruffles, straight edges shared with neighbours); 3.5 % mitotic (prometaphase mass,
  metaphase plate or anaphase groups) and 3 % rounded cells, both at their own physical size. The
  pixel size is the cell's physical extent / the asked diameter. Nucleus: lobed or kidney-shaped
  ellipse, off-centre, 4 % binucleate, occasional micronucleus; nucleoli make the DNA's holes.
  Thickness: thick over and near the nucleus, thinning to the edge; cytoplasmic stains follow it.
* Protein: structures at physical size; thin ones as anti-aliased sub-pixel lines with a fixed
  brightness per unit length (``_lw``), wider ones blurred to their width; a diffuse background of
  0-1/3 of the structure brightness; an expression level varying ~7x. Each class draws one of the
  variants biology.md lists (``info["variant"]``). The random stream is consumed identically for
  every class until the protein is drawn, so cell, nucleus, DNA and brightness range never depend
  on the class.
"""

from __future__ import annotations

import numpy as np

from . import _indep_d_cell as C
from ._indep_d_classes import (_actin, _endosome, _er, _golgi, _lysosome, _microtubules, _mitochondria,
                               _nucleolus, _nucleus_cls)
from .base import RenderedCell

NAME = "indep_d"


def render(cls: str, rng: np.random.Generator, *, size: int, diameter: float) -> RenderedCell:
    from ..classes import CLASSES

    if cls not in CLASSES:
        raise ValueError(f"unknown class {cls!r}; expected one of {', '.join(CLASSES)}")
    if size < 1.25 * diameter:
        raise ValueError(f"size {size} must be at least 1.25 x diameter ({diameter})")
    g = C.make_geometry(rng, size, float(diameter))
    if g.state == "mitotic":
        dna = C.make_chromosomes(g, rng)
    else:
        C.make_nucleoli(g, rng)
        dna = C.make_dna(g, rng)
        g.poles = None
    info = dict(g.info)
    expr = float(np.exp(rng.uniform(np.log(0.35), np.log(2.5))))  # drawn before the class: same stream
    dna_gain = float(np.exp(rng.normal(0, 0.15)))
    if cls == "ActinFilaments":
        prot = _actin(g, rng, info)
    elif cls == "Microtubules":
        prot = _microtubules(g, rng, info)
    elif cls == "ER":
        prot = _er(g, rng, info)
    elif cls in ("Golgi_gia", "Golgi_gpp"):
        prot = _golgi(g, rng, info, cls == "Golgi_gpp")
    elif cls == "Endosome":
        prot = _endosome(g, rng, info)
    elif cls == "Lysosome":
        prot = _lysosome(g, rng, info)
    elif cls == "Mitochondria":
        prot = _mitochondria(g, rng, info)
    elif cls == "Nucleolus":
        prot = _nucleolus(g, rng, info)
    else:
        prot = _nucleus_cls(g, rng, info, dna)
    # filopodia are part of the cell; otherwise zero outside the cell
    cell = g.cell | g.extra_mask if getattr(g, "extra_mask", None) is not None else g.cell
    prot = np.where(cell, prot, 0) * np.where(g.cell, g.cover, 1)
    prot = np.maximum(prot, 0)
    s = max(float(np.percentile(prot[g.cell], 99.9)), float(prot.max()) / 6, 1e-12)
    info["expression"] = round(expr, 2)
    prot = prot / s * expr
    dna = np.maximum(dna, 0)
    if g.state == "mitotic":  # condensed chromosomes: 2-4x interphase chromatin (typical 99.5th pct ~1.45)
        dna = dna / 1.45
    else:
        dna = dna / max(float(np.percentile(dna[g.nucleus], 99.5)), 1e-12)
    dna = dna * dna_gain
    return RenderedCell(protein=prot.astype(np.float32), dna=dna.astype(np.float32), cell=cell.astype(bool),
                        nucleus=(g.nucleus & g.cell), pixel_size_um=float(g.p), state=g.state, info=info)
