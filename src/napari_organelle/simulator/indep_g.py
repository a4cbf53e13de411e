"""indep_g: an independently written renderer of simulated fluorescence cells (docs/biology.md).

Cell body (four cell lines, protrusions, fans, straight neighbour edges, filopodia, rounded and
mitotic cells), nucleus, thickness and DNA come from ``_indep_g_cell`` and never depend on the
class; each class then draws its protein from physical sizes converted with the cell's pixel size.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import Voronoi

from ..classes import CLASSES
from . import _indep_g_cell as C
from .base import RenderedCell

NAME = "indep_g"

P_MITOTIC = 0.04
P_ROUNDED = 0.03


def _pick(rng, d):
    k = list(d)
    p = np.array([d[x] for x in k], float)
    return k[rng.choice(len(k), p=p / p.sum())]


def _lines(G, S, ys, xs, w, sigma_px):
    """Draw sampled line points with a blur of sigma_px (0: sub-pixel splat only)."""
    img = np.zeros(S)
    C.splat(img, ys, xs, w)
    return C.blur(img, sigma_px, G.bb)


def _dots(rng, G, ys, xs, amp, diam_um, nbins=3):
    """Gaussian dots of physical diameter diam_um (FWHM) with peak ~ amp."""
    S = G.cell.shape
    out = np.zeros(S)
    sig = np.maximum(diam_um * G.um / 2.355, 0.35)
    if len(ys) == 0:
        return out
    edges = np.quantile(sig, np.linspace(0, 1, nbins + 1))
    b = np.clip(np.searchsorted(edges, sig, side="right") - 1, 0, nbins - 1)
    for i in range(nbins):
        m = b == i
        if not m.any():
            continue
        s = float(np.median(sig[m]))
        layer = np.zeros(S)
        C.splat(layer, ys[m], xs[m], amp[m] * 2 * np.pi * max(s, 0.6) ** 2)
        out += C.blur(layer, s, G.bb)
    return out


def _haze(G, level, nuc_factor):
    return level * G.T * (G.cyto + nuc_factor * G.nucsoft)


# ----------------------------------------------------------------------------- classes

def actin(rng, G):
    S, um = G.cell.shape, G.um
    info = {}
    if G.state != "interphase":
        ring = np.exp(-G.de / rng.uniform(0.4, 1.0) / um)
        tex = 1 + 0.3 * C.smooth_noise(rng, S, 0.3 * um)
        return ring * tex.clip(0.3) + _haze(G, rng.uniform(0.05, 0.25), 0.5), {"variant": "cortex ring"}
    v = _pick(rng, {"fibres": 3 if G.line == "spread" else 1.2, "cortex": 2.5 if G.line in ("epithelial", "stem") else 1.0,
                    "mixed": 1.5, "podosome": 0.3, "ruffle": 0.6})
    info["variant"] = v
    img = np.zeros(S)
    nf = {"fibres": rng.integers(25, 80), "cortex": rng.integers(0, 6), "mixed": rng.integers(5, 30),
          "podosome": rng.integers(0, 10), "ruffle": rng.integers(0, 15)}[v]
    info["fibres"] = int(nf)
    if nf:
        ys, xs = C.sample_points(rng, G.cell.astype(float), nf)
        spread = rng.choice([0.12, 0.3, 0.6])
        ang = G.axis + rng.normal(0, spread, nf)
        cross = rng.random(nf) < rng.uniform(0, 0.3)
        ang[cross] += rng.uniform(0.5, 1.3) * rng.choice([-1, 1], cross.sum())
        Lmax = int(1.2 * G.size)
        t = np.arange(-Lmax, Lmax, 0.7)
        py = ys[:, None] + t[None] * np.sin(ang)[:, None]
        px = xs[:, None] + t[None] * np.cos(ang)[:, None]
        inside = C.lookup(G.cell, py, px) & (C.lookup(G.de, py, px) > rng.uniform(0.5, 2) * um)
        mid = len(t) // 2
        fwd = np.cumprod(inside[:, mid:], 1).astype(bool)
        bwd = np.cumprod(inside[:, :mid][:, ::-1], 1)[:, ::-1].astype(bool)
        keep = np.concatenate([bwd, fwd], 1)
        # trim to 5-40 um
        lens = keep.sum(1) * 0.7
        want = rng.uniform(5, 40, nf) * um
        first = np.argmax(keep, 1)
        shift = (rng.random(nf) * np.maximum(lens - want, 0) / 0.7).astype(int)
        idx = np.arange(len(t))[None]
        keep &= (idx >= (first + shift)[:, None]) & (idx < (first + shift + want / 0.7)[:, None])
        width = 0.2 + 0.8 * rng.beta(1.5, 4, nf)  # mostly thin bundles, a few thick ones
        bright = C.loguni(rng, 0.3, 1.2, nf) * width / 0.5
        bow = rng.normal(0, 0.02, nf)[:, None] * (t[None] ** 2) / max(Lmax, 1)
        py = py + bow * np.cos(ang)[:, None]
        px = px - bow * np.sin(ang)[:, None]
        cap = rng.uniform(0.3, 1.0)
        over = np.where(C.lookup(G.nuc, py, px), cap, 1.0)
        # per-length weight b * width * (px per um): the peak ~ b at any pixel size
        w = keep * over * bright[:, None] * 0.7 * (0.5 * um)
        for lo, hi in ((0, 0.45), (0.45, 1.01)):
            m = (width >= lo) & (width < hi)
            if m.any():
                img += _lines(G, S, py[m], px[m], w[m], np.median(width[m]) * um / 2.355)
        # focal adhesions at the ends: 1-5 um bright dashes
        ends = []
        for i in np.nonzero(keep.any(1))[0]:
            k = np.nonzero(keep[i])[0]
            for e, sgn in ((k[0], 1), (k[-1], -1)):
                if rng.random() < 0.7:
                    ends.append((py[i, e], px[i, e], ang[i], sgn))
        if ends:
            e = np.array(ends)
            L = rng.uniform(1, 5, len(e)) * um
            ys0, xs0 = e[:, 0], e[:, 1]
            ys1 = ys0 + e[:, 3] * L * np.sin(e[:, 2])
            xs1 = xs0 + e[:, 3] * L * np.cos(e[:, 2])
            sy, sx, ds, seg = C.segments(ys0, xs0, ys1, xs1)
            img += _lines(G, S, sy, sx, ds * C.loguni(rng, 0.6, 1.6, len(e))[seg] * 0.9 * um, 0.35 * um)
    # cortex
    cw = rng.uniform(0.5, 2.0) * um / 2
    camp = {"cortex": rng.uniform(1.0, 2.0), "fibres": rng.uniform(0.15, 0.5)}.get(v, rng.uniform(0.4, 1.2))
    img += camp * np.exp(-G.de / cw) * G.cellsoft
    for a, cut in G.cuts:  # a sharp bright line where the cell meets a neighbour
        dl = np.abs(cut - ((G.yy - G.oy) * np.sin(a) + (G.xx - G.ox) * np.cos(a)))
        img += max(camp, 0.4) * rng.uniform(0.6, 1.5) * np.exp(-0.5 * (dl / max(0.25 * um, 0.6)) ** 2) * G.cellsoft
    fine = C.smooth_noise(rng, S, 0.15 * um)
    if v == "ruffle" or rng.random() < 0.3:  # lamellipodium with mesh texture
        c = rng.uniform(-np.pi, np.pi)
        win = np.exp(-0.5 * (C.angdiff(G.ang, c) / rng.uniform(0.3, 1.0)) ** 2)
        band = (G.de < rng.uniform(2, 5) * um) * win
        img += rng.uniform(0.4, 1.0) * C.blur(band.astype(float), 0.5 * um) * (1 + 0.5 * fine).clip(0)
        info["lamellipodium"] = True
    if rng.random() < 0.25:  # transverse arcs parallel to the edge
        c = rng.uniform(-np.pi, np.pi)
        for _ in range(rng.integers(2, 6)):
            psi = c + np.linspace(-1, 1, 200) * rng.uniform(0.3, 0.8)
            r = G.Rf(psi) - rng.uniform(3, 9) * um
            pts = np.stack([G.oy + r * np.sin(psi), G.ox + r * np.cos(psi)], 1)
            pts, ds = C.resample_polyline(pts)
            img += _lines(G, S, pts[:, 0], pts[:, 1], ds * rng.uniform(0.5, 1.2) * 0.75 * um
                          * C.lookup(G.cell, pts[:, 0], pts[:, 1]), 0.3 * um)
    if v == "podosome" or rng.random() < 0.1:
        n = rng.integers(20, 150)
        cy, cx = C.sample_points(rng, G.cyto, 3)
        k = rng.integers(0, 3, n)
        ys, xs = cy[k] + rng.normal(0, 4 * um, n), cx[k] + rng.normal(0, 4 * um, n)
        ok = C.lookup(G.cell, ys, xs)
        img += _dots(rng, G, ys[ok], xs[ok], C.loguni(rng, 0.6, 1.5, ok.sum()), rng.uniform(0.5, 1.0, ok.sum()))
    for base, tip in G.filopodia:
        sy, sx, ds, _ = C.segments(np.array([base[0]]), np.array([base[1]]), np.array([tip[0]]), np.array([tip[1]]))
        img += _lines(G, S, sy, sx, ds * rng.uniform(0.5, 1.0) * 0.25 * um, 0)
    img += rng.uniform(0.05, 0.3) * G.T * (1 + rng.uniform(0.1, 0.3) * fine).clip(0) * (G.cyto + rng.uniform(0.3, 0.7) * G.nucsoft)
    return img, info


def microtubules(rng, G):
    S, um = G.cell.shape, G.um
    info = {}
    img = np.zeros(S)
    ds = 0.7
    area_um2 = G.cell.sum() / um ** 2
    if G.state == "mitotic":
        # spindle: two poles, fibres to the chromosomes, astral rays
        a = G.plate_angle
        half = G.spindle_len * rng.uniform(0.55, 0.8)
        # the plate runs along (cos a, -sin a) (see chromosomes); the poles sit on its normal (sin a, cos a)
        dy_, dx_ = np.cos(a), -np.sin(a)
        ny_, nx_ = np.sin(a), np.cos(a)
        poles = [(G.oy + s * half * ny_, G.ox + s * half * nx_) for s in (1, -1)]
        for sgn, (py, pxx) in zip((1, -1), poles):
            n = 140
            tt = rng.uniform(-0.55, 0.55, n) * G.spindle_len
            tt[: n // 4] = rng.uniform(-0.15, 0.15, n // 4) * G.spindle_len  # kinetochore bundles, central
            past = -sgn * rng.uniform(0, 0.6, n) * half * (rng.random(n) < 0.3)  # interpolar fibres cross the plate
            ty = G.oy + tt * dy_ + past * ny_
            tx = G.ox + tt * dx_ + past * nx_
            # barrel: quadratic curve bulging away from the spindle axis
            my = (py + ty) / 2 + 0.25 * (ty - G.oy)
            mx = (pxx + tx) / 2 + 0.25 * (tx - G.ox)
            q = np.linspace(0, 1, max(40, int(2 * half)))[None]
            cy_ = (1 - q) ** 2 * py + 2 * (1 - q) * q * my[:, None] + q ** 2 * ty[:, None]
            cx_ = (1 - q) ** 2 * pxx + 2 * (1 - q) * q * mx[:, None] + q ** 2 * tx[:, None]
            seg = np.hypot(np.diff(cy_, axis=1), np.diff(cx_, axis=1))
            img += _lines(G, S, cy_[:, 1:], cx_[:, 1:], seg * C.lookup(G.cell, cy_[:, 1:], cx_[:, 1:]), 0)
            m = 60
            ang = rng.uniform(0, C.TAU, m)
            L = rng.uniform(1, 6, m) * um
            sy, sx, dd, _ = C.segments(np.full(m, py), np.full(m, pxx), py + L * np.sin(ang), pxx + L * np.cos(ang))
            img += 0.5 * _lines(G, S, sy, sx, dd * C.lookup(G.cell, sy, sx), 0)
            img += _dots(rng, G, np.array([py]), np.array([pxx]), np.array([3.0]), np.array([1.0]), 1)
        img = C.blur(img, 0.5, G.bb)
        img += _haze(G, rng.uniform(0.03, 0.15), 1.0) * img.max()
        return img, {"variant": "spindle"}
    v = _pick(rng, {"radial": 3, "mesh": 2, "parallel": 2.5 if G.line == "spread" else 0.7, "wavy": 1})
    info["variant"] = v
    n = int(np.clip(area_um2 * rng.uniform(0.15, 0.5), 80, 600))
    if G.state == "rounded":
        n = int(n * 0.6)
    Lum = rng.uniform(10, 40, n)
    nstep = int(40 * um / ds)
    if v == "radial":
        ys = G.my + rng.normal(0, 0.6 * um, n)
        xs = G.mx + rng.normal(0, 0.6 * um, n)
        ang = rng.uniform(0, C.TAU, n)
        free = rng.random(n) < rng.uniform(0.1, 0.4)
    else:
        ys, xs = C.sample_points(rng, G.cell * (0.3 + G.T), n)
        ang = rng.uniform(0, C.TAU, n) if v in ("mesh", "wavy") else G.axis + rng.normal(0, 0.15, n) + np.pi * (rng.random(n) < 0.5)
        free = np.ones(n, bool)
    if v == "radial" and free.any():
        ys[free], xs[free] = C.sample_points(rng, G.cyto * G.T, int(free.sum()))
    turn = {"radial": 0.08, "mesh": 0.15, "parallel": 0.05, "wavy": 0.3}[v] * rng.uniform(0.6, 1.4) * np.sqrt(ds / um)
    py, px = C.walks(rng, ys, xs, ang, nstep, ds, turn)
    alive = C.until_exit(C.lookup(G.cell, py, px) & (C.lookup(G.de, py, px) > 0.3 * um))
    alive &= (np.arange(nstep)[None] * ds) < (Lum * um)[:, None]
    over = rng.uniform(0.15, 0.5)
    w = alive * np.where(C.lookup(G.nuc, py, px), over, 1.0) * ds
    bright = C.loguni(rng, 0.6, 1.6, n)
    if v == "wavy":
        bright *= rng.choice([1, 1, 2, 3], n)  # bundles
    img += _lines(G, S, py, px, w * bright[:, None], 0)
    # bend at the edge and run along it
    reached = alive[:, -1] == 0
    last = np.maximum(alive.sum(1) - 1, 0)
    k = np.nonzero(reached & (alive.sum(1) > 5) & (rng.random(n) < rng.uniform(0.05, 0.3)))[0]
    if len(k):
        ey, ex = py[k, last[k]], px[k, last[k]]
        psi0 = np.arctan2(ey - G.oy, ex - G.ox)
        dy, dx = np.sin(ang[k]), np.cos(ang[k])
        sgn = np.sign((ey - G.oy) * dx * -1 + (ex - G.ox) * dy + 1e-9)
        Lrun = rng.uniform(2, 10, len(k)) * um
        m = int(Lrun.max() / 0.6) + 2
        s = np.linspace(0, 1, m)[None] * Lrun[:, None]
        R0 = G.Rf(psi0)
        psi = psi0[:, None] + sgn[:, None] * s / np.maximum(R0[:, None], 1)
        r = G.Rf(psi) - rng.uniform(0.4, 1.2) * um
        ay, ax = G.oy + r * np.sin(psi), G.ox + r * np.cos(psi)
        img += _lines(G, S, ay, ax, 0.6 * (Lrun / m)[:, None] * bright[k, None] * C.lookup(G.cell, ay, ax), 0)
    img = C.blur(img, 0.4, G.bb)  # keep lines PSF-thin but continuous
    img *= 0.6 + 0.4 * G.T / max(G.T.max(), 1e-6)
    # one microtubule's peak once blurred to the resolution limit (~0.1 um sd): sets the haze level
    ref = float(np.median(bright)) / (np.sqrt(2 * np.pi) * np.hypot(0.4, 0.1 * um))
    dm = np.hypot(G.yy - G.my, G.xx - G.mx)
    img += ref * rng.uniform(0.0, 0.4) * np.exp(-dm / (rng.uniform(3, 8) * um)) * G.cyto
    if rng.random() < 0.5:
        img += _dots(rng, G, np.array([G.my]), np.array([G.mx]), np.array([ref * rng.uniform(1, 2.5)]),
                     np.array([rng.uniform(0.5, 1.2)]), 1)
        info["centrosome"] = True
    if G.state == "interphase" and rng.random() < 0.04:
        # late division: a bright midbody bridge reaching the edge (toward the sister cell)
        psi = rng.uniform(-np.pi, np.pi)
        R = float(G.Rf(np.array([psi]))[0])
        L = min(rng.uniform(2, 6) * um, 0.3 * R)
        r0 = R - L - 0.3 * um
        sy, sx, dd, _ = C.segments(np.array([G.oy + r0 * np.sin(psi)]), np.array([G.ox + r0 * np.cos(psi)]),
                                   np.array([G.oy + (R - 0.3 * um) * np.sin(psi)]),
                                   np.array([G.ox + (R - 0.3 * um) * np.cos(psi)]))
        gapc = np.abs(np.linspace(-1, 1, len(sy))) > 0.15  # the dark midbody centre
        mb = _lines(G, S, sy, sx, dd * gapc * C.lookup(G.cell, sy, sx), rng.uniform(0.4, 0.8) * um / 2.355)
        img += mb / max(mb.max(), 1e-9) * ref * rng.uniform(2, 4)
        info["midbody"] = True
    img += ref * _haze(G, rng.uniform(0.05, 0.4), 0.5)
    return img, info


def er(rng, G):
    S, um = G.cell.shape, G.um
    info = {}
    mitotic = G.state == "mitotic"
    v = "spread" if mitotic else _pick(rng, {"lacy": 2.5 if G.line == "spread" else 1.2, "cloud": 2.0 if G.line != "spread" else 0.8,
                                                "sheet": 1.0, "mixed": 1.5, "grainy": 1.2})
    info["variant"] = v
    mesh = (rng.uniform(0.4, 0.8) if v == "grainy" else rng.uniform(0.5, 2.0)) * um
    lam = {"grainy": rng.uniform(4, 12), "lacy": rng.uniform(8, 20), "cloud": rng.uniform(2, 6), "sheet": rng.uniform(4, 10),
           "mixed": rng.uniform(4, 12), "spread": 30}[v] * um
    reach = 0.0 if v == "lacy" else rng.uniform(0, 3) * um
    dens = G.cyto * (np.exp(-G.dn / lam) + 0.05) * (G.de > reach)
    if mitotic:
        dens = G.cellsoft * (1 - G.nucsoft)
    area_px = float(dens.sum())
    nseed = int(np.clip(area_px / mesh ** 2 * 1.2, 50, 3500))
    ys, xs = C.sample_points(rng, dens, nseed)
    img = np.zeros(S)
    if len(ys) > 10:
        vor = Voronoi(np.stack([ys, xs], 1))
        rv = np.array(vor.ridge_vertices)
        rv = rv[(rv >= 0).all(1)]
        P = vor.vertices
        a, b = P[rv[:, 0]], P[rv[:, 1]]
        L = np.hypot(*(a - b).T)
        keep = (L < 3 * mesh) & (rng.random(len(L)) > rng.uniform(0.05, 0.3))
        inb = (a[:, 0] > 0) & (a[:, 0] < S[0] - 1) & (a[:, 1] > 0) & (a[:, 1] < S[1] - 1) & \
              (b[:, 0] > 0) & (b[:, 0] < S[0] - 1) & (b[:, 1] > 0) & (b[:, 1] < S[1] - 1)
        keep &= inb
        a, b = a[keep], b[keep]
        # tubules are gently curved: a displaced midpoint per ridge
        nrm = (b - a)[:, ::-1] * np.array([1, -1])
        mid = (a + b) / 2 + nrm * rng.normal(0, 0.12, (len(a), 1))
        a, b = np.concatenate([a, mid]), np.concatenate([mid, b])
        sy, sx, ds, seg = C.segments(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
        okp = C.lookup(G.cell, sy, sx) & ~C.lookup(G.nuc, sy, sx)
        rb = np.tile(rng.lognormal(0, rng.uniform(0.2, 0.6), len(a) // 2), 2)
        img += _lines(G, S, sy, sx, ds * okp * rb[seg], 0)
    img = C.blur(img, 0.45, G.bb)
    # one tubule's peak at the resolution limit (~0.1 um sd): sheets and haze are set against it
    ref = 1.0 / (np.sqrt(2 * np.pi) * np.hypot(0.45, 0.1 * um))
    grain = (1 + rng.uniform(0.2, 0.5) * C.smooth_noise(rng, S, rng.uniform(0.2, 0.5) * um)).clip(0.2)
    sheet_amp = {"grainy": rng.uniform(0.2, 0.6), "lacy": rng.uniform(0.1, 0.4), "cloud": rng.uniform(0.6, 1.2), "sheet": rng.uniform(0.8, 1.5),
                 "mixed": rng.uniform(0.3, 0.8), "spread": rng.uniform(0.2, 0.5)}[v]
    zone = rng.uniform(2, 8) * um
    sheets = np.exp(-G.dn / zone) * G.cyto if not mitotic else G.T * G.cellsoft * (1 - G.nucsoft)
    img = img + ref * sheet_amp * sheets * grain
    img *= (0.35 + 0.65 * G.T / max(G.T.max(), 1e-6))
    if not mitotic:
        ne = np.exp(-0.5 * ((G.dn - G.di) / max(0.25 * um, 0.7)) ** 2)
        img += ref * rng.uniform(0.2, 1.3) * ne * G.cellsoft
        img += ref * rng.uniform(0.03, 0.3) * G.nucsoft * grain  # ER above/below the nucleus
    img += ref * rng.uniform(0.0, 0.25) * G.T * G.cyto
    return img, info


def golgi(rng, G, kind):
    S, um = G.cell.shape, G.um
    info = {}
    if G.state == "mitotic":
        n = rng.integers(150, 500)
        ys, xs = C.sample_points(rng, G.cellsoft * (1 - G.nucsoft), n)
        img = _dots(rng, G, ys, xs, C.loguni(rng, 0.3, 1, n), rng.uniform(0.3, 0.6, n))
        return img + 0.3 * _haze(G, 1, 0.3) * img.max(), {"variant": "dispersed haze"}
    frag = rng.beta(2, 5) if kind == "gia" else rng.beta(3.5, 3)
    v = _pick(rng, {"knot": 1.5, "arc": 2.0, "cap": 1.5, "two": 0.3, "dispersed": 0.25 + 0.3 * frag})
    info["variant"], info["fragmentation"] = v, round(float(frag), 2)
    cy, cx, f, sc = G.nuclei[0]
    span = {"knot": rng.uniform(0.3, 0.8), "cap": rng.uniform(0.8, 1.6), "arc": rng.uniform(1.5, 3.1),
            "two": rng.uniform(0.4, 1.0), "dispersed": rng.uniform(2, 4)}[v]
    centres = [G.mtoc_dir] if v != "two" else [G.mtoc_dir - rng.uniform(0.6, 1.2), G.mtoc_dir + rng.uniform(0.6, 1.2)]
    stack_len = rng.uniform(0.5, 1.5) * um
    gap = (0.05 + 0.8 * frag) * um
    off0 = rng.uniform(0.2, 1.5) * um + frag * rng.uniform(0, 2) * um
    depth = rng.uniform(1, 3) * um * (1.5 if v in ("knot", "two") else 1.0)
    ys_all, xs_all, w_all = [], [], []
    for c in centres:
        rad = f(np.array([c]))[0] * sc
        arclen = span * (rad + off0)
        nst = max(int(arclen / (stack_len + gap)), 2)
        rows = max(1, int(depth / (0.6 * um)))
        for row in range(rows):
            phi = c + np.linspace(-span / 2, span / 2, nst) + rng.normal(0, gap / (rad + off0) * 0.5, nst)
            if v == "knot":
                phi = c + rng.normal(0, span / 3, nst)
            r = f(phi) * sc + off0 + row * 0.6 * um + rng.normal(0, (0.15 + frag) * 0.6 * um, nst)
            if v == "dispersed":
                r += rng.exponential(2.5 * um, nst)
            for p, rr in zip(phi, r):
                dl = stack_len * rng.uniform(0.6, 1.3) / max(rr, 1)
                q = np.linspace(p - dl / 2, p + dl / 2, 8)
                bend = rng.normal(0, 0.15 * um)
                ry = cy + (rr + bend * np.sin(np.linspace(0, np.pi, 8))) * np.sin(q)
                rx = cx + (rr + bend * np.sin(np.linspace(0, np.pi, 8))) * np.cos(q)
                ys_all.append(ry), xs_all.append(rx)
                w_all.append(np.full(8, C.loguni(rng, 0.5, 2.0) * stack_len / 8))
        if v in ("arc", "cap", "two") and rng.random() < 1 - frag:
            # connected ribbon: a continuous, wavy backbone joining the stacks
            phi = c + np.linspace(-span / 2, span / 2, 120)
            wob = np.cumsum(rng.normal(0, 0.08 * um, 120))
            r = f(phi) * sc + off0 + depth / 2 + wob - wob.mean()
            ry, rx = cy + r * np.sin(phi), cx + r * np.cos(phi)
            seg = np.hypot(np.diff(ry), np.diff(rx))
            ys_all.append(ry[1:]), xs_all.append(rx[1:])
            w_all.append(seg * (1 - frag) * rng.uniform(0.4, 1.0) * rows)
    ys, xs, w = np.concatenate(ys_all), np.concatenate(xs_all), np.concatenate(w_all)
    ok = C.lookup(G.cell, ys, xs) & ~C.lookup(G.nuc, ys, xs)
    img = _lines(G, S, ys, xs, w * ok, rng.uniform(0.3, 0.6) * um / 2.355 * 1.5)
    ref = img.max()
    # vesicles near the Golgi, and (more for gpp130) scattered puncta
    nv = int(rng.integers(3, 20) + frag * rng.integers(5, 50))
    near = np.exp(-np.hypot(G.yy - G.my, G.xx - G.mx) / (rng.uniform(2, 5) * um)) * G.cyto
    vy, vx = C.sample_points(rng, near, nv)
    img += _dots(rng, G, vy, vx, ref * C.loguni(rng, 0.15, 0.5, nv), rng.uniform(0.3, 0.5, nv), 1)
    npp = int(frag * rng.integers(0, 60))
    if npp:
        vy, vx = C.sample_points(rng, G.cyto * G.T, npp)
        img += _dots(rng, G, vy, vx, ref * C.loguni(rng, 0.08, 0.3, npp), rng.uniform(0.3, 0.5, npp), 1)
    img += ref * _haze(G, rng.uniform(0.01, 0.1), 0.4)
    return img, info


def _puncta(rng, G, n, diam, amp, perifrac, peri_scale, ring_p=0.0, cluster=False):
    um = G.um
    npn = int(n * perifrac)
    d_mtoc = np.hypot(G.yy - G.my, G.xx - G.mx)
    wper = G.cyto * np.exp(-G.dn / peri_scale) * (0.4 + np.exp(-d_mtoc / (peri_scale * 2)))
    y1, x1 = C.sample_points(rng, wper, npn)
    y2, x2 = C.sample_points(rng, G.cyto * (0.2 + G.T), n - npn)
    ys, xs = np.concatenate([y1, y2]), np.concatenate([x1, x2])
    if cluster:
        k = rng.integers(0, max(len(ys) // 5, 1), len(ys))
        ys = ys[k] + rng.normal(0, 0.8 * um, len(ys))
        xs = xs[k] + rng.normal(0, 0.8 * um, len(xs))
    ok = C.lookup(G.cell, ys, xs)
    ys, xs, diam, amp = ys[ok], xs[ok], diam[ok], amp[ok]
    ring = (diam > 0.8) & (rng.random(len(diam)) < ring_p) & (diam * um > 4)
    img = _dots(rng, G, ys[~ring], xs[~ring], amp[~ring], diam[~ring])
    if ring.any():
        rr = diam[ring] / 2 * um * 0.75
        m = 16
        t = np.linspace(0, C.TAU, m, endpoint=False)
        ry = (ys[ring][:, None] + rr[:, None] * np.sin(t)).ravel()
        rx = (xs[ring][:, None] + rr[:, None] * np.cos(t)).ravel()
        wr = np.repeat(amp[ring] * C.TAU * rr / m * 1.2, m)
        layer = np.zeros(G.cell.shape)
        C.splat(layer, ry, rx, wr)
        img += C.blur(layer, max(0.12 * um, 0.5), G.bb)
        img += _dots(rng, G, ys[ring], xs[ring], amp[ring] * 0.25, diam[ring] * 0.6)
    return img, int(len(ys))


def endosome(rng, G):
    um = G.um
    v = _pick(rng, {"sparse bright": 1, "dense fine": 1.5, "perinuclear": 1, "clustered": 0.6})
    n = int({"sparse bright": rng.uniform(50, 150), "dense fine": rng.uniform(200, 500),
             "perinuclear": rng.uniform(100, 350), "clustered": rng.uniform(100, 400)}[v])
    if G.state == "mitotic":
        n = int(n * 0.7)
    diam = rng.uniform(0.2, 0.6, n) * (1.2 if v == "sparse bright" else 1.0)
    amp = C.loguni(rng, 0.25, 1.0, n) * rng.lognormal(0, 0.3, n)
    perifrac = {"perinuclear": rng.uniform(0.4, 0.7)}.get(v, rng.uniform(0.05, 0.35))
    img, cnt = _puncta(rng, G, n, diam, amp, perifrac, rng.uniform(2, 5) * um, 0.0, v == "clustered")
    ref = np.percentile(img[img > 0], 99.5) if (img > 0).any() else 1.0
    if rng.random() < 0.5:  # transferrin receptor at the plasma membrane
        img += ref * rng.uniform(0.05, 0.2) * np.exp(-G.de / (0.4 * um)) * G.cellsoft
    img += ref * _haze(G, rng.uniform(0.02, 0.2), 0.2)
    return img, {"variant": v, "n": cnt}


def lysosome(rng, G):
    um = G.um
    v = _pick(rng, {"perinuclear mass": 2, "few large": 1, "many small": 1.2, "dispersed": 1, "peripheral": 0.4})
    n = int({"perinuclear mass": rng.uniform(80, 300), "few large": rng.uniform(30, 80), "many small": rng.uniform(150, 300),
             "dispersed": rng.uniform(60, 250), "peripheral": rng.uniform(50, 150)}[v])
    mu = {"few large": 1.1, "many small": 0.6}.get(v, 0.8)
    diam = np.clip(rng.lognormal(np.log(mu), 0.3, n), 0.5, 1.5)
    amp = C.loguni(rng, 0.5, 1.5, n) * (diam / 0.8) ** 0.5
    perifrac = {"perinuclear mass": rng.uniform(0.65, 0.95), "dispersed": rng.uniform(0.1, 0.35),
                "peripheral": 0.0}.get(v, rng.uniform(0.35, 0.7))
    img, cnt = _puncta(rng, G, n, diam, amp, perifrac, rng.uniform(1, 4) * um, rng.uniform(0.3, 0.9))
    if v == "peripheral":
        n2 = int(n * 0.6)
        ys, xs = C.sample_points(rng, G.cyto * np.exp(-G.de / (4 * um)), n2)
        d2 = np.clip(rng.lognormal(np.log(0.8), 0.3, n2), 0.5, 1.5)
        img += _dots(rng, G, ys, xs, C.loguni(rng, 0.5, 1.5, n2), d2)
    ref = np.percentile(img[img > 0], 99.5) if (img > 0).any() else 1.0
    img += ref * _haze(G, rng.uniform(0.01, 0.12), 0.2)
    return img, {"variant": v, "n": cnt}


def mitochondria(rng, G):
    S, um = G.cell.shape, G.um
    mitotic = G.state == "mitotic"
    v = "fragmented" if mitotic or (G.state == "rounded" and rng.random() < 0.6) else _pick(
        rng, {"network": 2.5 if G.line == "spread" else 1.2, "fragmented": 1, "clump": 1.5 if G.line != "spread" else 0.5,
              "parallel": 1.5 if G.line == "spread" else 0.3, "mixed": 1.5})
    lam = {"clump": rng.uniform(1.5, 4), "network": rng.uniform(5, 15), "parallel": rng.uniform(6, 15)}.get(v, rng.uniform(3, 10)) * um
    dens = G.cyto * (np.exp(-G.dn / lam) + 0.03)
    if mitotic:
        dens = G.cellsoft * (1 - G.nucsoft) * np.exp(-G.dn / (3 * um))
    area_um2 = G.cyto.sum() / um ** 2
    total_len = area_um2 * rng.uniform(0.3, 0.9) * (1.4 if v == "clump" else 1.0)
    fragf = {"fragmented": rng.uniform(0.6, 1.0), "network": rng.uniform(0.0, 0.15), "mixed": rng.uniform(0.2, 0.5)}.get(
        v, rng.uniform(0.05, 0.3))
    meanL = {"network": rng.uniform(3, 7), "parallel": rng.uniform(4, 8)}.get(v, rng.uniform(1.5, 4))
    ntub = int(np.clip(total_len * (1 - fragf) / meanL, 0, 900))
    nfrag = int(np.clip(total_len * fragf / 0.8, 0, 1200))
    width = rng.uniform(0.3, 0.7)
    img = np.zeros(S)
    ds = 0.7
    over = rng.uniform(0.0, 0.35)
    if ntub:
        ys, xs = C.sample_points(rng, dens, ntub)
        if v == "parallel":
            ang = G.axis + rng.normal(0, 0.2, ntub)
        else:
            ang = rng.uniform(0, C.TAU, ntub)
        L = np.clip(rng.lognormal(np.log(meanL), 0.5, ntub), 1, 10) * um
        nb = rng.random(ntub) < (0.5 if v == "network" else 0.15)  # branches from points on the parent
        nstep = int(10 * um / ds) + 1
        turn = rng.uniform(0.25, 0.6) * np.sqrt(ds / um)
        py, px = C.walks(rng, ys, xs, ang, nstep, ds, turn)
        alive = (np.arange(nstep)[None] * ds < L[:, None])
        bi = np.nonzero(nb)[0]
        if len(bi):
            at = (rng.random(len(bi)) * np.minimum(L[bi] / ds, nstep - 1)).astype(int)
            by, bx = py[bi, at], px[bi, at]
            ba = ang[bi] + rng.choice([-1, 1], len(bi)) * rng.uniform(0.6, 1.6, len(bi))
            bL = np.clip(rng.lognormal(np.log(meanL * 0.6), 0.5, len(bi)), 1, 8) * um
            qy, qx = C.walks(rng, by, bx, ba, nstep, ds, turn)
            py, px = np.concatenate([py, qy]), np.concatenate([px, qx])
            alive = np.concatenate([alive, np.arange(nstep)[None] * ds < bL[:, None]])
        alive &= C.until_exit(C.lookup(G.cell, py, px) & (C.lookup(G.de, py, px) > 0.3 * um))
        onn = C.lookup(G.nuc, py, px)
        w = alive * np.where(onn, over, 1.0) * ds * C.loguni(rng, 0.6, 1.4, len(py))[:, None]
        img += _lines(G, S, py, px, w, width * um / 2.355)
    if nfrag:
        ys, xs = C.sample_points(rng, dens, nfrag)
        rod = rng.random(nfrag) < 0.5
        L = np.where(rod, rng.uniform(0.5, 1.5, nfrag), 0.05) * um
        a = rng.uniform(0, C.TAU, nfrag)
        sy, sx, dd, seg = C.segments(ys - L / 2 * np.sin(a), xs - L / 2 * np.cos(a), ys + L / 2 * np.sin(a), xs + L / 2 * np.cos(a))
        wgt = dd * np.where(rod[seg], 1.0, rng.uniform(0.6, 1.0) * um / max(dd.mean(), 1e-3) * 0.6)
        img += _lines(G, S, sy, sx, wgt * np.where(C.lookup(G.nuc, sy, sx), over, 1.0), max(width, 0.45) * um / 2.355)
    img = C.blur(img, 0.4, G.bb)
    ref = max(np.percentile(img[G.cell], 99.5), 1e-6)
    img *= 0.5 + 0.5 * G.T / max(G.T.max(), 1e-6)
    img += ref * _haze(G, rng.uniform(0.02, 0.2), 0.3)
    return img, {"variant": v, "tubules": ntub, "fragments": nfrag, "width_um": round(width, 2)}


def nucleolus(rng, G):
    S, um = G.cell.shape, G.um
    if G.state == "mitotic":
        if rng.random() < 0.6:
            return G.chrom * rng.uniform(0.5, 1) + _haze(G, rng.uniform(0.1, 0.4), 1), {"variant": "chromosome coat"}
        return _haze(G, 1, 1) + 0.1 * G.chrom, {"variant": "diffuse"}
    body = C.blur(G.nucleoli, 0.2 * um)
    rim = rng.uniform(0.0, 0.5)
    inner = C.blur(G.nucleoli, 0.6 * um)
    img = body * (1 + rim * np.clip(body - inner, 0, None) * 3)
    tex = (1 + 0.2 * C.smooth_noise(rng, S, 0.25 * um)).clip(0.3)
    img *= tex
    nfc = int(rng.integers(0, 8) * len(G.nucleolus_list))
    if nfc:
        ys, xs = C.sample_points(rng, (G.nucleoli > 0.8).astype(float), nfc)
        img -= _dots(rng, G, ys, xs, rng.uniform(0.2, 0.5, nfc), rng.uniform(0.3, 0.7, nfc), 1) * (G.nucleoli > 0.3)
    img = img.clip(0)
    v = _pick(rng, {"nucleolin": 1, "fibrillarin": 1})
    plasm = rng.uniform(0.1, 0.25) if v == "nucleolin" else rng.uniform(0.04, 0.12)
    img += plasm * G.nucsoft * (1 + 0.2 * C.smooth_noise(rng, S, 0.5 * um)).clip(0.2)
    img += rng.uniform(0.0, 0.05) * G.T * G.cyto
    return img, {"variant": v, "n": len(G.nucleolus_list)}


def nucleus(rng, G, dna_img):
    S, um = G.cell.shape, G.um
    if rng.random() < 0.55:
        return dna_img * (1 + 0.05 * C.smooth_noise(rng, S, 0.4 * um)).clip(0.5), {"variant": "DNA stain"}
    if G.state == "mitotic":
        img = _haze(G, 1, 1) * (1 - 0.6 * G.nucsoft)
        return img, {"variant": "nucleoplasmic, mitotic"}
    fine = rng.random() < 0.5
    tex = 1 + (rng.uniform(0.15, 0.4) if fine else rng.uniform(0.03, 0.12)) * C.smooth_noise(rng, S, 0.2 * um)
    img = G.nucsoft * tex.clip(0.2) * (1 + rng.uniform(0.1, 0.2) * C.smooth_noise(rng, S, 3 * um))
    img *= 1 + rng.uniform(-0.2, 0.4) * np.exp(-G.di / (0.5 * um))
    img *= 1 - rng.uniform(0.3, 0.95) * C.blur(G.nucleoli, 0.15 * um)
    img += rng.uniform(0, 0.06) * G.T * G.cyto
    return img, {"variant": "nucleoplasmic " + ("speckled" if fine else "smooth")}


# ----------------------------------------------------------------------------- render

def render(cls: str, rng: np.random.Generator, *, size: int, diameter: float) -> RenderedCell:
    if cls not in CLASSES:
        raise ValueError(f"unknown class {cls!r}; expected one of {', '.join(CLASSES)}")
    if size < 1.25 * diameter:
        raise ValueError(f"size {size} must be at least 1.25 x diameter ({diameter})")
    u = rng.random()
    state = "mitotic" if u < P_MITOTIC else "rounded" if u < P_MITOTIC + P_ROUNDED else "interphase"
    G = C.build(rng, size, diameter, state)
    C.nucleoli(rng, G)
    if state == "mitotic":
        C.chromosomes(rng, G)
        G.cyto = (G.cellsoft - G.nucsoft).clip(0)
    dna_img = C.dna(rng, G)
    expr = float(C.loguni(rng, 0.35, 2.0))
    crng = np.random.default_rng(rng.integers(2 ** 63))
    fn = {"ActinFilaments": actin, "Microtubules": microtubules, "ER": er, "Endosome": endosome,
          "Lysosome": lysosome, "Mitochondria": mitochondria, "Nucleolus": nucleolus}
    if cls in fn:
        prot, info = fn[cls](crng, G)
    elif cls == "Golgi_gia":
        prot, info = golgi(crng, G, "gia")
    elif cls == "Golgi_gpp":
        prot, info = golgi(crng, G, "gpp")
    else:
        prot, info = nucleus(crng, G, dna_img)
    prot = np.nan_to_num(prot) * G.cellsoft
    prot = np.clip(prot, 0, None)
    top = float(prot.max())
    prot = prot / (top if top > 0 else 1.0) * expr
    if top <= 0:
        prot = G.cellsoft * 0.1 * expr
    dna_img = np.clip(np.nan_to_num(dna_img), 0, None)
    info.update(line=G.line, expression=round(expr, 3), binucleate=bool(G.binucleate),
                straight_edges=int(G.straight), filopodia=len(G.filopodia))
    if state == "mitotic":
        info["phase"] = str(G.phase)
    return RenderedCell(protein=prot.astype(np.float32), dna=dna_img.astype(np.float32), cell=G.cell.copy(),
                        nucleus=(G.nuc & G.cell), pixel_size_um=float(G.px), state=state, info=info)
