"""Protein drawing for the ten classes of the ``indep_d`` renderer (numpy + scipy only).

Each ``_<class>`` function takes the class-independent ``Geometry`` (``_indep_d_cell``), the
generator and an ``info`` dict (it records the variant drawn) and returns the specimen's protein
density before normalisation. Densities are per unit area; a line of physical width ``w`` drawn
one pixel wide carries ``D * w / pixel_size`` per pixel so its brightness per unit length does not
depend on the pixel size.
"""

from __future__ import annotations

import numpy as np

from . import _indep_d_cell as C

TWO_PI = 2 * np.pi

def _lw(g, D, w_um=0.25):
    """Per-px-length weight of a line of physical width w_um and density D."""
    return D * w_um / g.p


def _amt(g, D, d_um):
    """Total amount of a dot of diameter d_um and density D (in px units)."""
    return D * (np.asarray(d_um) / g.p) ** 2 * np.pi / 4


def _dsig(g, d_um):
    return max(0.0, float(d_um) / 2.355 / g.p)


def _walk(g, rng, y, x, th, n_steps, step_px, curv, edge="stop", edge_steps=None, umax=0.96):
    """Vectorised persistent random walks. Returns P (N, S+1, 2) and valid (N, S)."""
    N = y.size
    P = np.zeros((N, n_steps + 1, 2))
    P[:, 0, 0], P[:, 0, 1] = y, x
    valid = np.zeros((N, n_steps), bool)
    alive = np.ones(N, bool)
    on_edge = np.zeros(N, int)
    th = th.copy()
    curv = np.broadcast_to(np.asarray(curv, float), (N,))
    es = np.full(N, 10 ** 6) if edge_steps is None else edge_steps
    drift = rng.normal(0, 1, N) * curv * 0.5  # a persistent bend direction per walk
    for s in range(n_steps):
        th = th + rng.normal(0, 1, N) * curv + drift
        ny = y + np.sin(th) * step_px
        nx = x + np.cos(th) * step_px
        u, _ = g.u_at(ny, nx)
        out = u > umax
        if edge == "follow":
            dy, dx = ny - g.cy, nx - g.cx
            rad = np.arctan2(dy, dx)
            tang = rad + np.pi / 2
            sgn = np.sign(np.cos(th - tang))
            sgn[sgn == 0] = 1
            tnew = tang + (sgn < 0) * np.pi - 0.08 * sgn
            th = np.where(out, tnew, th)
            ny = np.where(out, g.cy + dy * umax / np.maximum(u, 1e-9), ny)
            nx = np.where(out, g.cx + dx * umax / np.maximum(u, 1e-9), nx)
            on_edge += out | (on_edge > 0)
            alive &= on_edge <= es
        elif edge == "reflect":
            th = np.where(out, th + np.pi + rng.normal(0, 0.5, N), th)
            ny = np.where(out, y, ny)
            nx = np.where(out, x, nx)
        else:
            alive &= ~out
        valid[:, s] = alive
        y, x = np.where(alive, ny, y), np.where(alive, nx, x)
        P[:, s + 1, 0], P[:, s + 1, 1] = y, x
    return P, valid


def _haze(g, rng, level, nuc_frac, grain_um=None):
    """Diffuse protein: cytoplasm (weighted by thickness) and nucleus at nuc_frac of it."""
    t = g.thick * g.cyto + nuc_frac * g.ncover * (0.5 + 0.5 * g.thick)
    if grain_um:
        t = t * np.clip(1 + 0.25 * C.noise(rng, g.size, grain_um / g.p, g.box), 0.3, None)
    return level * t


def _ring_dist(g):
    return np.abs(1 - g.nu) * g.rn_px * g.p  # um from the nuclear outline


# ----------------------------------------------------------------------------------------------
def _actin(g, rng, info):
    size, p = g.size, g.p
    img = np.zeros((size, size))
    edge_um = g.edge * p
    if g.state != "interphase":
        w = rng.uniform(0.5, 1.5)
        img += np.exp(-((edge_um / w) ** 2)) * g.cover * rng.uniform(0.8, 1.2)
        img += _haze(g, rng, rng.uniform(0.08, 0.3), 0.3, 0.5)
        info["variant"] = "cortex ring"
        return img
    variant = rng.choice(["fibres", "fibres", "few_fibres", "cortex", "podosomes", "ruffles"])
    info["variant"] = str(variant)
    # cortex
    cw = float(np.clip(rng.lognormal(np.log(0.8), 0.35), 0.5, 2.0))  # cortex width, um
    cort = np.exp(-((edge_um / cw) ** 2))
    th = np.mod(np.arctan2(g.yy - g.cy, g.xx - g.cx) - g.alpha, TWO_PI)
    shared = np.interp(th, C._THG, g.cut_tab.astype(float), period=TWO_PI)
    cort = cort * (1 + 1.2 * shared) * np.clip(1 + rng.uniform(0.1, 0.4) * C.noise(rng, size, 2.0 / p, g.box), 0.2, None)
    cort_amp = {"cortex": 1.0, "few_fibres": 0.6}.get(variant, rng.uniform(0.2, 0.6))
    img += cort_amp * cort * g.cover
    # stress fibres
    nf = {"fibres": rng.integers(25, 80), "few_fibres": rng.integers(0, 8), "cortex": rng.integers(0, 4),
          "podosomes": rng.integers(0, 10), "ruffles": rng.integers(3, 20)}[variant]
    nf = int(nf * np.clip(g.area_px * p * p / 900, 0.12, 1.5))
    if nf:
        cy, cx = g.sample(rng, nf, lambda y, x, u, nu, t: (u < 0.8).astype(float))
        nf = cy.size
        mode = rng.choice(["parallel", "fan", "crossing"])
        base = g.alpha + rng.normal(0, 0.1)
        ang = base + rng.normal(0, 0.15, nf)
        if mode == "fan":
            ang = base + rng.uniform(-0.6, 0.6, nf)
        elif mode == "crossing":
            ang = ang + (rng.random(nf) < 0.4) * rng.uniform(0.6, 1.4)
        info["fibres"] = f"{nf} {mode}"
        T = np.linspace(-1, 1, 121)[None, :] * (45 / p)
        Y = cy[:, None] + np.sin(ang)[:, None] * T
        X = cx[:, None] + np.cos(ang)[:, None] * T
        u, _ = g.u_at(Y, X)
        inside = u < 0.93
        mid = 60
        r_end = mid + np.argmin(np.concatenate([inside[:, mid:], np.zeros((nf, 1), bool)], 1), 1) - 1
        l_end = mid - np.argmin(np.concatenate([inside[:, mid::-1], np.zeros((nf, 1), bool)], 1), 1) + 1
        Lmax = rng.uniform(5, 40, nf) / p / (T[0, 1] - T[0, 0])
        keep_r = np.minimum(r_end, mid + (Lmax * rng.uniform(0.3, 0.7, nf)).astype(int))
        keep_l = np.maximum(l_end, mid - (Lmax * rng.uniform(0.3, 0.7, nf)).astype(int))
        idx = np.arange(121)[None, :]
        val = (idx[:, :-1] >= keep_l[:, None]) & (idx[:, :-1] < keep_r[:, None])
        P = np.stack([Y, X], -1)
        width = rng.uniform(0.2, 0.35) if rng.random() < 0.6 else rng.uniform(0.35, 0.9)
        fb = rng.lognormal(0, 0.35, nf)[:, None] * np.ones((1, 120))
        nuY, nuX = 0.5 * (Y[:, 1:] + Y[:, :-1]), 0.5 * (X[:, 1:] + X[:, :-1])
        fb = fb * np.where(g.nu_at(nuY, nuX) < 1, rng.uniform(0.3, 0.9), 1.0)
        fib = C.paths(size, P, val, _lw(g, 1.0, width) * fb)
        img += C.blur(fib, _dsig(g, width))
        # focal adhesions at the ends near the edge
        ends = []
        for k_end, sgn in ((keep_r, 1), (keep_l, -1)):
            ey, ex = Y[np.arange(nf), k_end], X[np.arange(nf), k_end]
            ue, _ = g.u_at(ey, ex)
            ok = ue > 0.75
            ends.append((ey[ok], ex[ok], ang[ok] + (sgn < 0) * np.pi))
        ey = np.concatenate([e[0] for e in ends])
        ex = np.concatenate([e[1] for e in ends])
        ea = np.concatenate([e[2] for e in ends])
        if ey.size:
            fl = rng.uniform(1, 5, ey.size) / p
            a = np.stack([ey - np.sin(ea) * fl, ex - np.cos(ea) * fl], 1)
            b = np.stack([ey, ex], 1)
            fa = C.segments(size, a, b, _lw(g, rng.uniform(1.2, 2.0), 0.6) * rng.lognormal(0, 0.3, ey.size))
            img += C.blur(fa, _dsig(g, 0.6))
    # lamellipodium / ruffle band with a fine mesh, transverse arcs, filopodia
    if variant in ("ruffles", "fibres") and rng.random() < (0.9 if variant == "ruffles" else 0.4):
        c = rng.uniform(0, TWO_PI) if not g.info.get("fan") else rng.normal(0, 0.3)
        wa = rng.uniform(0.4, 1.2)
        d = np.angle(np.exp(1j * (th - c)))
        band = np.exp(-0.5 * (d / wa) ** 4) * np.exp(-((edge_um / rng.uniform(2, 5)) ** 2))
        mesh = np.clip(1 + 0.6 * C.noise(rng, size, 0.35 / p, g.box), 0, None)
        img += rng.uniform(0.5, 1.0) * band * mesh * g.cover
        info["lamella"] = True
        if rng.random() < 0.6:  # transverse arcs behind the lamella
            na = int(rng.integers(2, 6))
            tt = np.linspace(-wa, wa, 40)
            for k in range(na):
                uu = rng.uniform(0.6, 0.85)
                thp = c + tt + g.alpha
                rr = np.interp(np.mod(c + tt, TWO_PI), C._THG, g.rtab, period=TWO_PI) * uu
                P = np.stack([g.cy + np.sin(thp) * rr, g.cx + np.cos(thp) * rr], -1)[None]
                img += C.blur(C.paths(size, P, np.ones((1, 39), bool), _lw(g, 0.8, 0.5)), _dsig(g, 0.5))
    if rng.random() < 0.4:  # filopodia: thin spikes out of the edge (part of the cell)
        nfp = int(rng.integers(3, 25))
        t = rng.uniform(0, TWO_PI, nfp)
        rr = np.interp(t, C._THG, g.rtab, period=TWO_PI)
        L = np.minimum(rng.uniform(2, 10, nfp) / p, 0.035 * g.rtab.max() * 2)
        ta = t + g.alpha + rng.normal(0, 0.25, nfp)
        sy, sx = g.cy + np.sin(t + g.alpha) * (rr - 2), g.cx + np.cos(t + g.alpha) * (rr - 2)
        a = np.stack([sy, sx], 1)
        b = np.stack([sy + np.sin(ta) * L, sx + np.cos(ta) * L], 1)
        ok = (b[:, 0] > 4) & (b[:, 0] < size - 5) & (b[:, 1] > 4) & (b[:, 1] < size - 5)
        fil = C.segments(size, a[ok], b[ok], _lw(g, 0.6, 0.2))
        img += fil
        g.extra_mask = fil > 0.05 * _lw(g, 0.6, 0.2)
        info["filopodia"] = int(ok.sum())
    if variant == "podosomes":
        n = int(rng.integers(20, 120))
        y, x = g.sample(rng, n, lambda y, x, u, nu, t: ((u > 0.3) & (u < 0.9) & (nu > 1.1)).astype(float))
        d = rng.uniform(0.5, 1.0)
        img += C.dots(size, y, x, _amt(g, 1.2, d) * rng.lognormal(0, 0.3, y.size), _dsig(g, d))
    # diffuse fine meshwork, dimmer over the nucleus
    mesh = np.clip(1 + 0.35 * C.noise(rng, size, 0.3 / p, g.box), 0, None)
    img += rng.uniform(0.05, 0.3) * mesh * (g.thick * g.cyto + 0.35 * g.ncover)
    return img


def _microtubules(g, rng, info):
    size, p = g.size, g.p
    img = np.zeros((size, size))
    if g.state == "mitotic" and g.poles is not None:
        info["variant"] = "spindle"
        n = int(rng.integers(60, 140))
        for (py, px) in g.poles:
            ty, tx = g.sample(rng, n, lambda y, x, u, nu, t: (nu < 1.6).astype(float))
            a = np.stack([np.full(ty.size, py), np.full(ty.size, px)], 1)
            b = np.stack([ty, tx], 1)
            img += C.segments(size, a, b, _lw(g, 0.5) * rng.uniform(0.5, 1.5, ty.size))
            m = int(rng.integers(10, 30))  # astral
            t = rng.uniform(0, TWO_PI, m)
            L = rng.uniform(1, 4, m) / p
            img += C.segments(size, np.stack([np.full(m, py), np.full(m, px)], 1),
                              np.stack([py + np.sin(t) * L, px + np.cos(t) * L], 1), _lw(g, 0.4))
            img += C.dots(size, [py], [px], [_amt(g, 3.0, 1.0)], _dsig(g, 1.0))
        img = C.blur(img, _dsig(g, 0.3))
        img += _haze(g, rng, rng.uniform(0.05, 0.2), 0.8)
        return img
    variant = rng.choice(["radial", "radial", "radial", "meshwork", "parallel", "wavy"])
    if g.state != "interphase":
        variant = "meshwork"
    info["variant"] = str(variant)
    area_um = g.area_px * p * p
    n = int(np.clip(area_um * rng.uniform(0.3, 0.8), 120, 700))
    my, mx = g.mtoc
    if variant == "radial":  # centrosomal plus some non-centrosomal (Golgi / cytoplasmic) nucleation
        y = my + rng.normal(0, rng.uniform(0.4, 1.2) / p, n)
        x = mx + rng.normal(0, rng.uniform(0.4, 1.2) / p, n)
        nc = int(n * rng.uniform(0.2, 0.7))
        if nc:
            yo, xo = g.sample(rng, nc, lambda y, x, u, nu, t: 0.3 + 0.7 * t)
            y[: yo.size], x[: xo.size] = yo, xo
        th = rng.uniform(0, TWO_PI, n)
    else:
        y, x = g.sample(rng, n, lambda y, x, u, nu, t: 0.3 + 0.7 * t)
        n = y.size
        th = rng.uniform(0, TWO_PI, n)
        if variant == "parallel":
            th = g.alpha + rng.normal(0, 0.2, n) + np.pi * (rng.random(n) < 0.5)
    step_um = 0.8
    curv = {"wavy": 0.25, "parallel": 0.06, "meshwork": rng.uniform(0.12, 0.2)}.get(str(variant), rng.uniform(0.07, 0.16)) * np.ones(n)
    L = rng.uniform(10, 40, n)
    steps = int(40 / step_um)
    es = (rng.uniform(0.3, 3, n) / step_um).astype(int) * (rng.random(n) < rng.uniform(0.3, 0.8))
    P, valid = _walk(g, rng, y, x, th, steps, step_um / p, curv, edge="follow", edge_steps=es, umax=0.95)
    valid &= (np.arange(steps)[None, :] < (L / step_um)[:, None])
    mY, mX = 0.5 * (P[:, 1:, 0] + P[:, :-1, 0]), 0.5 * (P[:, 1:, 1] + P[:, :-1, 1])
    nu_m = g.nu_at(mY, mX)
    over_nuc = nu_m < 1
    u_m, e_m = g.u_at(mY, mX)
    thick_m = g.thick_at(u_m, e_m, nu_m)  # more polymer stacked where the cell is thick
    bundled = 1 + (rng.random(n) < 0.15)[:, None] * rng.uniform(0.8, 2)
    w = (0.45 + 0.55 * thick_m) * rng.lognormal(0, 0.25, n)[:, None] * bundled
    w = w * rng.uniform(0.35, 0.7)  # hundreds of lines: each one fainter than a stress fibre
    w = w * np.where(over_nuc, rng.uniform(0.15, 0.5), 1.0)
    img += C.paths(size, P, valid, _lw(g, 1.0) * w)
    # haze: free tubulin plus the crowded centre
    hz = rng.uniform(0.03, 0.25)
    d_mtoc = np.hypot(g.yy - my, g.xx - mx) * p
    img += _haze(g, rng, hz, 0.4)
    img += rng.uniform(0.05, 0.4) * np.exp(-d_mtoc / rng.uniform(3, 8)) * g.thick * g.cyto
    if rng.random() < 0.5:
        img += C.dots(size, [my], [mx], [_amt(g, rng.uniform(1, 3), 0.8)], _dsig(g, 0.8))
        info["mtoc_spot"] = True
    if g.state == "interphase" and rng.random() < 0.05:  # midbody remnant: a bright bar at the edge
        t = rng.uniform(0, TWO_PI)
        rr = np.interp(t, C._THG, g.rtab, period=TWO_PI) * 0.9
        cy, cx = g.cy + np.sin(t + g.alpha) * rr, g.cx + np.cos(t + g.alpha) * rr
        L = rng.uniform(1.5, 3.5) / p
        a = np.array([[cy - np.sin(t + g.alpha) * L / 2, cx - np.cos(t + g.alpha) * L / 2]])
        b = np.array([[cy + np.sin(t + g.alpha) * L / 2, cx + np.cos(t + g.alpha) * L / 2]])
        img += C.blur(C.segments(size, a, b, _lw(g, 3.0, 0.5)), _dsig(g, 0.5)) * g.cover
        info["midbody"] = True
    return img


def _er_lattice(g, rng, a_px, half_extent=None, centre=None):
    """Jittered, warped, rotated brick-wall lattice (honeycomb topology: 3-way junctions)."""
    y_lo, y_hi, x_lo, x_hi = g.bbox
    R = (max(y_hi - y_lo, x_hi - x_lo) * 0.75 if half_extent is None else half_extent) + 2 * a_px
    hx, hy = 0.5 * a_px, 0.87 * a_px  # a honeycomb of edge ~0.58 a (polygons ~a across)
    nj, ni = int(2 * R / hx) + 1, int(2 * R / hy) + 1
    if ni * nj > 50000:
        s = np.sqrt(ni * nj / 50000)
        hx, hy = hx * s, hy * s
        nj, ni = int(2 * R / hx) + 1, int(2 * R / hy) + 1
    I, J = np.mgrid[0:ni, 0:nj]
    wy = C.noise(rng, max(ni, nj), 6.0)[:ni, :nj] * 0.8 * hy
    wx = C.noise(rng, max(ni, nj), 6.0)[:ni, :nj] * 0.8 * hx
    zig = np.where((I + J) % 2 == 0, hy / 6, -hy / 6)  # zig-zag rows: 120-degree junctions
    vy = (I * hy - R) + zig + rng.normal(0, 0.2 * hy, I.shape) + wy
    vx = (J * hx - R) + rng.normal(0, 0.2 * hx, I.shape) + wx
    rot = rng.uniform(0, TWO_PI)
    cy0, cx0 = (0.5 * (y_lo + y_hi), 0.5 * (x_lo + x_hi)) if centre is None else centre
    Y = cy0 + vy * np.cos(rot) - vx * np.sin(rot)
    X = cx0 + vy * np.sin(rot) + vx * np.cos(rot)
    hA = np.stack([Y[:, :-1].ravel(), X[:, :-1].ravel()], 1)
    hB = np.stack([Y[:, 1:].ravel(), X[:, 1:].ravel()], 1)
    vm = ((I[:-1] + J[:-1]) % 2 == 0).ravel()
    vA = np.stack([Y[:-1].ravel(), X[:-1].ravel()], 1)[vm]
    vB = np.stack([Y[1:].ravel(), X[1:].ravel()], 1)[vm]
    A = np.concatenate([hA, vA])
    B = np.concatenate([hB, vB])
    M = 0.5 * (A + B)
    u, e = g.u_at(M[:, 0], M[:, 1])
    inside = u < 1
    A, B, M, u, e = A[inside], B[inside], M[inside], u[inside], e[inside]
    nu = g.nu_at(M[:, 0], M[:, 1])
    return A, B, u, e, nu


def _er(g, rng, info):
    size, p = g.size, g.p
    img = np.zeros((size, size))
    compact = g.line in ("epithelial", "hiPSC") or g.state != "interphase"
    marker = rng.choice(["tubular", "tubular", "sheet", "mixed", "cloud" if compact else "tubular"])
    info["variant"] = str(marker)
    mesh_um = rng.uniform(0.5, 2.0)
    a_px = max(mesh_um / p, 2.2)  # below ~2 px the meshes are not resolved anyway: a grainy stain
    A, B, u, e, nu = _er_lattice(g, rng, a_px)
    reach = rng.uniform(0.85, 1.0)
    dn = np.maximum(nu - 1, 0) * g.rn_px * p
    periph = rng.uniform(4, 15)
    keep_p = np.clip(0.3 * np.exp(-dn / periph) + rng.uniform(0.62, 0.75), 0, 0.97) * (u < reach) * (nu > 1)
    keep = rng.random(A.shape[0]) < keep_p
    w = g.thick_at(u, e, nu)[keep] ** 0.5 * rng.lognormal(0, 0.25, keep.sum())
    tub_amp = {"sheet": rng.uniform(0.3, 0.6), "cloud": rng.uniform(0.2, 0.5)}.get(str(marker), rng.uniform(0.7, 1.0))
    img += C.segments(size, A[keep], B[keep], _lw(g, tub_amp, 0.2) * w)
    # a finer, denser mesh in the perinuclear zone (crowded tubules)
    dense_um = rng.uniform(2, 6)
    a2 = max(a_px * rng.uniform(0.45, 0.7), 2.0)
    if a2 < a_px * 0.9:
        ny, nx = g.nuclei[0][0], g.nuclei[0][1]
        A2, B2, u2, e2, nu2 = _er_lattice(g, rng, a2, half_extent=g.rn_px * 1.3 + dense_um / p, centre=(ny, nx))
        dn2 = np.maximum(nu2 - 1, 0) * g.rn_px * p
        k2 = (rng.random(A2.shape[0]) < 0.95 * np.exp(-((dn2 / dense_um) ** 2))) & (nu2 > 1) & (u2 < reach)
        w2 = g.thick_at(u2, e2, nu2)[k2] ** 0.5 * rng.lognormal(0, 0.25, k2.sum())
        img += C.segments(size, A2[k2], B2[k2], _lw(g, tub_amp * rng.uniform(0.5, 0.9), 0.2) * w2)
    # perinuclear sheets: a nearly uniform bright zone 2-8 um wide (grainy)
    sw = rng.uniform(2, 8) if g.line not in ("epithelial", "hiPSC") else rng.uniform(1.5, 5)
    sheet_amp = {"sheet": rng.uniform(0.6, 1.0), "mixed": rng.uniform(0.4, 0.7),
                 "cloud": rng.uniform(0.8, 1.2)}.get(str(marker), rng.uniform(0.15, 0.45))
    if marker == "cloud":
        sw = sw * rng.uniform(1.3, 2.0)
    grain = np.clip(1 + 0.35 * C.noise(rng, size, max(0.35 / p, 0.8), g.box), 0, None)
    img += sheet_amp * np.exp(-((g.dn_um / sw) ** 1.5)) * g.cyto * g.thick ** 0.5 * grain
    # nuclear envelope ring; the nucleus itself dark or dim (ER above/below in widefield)
    ne = np.exp(-((_ring_dist(g) / max(0.2, 0.8 * p)) ** 2)) * g.cover
    img += rng.uniform(0.5, 1.0) * ne * (g.state != "mitotic")
    img += rng.uniform(0.0, 0.2) * g.ncover * (1 + 0.3 * C.noise(rng, size, 0.6 / p, g.box)).clip(0)
    img += _haze(g, rng, rng.uniform(0.02, 0.2), 0.15)
    if g.state == "mitotic":  # ER through the rounded cell, excluded from chromosomes
        img = img * (1 - g.ncover) + 0.0
    return img


def _golgi(g, rng, info, gpp):
    size, p = g.size, g.p
    img = np.zeros((size, size))
    if g.state == "mitotic":
        n = int(rng.integers(150, 500))
        y, x = g.sample(rng, n, lambda y, x, u, nu, t: (nu > 1.1) * 1.0)
        img += C.dots(size, y, x, _amt(g, 0.6, 0.4) * rng.lognormal(0, 0.4, y.size), _dsig(g, 0.4))
        img += _haze(g, rng, rng.uniform(0.05, 0.25), 0.3)
        info["variant"] = "mitotic haze"
        return img
    # tendencies: gpp130 more fragmented, more puncta, wider spread (overlapping distributions)
    frag = np.clip(rng.normal(0.55 if gpp else 0.3, 0.2), 0, 1)
    variant = rng.choice(["knot", "arc", "arc", "cap", "two", "dispersed"],
                         p=[0.22, 0.25, 0.2, 0.15, 0.08, 0.10] if not gpp else [0.17, 0.22, 0.2, 0.13, 0.11, 0.17])
    info["variant"] = str(variant)
    info["fragmentation"] = round(float(frag), 2)
    phi = g.mtoc_phi
    span = {"knot": rng.uniform(0.25, 0.6), "arc": rng.uniform(1.5, 3.1), "cap": rng.uniform(0.8, 1.6),
            "two": rng.uniform(0.3, 0.8), "dispersed": rng.uniform(2.0, 4.0)}[str(variant)]
    rn_um = g.rn_px * p
    span = min(span, 12.0 / max(rn_um, 1e-3))  # ribbon 3-10 (up to ~12) um along the envelope
    n_el = int(rng.integers(12, 40) * (1 - 0.35 * frag) * (1.5 if variant == "dispersed" else 1))
    centres = [phi] if variant != "two" else [phi - rng.uniform(0.6, 1.2), phi + rng.uniform(0.6, 1.2)]
    ci = rng.integers(0, len(centres), n_el)
    t = np.array(centres)[ci] + rng.uniform(-0.5, 0.5, n_el) * span
    by, bx = g.nuc_boundary(t)
    layers = 1 if variant in ("arc", "cap") else 3
    dist = rng.uniform(0.2, 1.0) + rng.uniform(0, 1.0, n_el) * (layers / 1.5) \
        + np.abs(rng.normal(0, 0.4 + 1.8 * frag, n_el))
    if variant == "dispersed":
        dist = dist + rng.uniform(0, 5, n_el)
    ey = by + np.sin(t) * dist / p
    ex = bx + np.cos(t) * dist / p
    u, _ = g.u_at(ey, ex)
    far = u > 0.9  # no room in a thin cytoplasm: the Golgi sits above the nucleus (thick cell)
    f = np.where(far, 0.88 / np.maximum(u, 1e-6), 1.0)
    ey, ex = g.cy + (ey - g.cy) * f, g.cx + (ex - g.cx) * f
    n_el = ey.size
    # stacks: short curved segments along the envelope tangent, 0.5-1.5 um
    L = rng.uniform(0.5, 1.5, n_el) * (1 + (1 - frag) * rng.uniform(0, 1.2, n_el)) / p
    ta = t + np.pi / 2 + rng.normal(0, 0.35 + 0.5 * frag, n_el)
    mids = 3
    pts = []
    for k in range(mids + 1):
        s = k / mids - 0.5
        bow = 0.15 * L * (1 - 4 * s * s) * rng.choice([-1, 1])
        pts.append(np.stack([ey + np.sin(ta) * s * L + np.sin(t) * bow, ex + np.cos(ta) * s * L + np.cos(t) * bow], 1))
    P = np.stack(pts, 1)
    bright = rng.lognormal(0, 0.35, n_el)[:, None] * np.ones((1, mids))
    width = rng.uniform(0.35, 0.7)
    rib = C.paths(size, P, np.ones((n_el, mids), bool), _lw(g, 1.0, width) * bright)
    rib += C.dots(size, ey, ex, _amt(g, rng.uniform(0.5, 1.0), width * 1.5) * rng.lognormal(0, 0.5, n_el), 0)
    if variant != "dispersed":  # the connecting ribbon: continuous for giantin, gappier when fragmented
        nlay = 1 if variant in ("arc", "cap") else int(rng.integers(2, 4))
        ns = 48
        for c0 in centres:
            for lay in range(nlay):
                tt = c0 + np.linspace(-0.5, 0.5, ns) * span * rng.uniform(0.6, 1.0)
                byr, bxr = g.nuc_boundary(tt)
                wig = np.cumsum(rng.normal(0, 0.15, ns))
                d0 = rng.uniform(0.3, 0.9) + lay * rng.uniform(0.6, 1.0) + 0.3 * (wig - wig.mean())
                ry, rx = byr + np.sin(tt) * d0 / p, bxr + np.cos(tt) * d0 / p
                uu, _ = g.u_at(ry, rx)
                fr = np.where(uu > 0.9, 0.88 / np.maximum(uu, 1e-6), 1.0)
                ry, rx = g.cy + (ry - g.cy) * fr, g.cx + (rx - g.cx) * fr
                gap = rng.random(ns - 1) < 0.1 + 0.5 * frag
                gap = gap & (rng.random(ns - 1) < 0.7)
                P = np.stack([ry, rx], -1)[None]
                wr = rng.uniform(0.4, 0.9) * (1 - 0.5 * frag) * rng.lognormal(0, 0.3, ns - 1)
                rib += C.paths(size, P, ~gap[None], _lw(g, 1.0, width) * wr[None])
    img += C.blur(rib, _dsig(g, width))
    # vesicles near the Golgi and (gpp130 more) peripheral puncta
    nv = int(rng.integers(3, 15) + frag * rng.integers(5, 60))
    tv = phi + rng.normal(0, span + 0.5, nv)
    byv, bxv = g.nuc_boundary(tv)
    dv = np.abs(rng.normal(0, 2 + 6 * frag, nv)) + 0.5
    vy, vx = byv + np.sin(tv) * dv / p, bxv + np.cos(tv) * dv / p
    uv, _ = g.u_at(vy, vx)
    kk = uv < 0.95
    dv_ = rng.uniform(0.3, 0.5)
    img += C.dots(size, vy[kk], vx[kk], _amt(g, rng.uniform(0.4, 0.9), dv_) * rng.lognormal(0, 0.4, kk.sum()),
                  _dsig(g, dv_))
    img += _haze(g, rng, rng.uniform(0.01, 0.1), 0.3)
    return img


def _puncta_positions(g, rng, n, peri_frac, peri_len, mode_mtoc, cluster):
    """Puncta: a mix of a perinuclear cloud and scattered dots (not in the nucleus, mostly)."""
    n_peri = int(n * peri_frac)
    my, mx = g.mtoc
    if mode_mtoc:
        s = peri_len / g.p
        y1 = my + rng.normal(0, s, n_peri * 2)
        x1 = mx + rng.normal(0, s, n_peri * 2)
        u1, _ = g.u_at(y1, x1)
        k = (u1 < 0.95) & (g.nu_at(y1, x1) > 1.02)
        y1, x1 = y1[k][:n_peri], x1[k][:n_peri]
    else:
        y1, x1 = g.sample(rng, n_peri, lambda y, x, u, nu, t: (nu > 1.02) * np.exp(-np.maximum(nu - 1, 0) * g.rn_px * g.p / peri_len))
    y2, x2 = g.sample(rng, n - y1.size, lambda y, x, u, nu, t: (nu > 1.02) * (0.25 + 0.75 * t) + (nu <= 1.02) * 0.06 * t)
    y, x = np.concatenate([y1, y2]), np.concatenate([x1, x2])
    if cluster and y.size:
        par = rng.integers(0, y.size, y.size // 2)
        y[: par.size] = y[par] + rng.normal(0, 0.6 / g.p, par.size)
        x[: par.size] = x[par] + rng.normal(0, 0.6 / g.p, par.size)
        u, _ = g.u_at(y, x)
        k = u < 0.97
        y, x = y[k], x[k]
    return y, x


def _endosome(g, rng, info):
    size, p = g.size, g.p
    img = np.zeros((size, size))
    variant = rng.choice(["dense_fine", "sparse_bright", "perinuclear", "clustered"])
    info["variant"] = str(variant)
    n = {"dense_fine": rng.integers(250, 500), "sparse_bright": rng.integers(50, 150),
         "perinuclear": rng.integers(120, 350), "clustered": rng.integers(120, 400)}[str(variant)]
    n = int(n * np.clip(g.area_px * p * p / 700, 0.4, 1.6))
    if g.state != "interphase":
        peri = 0.0
    else:
        peri = {"perinuclear": rng.uniform(0.4, 0.7)}.get(str(variant), rng.uniform(0.0, 0.35))
    y, x = _puncta_positions(g, rng, n, peri, rng.uniform(2, 5), rng.random() < 0.7, variant == "clustered")
    d = rng.uniform(0.2, 0.45 if variant != "sparse_bright" else 0.6)
    b = rng.lognormal(0, 0.5, y.size) * (1.5 if variant == "sparse_bright" else 1.0)
    img += C.dots(size, y, x, _amt(g, 1.0, max(d, 0.25)) * b, _dsig(g, d))
    info["n"] = int(y.size)
    # transferrin receptor: faint plasma-membrane outline and dim cytoplasm
    if rng.random() < 0.6:
        img += rng.uniform(0.05, 0.2) * np.exp(-(((g.edge * p) / 0.6) ** 2)) * g.cover
    img += _haze(g, rng, rng.uniform(0.02, 0.2), 0.1, 0.5)
    return img


def _lysosome(g, rng, info):
    size, p = g.size, g.p
    img = np.zeros((size, size))
    variant = rng.choice(["perinuclear", "perinuclear", "dispersed", "peripheral", "few_large"])
    info["variant"] = str(variant)
    n = {"perinuclear": rng.integers(60, 300), "dispersed": rng.integers(40, 200),
         "peripheral": rng.integers(30, 150), "few_large": rng.integers(30, 80)}[str(variant)]
    n = int(n * np.clip(g.area_px * p * p / 700, 0.5, 1.5))
    if variant == "peripheral":
        y, x = g.sample(rng, n, lambda y, x, u, nu, t: (nu > 1.05) * np.clip(u, 0, 1) ** 1.5)
    else:
        peri = {"perinuclear": rng.uniform(0.6, 0.9), "few_large": rng.uniform(0.3, 0.7)}.get(str(variant), rng.uniform(0, 0.3))
        if g.state != "interphase":
            peri = rng.uniform(0.3, 0.7)
        y, x = _puncta_positions(g, rng, n, peri, rng.uniform(1.5, 5), rng.random() < 0.4, rng.random() < 0.3)
    dmean = {"few_large": 1.1}.get(str(variant), rng.uniform(0.6, 1.0))
    d = np.clip(rng.normal(dmean, 0.25, y.size), 0.5, 1.5)
    b = rng.lognormal(0, 0.4, y.size) * 1.6
    small = d < (rng.uniform(0.85, 1.6) if variant != "few_large" else rng.uniform(0.8, 1.1))
    img += C.dots(size, y[small], x[small], _amt(g, 1.0, d[small]) * b[small], _dsig(g, 0.7))
    # larger ones: a ring of membrane stain (dark centre)
    big = ~small
    if big.any():
        k = 14
        ang = np.linspace(0, TWO_PI, k, endpoint=False)[None, :] + rng.uniform(0, 1, (big.sum(), 1))
        r = (0.5 * d[big] - 0.1)[:, None] / p
        ry = y[big][:, None] + np.sin(ang) * r
        rx = x[big][:, None] + np.cos(ang) * r
        w = (_amt(g, 1.0, d[big]) * b[big] / k)[:, None] * np.ones((1, k))
        img += C.blur(C.splat(size, ry, rx, w), _dsig(g, 0.25))
    info["n"] = int(y.size)
    img += _haze(g, rng, rng.uniform(0.01, 0.12), 0.1)
    return img


def _mitochondria(g, rng, info):
    size, p = g.size, g.p
    img = np.zeros((size, size))
    variant = rng.choice(["network", "network", "fragmented", "clump", "parallel"])
    if g.state != "interphase":
        variant = "fragmented"
    info["variant"] = str(variant)
    area_um = g.area_px * p * p
    step_um = 0.35
    if variant == "fragmented":
        n = int(np.clip(area_um * rng.uniform(0.2, 0.5), 40, 700))
        Lm = rng.uniform(0.5, 2.0)
    else:
        n = int(np.clip(area_um * rng.uniform(0.06, 0.18), 25, 300))
        Lm = rng.uniform(3, 8)
    lam = {"clump": rng.uniform(1.0, 3.0)}.get(str(variant), rng.uniform(3, 12))
    if g.state != "interphase":
        lam = 30.0
    y, x = g.sample(rng, n, lambda y, x, u, nu, t: (nu > 1.03) * (0.15 + 0.85 * np.exp(-np.maximum(nu - 1, 0) * g.rn_px * p / lam)) * (u < 0.93))
    n = y.size
    th = rng.uniform(0, TWO_PI, n)
    if variant == "parallel":
        th = g.alpha + rng.normal(0, 0.2, n) + np.pi * (rng.random(n) < 0.5)
    L = np.clip(rng.lognormal(np.log(Lm), 0.5, n), 0.4, 10)
    steps = int(np.ceil(L.max() / step_um))
    curv = (0.12 if variant == "parallel" else rng.uniform(0.2, 0.35)) * np.ones(n)
    P, valid = _walk(g, rng, y, x, th, steps, step_um / p, curv, edge="reflect", umax=0.93)
    valid &= (np.arange(steps)[None, :] < (L / step_um)[:, None])
    if variant in ("network", "clump", "parallel"):  # branches from points of the tubules
        nb = int(n * rng.uniform(0.3, 0.8))
        src = rng.integers(0, n, nb)
        sk = np.minimum((rng.random(nb) * (L[src] / step_um)).astype(int), steps)
        by_, bx_ = P[src, sk, 0], P[src, sk, 1]
        bth = th[src] + rng.choice([-1, 1], nb) * rng.uniform(0.7, 1.4, nb)
        Lb = np.clip(rng.lognormal(np.log(Lm * 0.5), 0.5, nb), 0.4, 6)
        sb = int(np.ceil(Lb.max() / step_um))
        Pb, vb = _walk(g, rng, by_, bx_, bth, sb, step_um / p, curv[:nb] if nb <= n else np.full(nb, 0.25), edge="reflect", umax=0.93)
        vb &= (np.arange(sb)[None, :] < (Lb / step_um)[:, None])
    width = rng.uniform(0.3, 0.7)
    mY, mX = 0.5 * (P[:, 1:, 0] + P[:, :-1, 0]), 0.5 * (P[:, 1:, 1] + P[:, :-1, 1])
    over = rng.uniform(0.1, 0.4)  # above the nucleus (widefield), dimmer
    wn = np.where(g.nu_at(mY, mX) < 1, over, 1.0) * rng.lognormal(0, 0.3, n)[:, None]
    lines = C.paths(size, P, valid, _lw(g, 1.0, width) * wn)
    if variant in ("network", "clump", "parallel"):
        mY, mX = 0.5 * (Pb[:, 1:, 0] + Pb[:, :-1, 0]), 0.5 * (Pb[:, 1:, 1] + Pb[:, :-1, 1])
        wb = np.where(g.nu_at(mY, mX) < 1, over, 1.0) * rng.lognormal(0, 0.3, nb)[:, None]
        lines += C.paths(size, Pb, vb, _lw(g, 1.0, width) * wb)
    if variant == "fragmented" or rng.random() < 0.5:  # round fragments
        nd = int(n * rng.uniform(0.2, 0.8))
        dy, dx = g.sample(rng, nd, lambda y, x, u, nu, t: (nu > 1.03) * (0.2 + 0.8 * t))
        d = rng.uniform(0.5, 1.0)
        lines += C.splat(size, dy, dx, _amt(g, 1.0, d) * rng.lognormal(0, 0.3, dy.size))
    img += C.blur(lines, _dsig(g, width))
    img += _haze(g, rng, rng.uniform(0.01, 0.12), 0.1)
    return img


def _nucleolus(g, rng, info):
    size, p = g.size, g.p
    img = np.zeros((size, size))
    if g.state == "mitotic":
        v = rng.choice(["coat", "diffuse"])
        info["variant"] = f"mitotic {v}"
        if v == "coat":
            img += C.blur(g.chrom, _dsig(g, 0.5)) * rng.uniform(0.6, 1.0)
        img += _haze(g, rng, rng.uniform(0.1, 0.4), 1.0)
        return img
    F = g.nucleoli_field
    fc = np.zeros((size, size))
    nfc = int(rng.integers(0, 12) * len(g.nucleoli))
    if nfc:
        fy, fx = g.sample(rng, nfc * 3, lambda y, x, u, nu, t: (nu < 0.9).astype(float))
        fy, fx = fy.astype(int).clip(0, size - 1), fx.astype(int).clip(0, size - 1)
        k = F[fy, fx] > 0.6
        d = rng.uniform(0.3, 0.7)
        fc = C.dots(size, fy[k][:nfc] + 0.5, fx[k][:nfc] + 0.5, _amt(g, 1.0, d), _dsig(g, d))
        fc = np.clip(fc, 0, 1)
    rim = 4 * F * (1 - F) * rng.uniform(0.0, 0.6)
    tex = np.clip(1 + 0.2 * C.noise(rng, size, 0.4 / p, g.box), 0.3, None)
    img += F * tex * (1 - rng.uniform(0.3, 0.6) * fc) + rim
    variant = rng.choice(["nucleolin", "fibrillarin"])
    info["variant"] = str(variant)
    nucleoplasm = rng.uniform(0.1, 0.2) if variant == "nucleolin" else rng.uniform(0.04, 0.1)
    img += nucleoplasm * g.ncover * (1 - F)
    img += _haze(g, rng, rng.uniform(0.0, 0.05), 0.0)
    return img


def _nucleus_cls(g, rng, info, dna):
    size, p = g.size, g.p
    if g.state == "mitotic":
        v = rng.choice(["dna", "nucleoplasmic"])
        info["variant"] = f"mitotic {v}"
        if v == "dna":
            return dna.copy()
        return _haze(g, rng, 1.0, 1.0, 0.5) * rng.uniform(0.5, 1.0) + 0.2 * dna / max(dna.max(), 1e-9)
    variant = rng.choice(["dna", "dna", "nucleoplasmic"])
    info["variant"] = str(variant)
    if variant == "dna":
        gamma = rng.uniform(0.85, 1.15)
        return np.power(dna / max(dna.max(), 1e-9), gamma)
    grain = rng.choice([0.3, 0.6, 1.0])
    fill = 1 + rng.uniform(0.05, 0.3) * C.noise(rng, size, grain / p, g.box) + 0.15 * C.noise(rng, size, 3 / p, g.box)
    rim = rng.uniform(0, 0.4) * np.exp(-(((1 - g.nu) * g.rn_px * p) / 0.5) ** 2)
    img = (np.clip(fill, 0.2, None) + rim) * g.ncover * (1 - rng.uniform(0.6, 0.95) * g.nucleoli_field)
    img += _haze(g, rng, rng.uniform(0.0, 0.06), 0.0)
    return img


# ----------------------------------------------------------------------------------------------
