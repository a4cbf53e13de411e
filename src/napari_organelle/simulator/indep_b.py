"""``indep_b``: a renderer of simulated fluorescence cells written from docs/biology.md alone.

One call draws one cell: first the cell (line, outline, nucleus, nucleoli, thickness, DNA; the same
for every class, from the same generator draws), then the protein of the asked class inside it.
Structures are drawn at their physical size (um) with the cell's pixel size, as fluorophore
concentration (see ``_indep_b_draw``); thin lines anti-aliased with the right brightness per
length. Noise-free, no PSF, no background: the shared imaging model adds those.

Helpers: ``_indep_b_draw`` (splats, lines, random fields), ``_indep_b_cell`` (cell and DNA).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import Delaunay, QhullError

from ..classes import CLASSES
from ..preprocess import InputError
from ._indep_b_cell import Cell, grid, make_cell, sample_cyto_points
from ._indep_b_draw import (ANG, TWO_PI, block_mean, lines, loguniform, lookup, polylines_to_segments,
                            sample_from_map, smooth_noise, stamp, wrap)
from .base import RenderedCell

NAME = "indep_b"


# ------------------------------------------------------------------------------------------ helpers
def _coarse_xy(c: Cell):
    n = c.c_cyto.shape[0]
    v = (np.arange(n) + 0.5) * c.cf - 0.5
    return np.meshgrid(v, v, indexing="ij")


def _cyto_bg(c: Cell, rng, over=None):
    """Diffuse cytoplasmic protein: follows thickness, dimmer over the nucleus (max ~1)."""
    over = rng.uniform(0.05, 0.35) if over is None else over
    return c.vol ** c.gamma * c.cell_f * (1 - (1 - over) * c.nuc_f)


def _nuc_bg(c: Cell, rng):
    """Diffuse nuclear protein with a little in the cytoplasm."""
    return c.cell_f * (c.nuc_f + rng.uniform(0.02, 0.25) * (1 - c.nuc_f) * c.vol ** c.gamma)


def _ref(c: Cell, img) -> float:
    """Brightness of the brightest structures as a microscope would see them (0.2 um blocks)."""
    k = max(1, int(round(0.2 / c.px)))
    b = block_mean(img, k)
    m = block_mean(c.cell.astype(np.float32), k) > 0.5
    v = b[m] if m.any() else b.ravel()
    q = float(np.quantile(v, 0.995)) if v.size else 0.0
    return q if q > 0 else max(float(img.max()), 1e-9)


def _walk(c: Cell, rng, y, x, th, n_steps, step_px, kappa, avoid_nucleus=False, edge="follow",
          edge_len=None, margin_um=0.6):
    """Persistent random walks (vectorised over walkers), kept inside the cell.

    edge "follow": at the edge a walker turns and runs along it for ``edge_len`` px, then stops;
    "reflect": it turns back inward. ``avoid_nucleus``: turns away from the nuclear envelope.
    Returns node arrays Y, X (n, n_steps + 1) and the alive flags per node.
    """
    n = y.size
    Y = np.empty((n, n_steps + 1))
    X = np.empty((n, n_steps + 1))
    A = np.zeros((n, n_steps + 1), bool)
    Y[:, 0], X[:, 0], A[:, 0] = y, x, True
    alive = np.ones(n, bool)
    left = np.full(n, np.inf) if edge_len is None else np.asarray(edge_len, float).copy()
    on_edge = np.zeros(n, bool)
    mpx = margin_um * c.um
    for k in range(1, n_steps + 1):
        th = th + rng.normal(0, kappa, n)
        ny_, nx_ = y + step_px * np.sin(th), x + step_px * np.cos(th)
        d, gy, gx = c.outline.normal(ny_, nx_)
        out = d < mpx
        if edge == "follow":
            vy, vx = np.sin(th), np.cos(th)
            dot = vy * gy + vx * gx
            ty, tx = vy - np.where(out, np.maximum(dot, 0), 0) * gy, vx - np.where(out, np.maximum(dot, 0), 0) * gx
            turn = np.clip(wrap(np.arctan2(ty, tx) - th), -0.5, 0.5)      # bend smoothly
            th = np.where(out, th + turn, th)
            push = np.where(out, np.maximum(mpx - d, 0), 0)
            ny_, nx_ = ny_ - push * gy, nx_ - push * gx
            on_edge |= out
            left = left - np.where(on_edge, step_px, 0)
            alive &= left > 0
        else:
            th = np.where(out, np.arctan2(-gy, -gx) + rng.normal(0, 0.6, n), th)
            ny_, nx_ = np.where(out, y, ny_), np.where(out, x, nx_)
        if avoid_nucleus:
            dn = c.nuc_dist(ny_, nx_)
            bad = dn < 0.3 * c.um
            th = np.where(bad, th + rng.choice([-1, 1], n) * rng.uniform(1.2, 2.4, n), th)
            ny_, nx_ = np.where(bad, y, ny_), np.where(bad, x, nx_)
        y, x = ny_, nx_
        Y[:, k], X[:, k], A[:, k] = y, x, alive
    return Y, X, A


def _curves(c: Cell, Y, X, A, density, width_px, dim_over_nucleus=0.0, along=None):
    """Draw walks / polylines; per-curve density and width; optionally dimmer over the nucleus;
    ``along``: an (n, m - 1) brightness factor per segment."""
    if along is not None:
        A = A.copy()
    y0, x0, y1, x1, cid = polylines_to_segments(Y, X, A)
    d = np.broadcast_to(np.asarray(density, float), (Y.shape[0],))[cid]
    if along is not None:
        d = d * along[A[:, 1:] & A[:, :-1]]
    w = np.broadcast_to(np.asarray(width_px, float), (Y.shape[0],))[cid]
    if dim_over_nucleus:
        d = d * (1 - dim_over_nucleus * lookup(c.nuc_f, 0.5 * (y0 + y1), 0.5 * (x0 + x1)))
    return lines(c.S, y0, x0, y1, x1, d, w)


def _edge_angles(c: Cell):
    yy, xx = grid(c.S)
    th = np.arctan2(yy - np.float32(c.outline.cy), xx - np.float32(c.outline.cx))
    return th


def _per_angle(c: Cell, th, table):
    return np.interp(th, ANG, np.asarray(table, float), period=TWO_PI)


def _cell_points(c: Cell, rng, n, weight=None):
    """Points anywhere in the cell body (nucleus included)."""
    w = (c.c_dedge > 0).astype(float) if weight is None else weight * (c.c_dedge > 0)
    y, x = sample_from_map(rng, w, n, c.cf)
    ok = c.outline.inside(y, x)[0] > 0.5 * c.um
    return y[ok], x[ok]


def _area_um2(c: Cell) -> float:
    return float(c.cell.sum()) * c.px ** 2


# ------------------------------------------------------------------------------------------ actin
def _cortex(c: Cell, rng, width_um, junction_boost=0.0):
    d = np.maximum(c.d_edge, 0)
    w = width_um * c.um
    rim = np.exp(-d / max(w, 0.5))
    if junction_boost and c.junction is not None and c.junction.any():
        jw = _per_angle(c, _edge_angles(c), ndi.gaussian_filter1d(c.junction.astype(float), 1.0, mode="wrap"))
        rim = rim + junction_boost * jw * np.exp(-d / max(0.25 * c.um, 0.5))
    return rim * c.cell_f


def _actin(c: Cell, rng):
    S, um = c.S, c.um
    if c.state != "interphase":
        struct = _cortex(c, rng, rng.uniform(0.4, 1.0)) * rng.uniform(1.0, 1.6)
        mesh = np.clip(1 + 0.3 * smooth_noise(rng, (S, S), max(0.15 * um, 0.5)), 0, None)
        bg = _cyto_bg(c, rng) * mesh
        c.info["actin"] = "cortex ring"
        return struct, bg, loguniform(rng, 0.03, 0.3)
    probs = {"U2OS": [0.65, 0.2, 0.05, 0.05, 0.05], "HeLa": [0.2, 0.35, 0.25, 0.12, 0.08],
             "epithelial": [0.12, 0.3, 0.43, 0.1, 0.05], "hiPSC": [0.08, 0.2, 0.62, 0.05, 0.05]}[c.line]
    variant = str(rng.choice(["fibres", "mixed", "cortex", "ruffles", "podosomes"], p=probs))
    c.info["actin"] = variant
    struct = np.zeros((S, S))
    # cortex and cell-cell junctions
    c_rim = {"cortex": rng.uniform(0.8, 1.4), "ruffles": rng.uniform(0.4, 0.9)}.get(variant, rng.uniform(0.2, 0.7))
    struct += c_rim * _cortex(c, rng, rng.uniform(0.5, 2.0) / 2, junction_boost=rng.uniform(0.5, 2.0))
    # stress fibres
    nf = {"fibres": rng.integers(25, 81), "mixed": rng.integers(5, 26), "cortex": rng.integers(0, 5),
          "ruffles": rng.integers(0, 9), "podosomes": rng.integers(0, 6)}[variant]
    if nf:
        struct += _stress_fibres(c, rng, int(nf))
    # leading edge: lamellipodium band with a mesh texture, ruffles and arcs behind it
    if c.lead is not None and c.lead.max() > 0.1 and (variant in ("ruffles", "fibres", "mixed") or rng.random() < 0.3):
        th = _edge_angles(c)
        lw = _per_angle(c, th, c.lead)
        band_w = rng.uniform(2, 5) * um
        d = np.maximum(c.d_edge, 0)
        band = 0.5 * (1 - np.tanh(0.5 * (d - band_w) / max(0.3 * um, 0.5)))
        tex = np.clip(1 + 0.6 * smooth_noise(rng, (S, S), max(0.12 * um, 0.5)), 0, None)
        struct += rng.uniform(0.3, 0.9) * lw * band * tex * c.cell_f
        if variant == "ruffles" or rng.random() < 0.4:
            struct += _edge_parallel_lines(c, rng, int(rng.integers(1, 5)), (0.3, band_w * c.px), (0.2, 0.4), 1.5)
        if variant in ("fibres", "mixed") and rng.random() < 0.6:
            struct += _edge_parallel_lines(c, rng, int(rng.integers(2, 7)), (band_w * c.px + 1, band_w * c.px + 7),
                                           (0.3, 0.7), 1.0)
    # filopodia (bundles of filaments) with roots
    if c.filo:
        y0, x0, y1, x1, w = c.filo
        dy, dx = y1 - y0, x1 - x0
        L = np.maximum(np.hypot(dy, dx), 1e-6)
        root = rng.uniform(0.5, 2.0, y0.size) * um
        ry, rx = y0 - dy / L * root, x0 - dx / L * root
        dens = rng.uniform(0.5, 1.2, y0.size) * np.maximum(w, 0.3 * um)
        struct += lines(S, ry, rx, y1, x1, dens, w)
    # podosomes: dots of 0.5-1 um, in a few clusters
    if variant == "podosomes" or rng.random() < 0.08:
        n = int(rng.integers(20, 150))
        cy, cx = sample_cyto_points(rng, c, int(rng.integers(1, 4)))
        if cy.size:
            k = rng.integers(0, cy.size, n)
            py = cy[k] + rng.normal(0, rng.uniform(2, 5) * um, n)
            pxx = cx[k] + rng.normal(0, rng.uniform(2, 5) * um, n)
            D = rng.uniform(0.5, 1.0, n) * um
            struct += stamp(S, py, pxx, rng.uniform(0.8, 1.5, n) * np.pi * (D / 2) ** 2, D / 2.5)
    mesh = np.clip(1 + 0.4 * smooth_noise(rng, (S, S), max(0.12 * um, 0.5)), 0, None)
    bg = _cyto_bg(c, rng, over=rng.uniform(0.2, 0.6)) * mesh
    b = loguniform(rng, 0.04, 0.33) if variant != "cortex" else loguniform(rng, 0.02, 0.15)
    return struct, bg, b


def _stress_fibres(c: Cell, rng, n):
    S, um = c.S, c.um
    mode = str(rng.choice(["parallel", "fan", "crossing", "random"], p=[0.4, 0.2, 0.25, 0.15]))
    c.info["fibres"] = f"{n} {mode}"
    y, x = _cell_points(c, rng, n)
    n = y.size
    if n == 0:
        return np.zeros((S, S))
    if mode == "parallel":
        th = c.axis + rng.normal(0, rng.uniform(0.05, 0.2), n)
    elif mode == "crossing":
        a = rng.uniform(0.35, 1.2)
        th = c.axis + np.where(rng.random(n) < rng.uniform(0.2, 0.5), a, 0) + rng.normal(0, rng.uniform(0.08, 0.25), n)
    elif mode == "fan":
        back = rng.uniform(1.3, 2.5) * c.outline.radius(c.axis + np.pi)
        fy = c.outline.cy - back * np.sin(c.axis)
        fx = c.outline.cx - back * np.cos(c.axis)
        th = np.arctan2(y - fy, x - fx) + rng.normal(0, 0.05, n)
    else:
        th = rng.uniform(0, TWO_PI, n)
    # the chord through each point, clipped to the cell
    R = 1.2 * c.outline.r.max()
    t = np.linspace(-R, R, 97)
    py = y[:, None] + t[None, :] * np.sin(th)[:, None]
    pxx = x[:, None] + t[None, :] * np.cos(th)[:, None]
    ins = c.outline.inside(py, pxx)[0] > 0.5 * um
    mid = t.size // 2
    fwd = np.cumprod(ins[:, mid:], 1).sum(1)
    bwd = np.cumprod(ins[:, mid::-1], 1).sum(1)
    dt = t[1] - t[0]
    t1, t0 = (fwd - 1) * dt, -(bwd - 1) * dt
    Lmax = 40 * um
    L = np.minimum(t1 - t0, Lmax)
    start = t0 + rng.random(n) * (t1 - t0 - L)
    keep = rng.random(n) < 0.7                   # most fibres end at the periphery
    frac = np.where(keep, 1.0, rng.uniform(0.4, 0.9, n))
    L = L * frac
    start = start + np.where(keep, 0, rng.random(n) * (t1 - t0 - L - (start - t0)).clip(0))
    ok = L > 4 * um
    y, x, th, start, L = y[ok], x[ok], th[ok], start[ok], L[ok]
    n = y.size
    if n == 0:
        return np.zeros((S, S))
    u = np.linspace(0, 1, 17)
    bow = rng.normal(0, 0.02, n) * L
    ey, ex = np.sin(th), np.cos(th)
    Y = y[:, None] + (start[:, None] + L[:, None] * u) * ey[:, None] + bow[:, None] * 4 * u * (1 - u) * ex[:, None]
    X = x[:, None] + (start[:, None] + L[:, None] * u) * ex[:, None] - bow[:, None] * 4 * u * (1 - u) * ey[:, None]
    w_um = loguniform(rng, 0.15, 0.8, n)
    conc = rng.lognormal(0, 0.35, n)
    along = ndi.uniform_filter1d(rng.lognormal(0, 0.35, (n, 16)), 3, axis=1)
    out = _curves(c, Y, X, np.ones_like(Y, bool), conc * w_um * um, w_um * um,
                  dim_over_nucleus=rng.uniform(0.0, 0.5), along=along)
    # focal adhesions: bright dashes at the ends that reach the periphery
    ends_y = np.concatenate([Y[:, 0], Y[:, -1]])
    ends_x = np.concatenate([X[:, 0], X[:, -1]])
    sgn = np.concatenate([np.ones(n), -np.ones(n)])
    dth = np.concatenate([th, th])
    de = c.outline.inside(ends_y, ends_x)[0]
    fa = (de < 2.5 * um) & (rng.random(2 * n) < 0.85)
    if fa.any():
        Lf = rng.uniform(1, 5, fa.sum()) * um
        ey2, ex2 = np.sin(dth[fa]) * sgn[fa], np.cos(dth[fa]) * sgn[fa]
        wf = rng.uniform(0.4, 0.9, fa.sum()) * um
        out += lines(S, ends_y[fa], ends_x[fa], ends_y[fa] + Lf * ey2, ends_x[fa] + Lf * ex2,
                     rng.uniform(1.3, 2.5, fa.sum()) * wf, wf)
    return out


def _edge_parallel_lines(c: Cell, rng, n, depth_um, width_um, bright):
    """Curved bundles parallel to the leading edge (ruffles, transverse arcs)."""
    um = c.um
    a0 = ANG[np.argmax(c.lead)]
    half = max(float((c.lead > 0.5).sum()) / len(ANG) * np.pi, 0.3)
    m = 24
    Y = np.empty((n, m))
    X = np.empty((n, m))
    for i in range(n):
        span = half * rng.uniform(0.4, 1.0)
        th = a0 + rng.uniform(-0.3, 0.3) * half + np.linspace(-span, span, m)
        depth = rng.uniform(*depth_um) * um + 0.3 * um * np.cumsum(rng.normal(0, 0.3, m))
        rr = np.maximum(c.outline.radius(th) - depth, 0)
        Y[i], X[i] = c.outline.cy + rr * np.sin(th), c.outline.cx + rr * np.cos(th)
    w = rng.uniform(*width_um, n) * um
    ok = c.outline.inside(Y, X)[0] > 0
    return _curves(c, Y, X, ok, bright * rng.uniform(0.6, 1.2, n) * w, w)


# ------------------------------------------------------------------------------------------ microtubules
def _microtubules(c: Cell, rng):
    S, um = c.S, c.um
    if c.state == "mitotic":
        return _spindle(c, rng)
    area = _area_um2(c)
    n = int(np.clip(area * rng.uniform(0.35, 0.8), 80, 650))
    elong = c.info.get("axis_ratio", 1.0) < 0.6
    variant = str(rng.choice(["radial", "meshwork", "parallel", "wavy"],
                             p=[0.5, 0.2, 0.2, 0.1] if elong else [0.6, 0.28, 0.0, 0.12]))
    if c.state == "rounded":
        variant = "meshwork"
    c.info["microtubules"] = f"{n} {variant}"
    cy, cx = c.centrosome
    if variant == "radial":
        y = cy + rng.normal(0, 0.4 * um, n)
        x = cx + rng.normal(0, 0.4 * um, n)
        th = rng.uniform(0, TWO_PI, n)
    else:
        m = int(n * (0.3 if variant != "parallel" else 0.1))
        y1, x1 = _cell_points(c, rng, n - m)
        y = np.concatenate([cy + rng.normal(0, 0.4 * um, m), y1])
        x = np.concatenate([cx + rng.normal(0, 0.4 * um, m), x1])
        n = y.size
        th = rng.uniform(0, TWO_PI, n)
        if variant == "parallel":
            th = c.axis + rng.normal(0, 0.15, n) + np.pi * (rng.random(n) < 0.5)
    kappa_um = {"wavy": rng.uniform(0.3, 0.5)}.get(variant, rng.uniform(0.1, 0.28)) * rng.uniform(0.6, 1.4, n)
    step = 0.6
    L = rng.uniform(10, 40, n)
    ns = int(np.ceil(40 / step))
    Y, X, A = _walk(c, rng, y, x, th, ns, step * um, kappa_um * np.sqrt(step), edge="follow",
                    edge_len=rng.exponential(rng.uniform(0.5, 3), n) * um, margin_um=rng.uniform(0.3, 2.0, n))
    A &= (np.arange(ns + 1) * step)[None, :] <= L[:, None]
    dens = np.ones(n) * 0.025 * um           # one microtubule: 25 nm of tubulin "width"
    if variant == "wavy":
        dens = dens * np.where(rng.random(n) < 0.4, rng.uniform(2, 4, n), 1)
    struct = _curves(c, Y, X, A, dens, 0.025 * um, dim_over_nucleus=rng.uniform(0.5, 0.8))
    lvl = _ref(c, struct)
    if rng.random() < 0.45:                  # MTOC: a bright spot or a small star
        D = rng.uniform(0.5, 1.2) * um
        struct += stamp(S, cy, cx, lvl * rng.uniform(1.5, 4) * np.pi * (D / 2) ** 2, D / 2.5)
    return struct, _cyto_bg(c, rng), loguniform(rng, 0.05, 0.35)


def _bezier(p0, p1, p2, m):
    t = np.linspace(0, 1, m)[None, :, None]
    return (1 - t) ** 2 * p0[:, None, :] + 2 * (1 - t) * t * p1[:, None, :] + t ** 2 * p2[:, None, :]


def _spindle(c: Cell, rng):
    S, um = c.S, c.um
    P = [np.array(p) for p in c.poles]
    cen = 0.5 * (P[0] + P[1])
    ax = (P[1] - P[0]) / max(np.linalg.norm(P[1] - P[0]), 1e-6)
    perp = np.array([ax[1], -ax[0]])
    struct = np.zeros((S, S))
    chrom_y, chrom_x = np.nonzero(c.nucleus)
    n = int(rng.integers(60, 150))
    if c.stage == "telophase":
        # daughters: radial arrays from each centrosome, and the midbody between them
        for p in P:
            m = int(n * 0.6)
            th = rng.uniform(0, TWO_PI, m)
            Y, X, A = _walk(c, rng, np.full(m, p[0]), np.full(m, p[1]), th, 20, 0.5 * um, 0.1,
                            edge="follow", edge_len=rng.uniform(1, 4, m) * um)
            struct += _curves(c, Y, X, A, 0.025 * um, 0.025 * um)
        half = rng.uniform(1.0, 2.0) * um
        gap = rng.uniform(0.4, 0.8) * um
        w = rng.uniform(0.5, 1.0) * um
        for s in (1, -1):
            a = cen + s * ax * gap / 2
            b = cen + s * ax * (gap / 2 + half)
            struct += lines(S, a[0], a[1], b[0], b[1], 0.025 * um * rng.uniform(20, 40), w)
        return struct, _cyto_bg(c, rng), loguniform(rng, 0.05, 0.3)
    # kinetochore and interpolar fibres from each pole to the chromosomes / midzone
    for si, p in enumerate(P):
        if chrom_y.size:
            k = rng.integers(0, chrom_y.size, n)
            tgt = np.stack([chrom_y[k], chrom_x[k]], 1).astype(float)
        else:
            tgt = cen + rng.normal(0, 2 * um, (n, 2))
        ip = rng.random(n) < 0.3                            # interpolar: overlap past the middle
        tgt[ip] = tgt[ip] + (P[1 - si] - p) * rng.uniform(0.1, 0.3, (ip.sum(), 1))
        mid = 0.5 * (p + tgt)
        side = np.sign((mid - cen) @ perp + 1e-9)
        ctrl = mid + perp * (side * rng.uniform(0.5, 2.5, n) * um)[:, None]
        B = _bezier(np.repeat(p[None], n, 0), ctrl, tgt, 10)
        struct += _curves(c, B[..., 0], B[..., 1], np.ones(B.shape[:2], bool),
                          0.025 * um * rng.uniform(1, 3, n), 0.025 * um)
        # astral microtubules
        m = int(rng.integers(15, 50))
        th = rng.uniform(0, TWO_PI, m)
        Y, X, A = _walk(c, rng, np.full(m, p[0]), np.full(m, p[1]), th, 12, 0.5 * um, 0.08,
                        edge="follow", edge_len=np.full(m, 0.5 * um))
        struct += _curves(c, Y, X, A, 0.025 * um, 0.025 * um)
        D = rng.uniform(0.6, 1.2) * um
        struct += stamp(S, p[0], p[1], _ref(c, struct) * 2 * np.pi * (D / 2) ** 2, D / 2.5)
    return struct, _cyto_bg(c, rng), loguniform(rng, 0.05, 0.25)


# ------------------------------------------------------------------------------------------ ER
def _voronoi_edges(pts):
    """Edges of the Voronoi diagram of pts (n, 2), from the Delaunay triangulation's circumcentres."""
    tri = Delaunay(pts)
    P = pts[tri.simplices]
    a, b, cc = P[:, 0], P[:, 1], P[:, 2]
    d = 2 * (a[:, 0] * (b[:, 1] - cc[:, 1]) + b[:, 0] * (cc[:, 1] - a[:, 1]) + cc[:, 0] * (a[:, 1] - b[:, 1]))
    d = np.where(np.abs(d) < 1e-12, 1e-12, d)
    sa, sb, sc = (a ** 2).sum(1), (b ** 2).sum(1), (cc ** 2).sum(1)
    uy = (sa * (b[:, 1] - cc[:, 1]) + sb * (cc[:, 1] - a[:, 1]) + sc * (a[:, 1] - b[:, 1])) / d
    ux = (sa * (cc[:, 0] - b[:, 0]) + sb * (a[:, 0] - cc[:, 0]) + sc * (b[:, 0] - a[:, 0])) / d
    nb = tri.neighbors
    i = np.repeat(np.arange(nb.shape[0]), 3)
    j = nb.ravel()
    ok = j > i
    i, j = i[ok], j[ok]
    return uy[i], ux[i], uy[j], ux[j]


def _er_network(c: Cell, rng, region, mesh_in, mesh_out, lam, drop_in, drop_out, tub_um=0.08):
    """A polygonal network of tubules (Voronoi edges, slightly bent), mesh size growing from
    ``mesh_in`` near the nucleus to ``mesh_out`` (um), sparser (edges dropped) toward the edge."""
    S, um = c.S, c.um
    cell_um2 = (c.cf * c.px) ** 2
    near = np.exp(-c.c_dnuc / lam)
    mesh = mesh_in + (mesh_out - mesh_in) * (1 - near)
    w = region * c.c_cyto / mesh ** 2
    n = int(np.clip(w.sum() * cell_um2, 30, 1800))
    y, x = sample_from_map(rng, w, n, c.cf)
    if y.size < 8:
        return np.zeros((S, S))
    try:
        y0, x0, y1, x1 = _voronoi_edges(np.stack([y, x], 1))
    except QhullError:                      # degenerate seeds (all on a line): no network
        return np.zeros((S, S))
    my, mx = 0.5 * (y0 + y1), 0.5 * (x0 + x1)
    L = np.hypot(y1 - y0, x1 - x0)
    ok = (c.outline.inside(y0, x0)[0] > 0.3 * um) & (c.outline.inside(y1, x1)[0] > 0.3 * um)
    ok &= (lookup(c.d_nuc, y0, x0) > 0) & (lookup(c.d_nuc, y1, x1) > 0)
    ok &= L < 2.5 * lookup(mesh, my, mx, c.cf) * um
    nn = lookup(near, my, mx, c.cf)
    ok &= rng.random(L.size) > drop_in + (drop_out - drop_in) * (1 - nn)
    y0, x0, y1, x1, my, mx, L = y0[ok], x0[ok], y1[ok], x1[ok], my[ok], mx[ok], L[ok]
    # tubules are not straight: bend each edge at its middle
    b = rng.normal(0, 0.12, L.size) * L
    ny, nx = (x1 - x0) / np.maximum(L, 1e-9), -(y1 - y0) / np.maximum(L, 1e-9)
    my, mx = my + b * ny, mx + b * nx
    layers = 0.3 + 0.7 * lookup(c.vol, my, mx) ** c.gamma  # more stacked ER where the cell is thick
    layers = layers * rng.lognormal(0, 0.3, layers.size)
    d = tub_um * um * np.concatenate([layers, layers])
    out = lines(S, np.concatenate([y0, my]), np.concatenate([x0, mx]), np.concatenate([my, y1]),
                np.concatenate([mx, x1]), d, tub_um * um)
    # small flat thickenings at some three-way junctions
    k = rng.random(y0.size) < rng.uniform(0.05, 0.3)
    D = rng.uniform(0.15, 0.4, k.sum()) * um
    out += stamp(S, y0[k], x0[k], layers[k] * tub_um * 1.5 * D * um, D / 2.5)
    return out


def _er(c: Cell, rng):
    S, um = c.S, c.um
    if c.state == "mitotic":
        m = rng.uniform(0.6, 1.2)
        net = _er_network(c, rng, np.ones_like(c.c_cyto), m, m, 5.0, 0.05, 0.15)
        lvl = _ref(c, net)
        tex = np.clip(1 + 0.4 * smooth_noise(rng, (S, S), max(0.15 * um, 0.5)), 0, None)
        struct = net + lvl * rng.uniform(0.2, 0.6) * c.vol * c.cell_f * (1 - c.nuc_f) * tex
        c.info["er"] = "mitotic"
        return struct, _cyto_bg(c, rng, over=0.0), loguniform(rng, 0.02, 0.2)
    marker = rng.uniform(0, 1)              # 0: tubule marker (mesh shows), 1: sheet marker (uniform)
    spread = rng.uniform(0, 1)              # 0: compact perinuclear cloud, 1: lacy, reaching the edge
    if c.line in ("epithelial", "hiPSC") or c.state == "rounded":
        spread *= 0.6
    lam = 2 + 10 * spread
    reach = (1 - spread) * rng.uniform(0.3, 2.5)
    region = (c.c_dedge > reach) * (c.c_dnuc < 4 + 40 * spread)
    net = _er_network(c, rng, region, rng.uniform(0.4, 0.9), rng.uniform(0.9, 1.8), lam,
                      rng.uniform(0.0, 0.15), rng.uniform(0.2, 0.55) - 0.15 * spread)
    lvl = _ref(c, net)
    if lvl <= 1e-9:
        lvl = 1.0
    dn_um = np.maximum(c.d_nuc, 0) * c.px
    w_sheet = rng.uniform(2, 8) * (0.6 + 0.8 * marker)
    sheet = np.exp(-dn_um / (w_sheet / 2)) * (1 - c.nuc_f) * c.cell_f
    fen = np.clip(1 + (0.5 - 0.3 * marker) * smooth_noise(rng, (S, S), max(0.15 * um, 0.5)), 0, None)
    # a few peripheral sheets (cisternae) in the lacy network
    n_ps = rng.poisson(4 * spread * (1 - marker) + 0.5)
    if n_ps:
        py, pxx = sample_cyto_points(rng, c, int(n_ps), c.c_vol)
        D = rng.uniform(1.0, 3.0, py.size) * um
        sheet = sheet + stamp(S, py, pxx, rng.uniform(0.3, 0.7, py.size) * np.pi * (D / 2) ** 2, D / 2.5)
    struct = net + lvl * (0.3 + 1.2 * marker) * rng.uniform(0.5, 1.0) * sheet * fen
    # the nuclear envelope: a thin bright ring
    sig = max(0.1 * um, 0.6)
    ne = np.exp(-0.5 * (c.d_nuc / sig) ** 2) / (np.sqrt(TWO_PI) * sig) * c.cell_f
    struct += lvl * rng.uniform(0.25, 0.7) * um * 0.35 * ne
    # ER above / below the nucleus in a widefield image
    over = rng.uniform(0.0, 0.3)
    struct += lvl * over * c.nuc_f * fen * 0.5
    c.info["er"] = f"marker={marker:.2f} spread={spread:.2f}"
    return struct, _cyto_bg(c, rng, over=over), loguniform(rng, 0.02, 0.25)


# ------------------------------------------------------------------------------------------ Golgi
def _golgi(c: Cell, rng, kind):
    """A juxtanuclear ribbon on the centrosome side: connected stacks with gaps, patches and
    vesicles. gpp130 (kind "gpp") tends to be more fragmented, wider and with more puncta."""
    S, um = c.S, c.um
    gpp = kind == "gpp"
    if c.state == "mitotic":                 # dispersed into a haze of small dots
        n = int(rng.integers(200, 700))
        y, x = sample_cyto_points(rng, c, n, c.c_vol)
        D = rng.uniform(0.2, 0.4, y.size) * um
        struct = stamp(S, y, x, rng.lognormal(0, 0.4, y.size) * np.pi * (D / 2) ** 2, D / 2.5)
        c.info["golgi"] = "mitotic haze"
        return struct, _cyto_bg(c, rng), loguniform(rng, 0.05, 0.3)
    p = [0.3, 0.42, 0.1, 0.18] if gpp else [0.35, 0.45, 0.08, 0.12]
    variant = str(rng.choice(["knot", "arc", "two", "fragmented"], p=p))
    if c.state == "rounded":
        variant = "knot"
    c.info["golgi"] = variant
    nuc = c.nuclei[0]
    circ = np.sqrt(nuc.area() * 4 * np.pi) * c.px          # um, nuclear circumference (approx.)
    gap_um = rng.uniform(0, 2.0 if gpp else 1.2)
    gapfrac = rng.uniform(0.08, 0.4) if gpp else rng.uniform(0.03, 0.3)
    spread = rng.uniform(1.0, 1.5) if gpp else rng.uniform(0.9, 1.2)
    centres = [c.psi] if variant != "two" else [c.psi - rng.uniform(0.4, 1.0), c.psi + rng.uniform(0.4, 1.0)]
    el_y, el_x, el_o = [], [], []
    struct = np.zeros((S, S))
    for a0 in centres:
        if variant == "knot":
            span_um, thick = rng.uniform(3, 6), rng.uniform(1.5, 3.5) * spread
        elif variant == "fragmented":
            span_um, thick = rng.uniform(0.3, 0.7) * circ, rng.uniform(2, 5) * spread
        else:
            span_um, thick = rng.uniform(0.2, 0.5) * circ, rng.uniform(0.8, 2.0) * spread
        span_um = min(span_um, 22.0) / np.sqrt(len(centres))
        span = span_um / circ * TWO_PI
        # the ribbon's centreline, hugging the nucleus, wobbling a little
        m = max(int(span_um / 0.25), 8)
        th = a0 + np.linspace(-0.5, 0.5, m) * span
        wob = np.cumsum(rng.normal(0, 0.12, m)) * um
        wob -= wob.mean()
        rr = nuc.radius(th) + (gap_um + thick / 2) * um + wob
        cy, cx = nuc.cy + rr * np.sin(th), nuc.cx + rr * np.cos(th)
        if variant != "fragmented":
            # continuous ribbon pieces separated by gaps
            keep = np.ones(m, bool)
            n_gap = rng.poisson(gapfrac * span_um / 0.8)
            for g in rng.integers(0, m, n_gap):
                keep[g: g + max(int(rng.uniform(0.3, 1.0) / 0.25), 1)] = False
            wr = rng.uniform(0.4, 0.8) * um * (1.3 if variant == "knot" else 1.0)
            conc = rng.uniform(0.6, 1.0)
            Y, X = cy[None, :], cx[None, :]
            struct += _curves(c, Y, X, keep[None, :], conc * wr, wr)
        # stacks across the ribbon's width
        area = span_um * thick
        n_el = int(area * (rng.uniform(1.0, 2.5) if gpp else rng.uniform(1.3, 3.0)))
        u = rng.integers(0, m, n_el)
        v = rng.uniform(-0.5, 0.5, n_el) * thick * um
        if variant == "fragmented":
            v = rng.normal(0, thick / 2, n_el) * um
        tang = th[u] + np.pi / 2
        el_y.append(cy[u] + v * np.sin(th[u]))
        el_x.append(cx[u] + v * np.cos(th[u]))
        el_o.append(tang + rng.normal(0, 0.3 if variant != "knot" else 1.0, n_el))
    y, x, o = (np.concatenate(v) for v in (el_y, el_x, el_o))
    ok = (c.outline.inside(y, x)[0] > 0.5 * um) & (c.nuc_dist(y, x) > 0)
    y, x, o = y[ok], x[ok], o[ok]
    n = y.size
    if n:
        L = rng.uniform(0.5, 1.5, n)
        bend = rng.normal(0, 0.15, n) * L * um
        dy, dx = np.sin(o) * L * um / 2, np.cos(o) * L * um / 2
        Y = np.stack([y - dy, y + bend * np.cos(o), y + dy], 1)
        X = np.stack([x - dx, x - bend * np.sin(o), x + dx], 1)
        w = rng.uniform(0.3, 0.5, n) * um
        conc = rng.lognormal(0, 0.35, n) * (0.8 if variant != "fragmented" else 1.0)
        struct += _curves(c, Y, X, np.ones_like(Y, bool), conc * w, w)
        k = rng.random(n) < rng.uniform(0.15, 0.35)                # bright patches
        D = rng.uniform(0.5, 1.5, k.sum()) * um
        struct += stamp(S, y[k], x[k], rng.uniform(0.5, 1.0, k.sum()) * np.pi * (D / 2) ** 2, D / 2.5)
        nv = int(rng.integers(5, 30) if gpp else rng.integers(3, 20))  # vesicles near the ribbon
        j = rng.integers(0, n, nv)
        a = rng.uniform(0, TWO_PI, nv)
        d = rng.uniform(0.8, 3.5, nv) * um
        vy, vx = y[j] + d * np.sin(a), x[j] + d * np.cos(a)
        okv = (c.outline.inside(vy, vx)[0] > 0) & (c.nuc_dist(vy, vx) > 0)
        D = rng.uniform(0.3, 0.5, okv.sum()) * um
        struct += stamp(S, vy[okv], vx[okv], rng.uniform(0.4, 1.0, okv.sum()) * np.pi * (D / 2) ** 2, D / 2.5)
    lvl = _ref(c, struct) if struct.any() else 1.0
    # peripheral puncta (gpp130 cycles through endosomes; giantin has few)
    npp = int(rng.integers(5, 45) if gpp else rng.integers(0, 20))
    py, pxx = sample_cyto_points(rng, c, npp, c.c_vol)
    D = rng.uniform(0.3, 0.5, py.size) * um
    struct += stamp(S, py, pxx, lvl * rng.uniform(0.1, 0.4, py.size) * np.pi * (D / 2) ** 2, D / 2.5)
    return struct, _cyto_bg(c, rng), loguniform(rng, 0.005, 0.12)


# ------------------------------------------------------------------------------------------ puncta
def _perinuclear_map(c: Cell, lam_um, side=0.0):
    cy, cx = _coarse_xy(c)
    m = np.exp(-c.c_dnuc / lam_um)
    if side and c.nuclei:
        n = c.nuclei[0]
        a = np.arctan2(cy - n.cy, cx - n.cx)
        m = m * (1 + side * np.cos(wrap(a - c.psi)))
    return m


def _endosome(c: Cell, rng):
    S, um = c.S, c.um
    area = _area_um2(c)
    variant = str(rng.choice(["dense", "sparse", "clustered"], p=[0.45, 0.3, 0.25]))
    n = int(loguniform(rng, 150, 500) if variant == "dense" else loguniform(rng, 50, 200))
    n = int(np.clip(n * np.clip(area / 600, 0.3, 2.5) ** 0.6, 30, 700))
    if c.state == "mitotic":
        w = c.c_vol * (1 + np.exp(-c.c_dnuc / 3))
        f_peri = 0.0
    else:
        w = c.c_vol ** 0.5 * np.clip(1 + 0.5 * smooth_noise(rng, c.c_cyto.shape, 3), 0.1, None)
        f_peri = rng.uniform(0, 0.5)
    n_peri = int(n * f_peri)
    y, x = sample_cyto_points(rng, c, n - n_peri, w)
    sig = rng.uniform(1.5, 4) * um
    py = c.centrosome[0] + rng.normal(0, sig, n_peri)
    pxx = c.centrosome[1] + rng.normal(0, sig, n_peri)
    ok = (c.outline.inside(py, pxx)[0] > 0.3 * um) & (lookup(c.d_nuc, py, pxx) > 0.2 * um)
    y, x = np.concatenate([y, py[ok]]), np.concatenate([x, pxx[ok]])
    if variant == "clustered" and y.size:
        k = rng.random(y.size) < 0.4
        m = rng.integers(2, 7, k.sum())
        cy, cx = np.repeat(y[k], m), np.repeat(x[k], m)
        cy, cx = cy + rng.normal(0, 0.5 * um, cy.size), cx + rng.normal(0, 0.5 * um, cx.size)
        y, x = np.concatenate([y, cy]), np.concatenate([x, cx])
    D = (rng.uniform(0.2, 0.6, y.size) if variant != "sparse" else rng.uniform(0.3, 0.6, y.size)) * um
    amt = rng.lognormal(0, 0.45, y.size) * np.pi * (D / 2) ** 2
    struct = stamp(S, y, x, amt, D / 2.5)
    c.info["endosome"] = f"{variant} n={y.size}"
    lvl = _ref(c, struct)
    tfr = rng.random() < 0.5
    if tfr:                                  # transferrin receptor: faint plasma membrane outline
        struct += lvl * rng.uniform(0.05, 0.2) * _cortex(c, rng, 0.3)
    return struct, _cyto_bg(c, rng, over=rng.uniform(0.02, 0.15)), loguniform(rng, 0.02, 0.3 if tfr else 0.15)


def _lysosome(c: Cell, rng):
    S, um = c.S, c.um
    area = _area_um2(c)
    variant = str(rng.choice(["perinuclear", "dispersed", "peripheral", "few-large"], p=[0.5, 0.25, 0.1, 0.15]))
    if c.state != "interphase":
        variant = "dispersed" if c.state == "mitotic" else "perinuclear"
    n = int(loguniform(rng, 30, 80) if variant == "few-large" else loguniform(rng, 60, 300))
    n = int(np.clip(n * np.clip(area / 600, 0.3, 2.5) ** 0.6, 20, 450))
    if variant == "perinuclear":
        w = 0.15 + _perinuclear_map(c, rng.uniform(1.5, 4.0), side=rng.uniform(0, 0.8)) * rng.uniform(3, 12)
    elif variant == "peripheral":
        w = 0.3 + np.exp(-c.c_dedge / 3.0)
    elif c.state == "mitotic":
        w = c.c_vol * (1 + 2 * np.exp(-c.c_dnuc / 3))
    else:
        w = 0.5 + _perinuclear_map(c, 5.0)
    y, x = sample_cyto_points(rng, c, n, w)
    med = rng.uniform(0.9, 1.3) if variant == "few-large" else rng.uniform(0.55, 0.9)
    D = np.clip(rng.lognormal(np.log(med), 0.3, y.size), 0.5, 1.5) * um
    amt = rng.lognormal(0, 0.4, y.size) * np.pi * (D / 2) ** 2 * 1.5
    ring = (D * c.px > 0.8) & (D > 3.5) & (rng.random(y.size) < 0.8)
    struct = stamp(S, y[~ring], x[~ring], amt[~ring], D[~ring] / 2.5)
    if ring.any():
        struct += stamp(S, y[ring], x[ring], amt[ring], D[ring] / 2 - max(0.06 * um, 0.35), kind="ring",
                        ring_w=max(0.08 * um, 0.45), fill=rng.uniform(0.05, 0.4))
    c.info["lysosome"] = f"{variant} n={y.size}"
    return struct, _cyto_bg(c, rng, over=rng.uniform(0.02, 0.15)), loguniform(rng, 0.01, 0.2)


# ------------------------------------------------------------------------------------------ mitochondria
def _mitochondria(c: Cell, rng):
    S, um = c.S, c.um
    area = _area_um2(c)
    elong = c.info.get("axis_ratio", 1.0) < 0.6
    if c.state == "mitotic":
        variant = "fragmented"
    elif c.state == "rounded":
        variant = str(rng.choice(["clump", "fragmented"]))
    else:
        variant = str(rng.choice(["network", "tubular", "fragmented", "clump"],
                                 p=[0.4, 0.25, 0.15, 0.2] if elong else [0.45, 0.15, 0.18, 0.22]))
    c.info["mitochondria"] = variant
    total_um = area * rng.uniform(0.35, 0.8) * (1.4 if variant == "clump" else 1.0)
    mean_len = {"network": rng.uniform(3, 7), "tubular": rng.uniform(4, 9), "fragmented": rng.uniform(0.8, 2.0),
                "clump": rng.uniform(1.5, 4)}[variant]
    n = int(np.clip(total_um / mean_len, 15, 500))
    lam = {"clump": rng.uniform(1.5, 3.5)}.get(variant, rng.uniform(3, 9))
    if c.state == "mitotic":
        w = c.c_vol * (1 + 2 * np.exp(-c.c_dnuc / 3))
    else:
        w = 0.08 + np.exp(-c.c_dnuc / lam)
    y, x = sample_cyto_points(rng, c, n, w)
    n = y.size
    if n == 0:
        return np.zeros((S, S)), _cyto_bg(c, rng), 0.05
    step = 0.3
    L = np.clip(rng.lognormal(np.log(mean_len), 0.5, n), 0.5, 10)
    th = rng.uniform(0, TWO_PI, n)
    if variant == "tubular" and elong:
        th = c.axis + rng.normal(0, 0.25, n) + np.pi * (rng.random(n) < 0.5)
    kappa = (0.15 if variant == "tubular" else rng.uniform(0.3, 0.6)) * np.sqrt(step)
    ns = int(np.ceil(L.max() / step))
    Y, X, A = _walk(c, rng, y, x, th, ns, step * um, kappa, avoid_nucleus=True, edge="reflect", margin_um=0.4)
    A &= (np.arange(ns + 1) * step)[None, :] <= L[:, None]
    wmean = rng.uniform(0.3, 0.7)
    wid = np.clip(wmean * rng.uniform(0.8, 1.2, n), 0.3, 0.7) * um
    conc = rng.lognormal(0, 0.25, n)
    struct = _curves(c, Y, X, A, conc * wid * 0.8, wid)
    if variant == "network":                 # branches from the tubules
        nb = int(n * rng.uniform(0.3, 0.8))
        i = rng.integers(0, n, nb)
        j = (rng.random(nb) * np.maximum((L[i] / step).astype(int), 1)).astype(int)
        by, bx = Y[i, j], X[i, j]
        dth = np.arctan2(Y[i, np.minimum(j + 1, ns)] - by, X[i, np.minimum(j + 1, ns)] - bx)
        bth = dth + rng.choice([-1, 1], nb) * rng.uniform(1.1, 2.0, nb)
        Lb = rng.uniform(1, 4, nb)
        nsb = int(np.ceil(Lb.max() / step))
        Yb, Xb, Ab = _walk(c, rng, by, bx, bth, nsb, step * um, kappa, avoid_nucleus=True, edge="reflect",
                           margin_um=0.4)
        Ab &= (np.arange(nsb + 1) * step)[None, :] <= Lb[:, None]
        struct += _curves(c, Yb, Xb, Ab, conc[i] * wid[i] * 0.8, wid[i])
    if variant in ("fragmented", "clump"):   # round fragments
        nd = int(n * rng.uniform(0.3, 1.0))
        dy, dx = sample_cyto_points(rng, c, nd, w)
        D = rng.uniform(0.5, 1.0, dy.size) * um
        struct += stamp(S, dy, dx, rng.lognormal(0, 0.25, dy.size) * 0.8 * np.pi * (D / 2) ** 2, D / 2,
                        kind="disc")
    return struct, _cyto_bg(c, rng, over=rng.uniform(0.02, 0.2)), loguniform(rng, 0.01, 0.2)


# ------------------------------------------------------------------------------------------ nuclear classes
def _nucleolus(c: Cell, rng):
    S, um = c.S, c.um
    if c.state == "mitotic":
        coat = rng.random() < 0.6
        c.info["nucleolus"] = "perichromosomal" if coat else "diffuse"
        struct = ndi.gaussian_filter(c.chrom, max(0.3 * um, 0.5)) if coat else np.zeros((S, S))
        bg = c.vol * c.cell_f
        return struct, bg, (loguniform(rng, 0.1, 0.4) if coat else 1.0)
    nucleolin = rng.random() < 0.5
    c.info["nucleolus"] = "nucleolin" if nucleolin else "fibrillarin"
    nl = c.nl_f.astype(np.float64)
    inner = ndi.gaussian_filter(nl, max(0.35 * um, 0.5))
    struct = nl * (1 + rng.uniform(0, 0.6) * np.clip(1 - inner, 0, 1))
    struct *= np.clip(1 + 0.15 * smooth_noise(rng, (S, S), max(0.15 * um, 0.5)), 0, None)
    fy, fx, fd = [], [], []
    for body in c.nucleoli:
        cy, cx, r = body[0]
        k = int(rng.integers(0, 9))
        a = rng.uniform(0, TWO_PI, k)
        rr = np.sqrt(rng.random(k)) * r * 0.75
        fy.append(cy + rr * np.sin(a))
        fx.append(cx + rr * np.cos(a))
        fd.append(rng.uniform(0.3, 0.7, k) * um)
    if fy:
        fy, fx, fd = np.concatenate(fy), np.concatenate(fx), np.concatenate(fd)
        fc = stamp(S, fy, fx, np.pi * (fd / 2) ** 2, fd / 2, kind="disc")
        struct *= 1 - rng.uniform(0.3, 0.7) * np.clip(fc, 0, 1)
    plasm = rng.uniform(0.12, 0.25) if nucleolin else rng.uniform(0.05, 0.12)
    tex = np.clip(1 + 0.2 * smooth_noise(rng, (S, S), max(0.2 * um, 0.5)), 0, None)
    struct = struct + plasm * c.nuc_f * (1 - nl) * tex
    bg = c.vol ** c.gamma * c.cell_f * (1 - c.nuc_f)
    return struct, bg, loguniform(rng, 0.005, 0.05)


def _nucleus(c: Cell, rng):
    S, um = c.S, c.um
    dna_like = rng.random() < 0.5
    c.info["nucleus"] = "dna stain" if dna_like else "nucleoplasmic protein"
    if dna_like:
        struct = c.dna.astype(np.float64) * np.clip(1 + 0.05 * smooth_noise(rng, (S, S), 1.0), 0, None)
        return struct, c.vol * c.cell_f * (1 - c.nuc_f), loguniform(rng, 0.001, 0.02)
    if c.state == "mitotic":                 # no envelope: spread through the cell, off the chromosomes
        struct = c.vol * c.cell_f * (1 - rng.uniform(0.3, 0.8) * c.nuc_f)
        return struct, c.cell_f, 0.0
    speck = rng.uniform(0, 0.4)
    fill = 1 + rng.uniform(0.05, 0.2) * smooth_noise(rng, (S, S), 1.5 * um)
    fill = fill + speck * smooth_noise(rng, (S, S), max(0.1 * um, 0.5))
    d_in = np.maximum(-c.d_nuc, 0)
    fill *= 1 + rng.uniform(-0.3, 0.5) * np.exp(-d_in / max(0.4 * um, 0.7))
    struct = np.clip(fill, 0.05, None) * c.nuc_f * (1 - rng.uniform(0.0, 0.95) * c.nl_f)
    return struct, c.vol ** c.gamma * c.cell_f * (1 - c.nuc_f), loguniform(rng, 0.005, 0.06)


_DRAW = {
    "ActinFilaments": _actin,
    "Microtubules": _microtubules,
    "ER": _er,
    "Golgi_gia": lambda c, rng: _golgi(c, rng, "gia"),
    "Golgi_gpp": lambda c, rng: _golgi(c, rng, "gpp"),
    "Endosome": _endosome,
    "Lysosome": _lysosome,
    "Mitochondria": _mitochondria,
    "Nucleolus": _nucleolus,
    "Nucleus": _nucleus,
}
assert set(_DRAW) == set(CLASSES)


def render(cls: str, rng: np.random.Generator, *, size: int, diameter: float) -> RenderedCell:
    """One cell of class ``cls`` as a noise-free specimen on a ``size`` x ``size`` grid."""
    return _render(cls, rng, size=size, diameter=diameter)


def _render(cls, rng, *, size, diameter, state=None) -> RenderedCell:
    """``render``, optionally forcing the cell state (for inspection and tests)."""
    if cls not in _DRAW:
        raise InputError(f"indep_b cannot draw class {cls!r}: give one of {', '.join(CLASSES)}.")
    if not (np.isfinite(diameter) and 48 <= diameter):
        raise InputError(f"indep_b: diameter {diameter!r} px is too small to draw a cell; give 48 px or more "
                         "(80-400 in practice).")
    if int(size) != size or size < 1.25 * diameter:
        raise InputError(f"indep_b: size {size!r} must be a whole number >= 1.25 x diameter "
                         f"({1.25 * diameter:.0f} px here); give a larger size or a smaller diameter.")
    c = make_cell(rng, int(size), float(diameter), state)
    expr = loguniform(rng, 0.35, 2.5) * (rng.uniform(1.2, 1.8) if c.state != "interphase" else 1.0)
    struct, bg, b = _DRAW[cls](c, rng)
    struct = np.maximum(struct, 0)
    s_ref = _ref(c, struct)
    b_ref = float(bg[c.cell].max()) if c.cell.any() else 1.0
    prot = struct / s_ref + b * bg / max(b_ref, 1e-9)
    prot = prot * c.support
    prot = prot * (expr / _ref(c, prot))
    top = float(prot.max())
    if top > 10:
        prot *= 10 / top
    c.info.update(cls=cls, expression=round(float(expr), 3), background=round(float(b), 4))
    size = int(size)
    out = [np.zeros((size, size), np.float32), np.zeros((size, size), np.float32),
           np.zeros((size, size), bool), np.zeros((size, size), bool)]
    win = (slice(c.win[0], c.win[0] + c.S), slice(c.win[1], c.win[1] + c.S))
    for o, a in zip(out, (prot, c.dna, c.cell, c.nucleus)):
        o[win] = a
    return RenderedCell(protein=out[0], dna=out[1], cell=out[2], nucleus=out[3], pixel_size_um=float(c.px),
                        state=c.state, info=c.info)
