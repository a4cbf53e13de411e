"""Cell body, nucleus, thickness and DNA channel of the ``indep_a`` renderer.

Everything here is independent of the organelle class: it is drawn first, from the same random
stream, so that cell, nucleus and DNA statistics are the same for every class.

An interphase (or rounded) cell is star-shaped about its nucleus centre ``N``: its outline is a
table of radii ``rc(theta)`` about N, its nucleus another table ``rn(theta)``. Pixel maps derive from
those two tables: the distance to the cell edge, to the nuclear envelope, a perinuclear coordinate
``s`` (0 at the nuclear envelope, 1 at the plasma membrane) and the cell thickness (µm).
A mitotic cell is one or two round lobes (two daughters joined by a bridge in telophase) with
condensed chromosomes and no nuclear envelope.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ._indep_a_draw import TWO_PI, blur, loguniform, segment_points, smooth_noise, splat, wrap

K = 512  # angular bins of the polar tables
M = 2048  # contour samples
_T = -np.pi + TWO_PI * np.arange(M) / M
DIR8 = np.linspace(0, np.pi, 8, endpoint=False)

LINES = ("hela", "spread", "epithelial", "stem")
LINE_P = (0.42, 0.25, 0.20, 0.13)
P_MITOTIC = 0.035
P_ROUNDED = 0.035


@dataclass
class Nucleus:
    cy: float  # centre, crop pixels
    cx: float
    rn_tab: np.ndarray  # radius table about the centre, pixels
    sl: tuple  # (slice, slice) of the crop holding the nucleus (with a margin)
    soft: np.ndarray  # anti-aliased coverage in sl
    rel: np.ndarray  # rho / rn in sl (0 centre, 1 envelope)
    din: np.ndarray  # depth inside the envelope in µm (<0 outside) in sl
    body: np.ndarray  # nucleolus bodies 0..1 in sl
    body_in: np.ndarray  # the same bodies shrunk (for a bright rim)
    nucleoli: list = field(default_factory=list)  # (y, x, diameter µm)


@dataclass
class Geo:
    px: float
    state: str
    line: str
    shape: str
    hw: tuple
    off: tuple  # crop origin in the frame
    soft: np.ndarray  # cell coverage 0..1
    cell: np.ndarray
    nucsoft: np.ndarray  # union of nuclei (chromosome region in mitosis) 0..1
    nuc: np.ndarray
    h: np.ndarray  # thickness, µm
    vol: np.ndarray  # cytoplasm seen per pixel (confocal section vs widefield), ~1 near the nucleus
    s: np.ndarray  # 0 at the nucleus, 1 at the cell edge
    dedge: np.ndarray  # distance to the plasma membrane, µm (approx.)
    info: dict
    dnuc: np.ndarray | None = None  # distance outside the primary nuclear envelope, µm
    theta: np.ndarray | None = None  # angle about N
    rho: np.ndarray | None = None  # distance from N, pixels
    N: tuple = (0.0, 0.0)
    rc_tab: np.ndarray | None = None  # pixels about N
    rn_tab: np.ndarray | None = None
    axis: float = 0.0  # long axis of the cell
    front: float = 0.0  # side of the centrosome / Golgi
    mtoc: tuple = (0.0, 0.0)
    over_nuc: float = 0.2  # fraction of the cytoplasmic signal seen over the nucleus
    nuclei: list = field(default_factory=list)
    micro: tuple | None = None  # micronucleus (y, x, radius px)
    dna: np.ndarray | None = None
    chrom: np.ndarray | None = None  # mitotic chromosome density 0..~1
    poles: list = field(default_factory=list)
    phase: str = ""
    lobes: list = field(default_factory=list)  # (cy, cx, R px)
    bridge: tuple | None = None  # (y0, x0, y1, x1, half-width px)
    spindle: float = 0.0
    cyto_area_um2: float = 0.0
    dmax: float = 1e9  # longest allowed 8-direction span in pixels (set by render)
    pidx: tuple | None = None  # polar_index(theta), reused by the drawers

    @property
    def cyto(self):
        return self.soft * (1.0 - self.nucsoft)

    def constrain(self, margin_edge_px=1.0, margin_nuc_px=None):
        """A walker constraint keeping points inside the cell (and outside the nucleus)."""
        Ny, Nx = self.N
        rc, rn = self.rc_tab, self.rn_tab

        def f(ny, nx):
            dy = ny - Ny
            dx = nx - Nx
            r = np.hypot(dy, dx)
            th = np.arctan2(dy, dx)
            ix = polar_index(th)
            rmax = tab_at(rc, ix) - margin_edge_px
            if margin_nuc_px is None:
                rmin = np.zeros_like(r)
            else:
                rmin = np.minimum(tab_at(rn, ix) + margin_nuc_px, rmax)
            r2 = np.clip(r, rmin, np.maximum(rmax, 0))
            hit = np.abs(r2 - r) > 1e-9
            sc = r2 / np.maximum(r, 1e-9)
            return Ny + dy * sc, Nx + dx * sc, hit, th + np.pi / 2, r > rmax

        return f


def polar_index(theta):
    """Lookup index of angles ``theta`` into the K-bin polar tables: (bin, next bin, fraction)."""
    f = (theta + np.pi) * (K / TWO_PI)
    i = np.floor(f)
    fr = f - i
    i0 = i.astype(np.intp) % K
    return i0, (i0 + 1) % K, fr


def tab_at(tab, ix):
    """Linear interpolation of a polar table at a ``polar_index``."""
    i0, i1, fr = ix
    a = np.take(tab, i0)
    return a + (np.take(tab, i1) - a) * fr


def _normal_factor(tab):
    """r / sqrt(r^2 + r'^2): converts a radial distance to the edge into a normal distance."""
    d = (np.roll(tab, -1) - np.roll(tab, 1)) / (2 * TWO_PI / K)
    return tab / np.sqrt(tab ** 2 + d ** 2)


def _bumps(t, centres, amps, widths):
    d = wrap(t[None, :] - np.asarray(centres)[:, None])
    return (np.asarray(amps)[:, None] * np.exp(-0.5 * (d / np.asarray(widths)[:, None]) ** 2)).sum(0)


def _harmonics(t, rng, amp, kmin=2, kmax=7, slope=1.0):
    out = np.zeros_like(t)
    for k in range(kmin, kmax + 1):
        out += rng.normal(0, amp / k ** slope) * np.cos(k * t + rng.uniform(0, TWO_PI))
    return out


def _ellipse(t, aspect):
    return 1.0 / np.sqrt(np.cos(t) ** 2 + (np.sin(t) * aspect) ** 2)


def _polygon(t, rng, n, aspect, rjit):
    a = np.sort(wrap((np.arange(n) + rng.uniform(-0.3, 0.3, n)) * TWO_PI / n + rng.uniform(0, TWO_PI)))
    rad = 1.0 + rng.uniform(-rjit, rjit, n)
    P = np.stack([np.cos(a) * rad, np.sin(a) * rad / aspect], 1)
    ang = np.arctan2(P[:, 1], P[:, 0])
    order = np.argsort(ang)
    P, ang = P[order], ang[order]
    j = np.searchsorted(ang, t) % n  # vertex after t
    i = (j - 1) % n
    A, B = P[i], P[j]
    e = B - A
    d = np.stack([np.cos(t), np.sin(t)], 1)
    num = e[:, 0] * A[:, 1] - e[:, 1] * A[:, 0]
    den = e[:, 0] * d[:, 1] - e[:, 1] * d[:, 0]
    r = np.abs(num / np.where(np.abs(den) < 1e-9, 1e-9, den))
    return np.clip(r, 0.2, 3.0)


def _smooth_wrap(r, sigma):
    return ndi.gaussian_filter1d(r, sigma, mode="wrap") if sigma > 0 else r


def _cell_shape(kind, rng):
    """Outline radius on _T (about the cell's reference point), arbitrary scale; long axis along x."""
    t = _T
    if kind == "round":
        r = _ellipse(t, rng.uniform(1.0, 1.4)) * (1 + _harmonics(t, rng, rng.uniform(0.03, 0.09)))
    elif kind == "polygon":
        r = _polygon(t, rng, int(rng.integers(5, 9)), rng.uniform(1.0, 1.5), rng.uniform(0.05, 0.2))
        r = _smooth_wrap(r, M * rng.uniform(0.004, 0.012))
    elif kind in ("protrusion", "protrusion2"):
        if rng.random() < 0.5:
            r = _ellipse(t, rng.uniform(1.0, 1.4)) * (1 + _harmonics(t, rng, 0.05))
        else:
            r = _smooth_wrap(_polygon(t, rng, int(rng.integers(5, 8)), rng.uniform(1.0, 1.3), 0.12), M * 0.008)
        nb = 1 if kind == "protrusion" else 2
        c = rng.uniform(-np.pi, np.pi) + np.arange(nb) * rng.uniform(1.6, 4.6)
        r = r + _bumps(t, c, rng.uniform(0.35, 1.0, nb), rng.uniform(0.1, 0.28, nb))
    elif kind == "spindle":
        r = _ellipse(t, rng.uniform(1.7, 3.0)) * (1 + _harmonics(t, rng, 0.04))
        r = r + _bumps(t, [0.0 + rng.normal(0, 0.1), np.pi + rng.normal(0, 0.1)],
                       rng.uniform(0.2, 0.7, 2), rng.uniform(0.06, 0.18, 2))
    elif kind == "triangle":
        c = rng.uniform(-np.pi, np.pi) + np.arange(3) * TWO_PI / 3 + rng.normal(0, 0.25, 3)
        r = 0.45 + _bumps(t, c, rng.uniform(0.5, 1.0, 3), rng.uniform(0.28, 0.45, 3))
        r = r * (1 + _harmonics(t, rng, 0.04))
    elif kind == "fan":  # lamella toward +x, narrow tail toward -x
        r = 0.5 + _bumps(t, [0.0], [rng.uniform(0.5, 0.9)], [rng.uniform(0.55, 0.85)])
        r = r + _bumps(t, [np.pi + rng.normal(0, 0.15)], [rng.uniform(0.3, 0.9)], [rng.uniform(0.07, 0.16)])
        r = r * (1 + _harmonics(t, rng, 0.03))
    elif kind == "spread":
        r = _smooth_wrap(_polygon(t, rng, int(rng.integers(4, 7)), rng.uniform(1.2, 2.0), 0.2), M * 0.01)
        nb = int(rng.integers(1, 4))
        r = r + _bumps(t, rng.uniform(-np.pi, np.pi, nb), rng.uniform(0.2, 0.7, nb), rng.uniform(0.08, 0.25, nb))
    else:  # rounded
        r = 1.0 + _harmonics(t, rng, 0.025)
        nb = int(rng.poisson(1.0))
        if nb:
            r = r + _bumps(t, rng.uniform(-np.pi, np.pi, nb), rng.uniform(0.03, 0.08, nb), rng.uniform(0.05, 0.12, nb))
    if kind != "rounded" and rng.random() < 0.25:  # ruffled edge
        k = np.arange(12, 40)
        amp = rng.uniform(0.01, 0.03) / np.sqrt(k.size)
        r = r * (1 + (rng.normal(0, 1, k.size)[:, None] * amp * np.sqrt(12.0 / k)[:, None]
                      * np.cos(k[:, None] * t[None, :] + rng.uniform(0, TWO_PI, k.size)[:, None])).sum(0))
    return np.maximum(r, 0.05)


def _span(x, y, dirs):
    p = y[None, :] * np.sin(dirs)[:, None] + x[None, :] * np.cos(dirs)[:, None]
    return (p.max(1) - p.min(1))


def _to_polar(x, y, cx, cy):
    """Radius table about (cx, cy) of a closed contour (max radius per angular bin, gaps filled)."""
    ang = np.arctan2(y - cy, x - cx)
    r = np.hypot(y - cy, x - cx)
    b = np.floor((ang + np.pi) * (K / TWO_PI)).astype(np.intp) % K
    tab = np.zeros(K)
    np.maximum.at(tab, b, r)
    empty = tab <= 0
    if empty.any():
        good = np.nonzero(~empty)[0]
        tab[empty] = np.interp(np.nonzero(empty)[0], good, tab[good], period=K)
    return ndi.gaussian_filter1d(tab, 0.7, mode="wrap")


_TK = -np.pi + TWO_PI * (np.arange(K) + 0.5) / K


def _nucleus_table(rng, a, b, phi, lobed=None, kidney=None):
    r = 1.0 / np.sqrt((np.cos(_TK - phi) / a) ** 2 + (np.sin(_TK - phi) / b) ** 2)
    h = _harmonics(_TK, rng, rng.uniform(0.01, 0.04), 2, 6, slope=1.5)
    if lobed:
        k = int(rng.integers(2, 5))
        h += rng.uniform(0.03, 0.07) * np.cos(k * _TK + rng.uniform(0, TWO_PI))
    r = r * (1 + h)
    if kidney:
        r = r * (1 - _bumps(_TK, [phi + np.pi / 2 * rng.choice([-1, 1])], [rng.uniform(0.12, 0.3)],
                            [rng.uniform(0.3, 0.55)]))
    return r


def _cell_line(rng, state):
    line = str(rng.choice(LINES, p=LINE_P))
    if state == "rounded":
        return line, "rounded", rng.uniform(10, 20), rng.uniform(0.4, 0.65)
    if line == "hela":
        kind = str(rng.choice(["round", "polygon", "protrusion", "protrusion2"], p=[0.3, 0.3, 0.28, 0.12]))
        return line, kind, rng.uniform(20, 40), rng.uniform(0.15, 0.35)
    if line == "spread":
        kind = str(rng.choice(["spindle", "triangle", "fan", "spread"], p=[0.3, 0.2, 0.25, 0.25]))
        return line, kind, rng.uniform(40, 80), rng.uniform(0.07, 0.15)
    if line == "epithelial":
        kind = str(rng.choice(["polygon", "round", "protrusion"], p=[0.7, 0.2, 0.1]))
        return line, kind, rng.uniform(15, 30), rng.uniform(0.35, 0.6)
    kind = str(rng.choice(["polygon", "round"], p=[0.6, 0.4]))
    return line, kind, rng.uniform(10, 18), rng.uniform(0.5, 0.75)


def make_geometry(rng, size: int, diameter: float) -> Geo:
    u = rng.random()
    if u < P_MITOTIC:
        g = _mitotic(rng, size, diameter)
    else:
        g = _interphase(rng, size, diameter, "rounded" if u < P_MITOTIC + P_ROUNDED else "interphase")
    return g


def _place(rng, size, ymin, ymax, xmin, xmax, pad):
    """Frame position of the reference point and the crop (y0, y1, x0, x1)."""
    lo_y, hi_y = 3 - ymin, size - 4 - ymax
    lo_x, hi_x = 3 - xmin, size - 4 - xmax
    Ny = rng.uniform(lo_y, hi_y) if hi_y > lo_y else 0.5 * (lo_y + hi_y)
    Nx = rng.uniform(lo_x, hi_x) if hi_x > lo_x else 0.5 * (lo_x + hi_x)
    y0 = max(2, int(np.floor(Ny + ymin)) - pad)
    y1 = min(size - 2, int(np.ceil(Ny + ymax)) + pad + 1)
    x0 = max(2, int(np.floor(Nx + xmin)) - pad)
    x1 = min(size - 2, int(np.ceil(Nx + xmax)) + pad + 1)
    return Ny, Nx, (y0, y1, x0, x1)


def _outline_and_nucleus(rng, state):
    """Cell outline (µm, about the nucleus centre) and nucleus radius table; retried when the
    nucleus would have to shrink a lot to fit the outline."""
    for attempt in range(4):
        line, kind, L, fn = _cell_line(rng, state)
        r = _cell_shape(kind, rng)
        phi = rng.uniform(-np.pi, np.pi)
        x = r * np.cos(_T + phi)
        y = r * np.sin(_T + phi)
        scale = L / _span(x, y, np.linspace(0, np.pi, 36, endpoint=False)).max()
        x *= scale
        y *= scale
        area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))

        # nucleus: size from the area fraction of the cell line, axis ratio 0.6-1, aligned with
        # elongated cells
        q = rng.uniform(0.6, 1.0)
        small = line == "stem" or state == "rounded"
        Ln = np.clip(np.sqrt(4 * fn * area / (np.pi * q)), 7.0 if small else 9.0, 20.0)
        a, b = Ln / 2, Ln / 2 * q
        elong = kind in ("spindle", "fan", "spread") or (kind == "round" and r.max() / r.min() > 1.25)
        phin = phi + rng.normal(0, 0.3) if elong else rng.uniform(-np.pi, np.pi)
        rn = _nucleus_table(rng, a, b, phin, lobed=rng.random() < 0.1, kidney=rng.random() < 0.12)
        margin = 0.6 if small else rng.uniform(1.0, 2.5)

        # nucleus centre: off-centre (toward the tail in fan-shaped cells); else the best of a few
        # interior points; shrunk to fit if still needed
        if kind == "fan":
            odir = phi + np.pi + rng.normal(0, 0.3)
            frac = rng.uniform(0.3, 0.6)
        else:
            odir = rng.uniform(-np.pi, np.pi)
            frac = rng.uniform(0.0, 0.45) if state == "interphase" else rng.uniform(0, 0.15)
        rdir = np.interp(wrap(odir - phi), _T, r, period=TWO_PI) * scale
        cands = [(f * rdir * np.cos(odir), f * rdir * np.sin(odir)) for f in (frac, frac * 0.6, frac * 0.3, 0.0)]
        ta = rng.uniform(-np.pi, np.pi, 8)
        tr = rng.uniform(0.1, 0.5, 8) * np.interp(wrap(ta - phi), _T, r, period=TWO_PI) * scale
        cands += list(zip(tr * np.cos(ta), tr * np.sin(ta)))
        best = (-1.0, None, None)
        for (cx, cy) in cands:
            rc = _to_polar(x, y, cx, cy)
            fit = float(np.min((rc - margin) / rn))
            if fit >= 1:
                best = (fit, (cx, cy), rc)
                break
            if fit > best[0]:
                best = (fit, (cx, cy), rc)
        fit, (cx, cy), rc = best
        if fit >= 0.8 or attempt == 3:
            break
    if fit < 1:
        rn = rn * max(fit, 0.3)
        a, b = a * fit, b * fit
    return line, kind, phi, x - cx, y - cy, area, rc, rn, a, b, phin, margin


def _interphase(rng, size, diameter, state) -> Geo:
    line, kind, phi, x, y, area, rc, rn, a, b, phin, margin = _outline_and_nucleus(rng, state)

    # second nucleus (binucleate) and micronucleus, class-independent
    nuc2 = None
    if state == "interphase" and line != "stem" and rng.random() < 0.04:
        d = phin + np.pi / 2 * rng.choice([-1, 1]) + rng.normal(0, 0.3)
        sc = rng.uniform(0.8, 1.0)
        rn2 = _nucleus_table(rng, a * sc, b * sc, phin + rng.normal(0, 0.3))
        i2 = int(np.floor((wrap(d) + np.pi) * K / TWO_PI)) % K
        i2b = int(np.floor((wrap(d + np.pi) + np.pi) * K / TWO_PI)) % K
        dist = rn[i2] + rn2[i2b] + rng.uniform(0.2, 0.8)
        c2 = (dist * np.sin(d), dist * np.cos(d))
        pts_y = c2[0] + rn2 * np.sin(_TK)
        pts_x = c2[1] + rn2 * np.cos(_TK)
        ang = np.arctan2(pts_y, pts_x)
        rr = np.hypot(pts_y, pts_x)
        if np.all(rr < np.interp(ang, _TK, rc, period=TWO_PI) - margin):
            nuc2 = (c2, rn2)
    micro = None
    if state == "interphase" and rng.random() < 0.05:
        d = rng.uniform(-np.pi, np.pi)
        i2 = int(np.floor((d + np.pi) * K / TWO_PI)) % K
        rad = rng.uniform(0.5, 1.4)
        dist = rn[i2] + rad + rng.uniform(0.5, 3.0)
        if dist + rad < rc[i2] - 0.5:
            micro = (dist * np.sin(d), dist * np.cos(d), rad)

    # pixel size from the wanted extent (the contract's 8-direction extent)
    if state == "interphase":
        target = diameter * rng.uniform(0.87, 1.02)
    else:
        target = diameter * rng.uniform(0.52, 0.75)
    e8 = _span(x, y, DIR8).max()
    px = float(e8 / max(target - 1.0, 4.0))
    X, Y = x / px, y / px
    pad = 3 + int(0.07 * diameter) if state == "interphase" else 3
    Ny, Nx, (y0, y1, x0, x1) = _place(rng, size, Y.min(), Y.max(), X.min(), X.max(), pad)
    Ny -= y0
    Nx -= x0
    hw = (y1 - y0, x1 - x0)

    rc_px = rc / px
    rn_px = rn / px
    kc = _normal_factor(rc_px)
    kn = _normal_factor(rn_px)
    yy = (np.arange(hw[0], dtype=np.float32) - np.float32(Ny))[:, None]
    xx = (np.arange(hw[1], dtype=np.float32) - np.float32(Nx))[None, :]
    rho = np.sqrt(yy * yy + xx * xx)
    th = np.arctan2(np.broadcast_to(yy, hw), np.broadcast_to(xx, hw))
    ix = polar_index(th)
    rcp = tab_at(rc_px.astype(np.float32), ix)
    rnp = tab_at(rn_px.astype(np.float32), ix)
    dedge_px = (rcp - rho) * tab_at(kc.astype(np.float32), ix)
    dn_px = (rho - rnp) * tab_at(kn.astype(np.float32), ix)
    soft = np.clip(dedge_px + 0.5, 0, 1)
    nsoft = np.clip(0.5 - dn_px, 0, 1)
    s = np.clip((rho - rnp) / np.maximum(rcp - rnp, 1e-3), 0, 1)

    # thickness (µm): thickest over the nucleus, thinning toward the periphery
    if state == "rounded":
        htop = rng.uniform(7, 11)
        hcell = htop * np.sqrt(np.clip(1 - (rho / np.maximum(rcp, 1e-3)) ** 2, 0, 1)) + 0.3
        hne = float(htop * np.sqrt(max(1 - (rn_px.mean() / rc_px.mean()) ** 2, 0.0)))
    else:
        he = {"spread": (0.12, 0.3), "hela": (0.15, 0.4), "epithelial": (0.3, 0.7), "stem": (0.4, 0.9)}[line]
        hn = {"spread": (1.5, 3.0), "hela": (2.5, 4.5), "epithelial": (3.0, 5.0), "stem": (3.5, 6.0)}[line]
        h_edge, hne = rng.uniform(*he), rng.uniform(*hn)
        p = rng.uniform(1.5, 3.0) if line == "spread" else rng.uniform(0.8, 2.0)
        htop = hne + rng.uniform(1.5, 3.5)
        hcell = h_edge + (hne - h_edge) * (1 - s) ** p
        rel = np.clip(rho / np.maximum(rnp, 1e-3), 0, 1)
        hcell = np.where(rho < rnp, hne + (htop - hne) * np.sqrt(1 - rel * rel), hcell)
    hcell = (hcell * soft).astype(np.float32)
    zdof = float(loguniform(rng, 0.7, 6.0))  # confocal section ... widefield depth
    vol = zdof * (1 - np.exp(-hcell / zdof))
    vne = zdof * (1 - np.exp(-max(hne, 0.3) / zdof))
    vol = (vol / vne).astype(np.float32)
    over_nuc = float(np.clip(0.04 + 0.3 * (zdof - 0.7) / 5.3, 0.03, 0.4) * rng.uniform(0.6, 1.3))

    # front (centrosome / Golgi side): toward the bulk of the cytoplasm
    w = rc ** 2 - rn ** 2
    front = float(np.arctan2((w * np.sin(_TK)).sum(), (w * np.cos(_TK)).sum()))
    bulk = np.hypot((w * np.sin(_TK)).sum(), (w * np.cos(_TK)).sum()) / w.sum()
    front = float(wrap(front + rng.normal(0, 0.4 if bulk > 0.15 else 1.2)))
    fi = int(np.floor((front + np.pi) * K / TWO_PI)) % K
    md = rn_px[fi] + rng.uniform(0.3, 1.5) / px
    mtoc = (Ny + md * np.sin(front), Nx + md * np.cos(front))

    g = Geo(px=px, state=state, line=line, shape=kind, hw=hw, off=(y0, x0), soft=soft.astype(np.float32),
            cell=soft > 0.5, nucsoft=nsoft.astype(np.float32), nuc=nsoft > 0.5, h=hcell, vol=vol,
            s=s.astype(np.float32), dedge=(dedge_px * px).astype(np.float32),
            info={"line": line, "shape": kind, "zdof_um": round(zdof, 2)},
            dnuc=(dn_px * px).astype(np.float32), theta=th, rho=rho, N=(Ny, Nx), rc_tab=rc_px, rn_tab=rn_px,
            axis=float(phi), front=front, mtoc=mtoc, over_nuc=over_nuc, pidx=ix)
    g.cyto_area_um2 = float(area - np.pi * a * b)

    nuclei = [_nucleus_maps(g, rng, Ny, Nx, rn_px)]
    if nuc2 is not None:
        (c2y, c2x), rn2 = nuc2
        n2 = _nucleus_maps(g, rng, Ny + c2y / px, Nx + c2x / px, rn2 / px)
        nuclei.append(n2)
        sub = g.nucsoft[n2.sl]
        np.maximum(sub, n2.soft, out=sub)
        g.nuc = g.nucsoft > 0.5
        g.info["binucleate"] = True
    g.nuclei = nuclei
    if micro is not None:
        g.micro = (Ny + micro[0] / px, Nx + micro[1] / px, micro[2] / px)
        g.info["micronucleus"] = True
    g.nucsoft *= g.soft
    _interphase_dna(g, rng)
    return g


def _nucleus_maps(g, rng, cy, cx, rn_tab) -> Nucleus:
    px = g.px
    R = rn_tab.max() + 3
    y0, y1 = max(0, int(cy - R)), min(g.hw[0], int(cy + R) + 2)
    x0, x1 = max(0, int(cx - R)), min(g.hw[1], int(cx + R) + 2)
    sl = (slice(y0, y1), slice(x0, x1))
    yy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy))[:, None]
    xx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx))[None, :]
    rho = np.sqrt(yy * yy + xx * xx)
    th = np.arctan2(np.broadcast_to(yy, rho.shape), np.broadcast_to(xx, rho.shape))
    ix = polar_index(th)
    rnp = tab_at(rn_tab.astype(np.float32), ix)
    kn = tab_at(_normal_factor(rn_tab).astype(np.float32), ix)
    din = (rnp - rho) * kn * px
    soft = np.clip(din / px + 0.5, 0, 1).astype(np.float32)
    rel = np.clip(rho / np.maximum(rnp, 1e-3), 0, 1.5)

    # nucleoli: one large or several small irregular bodies (union of lobes), away from the envelope
    n = int(rng.choice([1, 2, 3, 4, 5], p=[0.25, 0.3, 0.25, 0.12, 0.08]))
    big = rn_tab.mean() * px  # nucleus radius, µm
    F = np.zeros(rho.shape, np.float32)
    nucleoli = []
    dias = rng.uniform(2.0, 4.5, 1) if n == 1 else rng.uniform(1.0, 3.0, n)
    dias = np.minimum(dias, (0.38 if n == 1 else 0.3) * 2 * big)
    tot = float(np.sum(dias ** 2))  # nucleoli cover at most ~5-20 % of the nuclear area
    cap = rng.uniform(0.05, 0.2) * (2 * big) ** 2
    if tot > cap:
        dias = dias * np.sqrt(cap / tot)
    dias = np.maximum(dias, 0.8)
    for dia in dias:
        for _ in range(6):
            t = rng.uniform(-np.pi, np.pi)
            ii = int(np.floor((t + np.pi) * K / TWO_PI)) % K
            rr = np.sqrt(rng.uniform(0, 1)) * max(rn_tab[ii] - 0.6 * dia / px - 1.0 / px, 0)
            ny_, nx_ = cy + rr * np.sin(t), cx + rr * np.cos(t)
            if all(np.hypot(ny_ - a, nx_ - b) > 0.5 * (dia + c) / px for a, b, c in nucleoli):
                break
        nucleoli.append((ny_, nx_, dia))
        nl = int(rng.integers(1, 5))
        sig = dia / 2.355 * (rng.uniform(0.75, 0.95) if nl > 1 else 1.0) / px
        oy = rng.normal(0, 0.16 * dia / px, nl)
        ox = rng.normal(0, 0.16 * dia / px, nl)
        oy[0] = ox[0] = 0
        amp = np.r_[1.0, rng.uniform(0.5, 0.8, nl - 1)]
        win = 3 * sig + 0.6 * dia / px + 1
        wy0, wy1 = max(y0, int(ny_ - win)), min(y1, int(ny_ + win) + 2)
        wx0, wx1 = max(x0, int(nx_ - win)), min(x1, int(nx_ + win) + 2)
        if wy1 <= wy0 or wx1 <= wx0:
            continue
        sy = (np.arange(wy0, wy1, dtype=np.float32) - np.float32(ny_))[:, None]
        sx = (np.arange(wx0, wx1, dtype=np.float32) - np.float32(nx_))[None, :]
        sub = F[wy0 - y0:wy1 - y0, wx0 - x0:wx1 - x0]
        for k in range(nl):
            sub += amp[k] * np.exp(-((sy - oy[k]) ** 2 + (sx - ox[k]) ** 2) / np.float32(2 * sig * sig))
    body = (1.0 / (1.0 + np.exp(-(F - 0.5) / 0.07))) * soft
    body_in = (1.0 / (1.0 + np.exp(-(F - 0.75) / 0.07))) * soft
    return Nucleus(cy=cy, cx=cx, rn_tab=rn_tab, sl=sl, soft=soft, rel=rel.astype(np.float32),
                   din=din.astype(np.float32), body=body.astype(np.float32),
                   body_in=body_in.astype(np.float32), nucleoli=nucleoli)


def _chromatin(g, rng, nu: Nucleus, level, hole_depth):
    """DNA in one interphase nucleus: textured fill, heterochromatin foci, rim, nucleolar holes."""
    px = g.px
    shp = nu.soft.shape
    dome = 1 - rng.uniform(0.15, 0.5) * (1 - np.sqrt(np.clip(1 - nu.rel ** 2, 0, 1)))
    med = smooth_noise(shp, rng.uniform(0.8, 2.0) / px, rng) * rng.uniform(0.07, 0.17)
    fine = smooth_noise(shp, max(rng.uniform(0.12, 0.35) / px, 0.5), rng) * rng.uniform(0.08, 0.2)
    rim = rng.uniform(0.0, 0.45) * np.exp(-np.clip(nu.din, 0, None) / rng.uniform(0.3, 0.6))
    d = nu.soft * dome * np.clip(1 + med + fine + rim, 0.2, None) * (1 - hole_depth * nu.body)
    # heterochromatin foci (~1 µm), few in human cells, more in mouse-like cells
    nf = int(rng.poisson(rng.uniform(8, 20) if rng.random() < 0.15 else rng.uniform(1, 6)))
    if nf:
        foc = np.zeros(shp, np.float32)
        y0, x0 = nu.sl[0].start, nu.sl[1].start
        fy, fx = [], []
        for _ in range(nf):
            t = rng.uniform(-np.pi, np.pi)
            ii = int(np.floor((t + np.pi) * K / TWO_PI)) % K
            rr = np.sqrt(rng.uniform(0.02, 0.85)) * nu.rn_tab[ii]
            fy.append(nu.cy + rr * np.sin(t) - y0)
            fx.append(nu.cx + rr * np.cos(t) - x0)
        splat(foc, fy, fx, rng.uniform(0.3, 0.9, nf) * (0.8 / px) ** 2)
        foc = blur(foc, 0.8 / 2.355 / px)
        d = d + foc * nu.soft * (1 - nu.body)
    return (level * d).astype(np.float32)


def _interphase_dna(g: Geo, rng):
    level = float(rng.uniform(0.3, 0.55) * loguniform(rng, 0.7, 1.45))
    hole = rng.uniform(0.3, 0.8)
    dna = np.zeros(g.hw, np.float32)
    for nu in g.nuclei:
        sub = dna[nu.sl]
        np.maximum(sub, _chromatin(g, rng, nu, level, hole), out=sub)
    if g.micro is not None:
        my, mx, mr = g.micro
        yy = (np.arange(g.hw[0]) - my)[:, None]
        xx = (np.arange(g.hw[1]) - mx)[None, :]
        dna += (level * rng.uniform(1.0, 1.6) * np.clip(mr - np.sqrt(yy * yy + xx * xx) + 0.5, 0, 1)).astype(np.float32)
    g.dna = dna * g.soft
    g.info["dna_level"] = round(level, 3)


# ----------------------------------------------------------------------------------------------
# mitosis


def _mitotic(rng, size, diameter) -> Geo:
    phase = str(rng.choice(["prometaphase", "metaphase", "anaphase", "telophase"], p=[0.2, 0.4, 0.2, 0.2]))
    line = str(rng.choice(LINES, p=LINE_P))
    R = rng.uniform(7.5, 12.5)
    ax = rng.uniform(-np.pi, np.pi)  # spindle axis / division axis
    if phase == "telophase":
        R1 = R * rng.uniform(0.66, 0.8)
        R2 = R1 * rng.uniform(0.9, 1.1)
        D = (R1 + R2) * rng.uniform(0.88, 1.25)
        lobes = [(-D / 2 * np.sin(ax), -D / 2 * np.cos(ax), R1), (D / 2 * np.sin(ax), D / 2 * np.cos(ax), R2)]
    else:
        lobes = [(0.0, 0.0, R)]
    tabs = []
    xs, ys = [], []
    for (cy, cx, Rl) in lobes:
        r = Rl * (1 + _harmonics(_TK, rng, 0.02, 2, 6))
        nb = int(rng.poisson(0.7))
        if nb:
            r = r * (1 + _bumps(_TK, rng.uniform(-np.pi, np.pi, nb), rng.uniform(0.04, 0.1, nb),
                                rng.uniform(0.05, 0.12, nb)))
        tabs.append(r)
        xs.append(cx + r * np.cos(_TK))
        ys.append(cy + r * np.sin(_TK))
    x, y = np.concatenate(xs), np.concatenate(ys)
    target = diameter * rng.uniform(0.52, 0.76)
    px = float(_span(x, y, DIR8).max() / (target - 1.0))
    Ny, Nx, (y0, y1, x0, x1) = _place(rng, size, y.min() / px, y.max() / px, x.min() / px, x.max() / px, 3)
    Ny -= y0
    Nx -= x0
    hw = (y1 - y0, x1 - x0)
    yy = np.arange(hw[0], dtype=np.float32)[:, None]
    xx = np.arange(hw[1], dtype=np.float32)[None, :]
    dedge = np.full(hw, -1e3, np.float32)
    h = np.zeros(hw, np.float32)
    lob = []
    for (cy, cx, Rl), tab in zip(lobes, tabs):
        ly, lx = Ny + cy / px, Nx + cx / px
        dy, dx = yy - np.float32(ly), xx - np.float32(lx)
        rho = np.sqrt(dy * dy + dx * dx)
        ix = polar_index(np.arctan2(np.broadcast_to(dy, hw), np.broadcast_to(dx, hw)))
        tp = tab / px
        rcp = tab_at(tp.astype(np.float32), ix)
        de = (rcp - rho) * tab_at(_normal_factor(tp).astype(np.float32), ix)
        np.maximum(dedge, de, out=dedge)
        hl = rng.uniform(1.3, 1.6) * Rl * np.sqrt(np.clip(1 - (rho / np.maximum(rcp, 1e-3)) ** 2, 0, 1))
        np.maximum(h, hl.astype(np.float32), out=h)
        lob.append((ly, lx, Rl / px))
    bridge = None
    if phase == "telophase":
        (ay, axx, _), (by, bx, _) = lob
        hwid = rng.uniform(0.5, 0.9) / px
        bridge = (ay, axx, by, bx, hwid)
        vy, vx = by - ay, bx - axx
        L2 = vy * vy + vx * vx
        t = np.clip(((yy - ay) * vy + (xx - axx) * vx) / L2, 0, 1)
        db = hwid - np.sqrt((yy - ay - t * vy) ** 2 + (xx - axx - t * vx) ** 2)
        np.maximum(dedge, db, out=dedge)
        np.maximum(h, np.where(db > 0, 1.0, 0.0).astype(np.float32), out=h)
    soft = np.clip(dedge + 0.5, 0, 1).astype(np.float32)
    h *= soft
    zdof = float(loguniform(rng, 0.7, 6.0))
    vol = zdof * (1 - np.exp(-h / zdof))
    vol = (vol / max(float(vol.max()), 1e-6)).astype(np.float32)
    dedge_um = dedge * px
    s = np.clip(1 - dedge_um / (0.9 * R), 0, 1).astype(np.float32)

    # chromosomes: short rods in a plate, two plates, a mass, or two compact daughter nuclei
    chrom = np.zeros(hw, np.float32)
    cy0, cx0 = lob[0][0], lob[0][1]
    if phase != "telophase":
        cy0 += rng.normal(0, 0.05 * R / px)
        cx0 += rng.normal(0, 0.05 * R / px)
    ua = np.array([np.sin(ax), np.cos(ax)])  # spindle axis (unit, y x)
    ub = np.array([np.cos(ax), -np.sin(ax)])  # plate direction
    groups = []
    nchr = int(rng.integers(40, 70))
    endon = False
    if phase == "metaphase":
        endon = rng.random() < 0.15
        groups.append((cy0, cx0, 2 * R * rng.uniform(0.45, 0.7), rng.uniform(1.5, 3.0), nchr, 0.0))
    elif phase == "anaphase":
        sep = rng.uniform(4.0, 10.0)
        bow = rng.uniform(0.0, 1.5)
        Lp = 2 * R * rng.uniform(0.35, 0.6)
        for sgn in (-1, 1):
            groups.append((cy0 + sgn * sep / 2 / px * ua[0], cx0 + sgn * sep / 2 / px * ua[1], Lp,
                           rng.uniform(1.2, 2.2), nchr // 2, sgn * bow))
    elif phase == "prometaphase":
        groups.append((cy0, cx0, rng.uniform(6, 10), rng.uniform(4, 8), nchr, 0.0))
    else:
        for (ly, lx, Rl) in lob:
            groups.append((ly, lx, rng.uniform(4, 7), rng.uniform(3, 5), nchr // 2, 0.0))
    for (gy, gx, Lp, Wp, n, bw) in groups:
        if endon:  # a rosette seen down the spindle axis
            t = rng.uniform(-np.pi, np.pi, n)
            rr = rng.uniform(0.25, 1.0, n) * Lp / 2 * 0.5
            py, px_ = gy + rr * np.sin(t) / px, gx + rr * np.cos(t) / px
        else:
            a_ = rng.uniform(-0.5, 0.5, n) * Lp
            b_ = rng.normal(0, 0.25, n) * Wp
            b_ += bw * (1 - (2 * a_ / Lp) ** 2)
            if phase in ("prometaphase", "telophase"):
                b_ = rng.uniform(-0.5, 0.5, n) * Wp * np.sqrt(np.clip(1 - (2 * a_ / Lp) ** 2, 0, 1))
            py = gy + (a_ * ub[0] + b_ * ua[0]) / px
            px_ = gx + (a_ * ub[1] + b_ * ua[1]) / px
        ang = rng.uniform(-np.pi, np.pi, n)
        ln = rng.uniform(1.0, 3.0, n) / px
        if phase == "metaphase" and not endon:
            ang = np.arctan2(ua[0], ua[1]) + rng.normal(0, 0.5, n)
            ln = np.minimum(ln, Wp / px)
        ys_, xs_, ws_, _, _ = segment_points(py - 0.5 * ln * np.sin(ang), px_ - 0.5 * ln * np.cos(ang),
                                             py + 0.5 * ln * np.sin(ang), px_ + 0.5 * ln * np.cos(ang),
                                             0.7 / px)  # rods ~0.7 µm thick
        splat(chrom, ys_, xs_, ws_)
    if phase == "prometaphase":  # a few unaligned chromosomes
        nn = int(rng.integers(0, 5))
        if nn:
            t = rng.uniform(-np.pi, np.pi, nn)
            rr = rng.uniform(0.4, 0.7, nn) * R / px
            splat(chrom, cy0 + rr * np.sin(t), cx0 + rr * np.cos(t), (0.7 / px) * (1.5 / px))
    chrom = blur(chrom, 0.3 / px)
    body = chrom[chrom > 0.05 * float(chrom.max())]
    ref = float(np.percentile(body, 75)) if body.size else 1.0  # typical condensed chromatin -> ~1
    chrom = np.clip(chrom / max(ref, 1e-9), 0, 1.5).astype(np.float32) * soft
    region = blur(chrom, 0.4 / px)
    nuc = (region > 0.22 * float(region.max())) & (soft > 0.5)
    nsoft = np.clip(region / (0.22 * float(region.max()) + 1e-9) - 0.5, 0, 1).astype(np.float32) * soft

    poles = []
    if phase in ("prometaphase", "metaphase", "anaphase"):
        dpole = R * rng.uniform(0.5, 0.72) / px
        if phase == "prometaphase":
            dpole *= rng.uniform(0.5, 0.9)
        for sgn in (-1, 1):
            poles.append((cy0 + sgn * dpole * ua[0], cx0 + sgn * dpole * ua[1]))
    level = float(rng.uniform(0.3, 0.55) * loguniform(rng, 0.7, 1.45))
    dna = (chrom * level * rng.uniform(2.0, 4.0)).astype(np.float32)
    g = Geo(px=px, state="mitotic", line=line, shape="round", hw=hw, off=(y0, x0), soft=soft, cell=soft > 0.5,
            nucsoft=nsoft, nuc=nuc, h=h, vol=vol, s=s, dedge=dedge_um.astype(np.float32),
            info={"line": line, "phase": phase, "zdof_um": round(zdof, 2)},
            N=(cy0, cx0), axis=float(ax), over_nuc=0.3)
    g.phase = phase
    g.chrom = chrom
    g.poles = poles
    g.lobes = lob
    g.bridge = bridge
    g.spindle = float(ax)
    g.dna = dna
    g.cyto_area_um2 = float(sum(np.pi * l[2] ** 2 for l in lobes))
    return g
