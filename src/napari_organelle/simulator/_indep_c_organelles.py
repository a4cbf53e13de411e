"""The protein channel of the ten classes for the ``indep_c`` renderer.

Each drawer takes the class-independent cell (``_indep_c_cell.Geo``), the generator and the DNA
image and returns ``(structure, background kind, background level, info)``. Structures are in the
brightness units of ``_indep_c_draw`` (a typical single structure ~1 after a nominal PSF); the
background level is in the same units (docs/biology.md: from almost nothing to a third of the
structure's brightness).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import Delaunay, cKDTree

from ._indep_c_cell import wrap
from ._indep_c_draw import (
    PSF_UM,
    blobs,
    blur,
    dot_peak,
    draw_paths,
    draw_segments,
    field,
    line_density,
    lookup,
    sample_points,
    walk,
)


def _z(g):
    return np.zeros((g.h, g.w), np.float32)


def _cyto(g):
    """Cytoplasm weight: cell minus nucleus (anti-aliased)."""
    return np.clip(g.cell_aa - g.nuc_aa, 0, 1)


def _pick(rng, options):
    names = list(options)
    p = np.array([options[k] for k in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _area_um2(g):
    return float(g.cell_aa.sum()) * g.p * g.p


def _inside(g, y, x, margin_um=0.2, nucleus=None):
    """Keep mask for points inside the cell (``margin_um`` from the edge) and, with ``nucleus`` a
    distance in um, that far outside the nucleus (negative: allowed that far over it)."""
    ok = lookup(g.d_edge, y, x) > margin_um / g.p
    if nucleus is not None:
        ok &= lookup(g.dn, y, x) > nucleus / g.p
    return ok


def _nuc_centre(g):
    if g.nuclei:
        return g.nuclei[0].oy, g.nuclei[0].ox
    return g.plate


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _chords(dfield, cy, cx, th, off, margin, M=160):
    """Chord of each line (angle ``th``, through (cy, cx) shifted ``off`` across) inside the region
    ``dfield > margin``, on the run containing the line's central point."""
    h, w = dfield.shape
    Lh = np.hypot(h, w) / 2
    t = np.linspace(-Lh, Lh, M)
    uy, ux = np.sin(th), np.cos(th)
    py, px = np.cos(th), -np.sin(th)
    oy = cy + off * py
    ox = cx + off * px
    Y = oy[:, None] + t[None, :] * uy[:, None]
    X = ox[:, None] + t[None, :] * ux[:, None]
    ins = lookup(dfield, Y, X) > margin
    c = M // 2
    left = ~ins[:, :c + 1]
    first = np.where(left.any(1), c - np.argmax(left[:, ::-1], 1) + 1, 0)
    right = ~ins[:, c:]
    last = np.where(right.any(1), c + np.argmax(right, 1) - 1, M - 1)
    ok = ins[:, c] & (last > first)
    r = np.arange(th.size)
    first = np.clip(first, 0, M - 1)
    last = np.clip(last, 0, M - 1)
    return Y[r, first], X[r, first], Y[r, last], X[r, last], ok


def _bow(ay, ax, by, bx, kappa, n=9):
    """Polylines (n points) from a to b bowed sideways by kappa x length."""
    t = np.linspace(0, 1, n)[:, None]
    L = np.hypot(by - ay, bx - ax)
    py, px = (bx - ax) / (L + 1e-9), -(by - ay) / (L + 1e-9)
    s = (kappa * L)[None, :] * 4 * t * (1 - t)
    Y = ay[None, :] + t * (by - ay)[None, :] + s * py[None, :]
    X = ax[None, :] + t * (bx - ax)[None, :] + s * px[None, :]
    return np.stack([Y, X], -1)


def _bezier(a, c, b, n=12):
    t = np.linspace(0, 1, n)[:, None, None]
    return (1 - t) ** 2 * a[None] + 2 * t * (1 - t) * c[None] + t * t * b[None]


# ================================================================ ActinFilaments

def actin(g, rng, dna):
    p = g.p
    S = _z(g)
    info = {}
    d = g.d_um
    if g.state != "interphase":
        info["variant"] = "cortex ring"
        S += rng.uniform(1.0, 1.7) * np.exp(-d / rng.uniform(0.3, 0.8)) * g.cell_aa
        S += rng.uniform(0.05, 0.2) * g.h_rel * (1 - 0.5 * g.nuc_aa)
        if g.bridge is not None:  # contractile ring / furrow at the intercellular bridge
            ay, ax, by, bx, r = g.bridge
            my, mx = (ay + by) / 2, (ax + bx) / 2
            blobs(S, my, mx, 1.2 / p, r * 0.8, np.arctan2(by - ay, bx - ax) + np.pi / 2, rng.uniform(1.5, 3))
        return S, "cyto", rng.uniform(0.02, 0.15), info
    v = _pick(rng, {"hela": {"few fibres": .45, "cortex": .25, "ruffling": .2, "fibre-rich": .1},
                    "spread": {"fibre-rich": .65, "ruffling": .25, "few fibres": .1},
                    "epithelial": {"cortex": .55, "few fibres": .3, "ruffling": .15},
                    "stem": {"cortex": .75, "few fibres": .25}}[g.line])
    info["variant"] = v
    # cortex along the membrane; contacts with neighbours as a sharp bright line
    bc = {"cortex": (0.9, 1.6), "fibre-rich": (0.25, 0.7), "few fibres": (0.4, 1.0), "ruffling": (0.4, 0.9)}[v]
    S += rng.uniform(*bc) * np.exp(-d / rng.uniform(0.3, 1.0)) * g.cell_aa
    if g.clips:
        yy = np.arange(g.h, dtype=np.float32)[:, None]
        xx = np.arange(g.w, dtype=np.float32)[None, :]
        near = np.exp(-0.5 * (d / 0.4) ** 2)
        for ny, nx, dd in g.clips:
            dl = (dd - (ny * yy + nx * xx)) * np.float32(p)
            S += rng.uniform(1.0, 2.5) * np.exp(-0.5 * (dl / 0.18) ** 2) * near * g.cell_aa
    # diffuse meshwork, dimmer over the nucleus
    mesh = np.clip(1 + 0.5 * field((g.h, g.w), 0.15 / p, rng), 0, None)
    S += (rng.uniform(0.03, 0.12) if v == "cortex" else rng.uniform(0.05, 0.2)) * mesh * g.cell_aa * \
        (1 - rng.uniform(0.3, 0.7) * g.nuc_aa)
    # lamellipodium, ruffles and transverse arcs at the leading edge
    if v == "ruffling" or rng.random() < (0.35 if v == "fibre-rich" else 0.15):
        cy, cx = g.centroid
        th = np.arctan2(np.arange(g.h, dtype=np.float32)[:, None] - cy, np.arange(g.w, dtype=np.float32)[None, :] - cx)
        sw = rng.uniform(0.5, 1.1)
        sector = np.exp(-0.5 * (wrap(th - g.front) / sw) ** 2).astype(np.float32)
        lam = np.clip(1 + 0.6 * field((g.h, g.w), 0.12 / p, rng), 0, None)
        bl = rng.uniform(0.9, 1.7) if v == "ruffling" else rng.uniform(0.5, 1.1)
        S += bl * sector * _sigmoid((rng.uniform(2, 5) - d) / 0.5) * lam * g.cell_aa
        along = np.clip(1 + 0.8 * field((g.h, g.w), 1.0 / p, rng), 0, None)
        for _ in range(int(rng.integers(1, 4))):
            dr, sr = rng.uniform(0.3, 2.5), rng.uniform(0.15, 0.3)
            S += rng.uniform(0.4, 1.1) * sector * np.exp(-0.5 * ((d - dr) / sr) ** 2) * along * g.cell_aa
        if rng.random() < 0.5:  # transverse arcs: a few broken bundles parallel to the edge
            for _ in range(int(rng.integers(1, 4))):
                da, sa = rng.uniform(3, 9), rng.uniform(0.12, 0.25)
                brk = np.clip(field((g.h, g.w), rng.uniform(1.5, 4) / p, rng) + 0.3, 0, 1)
                S += rng.uniform(0.4, 0.9) * sector * np.exp(-0.5 * ((d - da) / sa) ** 2) * brk * \
                    g.cell_aa * (1 - g.nuc_aa)
        info["lamellipodium"] = True
    level = rng.uniform(0.02, 0.12) if v == "cortex" else rng.uniform(0.02, 0.2)
    # stress fibres ending in focal adhesions
    nf = {"fibre-rich": rng.integers(30, 81), "few fibres": rng.integers(0, 11), "cortex": rng.integers(0, 5),
          "ruffling": rng.integers(0, 9)}[v]
    nf = int(nf)
    info["stress_fibres"] = nf
    if nf:
        _stress_fibres(g, rng, S, nf)
    # actin cap over the nucleus
    if v in ("fibre-rich", "few fibres") and rng.random() < 0.25:
        n0 = g.nuclei[0]
        k = int(rng.integers(3, 11))
        th = float(rng.normal(g.long_axis, 0.2))
        rr = np.sqrt(n0.area() / np.pi)
        ay, ax, by, bx, ok = _chords(-g.dn, n0.oy, n0.ox, np.full(k, th), rng.uniform(-0.8, 0.8, k) * rr, 0.3 / p)
        ay, ax, by, bx = ay[ok], ax[ok], by[ok], bx[ok]
        draw_segments(S, ay, ax, by, bx, line_density(rng.uniform(0.5, 1.0, ay.size), 0.3), p)
        info["actin_cap"] = int(ok.sum())
    # filopodia
    if g.filo is not None:
        f = g.filo
        draw_segments(S, f[:, 0], f[:, 1], f[:, 2], f[:, 3], line_density(rng.uniform(0.8, 1.6, len(f)), 0.15), p)
        tip = rng.random(len(f)) < 0.5
        blobs(S, f[tip, 2], f[tip, 3], 0.15 / p, 0.15 / p, 0.0, dot_peak(rng.uniform(0.8, 1.5, tip.sum()), 0.15))
    # podosomes
    if g.line in ("hela", "spread") and rng.random() < 0.12:
        n = int(rng.integers(20, 151))
        cy, cx = sample_points(_cyto(g) * (g.d_um > 1), 1, rng)
        if cy.size:
            rad = rng.uniform(3, 8) / p
            if rng.random() < 0.4:  # rosette
                a = rng.uniform(-np.pi, np.pi, n)
                r = rad * rng.uniform(0.8, 1.0, n)
            else:
                a = rng.uniform(-np.pi, np.pi, n)
                r = rad * np.sqrt(rng.random(n))
            y, x = cy[0] + r * np.sin(a), cx[0] + r * np.cos(a)
            ok = _inside(g, y, x, 0.5)
            sg = rng.uniform(0.2, 0.4, ok.sum()) / p
            blobs(S, y[ok], x[ok], sg, sg, 0.0, dot_peak(rng.uniform(0.8, 1.8, ok.sum()), sg * p))
            info["podosomes"] = int(ok.sum())
    return S, "cyto", level, info


def _stress_fibres(g, rng, S, nf):
    p = g.p
    cy, cx = g.centroid
    th0 = (g.front if g.has_front and rng.random() < 0.6 else g.long_axis) + rng.normal(0, 0.12)
    # the cell's width across the fibre direction
    wy1, wx1, wy2, wx2, ok = _chords(g.d_edge, cy, cx, np.array([th0 + np.pi / 2]), np.zeros(1), 0.5 / p)
    half = 0.5 * np.hypot(wy2 - wy1, wx2 - wx1)[0] if ok[0] else 0.3 * min(g.h, g.w)
    mode = _pick(rng, {"parallel": .5, "fan": .25, "crossing": .25})
    off = rng.uniform(-0.95, 0.95, nf) * half
    if mode == "fan":
        th = th0 + off / max(half, 1) * rng.uniform(0.2, 0.6) + rng.normal(0, 0.05, nf)
    else:
        th = th0 + rng.normal(0, rng.uniform(0.03, 0.15), nf)
        if mode == "crossing":
            k = rng.random(nf) < 0.35
            th[k] = th0 + rng.choice([-1, 1]) * rng.uniform(0.6, 1.5) + rng.normal(0, 0.08, k.sum())
    margin = rng.uniform(0.4, 1.2) / p
    ay, ax, by, bx, ok = _chords(g.d_edge, cy, cx, th, off, margin)
    L = np.hypot(by - ay, bx - ax)
    ventral = rng.random(nf) < 0.6
    # dorsal fibres: anchored at one end, 5-25 um long
    Ld = np.minimum(rng.uniform(5, 25, nf) / p, L)
    flip = rng.random(nf) < 0.5
    sy, sx = np.where(flip, by, ay), np.where(flip, bx, ax)
    ey, ex = np.where(flip, ay, by), np.where(flip, ax, bx)
    fr = Ld / np.maximum(L, 1e-9)
    ey = np.where(ventral, ey, sy + (ey - sy) * fr)
    ex = np.where(ventral, ex, sx + (ex - sx) * fr)
    tr = np.where(ventral, rng.uniform(0, 0.08, nf), 0.0)
    sy, sx, ey, ex = sy + (ey - sy) * tr, sx + (ex - sx) * tr, ey + (sy - ey) * tr, ex + (sx - ex) * tr
    L = np.hypot(ey - sy, ex - sx)
    ok &= L * p >= 5
    if not ok.any():
        return
    sy, sx, ey, ex, ventral = sy[ok], sx[ok], ey[ok], ex[ok], ventral[ok]
    n = sy.size
    wid = np.clip(rng.lognormal(np.log(0.4), 0.45, n), 0.2, 1.0)
    B = rng.uniform(0.5, 1.3, n) * (wid / 0.4) ** 0.5
    P = _bow(sy, sx, ey, ex, rng.normal(0, 0.02, n))
    alive = np.ones(P.shape[:2], bool)
    wf = ((1 - rng.uniform(0.0, 0.4) * g.nuc_aa) *
          np.clip(1 + 0.35 * field((g.h, g.w), 1.5 / p, rng), 0.2, None)).astype(np.float32)
    thin = wid < 0.5
    draw_paths(S, P[:, thin], alive[:, thin], line_density(B[thin], wid[thin]), p, wf)
    if (~thin).any():
        lay = _z(g)
        draw_paths(lay, P[:, ~thin], alive[:, ~thin], line_density(B[~thin], wid[~thin]), p, wf)
        S += blur(lay, float(np.mean(wid[~thin])) / 2.355 / p)
    # focal adhesions at the ends near the periphery
    Lf = rng.uniform(1.2, 5, 2 * n) / p
    ys = np.concatenate([sy, ey])
    xs = np.concatenate([sx, ex])
    uy = np.concatenate([ey - sy, sy - ey])
    ux = np.concatenate([ex - sx, sx - ex])
    un = np.hypot(uy, ux) + 1e-9
    uy, ux = uy / un, ux / un
    has = np.concatenate([np.ones(n, bool), ventral]) & (lookup(g.d_um, ys, xs) < 3.0)
    has &= rng.random(2 * n) < 0.85
    fy = ys + uy * Lf * 0.45
    fx = xs + ux * Lf * 0.45
    ss = rng.uniform(0.12, 0.22, 2 * n)
    pk = rng.uniform(1.5, 3.0, 2 * n) * np.sqrt(ss ** 2 + PSF_UM ** 2) / ss
    blobs(S, fy[has], fx[has], (Lf / 3.5)[has], (ss / p)[has], np.arctan2(uy, ux)[has], pk[has])


# ================================================================ Microtubules

def microtubules(g, rng, dna):
    p = g.p
    S = _z(g)
    info = {}
    if g.state == "mitotic":
        _spindle(g, rng, S, info)
        return S, "cyto", rng.uniform(0.05, 0.25), info
    if g.state == "rounded":
        v = "radial"
    else:
        v = _pick(rng, {"hela": {"radial": .5, "meshwork": .3, "bundled": .2},
                        "spread": {"radial": .35, "parallel": .35, "meshwork": .2, "bundled": .1},
                        "epithelial": {"radial": .5, "meshwork": .35, "bundled": .15},
                        "stem": {"radial": .5, "meshwork": .5}}[g.line])
    info["variant"] = v
    area = _area_um2(g)
    n = int(np.clip(area * rng.uniform(0.25, 0.6), 100, 600))
    cyto = _cyto(g) * g.h_rel
    L = rng.uniform(10, 40, n)
    if g.state == "rounded":
        L = rng.uniform(4, 14, n)
    ds_um = 0.5
    steps = np.maximum(2, np.round(L / ds_um)).astype(int)
    sy, sx = g.centrosomes[0]
    if v in ("radial", "bundled"):
        fc = rng.uniform(0.6, 0.9)
    else:
        fc = rng.uniform(0.0, 0.25)
    nc = int(n * fc)
    ry, rx = sample_points(cyto, n - nc, rng)
    y0 = np.concatenate([sy + rng.normal(0, 0.4 / p, nc), ry])
    x0 = np.concatenate([sx + rng.normal(0, 0.4 / p, nc), rx])
    th0 = rng.uniform(-np.pi, np.pi, y0.size)
    if v == "parallel":
        th0[nc:] = g.long_axis + rng.choice([0, np.pi], y0.size - nc) + rng.normal(0, 0.15, y0.size - nc)
    lp = {"radial": (15, 50), "parallel": (20, 60), "meshwork": (6, 15), "bundled": (2.5, 6)}[v]
    sig = np.sqrt(ds_um / rng.uniform(*lp, y0.size))
    P, A = walk(rng, y0, x0, th0, steps[:y0.size], ds_um / p, sig, g.d_edge, 1.5 / p, 0.3 / p,
                edge_stop=rng.uniform(0.08, 0.3))
    B = rng.lognormal(0, 0.25, y0.size)
    if v == "bundled":
        B *= np.where(rng.random(y0.size) < 0.4, rng.uniform(1.5, 3, y0.size), 1)
    wf = (1 - (1 - rng.uniform(0.15, 0.45)) * g.nuc_aa).astype(np.float32)
    draw_paths(S, P, A, line_density(B, 0.03), p, wf)
    info["n"] = int(y0.size)
    # crowded centre merging into haze; the MTOC
    S += rng.uniform(0, 0.4) * np.exp(-np.maximum(g.dn, 0) * (p / 3.0)) * _cyto(g) * g.h_rel
    if rng.random() < 0.6:
        sg = rng.uniform(0.25, 0.45)
        blobs(S, sy, sx, sg / p, sg / p, 0.0, dot_peak(rng.uniform(1.2, 3.0), sg))
        info["mtoc"] = True
    return S, "cyto", rng.uniform(0.05, 0.35), info


def _spindle(g, rng, S, info):
    p = g.p
    info["variant"] = "spindle" if g.phase != "telophase" else "midbody"
    if g.phase == "telophase":
        ay, ax, by, bx, r = g.bridge
        my, mx = (ay + by) / 2, (ax + bx) / 2
        ang = np.arctan2(by - ay, bx - ax)
        ln = rng.uniform(1.5, 3.5) / p
        for s in (-1, 1):  # two bright halves around the dark Flemming body
            blobs(S, my + s * 0.35 * ln * np.sin(ang), mx + s * 0.35 * ln * np.cos(ang), 0.25 * ln, 0.3 / p, ang,
                  rng.uniform(2, 4))
        for cy, cx in g.centrosomes:  # re-forming radial arrays in the daughters
            n = int(rng.integers(60, 150))
            L = rng.uniform(3, 10, n)
            steps = np.maximum(2, np.round(L / 0.5)).astype(int)
            P, A = walk(rng, cy + rng.normal(0, 0.3 / p, n), cx + rng.normal(0, 0.3 / p, n),
                        rng.uniform(-np.pi, np.pi, n), steps, 0.5 / p, np.sqrt(0.5 / 20), g.d_edge, 1.0 / p,
                        edge_stop=0.3)
            draw_paths(S, P, A, line_density(rng.lognormal(0, 0.25, n), 0.03), p)
        return
    (p1y, p1x), (p2y, p2x) = g.centrosomes
    cy, cx = g.plate
    ua = np.array([p2y - p1y, p2x - p1x])
    hl = np.hypot(*ua) / 2
    ua /= 2 * hl
    up = np.array([ua[1], -ua[0]])
    half_plate = rng.uniform(4, 7) / p
    for (qy, qx), s in (((p1y, p1x), -1), ((p2y, p2x), 1)):
        q = np.array([qy, qx])
        nk = int(rng.integers(25, 50))
        t = rng.uniform(-1, 1, nk) * half_plate
        if g.phase == "anaphase":
            tgt = np.array([cy, cx])[None] + t[:, None] * up[None] * 0.8 + s * ua[None] * hl * rng.uniform(0.3, 0.6)
        else:
            tgt = np.array([cy, cx])[None] + t[:, None] * up[None]
        mid = (q[None] + tgt) / 2
        ctrl = mid + (t[:, None] * up[None]) * rng.uniform(0.15, 0.4)
        P = _bezier(np.broadcast_to(q, tgt.shape), ctrl, tgt)
        draw_paths(S, P, np.ones(P.shape[:2], bool), line_density(rng.uniform(0.8, 1.8, nk), 0.1), p)
        # interpolar fibres overlapping in the midzone
        ni = int(rng.integers(8, 20))
        t2 = rng.uniform(-0.6, 0.6, ni) * half_plate
        end = np.array([cy, cx])[None] - s * ua[None] * hl * rng.uniform(0.1, 0.6, ni)[:, None] + t2[:, None] * up
        ctrl = (q[None] + end) / 2 + t2[:, None] * up * 0.4
        P = _bezier(np.broadcast_to(q, end.shape), ctrl, end)
        bi = rng.uniform(0.8, 1.5, ni) * (2.0 if g.phase == "anaphase" else 1.0)
        draw_paths(S, P, np.ones(P.shape[:2], bool), line_density(bi, 0.1), p)
        # astral microtubules
        na = int(rng.integers(15, 41))
        a = np.arctan2(-s * ua[0], -s * ua[1]) + rng.uniform(-1.8, 1.8, na)
        La = rng.uniform(2, 7, na) / p
        P = np.stack([qy + np.linspace(0, 1, 8)[:, None] * La * np.sin(a),
                      qx + np.linspace(0, 1, 8)[:, None] * La * np.cos(a)], -1)
        alive = lookup(g.d_edge, P[..., 0], P[..., 1]) > 0.3 / p
        alive = np.cumprod(alive, 0).astype(bool)
        draw_paths(S, P, alive, line_density(rng.uniform(0.5, 1.0, na), 0.03), p)
        sg = rng.uniform(0.3, 0.5)
        blobs(S, qy, qx, sg / p, sg / p, 0.0, dot_peak(rng.uniform(2, 4), sg))


# ================================================================ ER

def _voronoi_edges(pts):
    tri = Delaunay(pts)
    P = pts[tri.simplices]
    ay, ax = P[:, 0, 0], P[:, 0, 1]
    by, bx = P[:, 1, 0], P[:, 1, 1]
    cy, cx = P[:, 2, 0], P[:, 2, 1]
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    d = np.where(np.abs(d) < 1e-9, 1e-9, d)
    a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d
    uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d
    nb = tri.neighbors
    i = np.repeat(np.arange(nb.shape[0]), 3)
    j = nb.ravel()
    k = j > i
    i, j = i[k], j[k]
    return uy[i], ux[i], uy[j], ux[j]


def _er_network(g, rng, S, allowed, m_c, m_p, ell, drop0, drop1, B_t, wf, cap=2500):
    """Polygonal tubule network: Voronoi edges of seeds whose density follows the mesh size
    (``m_c`` um near the nucleus, ``m_p`` in the periphery)."""
    p = g.p
    dn_um = np.maximum(g.dn, 0) * p
    m = m_c + (m_p - m_c) * (1 - np.exp(-dn_um / ell))
    wgt = allowed / (m * m)
    tot = float(wgt[::3, ::3].sum()) * 9 * p * p
    n = int(min(cap, rng.poisson(max(tot, 1.0))))
    coarsen = np.sqrt(max(tot, 1.0) / max(n, 1))
    if n < 8:
        return 0
    y, x = sample_points(wgt, int(n * 1.6), rng)
    pts = np.stack([y, x], 1) + rng.uniform(-0.01, 0.01, (y.size, 2))
    # hard-core thinning: polygons of the ER are fairly even, not Poisson
    dmin = 0.55 * lookup(m, y, x) * coarsen / p
    dist, j = cKDTree(pts).query(pts, k=2)
    close = dist[:, 1] < dmin
    drop = close & (np.arange(y.size) > j[:, 1])
    pts = pts[~drop]
    if pts.shape[0] < 8:
        return 0
    ay, ax, by, bx = _voronoi_edges(pts)
    my, mx = (ay + by) / 2, (ax + bx) / 2
    L = np.hypot(by - ay, bx - ax) * p
    mloc = lookup(m, my, mx) * coarsen
    ok = (L < 2.2 * mloc) & (lookup(allowed, my, mx) > 0.3) & (lookup(allowed, ay, ax) > 0.05) & \
        (lookup(allowed, by, bx) > 0.05)
    pd = drop0 + drop1 * (1 - np.exp(-lookup(dn_um, my, mx) / ell))
    ok &= rng.random(ok.size) > pd
    ay, ax, by, bx = ay[ok], ax[ok], by[ok], bx[ok]
    # tubules are gently curved: bend each edge at a displaced midpoint
    k = rng.normal(0, 0.12, ay.size)
    cy = (ay + by) / 2 + k * (bx - ax)
    cx = (ax + bx) / 2 - k * (by - ay)
    lam = line_density(B_t * rng.uniform(0.7, 1.3, ay.size), 0.08)
    draw_segments(S, np.concatenate([ay, cy]), np.concatenate([ax, cx]), np.concatenate([cy, by]),
                  np.concatenate([cx, bx]), np.concatenate([lam, lam]), p, wf)
    return int(ay.size)


def er(g, rng, dna):
    p = g.p
    S = _z(g)
    info = {}
    cyto = _cyto(g)
    dn_um = np.maximum(g.dn, 0) * np.float32(p)
    if g.state == "mitotic":
        info["variant"] = "mitotic"
        allowed = g.cell_aa * (g.dn * p > 0.3) * (g.d_um > 0.2)
        wf = (0.5 + 0.5 * g.h_rel).astype(np.float32)
        info["tubules"] = _er_network(g, rng, S, allowed, rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.4), 3.0, 0.05,
                                      0.2, rng.uniform(0.6, 1.0), wf)
        gr = np.clip(1 + 0.7 * field((g.h, g.w), 0.2 / p, rng), 0, None)
        S += rng.uniform(0.3, 0.8) * gr * g.h_rel * allowed
        return S, "cyto", rng.uniform(0.05, 0.25), info
    v = "compact" if g.state == "rounded" else _pick(rng, {
        "hela": {"lacy": .35, "compact": .3, "sheets": .2, "grainy": .15},
        "spread": {"lacy": .55, "compact": .1, "sheets": .2, "grainy": .15},
        "epithelial": {"lacy": .2, "compact": .45, "sheets": .2, "grainy": .15},
        "stem": {"lacy": .1, "compact": .6, "sheets": .15, "grainy": .15}}[g.line])
    info["variant"] = v
    gap = rng.uniform(0, 1.5) if v in ("lacy", "grainy") else rng.uniform(0.5, 3)
    allowed = cyto * (g.d_um > gap) * (g.dn > 0)
    if v == "compact":
        reach = rng.uniform(3, 9)
        allowed = allowed * np.exp(-(dn_um / reach) ** 4)
        info["reach_um"] = round(reach, 1)
    m_c, m_p = rng.uniform(0.5, 1.0), rng.uniform(1.0, 2.0)
    ell = rng.uniform(2, 6)
    wf = (0.5 + 0.5 * g.h_rel).astype(np.float32)
    B_t = {"lacy": rng.uniform(0.8, 1.2), "compact": rng.uniform(0.6, 1.0), "sheets": rng.uniform(0.3, 0.6),
           "grainy": rng.uniform(0.4, 0.8)}[v]
    info["tubules"] = _er_network(g, rng, S, allowed, m_c, m_p, ell, rng.uniform(0, 0.08), rng.uniform(0.05, 0.3),
                                  B_t, wf)
    # perinuclear sheets: a nearly uniform bright zone 2-8 um wide
    ws = rng.uniform(4, 10) if v == "sheets" else rng.uniform(2, 8)
    Bs = {"lacy": rng.uniform(0.2, 0.6), "compact": rng.uniform(0.8, 1.6), "sheets": rng.uniform(0.8, 1.4),
          "grainy": rng.uniform(0.3, 0.8)}[v]
    fen = np.clip(1 + (0.15 if v == "sheets" else 0.35) * field((g.h, g.w), 0.2 / p, rng), 0, None)
    S += Bs * _sigmoid((ws - dn_um) / 0.8) * cyto * fen * (0.6 + 0.4 * g.h_rel) * (g.d_um > 0.5 * gap)
    # grainy unresolved tubules
    Bg = rng.uniform(0.3, 0.8) if v == "grainy" else rng.uniform(0, 0.2)
    gr = np.clip(1 + 0.7 * field((g.h, g.w), 0.2 / p, rng), 0, None)
    S += Bg * gr * g.h_rel * allowed
    # nuclear envelope ring, and ER above/below the nucleus
    sg = max(0.08, 0.5 * p)
    ne = rng.uniform(0.6, 1.5) * np.sqrt(sg ** 2 + PSF_UM ** 2) / sg
    S += ne * np.exp(-0.5 * (g.dn * np.float32(p / sg)) ** 2) * g.cell_aa
    S += rng.uniform(0, 0.2) * g.nuc_aa * np.clip(1 + 0.3 * gr, 0, None)
    return S, "cyto", rng.uniform(0.02, 0.25), info


# ================================================================ Golgi

def golgi(g, rng, dna, kind):
    p = g.p
    S = _z(g)
    info = {}
    gia = kind == "gia"
    if g.state == "mitotic":
        info["variant"] = "dispersed (mitotic)"
        n = int(rng.integers(200, 601))
        y, x = sample_points(g.h_rel * g.cell_aa * (g.dn * p > 0.3), n, rng)
        sg = rng.uniform(0.1, 0.2, y.size)
        blobs(S, y, x, sg / p, sg / p, 0.0, dot_peak(rng.uniform(0.3, 0.8, y.size), sg))
        if g.phase == "telophase":
            for cy, cx in g.centrosomes:
                k = int(rng.integers(5, 15))
                yy = cy + rng.normal(0, 1.0 / p, k)
                xx = cx + rng.normal(0, 1.0 / p, k)
                sg = rng.uniform(0.2, 0.4, k)
                blobs(S, yy, xx, sg / p, sg / p, 0.0, dot_peak(rng.uniform(0.6, 1.2, k), sg))
        S += rng.uniform(0.1, 0.3) * g.h_rel * g.cell_aa * (1 - 0.7 * g.nuc_aa)
        return S, "cyto", rng.uniform(0.02, 0.1), info
    v = _pick(rng, {"knot": .35, "arc": .45, "two clusters": .1, "dispersed": .1} if gia else
              {"knot": .25, "arc": .45, "two clusters": .12, "dispersed": .18})
    if g.state == "rounded":
        v = "knot"
    info["variant"] = v
    n0 = g.nuclei[0]
    phi0 = g.golgi_dir
    cont = rng.uniform(0.4, 1.0) if gia else rng.uniform(0.0, 0.5)
    drop = rng.uniform(0, 0.15) if gia else rng.uniform(0.1, 0.4)
    spread = rng.uniform(0.2, 0.6) if gia else rng.uniform(0.3, 1.0)
    ys, xs, ang, ln, B = [], [], [], [], []
    lines = []

    def arc(phic, width):
        nst = max(3, int(width * (float(n0.radius(phic)) * p + 1) / rng.uniform(0.7, 1.3)))
        ph = phic + np.linspace(-width / 2, width / 2, nst) + rng.normal(0, 0.3 * width / nst, nst)
        gap = rng.uniform(-0.2, 1.2) + 0.5 * field((nst, 1), 3, rng)[:, 0] * rng.uniform(0, 1)
        r = n0.radius(ph) + (np.maximum(gap, -0.3) + rng.normal(0, spread, nst)) / p
        ys.append(n0.oy + r * np.sin(ph))
        xs.append(n0.ox + r * np.cos(ph))
        ang.append(ph + np.pi / 2 + rng.normal(0, 0.3, nst))
        ln.append(rng.uniform(0.5, 1.5, nst))
        B.append(rng.lognormal(0, 0.35, nst))
        if cont > 0.05:
            phl = np.linspace(ph[0], ph[-1], 4 * nst)
            rl = np.interp(phl, ph, r)
            lines.append((n0.oy + rl * np.sin(phl), n0.ox + rl * np.cos(phl)))

    def knot(phic):
        nst = int(rng.integers(8, 26))
        sig = rng.uniform(0.8, 1.8) * (1 if gia else 1.3)
        dd = float(n0.radius(phic)) + rng.uniform(0.8, 2.0) / p
        cy, cx = n0.oy + dd * np.sin(phic), n0.ox + dd * np.cos(phic)
        ys.append(cy + rng.normal(0, sig / p, nst))
        xs.append(cx + rng.normal(0, sig / p, nst))
        ang.append(rng.uniform(-np.pi, np.pi, nst))
        ln.append(rng.uniform(0.5, 1.5, nst))
        B.append(rng.lognormal(0, 0.35, nst))

    if v == "arc":
        arc(phi0, rng.uniform(np.pi / 2, np.pi))
    elif v == "knot":
        knot(phi0)
        if rng.random() < 0.4:
            arc(phi0, rng.uniform(0.4, 0.9))
    elif v == "two clusters":
        for s in (-1, 1):
            ph = phi0 + s * rng.uniform(0.5, 1.2)
            knot(ph) if rng.random() < 0.5 else arc(ph, rng.uniform(0.4, 0.9))
    else:  # dispersed / fragmented
        nst = int(rng.integers(20, 61))
        ph = phi0 + rng.normal(0, rng.uniform(0.6, 1.5), nst)
        r = n0.radius(ph) + rng.uniform(0.3, rng.uniform(3, 8), nst) / p
        ys.append(n0.oy + r * np.sin(ph))
        xs.append(n0.ox + r * np.cos(ph))
        ang.append(rng.uniform(-np.pi, np.pi, nst))
        ln.append(rng.uniform(0.4, 1.0, nst))
        B.append(rng.lognormal(0, 0.35, nst))
    y, x = np.concatenate(ys), np.concatenate(xs)
    a, ln, B = np.concatenate(ang), np.concatenate(ln), np.concatenate(B)
    y, x = _pull_inside(g, n0, y, x)
    keep = (rng.random(y.size) > drop) & _inside(g, y, x, 0.3, -0.5)
    y, x, a, ln, B = y[keep], x[keep], a[keep], ln[keep], B[keep]
    ss = rng.uniform(0.15, 0.3, y.size)
    sl = ln / 2.5
    pk = B * np.sqrt(ss ** 2 + PSF_UM ** 2) / ss * np.sqrt(sl ** 2 + PSF_UM ** 2) / sl
    blobs(S, y, x, sl / p, ss / p, a, pk)
    info["stacks"] = int(y.size)
    for ly, lx in lines:
        ly, lx = _pull_inside(g, n0, ly, lx)
        lay = _z(g)
        draw_segments(lay, ly[:-1], lx[:-1], ly[1:], lx[1:], line_density(cont * rng.uniform(0.6, 1.0), 0.4), p)
        S += blur(lay, 0.35 / 2.355 / p) * g.cell_aa
    # vesicles near the Golgi, and peripheral puncta (more for gpp130)
    if y.size:
        nv = int(rng.integers(3, 16) if gia else rng.integers(8, 31))
        k = rng.integers(0, y.size, nv)
        r = rng.uniform(0.5, 3.0, nv) / p
        t = rng.uniform(-np.pi, np.pi, nv)
        vy, vx = y[k] + r * np.sin(t), x[k] + r * np.cos(t)
        ok = _inside(g, vy, vx, 0.2, 0.1)
        sg = rng.uniform(0.13, 0.21, ok.sum())
        blobs(S, vy[ok], vx[ok], sg / p, sg / p, 0.0, dot_peak(rng.uniform(0.3, 0.8, ok.sum()), sg))
    npp = int(rng.integers(0, 16) if gia else rng.integers(10, 61))
    py_, px_ = sample_points(_cyto(g) * g.h_rel, npp, rng)
    sg = rng.uniform(0.12, 0.18, py_.size)
    blobs(S, py_, px_, sg / p, sg / p, 0.0, dot_peak(rng.uniform(0.15, 0.45, py_.size), sg))
    return S, "cyto", rng.uniform(0.01, 0.12), info


def _pull_inside(g, n0, y, x):
    """Move points that fall outside the cell toward the nucleus centre."""
    y, x = y.copy(), x.copy()
    for _ in range(4):
        bad = lookup(g.d_edge, y, x) < 0.4 / g.p
        if not bad.any():
            break
        y[bad] = n0.oy + (y[bad] - n0.oy) * 0.9
        x[bad] = n0.ox + (x[bad] - n0.ox) * 0.9
    return y, x


def golgi_gia(g, rng, dna):
    return golgi(g, rng, dna, "gia")


def golgi_gpp(g, rng, dna):
    return golgi(g, rng, dna, "gpp")


# ================================================================ Endosome

def endosome(g, rng, dna):
    p = g.p
    S = _z(g)
    info = {}
    cyto = _cyto(g)
    mit = g.state == "mitotic"
    v = _pick(rng, {"scattered": .45, "sparse bright": .2, "dense fine": .2, "clustered": .15})
    info["variant"] = v
    scale = np.sqrt(_area_um2(g) / 600)
    n = {"scattered": rng.uniform(100, 350), "sparse bright": rng.uniform(50, 120), "dense fine": rng.uniform(300, 500),
         "clustered": rng.uniform(100, 300)}[v]
    n = int(np.clip(n * scale, 40, 600))
    excl = (g.dn * p > 0.3) if mit else (g.dn > 0)
    wsc = cyto * excl * g.h_rel ** rng.uniform(0.3, 1.0)
    if mit:
        wsc = g.cell_aa * excl * g.h_rel
    frac_pnc = 0.0 if mit else rng.uniform(0.1, 0.4)
    npn = int(n * frac_pnc)
    y, x = sample_points(wsc, n - npn, rng)
    if npn:
        sy, sx = g.centrosomes[0]
        sg = rng.uniform(1.5, 4) / p
        y = np.concatenate([y, sy + rng.normal(0, sg, npn)])
        x = np.concatenate([x, sx + rng.normal(0, sg, npn)])
    if v == "clustered":
        k = int(rng.integers(5, 20))
        cy, cx = sample_points(wsc, k, rng)
        m = int(rng.integers(3, 11))
        y = np.concatenate([y, np.repeat(cy, m) + rng.normal(0, 0.7 / p, k * m)])
        x = np.concatenate([x, np.repeat(cx, m) + rng.normal(0, 0.7 / p, k * m)])
    over = lookup(g.dn, y, x) <= 0
    keep = _inside(g, y, x, 0.1) & (~over | (rng.random(y.size) < 0.1))
    y, x, over = y[keep], x[keep], over[keep]
    dmu = {"sparse bright": (0.3, 0.6), "dense fine": (0.2, 0.4)}.get(v, (0.2, 0.6))
    sg = rng.uniform(*dmu, y.size) / 2.355
    B = rng.lognormal(0, 0.45, y.size) * (rng.uniform(1.2, 2.0) if v == "sparse bright" else 1.0)
    B = np.where(over, 0.4 * B, B)
    blobs(S, y, x, sg / p, sg / p, 0.0, dot_peak(B, sg))
    info["n"] = int(y.size)
    if not mit and rng.random() < 0.6:  # transferrin receptor at the plasma membrane
        S += rng.uniform(0.1, 0.35) * np.exp(-0.5 * (g.d_um / 0.15) ** 2) * g.cell_aa
        info["membrane"] = True
    return S, "cyto", rng.uniform(0.03, 0.25), info


# ================================================================ Lysosome

def lysosome(g, rng, dna):
    p = g.p
    S = _z(g)
    info = {}
    cyto = _cyto(g)
    mit = g.state == "mitotic"
    v = "crowded (mitotic)" if mit else _pick(rng, {"perinuclear": .55, "dispersed": .3, "peripheral": .15})
    info["variant"] = v
    scale = np.sqrt(_area_um2(g) / 600)
    n = int(np.clip(rng.uniform(30, 300) * scale, 25, 350))
    dn_um = np.maximum(g.dn, 0) * np.float32(p)
    if mit:
        w = g.cell_aa * (g.dn * p > 0.4) * np.exp(-dn_um / 4)
    elif v == "perinuclear":
        ell = rng.uniform(1.5, 4)
        w = cyto * (g.dn > 0) * (np.exp(-dn_um / ell) + rng.uniform(0.02, 0.15) * g.h_rel)
    elif v == "dispersed":
        w = cyto * (g.dn > 0) * g.h_rel ** 0.5
    else:
        w = cyto * (g.dn > 0) * (np.exp(-g.d_um / rng.uniform(2, 5)) + 0.05)
    y, x = sample_points(w, n, rng)
    keep = _inside(g, y, x, 0.3, 0.2 if not mit else 0.4)
    y, x = y[keep], x[keep]
    dia = np.clip(rng.lognormal(np.log(rng.uniform(0.6, 1.0)), 0.3, y.size), 0.4, 1.6)
    ring = (dia > 0.9) & (rng.random(y.size) < rng.uniform(0.15, 0.7))
    B = rng.lognormal(0, 0.35, y.size) * rng.uniform(1.2, 2.0)
    sgf = dia / 2.355
    blobs(S, y[~ring], x[~ring], sgf[~ring] / p, sgf[~ring] / p, 0.0, dot_peak(B[~ring], sgf[~ring]))
    sw = 0.12
    rr = (dia[ring] / 2 - sw)
    ell_ = rng.uniform(0.85, 1.0, ring.sum())
    blobs(S, y[ring], x[ring], sw / p / ell_, sw / p, rng.uniform(-np.pi, np.pi, ring.sum()),
          B[ring] * np.sqrt(sw ** 2 + PSF_UM ** 2) / sw * 0.8, ring=rr / p)
    info["n"], info["rings"] = int(y.size), int(ring.sum())
    if v == "perinuclear" and rng.random() < 0.6:  # crowded perinuclear cloud
        S += rng.uniform(0.1, 0.4) * np.exp(-dn_um / ell) * cyto * np.clip(
            1 + 0.6 * field((g.h, g.w), 0.4 / p, rng), 0, None)
    return S, "cyto", rng.uniform(0.02, 0.2), info


# ================================================================ Mitochondria

def mitochondria(g, rng, dna):
    p = g.p
    S = _z(g)
    info = {}
    mit = g.state == "mitotic"
    if mit:
        v = "fragmented"
    elif g.state == "rounded":
        v = _pick(rng, {"clump": .6, "fragmented": .4})
    else:
        v = _pick(rng, {"hela": {"network": .45, "fragmented": .2, "clump": .2, "parallel": .15},
                        "spread": {"network": .5, "parallel": .3, "fragmented": .1, "clump": .1},
                        "epithelial": {"network": .35, "clump": .35, "fragmented": .3},
                        "stem": {"clump": .45, "fragmented": .35, "network": .2}}[g.line])
    info["variant"] = v
    cyto = _cyto(g)
    dn_um = np.maximum(g.dn, 0) * np.float32(p)
    allowed = np.minimum(g.d_edge, g.dn - 0.2 / p) if not mit else np.minimum(g.d_edge, g.dn - 0.4 / p)
    if v == "clump":
        dens = cyto * (g.dn > 0) * (np.exp(-dn_um / rng.uniform(1, 3)) + 0.05)
    elif v in ("network", "parallel"):
        dens = cyto * (g.dn > 0) * g.h_rel ** rng.uniform(0.3, 1.2)
    else:
        dens = cyto * (g.dn > 0) * g.h_rel ** rng.uniform(1, 2)
    if mit:
        dens = g.cell_aa * (g.dn * p > 0.4) * g.h_rel
    area = _area_um2(g)
    ntub = {"network": 0.12, "parallel": 0.1, "clump": 0.12, "fragmented": 0.03}[v] * area * rng.uniform(0.6, 1.4)
    ntub = int(np.clip(ntub, 10, 320))
    med = {"network": 3.0, "parallel": 5.0, "clump": 2.0, "fragmented": 1.2}[v]
    L = np.clip(rng.lognormal(np.log(med), 0.5, ntub), 1, 10)
    y0, x0 = sample_points(dens, ntub, rng)
    n = y0.size
    th0 = rng.uniform(-np.pi, np.pi, n)
    if v == "parallel":
        th0 = g.long_axis + rng.choice([0, np.pi], n) + rng.normal(0, 0.3, n)
    lp = rng.uniform(5, 12) if v == "parallel" else rng.uniform(2, 8)
    ds = 0.25
    P, A = walk(rng, y0, x0, th0, np.maximum(2, np.round(L[:n] / ds)).astype(int), ds / p,
                np.sqrt(ds / lp), allowed, 0.5 / p, 0.15 / p, edge_stop=rng.uniform(0.1, 0.3))
    paths = [(P, A)]
    if v in ("network", "clump"):  # branches from points along the tubules
        nb = int(n * rng.uniform(0.3, 1.0))
        if nb and A.any():
            ii = np.argwhere(A[1:])
            pick = ii[rng.integers(0, len(ii), nb)]
            k, j = pick[:, 0] + 1, pick[:, 1]
            by, bx = P[k, j, 0], P[k, j, 1]
            dy, dx = P[k, j, 0] - P[k - 1, j, 0], P[k, j, 1] - P[k - 1, j, 1]
            bth = np.arctan2(dy, dx) + rng.choice([-1, 1], nb) * rng.uniform(0.6, 1.4, nb)
            Lb = np.clip(rng.lognormal(np.log(1.5), 0.5, nb), 0.6, 5)
            paths.append(walk(rng, by, bx, bth, np.maximum(2, np.round(Lb / ds)).astype(int), ds / p,
                              np.sqrt(ds / lp), allowed, 0.5 / p, 0.15 / p, edge_stop=0.3))
    w_thin, w_thick = rng.uniform(0.3, 0.45), rng.uniform(0.5, 0.7)
    lay1, lay2 = _z(g), _z(g)
    for P, A in paths:
        thick = rng.random(P.shape[1]) < rng.uniform(0.2, 0.6)
        B = rng.lognormal(0, 0.2, P.shape[1]) * rng.uniform(0.8, 1.2)
        draw_paths(lay1, P[:, ~thick], A[:, ~thick], line_density(B[~thick], w_thin), p)
        draw_paths(lay2, P[:, thick], A[:, thick], line_density(B[thick], w_thick), p)
    S += blur(lay1, w_thin / 2.8 / p) + blur(lay2, w_thick / 2.8 / p)
    # fragments: short rods and round dots
    nfrag = int(np.clip((rng.uniform(0.2, 0.6) if v == "fragmented" else rng.uniform(0.02, 0.12)) * area, 5, 450))
    fy, fx = sample_points(dens, nfrag, rng)
    ok = lookup(allowed, fy, fx) > 0.2 / p
    fy, fx = fy[ok], fx[ok]
    m = fy.size
    rod = rng.random(m) < 0.5
    wv = rng.uniform(0.3, 0.6, m)
    lenv = np.where(rod, rng.uniform(0.8, 2.0, m), rng.uniform(0.5, 1.0, m))
    ss = wv / 2.355
    sl = np.where(rod, lenv / 2.5, lenv / 2.355)
    blobs(S, fy, fx, sl / p, np.where(rod, ss, sl) / p, rng.uniform(-np.pi, np.pi, m),
          dot_peak(rng.lognormal(0, 0.2, m), np.where(rod, ss, sl)))
    info["tubules"], info["fragments"] = int(n), int(m)
    if v == "clump":
        S += rng.uniform(0.1, 0.4) * np.exp(-dn_um / 2.0) * cyto * (g.dn > 0)
    if not mit:  # widefield: some signal from mitochondria above the nucleus
        S += rng.uniform(0, 0.15) * g.nuc_aa * np.clip(1 + 0.5 * field((g.h, g.w), 0.3 / p, rng), 0, None)
    return S, "cyto", rng.uniform(0.02, 0.2), info


# ================================================================ Nucleolus

def nucleolus(g, rng, dna):
    p = g.p
    S = _z(g)
    info = {}
    if g.state == "mitotic":
        v = _pick(rng, {"chromosome coat": .6, "diffuse": .4})
        info["variant"] = v
        if v == "chromosome coat":
            S += rng.uniform(0.6, 1.0) * blur(g.chrom * g.nuc_aa, 0.3 / p)
            S += rng.uniform(0.1, 0.3) * g.h_rel * g.cell_aa
        else:
            S += rng.uniform(0.3, 0.6) * g.h_rel * g.cell_aa * (1 - 0.6 * g.nuc_aa)
            n = int(rng.integers(10, 41))
            y, x = sample_points(g.h_rel * g.cell_aa, n, rng)
            sg = rng.uniform(0.15, 0.4, y.size)
            blobs(S, y, x, sg / p, sg / p, 0.0, dot_peak(rng.uniform(0.5, 1.0, y.size), sg))
        return S, "nuclear", rng.uniform(0.02, 0.1), info
    v = _pick(rng, {"nucleolin": .5, "fibrillarin": .5})
    info["variant"] = v
    info["nucleoli"] = len(g.nucleoli)
    sy, sx = g.nbox
    nl = g.nl[sy, sx]
    bh, bw = nl.shape
    body = nl * np.clip(1 + rng.uniform(0.1, 0.35) * field((bh, bw), 0.15 / p, rng), 0, None)
    inner = blur(nl, 0.3 / p)
    rim = np.clip(nl - inner, 0, 1) * 2
    body = body + rng.uniform(0, 0.6) * rim
    # fibrillar centres: dimmer dots inside the nucleoli
    fc = np.zeros((bh, bw), np.float32)
    for o in g.nucleoli:
        area = np.pi * (o["d"] * p / 2) ** 2
        k = int(rng.poisson(area * rng.uniform(0.5, 2.0)))
        if k:
            a = rng.uniform(-np.pi, np.pi, k)
            r = np.sqrt(rng.random(k)) * o["d"] * 0.4
            sg = rng.uniform(0.13, 0.3, k)
            blobs(fc, o["y"] + r * np.sin(a) - sy.start, o["x"] + r * np.cos(a) - sx.start, sg / p, sg / p, 0.0, 1.0)
    body = body * (1 - rng.uniform(0.3, 0.7) * np.clip(fc, 0, 1))
    np_level = rng.uniform(0.1, 0.25) if v == "nucleolin" else rng.uniform(0.04, 0.12)
    nucp = np_level * g.nuc_aa[sy, sx] * (1 - nl) * np.clip(1 + 0.2 * field((bh, bw), 0.3 / p, rng), 0, None)
    S[sy, sx] += rng.uniform(0.8, 1.2) * body + nucp
    return S, "cyto", rng.uniform(0.01, 0.06), info


# ================================================================ Nucleus

def nucleus(g, rng, dna):
    p = g.p
    S = _z(g)
    info = {}
    v = _pick(rng, {"DNA stain": .6, "nucleoplasmic": .4})
    info["variant"] = v
    if v == "DNA stain":
        gam = rng.uniform(0.85, 1.15)
        S += np.power(np.maximum(dna, 0) / max(float(dna.max()), 1e-9), gam) * np.clip(
            1 + 0.05 * field((g.h, g.w), 1.0 / p, rng), 0, None)
        return S, "nuclear", rng.uniform(0, 0.03), info
    if g.state == "mitotic":
        S += rng.uniform(0.6, 1.0) * g.h_rel * g.cell_aa * (1 - rng.uniform(0.3, 0.8) * g.nuc_aa) * np.clip(
            1 + 0.15 * field((g.h, g.w), 0.3 / p, rng), 0, None)
        return S, "cyto", rng.uniform(0, 0.05), info
    sy, sx = g.nbox
    aa = g.nuc_aa[sy, sx]
    nl = g.nl[sy, sx]
    bh, bw = aa.shape
    speck = rng.random() < 0.5
    tex = 1 + (rng.uniform(0.2, 0.45) * field((bh, bw), 0.15 / p, rng) if speck else
               rng.uniform(0.03, 0.15) * field((bh, bw), 1.0 / p, rng))
    info["texture"] = "speckled" if speck else "smooth"
    # partly chromatin-bound: some of the DNA's texture shows through
    dn_ = dna[sy, sx] / max(float(dna[sy, sx][g.nuc[sy, sx]].mean()), 1e-9) if g.nuc[sy, sx].any() else 0
    c = rng.uniform(0.2, 0.6)
    fill = (0.7 + 0.3 * g.dome[sy, sx]) * np.clip((1 - c) * tex + c * dn_, 0, None) * (1 - rng.uniform(0.3, 0.95) * nl)
    rim = rng.uniform(-0.3, 0.5) * np.exp(np.minimum(g.dn[sy, sx], 0) * np.float32(p / 0.4))
    S[sy, sx] += rng.uniform(0.8, 1.2) * np.clip(fill + rim, 0, None) * aa
    return S, "nuclear", rng.uniform(0.01, 0.08), info


DRAWERS = {
    "ActinFilaments": actin,
    "Endosome": endosome,
    "ER": er,
    "Golgi_gia": golgi_gia,
    "Golgi_gpp": golgi_gpp,
    "Lysosome": lysosome,
    "Microtubules": microtubules,
    "Mitochondria": mitochondria,
    "Nucleolus": nucleolus,
    "Nucleus": nucleus,
}


def background(g, kind, rng):
    """Diffuse protein: cytoplasmic (thickness-weighted, dimmer over the nucleus) or nuclear, and
    spread through the whole cell in mitosis (no nuclear envelope)."""
    if g.state == "mitotic":
        b = g.h_rel * g.cell_aa
    elif kind == "cyto":  # over the nucleus only the thin cytoplasm above and below it
        b = g.h_rel * _cyto(g) + rng.uniform(0.1, 0.5) * 0.7 * g.nuc_aa
    else:
        b = g.nuc_aa * (0.7 + 0.3 * g.dome) * (1 - 0.7 * g.nl) + rng.uniform(0.03, 0.25) * g.h_rel * _cyto(g)
    ref = float(b.max())
    return (b / ref).astype(np.float32) if ref > 0 else b.astype(np.float32)
