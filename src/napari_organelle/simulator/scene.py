"""From one rendered cell to what the classifier is given: neighbours, imaging, segmentation, crop.

:func:`training_sample` builds one classifier input the way a user's image reaches the model:

1. a cell rendered at a random magnification (longest extent 80-400 px);
2. 0-3 neighbours touching it, stained for the same protein (one field, one staining) with their own
   expression level: rotated / mirrored copies of the cell (cheap, and enough for what a crop shows
   of a neighbour: its edge, the light it spills across the border, the masked-out area);
3. the shared imaging model (``imaging.acquire``) over the whole scene;
4. a segmentation as imperfect as a real one: the cell's label grown or shrunk by up to a few % of
   its size, or, for some samples, redrawn from the protein signal (a nuclear protein's "cell" is
   then its nucleus); sometimes the image border cuts the cell;
5. the product's own per-cell path: ``inference.cell_crops`` (bounding box + 15 % margin, other
   cells masked) for most samples, or the whole image around the cell (as a user classifying a
   cropped single-cell image sends it) for the rest; then ``preprocess.prepare_pair``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from . import imaging
from .base import RenderedCell

#: Share of samples sent through the per-cell path (the rest: whole image around the cell).
P_PER_CELL = 0.75
#: Probabilities of 0, 1, 2, 3 neighbours.
P_NEIGHBOURS = (0.35, 0.3, 0.2, 0.15)
P_BORDER_CUT = 0.15
#: Share of samples whose cell outline comes from the protein signal itself (as a cell finder
#: without a DNA image, or one that follows the stain, would draw it: for a nuclear protein the
#: "cell" is then its nucleus).
P_SIGNAL_MASK = 0.2


def _loguniform(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _transform(a: np.ndarray, k: int, flip: bool) -> np.ndarray:
    a = np.rot90(a, k)
    return a[:, ::-1] if flip else a


def compose(r: RenderedCell, rng: np.random.Generator, n_neighbours: int):
    """Canvas (protein, dna, labels) with the cell as label 1 and ``n_neighbours`` touching copies."""
    s = r.cell.shape[0]
    pad = int(0.45 * s) if n_neighbours else 0
    S = s + 2 * pad
    P = np.zeros((S, S), np.float32)
    D = np.zeros((S, S), np.float32)
    L = np.zeros((S, S), np.int32)
    sl = (slice(pad, pad + s), slice(pad, pad + s))
    P[sl], D[sl] = r.protein, r.dna
    L[sl][r.cell] = 1
    if not n_neighbours:
        return P, D, L
    ys, xs = np.nonzero(r.cell)
    cy, cx = ys.mean() + pad, xs.mean() + pad
    main = L == 1
    for j in range(n_neighbours):
        k, flip = int(rng.integers(0, 4)), bool(rng.uniform() < 0.5)
        cp, cd, cm = (_transform(a, k, flip) for a in (r.protein, r.dna, r.cell))
        nys, nxs = np.nonzero(cm)
        ang = rng.uniform(0, 2 * np.pi)
        uy, ux = math.sin(ang), math.cos(ang)
        # slide the copy out along the direction until it no longer overlaps, then back a little
        placed = None
        for dist in np.linspace(0.3 * s, 1.3 * s, 21):
            oy = int(round(cy + uy * dist - nys.mean()))
            ox = int(round(cx + ux * dist - nxs.mean()))
            yy, xx = nys + oy, nxs + ox
            ok = (yy >= 0) & (yy < S) & (xx >= 0) & (xx < S)
            overlap = main[yy[ok], xx[ok]].mean() if ok.any() else 0.0
            placed = (oy, ox, ok)
            if overlap < rng.uniform(0.0, 0.06):
                break
        oy, ox, ok = placed
        yy, xx = nys[ok] + oy, nxs[ok] + ox
        free = L[yy, xx] == 0
        yy, xx = yy[free], xx[free]
        sy, sx = nys[ok][free], nxs[ok][free]
        bp, bd = _loguniform(rng, 0.25, 4.0), _loguniform(rng, 0.5, 2.0)
        P[yy, xx] += bp * cp[sy, sx]
        D[yy, xx] += bd * cd[sy, sx]
        L[yy, xx] = j + 2
    return P, D, L


def imperfect_labels(L: np.ndarray, rng: np.random.Generator, diameter: float) -> np.ndarray:
    """The cell's (label 1) mask grown into its surroundings or shrunk by a few % of its size, as
    a segmentation would get it wrong."""
    k = int(round(rng.normal(0, 0.02) * diameter))
    k = max(-int(0.04 * diameter), min(int(0.05 * diameter), k))
    if k == 0:
        return L
    L = L.copy()
    main = L == 1
    if k > 0:
        grown = ndi.binary_dilation(main, iterations=k)
        L[grown] = 1
    else:
        kept = ndi.binary_erosion(main, iterations=-k)
        if kept.sum() > 0.3 * main.sum():
            L[main & ~kept] = 0
    return L


def signal_labels(L: np.ndarray, protein: np.ndarray, rng: np.random.Generator, diameter: float) -> np.ndarray:
    """Label 1 redrawn from the protein image: the smoothed signal above a fraction of its bright
    level, holes filled, the largest piece within the (grown) cell; neighbours keep their labels."""
    main = L == 1
    sm = ndi.gaussian_filter(protein.astype(np.float32), max(1.0, 0.02 * diameter))
    ref = np.percentile(sm[main], 99) if main.any() else sm.max()
    bg = np.percentile(sm, 5)
    fg = sm > bg + rng.uniform(0.12, 0.35) * (ref - bg)
    fg &= ndi.binary_dilation(main, iterations=max(1, int(0.03 * diameter)))
    fg = ndi.binary_fill_holes(fg)
    lab, n = ndi.label(fg)
    if n == 0:
        return L
    sizes = ndi.sum(fg, lab, range(1, n + 1))
    keep = lab == (1 + int(np.argmax(sizes)))
    keep = ndi.binary_dilation(keep, iterations=max(1, int(0.01 * diameter)))
    if keep.sum() < 0.02 * main.sum() or keep.sum() < 64:
        return L
    out = L.copy()
    out[main & ~keep] = 0
    out[keep & (L == 0)] = 1
    return out


def _border_cut(P, D, L, rng):
    ys, xs = np.nonzero(L == 1)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    f = rng.uniform(0.1, 0.4)
    side = int(rng.integers(0, 4))
    if side == 0:
        sl = (slice(int(y0 + f * (y1 - y0)), None), slice(None))
    elif side == 1:
        sl = (slice(None, int(y1 - f * (y1 - y0)) + 1), slice(None))
    elif side == 2:
        sl = (slice(None), slice(int(x0 + f * (x1 - x0)), None))
    else:
        sl = (slice(None), slice(None, int(x1 - f * (x1 - x0)) + 1))
    return P[sl], D[sl], L[sl]


def _whole_view(P, D, L, rng, diameter):
    """The image around the cell with a random margin: what a user's cropped single-cell file shows."""
    ys, xs = np.nonzero(L == 1)
    m = int(rng.uniform(0.05, 0.5) * diameter)
    y0, y1 = max(0, ys.min() - m), min(P.shape[0], ys.max() + m + 1)
    x0, x1 = max(0, xs.min() - m), min(P.shape[1], xs.max() + m + 1)
    return P[y0:y1, x0:x1], D[y0:y1, x0:x1]


def training_sample(cls: str, rng: np.random.Generator, render, *, input_size: int,
                    diameter_range=(80.0, 400.0)):
    """One classifier input (uint8 (2, S, S): protein, DNA, each scaled to 0-255 from [0, 1]) of
    class ``cls`` drawn by ``render`` (a renderer's render function), and a dict describing it."""
    from ..inference import cell_crops
    from ..preprocess import prepare_pair

    d = _loguniform(rng, *diameter_range)
    size = int(math.ceil(1.3 * d))
    r = render(cls, rng, size=size, diameter=d)
    n_nb = int(rng.choice(len(P_NEIGHBOURS), p=P_NEIGHBOURS))
    P, D, L = compose(r, rng, n_nb)
    (p16, d16), im = imaging.acquire(P, D, rng, r.pixel_size_um, cell_mask=L > 0)
    if rng.uniform() < P_SIGNAL_MASK:
        L = signal_labels(L, p16, rng, d)
    else:
        L = imperfect_labels(L, rng, d)
    if rng.uniform() < P_BORDER_CUT:
        p16, d16, L = _border_cut(p16, d16, L, rng)
    per_cell = rng.uniform() < P_PER_CELL
    if per_cell:
        crops = [c for c in cell_crops(p16, L, d16) if c[0] == 1]
        _, pc, dc = crops[0]
    else:
        pc, dc = _whole_view(p16, d16, L, rng, d)
    x = prepare_pair(pc, dc, size=int(input_size), check_signal=False)
    info = {"diameter": round(d, 1), "neighbours": n_nb, "per_cell": bool(per_cell), "state": r.state,
            "bits": im.bits, "jpeg": im.jpeg}
    return np.rint(x * 255).astype(np.uint8), info
