"""The protein channel of the ``indep_a`` renderer: one drawer per organelle class.

Each drawer takes the class-independent geometry (``_indep_a_geom.Geo``) and returns the
structure image (crop-sized, arbitrary units: areal densities, lines as per-µm brightness, see
``_indep_a_draw``), the compartment its diffuse background belongs to ("cyto" or "nuc"), an info
dict and, for actin, an extra mask (filopodia). Physical sizes are in µm and converted with
``g.px`` (µm per pixel).
"""

from __future__ import annotations

import numpy as np

from ._indep_a_draw import (
    TWO_PI,
    blur,
    lookup,
    loguniform,
    polyline_points,
    sample_density,
    segment_points,
    smooth_noise,
    splat,
    walk,
    wrap,
)
from ._indep_a_geom import DIR8, K, Geo, polar_index, tab_at

# ----------------------------------------------------------------------------------------------
# shared helpers


def _dots(shape, ys, xs, flux, sigma_px, nbins=3):
    """Gaussian dots of total deposit ``flux`` and width ``sigma_px`` (grouped into a few blurs)."""
    out = np.zeros(shape, np.float32)
    ys = np.asarray(ys, np.float64)
    if ys.size == 0:
        return out
    sig = np.broadcast_to(np.asarray(sigma_px, np.float64), ys.shape)
    flux = np.broadcast_to(np.asarray(flux, np.float64), ys.shape)
    ls = np.log(np.maximum(sig, 0.2))
    lo, hi = ls.min(), ls.max()
    nb = 1 if hi - lo < 0.25 else nbins
    b = np.minimum(((ls - lo) / max(hi - lo, 1e-9) * nb).astype(int), nb - 1)
    for k in range(nb):
        sel = b == k
        if not sel.any():
            continue
        layer = np.zeros(shape, np.float32)
        splat(layer, ys[sel], np.asarray(xs)[sel], flux[sel])
        out += blur(layer, float(np.exp(ls[sel].mean())))
    return out


def _rings(img, cy, cx, r_px, flux, rng):
    """Thin, slightly irregular rings (membrane of a vesicle in section), total deposit ``flux``."""
    cy = np.asarray(cy, np.float64)
    n = cy.size
    if n == 0:
        return
    m = int(max(8, np.ceil(TWO_PI * float(np.max(r_px)) * 1.2 / 0.7)))
    t = np.linspace(0, TWO_PI, m, endpoint=False)[None, :]
    ph = rng.uniform(0, TWO_PI, (n, 3))
    r = np.asarray(r_px, np.float64)[:, None] * (1 + rng.uniform(0, 0.2, (n, 1)) * np.cos(2 * t + ph[:, :1])
                                                  + 0.06 * np.cos(3 * t + ph[:, 1:2]))
    w = np.clip(1 + rng.uniform(0.2, 0.7, (n, 1)) * np.cos(t + ph[:, 2:3]), 0.1, None)
    w = w / w.sum(1, keepdims=True) * np.asarray(flux, np.float64)[:, None]
    splat(img, cy[:, None] + r * np.sin(t), np.asarray(cx)[:, None] + r * np.cos(t), w)


def _cyto_density(g: Geo, periphery=0.25, over=0.0):
    """Where cytoplasmic material sits: more where the cell is thick, none in the nucleus."""
    return g.soft * ((1 - g.nucsoft) * (periphery + g.vol) + over * g.nucsoft)


def _angle_tab_noise(rng, amp, kmax=8):
    t = -np.pi + TWO_PI * np.arange(K) / K
    out = np.ones(K)
    for k in range(1, kmax + 1):
        out += rng.normal(0, amp / np.sqrt(k)) * np.cos(k * t + rng.uniform(0, TWO_PI))
    return np.clip(out, 0.2, None).astype(np.float32)


def _at_theta(g: Geo, tab):
    return tab_at(tab, g.pidx)


def _rn_at(g: Geo, th):
    ix = polar_index(np.asarray(th, np.float64))
    return tab_at(g.rn_tab, ix)


def _normal_tab(g: Geo):
    """Per angle: how squarely the cell edge faces N (1: perpendicular to the ray from N)."""
    r = g.rc_tab
    d = (np.roll(r, -1) - np.roll(r, 1)) / (2 * TWO_PI / K)
    return r / np.sqrt(r * r + d * d)


def _rc_at(g: Geo, th):
    ix = polar_index(np.asarray(th, np.float64))
    return tab_at(g.rc_tab, ix)


def _polar_pts(g: Geo, th, rho):
    Ny, Nx = g.N
    return Ny + rho * np.sin(th), Nx + rho * np.cos(th)


def _pick(rng, options, p):
    return str(rng.choice(options, p=np.asarray(p) / np.sum(p)))


def _walk_lines(g: Geo, rng, y, x, ang, length_um, step_um, persist_um, avoid_nuc, margin_edge_um=0.3,
                margin_nuc_um=0.3, edge_run_um=None):
    """Persistent walks inside the cell (bending along its edge, optionally around the nucleus).

    ``edge_run_um``: (lo, hi) how far a walk may run along the cell edge after reaching it.
    """
    px = g.px
    n = np.asarray(y).size
    step_px = step_um / px
    nsteps = max(int(np.ceil(float(np.max(length_um)) / step_um)), 1) if n else 1
    if n == 0:
        return np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2), bool)
    mn = np.where(np.asarray(avoid_nuc, bool), margin_nuc_um / px, -1e9)
    Y, X, first = walk(y, x, ang, nsteps, step_px, np.sqrt(step_um / np.asarray(persist_um, np.float64)), rng,
                       constrain=g.constrain(margin_edge_um / px, mn))
    valid = (np.arange(nsteps + 1)[None, :] * step_um) <= np.asarray(length_um, np.float64)[:, None]
    if edge_run_um is not None:
        stop = first + rng.uniform(*edge_run_um, n) / step_um
        valid &= np.arange(nsteps + 1)[None, :] <= stop[:, None]
    return Y, X, valid


# ----------------------------------------------------------------------------------------------
# ActinFilaments


def _actin(g: Geo, rng):
    px, shp = g.px, g.hw
    fine = np.zeros(shp, np.float32)  # sub-PSF lines
    broad = np.zeros(shp, np.float32)  # bundles and adhesions ~0.5 µm wide
    info = {}
    extra = None
    if g.state != "interphase":
        w = rng.uniform(0.35, 0.9)
        ring = np.exp(-np.clip(g.dedge, 0, None) / w) * g.soft * rng.uniform(0.8, 1.2)
        mesh = np.clip(1 + 0.4 * smooth_noise(shp, max(0.3 / px, 0.6), rng), 0, None)
        P = ring + rng.uniform(0.05, 0.18) * g.vol * mesh * g.soft
        if g.bridge is not None:  # contractile ring at the cleavage furrow
            ay, ax, by, bx, _ = g.bridge
            my, mx = 0.5 * (ay + by), 0.5 * (ax + bx)
            yy = (np.arange(shp[0]) - my)[:, None]
            xx = (np.arange(shp[1]) - mx)[None, :]
            P = P + 1.5 * np.exp(-(yy * yy + xx * xx) / (2 * (1.2 / px) ** 2)) * g.soft
        nb = int(rng.poisson(6)) if g.state == "rounded" else 0
        if nb:  # microvilli / blebs as cortical dots
            t = rng.uniform(-np.pi, np.pi, nb)
            yb, xb = _polar_pts(g, t, _rc_at(g, t) - 0.4 / px)
            P = P + _dots(shp, yb, xb, rng.uniform(0.5, 1.2, nb) * (0.7 / px) ** 2, 0.5 / 2.355 / px, 1)
        return P.astype(np.float32), "cyto", {"variant": "cortex ring"}, None

    elongated = g.shape in ("spindle", "fan", "spread", "triangle")
    opts = ["fibre-rich", "few-fibres", "cortical", "lamellipodial", "podosomes"]
    p = {"spread": [0.6, 0.08, 0.04, 0.2, 0.08], "hela": [0.12, 0.43, 0.25, 0.12, 0.08],
         "epithelial": [0.06, 0.3, 0.5, 0.12, 0.02], "stem": [0.0, 0.3, 0.65, 0.05, 0.0]}[g.line]
    variant = _pick(rng, opts, p)
    info["variant"] = variant
    cell_um = float(np.sqrt(max(g.cyto_area_um2, 50.0)))

    # stress fibres: straight bundles on the ventral surface ending in focal adhesions
    nf = {"fibre-rich": rng.integers(30, 81), "few-fibres": rng.integers(0, 9), "cortical": rng.integers(0, 4),
          "lamellipodial": rng.integers(3, 20), "podosomes": rng.integers(0, 6)}[variant]
    nf = int(nf * np.clip(cell_um / 35.0, 0.5, 1.3))
    mode = _pick(rng, ["parallel", "fan", "crossing", "random"],
                 [0.55, 0.2, 0.15, 0.1] if elongated else [0.35, 0.15, 0.2, 0.3])
    info["fibres"] = nf
    info["fibre_mode"] = mode
    if nf:
        cy, cx = sample_density(g.soft * (1 - 0.5 * g.nucsoft), nf, rng)
        if mode == "parallel":
            ang = g.axis + rng.normal(0, rng.uniform(0.06, 0.3), nf)
        elif mode == "fan":
            back = g.axis + np.pi * (rng.random() < 0.5)
            dist = rng.uniform(0.6, 1.5) * np.sqrt(g.hw[0] * g.hw[1])
            fy, fx = g.N[0] + dist * np.sin(back), g.N[1] + dist * np.cos(back)
            ang = np.arctan2(cy - fy, cx - fx) + rng.normal(0, 0.06, nf)
        elif mode == "crossing":
            ang = g.axis + rng.choice([-1, 1], nf) * rng.uniform(0.3, 0.9) + rng.normal(0, 0.1, nf)
        else:
            ang = rng.uniform(-np.pi, np.pi, nf)
        T = int(np.hypot(*shp)) + 2
        t = np.arange(-T, T + 1, 1.0)
        sy, sx = np.sin(ang)[:, None], np.cos(ang)[:, None]
        inside = lookup(g.cell & (g.dedge > 0.4), cy[:, None] + t[None, :] * sy, cx[:, None] + t[None, :] * sx,
                        False)
        ok = inside[:, T]
        lft = T - np.argmax(~inside[:, T::-1], axis=1) + 1
        rgt = T + np.argmax(~inside[:, T:], axis=1) - 1
        a0, a1 = t[lft], t[rgt]
        chord = (a1 - a0) * px
        full = rng.random(nf) < 0.6
        L = np.minimum(np.where(full, chord, rng.uniform(5, 40, nf)), chord)
        st = a0 + rng.random(nf) * np.maximum((chord - L) / px, 0)
        en = st + L / px
        ok &= L > 4.0
        cy, cx, ang, st, en, sy, sx = cy[ok], cx[ok], ang[ok], st[ok], en[ok], sy[ok, 0], sx[ok, 0]
        n = cy.size
        y0, x0 = cy + st * sy, cx + st * sx
        y1, x1 = cy + en * sy, cx + en * sx
        width = loguniform(rng, 0.2, 1.0, n)
        lam = width * rng.uniform(0.6, 1.2, n) / px
        cap = rng.random() < 0.3
        ys, xs, ws, seg, tt = segment_points(y0, x0, y1, x1, lam, 0.7, bow=rng.normal(0, 0.012, n) * (en - st))
        Lseg = ((en - st) * px)[seg]  # µm
        ph = rng.uniform(0, TWO_PI, (n, 2))
        per = rng.uniform(1.2, 3.0)
        ws = ws * np.clip(1 + 0.3 * np.sin(TWO_PI * tt * Lseg / per + ph[seg, 0])
                          + 0.2 * np.sin(TWO_PI * tt * Lseg / (2.7 * per) + ph[seg, 1]), 0.2, None)
        ws = ws * np.clip(np.minimum(tt, 1 - tt) * Lseg / 1.5, 0.25, 1.0)  # tapered ends
        if not cap:
            ws = ws * np.where(lookup(g.nuc, ys, xs, False), rng.uniform(0.3, 0.7), 1.0)
        thick = width[seg] > 0.45
        splat(fine, ys[~thick], xs[~thick], ws[~thick])
        splat(broad, ys[thick], xs[thick], ws[thick])
        # focal adhesions at ends near the cell edge
        for (ey, ex, sgn) in ((y0, x0, 1.0), (y1, x1, -1.0)):
            near = lookup(g.dedge, ey, ex, 0) < 3.0
            near &= rng.random(n) < 0.85
            if near.any():
                la = rng.uniform(1.0, 4.0, near.sum()) / px
                fy0, fx0 = ey[near], ex[near]
                fy1, fx1 = fy0 + sgn * la * sy[near], fx0 + sgn * la * sx[near]
                fl = rng.uniform(0.5, 0.9, near.sum()) * rng.uniform(1.2, 2.2) / px
                a, b, c, _, _ = segment_points(fy0, fx0, fy1, fx1, fl, 0.7)
                splat(broad, a, b, c)
        info["actin_cap"] = bool(cap)

    # cortex along the plasma membrane, sharper where it meets neighbours (straight edges)
    camp = rng.uniform(0.7, 1.2) if variant == "cortical" else rng.uniform(0.1, 0.5)
    cw = rng.uniform(0.25, 1.0)
    de = np.clip(g.dedge, 0, None)
    mod = _at_theta(g, _angle_tab_noise(rng, 0.25))
    P = camp * np.exp(-de / cw) * mod
    if g.shape == "polygon" or rng.random() < 0.3:
        ns = int(rng.integers(1, 4))
        c = rng.uniform(-np.pi, np.pi, ns)
        hw_ = rng.uniform(0.25, 0.8, ns)
        sec = np.zeros(K, np.float32)
        tk = -np.pi + TWO_PI * np.arange(K) / K
        for cc, hh in zip(c, hw_):
            sec = np.maximum(sec, np.clip((hh - np.abs(wrap(tk - cc))) / 0.1, 0, 1))
        P = P + rng.uniform(0.5, 1.0) * np.exp(-de / 0.2) * _at_theta(g, sec)

    # lamellipodium / ruffles at the leading edge, filopodia, transverse arcs behind it
    lamella = variant == "lamellipodial" or (g.shape == "fan" and rng.random() < 0.8) or rng.random() < 0.12
    if lamella:
        lead = g.axis if g.shape == "fan" else g.front + rng.normal(0, 0.4)
        half = rng.uniform(0.4, 1.1)
        tk = -np.pi + TWO_PI * np.arange(K) / K
        sec = np.clip((half - np.abs(wrap(tk - lead))) / 0.25, 0, 1).astype(np.float32)
        secp = _at_theta(g, sec)
        bw = rng.uniform(1.0, 2.5)
        mesh = np.clip(0.55 + 0.5 * smooth_noise(shp, max(0.2 / px, 0.5), rng), 0, None)
        band = np.exp(-de / bw) * (rng.uniform(0.4, 0.9) * mesh + 0.5 * np.exp(-de / 0.3))
        P = P + rng.uniform(1.2, 2.5) * band * secp
        th = np.linspace(lead - half, lead + half, 200)
        # curves parallel to the edge, only where the edge faces the nucleus (else a fixed radial
        # inset is not parallel to the edge)
        ix = polar_index(th)
        facing = tab_at(_normal_tab(g), ix) > 0.85

        def _parallel(depth_px, lam_px):
            ry, rx = _polar_pts(g, th, _rc_at(g, th) - depth_px)
            ok = facing & lookup(g.cell & (g.dnuc > 1.5), ry, rx, False)
            seg = ok[:-1] & ok[1:]
            a, b, c, _, _ = segment_points(ry[:-1][seg], rx[:-1][seg], ry[1:][seg], rx[1:][seg], lam_px, 0.7)
            splat(broad, a, b, c)

        for _ in range(int(rng.integers(0, 3)) if variant == "lamellipodial" else 0):  # ruffles
            _parallel(rng.uniform(0.5, 3.0) / px + 0.6 / px * np.sin(th * rng.uniform(3, 9) + rng.uniform(0, 6)),
                      rng.uniform(0.3, 0.6) / px)
        for _ in range(int(rng.integers(0, 5))):  # transverse arcs behind the lamella
            d0 = rng.uniform(3.0, 8.0)
            _parallel((d0 + rng.uniform(0.3, 1.0) * np.sin(th * rng.uniform(1, 3) + rng.uniform(0, 6))) / px,
                      rng.uniform(0.2, 0.45) / px)
        info["lamella"] = True
    nfil = int(rng.integers(5, 26)) if variant == "lamellipodial" else (int(rng.poisson(4)) if rng.random() < 0.45 else 0)
    if nfil:
        if lamella:
            t = lead + rng.uniform(-half, half, nfil)
        else:
            t = rng.uniform(-np.pi, np.pi, nfil)
        base = _rc_at(g, t) - 0.3 / px
        by, bx = _polar_pts(g, t, base)
        d = t + rng.normal(0, 0.25, nfil)
        L = rng.uniform(2.0, 10.0, nfil) / px
        # keep the 8-direction extent and the crop: shorten (or drop) filopodia that would break it
        ct = -np.pi + TWO_PI * np.arange(K) / K
        cy_, cx_ = _polar_pts(g, ct, g.rc_tab)
        proj = cy_[None, :] * np.sin(DIR8)[:, None] + cx_[None, :] * np.cos(DIR8)[:, None]
        pmin, pmax = proj.min(1), proj.max(1)
        slack = np.maximum(g.dmax - (pmax - pmin), 0) / 2  # half the room on each side
        lo_, hi_ = pmin - slack, pmax + slack
        for f in (1.0, 0.6, 0.3, 0.0):
            ty, tx = by + f * L * np.sin(d), bx + f * L * np.cos(d)
            tp = ty[:, None] * np.sin(DIR8)[None, :] + tx[:, None] * np.cos(DIR8)[None, :]
            good = np.all((tp > lo_[None, :]) & (tp < hi_[None, :]), 1)
            good &= (ty > 1) & (ty < shp[0] - 2) & (tx > 1) & (tx < shp[1] - 2)
            L = np.where(good, L, L * (0.6 if f == 1.0 else 0.5))
            if good.all():
                break
        ty, tx = by + L * np.sin(d), bx + L * np.cos(d)
        tp = ty[:, None] * np.sin(DIR8)[None, :] + tx[:, None] * np.cos(DIR8)[None, :]
        good = np.all((tp > lo_[None, :]) & (tp < hi_[None, :]), 1)
        good &= (ty > 1) & (ty < shp[0] - 2) & (tx > 1) & (tx < shp[1] - 2) & (L * px > 1.0)
        if good.any():
            a, b, c, seg, tt = segment_points(by[good], bx[good], ty[good], tx[good],
                                              rng.uniform(0.12, 0.3, good.sum()) / px, 0.7)
            splat(fine, a, b, c * (1 - 0.5 * tt))
            extra = np.zeros(shp, bool)
            ai, bi = np.rint(a).astype(int), np.rint(b).astype(int)
            extra[ai, bi] = True
            info["filopodia"] = int(good.sum())

    # podosomes: dots of 0.5-1 µm, clustered, often toward the periphery
    if variant == "podosomes" or rng.random() < 0.05:
        npd = int(rng.integers(20, 151))
        ncl = int(rng.integers(1, 6))
        py, px_ = sample_density(g.cyto * (0.2 + g.s), ncl, rng)
        k = rng.integers(0, ncl, npd)
        spread = rng.uniform(1.5, 4.0) / px
        qy, qx = py[k] + rng.normal(0, spread, npd), px_[k] + rng.normal(0, spread, npd)
        keep = lookup(g.cell & ~g.nuc, qy, qx, False)
        dia = rng.uniform(0.5, 1.0, npd)[keep]
        broad += _dots(shp, qy[keep], qx[keep], rng.uniform(0.8, 1.4, dia.size) * (dia / px) ** 2,
                       dia / 2.355 / px, 1)
        info["podosomes"] = int(keep.sum())

    # diffuse cortical/cytoplasmic meshwork, dimmer over the nucleus
    mesh = np.clip(1 + 0.5 * smooth_noise(shp, max(0.25 / px, 0.5), rng), 0, None)
    P = P + rng.uniform(0.04, 0.2) * mesh * g.soft * (g.vol * (1 - g.nucsoft) + rng.uniform(0.2, 0.5) * g.nucsoft)
    P = P * g.soft + fine + blur(broad, 0.45 / 2.355 / px)
    return P.astype(np.float32), "cyto", info, extra


# ----------------------------------------------------------------------------------------------
# Microtubules


def _mt_mitotic(g: Geo, rng):
    px, shp = g.px, g.hw
    P = np.zeros(shp, np.float32)
    lam = rng.uniform(0.15, 0.25) / px
    info = {"variant": "spindle" if g.poles else "midbody"}
    if g.poles:
        (ay, ax), (by, bx) = g.poles
        n = int(rng.integers(60, 160))
        # kinetochore / interpolar fibres: arcs from pole to pole bulging around the chromosomes
        bulge = rng.uniform(-1, 1, n) * np.hypot(by - ay, bx - ax) * rng.uniform(0.25, 0.45)
        frac = np.where(rng.random(n) < 0.6, rng.uniform(0.35, 0.55, n), 1.0)  # k-fibres stop at the plate
        from_b = rng.random(n) < 0.5
        y0 = np.where(from_b, by, ay)
        x0 = np.where(from_b, bx, ax)
        y1 = np.where(from_b, ay, by)
        x1 = np.where(from_b, ax, bx)
        t = np.linspace(0, 1, 40)[None, :] * frac[:, None]
        vy, vx = (y1 - y0)[:, None], (x1 - x0)[:, None]
        ln = np.hypot(vy, vx)
        Y = y0[:, None] + vy * t - vx / ln * bulge[:, None] * 4 * t * (1 - t)
        X = x0[:, None] + vx * t + vy / ln * bulge[:, None] * 4 * t * (1 - t)
        ys, xs, ws, _, _ = polyline_points(Y, X, np.ones(Y.shape, bool), lam, 0.7)
        splat(P, ys, xs, ws)
        # astral microtubules and bright poles
        na = int(rng.integers(20, 80))
        for (py, pxx) in g.poles:
            ang = rng.uniform(-np.pi, np.pi, na)
            L = rng.uniform(1.0, 6.0, na) / px
            ok = np.ones(na, bool)
            ey, ex = py + L * np.sin(ang), pxx + L * np.cos(ang)
            ok &= lookup(g.cell, ey, ex, False)
            a, b, c, _, _ = segment_points(np.full(ok.sum(), py), np.full(ok.sum(), pxx), ey[ok], ex[ok], lam, 0.7)
            splat(P, a, b, c)
        P += _dots(shp, [p[0] for p in g.poles], [p[1] for p in g.poles], lam * rng.uniform(5, 15) / px,
                   rng.uniform(0.3, 0.6) / px, 1)  # poles: as much tubulin as 5-15 µm of microtubule
        if g.phase == "anaphase":  # bright overlapping midzone
            my, mx = 0.5 * (ay + by), 0.5 * (ax + bx)
            yy = (np.arange(shp[0]) - my)[:, None]
            xx = (np.arange(shp[1]) - mx)[None, :]
            uy, ux = np.cos(g.spindle), -np.sin(g.spindle)
            along = yy * uy + xx * ux
            across = yy * np.sin(g.spindle) + xx * np.cos(g.spindle)
            P += (rng.uniform(0.3, 0.8) * np.exp(-across ** 2 / (2 * (0.8 / px) ** 2))
                  * np.exp(-along ** 2 / (2 * (3.0 / px) ** 2)) * g.soft).astype(np.float32)
    if g.bridge is not None:  # midbody: a bright bundle across the bridge with a dark centre
        ay, ax, by, bx, hw = g.bridge
        n = int(rng.integers(10, 30))
        off = rng.normal(0, 0.3 * hw, n)
        vy, vx = by - ay, bx - ax
        ln = np.hypot(vy, vx)
        ny_, nx_ = -vx / ln, vy / ln
        for a0, a1 in ((0.2, 0.47), (0.53, 0.8)):
            ys, xs, ws, _, _ = segment_points(ay + a0 * vy + off * ny_, ax + a0 * vx + off * nx_,
                                              ay + a1 * vy + off * ny_, ax + a1 * vx + off * nx_, lam, 0.7)
            splat(P, ys, xs, ws)
        for (ly, lx, Rl) in g.lobes:  # re-forming interphase arrays in the daughters
            na = int(rng.integers(20, 60))
            ang = rng.uniform(-np.pi, np.pi, na)
            L = rng.uniform(0.3, 0.9, na) * Rl
            a, b, c, _, _ = segment_points(np.full(na, ly), np.full(na, lx), ly + L * np.sin(ang),
                                           lx + L * np.cos(ang), lam * 0.6, 0.7)
            splat(P, a, b, c)
    P += rng.uniform(0.03, 0.12) * g.vol * g.soft
    return P * g.soft, "cyto", info, None


def _microtubules(g: Geo, rng):
    if g.state == "mitotic":
        return _mt_mitotic(g, rng)
    px, shp = g.px, g.hw
    elongated = g.shape in ("spindle", "fan", "spread")
    variant = _pick(rng, ["radial", "meshwork", "parallel", "bundled"],
                    [0.35, 0.2, 0.35, 0.1] if elongated else [0.5, 0.3, 0.08, 0.12])
    if g.state == "rounded":
        variant = "meshwork"
    n = int(np.clip(g.cyto_area_um2 * rng.uniform(0.4, 1.0), 150, 700))
    reach = float(np.mean(g.rc_tab - g.rn_tab)) * px + float(np.mean(g.rn_tab)) * px
    L = np.clip(reach * rng.uniform(0.7, 1.8, n), 5.0, 45.0)
    step_um = max(0.6, 2.0 * px)
    persist = rng.uniform(15, 60) if variant != "bundled" else rng.uniform(4, 10)
    if variant == "radial":
        my, mx = g.mtoc
        y = my + rng.normal(0, 0.4 / px, n)
        x = mx + rng.normal(0, 0.4 / px, n)
        ang = rng.uniform(-np.pi, np.pi, n)
    else:
        y, x = sample_density(_cyto_density(g, 0.5), n, rng)
        if variant == "parallel":
            ang = g.axis + np.pi * (rng.random(n) < 0.5) + rng.normal(0, 0.15, n)
        else:
            ang = rng.uniform(-np.pi, np.pi, n)
        L = L * rng.uniform(0.5, 1.0)
    avoid = rng.random(n) < rng.uniform(0.6, 0.95)
    res = _walk_lines(g, rng, y, x, ang, L, step_um, persist, avoid, edge_run_um=(0.0, 3.0))
    Y, X, valid = res
    if variant == "bundled":  # bundles: a second, slightly offset copy of half of the lines
        k = rng.random(n) < 0.5
        off = rng.normal(0, 0.15 / px, (k.sum(), 1))
        Y = np.concatenate([Y, Y[k] + off])
        X = np.concatenate([X, X[k] - off])
        valid = np.concatenate([valid, valid[k]])
        avoid = np.concatenate([avoid, avoid[k]])
    lam = rng.uniform(0.15, 0.25) / px * rng.uniform(0.85, 1.15, Y.shape[0])
    ys, xs, ws, _, _ = polyline_points(Y, X, valid, lam, 0.8)
    over = lookup(g.nuc, ys, xs, False)
    ws = ws * np.where(over, rng.uniform(0.25, 0.5), 1.0)
    P = np.zeros(shp, np.float32)
    splat(P, ys, xs, ws)
    info = {"variant": variant, "n": int(Y.shape[0])}
    if rng.random() < 0.5:  # centrosome
        P += _dots(shp, [g.mtoc[0]], [g.mtoc[1]], rng.uniform(0.15, 0.25) * rng.uniform(3, 10) / px ** 2,
                   rng.uniform(0.25, 0.5) / px, 1)  # as much tubulin as 3-10 µm of microtubule
        info["centrosome"] = True
    P += rng.uniform(0.03, 0.25) * g.vol * g.cyto + g.over_nuc * 0.1 * g.nucsoft
    return P * g.soft, "cyto", info, None


# ----------------------------------------------------------------------------------------------
# ER


def _network(g: Geo, rng, mesh_um, keep_map, lam):
    """A polygonal network of slightly curved tubules with three-way junctions.

    A jittered honeycomb of mesh ``mesh_um`` (distance across a polygon); ``keep_map`` (0..1): the
    chance a tubule at a pixel exists. Dangling ends are mostly pruned so that missing tubules
    merge meshes into larger polygons instead of leaving loose fragments. Returns sample points.
    """
    px, (h, w) = g.px, g.hw
    side = mesh_um / np.sqrt(3) / px  # hexagon side
    ax_ = np.sqrt(3) / 2 * side
    ay_ = 1.5 * side
    psi = rng.uniform(0, np.pi)
    diag = np.hypot(h, w)
    nj = int(diag / ax_) + 3
    ni = int(diag / ay_) + 3
    jj, ii = np.meshgrid(np.arange(nj), np.arange(ni))
    jit = 0.3 * side
    u = (jj - nj / 2) * ax_ + rng.normal(0, jit, jj.shape)
    v = (ii - ni / 2) * ay_ + 0.5 * side * ((ii + jj) % 2 == 0) + rng.normal(0, jit, jj.shape)
    c, s = np.cos(psi), np.sin(psi)
    VX = (w / 2 + u * c - v * s).ravel()
    VY = (h / 2 + u * s + v * c).ravel()
    vid = ii * nj + jj
    vm = ((ii[:-1] + jj[:-1]) % 2) == 0
    va = np.concatenate([vid[:, :-1].ravel(), vid[:-1][vm]])
    vb = np.concatenate([vid[:, 1:].ravel(), vid[1:][vm]])
    my, mx = 0.5 * (VY[va] + VY[vb]), 0.5 * (VX[va] + VX[vb])
    inb = (my > 0) & (my < h - 1) & (mx > 0) & (mx < w - 1)
    va, vb, my, mx = va[inb], vb[inb], my[inb], mx[inb]
    pk = lookup(keep_map, my, mx, 0.0) * rng.uniform(0.85, 0.97)
    keep = rng.random(pk.size) < pk
    for _ in range(2):  # prune most dangling ends
        deg = np.bincount(np.r_[va[keep], vb[keep]], minlength=VX.size)
        dangling = keep & (np.minimum(deg[va], deg[vb]) <= 1)
        keep &= ~(dangling & (rng.random(keep.size) < 0.8))
    va, vb = va[keep], vb[keep]
    L = np.hypot(VY[vb] - VY[va], VX[vb] - VX[va])
    ys, xs, ws, _, _ = segment_points(VY[va], VX[va], VY[vb], VX[vb], lam, 0.8,
                                        bow=rng.normal(0, 0.12, va.size) * L)
    return ys, xs, ws


def _er(g: Geo, rng):
    px, shp = g.px, g.hw
    P = np.zeros(shp, np.float32)
    if g.state == "mitotic":  # ER through the whole rounded cell, excluded from the chromosomes
        excl = np.clip(1 - 1.5 * blur(g.chrom, 0.4 / px), 0, 1) * g.soft
        ys, xs, ws = _network(g, rng, rng.uniform(0.5, 1.0), excl * 0.9, rng.uniform(0.1, 0.2) / px)
        splat(P, ys, xs, ws * lookup(g.vol, ys, xs, 0) ** 0.5)
        tex = np.clip(1 + 0.4 * smooth_noise(shp, max(0.3 / px, 0.5), rng), 0, None)
        P += rng.uniform(0.2, 0.5) * g.vol * tex * excl
        return P, "cyto", {"variant": "mitotic"}, None
    compact = g.line in ("epithelial", "stem") or g.state == "rounded"
    variant = _pick(rng, ["lacy", "sheets", "compact"], [0.25, 0.35, 0.4] if compact else [0.55, 0.35, 0.1])
    mesh = rng.uniform(0.5, 1.4)
    smax = {"lacy": rng.uniform(0.8, 1.0), "sheets": rng.uniform(0.65, 0.95), "compact": rng.uniform(0.4, 0.65)}[variant]
    # toward the periphery the network thins out in patches (a smooth random field), not uniformly
    patchy = smooth_noise(shp, 2.0 / px, rng) * rng.uniform(0.15, 0.35)
    keep = np.clip((smax - g.s) / max(0.35 * smax, 1e-3) + patchy, 0, 1) ** 0.5 * g.cyto
    keep = keep * (g.dnuc > 0.15)
    lam = (rng.uniform(0.15, 0.25) if variant == "lacy" else rng.uniform(0.08, 0.16)) / px
    ys, xs, ws = _network(g, rng, mesh, keep, lam)
    ws = ws * (0.45 + 0.55 * lookup(g.vol, ys, xs, 0))
    splat(P, ys, xs, ws)
    if rng.random() < 0.5:  # finer, denser network close to the nucleus
        ys, xs, ws = _network(g, rng, mesh * 0.6, keep * (g.s < 0.35), lam * 0.7)
        splat(P, ys, xs, ws)
    ws_um = rng.uniform(1.0, 4.0) * (1.5 if variant == "compact" else 1.0)
    sheet_amp = {"lacy": rng.uniform(0.3, 0.6), "sheets": rng.uniform(0.4, 0.8), "compact": rng.uniform(0.5, 0.9)}[variant]
    tex = np.clip(1 + rng.uniform(0.15, 0.4) * smooth_noise(shp, max(0.3 / px, 0.5), rng), 0, None)
    dn = np.clip(g.dnuc, 0, None)
    sheet = np.exp(-dn / ws_um) * tex * g.vol
    if variant == "sheets":
        sheet = sheet + rng.uniform(0.2, 0.45) * tex * g.vol * (g.s < smax)
    P += (sheet_amp * sheet * g.cyto).astype(np.float32)
    # nuclear envelope: a thin bright ring; the nucleus itself dim (ER above and below it)
    for nu in g.nuclei:
        t = -np.pi + TWO_PI * (np.arange(K) + 0.5) / K
        ry, rx = nu.cy + nu.rn_tab * np.sin(t), nu.cx + nu.rn_tab * np.cos(t)
        ry, rx = np.r_[ry, ry[0]], np.r_[rx, rx[0]]
        a, b, c, _, _ = segment_points(ry[:-1], rx[:-1], ry[1:], rx[1:], lam * rng.uniform(1.5, 3.0), 0.7)
        splat(P, a, b, c)
    P += (g.over_nuc * sheet_amp * tex * g.nucsoft).astype(np.float32)
    return P * g.soft, "cyto", {"variant": variant, "mesh_um": round(mesh, 2)}, None


# ----------------------------------------------------------------------------------------------
# Golgi


def _golgi(g: Geo, rng, gpp: bool):
    px, shp = g.px, g.hw
    P = np.zeros(shp, np.float32)
    if g.state == "mitotic":  # dispersed into a fine haze of small dots
        n = int(rng.integers(200, 600))
        y, x = sample_density(g.soft * g.vol * np.clip(1 - 2 * g.chrom, 0, 1), n, rng)
        d = rng.uniform(0.2, 0.45, n)
        P += _dots(shp, y, x, loguniform(rng, 0.5, 2, n) * (d / px) ** 2, d / 2.355 / px, 2)
        P += rng.uniform(0.05, 0.15) * g.vol * g.soft
        return P, "cyto-dim", {"variant": "mitotic haze"}, None
    frag = rng.beta(3.0, 5.0) if gpp else rng.beta(1.5, 7.0)
    variant = _pick(rng, ["ribbon", "knot", "arc", "two", "dispersed"], [0.45, 0.25, 0.15, 0.07, 0.08])
    spread = rng.uniform(1.0, 1.5) if gpp else 1.0
    th0 = g.front
    rn0 = float(_rn_at(g, th0)) * px  # µm
    off0 = rng.uniform(0.3, 1.5) * spread
    W = rng.uniform(0.6, 1.8) * spread
    if variant == "ribbon":
        Lr = rng.uniform(4, 10)
        centres = [(th0, Lr / 2 / rn0)]
    elif variant == "arc":
        centres = [(th0, rng.uniform(np.pi / 4, np.pi / 2))]
        Lr = 2 * centres[0][1] * rn0
    elif variant == "knot":
        Lr = rng.uniform(3.0, 5.0)
        centres = [(th0, Lr / 2 / rn0)]
        W = rng.uniform(2.0, 4.0) * spread
        off0 = rng.uniform(0.3, 1.5) + W / 4
    elif variant == "two":
        sep = rng.uniform(0.5, 1.2)
        Lr = rng.uniform(2, 5)
        centres = [(th0 - sep, Lr / 2 / rn0), (th0 + sep, Lr / 2 / rn0)]
        Lr *= 2
    else:  # dispersed: elements scattered over part of the perinuclear region
        centres = [(th0, np.pi * rng.uniform(0.35, 0.75))]
        Lr = 2 * centres[0][1] * rn0
        frag = max(frag, rng.uniform(0.5, 0.9))
    nst = int(np.clip(Lr / rng.uniform(0.25, 0.5), 6, 80))
    k = rng.integers(0, len(centres), nst)
    tc = np.array([c[0] for c in centres])[k]
    th_half = np.array([c[1] for c in centres])[k]
    th = tc + rng.uniform(-1, 1, nst) * th_half
    wob = rng.uniform(-0.5, 0.5) * np.sin(th * 3 + rng.uniform(0, 6))
    rho_um = _rn_at(g, th) * px + off0 + wob + rng.normal(0, W / 2, nst)
    if variant == "knot":
        rho_um = rn0 + off0 + rng.normal(0, W / 4, nst)
        th = th0 + rng.normal(0, W / 4 / max(rn0 + off0, 1), nst)
    if variant == "dispersed":
        rho_um = _rn_at(g, th) * px + rng.uniform(0.3, 3.5, nst)
    # fragmented elements pulled away from the ribbon
    fr = rng.random(nst) < frag
    rho_um = rho_um + fr * rng.uniform(0.5, 2.5, nst)
    th = th + fr * rng.normal(0, 0.25, nst)
    rho_px = np.minimum(rho_um / px, _rc_at(g, th) - 0.6 / px)
    rho_px = np.maximum(rho_px, _rn_at(g, th) - 0.3 / px)
    sy, sx = _polar_pts(g, th, rho_px)
    # stacks: short curved cisternae roughly parallel to the nuclear envelope
    ln = rng.uniform(0.5, 1.5, nst) * np.where(fr, 0.6, 1.0) / px
    a = th + np.pi / 2 + rng.normal(0, 0.45, nst)
    bright = loguniform(rng, 0.45, 2.2, nst)
    lam = 0.7 * bright / px
    broad = np.zeros(shp, np.float32)
    blobs = np.zeros(shp, np.float32)
    ys, xs, ws, _, _ = segment_points(sy - 0.5 * ln * np.sin(a), sx - 0.5 * ln * np.cos(a),
                                        sy + 0.5 * ln * np.sin(a), sx + 0.5 * ln * np.cos(a), lam, 0.7,
                                        bow=ln * rng.uniform(-0.3, 0.3, nst))
    splat(broad, ys, xs, ws)
    patch = rng.random(nst) < 0.35
    if patch.any():
        dd = rng.uniform(0.6, 1.4, patch.sum())
        splat(blobs, sy[patch], sx[patch], bright[patch] * 0.8 * (dd / px) ** 2)
    # connections between neighbouring stacks (a continuous ribbon), weaker for gpp130
    if variant != "dispersed" and nst > 1:
        order = np.argsort(wrap(th - th0))
        cyy, cxx = sy[order], sx[order]
        gap = np.hypot(np.diff(cyy), np.diff(cxx)) * px
        link = (gap < 2.5) & ~fr[order][1:] & ~fr[order][:-1]
        cont = rng.uniform(0.15, 0.45) if gpp else rng.uniform(0.35, 0.8)
        if link.any():
            a_, b_, c_, _, _ = segment_points(cyy[:-1][link], cxx[:-1][link], cyy[1:][link], cxx[1:][link],
                                              cont * 0.7 * np.sqrt(bright[order][:-1][link]) / px, 0.7)
            splat(broad, a_, b_, c_)
    P += blur(broad, rng.uniform(0.18, 0.3) / px) + blur(blobs, 0.4 / px)
    # vesicles near the ribbon, and (mostly gpp130) small puncta out in the cytoplasm
    nv = int(rng.integers(8, 41) if gpp else rng.integers(3, 26))
    j = rng.integers(0, nst, nv)
    dv = rng.uniform(0.5, 3.0, nv) / px
    av = rng.uniform(-np.pi, np.pi, nv)
    vy, vx = sy[j] + dv * np.sin(av), sx[j] + dv * np.cos(av)
    npp = int(rng.poisson(rng.uniform(5, 60) if gpp else rng.uniform(0, 10)))
    py, ppx = sample_density(_cyto_density(g, 0.3), npp, rng)
    vy, vx = np.r_[vy, py], np.r_[vx, ppx]
    keep = lookup(g.cell, vy, vx, False)
    dv = rng.uniform(0.3, 0.5, keep.sum())
    P += _dots(shp, vy[keep], vx[keep], loguniform(rng, 0.3, 1.2, dv.size) * (dv / px) ** 2, dv / 2.355 / px, 1)
    info = {"variant": variant, "fragmentation": round(float(frag), 2), "stacks": nst, "puncta": npp}
    return P * g.soft, "cyto-dim", info, None


# ----------------------------------------------------------------------------------------------
# Endosome and Lysosome


def _endosome(g: Geo, rng):
    px, shp = g.px, g.hw
    P = np.zeros(shp, np.float32)
    variant = _pick(rng, ["scattered", "sparse", "dense", "clustered"], [0.35, 0.2, 0.25, 0.2])
    if g.state == "mitotic":
        variant = "mitotic"
    n = {"sparse": rng.uniform(50, 150), "dense": rng.uniform(250, 500)}.get(variant, loguniform(rng, 80, 350))
    n = int(n * np.clip((g.cyto_area_um2 / 500.0) ** 0.3, 0.7, 1.4))
    dens = _cyto_density(g, 0.25, over=0.03)
    if g.state == "mitotic":
        dens = g.soft * g.vol * np.clip(1 - 2 * g.chrom, 0, 1)
    fpn = rng.uniform(0.0, 0.5) if g.state != "mitotic" else 0.0
    npn = int(n * fpn)
    y, x = sample_density(dens, n - npn, rng)
    if npn:
        sc = rng.uniform(1.5, 4.0) / px
        cy = g.mtoc[0] + rng.normal(0, sc, npn)
        cx = g.mtoc[1] + rng.normal(0, sc, npn)
        y, x = np.r_[y, cy], np.r_[x, cx]
    if variant == "clustered":
        par = rng.integers(0, max(y.size // 5, 1), y.size)
        sd = rng.uniform(0.5, 1.2) / px
        y = y[par] + rng.normal(0, sd, y.size)
        x = x[par] + rng.normal(0, sd, x.size)
    keep = lookup(g.cell & (~g.nuc | (rng.random() < 0.05)), y, x, False)
    y, x = y[keep], x[keep]
    m = y.size
    d = {"sparse": rng.uniform(0.3, 0.6, m), "dense": rng.uniform(0.2, 0.4, m)}.get(variant, rng.uniform(0.2, 0.6, m))
    b = np.exp(rng.normal(0, 0.55, m)) * (1.5 if variant == "sparse" else 1.0)
    P += _dots(shp, y, x, b * (d / px) ** 2 * 0.8, d / 2.355 / px, 2)
    info = {"variant": variant, "n": int(m), "perinuclear_fraction": round(float(fpn), 2)}
    if rng.random() < 0.5:  # transferrin receptor at the plasma membrane
        P += rng.uniform(0.05, 0.2) * np.exp(-np.clip(g.dedge, 0, None) / 0.25) * g.soft
        info["membrane"] = True
    P += rng.uniform(0.02, 0.1) * g.vol * g.cyto
    return P * g.soft, "cyto", info, None


def _lysosome(g: Geo, rng):
    px, shp = g.px, g.hw
    P = np.zeros(shp, np.float32)
    variant = _pick(rng, ["perinuclear", "dispersed", "few-large", "many-small", "peripheral"],
                    [0.35, 0.2, 0.15, 0.2, 0.1])
    if g.state == "mitotic":
        variant = "mitotic"
    n = int({"perinuclear": rng.uniform(60, 250), "dispersed": rng.uniform(40, 200), "few-large": rng.uniform(30, 70),
             "many-small": rng.uniform(150, 300), "peripheral": rng.uniform(40, 120)}.get(variant, rng.uniform(40, 200)))
    if variant == "few-large":
        d = rng.uniform(0.8, 1.5, n)
    elif variant == "many-small":
        d = rng.uniform(0.5, 0.8, n)
    else:
        d = np.clip(np.exp(rng.normal(np.log(0.75), 0.3, n)), 0.5, 1.5)
    if g.state == "mitotic":
        dens = g.soft * g.vol * np.clip(1 - 2 * g.chrom, 0, 1) * (0.3 + np.exp(-g.dedge * 0 - g.s * 2))
    elif variant == "perinuclear":
        lamb = rng.uniform(1.5, 4.0)
        bias = 1 + rng.uniform(0.5, 2.5) * np.clip(np.cos(g.theta - g.front), 0, None)
        dens = g.cyto * (np.exp(-np.clip(g.dnuc, 0, None) / lamb) * bias + 0.05)
    elif variant == "peripheral":
        dens = g.cyto * (g.s ** 2 + 0.05)
    else:
        dens = _cyto_density(g, 0.3)
    y, x = sample_density(dens, n, rng)
    keep = lookup(g.cell & ~g.nuc, y, x, False) if g.state != "mitotic" else lookup(g.cell, y, x, False)
    y, x, d = y[keep], x[keep], d[keep]
    b = np.exp(rng.normal(0, 0.45, d.size))
    ring = rng.random(d.size) < np.clip((d - 0.7) / 0.5, 0, 0.9)
    flux = b * (d / px) ** 2
    P += _dots(shp, y[~ring], x[~ring], flux[~ring], d[~ring] / 2.355 / px, 2)
    if ring.any():
        layer = np.zeros(shp, np.float32)
        r_px = (d[ring] / 2 - 0.12) / px
        lum = rng.uniform(0.1, 0.35)
        _rings(layer, y[ring], x[ring], r_px, flux[ring] * (1 - lum), rng)
        layer = blur(layer, 0.12 / px)
        inner = np.zeros(shp, np.float32)
        splat(inner, y[ring], x[ring], flux[ring] * lum)  # lumen: dim filling
        layer += blur(inner, float(np.mean(r_px)) * 0.6)
        P += layer
    P += rng.uniform(0.01, 0.06) * g.vol * g.cyto
    return P * g.soft, "cyto", {"variant": variant, "n": int(d.size), "rings": int(ring.sum())}, None


# ----------------------------------------------------------------------------------------------
# Mitochondria


def _mito_fragments(g, rng, shp, n, dens):
    px = g.px
    y, x = sample_density(dens, n, rng)
    keep = lookup(g.cell & ~g.nuc, y, x, False)
    y, x = y[keep], x[keep]
    m = y.size
    rod = rng.random(m) < 0.5
    out = _dots(shp, y[~rod], x[~rod], rng.uniform(0.7, 1.2, (~rod).sum()) * (rng.uniform(0.5, 1.0, (~rod).sum()) / px) ** 2,
                rng.uniform(0.5, 1.0) / 2.355 / px, 1)
    if rod.any():
        L = rng.uniform(1.0, 2.0, rod.sum()) / px
        a = rng.uniform(-np.pi, np.pi, rod.sum())
        yy, xx = y[rod], x[rod]
        layer = np.zeros(shp, np.float32)
        ys, xs, ws, _, _ = segment_points(yy - 0.5 * L * np.sin(a), xx - 0.5 * L * np.cos(a),
                                          yy + 0.5 * L * np.sin(a), xx + 0.5 * L * np.cos(a),
                                          rng.uniform(0.35, 0.6) / px, 0.7)
        keep = lookup(g.cell, ys, xs, False)
        splat(layer, ys[keep], xs[keep], ws[keep])
        out += blur(layer, 0.5 / 2.355 / px)
    return out


def _mitochondria(g: Geo, rng):
    px, shp = g.px, g.hw
    if g.state == "mitotic":
        dens = g.soft * g.vol * np.clip(1 - 2 * g.chrom, 0, 1)
        P = _mito_fragments(g, rng, shp, int(rng.integers(100, 400)), dens)
        P += rng.uniform(0.02, 0.08) * g.vol * g.soft
        return P * g.soft, "cyto", {"variant": "fragmented (mitotic)"}, None
    elongated = g.shape in ("spindle", "fan", "spread")
    variant = _pick(rng, ["network", "tubular", "fragmented", "clump", "parallel"],
                    [0.35, 0.25, 0.15, 0.15, 0.1 if elongated else 0.0])
    if g.state == "rounded" and variant in ("network", "parallel"):
        variant = "clump"
    Ltot = min(g.cyto_area_um2 * rng.uniform(0.6, 1.4), 2500.0)
    lo, hi = {"network": (3, 10), "tubular": (2, 8), "fragmented": (0.8, 2.5), "clump": (2, 6),
              "parallel": (4, 10)}[variant]
    n = int(np.clip(Ltot / (0.5 * (lo + hi)), 30, 700))
    L = rng.uniform(lo, hi, n)
    lam_s = {"clump": rng.uniform(0.12, 0.2), "fragmented": rng.uniform(0.5, 1.0)}.get(variant, rng.uniform(0.3, 0.7))
    dens = g.cyto * np.exp(-g.s / lam_s) * (0.3 + g.vol)
    y, x = sample_density(dens, n, rng)
    if variant == "parallel":
        ang = g.axis + np.pi * (rng.random(n) < 0.5) + rng.normal(0, 0.2, n)
        persist = rng.uniform(10, 20)
    else:
        ang = rng.uniform(-np.pi, np.pi, n)
        persist = rng.uniform(2, 6)
    step = max(0.3, 1.5 * px)
    avoid = rng.random(n) > rng.uniform(0.0, 0.25)
    Y, X, valid = _walk_lines(g, rng, y, x, ang, L, step, persist, avoid, 0.4, 0.35, edge_run_um=(0.0, 1.5))
    if variant == "network":  # branches from points along the tubules
        nb = int(n * rng.uniform(0.3, 1.0))
        li = rng.integers(0, n, nb)
        kk = (rng.random(nb) * (L[li] / step)).astype(int)
        by, bx = Y[li, kk], X[li, kk]
        hd = np.arctan2(Y[li, kk + 1] - by, X[li, kk + 1] - bx)
        bang = hd + rng.choice([-1, 1], nb) * rng.uniform(0.5, 1.3, nb)
        Lb = rng.uniform(1.0, 5.0, nb)
        Y2, X2, v2 = _walk_lines(g, rng, by, bx, bang, Lb, step, persist, np.ones(nb, bool), 0.4, 0.35,
                                 edge_run_um=(0.0, 1.0))
        pad = Y.shape[1] - Y2.shape[1]
        if pad > 0:
            Y2 = np.pad(Y2, ((0, 0), (0, pad)), mode="edge")
            X2 = np.pad(X2, ((0, 0), (0, pad)), mode="edge")
            v2 = np.pad(v2, ((0, 0), (0, pad)))
        else:
            Y2, X2, v2 = Y2[:, :Y.shape[1]], X2[:, :Y.shape[1]], v2[:, :Y.shape[1]]
        Y, X, valid = np.r_[Y, Y2], np.r_[X, X2], np.r_[valid, v2]
        avoid = np.r_[avoid, np.ones(nb, bool)]
    m = Y.shape[0]
    width = rng.uniform(0.3, 0.7, m)
    lam = width * rng.uniform(0.8, 1.2) * np.exp(rng.normal(0, 0.2, m)) / px
    ys, xs, ws, line, tt = polyline_points(Y, X, valid, lam, 0.7)
    over = lookup(g.nuc, ys, xs, False)
    ws = ws * np.where(over, g.over_nuc, 1.0)
    # uneven along the tubule (nucleoids, cristae, slight swellings)
    ph = rng.uniform(0, TWO_PI, m)
    ws = ws * np.clip(1 + 0.25 * np.sin(tt * Y.shape[1] * step / rng.uniform(0.8, 1.6) * TWO_PI + ph[line]), 0.4, None)
    thin = width[line] < 0.5
    P = np.zeros(shp, np.float32)
    a = np.zeros(shp, np.float32)
    splat(a, ys[thin], xs[thin], ws[thin])
    P += blur(a, 0.4 / 2.355 / px)
    a = np.zeros(shp, np.float32)
    splat(a, ys[~thin], xs[~thin], ws[~thin])
    P += blur(a, 0.6 / 2.355 / px)
    nfrag = int(n * (1.5 if variant == "fragmented" else rng.uniform(0.05, 0.3)))
    P += _mito_fragments(g, rng, shp, nfrag, dens)
    P += rng.uniform(0.01, 0.05) * g.vol * g.cyto
    return P * g.soft, "cyto", {"variant": variant, "tubules": int(m)}, None


# ----------------------------------------------------------------------------------------------
# Nucleolus and Nucleus


def _nucleolus(g: Geo, rng):
    px, shp = g.px, g.hw
    P = np.zeros(shp, np.float32)
    nucleolin = rng.random() < 0.5
    if g.state == "mitotic":
        coat = rng.random() < 0.6
        if coat:  # perichromosomal layer
            c = blur(g.chrom, 0.35 / px)
            P += np.clip(c - 0.6 * g.chrom, 0, None) * 2.0 + 0.3 * c
        P += rng.uniform(0.1, 0.35) * g.vol * g.soft
        return P * g.soft, "nuc", {"variant": "coating chromosomes" if coat else "diffuse (mitotic)"}, None
    nucleo = rng.uniform(0.1, 0.2) if nucleolin else rng.uniform(0.05, 0.1)
    rim = rng.uniform(0.0, 0.6)
    for nu in g.nuclei:
        sub = P[nu.sl]
        shp2 = sub.shape
        tex = np.clip(1 + rng.uniform(0.05, 0.2) * smooth_noise(shp2, max(0.25 / px, 0.5), rng), 0, None)
        body = nu.body * (1 + rim * np.clip(nu.body - nu.body_in, 0, 1) * 2) * tex
        # fibrillar centres: small dimmer dots inside the bodies
        nfc = int(rng.integers(2, 12)) * len(nu.nucleoli)
        if nfc:
            y0, x0 = nu.sl[0].start, nu.sl[1].start
            j = rng.integers(0, len(nu.nucleoli), nfc)
            cy = np.array([c[0] for c in nu.nucleoli])[j] - y0
            cx = np.array([c[1] for c in nu.nucleoli])[j] - x0
            rr = np.array([c[2] for c in nu.nucleoli])[j] * 0.35 / px * np.sqrt(rng.random(nfc))
            t = rng.uniform(-np.pi, np.pi, nfc)
            dd = rng.uniform(0.3, 0.7, nfc)
            fc = _dots(shp2, cy + rr * np.sin(t), cx + rr * np.cos(t), (dd / px) ** 2, dd / 2.355 / px, 1)
            body = body * (1 - rng.uniform(0.3, 0.7) * np.clip(fc / max(float(fc.max()), 1e-9), 0, 1))
        npl = nucleo * nu.soft * (1 + 0.2 * smooth_noise(shp2, max(0.5 / px, 0.5), rng))
        np.maximum(sub, np.clip(body + npl * (1 - nu.body), 0, None), out=sub)
    if g.micro is not None:
        my, mx, mr = g.micro
        yy = (np.arange(shp[0]) - my)[:, None]
        xx = (np.arange(shp[1]) - mx)[None, :]
        P += nucleo * np.clip(mr - np.sqrt(yy * yy + xx * xx) + 0.5, 0, 1).astype(np.float32)
    P += rng.uniform(0.005, 0.03) * g.vol * g.cyto
    return P * g.soft, "nuc", {"variant": "nucleolin" if nucleolin else "fibrillarin",
                               "nucleoli": int(sum(len(n.nucleoli) for n in g.nuclei))}, None


def _nucleus(g: Geo, rng):
    px, shp = g.px, g.hw
    dna_like = rng.random() < 0.55
    if dna_like:  # the DNA stain itself
        return g.dna.copy(), "nuc", {"variant": "DNA stain"}, None
    P = np.zeros(shp, np.float32)
    if g.state == "mitotic":  # nuclear proteins spread through the whole cell
        P += g.vol * g.soft * np.clip(1 - rng.uniform(0.3, 0.8) * g.chrom, 0, None)
        return P, "nuc", {"variant": "nucleoplasmic (mitotic)"}, None
    gran = rng.uniform(0.03, 0.35)
    hole = 0.0 if rng.random() < 0.2 else rng.uniform(0.5, 0.95)
    rim = rng.uniform(-0.3, 0.4)
    for nu in g.nuclei:
        sub = P[nu.sl]
        shp2 = sub.shape
        speck = smooth_noise(shp2, max(rng.uniform(0.15, 0.3) / px, 0.5), rng) * gran
        med = smooth_noise(shp2, rng.uniform(1.0, 2.5) / px, rng) * rng.uniform(0.03, 0.12)
        dome = 1 - rng.uniform(0.1, 0.4) * (1 - np.sqrt(np.clip(1 - nu.rel ** 2, 0, 1)))
        r = rim * np.exp(-np.clip(nu.din, 0, None) / 0.5)
        val = nu.soft * dome * np.clip(1 + speck + med + r, 0.1, None) * (1 - hole * nu.body)
        np.maximum(sub, val.astype(np.float32), out=sub)
    if g.micro is not None:
        my, mx, mr = g.micro
        yy = (np.arange(shp[0]) - my)[:, None]
        xx = (np.arange(shp[1]) - mx)[None, :]
        P += 0.8 * np.clip(mr - np.sqrt(yy * yy + xx * xx) + 0.5, 0, 1).astype(np.float32)
    P += rng.uniform(0.005, 0.05) * g.vol * g.cyto
    return P * g.soft, "nuc", {"variant": "nucleoplasmic", "holes": hole > 0, "granularity": round(gran, 2)}, None


DRAWERS = {
    "ActinFilaments": _actin,
    "Endosome": _endosome,
    "ER": _er,
    "Golgi_gia": lambda g, rng: _golgi(g, rng, gpp=False),
    "Golgi_gpp": lambda g, rng: _golgi(g, rng, gpp=True),
    "Lysosome": _lysosome,
    "Microtubules": _microtubules,
    "Mitochondria": _mitochondria,
    "Nucleolus": _nucleolus,
    "Nucleus": _nucleus,
}
