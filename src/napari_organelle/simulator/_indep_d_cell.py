"""Cell geometry and drawing primitives for the ``indep_d`` renderer (numpy + scipy only).

Everything here is class-independent: the cell outline, nucleus, nucleoli, thickness and the DNA
channel are drawn before the protein, from the same random stream for every class.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

TWO_PI = 2 * np.pi
_NTH = 720
_THG = np.linspace(0, TWO_PI, _NTH, endpoint=False)
_EXT_DIRS = np.linspace(0, np.pi, 8, endpoint=False)

# cell line: (probability, longest extent um, nucleus area fraction, aspect ratio range)
LINES = {
    "HeLa": (0.36, (20, 40), (0.14, 0.30), (0.55, 1.0)),
    "U2OS": (0.26, (40, 80), (0.07, 0.16), (0.35, 0.7)),
    "epithelial": (0.24, (15, 30), (0.25, 0.5), (0.65, 1.0)),
    "hiPSC": (0.14, (10, 18), (0.5, 0.7), (0.7, 1.0)),
}


# ----------------------------------------------------------------------------------------------
# drawing primitives
def splat(size, y, x, w):
    """Bilinear deposit of weights ``w`` at sub-pixel points (y, x) on a size x size grid."""
    y = np.asarray(y, float).ravel()
    x = np.asarray(x, float).ravel()
    w = np.asarray(w, float)
    w = np.broadcast_to(w.ravel() if w.size == y.size else w, y.shape).ravel()
    y0 = np.floor(y)
    x0 = np.floor(x)
    ok = (y0 >= 0) & (y0 < size - 1) & (x0 >= 0) & (x0 < size - 1)
    y, x, w, y0, x0 = y[ok], x[ok], w[ok], y0[ok].astype(np.int64), x0[ok].astype(np.int64)
    fy, fx = y - y0, x - x0
    i = y0 * size + x0
    idx = np.concatenate([i, i + 1, i + size, i + size + 1])
    ww = np.concatenate([w * (1 - fy) * (1 - fx), w * (1 - fy) * fx, w * fy * (1 - fx), w * fy * fx])
    return np.bincount(idx, ww, minlength=size * size).reshape(size, size)


def segments(size, a, b, w, step=0.6):
    """Anti-aliased line segments a->b ((n, 2) arrays of (y, x) px); ``w`` = brightness per px length."""
    a = np.asarray(a, float).reshape(-1, 2)
    b = np.asarray(b, float).reshape(-1, 2)
    w = np.broadcast_to(np.asarray(w, float), (a.shape[0],))
    if a.shape[0] == 0:
        return np.zeros((size, size))
    d = b - a
    L = np.hypot(d[:, 0], d[:, 1])
    n = np.maximum(1, np.ceil(L / step)).astype(np.int64)
    seg = np.repeat(np.arange(a.shape[0]), n)
    start = np.cumsum(n) - n
    k = np.arange(seg.size) - start[seg]
    t = (k + 0.5) / n[seg]
    p = a[seg] + t[:, None] * d[seg]
    return splat(size, p[:, 0], p[:, 1], (w * L / n)[seg])


def paths(size, P, valid, w):
    """Polylines P (N, S, 2) with per-segment validity (N, S-1) and brightness per px length w."""
    a = P[:, :-1].reshape(-1, 2)
    b = P[:, 1:].reshape(-1, 2)
    w = np.broadcast_to(np.asarray(w, float), valid.shape).ravel()
    v = valid.ravel()
    return segments(size, a[v], b[v], w[v])


def blur(img, sigma):
    """Gaussian blur (zero outside), computed only over the non-zero part of the image."""
    if sigma <= 0.3:
        return img
    rows = np.flatnonzero(img.any(1))
    if rows.size == 0:
        return img
    cols = np.flatnonzero(img.any(0))
    m = int(np.ceil(3 * sigma)) + 1
    y0, y1 = max(0, rows[0] - m), min(img.shape[0], rows[-1] + m + 1)
    x0, x1 = max(0, cols[0] - m), min(img.shape[1], cols[-1] + m + 1)
    out = np.zeros_like(img)
    out[y0:y1, x0:x1] = ndi.gaussian_filter(img[y0:y1, x0:x1], sigma, mode="constant", truncate=3.0)
    return out


_UP_CACHE: dict = {}


def _up_matrix(size, n, scale):
    """(size, n) linear-interpolation matrix from a coarse grid of spacing ``scale`` px."""
    key = (size, n, round(scale, 3))
    m = _UP_CACHE.get(key)
    if m is None:
        pos = (np.arange(size) + 0.5) / scale
        i0 = np.clip(np.floor(pos).astype(int), 0, n - 2)
        f = np.clip(pos - i0, 0, 1)
        m = np.zeros((size, n))
        m[np.arange(size), i0] = 1 - f
        m[np.arange(size), i0 + 1] = f
        if len(_UP_CACHE) > 256:
            _UP_CACHE.clear()
        _UP_CACHE[key] = m
    return m


def noise(rng, size, scale_px, box=None):
    """Smooth random field, zero mean, unit-ish std, correlation length ~scale_px."""
    scale_px = max(scale_px, 0.7)
    if scale_px < 3:
        y0, y1, x0, x1 = box if box is not None else (0, size, 0, size)
        f = np.zeros((size, size))
        f[y0:y1, x0:x1] = ndi.gaussian_filter(rng.standard_normal((y1 - y0, x1 - x0)), scale_px * 0.6)
        s = f[y0:y1, x0:x1].std()
        return f / s if s > 0 else f
    else:
        n = int(np.ceil(size / scale_px)) + 2
        c = ndi.gaussian_filter(rng.standard_normal((n, n)), 0.8, mode="wrap")
        m = _up_matrix(size, n, scale_px)
        f = m @ c @ m.T
    s = f.std()
    return f / s if s > 0 else f


def dots(size, y, x, amp, sigma_px):
    """Gaussian dots with total amounts ``amp`` (sigma in px, one value)."""
    return blur(splat(size, y, x, amp), sigma_px)


def extent_pts(y, x):
    best = 0.0
    for a in _EXT_DIRS:
        pr = y * np.sin(a) + x * np.cos(a)
        best = max(best, float(pr.max() - pr.min() + 1))
    return best


# ----------------------------------------------------------------------------------------------
# geometry
class Geometry:
    """One cell: outline (star-shaped polar function), nuclei, nucleoli, thickness."""

    def u_at(self, y, x):
        """Normalised radius (1 at the outline) and approximate distance to the edge (px)."""
        dy, dx = y - self.cy, x - self.cx
        rho = np.hypot(dy, dx)
        th = np.mod(np.arctan2(dy, dx) - self.alpha, TWO_PI)
        r = np.interp(th, _THG, self.rtab, period=TWO_PI)
        return rho / r, r - rho

    def nu_at(self, y, x):
        """Normalised nuclear radius (1 at the nuclear outline; min over nuclei)."""
        out = None
        for (ny, nx, a, b, ang, bend, harm) in self.nuclei:
            dy, dx = y - ny, x - nx
            c, s = np.cos(ang), np.sin(ang)
            xn = dx * c + dy * s
            yn = -dx * s + dy * c - bend * xn * xn / a
            m = 1.0
            th = np.arctan2(yn / b, xn / a) if harm else None
            for k, amp, ph in harm:
                m = m + amp * np.cos(k * th + ph)
            q = np.hypot(xn / a, yn / b) / m
            out = q if out is None else np.minimum(out, q)
        return out

    def thick_at(self, u, edge_px, nu):
        """Relative thickness 0..1: thick over/near the nucleus, thin at the periphery."""
        dn = np.maximum(nu - 1, 0) * self.rn_px * self.p
        t = 0.12 + 0.88 * np.exp(-dn / self.t_len)
        e = np.clip(edge_px * self.p / self.edge_len, 0, 1)
        return t * np.sqrt(e)

    def sample(self, rng, n, weight, y0=None, tries=8):
        """n points in the cell with acceptance probability weight(y, x, u, nu, thick) in [0, 1]."""
        ys, xs = [], []
        got = 0
        y_lo, y_hi, x_lo, x_hi = self.bbox
        for _ in range(tries):
            m = max(64, int((n - got) * 4))
            y = rng.uniform(y_lo, y_hi, m)
            x = rng.uniform(x_lo, x_hi, m)
            u, e = self.u_at(y, x)
            nu = self.nu_at(y, x)
            w = np.where(u < 1, weight(y, x, u, nu, self.thick_at(u, e, nu)), 0)
            k = rng.random(m) < w
            ys.append(y[k])
            xs.append(x[k])
            got += int(k.sum())
            if got >= n:
                break
        y = np.concatenate(ys)[:n]
        x = np.concatenate(xs)[:n]
        return y, x

    def nuc_boundary(self, ang, ny=None, nx=None):
        """Points on the (first) nuclear outline along rays from the nucleus centre at angles ang."""
        ny = self.nuclei[0][0] if ny is None else ny
        nx = self.nuclei[0][1] if nx is None else nx
        ang = np.asarray(ang, float)
        rr = np.linspace(0, 2.0 * self.rn_px, 60)
        Y = ny + np.sin(ang)[:, None] * rr
        X = nx + np.cos(ang)[:, None] * rr
        inside = self.nu_at(Y, X) < 1
        k = np.argmin(inside, axis=1)
        k = np.where(inside.all(1), 59, np.maximum(k - 1, 0))
        R = rr[k]
        return ny + np.sin(ang) * R, nx + np.cos(ang) * R


def _polar_outline(rng, line, aspect):
    """Polar radius table (unit-ish) for a cell line, plus a table of where straight cuts bind."""
    th = _THG
    a, b = 1.0, aspect
    r = a * b / np.sqrt((b * np.cos(th)) ** 2 + (a * np.sin(th)) ** 2)
    amp = {"HeLa": 0.08, "U2OS": 0.10, "epithelial": 0.05, "hiPSC": 0.04}[line]
    for k in range(2, 7):
        r = r * (1 + rng.normal(0, amp / k ** 0.6) * np.cos(k * th + rng.uniform(0, TWO_PI)))
    info = {}
    if line == "U2OS" and rng.random() < 0.55:  # fan / triangular: broad lamella, narrow tail
        info["fan"] = True
        r = r * (1 + 0.35 * np.cos(th)) ** 0.6
        side = np.abs(np.sin(th))
        r = np.where(np.cos(th) > 0, r * (1 + 0.8 * side * np.cos(th)), r)
    nprot = {"HeLa": rng.choice([0, 1, 1, 2]), "U2OS": rng.choice([0, 1, 2, 3]),
             "epithelial": rng.choice([0, 0, 1]), "hiPSC": 0}[line]
    for _ in range(int(nprot)):  # protrusions (concave between them)
        c = rng.uniform(0, TWO_PI)
        w = rng.uniform(0.08, 0.3)
        d = np.angle(np.exp(1j * (th - c)))
        r = r * (1 + rng.uniform(0.25, 0.9) * np.exp(-0.5 * (d / w) ** 2))
    if rng.random() < 0.3:  # ruffled
        info["ruffled"] = True
        for k in rng.integers(9, 24, 3):
            r = r * (1 + rng.uniform(0.004, 0.015) * np.cos(k * th + rng.uniform(0, TWO_PI)))
    ncut = {"HeLa": rng.choice([0, 0, 1, 2]), "U2OS": rng.choice([0, 0, 1]),
            "epithelial": rng.choice([1, 2, 3, 4]), "hiPSC": rng.choice([2, 3, 4, 5])}[line]
    cut = np.zeros_like(th, bool)
    for _ in range(int(ncut)):  # straight edges shared with neighbours
        phi = rng.uniform(0, TWO_PI)
        rp = np.interp(phi, th, r, period=TWO_PI)
        d = rp * rng.uniform(0.72, 0.93)
        cc = np.cos(th - phi)
        lim = np.where(cc > 1e-3, d / np.maximum(cc, 1e-3), np.inf)
        cut |= lim < r
        r = np.minimum(r, lim)
    info["straight_edges"] = int(ncut)
    return np.maximum(r, 0.05), cut, info


def make_geometry(rng, size, diameter):
    g = Geometry()
    g.size = size
    u = rng.random()
    state = "mitotic" if u < 0.035 else ("rounded" if u < 0.065 else "interphase")
    names = list(LINES)
    probs = np.array([LINES[k][0] for k in names])
    line = names[rng.choice(len(names), p=probs / probs.sum())]
    _, (lo, hi), (fa, fb), (qa, qb) = LINES[line]
    L_um = rng.uniform(lo, hi)  # the interphase extent of this cell line sets the pixel size
    target = diameter * rng.uniform(0.86, 1.0)
    L_um = float(np.clip(L_um, 0.012 * target, 1.9 * target))  # keep the pixel size in (0.01, 2) um
    g.p = float(L_um / target)
    g.line, g.state = line, state
    info = {"line": line, "state": state}
    if state == "interphase":
        rtab, cut, oinfo = _polar_outline(rng, line, rng.uniform(qa, qb))
        info.update(oinfo)
        frac = rng.uniform(fa, fb)
    else:
        phys = rng.uniform(15, 25) if state == "mitotic" else rng.uniform(11, 19)
        target = rng.uniform(0.5, 0.77) * diameter
        g.p = float(np.clip(phys / target, 0.012, 1.9))  # a rounded cell keeps its physical size
        rtab = 1 + 0.02 * rng.standard_normal(_NTH)
        rtab = ndi.gaussian_filter1d(rtab, 20, mode="wrap")
        rtab = rtab * (1 + 0.06 * np.cos(2 * _THG + rng.uniform(0, 6.3)))
        cut = np.zeros(_NTH, bool)
        frac = rng.uniform(0.45, 0.7)
    g.alpha = rng.uniform(0, TWO_PI)
    # scale to the target extent (as base.extent measures it, 8 directions)
    bx = rtab * np.cos(_THG + g.alpha)
    by = rtab * np.sin(_THG + g.alpha)
    s = (target - 1) / (extent_pts(by, bx) - 1 + 1e-9)
    g.rtab = rtab * s
    g.cut_tab = cut
    bx, by = bx * s, by * s
    # place the cell: centred with a random offset that keeps it inside the frame (3 px margin)
    m = 4.0
    cy_lo, cy_hi = m - by.min(), size - 1 - m - by.max()
    cx_lo, cx_hi = m - bx.min(), size - 1 - m - bx.max()
    g.cy = rng.uniform(cy_lo, cy_hi) if cy_hi > cy_lo else size / 2
    g.cx = rng.uniform(cx_lo, cx_hi) if cx_hi > cx_lo else size / 2
    g.bbox = (g.cy + by.min(), g.cy + by.max(), g.cx + bx.min(), g.cx + bx.max())
    g.box = (int(max(0, g.bbox[0] - 3)), int(min(size, g.bbox[1] + 4)),
              int(max(0, g.bbox[2] - 3)), int(min(size, g.bbox[3] + 4)))
    area = 0.5 * np.sum(g.rtab ** 2) * (TWO_PI / _NTH)
    g.area_px = area
    # ---- nuclei
    cyc = g.cy + np.mean(by)  # rough centroid
    cxc = g.cx + np.mean(bx)
    binuc = state == "interphase" and rng.random() < 0.04
    nfrac = frac / (2 if binuc else 1)
    q = rng.uniform(0.6, 1.0)
    nl_um = np.sqrt(nfrac * area / (np.pi * q)) * g.p  # semi-major in um
    lo_um = {"HeLa": 5.0, "U2OS": 5.5, "epithelial": 4.0, "hiPSC": 3.0}[line]
    nl_um = np.clip(nl_um, lo_um, 10.5) if state == "interphase" else nl_um
    a = nl_um / g.p
    b = a * q
    harm = []
    if state == "interphase" and rng.random() < 0.35:
        harm = [(int(k), rng.uniform(0.03, 0.09), rng.uniform(0, TWO_PI)) for k in rng.integers(2, 5, 2)]
    bend = rng.uniform(0.15, 0.45) if (state == "interphase" and rng.random() < 0.2) else 0.0
    ang = g.alpha + rng.normal(0, 0.35)
    g.rn_px = float(np.sqrt(a * b))
    off_dir = rng.uniform(0, TWO_PI)
    off = rng.uniform(0.2, 0.8) if state == "interphase" else rng.uniform(0, 0.15)
    g.nuclei = []
    for shrink in range(12):
        if binuc:
            dd = 0.95 * a
            cand = [(cyc + np.sin(ang) * dd, cxc + np.cos(ang) * dd, a, b, ang, bend, harm),
                    (cyc - np.sin(ang) * dd, cxc - np.cos(ang) * dd, a * 0.95, b, ang, -bend, harm)]
        else:
            rmax = np.interp(np.mod(off_dir - g.alpha, TWO_PI), _THG, g.rtab, period=TWO_PI)
            ny = cyc + np.sin(off_dir) * off * (rmax - a)
            nx = cxc + np.cos(off_dir) * off * (rmax - a)
            cand = [(ny, nx, a, b, ang, bend, harm)]
        g.nuclei = cand
        t = np.linspace(0, TWO_PI, 90, endpoint=False)
        ok = True
        for nuc in cand:
            ry, rx = g.nuc_boundary(t, nuc[0], nuc[1])
            uu, _ = g.u_at(ry, rx)
            if uu.max() > (0.9 if state == "interphase" else 0.97):
                ok = False
        if ok:
            break
        off *= 0.6
        if shrink >= 3:
            a, b = a * 0.92, b * 0.92
            g.rn_px = float(np.sqrt(a * b))
    info.update({"binucleate": bool(binuc), "kidney": bool(bend > 0), "nucleus_um": round(float(2 * a * g.p), 1)})
    g.t_len = rng.uniform(3, 8)      # um decay of thickness away from the nucleus
    g.edge_len = rng.uniform(1.5, 5)  # um over which the cell thins to nothing at the edge
    if state != "interphase":
        g.t_len, g.edge_len = 30.0, 1.5
    # MTOC / Golgi side: next to the nucleus toward the bulk of the cytoplasm
    ny, nx = g.nuclei[0][0], g.nuclei[0][1]
    v = np.array([cyc - ny, cxc - nx])
    phi = np.arctan2(v[0], v[1]) if np.hypot(*v) > 0.1 * a else rng.uniform(0, TWO_PI)
    if bend > 0:  # the hilum of a kidney-shaped nucleus
        phi = ang + np.pi / 2
    g.mtoc_phi = float(phi + rng.normal(0, 0.4))
    by_, bx_ = g.nuc_boundary(np.array([g.mtoc_phi]))
    d = rng.uniform(0.5, 2.0) / g.p
    g.mtoc = (float(by_[0] + np.sin(g.mtoc_phi) * d), float(bx_[0] + np.cos(g.mtoc_phi) * d))
    # ---- full-grid fields
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    g.yy, g.xx = yy, xx
    uu, e = g.u_at(yy, xx)
    g.u, g.edge = uu, e
    g.cover = np.clip(e + 0.5, 0, 1)
    g.cell = g.cover > 0.5
    g.nu = g.nu_at(yy, xx)
    g.ncover = np.clip((1 - g.nu) * g.rn_px + 0.5, 0, 1) * g.cover
    g.nucleus = (g.ncover > 0.5) & g.cell
    g.thick = g.thick_at(uu, e, g.nu) * g.cover
    g.cyto = g.cover * (1 - g.ncover)
    g.dn_um = np.maximum(g.nu - 1, 0) * g.rn_px * g.p  # distance from the nuclear outline, um
    g.info = info
    return g


# ----------------------------------------------------------------------------------------------
# nucleoli and DNA (class-independent)
def make_nucleoli(g, rng):
    """Soft nucleolus field 0..1 (irregular bodies 1-4 um inside the nucleus)."""
    size, p = g.size, g.p
    k = int(rng.choice([1, 2, 2, 3, 3, 4, 5]))
    big = rng.random() < 0.3
    field = np.zeros((size, size))
    bodies = []
    for n in g.nuclei:
        ny, nx, a, b, ang = n[:5]
        for _ in range(k):
            dmax = max(1.2, min(4.0, 0.35 * 2 * b * p))
            d_um = rng.uniform(min(1.5, dmax), dmax) if not big else rng.uniform(0.75, 1.0) * dmax
            for _t in range(10):
                r = np.sqrt(rng.random()) * 0.55
                t = rng.uniform(0, TWO_PI)
                y = ny + np.sin(ang) * a * r * np.cos(t) + np.cos(ang) * b * r * np.sin(t)
                x = nx + np.cos(ang) * a * r * np.cos(t) - np.sin(ang) * b * r * np.sin(t)
                if g.nu_at(np.array([y]), np.array([x]))[0] < 0.75 - 0.5 * d_um / (2 * b * p):
                    break
            bodies.append((y, x, d_um / p / 2))
            if big:
                break
    g.nucleoli = bodies
    if not bodies:
        g.nucleoli_field = field
        return field
    by = np.array([bb[0] for bb in bodies])
    bx = np.array([bb[1] for bb in bodies])
    br = np.array([bb[2] for bb in bodies])
    rmax = br.max()
    y0, y1 = int(max(0, by.min() - 2 * rmax - 3)), int(min(size, by.max() + 2 * rmax + 4))
    x0, x1 = int(max(0, bx.min() - 2 * rmax - 3)), int(min(size, bx.max() + 2 * rmax + 4))
    Y, X = g.yy[y0:y1, x0:x1], g.xx[y0:y1, x0:x1]
    F = np.full(Y.shape, -10.0)
    for (y, x, r) in bodies:  # lobed body: a few overlapping blobs
        nl = int(rng.integers(1, 4))
        for j in range(nl):
            oy, ox = rng.normal(0, 0.35 * r, 2) if j else (0.0, 0.0)
            rr = r * (rng.uniform(0.55, 0.8) if j else 1.0)
            F = np.maximum(F, 1 - ((Y - y - oy) ** 2 + (X - x - ox) ** 2) / rr ** 2)
    edge = max(0.25 / (p * rmax), 0.08)
    S = np.clip(F / edge + 0.5, 0, 1)
    field[y0:y1, x0:x1] = S
    field *= g.ncover
    g.nucleoli_field = field
    return field


def make_dna(g, rng):
    """DNA channel: textured nuclei with rim, heterochromatin foci and nucleolar holes."""
    size, p = g.size, g.p
    if g.state == "mitotic":
        return None  # drawn with the chromosomes
    fine = noise(rng, size, rng.uniform(0.3, 1.0) / p, g.box)
    coarse = noise(rng, size, 4.0 / p, g.box)
    amp = rng.uniform(0.2, 0.4)
    base = 1 + amp * 0.5 * coarse + rng.uniform(0.08, 0.2) * fine
    rim = rng.uniform(0.0, 0.35) * np.exp(-(((1 - g.nu) * g.rn_px * p) / 0.6) ** 2)
    nf = int(rng.integers(0, 8) if rng.random() < 0.7 else rng.integers(8, 25))
    fy, fx = g.sample(rng, nf, lambda y, x, u, nu, t: (nu < 0.85).astype(float))
    foci = dots(size, fy, fx, rng.uniform(0.3, 1.0, fy.size) * 2 * np.pi * (0.35 / p) ** 2 * rng.uniform(0.2, 0.6), 0.35 / p)
    hole = rng.uniform(0.45, 0.85) if rng.random() < 0.8 else rng.uniform(0.1, 0.45)
    dna = (np.clip(base, 0.2, None) + rim + foci) * g.ncover * (1 - hole * g.nucleoli_field)
    if rng.random() < 0.06:  # a micronucleus nearby
        t = rng.uniform(0, TWO_PI)
        yb, xb = g.nuc_boundary(np.array([t]))
        d = rng.uniform(1, 3) / p
        my, mx = yb[0] + np.sin(t) * d, xb[0] + np.cos(t) * d
        if g.u_at(np.array([my]), np.array([mx]))[0][0] < 0.85:
            dna = dna + dots(size, [my], [mx], [1.3 * np.pi * (0.8 / p) ** 2], 0.8 / p)
            g.info["micronucleus"] = True
    return dna


def make_chromosomes(g, rng):
    """Mitotic chromosomes: metaphase plate, anaphase groups or a prometaphase mass."""
    size, p = g.size, g.p
    ny, nx = g.cy + rng.normal(0, 0.03) * g.rn_px, g.cx + rng.normal(0, 0.03) * g.rn_px
    stage = rng.choice(["prometaphase", "metaphase", "metaphase", "anaphase"])
    ang = rng.uniform(0, TWO_PI)
    n = 46
    along = np.array([np.cos(ang), np.sin(ang)])  # (x, y) of the plate's long axis
    perp = np.array([-np.sin(ang), np.cos(ang)])
    if stage == "prometaphase":
        r = min(rng.uniform(3, 5) / p, 0.6 * g.rn_px)
        t = rng.uniform(0, TWO_PI, n)
        rr = np.sqrt(rng.random(n)) * r
        cx = nx + rr * np.cos(t)
        cy = ny + rr * np.sin(t)
        poles = None
    else:
        plate = min(rng.uniform(7, 12) / p, 1.1 * g.rn_px)
        s = rng.uniform(-0.5, 0.5, n) * plate
        w = rng.normal(0, 0.6 / p, n)
        if stage == "anaphase":
            sep = min(rng.uniform(2, 5) / p, 0.5 * g.rn_px)
            w = w + np.where(rng.random(n) < 0.5, -sep, sep)
            s = s * 0.8
        cx = nx + s * along[0] + w * perp[0]
        cy = ny + s * along[1] + w * perp[1]
        poles = [(ny + perp[1] * d, nx + perp[0] * d) for d in (-1, 1) for d in [d * rng.uniform(5, 7) / p]]
    # each chromosome: a short rod 1.5-4 um
    L = np.minimum(rng.uniform(1.5, 4, n) / p, 0.3 * g.rn_px)
    t = rng.uniform(0, TWO_PI, n)
    a = np.stack([cy - 0.5 * L * np.sin(t), cx - 0.5 * L * np.cos(t)], 1)
    b = np.stack([cy + 0.5 * L * np.sin(t), cx + 0.5 * L * np.cos(t)], 1)
    chrom = blur(segments(size, a, b, 1.0), 0.35 / p)
    chrom = chrom / max(chrom.max(), 1e-9) * g.cover
    mask = (blur(chrom, 0.3 / p) > 0.18) & g.cell
    if not mask.any():
        mask = (chrom > 0.05 * chrom.max()) & g.cell
    g.nucleus = mask
    g.ncover = np.clip(blur(mask.astype(float), 0.5), 0, 1) * g.cover
    g.chrom = chrom
    g.poles = poles
    g.info["mitotic_stage"] = str(stage)
    g.nucleoli_field = np.zeros((size, size))
    g.nucleoli = []
    # no nuclear envelope: distances to the chromosomes replace the nucleus's normalised radius
    d = ndi.distance_transform_edt(~g.nucleus)
    field = np.where(g.nucleus, 0.5, 1 + d / max(g.rn_px, 1))
    g.nu = field
    g.dn_um = d * p
    g.cyto = g.cover * (1 - g.ncover)

    def nu_at(y, x):
        yi = np.clip(np.asarray(y).astype(int), 0, size - 1)
        xi = np.clip(np.asarray(x).astype(int), 0, size - 1)
        return field[yi, xi]

    g.nu_at = nu_at
    return chrom * rng.uniform(3.0, 5.0) * (1 + 0.15 * noise(rng, size, 0.5 / p, g.box)).clip(0.5)
