"""Organelle drawers of the ``indep_e`` renderer: one function per class, each with variants.

Each drawer takes a cell (``_indep_e_cell.Cell``), the generator and the cell's ``info`` dict (it
records the variant drawn there) and returns the structure image on the cell's crop, before the
shared background / expression scaling done by ``indep_e.render``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import Delaunay

from ._indep_e_cell import um
from ._indep_e_draw import (blur, densify, disc_points, lookup, noise, rho_at, sample_from, splat,
                            walk)
from .base import extent


def _pick(rng, options):
    names = list(options)
    p = np.array([options[k] for k in names], float)
    return names[rng.choice(len(names), p=p / p.sum())]


def _psf_sigma(c, width_um):
    """Blur (px) that widens a 1-px line to a structure ``width_um`` wide."""
    return width_um / c.px / 2.5


def _cyto_density(c, gamma=1.0, reach_um=0.4):
    d = c.T ** gamma * c.cyto
    return d * (1 - np.exp(-c.d_edge / um(c, reach_um)))


def _in_cyto(c, y, x):
    return lookup(c.cyto, y, x) & (lookup(c.d_edge, y, x) > 1)


# --------------------------------------------------------------------------- ActinFilaments
def _actin(c, rng, info):
    shp = c.cell.shape
    out = np.zeros(shp)
    if c.state != "interphase":
        info["variant"] = "cortex_ring"
        w = um(c, rng.uniform(0.4, 1.0))
        out += np.exp(-c.d_edge / max(w, 0.7)) * c.cell * rng.uniform(1.0, 2.0)
        out += c.T * rng.uniform(0.05, 0.25) * (1 + 0.3 * noise(shp, max(um(c, 0.3), 0.6), rng))
        return out
    probs = {"spread": dict(fibres=0.55, ruffle=0.2, podosome=0.1, few=0.1, cortex=0.05),
             "hela": dict(fibres=0.2, ruffle=0.15, podosome=0.1, few=0.35, cortex=0.2),
             "epithelial": dict(fibres=0.1, ruffle=0.1, podosome=0.05, few=0.3, cortex=0.45),
             "stem": dict(fibres=0.05, ruffle=0.1, podosome=0.05, few=0.3, cortex=0.5)}[c.line]
    v = _pick(rng, probs)
    info["variant"] = v
    n_fib = {"fibres": rng.integers(25, 80), "few": rng.integers(0, 9), "cortex": rng.integers(0, 4),
             "ruffle": rng.integers(2, 15), "podosome": rng.integers(0, 6)}[v]
    n_fib = int(min(n_fib, c.area_um / 12))
    fine = np.zeros(shp)
    if n_fib > 0:
        fy, fx = sample_from(c.cell * (c.d_edge > um(c, 1.5)), n_fib, rng)
        mode = _pick(rng, dict(parallel=0.5, fan=0.25, cross=0.25))
        info["fibres"] = f"{n_fib} {mode}"
        th = c.axis + rng.normal(0, rng.uniform(0.08, 0.3), n_fib)
        if mode == "fan":
            fy0 = c.oy - np.sin(c.axis) * c.crho.max() * 1.5
            fx0 = c.ox - np.cos(c.axis) * c.crho.max() * 1.5
            th = np.arctan2(fy - fy0, fx - fx0) + rng.normal(0, 0.1, n_fib)
        elif mode == "cross":
            th = th + np.where(rng.random(n_fib) < 0.4, rng.uniform(0.5, 1.3) * rng.choice([-1, 1]), 0)
        L = um(c, rng.uniform(5, 40, n_fib))
        nt = int(np.clip(L.max() / 0.5, 8, 1500))
        t = np.linspace(-0.5, 0.5, nt)[None, :] * L[:, None]
        y = fy[:, None] + t * np.sin(th)[:, None]
        x = fx[:, None] + t * np.cos(th)[:, None]
        inside = lookup(c.d_edge, y, x) > um(c, 0.3)
        # keep the stretch around the seed only (no jumping across concave gaps)
        mid = nt // 2
        cs = np.cumsum(~inside, axis=1)
        inside &= cs == cs[:, mid:mid + 1]
        width = rng.uniform(0.2, 1.0, n_fib)
        bright = width / 0.4 * rng.uniform(0.5, 1.4, n_fib)
        idx = np.arange(nt)[None, :]
        first = np.argmax(inside, axis=1)[:, None]
        last = (nt - 1 - np.argmax(inside[:, ::-1], axis=1))[:, None]
        dash = (um(c, rng.uniform(1, 5, n_fib)) / (L / nt))[:, None]
        fa = inside & ((idx - first < dash) | (last - idx < dash))
        w = (L / nt)[:, None] * bright[:, None] * inside * (1 + fa * rng.uniform(1.0, 2.5))
        cap = rng.uniform(0.4, 1.0)
        w *= np.where(lookup(c.nucleus, y, x), cap, 1.0)
        thick = width > 0.45
        fine += splat(shp, y[~thick], x[~thick], w[~thick])
        out += blur(splat(shp, y[thick], x[thick], w[thick]), _psf_sigma(c, 0.7))
    fib_level = max(np.percentile(out[out > 0], 95), 1e-9) if (out > 0).any() else 1.0
    # cortex
    wc = um(c, rng.uniform(0.4, 1.3))
    cort_amp = rng.uniform(0.8, 2.0) if v == "cortex" else rng.uniform(0.15, 0.8)
    out += np.exp(-c.d_edge / max(wc, 0.7)) * c.cell * cort_amp * fib_level
    if c.straight.any():  # a sharp bright line where the cell touches a neighbour
        k = np.nonzero(c.straight & np.roll(c.straight, -1))[0]
        by = np.stack([c.by[k], c.by[(k + 1) % c.by.size]], 1)
        bx = np.stack([c.bx[k], c.bx[(k + 1) % c.bx.size]], 1)
        cy_, cx_ = c.oy, c.ox  # pull the line just inside the outline
        f = 1 - 1.2 / np.maximum(np.hypot(by - cy_, bx - cx_), 1.2)
        y, x, w = densify(cy_ + (by - cy_) * f, cx_ + (bx - cx_) * f, np.ones((k.size, 1), bool),
                          np.full(k.size, rng.uniform(0.5, 1.5) * fib_level))
        out += blur(splat(shp, y, x, w), _psf_sigma(c, 0.4))
        info["shared_edges"] = True
    # lamellipodium / ruffles and transverse arcs
    if v == "ruffle" or (v == "fibres" and rng.random() < 0.4) or c.info.get("fan"):
        front = c.axis if c.info.get("fan") else rng.uniform(0, 2 * np.pi)
        half = rng.uniform(0.4, 1.2)
        win = np.exp(-0.5 * (np.angle(np.exp(1j * (c.psi - front))) / half) ** 4)
        wl = um(c, rng.uniform(2, 5))
        mesh = 0.6 + 0.4 * noise(shp, max(um(c, 0.15), 0.5), rng)
        out += np.clip(mesh, 0, None) * np.exp(-c.d_edge / wl) * win * c.cell * rng.uniform(0.5, 1.2) * fib_level
        for _ in range(rng.integers(0, 4)):
            d0 = wl + um(c, rng.uniform(1, 5))
            out += np.exp(-0.5 * ((c.d_edge - d0) / max(um(c, 0.25), 0.6)) ** 2) * win * c.cell \
                * rng.uniform(0.3, 0.8) * fib_level
        info["lamella"] = True
    # podosomes
    if v == "podosome":
        n = rng.integers(20, 120)
        ncl = rng.integers(1, 5)
        ky, kx = sample_from(_cyto_density(c, 0.0, 2.0), ncl, rng)
        k = rng.integers(0, ncl, n)
        py = ky[k] + rng.normal(0, um(c, rng.uniform(1.5, 4)), n)
        px = kx[k] + rng.normal(0, um(c, 1.5), n)
        ok = lookup(c.cell, py, px)
        dy, dx, dw = disc_points(py[ok], px[ok], um(c, rng.uniform(0.25, 0.5)), 1.0, rng)
        pod = blur(splat(shp, dy, dx, dw), _psf_sigma(c, 0.3))
        if pod.max() > 0:
            out += pod / pod.max() * fib_level * rng.uniform(0.8, 1.5)
    # filopodia: thin spikes from the sides of the cell (kept inside the cell's extent)
    nf = rng.integers(0, 25) if v in ("ruffle", "fibres") else rng.integers(0, 6)
    if nf:
        j = rng.integers(0, c.cpsi.size, nf)
        rb = c.crho[j]
        ok = rb < 0.8 * c.crho.max()
        j, rb = j[ok], rb[ok]
        a = c.cpsi[j] + rng.normal(0, 0.15, j.size)
        ln = np.minimum(um(c, rng.uniform(2, 10, j.size)), 0.9 * c.crho.max() - rb)
        ok = ln > 2
        a, rb, ln = a[ok], rb[ok], ln[ok]
        if a.size:
            t = np.linspace(-0.1, 1, 40)
            rr = rb[:, None] + ln[:, None] * t
            y = c.oy + rr * np.sin(a)[:, None]
            x = c.ox + rr * np.cos(a)[:, None]
            w = (ln / 40)[:, None] * rng.uniform(0.5, 1.2) * np.ones_like(t)
            keep = (y > 1) & (y < c.size[0] - 2) & (x > 1) & (x < c.size[1] - 2)
            y, x, w = y[keep], x[keep], w[keep]
            yi, xi = np.round(y).astype(int), np.round(x).astype(int)
            grown = c.cell.copy()
            grown[yi, xi] = True
            if extent(grown) <= 1.07 * c.diameter:
                c.cell = grown
                fine += splat(shp, y, x, w * np.median(bright) if n_fib > 0 else w)
                info["filopodia"] = int(a.size)
    if fine.max() > 0:
        out += fine * (fib_level / max(np.percentile(fine[fine > 0], 95), 1e-9) if v in ("cortex", "few") else 1.0)
    # diffuse meshwork
    mesh_amp = rng.uniform(0.04, 0.25) * fib_level
    grain = np.clip(1 + 0.35 * noise(shp, max(um(c, 0.25), 0.5), rng), 0, None)
    out += c.T * grain * mesh_amp * np.where(c.nucleus, rng.uniform(0.3, 0.7), 1.0)
    return out


# --------------------------------------------------------------------------- Microtubules
def _microtubules(c, rng, info):
    shp = c.cell.shape
    step = um(c, 0.5)
    margin = max(um(c, 0.5), 1.5)
    if c.state == "mitotic" and c.info.get("stage") == "telophase":
        return _midbody(c, rng, info)
    if c.state == "mitotic":
        info["variant"] = "spindle"
        (p1y, p1x), (p2y, p2x) = c.poles
        n = rng.integers(150, 350)
        lines_y, lines_x = [], []
        for (py, px), (qy, qx) in (((p1y, p1x), (p2y, p2x)), ((p2y, p2x), (p1y, p1x))):
            f = rng.uniform(0.3, 0.65, n)  # how far toward the other pole
            plate_l = c.plate[2] if c.plate is not None else um(c, 8)
            spread = plate_l * rng.uniform(0.2, 0.35)
            off = rng.normal(0, spread, n)
            ey = py + (qy - py) * f + off * c.spindle_axis[1]
            ex = px + (qx - px) * f - off * c.spindle_axis[0]
            t = np.linspace(0, 1, 24)
            lines_y.append(py + (ey - py)[:, None] * t)
            lines_x.append(px + (ex - px)[:, None] * t)
            na = rng.integers(8, 30)
            a = rng.uniform(0, 2 * np.pi, na)
            la = um(c, rng.uniform(1, 5, na))
            lines_y.append(py + (la * np.sin(a))[:, None] * t)
            lines_x.append(px + (la * np.cos(a))[:, None] * t)
        ys = np.concatenate([l.reshape(-1, 24) for l in lines_y])
        xs = np.concatenate([l.reshape(-1, 24) for l in lines_x])
        alive = (lookup(c.cell, ys, xs)[:, 1:])
        # fibres converge at the poles: thinner there per fibre, so the pole does not swamp the spindle
        y, x, w = densify(ys, xs, alive, np.broadcast_to(0.15 + np.linspace(0, 1, 23), alive.shape))
        out = blur(splat(shp, y, x, w), _psf_sigma(c, 0.3))
        level = max(np.percentile(out[out > 0], 99), 1e-9)
        for py, px in c.poles:
            dy, dx, dw = disc_points([py], [px], [um(c, 0.5)], [1.0], rng)
            s = blur(splat(shp, dy, dx, dw), _psf_sigma(c, 0.4))
            out += s / max(s.max(), 1e-9) * level * rng.uniform(0.5, 1.2)
        out += c.T * level * rng.uniform(0.03, 0.15)
        return out
    v = _pick(rng, dict(radial=0.4, meshwork=0.25, parallel=0.15 + 0.2 * (c.line == "spread"), wavy=0.15))
    info["variant"] = v
    n = int(np.clip(c.area_um / rng.uniform(2.0, 6), 50, 700))
    if v == "wavy":
        n = int(n * 0.6)
    my, mx = c.mtoc
    sy = my + rng.normal(0, um(c, 0.6), n)
    sx = mx + rng.normal(0, um(c, 0.6), n)
    th = rng.uniform(0, 2 * np.pi, n)
    drift = None
    if v in ("meshwork", "parallel"):
        k = rng.random(n) < (0.6 if v == "meshwork" else 0.85)
        ry, rx = sample_from(_cyto_density(c, 0.5), int(k.sum()), rng)
        sy[k], sx[k] = ry, rx
        if v == "parallel":
            th = c.axis + rng.normal(0, 0.2, n) + np.pi * (rng.random(n) < 0.5)
            drift = th.copy()
    ok = lookup(c.cell, sy, sx)
    sy[~ok], sx[~ok] = my, mx
    L = np.where(rng.random(n) < 0.35, rng.uniform(3, 12, n), rng.uniform(10, 40, n))
    step = min(step, 4.0)  # px; keeps the curves smooth in small, finely sampled cells
    step_um = step * c.px
    steps = np.ceil(L / step_um).astype(int)
    curv = {"radial": rng.uniform(0.05, 0.11), "meshwork": rng.uniform(0.08, 0.15),
            "parallel": rng.uniform(0.03, 0.06), "wavy": rng.uniform(0.15, 0.25)}[v]
    f = np.sqrt(step_um / 0.5)
    ys, xs, alive = walk(sy, sx, th, steps, step, curv * f, rng, c.d_edge, c.gy, c.gx, margin=margin,
                         edge_stop=rng.uniform(0.15, 0.5) * f ** 2, max_steps=int(min(steps.max(), 120)),
                         drift=drift)
    bright = rng.uniform(0.7, 1.3, n) * (rng.uniform(1.8, 3.0) if v == "wavy" else 1.0)
    y, x, w = densify(ys, xs, alive, bright)
    w *= np.where(lookup(c.nucleus, y, x), rng.uniform(0.25, 0.6), 1.0)
    out = splat(shp, y, x, w)
    if v == "wavy":
        out = blur(out, _psf_sigma(c, 0.35))
    level = max(np.percentile(out[c.cyto & (out > 0)], 90), 1e-9) if (c.cyto & (out > 0)).any() else 1.0
    if rng.random() < 0.5:
        info["centrosome"] = True
        dy, dx, dw = disc_points([my], [mx], [um(c, rng.uniform(0.3, 0.7))], [1.0], rng)
        s = blur(splat(shp, dy, dx, dw), _psf_sigma(c, 0.4))
        out += s / max(s.max(), 1e-9) * level * rng.uniform(1.0, 3.0)
    out += c.T * level * rng.uniform(0.03, 0.3) * np.where(c.nucleus, 0.5, 1.0)
    # the crowded centre: overlapping microtubules merge into a bright haze around the centrosome
    r_mtoc = np.hypot(c.yy - my, c.xx - mx)
    out += np.exp(-r_mtoc / um(c, rng.uniform(3, 8))) * c.cyto * level * rng.uniform(0.0, 0.6)
    return out


def _midbody(c, rng, info):
    """Late division: a bright midbody bridge between the daughters, dim radial arrays in each."""
    shp = c.cell.shape
    info["variant"] = "midbody"
    uy, ux = np.sin(c.axis), np.cos(c.axis)  # division axis
    n = rng.integers(30, 80)
    t = np.linspace(-1, 1, 25)
    ln = um(c, rng.uniform(2, 5, n))
    off = rng.normal(0, um(c, rng.uniform(0.3, 0.8)), n)
    # bundles pinched at the bridge, splaying into each daughter
    ys = c.oy + t * ln[:, None] * uy + off[:, None] * np.abs(t) * ux
    xs = c.ox + t * ln[:, None] * ux - off[:, None] * np.abs(t) * uy
    alive = lookup(c.cell, ys, xs)[:, 1:]
    y, x, w = densify(ys, xs, alive, np.ones(n))
    out = blur(splat(shp, y, x, w), _psf_sigma(c, 0.3))
    level = max(out.max(), 1e-9)
    dy, dx, dw = disc_points([c.oy], [c.ox], [um(c, rng.uniform(0.4, 0.8))], [1.0], rng)
    mb = blur(splat(shp, dy, dx, dw), _psf_sigma(c, 0.4))
    out += mb / max(mb.max(), 1e-9) * level * rng.uniform(0.6, 1.5)
    rays = []
    for py, px in c.daughters:
        m = rng.integers(40, 120)
        a = rng.uniform(0, 2 * np.pi, m)
        L = um(c, rng.uniform(3, 9, m))
        ry = py + L[:, None] * np.sin(a)[:, None] * np.linspace(0, 1, 16)
        rx = px + L[:, None] * np.cos(a)[:, None] * np.linspace(0, 1, 16)
        rays.append((ry, rx))
    ry = np.concatenate([r[0] for r in rays])
    rx = np.concatenate([r[1] for r in rays])
    y, x, w = densify(ry, rx, lookup(c.cell, ry, rx)[:, 1:], np.ones(ry.shape[0]))
    arr = splat(shp, y, x, w)
    out += arr / max(np.percentile(arr[arr > 0], 99), 1e-9) * level * rng.uniform(0.15, 0.4) if (arr > 0).any() else 0
    out += c.T * level * rng.uniform(0.03, 0.12)
    return out


# --------------------------------------------------------------------------- ER
def _er(c, rng, info):
    shp = c.cell.shape
    mitotic = c.state == "mitotic"
    v = "mitotic" if mitotic else _pick(rng, dict(lacy=0.4, sheets=0.3, cloud=0.3 - 0.15 * (c.line == "spread")))
    info["variant"] = v
    mesh_um = rng.uniform(0.5, 2.0)
    if mitotic:
        dens = c.T * c.cyto * (1 - c.chrom)
        reach = 0.3
    else:
        gamma = {"lacy": rng.uniform(0.3, 0.8), "sheets": rng.uniform(0.8, 1.5), "cloud": rng.uniform(1.5, 3.0)}[v]
        reach = rng.uniform(0.3, 3.0) if v != "lacy" else rng.uniform(0.2, 1.0)
        dens = _cyto_density(c, gamma, reach)
    cyto_area_px = float((dens > 0.05 * dens.max()).sum())
    mesh_px = max(um(c, mesh_um), 1.5)
    npts = int(np.clip(cyto_area_px / mesh_px ** 2 * 2.5, 30, 3500))
    py, px = sample_from(dens, npts, rng)
    m_eff = max(np.sqrt(cyto_area_px / npts), mesh_px / 1.6)
    tri = Delaunay(np.column_stack([py, px]))
    e = np.concatenate([tri.simplices[:, [0, 1]], tri.simplices[:, [1, 2]], tri.simplices[:, [0, 2]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    ey = py[e]
    ex = px[e]
    ln = np.hypot(ey[:, 1] - ey[:, 0], ex[:, 1] - ex[:, 0])
    keep = (ln < 2.0 * m_eff) & (rng.random(len(e)) > rng.uniform(0.1, 0.35))
    ey, ex = ey[keep], ex[keep]
    my = 0.5 * (ey[:, 0] + ey[:, 1])
    mx = 0.5 * (ex[:, 0] + ex[:, 1])
    keep = lookup(c.cyto, my, mx)
    ey, ex = ey[keep], ex[keep]
    y, x, w = densify(ey, ex, np.ones((len(ey), 1), bool), rng.uniform(0.6, 1.4, len(ey)), spacing=0.7)
    net = splat(shp, y, x, w)
    net *= 0.5 + lookup(c.T, y, x).mean() * 0 + c.T  # stacked layers where the cell is thick
    info["mesh_um"] = round(float(m_eff * c.px), 2)
    cy_mask = c.cyto & (c.T > 0)
    level = float(net[cy_mask].mean()) if cy_mask.any() else 1.0
    level = max(level, 1e-9)
    grain = np.clip(1 + rng.uniform(0.2, 0.6) * noise(shp, max(um(c, 0.25), 0.5), rng), 0, None)
    out = net * (rng.uniform(0.4, 1.2) if v == "lacy" else rng.uniform(0.1, 0.6))
    # fine unresolved texture: how grainy/lacy the stain looks at this magnification
    out += grain * dens / max(dens.max(), 1e-9) * level * rng.uniform(0.3, 1.5)
    if not mitotic:
        ws = um(c, rng.uniform(2, 8))
        sheet_amp = {"lacy": rng.uniform(0.3, 1.0), "sheets": rng.uniform(1.5, 3.5), "cloud": rng.uniform(2, 4)}[v]
        out += sheet_amp * level * np.exp(-np.maximum(c.dnuc, 0) / ws) * c.cyto * grain
        ring_w = max(um(c, 0.2), 0.6)
        ring = np.exp(-0.5 * (c.dnuc / ring_w) ** 2)
        out += ring * c.cell * level * rng.uniform(2, 5) * (1 + sheet_amp) * 0.5
        out += c.nuc_soft * level * rng.uniform(0.0, 0.35) * grain
    return out


# --------------------------------------------------------------------------- Golgi
def _golgi(c, rng, info, kind):
    shp = c.cell.shape
    gpp = kind == "gpp"
    if c.state == "mitotic":
        info["variant"] = "mitotic_haze"
        n = rng.integers(150, 600)
        y, x = sample_from(c.T * c.cyto, n, rng)
        dy, dx, dw = disc_points(y, x, um(c, 0.2), rng.lognormal(0, 0.4, n), rng)
        out = blur(splat(shp, dy, dx, dw), _psf_sigma(c, 0.3))
        level = max(out.max(), 1e-9)
        return out + c.T * level * rng.uniform(0.05, 0.3)
    v = _pick(rng, dict(knot=0.3, arc=0.35, cap=0.15, two=0.08, dispersed=0.12 if gpp else 0.06))
    info["variant"] = v
    psi_t, rho_t = c.nuclei[0][2], c.nuclei[0][3]
    ga = c.golgi_angle
    ncy, ncx = c.ncy, c.ncx
    n_el = rng.integers(12, 35) if not gpp else rng.integers(10, 30)
    if v in ("arc", "cap", "two"):
        half = {"arc": rng.uniform(np.pi / 4, np.pi / 2), "cap": rng.uniform(0.35, 0.8),
                "two": rng.uniform(0.2, 0.5)}[v]
        a = ga + rng.uniform(-half, half, n_el)
        if v == "two":
            a = a + np.where(rng.random(n_el) < 0.5, -1, 1) * rng.uniform(0.7, 1.3)
        spread = um(c, rng.uniform(0.4, 1.3) * (1.5 if gpp else 1.0))
        gap = um(c, rng.uniform(0.0, 1.2))
        r = rho_at(psi_t, rho_t, a) + gap + np.abs(rng.normal(0, spread, n_el))
        ey, ex = ncy + r * np.sin(a), ncx + r * np.cos(a)
        tang = a + np.pi / 2
    elif v == "knot":
        rad = um(c, rng.uniform(1.0, 2.5) * (1.3 if gpp else 1.0))
        r0 = rho_at(psi_t, rho_t, ga) + rad * 0.8 + um(c, rng.uniform(0, 1))
        ky, kx = ncy + r0 * np.sin(ga), ncx + r0 * np.cos(ga)
        ey, ex = ky + rng.normal(0, rad * 0.6, n_el), kx + rng.normal(0, rad * 0.6, n_el)
        tang = rng.uniform(0, 2 * np.pi, n_el)
    else:  # dispersed / fragmented
        n_el = int(n_el * 2)
        a = ga + rng.normal(0, rng.uniform(0.8, 2.0), n_el)
        r = rho_at(psi_t, rho_t, a) + um(c, rng.exponential(rng.uniform(2, 5), n_el))
        ey, ex = ncy + r * np.sin(a), ncx + r * np.cos(a)
        tang = rng.uniform(0, 2 * np.pi, n_el)
    # nudge elements out of the nucleus and keep them in the cell
    inn = lookup(c.nucleus, ey, ex) | ~lookup(c.cell, ey, ex)
    ey[inn], ex[inn] = c.mtoc[0] + rng.normal(0, um(c, 0.8), inn.sum()), c.mtoc[1] + rng.normal(0, um(c, 0.8), inn.sum())
    # stacks: short curved segments
    seg = um(c, rng.uniform(0.5, 1.5, ey.size)) * (0.7 if v == "dispersed" else 1.0)
    bend = rng.normal(0, 0.4, ey.size)
    t = np.linspace(-0.5, 0.5, 7)
    ang = tang[:, None] + bend[:, None] * t
    sy = ey[:, None] + np.cumsum(np.sin(ang), 1) * (seg / 7)[:, None] - (seg / 2 * np.sin(tang))[:, None]
    sx = ex[:, None] + np.cumsum(np.cos(ang), 1) * (seg / 7)[:, None] - (seg / 2 * np.cos(tang))[:, None]
    bright = rng.lognormal(0, 0.35 if not gpp else 0.5, ey.size)
    y, x, w = densify(sy, sx, np.ones((ey.size, 6), bool), bright)
    ribbon = splat(shp, y, x, w)
    # a continuous faint ribbon under the stacks (giantin tends to look more continuous)
    if v in ("arc", "cap") and rng.random() < (0.4 if gpp else 0.8):
        aa = np.linspace(ga - half, ga + half, 40)
        rr = rho_at(psi_t, rho_t, aa) + gap + spread * 0.5
        ry, rx = ncy + rr * np.sin(aa), ncx + rr * np.cos(aa)
        y, x, w = densify(ry[None], rx[None], np.ones((1, 39), bool), np.array([np.median(bright)]))
        ribbon += splat(shp, y, x, w) * rng.uniform(0.3, 0.8)
    out = blur(ribbon, _psf_sigma(c, rng.uniform(0.4, 0.8)))
    level = max(out.max(), 1e-9)
    # vesicles near the Golgi, and (more for gpp130) peripheral puncta
    nv = rng.integers(3, 15) if not gpp else rng.integers(5, 30)
    vy = c.mtoc[0] + rng.normal(0, um(c, 3), nv)
    vx = c.mtoc[1] + rng.normal(0, um(c, 3), nv)
    npp = rng.integers(0, 12) if not gpp else rng.integers(5, 45)
    qy, qx = sample_from(_cyto_density(c, 0.5), npp, rng)
    py = np.concatenate([vy, qy])
    px = np.concatenate([vx, qx])
    pw = np.concatenate([rng.uniform(0.2, 0.6, nv), rng.uniform(0.08, 0.35, npp)])
    ok = _in_cyto(c, py, px)
    dy, dx, dw = disc_points(py[ok], px[ok], um(c, rng.uniform(0.15, 0.25)), pw[ok], rng)
    ves = blur(splat(shp, dy, dx, dw), _psf_sigma(c, 0.35))
    if ves.max() > 0:
        out += ves / ves.max() * level * rng.uniform(0.3, 0.7)
    out += c.T * c.cell * level * rng.uniform(0.02, 0.12) * np.where(c.nucleus, 0.5, 1.0)
    return out


# --------------------------------------------------------------------------- Endosome / Lysosome
def _crowd_density(c, lam_um):
    """Cytoplasmic density concentrated around the nucleus (chromosomes in mitosis)."""
    return np.exp(-np.maximum(c.dnuc, 0) / um(c, lam_um)) * c.cyto * (c.d_edge > 1)


def _endosome(c, rng, info):
    shp = c.cell.shape
    v = _pick(rng, dict(dense_fine=0.35, sparse_bright=0.25, clustered=0.2, perinuclear=0.2))
    if c.state == "mitotic":
        v = "mitotic_crowded"
    info["variant"] = v
    area_f = np.clip(c.area_um / 600, 0.3, 1.5)
    n = int(np.exp(rng.uniform(np.log(50), np.log(500))) * area_f)
    if v == "dense_fine":
        n = int(n * 1.5) + 100
    elif v == "sparse_bright":
        n = int(n * 0.4) + 30
    n = int(np.clip(n, 40, 700))
    f_peri = {"perinuclear": rng.uniform(0.4, 0.7), "clustered": rng.uniform(0.0, 0.3)}.get(v, rng.uniform(0, 0.35))
    n2 = int(n * f_peri)
    y1, x1 = sample_from(_cyto_density(c, rng.uniform(0.0, 0.6), 0.3) if v != "mitotic_crowded"
                         else _crowd_density(c, 3), n - n2, rng)
    sd = um(c, rng.uniform(1.5, 4))
    y2 = c.mtoc[0] + rng.normal(0, sd, n2)
    x2 = c.mtoc[1] + rng.normal(0, sd, n2)
    y, x = np.concatenate([y1, y2]), np.concatenate([x1, x2])
    if v == "clustered":
        k = rng.integers(0, max(2, n // 12), y.size)
        cyy, cxx = y[k], x[k]
        y = cyy + rng.normal(0, um(c, 0.8), y.size)
        x = cxx + rng.normal(0, um(c, 0.8), y.size)
    ok = _in_cyto(c, y, x) | (lookup(c.nucleus, y, x) & (rng.random(y.size) < 0.03))
    y, x = y[ok], x[ok]
    dmean = rng.uniform(0.2, 0.45) if v != "sparse_bright" else rng.uniform(0.35, 0.6)
    d = np.clip(rng.normal(dmean, 0.08, y.size), 0.15, 0.65)
    b = rng.lognormal(0, rng.uniform(0.35, 0.6), y.size) * (d / 0.4) ** 2
    dy, dx, dw = disc_points(y, x, um(c, d / 2), b, rng)
    dots = blur(splat(shp, dy, dx, dw), _psf_sigma(c, 0.25))
    level = max(np.percentile(dots[dots > 0], 99.5), 1e-9) if (dots > 0).any() else 1.0
    out = dots
    if rng.random() < 0.6:  # transferrin receptor at the plasma membrane
        out += np.exp(-c.d_edge / max(um(c, 0.3), 0.7)) * c.cell * level * rng.uniform(0.05, 0.25)
        info["membrane"] = True
    out += c.T * c.cell * level * rng.uniform(0.02, 0.2) * np.where(c.nucleus, 0.3, 1.0)
    return out


def _lysosome(c, rng, info):
    shp = c.cell.shape
    v = _pick(rng, dict(perinuclear=0.5, even=0.25, peripheral=0.1, few_large=0.15))
    if c.state == "mitotic":
        v = "mitotic_crowded"
    info["variant"] = v
    area_f = np.clip(c.area_um / 600, 0.3, 1.5)
    n = int(np.clip(np.exp(rng.uniform(np.log(30), np.log(300))) * area_f, 20, 350))
    if v == "few_large":
        n = int(np.clip(n * 0.4, 20, 80))
    lam = rng.uniform(1.0, 4.0)
    dens = {"perinuclear": _crowd_density(c, lam), "mitotic_crowded": _crowd_density(c, 2.5),
            "few_large": _crowd_density(c, lam * 2),
            "even": _cyto_density(c, rng.uniform(0, 0.5), 0.5),
            "peripheral": np.exp(-c.d_edge / um(c, rng.uniform(2, 5))) * c.cyto * (c.d_edge > 1)}[v]
    if not dens.any():
        dens = c.cyto.astype(float)
    y, x = sample_from(dens, n, rng)
    dmean = rng.uniform(0.6, 1.0) if v != "few_large" else rng.uniform(1.0, 1.4)
    d = np.clip(rng.lognormal(np.log(dmean), 0.3, n), 0.45, 1.6)
    b = rng.lognormal(0, 0.4, n) * (d / 0.8) ** 2
    ring = (d > 0.8) & (rng.random(n) < 0.7)
    shp_ = shp
    out = np.zeros(shp_)
    dy, dx, dw = disc_points(y[~ring], x[~ring], um(c, d[~ring] / 2), b[~ring], rng)
    out += splat(shp, dy, dx, dw)
    if ring.any():
        rr = um(c, d[ring] / 2 * 0.8)
        dy, dx, dw = disc_points(y[ring], x[ring], rr, b[ring] * 0.75, rng, ring=True)
        out += splat(shp, dy, dx, dw)
        dy, dx, dw = disc_points(y[ring], x[ring], rr, b[ring] * 0.25, rng)
        out += splat(shp, dy, dx, dw)
        info["rings"] = int(ring.sum())
    out = blur(out, _psf_sigma(c, 0.25))
    level = max(np.percentile(out[out > 0], 99.5), 1e-9) if (out > 0).any() else 1.0
    out += c.T * c.cell * level * rng.uniform(0.01, 0.1) * np.where(c.nucleus, 0.3, 1.0)
    return out


# --------------------------------------------------------------------------- Mitochondria
def _mitochondria(c, rng, info):
    shp = c.cell.shape
    v = _pick(rng, dict(network=0.4, fragmented=0.2, clump=0.2, parallel=0.1 + 0.2 * (c.line == "spread")))
    if c.state == "mitotic":
        v = "fragmented"
    info["variant"] = v
    mean_len = {"network": rng.uniform(3, 8), "fragmented": rng.uniform(0.5, 1.5),
                "clump": rng.uniform(2, 5), "parallel": rng.uniform(4, 10)}[v]
    cover = rng.uniform(0.5, 1.5)  # um of tubule per um^2 of cytoplasm
    cyto_um = float(c.cyto.sum()) * c.px ** 2
    n = int(np.clip(cyto_um * cover / mean_len, 15, 500))
    dens = {"network": _cyto_density(c, rng.uniform(1.0, 2.0), 1.0), "fragmented": _cyto_density(c, 0.7, 0.5),
            "clump": _crowd_density(c, rng.uniform(1.0, 3.0)), "parallel": _cyto_density(c, 0.7, 1.0)}[v]
    if c.state == "mitotic":
        dens = c.T * c.cyto * (1 - c.chrom)
    compact = c.nucleus.sum() > 0.3 * c.cell.sum()
    over_nuc = rng.random() < (0.7 if compact else 0.25)  # widefield: mitochondria above the nucleus
    if c.state != "mitotic" and over_nuc:
        dens = dens + c.nuc_soft * c.T * rng.uniform(0.1, 0.4) * dens.max()
    sy, sx = sample_from(dens, n, rng)
    th = rng.uniform(0, 2 * np.pi, n)
    drift = None
    if v == "parallel":
        th = c.axis + rng.normal(0, 0.25, n) + np.pi * (rng.random(n) < 0.5)
        drift = th.copy()
    L = np.clip(rng.lognormal(np.log(mean_len), 0.5, n), 0.3, 10)
    steps = np.maximum(1, np.round(L / 0.25)).astype(int)
    curv = {"network": rng.uniform(0.12, 0.25), "fragmented": 0.2, "clump": 0.3, "parallel": 0.05}[v]
    avoid = None if over_nuc else c.nucleus
    ys, xs, alive = walk(sy, sx, th, steps, um(c, 0.25), curv, rng, c.d_edge, c.gy, c.gx,
                         margin=max(um(c, 0.5), 1.5), max_steps=40, drift=drift, avoid=avoid,
                         edge_stop=0.6)
    bright = rng.uniform(0.6, 1.4, n)
    y, x, w = densify(ys, xs, alive, bright)
    if v in ("network", "clump"):
        nb = int(n * rng.uniform(0.3, 0.7))
        pick = rng.integers(0, y.size, nb) if y.size else np.zeros(0, int)
        if pick.size:
            by, bx = y[pick], x[pick]
            bth = rng.uniform(0, 2 * np.pi, nb)
            bl = np.maximum(1, np.round(rng.uniform(1, 4, nb) / 0.25)).astype(int)
            ys2, xs2, al2 = walk(by, bx, bth, bl, um(c, 0.25), curv, rng, c.d_edge, c.gy, c.gx,
                                 margin=max(um(c, 0.5), 1.5), max_steps=16, avoid=avoid, edge_stop=0.6)
            y2, x2, w2 = densify(ys2, xs2, al2, rng.uniform(0.6, 1.2, nb))
            y, x, w = np.concatenate([y, y2]), np.concatenate([x, x2]), np.concatenate([w, w2])
    if over_nuc:
        w = w * np.where(lookup(c.nucleus, y, x), rng.uniform(0.1, 0.35), 1.0)
    width = rng.uniform(0.3, 0.7)
    info["width_um"] = round(float(width), 2)
    out = blur(splat(shp, y, x, w), _psf_sigma(c, width))
    level = max(np.percentile(out[out > 0], 99), 1e-9) if (out > 0).any() else 1.0
    out += c.T * c.cell * level * rng.uniform(0.02, 0.15) * np.where(c.nucleus, 0.3, 1.0)
    return out


# --------------------------------------------------------------------------- Nucleolus / Nucleus
def _nucleolus(c, rng, info):
    shp = c.cell.shape
    if c.state == "mitotic":
        info["variant"] = _pick(rng, dict(coat=0.6, diffuse=0.4))
        out = c.T * c.cell * rng.uniform(0.2, 0.5)
        if info["variant"] == "coat":
            coat = np.clip(blur(c.chrom, max(um(c, 0.4), 0.6)) - 0.4 * c.chrom, 0, None)
            out += coat / max(coat.max(), 1e-9)
        else:
            out += c.chrom * 0.4
        return out
    info["variant"] = _pick(rng, dict(nucleolin=0.5, fibrillarin=0.5))
    fc = np.zeros(shp)
    if c.nol_list and rng.random() < 0.7:
        ny = np.array([t[0] for t in c.nol_list])
        nx = np.array([t[1] for t in c.nol_list])
        nr = np.array([t[2] for t in c.nol_list])
        k = rng.integers(1, 6, ny.size)
        rep = np.repeat(np.arange(ny.size), k)
        a = rng.uniform(0, 2 * np.pi, rep.size)
        rr = nr[rep] * np.sqrt(rng.random(rep.size)) * 0.7
        dy, dx, dw = disc_points(ny[rep] + rr * np.sin(a), nx[rep] + rr * np.cos(a),
                                 um(c, rng.uniform(0.15, 0.35, rep.size)), 1.0, rng)
        fc = blur(splat(shp, dy, dx, dw), _psf_sigma(c, 0.25))
        fc = np.clip(fc / max(fc.max(), 1e-9), 0, 1)
        info["fibrillar_centres"] = int(rep.size)
    body = c.nol * (1 + rng.uniform(0, 0.6) * c.nol_rim) * (1 - rng.uniform(0.3, 0.6) * fc)
    body *= np.clip(1 + rng.uniform(0.05, 0.25) * noise(shp, max(um(c, 0.2), 0.5), rng), 0, None)
    np_level = rng.uniform(0.1, 0.25) if info["variant"] == "nucleolin" else rng.uniform(0.03, 0.12)
    out = body + c.nuc_soft * np_level * (1 - 0.5 * np.clip(c.nol, 0, 1))
    out += c.T * c.cyto * rng.uniform(0.0, 0.04)
    return out


def _nucleus(c, rng, info):
    shp = c.cell.shape
    v = _pick(rng, dict(dna_stain=0.55, nucleoplasmic=0.45))
    info["variant"] = v
    if v == "dna_stain":
        out = c.dna.copy()
        return out + c.T * c.cyto * rng.uniform(0, 0.02) * out.max()
    if c.state == "mitotic":
        out = c.T * c.cell * (1 - 0.6 * c.chrom) * (1 + 0.1 * noise(shp, max(um(c, 0.3), 0.5), rng))
        return np.clip(out, 0, None)
    speck = np.clip(1 + rng.uniform(0.05, 0.35) * noise(shp, max(um(c, rng.uniform(0.15, 0.4)), 0.5), rng), 0, None)
    rim = np.exp(-np.maximum(-c.dnuc, 0) / max(um(c, 0.5), 0.7))
    out = c.nuc_soft * speck * (1 + rng.uniform(-0.3, 0.5) * rim) * (1 - rng.uniform(0.5, 0.95) * np.clip(c.nol, 0, 1))
    out += c.T * c.cyto * rng.uniform(0, 0.06)
    return np.clip(out, 0, None)


_DRAW = {
    "ActinFilaments": _actin,
    "Microtubules": _microtubules,
    "ER": _er,
    "Golgi_gia": lambda c, rng, info: _golgi(c, rng, info, "gia"),
    "Golgi_gpp": lambda c, rng, info: _golgi(c, rng, info, "gpp"),
    "Endosome": _endosome,
    "Lysosome": _lysosome,
    "Mitochondria": _mitochondria,
    "Nucleolus": _nucleolus,
    "Nucleus": _nucleus,
}
_NUCLEAR = ("Nucleolus", "Nucleus")
# compact bright structures "against a dim cytoplasm" (biology.md): less unbound protein around them
_BG_SCALE = {"Golgi_gia": 0.4, "Golgi_gpp": 0.5, "Lysosome": 0.7}
