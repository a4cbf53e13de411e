"""indep_h: an independent renderer of simulated fluorescence cells (docs/biology.md only).

Design: a cell is a star-shaped polar outline (harmonics, von Mises protrusions with concave edges
between them, straight cuts where neighbours meet, fan/lamella shapes), stretched and rotated; the
nucleus is a polar ellipse placed where it fits. A thickness map (1 over the nucleus, 0 at the
edge) modulates every cytoplasmic stain. Structures are drawn as anti-aliased bilinear splats of
points along curves (lines with a brightness per unit length) or dots, blurred only by their
physical width. All randomness comes from the generator passed in.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ._indep_h_cell import (  # noqa: F401  (geometry and primitives; see that module)
    _TH, _alive, _at, _blur, _curves, _dna, _dots, _geometry, _mitotic, _noise, _norm,
    _nuc_edge, _nucleus, _points, _sample, _splat, _vm,
)
from .base import RenderedCell

NAME = "indep_h"


# ----------------------------------------------------------------------------- classes
def _bg(rng, g, cyto=True):
    """Diffuse background of unbound protein: cytoplasm (thickness-weighted) or nucleus."""
    lvl = rng.uniform(0.0, 0.33) * rng.random() ** 0.5
    if cyto:
        return lvl * g.t * np.where(g.nuc, rng.uniform(0.3, 0.8), 1.0)
    return lvl * (g.nuc + rng.uniform(0.05, 0.3) * g.t * ~g.nuc)


def _edge_contours(rng, g, n, len_um, inset_um):
    """Curves running along the cell edge (length, inset in µm)."""
    ys, xs = [], []
    for _ in range(n):
        a0 = rng.uniform(-np.pi, np.pi)
        R = 0.5 * (g.sx + g.sy) * np.interp(a0, _TH, g.r, period=2 * np.pi)
        span = len_um() / g.px / max(R, 1)
        th = a0 + np.linspace(0, span, max(4, int(span * R / 0.7)))
        frac = 1 - inset_um() / g.px / max(R, 1)
        y, x = _points(g.cy, g.cx, g.ang, g.sx, g.sy, g.r, th, max(frac, 0.3))
        ys.append(y)
        xs.append(x)
    if not ys:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(ys), np.concatenate(xs)


def _microtubules(rng, g):
    shape, px = g.cell.shape, g.px
    if g.state == "mitotic":
        return _spindle(rng, g)
    var = rng.choice(["meshwork", "radial", "parallel"], p=[0.65, 0.2, 0.15])
    if g.line == "rounded":
        var = "meshwork"
    ds = 0.9
    Lmean = rng.uniform(12, 30)
    n = int(np.clip(g.area_um2 * rng.uniform(2.5, 7) / Lmean, 80, 700))
    nstep = int(min(1.6 * Lmean / px / ds, 520))
    mt = np.zeros(shape, np.float32)
    if var == "radial":
        q = rng.uniform(0.3, 1.5, n) / px
        ph = rng.uniform(0, 2 * np.pi, n)
        my, mx = _nuc_edge(g, np.array([g.side]), 1.0 / px)
        y0, x0 = my[0] + q * np.sin(ph), mx[0] + q * np.cos(ph)
        a0 = ph + rng.normal(0, 0.15, n)
    else:
        y0, x0 = _sample(rng, g.t ** rng.uniform(0.7, 1.6) * g.cell, n)   # crowded near the nucleus
        if var == "parallel":
            a0 = g.ang + rng.normal(0, 0.3, n) + np.pi * (rng.random(n) < 0.5)
        else:
            a0 = np.arctan2(y0 - g.ny, x0 - g.nx) + rng.normal(0, 1.1, n)
    curv = rng.uniform(0.1, 0.3) * px * rng.lognormal(0, 0.3, n)   # 1/px: wavy, not looping
    y, x = _curves(rng, y0, x0, a0, nstep, ds, curv, rng.uniform(0.4, 1.2) / px / ds)
    L = rng.uniform(0.4, 1.6, n) * Lmean / px / ds
    alive = _alive(g.cell, y, x) & (np.arange(nstep)[None] < L[:, None])
    w = rng.lognormal(0, 0.3, n)[:, None] * ds * alive * np.where(_at(g.nuc, y, x), rng.uniform(0.15, 0.5), 1.0)
    mt += _splat(shape, y, x, w)
    ey, ex = _edge_contours(rng, g, int(n * rng.uniform(0.05, 0.2)), lambda: rng.uniform(3, 15),
                            lambda: rng.uniform(0.3, 1.5))
    mt += _splat(shape, ey, ex, ds * rng.uniform(0.6, 1.0))
    star = rng.random() < (0.8 if var == "radial" else 0.15)
    if star:
        my, mx = _nuc_edge(g, np.array([g.side]), 1.0 / px)
        mt += rng.uniform(1, 3) * _dots(shape, my, mx, np.ones(1), np.array([0.8 / px]))
    mt = _norm(_blur(mt, 0.0), g.cell, 99.0)
    haze = rng.uniform(0.1, 0.45) * g.t * _norm(ndi.gaussian_filter(mt, 2.0 / px), g.cell, 95)
    g.info.update(variant=str(var), filaments=n, centrosome_visible=bool(star))
    return mt + haze + _bg(rng, g) * 0.5


def _spindle(rng, g):
    shape, px = g.cell.shape, g.px
    half = rng.uniform(4, 6.5) / px
    ca, sa = np.cos(g.spindle), np.sin(g.spindle)
    out = np.zeros(shape, np.float32)
    ds = 0.7
    for s in (-1, 1):
        py, pxx = g.ccy + s * half * sa, g.ccx + s * half * ca
        n = 80
        across = rng.uniform(-1, 1, n) * rng.uniform(3.5, 6) / px
        ty, tx = g.ccy + across * ca + rng.normal(0, 0.5 / px, n), g.ccx - across * sa
        t = np.linspace(0, 1, int(half * 1.5 / ds))[None]
        bow = across[:, None] * 0.25 * np.sin(np.pi * t)
        yy = py + (ty - py)[:, None] * t + bow * ca
        xx = pxx + (tx - pxx)[:, None] * t - bow * sa
        out += _splat(shape, yy, xx, ds)
        na = 25
        a = rng.uniform(0, 2 * np.pi, na)
        ll = rng.uniform(2, 6, na) / px
        t = np.linspace(0, 1, 30)[None]
        out += _splat(shape, py + ll[:, None] * t * np.sin(a)[:, None], pxx + ll[:, None] * t * np.cos(a)[:, None],
                      0.5 * ds * ll[:, None] / 30 * g.cell[np.clip(int(py), 0, g.H - 1), np.clip(int(pxx), 0, g.W - 1)])
        out += 2 * _dots(shape, np.array([py]), np.array([pxx]), np.ones(1), np.array([0.8 / px]))
    out *= g.cell
    out = _norm(out, g.cell, 99.5)
    g.info["variant"] = "spindle"
    return out + rng.uniform(0.05, 0.2) * g.t


def _actin(rng, g):
    shape, px = g.cell.shape, g.px
    d_um = g.d_edge * px
    if g.state != "interphase":
        out = np.exp(-d_um / rng.uniform(0.4, 0.9)) * g.cell * (1 + 0.3 * _noise(rng, shape, 0.6 / px)).clip(0.3)
        g.info["variant"] = "cortex ring"
        return out + rng.uniform(0.05, 0.2) * g.t
    p_fibre = {"spread": 0.85, "hela": 0.35, "epithelial": 0.45, "stem": 0.2}.get(g.line, 0.3)
    var = "stress fibres" if rng.random() < p_fibre else rng.choice(["cortex", "ruffles", "podosomes"], p=[0.55, 0.3, 0.15])
    out = np.zeros(shape, np.float32)
    cortex_w = rng.uniform(0.5, 2.0)
    cort = np.exp(-d_um / (cortex_w / 2)) * g.cell * (1 + 0.35 * _noise(rng, shape, 0.8 / px)).clip(0.2)
    out += cort * (rng.uniform(0.5, 1.0) if var == "stress fibres" else rng.uniform(0.9, 1.4))
    nf = int(rng.integers(30, 81)) if var == "stress fibres" else int(rng.integers(0, 8))
    if var == "stress fibres" and rng.random() < 0.3:
        nf = int(rng.integers(10, 30))
    if nf:
        fan = rng.random() < 0.3
        my, mx = _sample(rng, (g.t ** 0.3) * g.cell * (d_um > 1.5), nf)
        if fan:
            back = rng.uniform(25, 45) / px * rng.choice([-1, 1])
            fy, fx = g.ny - back * np.sin(g.ang), g.nx - back * np.cos(g.ang)
            a = np.arctan2(my - fy, mx - fx) + rng.normal(0, 0.1, nf)
        else:
            a = g.ang + rng.normal(0, rng.uniform(0.08, 0.35), nf) + (rng.random(nf) < 0.15) * rng.uniform(0.5, 1.2)
        M = int(45 / px / 0.8)
        st = np.arange(M) * 0.8
        ends = []
        for sgn in (1, -1):
            yy = my[:, None] + sgn * st * np.sin(a)[:, None]
            xx = mx[:, None] + sgn * st * np.cos(a)[:, None]
            ends.append(_alive(g.cell, yy, xx).sum(1) * 0.8)
        e1, e2 = ends
        tot = e1 + e2
        Lmax = rng.uniform(5, 40, nf) / px
        keep = np.clip(Lmax / np.maximum(tot, 1), 0, 1)
        # fibres reach most of the way to the edge, trimmed symmetrically when too long
        a1, a2 = e1 * keep - 0.5 / px, e2 * keep - 0.5 / px
        t = np.linspace(0, 1, 200)[None]
        s = -a2[:, None] + (a1 + a2)[:, None] * t
        yy, xx = my[:, None] + s * np.sin(a)[:, None], mx[:, None] + s * np.cos(a)[:, None]
        seg = (a1 + a2)[:, None] / 200
        wgt = rng.lognormal(0, 0.35, nf)[:, None] * seg * np.where(_at(g.nuc, yy, xx), rng.uniform(0.2, 0.8), 1.0)
        wid = rng.uniform(0.25, 0.8)
        out += _blur(_splat(shape, yy, xx, wgt), wid / 2.355 / px) * (rng.uniform(0.9, 1.6) * max(1, wid / px / 2))
        # focal adhesions: bright dashes at the peripheral ends
        fl = rng.uniform(1, 4, nf) / px
        for endpt, sgn in ((a1, 1), (a2, -1)):
            tt = np.linspace(0, 1, 12)[None]
            s2 = sgn * (endpt[:, None] - fl[:, None] * tt)
            fy2, fx2 = my[:, None] + s2 * np.sin(a)[:, None], mx[:, None] + s2 * np.cos(a)[:, None]
            inner = d_um[np.clip(np.rint(fy2).astype(int), 0, g.H - 1), np.clip(np.rint(fx2).astype(int), 0, g.W - 1)] < 6
            out += _blur(_splat(shape, fy2, fx2, (fl[:, None] / 12) * 1.2 * inner), 0.4 / px) * max(1, 0.6 / px)
    if var in ("stress fibres", "ruffles") and rng.random() < 0.6:   # lamellipodium / ruffle band
        c = rng.uniform(-np.pi, np.pi)
        yy, xx = np.mgrid[0:g.H, 0:g.W]
        th = np.arctan2(yy - g.cy, xx - g.cx) - g.ang
        band = np.exp(-d_um / rng.uniform(1, 2.5)) * _vm(th, c, rng.uniform(1.5, 6)) * g.cell
        out += band * (0.6 + 0.5 * _noise(rng, shape, 0.3 / px)).clip(0) * rng.uniform(0.6, 1.2)
        if rng.random() < 0.5:  # transverse arcs behind it
            ay, ax = _edge_contours(rng, g, int(rng.integers(2, 6)), lambda: rng.uniform(5, 15), lambda: rng.uniform(3, 8))
            out += _blur(_splat(shape, ay, ax, 0.7 * 1.2), 0.3 / px)
    if var == "podosomes" or rng.random() < 0.1:
        k = int(rng.integers(20, 120))
        py_, px_ = _sample(rng, g.cyto * (d_um > 1), k)
        out += _dots(shape, py_, px_, rng.uniform(0.5, 1.2, k), rng.uniform(0.5, 1, k) / px) * max(1, (0.7 / px) ** 2 / 2)
    out *= g.cell
    out = _norm(out, g.cell, 99.7)
    # filopodia: thin spikes out of the edge
    nfil = int(rng.integers(0, 12)) if rng.random() < 0.6 else 0
    if nfil:
        th0 = rng.uniform(-np.pi, np.pi, nfil)
        ey, ex = _points(g.cy, g.cx, g.ang, g.sx, g.sy, g.r, th0, 0.99)
        a = np.arctan2(ey - g.cy, ex - g.cx) + rng.normal(0, 0.3, nfil)
        ll = rng.uniform(1.5, 3, nfil) ** rng.uniform(1, 2, nfil) / px
        t = np.linspace(0, 1, 40)[None]
        fy, fx = ey[:, None] + ll[:, None] * t * np.sin(a)[:, None], ex[:, None] + ll[:, None] * t * np.cos(a)[:, None]
        oy, ox = g.off[0], g.off[2]
        m = (fy + oy >= 3) & (fy + oy < g.fsize - 3) & (fx + ox >= 3) & (fx + ox < g.fsize - 3)
        out += _splat(shape, fy, fx, 0.5 * ll[:, None] / 40 * m)
    diffuse = rng.uniform(0.05, 0.3) * g.t * (1 + 0.4 * _noise(rng, shape, 0.3 / px)).clip(0)
    g.info.update(variant=str(var), fibres=nf)
    return out + diffuse * np.where(g.nuc, 0.5, 1)


def _er(rng, g):
    shape, px = g.cell.shape, g.px
    mesh = 0.5 + 1.5 * rng.random() ** 2            # mostly fine, unresolved meshes
    s1 = mesh / 3.5 / px
    n = rng.standard_normal(shape).astype(np.float32)
    f = ndi.gaussian_filter(n, max(s1, 0.5)) - ndi.gaussian_filter(n, max(s1, 0.5) * 1.8)
    f /= f.std() + 1e-9
    lines = np.exp(-(f / rng.uniform(0.25, 0.45)) ** 2)          # zero level set: a lacy network
    grain = (1 + rng.uniform(0.4, 0.8) * _noise(rng, shape, max(0.4, 0.12 / px))).clip(0)
    lam = rng.uniform(8, 25) if g.line == "spread" else rng.uniform(3, 10)
    if g.state == "mitotic":
        lam = 50
    d_n = g.d_nuc * px
    dens = np.exp(-d_n / lam) * (1 - np.exp(-g.d_edge * px / rng.uniform(0.3, 2.0)))
    sheet_w = rng.uniform(1.5, 6)
    sheet = np.exp(-(d_n / sheet_w) ** 2)
    sheetiness = rng.uniform(0.1, 0.6)
    lw = rng.uniform(0.3, 0.8)                        # how much the mesh shows vs a grainy stain
    er = (lw * lines + (1 - lw) * 0.5) * grain * (0.3 + 0.7 * dens) * g.t ** 0.5 * dens ** 0.3
    er = er * (1 - sheetiness) + sheetiness * (0.6 + 0.4 * grain) * sheet * g.t ** 0.5
    if g.state != "mitotic":
        ne = np.exp(-(d_n / rng.uniform(0.25, 0.5)) ** 2) * g.cell
        er += ne * rng.uniform(0.5, 1.1)
        er = np.where(g.nuc, er * 0 + rng.uniform(0.03, 0.3) * lines * grain * sheetiness + ne * 0, er)
    else:
        er *= np.clip(d_n / 0.7, 0, 1)
    er *= g.cell
    g.info.update(variant="mitotic spread" if g.state == "mitotic" else ("lacy" if lam > 6 else "perinuclear"),
                  mesh_um=round(mesh, 2))
    return _norm(er, g.cell, 99.7) + _bg(rng, g) * 0.5


def _golgi(rng, g, gpp):
    shape, px = g.cell.shape, g.px
    if g.state == "mitotic":
        k = int(rng.integers(150, 500))
        y, x = _sample(rng, g.t * g.cyto, k)
        out = _dots(shape, y, x, rng.lognormal(0, 0.4, k), rng.uniform(0.3, 0.5, k) / px)
        g.info["variant"] = "mitotic haze"
        return _norm(out, g.cell, 99.7) + rng.uniform(0.05, 0.3) * g.t
    r = rng.random()
    var = "arc" if r < 0.5 else ("knot" if r < 0.8 else ("two clusters" if r < 0.9 else "dispersed"))
    span = rng.uniform(0.5, np.pi) if var == "arc" else rng.uniform(0.25, 0.7)
    cont = rng.uniform(0.55, 1.0) if not gpp else rng.uniform(0.3, 0.8)   # continuity tendency
    centres = [g.side] if var != "two clusters" else [g.side - 0.8, g.side + 0.8]
    out = np.zeros(shape, np.float32)
    for c in centres:
        nel = int(rng.integers(8, 30) * (1 + cont))
        th = c + rng.uniform(-0.5, 0.5, nel) * span
        off = (rng.uniform(0, 1.0, nel) + (var == "knot") * rng.uniform(0, 3, nel)) / px
        spread = (1 + 2 * (1 - cont)) / px
        if var == "dispersed":
            off = rng.uniform(0, 8, nel) / px
            th = c + rng.normal(0, 1.2, nel)
        ey, ex = _nuc_edge(g, th, off)
        ey = ey + rng.normal(0, 0.25 * spread, nel)
        ex = ex + rng.normal(0, 0.25 * spread, nel)
        seg = rng.uniform(0.5, 1.5, nel) * (0.6 + cont) / px
        t = np.linspace(-0.5, 0.5, 10)[None]
        ta = th + np.pi / 2 + rng.normal(0, 0.4, nel)
        yy, xx = ey[:, None] + seg[:, None] * t * np.sin(ta)[:, None], ex[:, None] + seg[:, None] * t * np.cos(ta)[:, None]
        b = rng.lognormal(0, 0.4, nel)[:, None]
        out += _blur(_splat(shape, yy, xx, b * seg[:, None] / 10), rng.uniform(0.25, 0.45) / px)
    nves = int(rng.integers(5, 25) + gpp * rng.integers(10, 80) + (not gpp) * rng.integers(0, 30))
    w = np.exp(-(g.d_nuc * px) / rng.uniform(2, 6 + 6 * gpp)) * g.cyto
    vy, vx = _sample(rng, w, nves)
    out += _dots(shape, vy, vx, rng.uniform(0.1, 0.5, nves), rng.uniform(0.3, 0.5, nves) / px)
    out *= g.cell
    g.info.update(variant=var)
    return _norm(out, g.cell, 99.8) + _bg(rng, g) * 0.3


def _puncta(rng, g, lyso):
    shape, px = g.cell.shape, g.px
    d_n = g.d_nuc * px
    if g.state == "mitotic":
        mode = "mitotic"
        w = g.t * g.cyto * np.clip(d_n / 0.5, 0, 1)
    else:
        p = [0.45, 0.35, 0.2] if lyso else [0.25, 0.6, 0.15]
        mode = str(rng.choice(["perinuclear", "scattered", "peripheral"], p=p))
        lam = rng.uniform(2, 8)
        if mode == "perinuclear":
            w = np.exp(-d_n / lam) + rng.uniform(0.05, 0.3)
        elif mode == "scattered":
            w = 0.3 + np.exp(-d_n / rng.uniform(5, 15))
        else:
            w = np.exp(-g.d_edge * px / rng.uniform(3, 8)) + 0.2
        w = w * g.cyto * g.t ** 0.3
    n = int(rng.integers(30, 300) if lyso else rng.integers(50, 500))
    n = int(n * np.clip(g.area_um2 / 700, 0.4, 1.6))
    big = rng.random() < (0.5 if lyso else 0.15)   # a few large vs many small
    y, x = _sample(rng, w, n)
    if rng.random() < 0.35:   # clustered dots
        k = max(1, n // int(rng.integers(4, 12)))
        cy, cx = y[:k], x[:k]
        j = rng.integers(0, k, n - k)
        spread = rng.uniform(0.8, 2.5) / px
        y = np.r_[cy, cy[j] + rng.normal(0, spread, n - k)]
        x = np.r_[cx, cx[j] + rng.normal(0, spread, n - k)]
        ok = _at(g.cyto, y, x)
        y, x = y[ok], x[ok]
    m = len(y)
    if lyso:
        sz = rng.uniform(0.4, 1.5 if big else 1.0, m) * rng.uniform(0.8, 1.1)
    else:
        sz = rng.uniform(0.2, 0.7 if big else 0.5, m)
    bright = rng.lognormal(0, 0.5, m) * np.maximum(sz / px, 0.8) ** 2 * (sz / 0.5) ** 0.5   # peak ~ size^0.5
    ring = np.where(lyso & (sz > 0.8) & (rng.random(m) < 0.7), sz / 2 / px * 0.7, 0)
    out = _dots(shape, y, x, bright, np.maximum(sz / px, 0.8), ring)
    out *= g.cell
    out = _norm(out, g.cell, 92)      # a typical dot ~1; background is measured against it
    bg = _bg(rng, g)
    if not lyso and rng.random() < 0.5:   # transferrin receptor outlines the plasma membrane
        bg = bg + rng.uniform(0.05, 0.25) * np.exp(-g.d_edge * px / 0.4) * g.cell
    g.info.update(variant=mode, puncta=m, large=bool(big))
    return out + bg


def _mito(rng, g):
    shape, px = g.cell.shape, g.px
    d_n = g.d_nuc * px
    var = "fragmented" if g.state == "mitotic" else str(rng.choice(
        ["network", "fragmented", "clump", "parallel"], p=[0.5, 0.2, 0.15, 0.15]))
    lam = rng.uniform(1.5, 4) if var == "clump" else rng.uniform(4, 15)
    w = (np.exp(-d_n / lam) + 0.05) * g.cyto * g.t ** 0.4
    Lm = rng.uniform(0.5, 2) if var == "fragmented" else rng.uniform(2, 8)
    n = int(np.clip(g.area_um2 * rng.uniform(0.4, 1.2) / Lm, 40, 900))
    ds = 0.6
    nstep = max(3, int(min(Lm * 1.5 / px / ds, 200)))
    y0, x0 = _sample(rng, w, n)
    a0 = (g.ang + rng.normal(0, 0.25, n) + np.pi * (rng.random(n) < 0.5)) if var == "parallel" \
        else rng.uniform(0, 2 * np.pi, n)
    y, x = _curves(rng, y0, x0, a0, nstep, ds, rng.uniform(0.2, 0.8) * px, 1.0 / px / ds)
    L = rng.uniform(0.3, 1.0, n) * Lm * 1.5 / px / ds
    alive = _alive(g.cyto, y, x) & (np.arange(nstep)[None] < L[:, None])
    out = _splat(shape, y, x, ds * alive * rng.lognormal(0, 0.25, n)[:, None])
    if var == "network":   # branches from existing tubules
        nb = n // 2
        j = rng.integers(0, n, nb)
        k = rng.integers(0, nstep, nb)
        by, bx = y[j, k], x[j, k]
        ok = alive[j, k]
        y2, x2 = _curves(rng, by[ok], bx[ok], rng.uniform(0, 2 * np.pi, ok.sum()), nstep // 2, ds, 0.5 * px, 1.0 / px / ds)
        out += _splat(shape, y2, x2, ds * _alive(g.cyto, y2, x2))
    wid = rng.uniform(0.3, 0.7)
    out = _blur(out, wid / 2.355 / px)
    nd = int(n * (1.0 if var == "fragmented" else 0.2))
    dy, dx = _sample(rng, w, nd)
    out += _dots(shape, dy, dx, np.full(nd, float(out.max()) * 0.8 * (px / 0.1)), rng.uniform(0.5, 1, nd) / px) \
        * (0.7 / max(1.0, 1 / px)) if nd else 0
    out *= g.cell * np.where(g.nuc, 0.15, 1)
    g.info.update(variant=var, tubules=n)
    return _norm(out, g.cell, 99.7) + _bg(rng, g) * 0.5


def _nucleolus(rng, g, dna):
    shape, px = g.cell.shape, g.px
    if g.state == "mitotic":
        g.info["variant"] = "chromosome coat"
        return dna / max(float(dna.max()), 1e-6) * rng.uniform(0.5, 1) + rng.uniform(0.1, 0.3) * g.t
    by0, by1, bx0, bx1 = g.box
    sub = (by1 - by0, bx1 - bx0)
    fc = 1 - rng.uniform(0.2, 0.5) * np.clip(_noise(rng, sub, max(0.5, 0.2 / px)), 0, None) / 2
    acc = np.zeros(sub, np.float32)
    for (hy, hx, rad, el, ph) in g.nucleoli:
        k = int(rng.integers(1, 4))
        cy = hy - by0 + rng.normal(0, 0.3 * rad, k)
        cx = hx - bx0 + rng.normal(0, 0.3 * rad, k)
        blobs = _dots(sub, cy, cx, np.ones(k), np.full(k, 1.6 * rad))
        blobs = _norm(blobs, blobs > 0, 100)
        body = np.clip((blobs - 0.35) / 0.25, 0, 1)
        inner = np.clip((blobs - 0.75) / 0.2, 0, 1)
        acc = np.maximum(acc, body * (1 - rng.uniform(0, 0.3) * inner) * fc * rng.uniform(0.7, 1.0))
    out = np.zeros(shape, np.float32)
    out[by0:by1, bx0:bx1] = acc
    out = ndi.gaussian_filter(out, 0.5) * g.nuc
    nucleoplasm = rng.uniform(0.05, 0.2) * g.nuc * (1 + 0.2 * _noise(rng, shape, 0.5 / px))
    g.info.update(variant="nucleoli", count=len(g.nucleoli))
    return _norm(out, g.nuc, 99.9) + nucleoplasm.clip(0) + rng.uniform(0, 0.05) * g.t * g.cyto


def _nuclear(rng, g, dna):
    shape, px = g.cell.shape, g.px
    if rng.random() < 0.6:
        g.info["variant"] = "DNA stain"
        return dna.copy()
    if g.state == "mitotic":
        g.info["variant"] = "nucleoplasmic (mitotic, diffuse)"
        return g.t * (1 + 0.2 * _noise(rng, shape, 0.5 / px)).clip(0) * np.where(g.nuc, 0.6, 1.0)
    gran = rng.uniform(0.05, 0.5)
    fill = (1 + gran * _noise(rng, shape, max(0.5, 0.2 / px))).clip(0)
    din = ndi.distance_transform_edt(g.nuc) * px
    fill *= 0.85 + 0.15 * np.clip(din / 2, 0, 1) + rng.uniform(-0.1, 0.3) * np.exp(-din / 0.4)
    fill *= 1 - rng.uniform(0.6, 0.95) * g.holes
    g.info["variant"] = "nucleoplasmic protein"
    return ndi.gaussian_filter(fill * g.nuc, 0.5) + rng.uniform(0, 0.05) * g.t * g.cyto


def render(cls: str, rng: np.random.Generator, *, size: int, diameter: float) -> RenderedCell:
    """One noise-free specimen of class ``cls`` (see base.py for the contract)."""
    g = _geometry(rng, size, diameter)
    if g.state == "mitotic":
        dna = _mitotic(rng, g)
    else:
        _nucleus(rng, g)
        dna = _dna(rng, g)
    draw = {
        "ActinFilaments": lambda: _actin(rng, g),
        "Microtubules": lambda: _microtubules(rng, g),
        "ER": lambda: _er(rng, g),
        "Golgi_gia": lambda: _golgi(rng, g, False),
        "Golgi_gpp": lambda: _golgi(rng, g, True),
        "Endosome": lambda: _puncta(rng, g, False),
        "Lysosome": lambda: _puncta(rng, g, True),
        "Mitochondria": lambda: _mito(rng, g),
        "Nucleolus": lambda: _nucleolus(rng, g, dna),
        "Nucleus": lambda: _nuclear(rng, g, dna),
    }
    if cls not in draw:
        raise ValueError(f"unknown class {cls!r}; expected one of {sorted(draw)}")
    p = np.asarray(draw[cls](), np.float32)
    p = np.maximum(np.nan_to_num(p), 0)
    p = _norm(p, g.cell, 99.7)
    p = np.minimum(p, 2 + np.sqrt(np.maximum(p - 2, 0)))   # a few overlapping hot spots stay bounded
    p *= float(np.clip(rng.lognormal(0, 0.3), 0.5, 2.0))
    g.info.update(cell_line=g.line)
    y0, y1, x0, x1 = g.off

    def full(a, dtype):
        out = np.zeros((size, size), dtype)
        out[y0:y1, x0:x1] = a
        return out

    return RenderedCell(protein=full(p, np.float32), dna=full(np.maximum(dna, 0), np.float32),
                        cell=full(g.cell, bool), nucleus=full(g.nuc, bool), pixel_size_um=float(g.px),
                        state=g.state, info=g.info)
