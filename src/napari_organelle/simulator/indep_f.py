"""indep_f: an independently written renderer of simulated fluorescence cells (docs/biology.md).

``render(cls, rng, *, size, diameter)`` draws one noise-free specimen (see ``base.py``). The cell
body, nucleus, thickness and DNA come from ``_indep_f_cell`` and never depend on the class; each
class function below draws the protein's structures at their physical size in µm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import Delaunay

from ..classes import CLASSES
from . import _indep_f_cell as K
from .base import RenderedCell

NAME = "indep_f"


def _lu(rng, a, b):
    return float(np.exp(rng.uniform(np.log(a), np.log(b))))


def _cyto_bg(c, nuc_level):
    """Diffuse cytosolic protein: follows thickness, nucleus at nuc_level."""
    return c.T * np.where(c.nucleus, nuc_level, 1.0)


# ----------------------------------------------------------------------------- walkers
def _walk(c, rng, y, x, ang, nsteps, step, curv, lengths, edge_um=1.0, avoid_nucleus=False, turn=0.5,
          edge_run=None):
    """Persistent random walks confined to the cell that bend along its edge. Returns Y, X, ok."""
    n = y.size
    Y = np.zeros((n, nsteps + 1))
    X = np.zeros((n, nsteps + 1))
    ok = np.zeros((n, nsteps + 1), bool)
    y, x, ang = y.astype(float).copy(), x.astype(float).copy(), ang.astype(float).copy()
    alive = np.ones(n, bool)
    edge = edge_um / c.px
    nmax = np.maximum(1, (lengths / step)).astype(int)
    run = np.zeros(n)
    edge_run = np.full(n, np.inf) if edge_run is None else edge_run
    Hh, Ww = c.cell.shape
    for s in range(nsteps + 1):
        iy = np.clip(np.rint(y), 0, Hh - 1).astype(np.intp)
        ix = np.clip(np.rint(x), 0, Ww - 1).astype(np.intp)
        d = c.D[iy, ix]
        inside = d > 0.5
        if avoid_nucleus:
            inside &= ~c.nucleus[iy, ix] | (s == 0)
        alive &= inside & (s <= nmax) & (run <= edge_run)
        Y[:, s], X[:, s], ok[:, s] = y, x, alive
        if s == nsteps or not alive.any():
            break
        gy, gx = c.gy[iy, ix], c.gx[iy, ix]
        near = d < edge
        run += near * step
        ty, tx = gx, -gy
        sgn = np.sign(np.cos(ang) * tx + np.sin(ang) * ty + 1e-9)
        target = np.arctan2(sgn * ty + 0.3 * gy, sgn * tx + 0.3 * gx)
        ang = np.where(near, ang + turn * K.wrap(target - ang), ang)
        ang = ang + curv * rng.standard_normal(n)
        y = y + step * np.sin(ang)
        x = x + step * np.cos(ang)
    return Y, X, ok


# ----------------------------------------------------------------------------- classes
def _actin(c, rng, img, info):
    um = 1 / c.px
    if c.state != "interphase":
        img += 1.0 * np.exp(-c.D / (rng.uniform(0.4, 1.0) * um)) * c.cell
        img += 0.15 * c.T
        info["variant"] = "cortex ring"
        return 0.15
    v = rng.choice(["fibres", "cortex", "mixed", "podosomes"], p=[0.35, 0.25, 0.3, 0.1])
    if c.line in ("epithelial", "stem") and v == "fibres" and rng.random() < 0.7:
        v = "cortex"
    info["variant"] = str(v)
    nf = {"fibres": rng.integers(25, 81), "cortex": rng.integers(0, 5), "mixed": rng.integers(5, 30),
          "podosomes": rng.integers(0, 10)}[v]
    cortex = {"fibres": rng.uniform(0.2, 0.6), "cortex": rng.uniform(0.8, 1.3)}.get(v, rng.uniform(0.4, 1.0))
    img += cortex * np.exp(-c.D / (rng.uniform(0.3, 1.0) * um)) * c.cell
    if nf:
        fan = c.line in ("hela", "spread") and rng.random() < 0.3
        base = c.alpha + rng.normal(0, 0.2)
        spread = rng.uniform(0.05, 0.5)
        ang = base + rng.normal(0, spread, nf) + (rng.random(nf) < 0.15) * rng.uniform(0.5, 1.2, nf)
        py, px = K.sample_points(rng, c.cell * 1.0, nf)
        if fan:  # fanning from a point near the tail
            ang = np.arctan2(py - c.ny, px - c.nx) + rng.normal(0, 0.15, nf)
        L = rng.uniform(5, 40, nf) * um
        Y, X, ok = _walk(c, rng, py, px, ang, 60, max(1.0, L.max() / 60), 0.01, L / 2, edge_um=0.3, turn=0.0)
        Y2, X2, ok2 = _walk(c, rng, py, px, ang + np.pi, 60, max(1.0, L.max() / 60), 0.01, L / 2, edge_um=0.3,
                            turn=0.0)
        YY = np.concatenate([Y2[:, ::-1], Y], 1)
        XX = np.concatenate([X2[:, ::-1], X], 1)
        OK = np.concatenate([ok2[:, ::-1], ok], 1)
        w = np.clip(rng.lognormal(np.log(rng.uniform(0.2, 0.4)), 0.4, nf), 0.15, 0.8) * um
        inten = rng.uniform(0.5, 1.0, nf)
        over_n = np.where(K.at(c.nucleus, YY, XX), rng.uniform(0.3, 0.8), 1.0)
        K.paths(img, YY, XX, OK, inten[:, None] * over_n, np.broadcast_to(w[:, None], YY.shape))
        # focal adhesions at the ends that reach the periphery
        for Ya, Xa, oka in ((Y, X, ok), (Y2, X2, ok2)):
            last = np.maximum(oka.sum(1) - 1, 0)
            ey, ex = Ya[np.arange(nf), last], Xa[np.arange(nf), last]
            per = (K.at(c.D, ey, ex) < 4 * um) & oka[:, 0]
            fl = rng.uniform(1, 5, nf) * um
            sy, sx = ey - fl * np.sin(ang) * (Ya is Y2 and -1 or 1), ex - fl * np.cos(ang) * (Ya is Y2 and -1 or 1)
            K.segments(img, ey[per], ex[per], sy[per], sx[per], 1.5 * inten[per], rng.uniform(0.3, 0.6) * um)
    if rng.random() < 0.5 or v == "cortex":  # lamellipodium / ruffle at a leading edge
        a0 = rng.uniform(-np.pi, np.pi)
        th = np.arctan2(np.arange(c.shape[0])[:, None] - c.my, np.arange(c.shape[1])[None] - c.mx)
        sector = np.exp(-0.5 * (K.wrap(th - a0) / rng.uniform(0.3, 0.9)) ** 2)
        band = np.clip(1 - c.D / (rng.uniform(2, 5) * um), 0, 1) ** 0.5 * c.cell
        mesh = np.clip(0.6 + 0.5 * K.noise(rng, c.shape, 0.3 * um), 0, None)
        img += rng.uniform(0.4, 0.9) * sector * band * mesh
        if rng.random() < 0.5:  # transverse arcs behind the lamella
            for d in rng.uniform(3, 8, int(rng.integers(1, 4))):
                img += 0.5 * sector * np.exp(-0.5 * ((c.D - d * um) / max(0.25 * um, 0.6)) ** 2)
    if c.filo is not None:  # filopodia (part of the cell outline for every class): bright actin spikes
        ey, ex, fy, fx = c.filo
        K.segments(img, ey, ex, fy, fx, rng.uniform(0.6, 1.2), max(1.0, 0.15 * um))
    if v == "podosomes":
        n = int(rng.integers(30, 150))
        y, x = K.sample_points(rng, c.T * (~c.nucleus), n)
        K.dots(img, y, x, rng.uniform(0.25, 0.5, n) * um, rng.uniform(0.6, 1.2, n))
    mesh = np.clip(1 + 0.5 * K.noise(rng, c.shape, 0.25 * um), 0, None)
    img += rng.uniform(0.05, 0.25) * c.T * mesh * np.where(c.nucleus, 0.5, 1.0)
    return rng.uniform(0.02, 0.2)


def _microtubules(c, rng, img, info):
    um = 1 / c.px
    wpx = 0.025 * um  # physical width: sub-pixel lines, brightness per length follows
    if c.state == "mitotic":
        info["variant"] = "spindle"
        a = c.spindle_ang
        hl = min(rng.uniform(4, 7) * um, 0.6 * np.sqrt(c.area / np.pi))
        # the spindle axis is perpendicular to the metaphase plate (plate runs along (cos a, -sin a))
        p1 = (c.ny + hl * np.sin(a), c.nx + hl * np.cos(a))
        p2 = (c.ny - hl * np.sin(a), c.nx - hl * np.cos(a))
        n = 80
        t = np.linspace(0, 1, 25)
        bow = rng.normal(0, 1, n) * 2.0 * um
        Y = p1[0] + (p2[0] - p1[0]) * t[None] + np.sin(np.pi * t)[None] * bow[:, None] * np.cos(a)
        X = p1[1] + (p2[1] - p1[1]) * t[None] - np.sin(np.pi * t)[None] * bow[:, None] * np.sin(a)
        K.paths(img, Y, X, np.ones_like(Y, bool), 1.0, wpx)
        for p in (p1, p2):
            K.dots(img, [p[0]], [p[1]], [0.4 * um], rng.uniform(0.5, 1.5))
            na = 30
            ang = rng.uniform(0, K.TAU, na)
            Ya, Xa, ok = _walk(c, rng, np.full(na, p[0]), np.full(na, p[1]), ang, 30, 0.3 * um, 0.05,
                               rng.uniform(2, 6, na) * um)
            K.paths(img, Ya, Xa, ok, 0.6, wpx)
        img += rng.uniform(1, 3) * min(wpx, 1.0) * c.T
        return 0.1
    v = rng.choice(["radial", "meshwork", "parallel", "wavy", "bundled"], p=[0.37, 0.28, 0.13, 0.12, 0.1])
    info["variant"] = str(v)
    area_um2 = c.area * c.px ** 2
    n = int(np.clip(area_um2 * rng.uniform(0.2, 0.6), 60, 500))
    L = np.where(rng.random(n) < rng.uniform(0.2, 0.6), rng.uniform(4, 15, n), rng.uniform(10, 40, n)) * um
    step = max(0.7, 0.4 * um)
    if v == "radial" or rng.random() < 0.2:
        y = c.csy + rng.normal(0, 0.4 * um, n)
        x = c.csx + rng.normal(0, 0.4 * um, n)
        ang = rng.uniform(0, K.TAU, n)
    else:
        y, x = K.sample_points(rng, c.T, n)
        ang = rng.uniform(0, K.TAU, n)
        if v == "parallel":
            ang = c.alpha + rng.normal(0, 0.15, n) + np.pi * (rng.random(n) < 0.5)
    if v == "bundled":  # fewer, brighter, thicker bundles of several microtubules
        n = max(30, n // 4)
        y, x, ang, L = y[:n], x[:n], ang[:n], L[:n]
    curv = {"wavy": 0.12, "bundled": 0.06}.get(v, 0.035) * np.sqrt(step / um / 0.4)
    ns = int(min(400, L.max() / step + 1))
    Y, X, ok = _walk(c, rng, y, x, ang, ns, step, curv, L, edge_um=1.5,
                     edge_run=rng.exponential(rng.uniform(0.3, 2.0), n) * um)
    over = np.where(K.at(c.nucleus, Y, X), rng.uniform(0.25, 0.6), 1.0)
    inten = rng.uniform(0.7, 1.3, n)[:, None] * over
    if v == "bundled":
        inten = inten * rng.integers(2, 6, n)[:, None]
    K.paths(img, Y, X, ok, inten, wpx)
    if rng.random() < 0.6:  # MTOC
        K.dots(img, [c.csy], [c.csx], [rng.uniform(0.2, 0.5) * um], rng.uniform(0.3, 1.2) * min(wpx, 1) / 0.1)
    # free tubulin haze, comparable to 0.5-3 lines per pixel, densest around the nucleus
    img += rng.uniform(0.5, 3.0) * min(wpx, 1.0) * np.exp(-c.Dn_out / (rng.uniform(2, 8) * um)) * c.T * \
        np.where(c.nucleus, 0.4, 1.0)
    return rng.uniform(0.03, 0.25)


def _er(c, rng, img, info):
    um = 1 / c.px
    wpx = rng.uniform(0.06, 0.1) * um
    if c.state == "mitotic":
        dens = c.T * (1 - c.nuc_soft)
        mesh = rng.uniform(0.5, 1.2)
        reach = 50.0
        info["variant"] = "mitotic"
        sheets = rng.uniform(0.2, 0.5)
        tub = rng.uniform(0.2, 0.6)
    else:
        v = rng.choice(["lacy", "compact", "sheets"], p=[0.45, 0.3, 0.25])
        info["variant"] = str(v)
        reach = {"lacy": rng.uniform(8, 30), "compact": rng.uniform(3, 8), "sheets": rng.uniform(4, 15)}[v]
        mesh = {"lacy": rng.uniform(0.6, 2.0), "compact": rng.uniform(0.5, 1.2), "sheets": rng.uniform(0.5, 1.5)}[v]
        sheets = {"lacy": rng.uniform(0.1, 0.4), "compact": rng.uniform(0.4, 0.9), "sheets": rng.uniform(0.7, 1.3)}[v]
        tub = {"lacy": rng.uniform(0.5, 1.0), "compact": rng.uniform(0.25, 0.7), "sheets": rng.uniform(0.05, 0.3)}[v]
        dens = c.T * (~c.nucleus) * (0.15 + np.exp(-c.Dn_out / (reach * um)))
        dens *= np.clip(c.D / (rng.uniform(0.3, 3) * um), 0, 1)  # often not reaching the very edge
    area_um2 = float((dens > 0.05).sum()) * c.px ** 2
    npts = int(np.clip(area_um2 / mesh ** 2 * 1.2, 50, 5000))
    y, x = K.sample_points(rng, dens ** 1.5, npts)
    if y.size >= 4:
        tri = Delaunay(np.c_[y, x])
        s = tri.simplices
        e = np.concatenate([s[:, [0, 1]], s[:, [1, 2]], s[:, [2, 0]]])
        e.sort(1)
        e = np.unique(e[:, 0].astype(np.int64) * npts + e[:, 1])
        a, b = e // npts, e % npts
        ly = np.hypot(y[a] - y[b], x[a] - x[b])
        keep = (ly < 3 * mesh * um) & (rng.random(a.size) < rng.uniform(0.5, 0.75))
        my, mx = (y[a] + y[b]) / 2, (x[a] + x[b]) / 2
        keep &= K.at(c.cell, my, mx) & ~K.at(c.nucleus, my, mx)
        a, b = a[keep], b[keep]
        # tubules are gently curved: split each edge at a displaced midpoint
        my, mx = (y[a] + y[b]) / 2, (x[a] + x[b]) / 2
        jit = rng.normal(0, 0.12, a.size)
        my, mx = my + jit * (x[b] - x[a]), mx - jit * (y[b] - y[a])
        ti = rng.uniform(0.6, 1.2, a.size)
        net = np.zeros(c.shape)
        K.segments(net, np.r_[y[a], my], np.r_[x[a], mx], np.r_[my, y[b]], np.r_[mx, x[b]], np.r_[ti, ti], wpx)
        if (net > 0).any():
            net *= tub / max(float(np.percentile(net[net > 0], 95)), 1e-9)
        img += net
    # sheets / unresolved network: grainy, dense perinuclear zone
    grain = np.clip(1 + rng.uniform(0.3, 0.6) * K.noise(rng, c.shape, rng.uniform(0.2, 0.5) * um), 0, None)
    zone = np.exp(-c.Dn_out / (rng.uniform(2, 8) * um)) if c.state != "mitotic" else 1.0
    img += sheets * dens / max(dens.max(), 1e-9) * zone * grain
    if c.state != "mitotic":  # nuclear envelope ring
        ring = np.exp(-0.5 * (c.Dn_out / max(0.2 * um, 0.6)) ** 2) * (~c.nucleus) + \
            np.exp(-0.5 * (c.Dn_in / max(0.2 * um, 0.6)) ** 2) * c.nucleus
        img += rng.uniform(0.5, 1.2) * ring * c.cell
        img += rng.uniform(0.0, 0.3) * min(sheets, 0.5) * c.nucleus * grain  # ER above/below the nucleus
    return rng.uniform(0.02, 0.2)


def _golgi(c, rng, img, info, gpp):
    um = 1 / c.px
    if c.state == "mitotic":
        n = int(rng.integers(150, 600))
        y, x = K.sample_points(rng, c.T * (1 - c.nuc_soft), n)
        K.dots(img, y, x, rng.uniform(0.12, 0.3, n) * um, rng.uniform(0.5, 1.5, n))
        info["variant"] = "dispersed haze"
        img += 0.2 * c.T
        return 0.1
    frag = rng.beta(3.2, 3.2) if gpp else rng.beta(1.8, 4.5)
    v = rng.choice(["arc", "knot", "two", "dispersed"], p=[0.5, 0.3, 0.1, 0.1])
    info["variant"], info["fragmentation"] = str(v), float(frag)
    span = (rng.uniform(0.5, 1.6) if v == "arc" else rng.uniform(0.25, 0.6)) * (1 + 0.35 * gpp)
    centers = [c.gdir] if v != "two" else [c.gdir - rng.uniform(0.5, 1.2), c.gdir + rng.uniform(0.5, 1.2)]
    ne = max(3, int(rng.integers(5, 16) * (1 + frag)))
    allY, allX = [], []
    for g in centers:
        th = g + rng.uniform(-span / 2, span / 2, ne)
        dist = np.empty(ne)  # nuclear edge along th from the nucleus centre
        for i, t in enumerate(th):
            r = np.arange(0, 4 * c.nuc_a, 0.7)
            yy, xx = c.ny + r * np.sin(t), c.nx + r * np.cos(t)
            ins = K.at(c.nucleus, yy, xx)
            dist[i] = r[np.argmin(ins)] if (~ins).any() else r[-1]
        spread = (rng.uniform(0.2, 1.5) + 3 * frag * (v == "dispersed" or rng.random() < frag)) * um
        off = np.abs(rng.normal(0.5 * um, spread, ne)) + 0.3 * um
        if v == "knot":
            off = rng.uniform(0.5, 3.0) * um + np.abs(rng.normal(0, 1.2 * um, ne))
        ey, ex = c.ny + (dist + off) * np.sin(th), c.nx + (dist + off) * np.cos(th)
        # stacks: short curved segments tangential to the nucleus
        sl = rng.uniform(0.5, 1.5, ne) * um * (1 - 0.5 * frag)
        tang = th + np.pi / 2 + rng.normal(0, 0.3 + 1.2 * frag * (v != "arc"), ne)
        t = np.linspace(-0.5, 0.5, 6)
        bend = rng.normal(0, 0.3, ne)
        Y = ey[:, None] + t[None] * sl[:, None] * np.sin(tang)[:, None] + bend[:, None] * (t[None] ** 2) * sl[:, None]
        X = ex[:, None] + t[None] * sl[:, None] * np.cos(tang)[:, None]
        w = rng.uniform(0.3, 0.7, ne) * um
        inten = rng.lognormal(0, 0.4, ne)
        ok = K.at(c.cell, Y, X) & ~K.at(c.nucleus, Y, X)
        K.paths(img, Y, X, ok, inten, w)
        if not frag > 0.6 and v == "arc":  # continuous ribbon connecting stacks along the arc
            o = np.argsort(th)
            K.paths(img, ey[o][None], ex[o][None], np.ones((1, ne), bool), 0.5 * np.median(inten),
                    0.3 * um)
        np_ = min(ne, int(rng.integers(2, 8)))
        K.dots(img, ey[:np_], ex[:np_], rng.uniform(0.3, 0.75, np_) * um, rng.uniform(0.8, 1.5, np_))
        allY.append(ey)
        allX.append(ex)
    ey, ex = np.concatenate(allY), np.concatenate(allX)
    nv = int(rng.integers(3, 25) + gpp * rng.integers(0, 40) + frag * 30)
    i = rng.integers(0, ey.size, nv)
    vy, vx = ey[i] + rng.normal(0, 2 * um, nv), ex[i] + rng.normal(0, 2 * um, nv)
    okv = K.at(c.cell, vy, vx) & ~K.at(c.nucleus, vy, vx)
    K.dots(img, vy[okv], vx[okv], rng.uniform(0.15, 0.25, okv.sum()) * um, rng.uniform(0.4, 1.0, okv.sum()))
    npp = int(rng.integers(0, 10) + gpp * rng.integers(0, 60) * frag)  # peripheral puncta
    if npp:
        y, x = K.sample_points(rng, c.T * (~c.nucleus), npp)
        K.dots(img, y, x, rng.uniform(0.15, 0.25, npp) * um, rng.uniform(0.2, 0.6, npp))
    img += rng.uniform(0.0, 0.04) * _cyto_bg(c, 0.4)
    return rng.uniform(0.005, 0.06)


def _puncta(c, rng, img, info, lyso):
    um = 1 / c.px
    if lyso:
        n = int(_lu(rng, 30, 300))
        diam = np.clip(rng.lognormal(np.log(rng.uniform(0.6, 1.0)), 0.3, n), 0.45, 1.6) * um
        ringf = np.where(diam > 0.8 * um, (rng.random(n) < rng.uniform(0.3, 0.9)) * 1.0, 0.0)
        inten = rng.lognormal(0, 0.45, n)
        v = rng.choice(["perinuclear", "dispersed", "peripheral"], p=[0.6, 0.28, 0.12])
        fpn = {"perinuclear": rng.uniform(0.5, 0.9), "dispersed": rng.uniform(0.1, 0.4), "peripheral": 0.05}[v]
        lam = rng.uniform(1.5, 5)
    else:
        n = int(_lu(rng, 50, 500))
        diam = np.clip(rng.lognormal(np.log(rng.uniform(0.25, 0.45)), 0.25, n), 0.18, 0.65) * um
        ringf = np.zeros(n)
        inten = rng.lognormal(0, 0.55, n)
        v = rng.choice(["scattered", "perinuclear", "clustered"], p=[0.45, 0.3, 0.25])
        fpn = {"scattered": rng.uniform(0.0, 0.25), "perinuclear": rng.uniform(0.3, 0.6)}.get(v, 0.15)
        lam = rng.uniform(2, 6)
    if c.state != "interphase":
        fpn = 0.3
    info["variant"], info["n"] = str(v), n
    npn = int(n * fpn)
    # perinuclear cloud, biased to the centrosome side
    near = np.exp(-c.Dn_out / (lam * um)) * (~c.nucleus) * c.cell
    side = np.exp(-((np.arange(c.shape[0])[:, None] - c.csy) ** 2 + (np.arange(c.shape[1])[None] - c.csx) ** 2)
                  / (2 * (rng.uniform(3, 8) * um) ** 2))
    y1, x1 = K.sample_points(rng, near * (0.3 + side), npn)
    if v == "peripheral":
        w = np.exp(-c.D / (3 * um)) * c.cell
    else:
        w = c.T ** 0.5 * (~c.nucleus) * (c.D > 0.3 * um)
    y2, x2 = K.sample_points(rng, w, n - npn)
    y, x = np.concatenate([y1, y2]), np.concatenate([x1, x2])
    if v == "clustered":
        k = int(max(1, y.size // 6))
        y[k:] = y[rng.integers(0, k, y.size - k)] + rng.normal(0, 0.6 * um, y.size - k)
        x[k:] = x[rng.integers(0, k, x.size - k)] + rng.normal(0, 0.6 * um, x.size - k)
    ok = K.at(c.cell, y, x)
    if not lyso:
        ok &= ~K.at(c.nucleus, y, x) | (rng.random(y.size) < 0.05)
    K.dots(img, y[ok], x[ok], diam[ok] / 2, inten[ok], ringf[ok])
    if not lyso:
        img += rng.uniform(0.0, 0.3) * np.exp(-c.D / max(0.3 * um, 0.7)) * c.cell * (rng.random() < 0.6)
        img += rng.uniform(0.02, 0.1) * _cyto_bg(c, 0.2)
        return rng.uniform(0.02, 0.15)
    img += rng.uniform(0.01, 0.08) * _cyto_bg(c, 0.3)
    return rng.uniform(0.01, 0.15)


def _mito(c, rng, img, info):
    um = 1 / c.px
    v = rng.choice(["network", "fragmented", "clump", "parallel"], p=[0.45, 0.2, 0.2, 0.15])
    if c.state != "interphase":
        v = "fragmented" if rng.random() < 0.7 else "clump"
    info["variant"] = str(v)
    area_um2 = float((c.cell & ~c.nucleus).sum()) * c.px ** 2
    meanL = {"network": 3.5, "fragmented": 1.2, "clump": 2.5, "parallel": 6}[v] * rng.uniform(0.7, 1.4)
    n = int(np.clip(area_um2 * rng.uniform(0.5, 1.6) / meanL, 20, 1200))
    lam = {"clump": rng.uniform(1.5, 3.5)}.get(v, rng.uniform(3, 12))
    w = c.T * (~c.nucleus) * (0.15 + np.exp(-c.Dn_out / (lam * um)))
    y, x = K.sample_points(rng, w, n)
    L = np.clip(rng.lognormal(np.log(meanL), 0.6, n), 0.5, 10) * um
    ang = rng.uniform(0, K.TAU, n) if v != "parallel" else c.alpha + rng.normal(0, 0.25, n)
    step = max(0.7, 0.3 * um)
    ns = int(min(200, L.max() / step + 1))
    Y, X, ok = _walk(c, rng, y, x, ang, ns, step, rng.uniform(0.1, 0.22) * np.sqrt(step / um / 0.3), L, edge_um=0.7,
                     avoid_nucleus=rng.random() < 0.9)
    width = np.clip(rng.lognormal(np.log(0.4), 0.25, n), 0.3, 0.7) * um
    inten = rng.uniform(0.6, 1.2, n)
    over = np.where(K.at(c.nucleus, Y, X), rng.uniform(0.2, 0.6), 1.0)  # out of focus above the nucleus
    K.paths(img, Y, X, ok, inten[:, None] * over, width)
    if v == "network":  # branches from random points on existing tubules
        nb = n // 2
        i = rng.integers(0, n, nb)
        j = (rng.random(nb) * np.maximum(ok[i].sum(1) - 1, 0)).astype(int)
        by, bx = Y[i, j], X[i, j]
        okb0 = ok[i, j]
        ba = rng.uniform(0, K.TAU, nb)
        Lb = rng.uniform(1, 4, nb) * um
        Yb, Xb, okb = _walk(c, rng, by, bx, ba, int(min(100, Lb.max() / step + 1)), step, 0.2, Lb, edge_um=0.7)
        okb &= okb0[:, None]
        K.paths(img, Yb, Xb, okb, inten[i], width[i])
    nf = int(n * (0.3 if v == "fragmented" else 0.1))
    fy, fx = K.sample_points(rng, w, nf)
    K.dots(img, fy, fx, rng.uniform(0.25, 0.5, nf) * um, rng.uniform(0.6, 1.2, nf))
    img += rng.uniform(0.0, 0.1) * _cyto_bg(c, 0.3)
    return rng.uniform(0.02, 0.15)


def _nucleolus(c, rng, img, info):
    um = 1 / c.px
    if c.state == "mitotic":
        info["variant"] = "chromosome coat"
        img += c.chrom * rng.uniform(0.4, 1.0) + rng.uniform(0.1, 0.3) * c.T
        return 0.1
    info["variant"] = f"{len(c.nucleoli_list)} nucleoli"
    nuc = ndi.gaussian_filter(c.nucleoli, 0.12 * um)
    tex = np.clip(1 + 0.3 * K.noise(rng, c.shape, 0.4 * um), 0.2, None)
    body = nuc * tex
    if rng.random() < 0.6:  # dimmer fibrillar centres
        for (y, x, r) in c.nucleoli_list:
            nfc = int(rng.integers(2, 9))
            fc = np.zeros(c.shape)
            K.dots(fc, y + rng.normal(0, 0.45 * r, nfc), x + rng.normal(0, 0.45 * r, nfc),
                   rng.uniform(0.15, 0.35, nfc) * um, 1.0)
            body *= 1 - 0.5 * np.clip(fc, 0, 1)
    if rng.random() < 0.4:  # brighter rim
        Dl = ndi.distance_transform_edt(c.nucleoli > 0.5)
        body *= 1 + 0.5 * np.exp(-Dl / (0.3 * um)) * (c.nucleoli > 0.5)
    img += body
    img += rng.uniform(0.05, 0.2) * c.nuc_soft * np.clip(1 + 0.2 * K.noise(rng, c.shape, 0.5 * um), 0, None)
    img += rng.uniform(0.0, 0.05) * c.T * (~c.nucleus)
    return 0.0


def _nucleus(c, rng, img, info, dna):
    um = 1 / c.px
    if c.state == "mitotic":
        if rng.random() < 0.6:
            info["variant"] = "DNA stain"
            img += dna
        else:
            info["variant"] = "nucleoplasmic protein (spread)"
            img += 0.6 * c.T + 0.3 * c.chrom
        return 0.0
    if rng.random() < 0.5:
        info["variant"] = "DNA stain"
        img += dna * np.clip(1 + 0.08 * K.noise(rng, c.shape, 0.5 * um), 0, None)
        return 0.0
    info["variant"] = "nucleoplasmic protein"
    speck = rng.uniform(0.05, 0.35)
    fill = c.nuc_soft * np.clip(1 + speck * K.noise(rng, c.shape, rng.uniform(0.2, 0.5) * um), 0, None)
    fill *= 1 + rng.uniform(-0.2, 0.4) * np.exp(-c.Dn_in / (0.5 * um))
    fill *= 1 - rng.uniform(0.3, 0.95) * ndi.gaussian_filter(c.nucleoli, 0.15 * um)
    img += fill + rng.uniform(0, 0.05) * c.T * (~c.nucleus)
    return 0.0


# ----------------------------------------------------------------------------- render
def render(cls: str, rng: np.random.Generator, *, size: int, diameter: float) -> RenderedCell:
    if cls not in CLASSES:
        raise ValueError(f"Unknown class {cls!r}; expected one of {', '.join(CLASSES)}.")
    if size < 1.25 * diameter:
        raise ValueError(f"size {size} must be at least 1.25 x diameter ({diameter}).")
    c = K.make_cell(rng, size, diameter)
    dna = K.dna_image(c, rng)
    img = np.zeros(c.shape)
    info = {"line": c.line, "binucleate": c.binucleate}
    if cls == "ActinFilaments":
        bg = _actin(c, rng, img, info)
    elif cls == "Microtubules":
        bg = _microtubules(c, rng, img, info)
    elif cls == "ER":
        bg = _er(c, rng, img, info)
    elif cls in ("Golgi_gia", "Golgi_gpp"):
        bg = _golgi(c, rng, img, info, cls == "Golgi_gpp")
    elif cls in ("Endosome", "Lysosome"):
        bg = _puncta(c, rng, img, info, cls == "Lysosome")
    elif cls == "Mitochondria":
        bg = _mito(c, rng, img, info)
    elif cls == "Nucleolus":
        bg = _nucleolus(c, rng, img, info)
    else:
        bg = _nucleus(c, rng, img, info, dna)
    img *= c.cell
    inside = img[c.cell]
    top = float(np.percentile(inside[inside > 0.02 * inside.max()], 99)) if inside.max() > 0 else 1.0
    img /= max(top, 1e-9)
    img += bg * _cyto_bg(c, 0.35 if cls not in ("Nucleolus", "Nucleus") else 1.0)
    expr = _lu(rng, 0.4, 2.5)
    img = np.clip(img, 0, None) * c.cell * expr
    if img.max() > 15:
        img *= 15 / img.max()
    dna = np.clip(dna, 0, None)
    if dna.max() <= 0:
        dna = c.nuc_soft * 0.5
    info["expression"] = expr
    (oy, ox), (h, w) = c.off, c.shape

    def frame(a, dtype):
        out = np.zeros((size, size), dtype)
        out[oy:oy + h, ox:ox + w] = a
        return out

    return RenderedCell(protein=frame(img, np.float32), dna=frame(dna, np.float32), cell=frame(c.cell, bool),
                        nucleus=frame(c.nucleus & c.cell, bool), pixel_size_um=float(c.px), state=c.state,
                        info=info)
