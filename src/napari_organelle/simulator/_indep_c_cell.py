"""Cell bodies, nuclei, nucleoli, chromosomes and the DNA channel for the ``indep_c`` renderer.

Everything here is drawn before the protein's class is known, from the same generator, so the cell
body, nucleus and DNA statistics cannot depend on the class (docs/biology.md, "Cells" and "DNA").

Shapes are star-shaped outlines given as a radius table over angle (``Star``); their signed distance
to the edge is the radial distance times the cosine of the angle between the ray and the normal
(exact for circles and straight edges, close near any smooth edge, which is where it matters).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ._indep_c_draw import blobs, blur, draw_segments, field, lookup

NT = 1024
TH = np.linspace(-np.pi, np.pi, NT, endpoint=False)
DTH = 2 * np.pi / NT
TWO_PI = 2 * np.pi

P_MITOTIC = 0.035
P_ROUNDED = 0.03
LINES = ("hela", "spread", "epithelial", "stem")
LINE_P = (0.40, 0.22, 0.23, 0.15)


def wrap(a):
    return (a + np.pi) % TWO_PI - np.pi


def _index(th):
    """Table index and fraction for angles ``th`` in [-pi, pi]."""
    f = (th + np.float32(np.pi)) * np.float32(NT / TWO_PI)
    i0 = f.astype(np.intp)  # f >= 0: truncation is floor
    t = f - i0
    return i0 & (NT - 1), t


def lut(tab, th, dtab=None):
    """Periodic linear interpolation of a table over TH at angles ``th``."""
    i0, t = _index(th)
    if dtab is None:
        dtab = np.roll(tab, -1) - tab
    return tab[i0] + dtab[i0] * t


class Star:
    """A star-shaped outline: radius table ``R`` (pixels) over TH around (oy, ox)."""

    def __init__(self, oy, ox, R):
        self.oy = float(oy)
        self.ox = float(ox)
        R = np.maximum(np.asarray(R, np.float64), 1e-3)
        self.R = R.astype(np.float32)
        dR = (np.roll(R, -1) - np.roll(R, 1)) / (2 * DTH)
        self.dR = dR.astype(np.float32)
        self.cosa = (R / np.sqrt(R * R + dR * dR)).astype(np.float32)
        self._dR = np.roll(self.R, -1) - self.R  # table steps for interpolation
        self._dc = np.roll(self.cosa, -1) - self.cosa

    def sdf_pts(self, y, x):
        dy = np.asarray(y, np.float64) - self.oy
        dx = np.asarray(x, np.float64) - self.ox
        th = np.arctan2(dy, dx)
        return (lut(self.R, th, self._dR) - np.hypot(dy, dx)) * lut(self.cosa, th, self._dc)

    def grid(self, h, w):
        """Signed distance to the edge (px, positive inside) and normalised radius over a canvas."""
        dy = (np.arange(h, dtype=np.float32) - np.float32(self.oy))[:, None]
        dx = (np.arange(w, dtype=np.float32) - np.float32(self.ox))[None, :]
        th = np.arctan2(dy, dx)
        rho = np.hypot(dy, dx)
        i0, t = _index(th)
        Rt = self.R[i0] + self._dR[i0] * t
        ct = self.cosa[i0] + self._dc[i0] * t
        return (Rt - rho) * ct, rho / Rt

    def outline(self, step=8):
        R = self.R[::step].astype(np.float64)
        return self.oy + R * np.sin(TH[::step]), self.ox + R * np.cos(TH[::step])

    def radius(self, th):
        return lut(self.R, np.asarray(th, np.float64), self._dR).astype(np.float64)

    def normal(self, th):
        """Outward unit normal (ny, nx) of the outline at polar angle ``th``."""
        th = np.asarray(th, np.float64)
        R = lut(self.R.astype(np.float64), th)
        dR = lut(self.dR.astype(np.float64), th)
        tx = dR * np.cos(th) - R * np.sin(th)
        ty = dR * np.sin(th) + R * np.cos(th)
        n = np.hypot(tx, ty) + 1e-12
        return -tx / n, ty / n

    def area(self):
        return float(0.5 * np.sum(self.R.astype(np.float64) ** 2) * DTH)

    def moments(self):
        """Centroid (y, x) and long-axis angle of the enclosed area."""
        R = self.R.astype(np.float64)
        A = 0.5 * np.sum(R ** 2) * DTH
        cx = np.sum(R ** 3 * np.cos(TH)) * DTH / 3 / A
        cy = np.sum(R ** 3 * np.sin(TH)) * DTH / 3 / A
        ixx = np.sum(R ** 4 * np.cos(TH) ** 2) * DTH / 4 / A - cx * cx
        iyy = np.sum(R ** 4 * np.sin(TH) ** 2) * DTH / 4 / A - cy * cy
        ixy = np.sum(R ** 4 * np.cos(TH) * np.sin(TH)) * DTH / 4 / A - cx * cy
        return (self.oy + cy, self.ox + cx), 0.5 * np.arctan2(2 * ixy, ixx - iyy)


def extent_pts(y, x):
    """Longest extent (px) of a point set over 8 directions, as base.extent measures a mask."""
    best = 0.0
    for a in np.linspace(0, np.pi, 8, endpoint=False):
        pr = y * np.sin(a) + x * np.cos(a)
        best = max(best, float(pr.max() - pr.min()))
    return best + 1.0


# ---------------------------------------------------------------- outlines (unit scale)

def _bump(c, height, width):
    return height * np.exp(-0.5 * (wrap(TH - c) / width) ** 2)


def _fourier(rng, amp, kmin, kmax, decay):
    r = np.zeros(NT)
    for k in range(kmin, kmax + 1):
        r += amp * k ** -decay * rng.standard_normal() * np.cos(k * TH + rng.uniform(0, TWO_PI))
    return r


def _polygon(rng, nv, rjit, smooth):
    base = rng.uniform(0, TWO_PI)
    th = np.sort(wrap(base + (np.arange(nv) + rng.uniform(-0.3, 0.3, nv)) * TWO_PI / nv))
    r = 1 + rng.uniform(-rjit, rjit, nv)
    tv = np.concatenate([th, th[:1] + TWO_PI])
    rv = np.concatenate([r, r[:1]])
    T = np.where(TH < th[0], TH + TWO_PI, TH)
    j = np.clip(np.searchsorted(tv, T, side="right") - 1, 0, nv - 1)
    t1, t2, r1, r2 = tv[j], tv[j + 1], rv[j], rv[j + 1]
    R = r1 * r2 * np.sin(t2 - t1) / (r1 * np.sin(T - t1) + r2 * np.sin(t2 - T))
    return ndi.gaussian_filter1d(R, smooth / DTH, mode="wrap")


def _to_frame(R, aspect, rot):
    """Stretch a unit outline by ``aspect`` across and rotate it: a new radius table."""
    x = R * np.cos(TH)
    y = R * np.sin(TH) * aspect
    c, s = np.cos(rot), np.sin(rot)
    X = c * x - s * y
    Y = s * x + c * y
    t2 = np.arctan2(Y, X)
    o = np.argsort(t2)
    return np.interp(TH, t2[o], np.hypot(X, Y)[o], period=TWO_PI)


def _frame_angle(a, aspect, rot):
    return float(np.arctan2(np.sin(a) * aspect, np.cos(a)) + rot)


def _interphase_outline(line, rng):
    """Unit outline of an interphase cell: (R, aspect, kind, front angle in the shape frame or None,
    physical longest extent in um, number of neighbour edges)."""
    front = None
    if line == "hela":
        kind = str(rng.choice(["round", "polygonal", "protrusive", "lobed"], p=[0.3, 0.3, 0.25, 0.15]))
        aspect = rng.uniform(0.6, 1.0)
        R = _polygon(rng, int(rng.integers(5, 8)), 0.12, rng.uniform(0.05, 0.12)) if kind == "polygonal" \
            else np.ones(NT)
        R = R + _fourier(rng, rng.uniform(0.03, 0.1), 2, 7, 1.5)
        if kind == "lobed":
            R += rng.uniform(0.06, 0.12) * np.cos(int(rng.integers(3, 6)) * TH + rng.uniform(0, TWO_PI))
        nprot = int(rng.integers(1, 3)) if kind == "protrusive" else int(rng.random() < 0.3)
        for _ in range(nprot):
            R += _bump(rng.choice([0.0, np.pi]) + rng.normal(0, 0.5), rng.uniform(0.3, 0.8),
                       rng.uniform(0.07, 0.18))
        if rng.random() < 0.35:
            R += _fourier(rng, rng.uniform(0.004, 0.012), 12, 30, 0.3)
        L = rng.uniform(20, 40)
        nclip = int(rng.choice([0, 1, 2], p=[0.6, 0.3, 0.1]))
    elif line == "spread":
        kind = str(rng.choice(["fan", "elongated", "triangular", "polygonal"], p=[0.3, 0.35, 0.15, 0.2]))
        if kind == "fan":
            aspect = rng.uniform(0.85, 1.35)
            R = 1 + rng.uniform(0.25, 0.45) * np.cos(TH) + rng.uniform(-0.02, 0.12) * np.cos(2 * TH)
            R += _bump(np.pi, rng.uniform(0.3, 1.0), rng.uniform(0.1, 0.22))
            front = 0.0
        elif kind == "elongated":
            aspect = 1.0
            n = rng.uniform(1.3, 2.2)
            b = rng.uniform(0.28, 0.5)
            R = (np.abs(np.cos(TH)) ** n + np.abs(np.sin(TH) / b) ** n) ** (-1 / n)
            front = float(rng.choice([0.0, np.pi]))
            R += _bump(front, rng.uniform(0.05, 0.2), rng.uniform(0.3, 0.6)) * b
            for end in (0.0, np.pi):
                R += _bump(end + rng.normal(0, 0.05), rng.uniform(0, 0.4), rng.uniform(0.04, 0.1))
        elif kind == "triangular":
            aspect = rng.uniform(0.7, 1.0)
            ph = rng.uniform(0, TWO_PI)
            R = 1 + rng.uniform(0.18, 0.3) * np.cos(3 * TH + ph) + rng.uniform(0, 0.06) * np.cos(6 * TH + 2 * ph)
            verts = wrap(-ph / 3 + np.arange(3) * TWO_PI / 3)
            for v in verts:
                R += _bump(v, rng.uniform(0, 0.3), rng.uniform(0.06, 0.15))
            front = float(verts[int(rng.integers(3))] + np.pi)
        else:
            aspect = rng.uniform(0.4, 0.8)
            R = np.ones(NT) + _fourier(rng, rng.uniform(0.08, 0.15), 2, 6, 1.5)
            for _ in range(int(rng.integers(2, 5))):
                R += _bump(rng.uniform(-np.pi, np.pi), rng.uniform(0.2, 0.6), rng.uniform(0.06, 0.16))
        R = R + _fourier(rng, rng.uniform(0.02, 0.06), 2, 8, 1.5)
        if rng.random() < 0.5:
            R += _fourier(rng, rng.uniform(0.004, 0.012), 12, 30, 0.3)
        L = rng.uniform(40, 80) if kind != "elongated" else rng.uniform(40, 65)
        nclip = int(rng.random() < 0.15)
    elif line == "epithelial":
        kind = "polygonal"
        aspect = rng.uniform(0.7, 1.0)
        R = _polygon(rng, int(rng.integers(5, 9)), 0.1, rng.uniform(0.03, 0.08))
        R = R + _fourier(rng, rng.uniform(0.01, 0.04), 2, 7, 1.5)
        if rng.random() < 0.15:
            R += _fourier(rng, rng.uniform(0.003, 0.01), 12, 30, 0.3)
        L = rng.uniform(15, 30)
        nclip = int(rng.choice([0, 1, 2, 3], p=[0.25, 0.3, 0.3, 0.15]))
    else:  # stem
        kind = "colony"
        aspect = rng.uniform(0.75, 1.0)
        R = _polygon(rng, int(rng.integers(5, 8)), 0.08, rng.uniform(0.05, 0.12))
        R = R + _fourier(rng, rng.uniform(0.01, 0.03), 2, 6, 1.5)
        L = rng.uniform(10, 18)
        nclip = int(rng.choice([0, 1, 2, 3], p=[0.15, 0.3, 0.35, 0.2]))
    return np.maximum(R, 0.15), aspect, kind, front, L, nclip


# ---------------------------------------------------------------- the cell

class Geo:
    """Everything class-independent about one cell (canvas coordinates, pixels unless *_um)."""


def make_cell(rng, size, diameter):
    u = rng.random()
    if u < P_MITOTIC:
        g = _mitotic(rng, diameter)
    elif u < P_MITOTIC + P_ROUNDED:
        g = _rounded(rng, diameter)
    else:
        g = _interphase(rng, diameter)
    _place(g, rng, size)
    _fields(g, rng)
    return g


def _nucleus_table(rng, aspect, rot, length_px, lobed_p=0.1):
    Rn = 1 + _fourier(rng, rng.uniform(0.01, 0.04), 2, 5, 1.5)
    if rng.random() < lobed_p:
        Rn += rng.uniform(0.04, 0.08) * np.cos(int(rng.integers(3, 5)) * TH + rng.uniform(0, TWO_PI))
    R = _to_frame(Rn, aspect, rot)
    return R * (length_px - 1) / (extent_pts(R * np.sin(TH), R * np.cos(TH)) - 1)


def _fit_nucleus(cell, R, cy, cx, oy, ox, margin, rng):
    """Move (toward the cell origin) and shrink a nucleus table until it lies ``margin`` px inside."""
    R = R.copy()
    for it in range(400):
        n = Star(cy, cx, R)
        y, x = n.outline(8)
        if cell.sdf_pts(y, x).min() >= margin:
            return n
        cy = oy + (cy - oy) * 0.8
        cx = ox + (cx - ox) * 0.8
        if it % 5 == 4:
            R *= 0.94
    return Star(oy, ox, R * 0.3)


def _interphase(rng, diameter):
    g = Geo()
    g.state, g.phase = "interphase", None
    g.line = LINES[int(rng.choice(4, p=LINE_P))]
    Ru, aspect, kind, front, L_um, nclip = _interphase_outline(g.line, rng)
    rot = rng.uniform(0, TWO_PI)
    R = _to_frame(Ru, aspect, rot)
    g.front = _frame_angle(front, aspect, rot) if front is not None else float(rng.uniform(-np.pi, np.pi))
    g.has_front = front is not None
    # neighbour edges: straight half-plane cuts
    clips = []
    angs = []
    for _ in range(nclip):
        for _try in range(10):
            a = rng.uniform(-np.pi, np.pi)
            if all(abs(wrap(a - b)) > 1.0 for b in angs) and not (g.has_front and abs(wrap(a - g.front)) < 1.2):
                break
        angs.append(a)
        d = rng.uniform(0.7, 0.93) * float(np.interp(a, TH, R, period=TWO_PI))
        c = np.cos(TH - a)
        R = np.where(c > 1e-3, np.minimum(R, d / np.maximum(c, 1e-3)), R)
        clips.append([a, d])
    f = rng.uniform(0.86, 0.98)
    target = f * diameter
    ext = extent_pts(R * np.sin(TH), R * np.cos(TH)) - 1
    scale = (target - 1) / ext
    R = R * scale
    for c in clips:
        c[1] *= scale
    g.p = float(L_um / target)
    g.kind = kind
    cell = Star(0.0, 0.0, R)
    g.stars = [cell]
    g.bridge = None
    g.clips = [(float(np.sin(a)), float(np.cos(a)), float(d)) for a, d in clips]  # ny*y + nx*x <= d
    (cy, cx), g.long_axis = cell.moments()
    g.centroid = (cy, cx)
    # nucleus: size by cell line, off-centre away from the front / bulk
    p = g.p
    if g.line == "hela":
        Ln, an, margin, hmax = rng.uniform(11, 18), rng.uniform(0.65, 1.0), 1.0, rng.uniform(4, 7)
    elif g.line == "spread":
        Ln, an, margin, hmax = rng.uniform(14, 22), rng.uniform(0.55, 0.9), 1.2, rng.uniform(3, 5)
        if kind == "elongated":
            an = rng.uniform(0.45, 0.7)
    elif g.line == "epithelial":
        Ln, an, margin, hmax = rng.uniform(9, 15), rng.uniform(0.7, 1.0), 0.7, rng.uniform(5, 8)
    else:
        Ln, an, margin, hmax = L_um * rng.uniform(0.62, 0.85), rng.uniform(0.75, 1.0), 0.35, rng.uniform(6, 9)
    Ln = min(Ln, 0.8 * L_um)
    g.h_max = hmax
    if kind == "elongated":
        nrot = g.long_axis + rng.normal(0, 0.08)
    elif g.line == "spread" or rng.random() < 0.5:
        nrot = g.long_axis + rng.normal(0, 0.3)
    else:
        nrot = rng.uniform(0, TWO_PI)
    binuc = rng.random() < 0.03
    Rn = _nucleus_table(rng, an, nrot, (Ln * (0.72 if binuc else 1.0)) / p)
    away = g.front + np.pi if (g.has_front or rng.random() < 0.6) else rng.uniform(-np.pi, np.pi)
    off = rng.uniform(0.05, 0.5) * max(0.0, target / 2 - Ln / p / 2)
    ny, nx = cy + off * np.sin(away), cx + off * np.cos(away)
    nuclei = []
    if binuc:
        minor = an * Ln * 0.72 / p
        sep = 0.5 * minor + rng.uniform(0.2, 1.0) / p
        py, px = np.sin(nrot + np.pi / 2), np.cos(nrot + np.pi / 2)
        for sgn in (-1, 1):
            nuclei.append(_fit_nucleus(cell, Rn, ny + sgn * sep * py, nx + sgn * sep * px, 0.0, 0.0,
                                       margin / p, rng))
    else:
        nuclei.append(_fit_nucleus(cell, Rn, ny, nx, 0.0, 0.0, margin / p, rng))
    n0 = nuclei[0]
    # bulk of the cytoplasm: centrosome / Golgi side
    vy, vx = cy - n0.oy, cx - n0.ox
    if np.hypot(vy, vx) > 0.15 * np.sqrt(n0.area() / np.pi):
        g.bulk = float(np.arctan2(vy, vx))
    else:
        g.bulk = g.front if g.has_front else float(rng.uniform(-np.pi, np.pi))
    if not binuc and rng.random() < 0.15:  # kidney shape, indented on the centrosome side
        th_rel = g.bulk
        R2 = n0.R.astype(np.float64) * (1 - _bump(th_rel, rng.uniform(0.12, 0.28), rng.uniform(0.25, 0.45)))
        n0 = Star(n0.oy, n0.ox, R2)
        nuclei[0] = n0
    g.nuclei = nuclei
    g.micro = []
    if rng.random() < 0.03:
        r = rng.uniform(0.5, 1.5) / p
        for _ in range(10):
            a = rng.uniform(-np.pi, np.pi)
            dd = float(n0.radius(a)) + r + rng.uniform(0.5, 3.0) / p
            my, mx = n0.oy + dd * np.sin(a), n0.ox + dd * np.cos(a)
            if cell.sdf_pts(np.array([my]), np.array([mx]))[0] > r + 0.3 / p:
                g.micro.append((my, mx, r))
                break
    # centrosome next to the nucleus on the bulk side
    a = g.bulk + rng.normal(0, 0.4)
    for _ in range(8):
        dd = float(n0.radius(a)) + rng.uniform(0.4, 1.5) / p
        sy, sx = n0.oy + dd * np.sin(a), n0.ox + dd * np.cos(a)
        if cell.sdf_pts(np.array([sy]), np.array([sx]))[0] > 0.5 / p:
            break
        a = g.bulk + rng.normal(0, 0.8)
    else:
        sy, sx = n0.oy + 1.02 * float(n0.radius(a)) * np.sin(a), n0.ox + 1.02 * float(n0.radius(a)) * np.cos(a)
    g.centrosomes = [(sy, sx)]
    g.golgi_dir = float(a)
    # filopodia (part of the cell mask for every class)
    fp = {"hela": 0.4, "spread": 0.45, "epithelial": 0.2, "stem": 0.1}[g.line]
    g.filo = _filopodia(rng, g, cell, diameter) if rng.random() < fp else None
    g.nucleoli_spec = [_nucleoli_spec(rng, n, p) for n in nuclei]
    g.chrom_segs = None
    return g


def _filopodia(rng, g, cell, diameter):
    n = int(rng.integers(3, 26))
    if g.has_front and rng.random() < 0.7:
        a = g.front + rng.normal(0, 0.7, n)
    else:
        a = rng.uniform(-np.pi, np.pi, n)
    R = cell.radius(a)
    ny, nx = cell.normal(a)
    by = R * np.sin(a) - ny * 0.3 / g.p
    bx = R * np.cos(a) - nx * 0.3 / g.p
    tw = rng.normal(0, 0.3, n)
    dy = ny * np.cos(tw) + nx * np.sin(tw)
    dx = nx * np.cos(tw) - ny * np.sin(tw)
    L = rng.uniform(2, 10, n) / g.p
    oy, ox = cell.outline(4)
    for _ in range(30):
        ty, tx = by + dy * L, bx + dx * L
        if extent_pts(np.concatenate([oy, ty]), np.concatenate([ox, tx])) <= 1.07 * diameter:
            break
        L *= 0.8
    keep = L * g.p > 1.0
    if not keep.any():
        return None
    return np.stack([by, bx, by + dy * L, bx + dx * L], 1)[keep]


def _nucleoli_spec(rng, nuc, p):
    n = int(rng.choice([1, 2, 3, 4, 5], p=[0.15, 0.25, 0.25, 0.2, 0.15]))
    A = nuc.area()
    frac = rng.uniform(0.05, 0.15)
    w = rng.dirichlet(np.full(n, 1.5))
    d = np.clip(2 * np.sqrt(frac * A * w / np.pi), 1.0 / p, 5.0 / p)
    out = []
    for i in range(n):
        for _ in range(10):
            a = rng.uniform(-np.pi, np.pi)
            s = np.sqrt(rng.random()) * 0.6
            rr = s * float(nuc.radius(a)) - 0.2 * d[i]
            cy, cx = nuc.oy + rr * np.sin(a), nuc.ox + rr * np.cos(a)
            if all(np.hypot(cy - o["y"], cx - o["x"]) > 0.55 * (d[i] + o["d"]) for o in out):
                break
        m = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.3, 0.2, 0.15]))
        la = rng.uniform(-np.pi, np.pi, m)
        lr = rng.uniform(0.15, 0.45, m) * d[i]
        lr[0] = 0.0
        sig = (d[i] / 2 / 1.177) * rng.uniform(0.45, 0.85, m) / m ** 0.25
        out.append({"y": cy, "x": cx, "d": float(d[i]), "ly": cy + lr * np.sin(la), "lx": cx + lr * np.cos(la),
                    "ls": sig})
    return out


def _round_cell(rng, radius_px, blebs):
    R = radius_px * (1 + _fourier(rng, rng.uniform(0.005, 0.02), 2, 6, 1.2))
    R = _to_frame(R, rng.uniform(0.9, 1.0), rng.uniform(0, TWO_PI))
    if blebs:
        for _ in range(int(rng.integers(2, 8))):
            R += radius_px * _bump(rng.uniform(-np.pi, np.pi), rng.uniform(0.04, 0.1), rng.uniform(0.05, 0.12))
    return R


def _rounded(rng, diameter):
    g = Geo()
    g.state, g.phase, g.line, g.kind = "rounded", None, "rounded", "rounded"
    D = rng.uniform(10, 18)
    frac = rng.uniform(0.47, 0.7)
    ext = frac * diameter
    g.p = float(D / ext)
    R = _round_cell(rng, ext / 2, rng.random() < 0.35)
    R *= (ext - 1) / (extent_pts(R * np.sin(TH), R * np.cos(TH)) - 1)
    cell = Star(0.0, 0.0, R)
    g.stars, g.bridge, g.clips, g.filo, g.micro = [cell], None, [], None, []
    g.centroid, g.long_axis = cell.moments()
    g.front, g.has_front, g.h_max = float(rng.uniform(-np.pi, np.pi)), False, rng.uniform(8, 14)
    Rn = _nucleus_table(rng, rng.uniform(0.8, 1.0), rng.uniform(0, TWO_PI), rng.uniform(0.6, 0.82) * ext, 0.05)
    a = rng.uniform(-np.pi, np.pi)
    off = rng.uniform(0, 0.12) * ext
    n0 = _fit_nucleus(cell, Rn, off * np.sin(a), off * np.cos(a), 0.0, 0.0, 0.3 / g.p, rng)
    g.nuclei = [n0]
    g.bulk = float(a + np.pi)
    dd = float(n0.radius(g.bulk)) + 0.3 / g.p
    g.centrosomes = [(n0.oy + dd * np.sin(g.bulk), n0.ox + dd * np.cos(g.bulk))]
    g.golgi_dir = g.bulk
    g.nucleoli_spec = [_nucleoli_spec(rng, n0, g.p)]
    g.chrom_segs = None
    return g


def _chromosomes(rng, phase, cy, cx, axis, p, n, rc):
    """Chromosome arm segments (um geometry converted to px) for a mitotic phase, kept within
    0.75 of the cell radius ``rc`` (px) of the centre."""
    ua = np.array([np.sin(axis), np.cos(axis)])  # spindle axis (y, x)
    up = np.array([np.cos(axis), -np.sin(axis)])  # plate direction
    ln = rng.uniform(1.2, 4.0, n) / p
    if phase == "prometaphase":
        k = int(rng.integers(1, 4))
        sub = rng.normal(0, 1.5, (k, 2)) / p
        rm = rng.uniform(2.5, 4.5) / p
        c = sub[rng.integers(0, k, n)] + rng.normal(0, rm / 2, (n, 2))
        ang = rng.uniform(-np.pi, np.pi, n)
    elif phase == "metaphase":
        if rng.random() < 0.2:  # plate seen end-on: a rosette
            a = rng.uniform(-np.pi, np.pi, n)
            r = rng.uniform(1.5, 4.5, n) / p
            c = np.stack([r * np.sin(a), r * np.cos(a)], 1)
            ang = a + rng.normal(0, 0.3, n)
        else:
            half = rng.uniform(4, 7) / p
            t = rng.uniform(-1, 1, n) * half * np.sqrt(rng.uniform(0.3, 1, n))
            c = t[:, None] * up + rng.normal(0, 0.5 / p, n)[:, None] * ua
            ang = axis + rng.normal(0, 0.45, n)
    else:  # anaphase: two groups moving to the poles, arms trailing to the middle
        sep = rng.uniform(3.5, 7.5) / p
        ln = ln * 0.7
        half = rng.uniform(3.5, 6) / p
        side = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
        t = rng.uniform(-1, 1, n) * half
        bow = rng.uniform(0, 0.25) * (t / half) ** 2 * sep
        c = t[:, None] * up + (side * (sep - bow) + rng.normal(0, 0.3 / p, n))[:, None] * ua
        ang = axis + rng.normal(0, 0.3, n)
        c = c - side[:, None] * ua * (ln / 2)[:, None]  # kinetochore toward the pole
    ext = float(np.max(np.hypot(c[:, 0], c[:, 1]) + ln / 2))
    if ext > 0.75 * rc:
        k = 0.75 * rc / ext
        c = c * k
        ln = ln * np.sqrt(k)
    c = c + np.array([cy, cx])
    kink = rng.normal(0, 0.5, n)
    d1 = np.stack([np.sin(ang), np.cos(ang)], 1)
    d2 = np.stack([np.sin(ang + kink), np.cos(ang + kink)], 1)
    a = c - d1 * (ln / 2)[:, None]
    b = c + d2 * (ln / 2)[:, None]
    return np.concatenate([np.stack([a[:, 0], a[:, 1], c[:, 0], c[:, 1]], 1),
                           np.stack([c[:, 0], c[:, 1], b[:, 0], b[:, 1]], 1)])


def _mitotic(rng, diameter):
    g = Geo()
    g.state, g.line = "mitotic", "mitotic"
    g.phase = str(rng.choice(["prometaphase", "metaphase", "anaphase", "telophase"], p=[0.25, 0.4, 0.15, 0.2]))
    g.kind = g.phase
    g.clips, g.filo, g.micro, g.nucleoli_spec = [], None, [], []
    axis = rng.uniform(-np.pi, np.pi)
    g.axis = axis
    g.front, g.has_front, g.h_max = axis, False, rng.uniform(10, 16)
    nchr = int(rng.integers(40, 81))
    if g.phase != "telophase":
        D = rng.uniform(15, 25)
        ext = rng.uniform(0.5, 0.76) * diameter
        g.p = float(D / ext)
        R = _round_cell(rng, ext / 2, rng.random() < 0.2)
        R *= (ext - 1) / (extent_pts(R * np.sin(TH), R * np.cos(TH)) - 1)
        cell = Star(0.0, 0.0, R)
        g.stars, g.bridge = [cell], None
        g.centroid, g.long_axis = cell.moments()
        off = rng.normal(0, 0.04, 2) * ext
        g.plate = (float(off[0]), float(off[1]))
        g.chrom_segs = _chromosomes(rng, g.phase, off[0], off[1], axis, g.p, nchr, ext / 2 - np.hypot(*off))
        half = {"prometaphase": (3, 5.5), "metaphase": (4.5, 7), "anaphase": (6, 8.5)}[g.phase]
        hl = min(rng.uniform(*half) / g.p, 0.8 * ext / 2)
        ua = np.array([np.sin(axis), np.cos(axis)])
        g.centrosomes = [tuple(off + s * hl * ua) for s in (-1, 1)]
    else:
        Dd = rng.uniform(10, 15)
        sep_um = Dd * rng.uniform(0.95, 1.25)
        ext_um = sep_um + Dd
        ext = rng.uniform(0.72, 0.98) * diameter
        g.p = p = float(ext_um / ext)
        ua = np.array([np.sin(axis), np.cos(axis)])
        stars = []
        segs = []
        cents = []
        for s in (-1, 1):
            cc = s * sep_um / 2 / p * ua
            R = _round_cell(rng, Dd / 2 / p, rng.random() < 0.2)
            stars.append(Star(cc[0], cc[1], R))
            mc = cc + s * ua * rng.uniform(0.0, 0.15) * Dd / p
            sg = _chromosomes(rng, "prometaphase", mc[0], mc[1], axis, p * 1.9, nchr // 2, Dd / 2 / p * 0.6)
            segs.append(sg)
            cents.append(tuple(mc + s * ua * rng.uniform(1.5, 3) / p))
        g.stars = stars
        g.bridge = (stars[0].oy, stars[0].ox, stars[1].oy, stars[1].ox, rng.uniform(0.5, 1.0) / p)
        g.chrom_segs = np.concatenate(segs)
        g.centroid, g.long_axis = (0.0, 0.0), axis
        g.plate = (0.0, 0.0)
        g.centrosomes = cents
    g.bulk = axis
    g.golgi_dir = axis
    g.nuclei = []
    return g


# ---------------------------------------------------------------- canvas and fields

def _place(g, rng, size):
    """Choose the canvas (the cell's bounding box plus a margin) and its place in the frame."""
    ys, xs = [], []
    for s in g.stars:
        y, x = s.outline(2)
        ys.append(y)
        xs.append(x)
    if g.filo is not None:
        ys.append(g.filo[:, 2])
        xs.append(g.filo[:, 3])
    ys = np.concatenate(ys)
    xs = np.concatenate(xs)
    pad = 3
    y0, x0 = np.floor(ys.min()) - pad, np.floor(xs.min()) - pad
    g.h = int(np.ceil(ys.max()) - y0 + pad + 1)
    g.w = int(np.ceil(xs.max()) - x0 + pad + 1)
    g.h, g.w = min(g.h, size), min(g.w, size)
    sy, sx = -y0, -x0
    _shift(g, sy, sx)
    fy, fx = (size - g.h) / 2, (size - g.w) / 2
    g.fy = int(np.clip(round(fy + rng.uniform(-0.25, 0.25) * fy), 0, size - g.h))
    g.fx = int(np.clip(round(fx + rng.uniform(-0.25, 0.25) * fx), 0, size - g.w))


def _shift(g, sy, sx):
    for s in g.stars + g.nuclei:
        s.oy += sy
        s.ox += sx
    g.centroid = (g.centroid[0] + sy, g.centroid[1] + sx)
    g.centrosomes = [(a + sy, b + sx) for a, b in g.centrosomes]
    g.micro = [(a + sy, b + sx, r) for a, b, r in g.micro]
    g.clips = [(ny, nx, d + ny * sy + nx * sx) for ny, nx, d in g.clips]
    if g.filo is not None:
        g.filo = g.filo + np.array([sy, sx, sy, sx])
    for spec in g.nucleoli_spec:
        for o in spec:
            o["y"] += sy
            o["x"] += sx
            o["ly"] = o["ly"] + sy
            o["lx"] = o["lx"] + sx
    if g.chrom_segs is not None:
        g.chrom_segs = g.chrom_segs + np.array([sy, sx, sy, sx])
        g.plate = (g.plate[0] + sy, g.plate[1] + sx)
    if g.bridge is not None:
        a, b, c, d, w = g.bridge
        g.bridge = (a + sy, b + sx, c + sy, d + sx, w)


def _capsule_sdf(h, w, ay, ax, by, bx, r):
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    dy, dx = by - ay, bx - ax
    L2 = dy * dy + dx * dx
    t = np.clip(((yy - ay) * dy + (xx - ax) * dx) / L2, 0, 1)
    return r - np.hypot(yy - ay - t * dy, xx - ax - t * dx)


def _fields(g, rng):
    h, w, p = g.h, g.w, g.p
    # cell
    sdf = None
    for s in g.stars:
        d, s_c = s.grid(h, w)
        sdf = d if sdf is None else np.maximum(sdf, d)
    if g.bridge is not None:
        sdf = np.maximum(sdf, _capsule_sdf(h, w, *g.bridge))
    g.cell_s = s_c if len(g.stars) == 1 else None
    aa = np.clip(sdf + 0.5, 0, 1)
    if g.filo is not None:
        lay = np.zeros((h, w), np.float32)
        f = g.filo
        draw_segments(lay, f[:, 0], f[:, 1], f[:, 2], f[:, 3], p, p, spacing=0.5)
        fm = lay > 0.2
        g.filo_layer = np.clip(lay, 0, 1)
        aa = np.maximum(aa, g.filo_layer)
        sdf = np.where(fm & (sdf <= 0), np.float32(0.3), sdf)
    g.d_edge = sdf.astype(np.float32, copy=False)
    g.cell = sdf > 0
    g.cell_aa = aa.astype(np.float32, copy=False)
    g.d_um = np.maximum(g.d_edge, 0) * np.float32(p)
    # nuclei
    if g.state == "mitotic":
        _chromatin(g)
    else:
        nsdf = None
        dome = np.zeros((h, w), np.float32)
        for n in g.nuclei:
            d, s = n.grid(h, w)
            nsdf = d if nsdf is None else np.maximum(nsdf, d)
            dome = np.maximum(dome, np.where(s < 1, 1 - 0.3 * s * s, 0))
        for my, mx, r in g.micro:
            d = _capsule_sdf(h, w, my, mx, my + 1e-3, mx, r)
            nsdf = np.maximum(nsdf, d)
        g.dn = -nsdf
        g.nuc = (nsdf > 0) & g.cell
        g.nuc_aa = np.clip(nsdf + 0.5, 0, 1) * g.cell_aa
        g.dome = dome
    # thickness (um) and relative thickness
    if g.state == "interphase":
        he = rng.uniform(0.2, 0.5)
        mu = rng.uniform(2, 6) * (1.5 if g.line in ("epithelial", "stem") else 1.0)
        lam = rng.uniform(0.8, 2.5)
        core = he + (0.7 * g.h_max - he) * np.exp(-np.maximum(g.dn, 0) * np.float32(p / mu))
        hh = np.maximum(g.dome * np.float32(g.h_max), core)
        hh = he + (hh - he) * (1 - np.exp(-g.d_um / np.float32(lam)))
    else:
        if g.cell_s is not None:
            hh = g.h_max * np.sqrt(np.clip(1 - g.cell_s ** 2, 0, 1)) ** 0.8 + 0.3
        else:
            hh = g.h_max * (1 - np.exp(-g.d_um / 3.0)) + 0.3
    g.h_um = (hh * g.cell_aa).astype(np.float32)
    g.h_rel = (g.h_um / np.float32(g.h_max)).astype(np.float32)
    # nucleoli
    g.nl = np.zeros((h, w), np.float32)
    g.nucleoli = []
    for spec in g.nucleoli_spec:
        for o in spec:
            r = int(np.ceil(o["d"] * 1.2 + 3))
            y0, x0 = int(o["y"]) - r, int(o["x"]) - r
            sy = slice(max(0, y0), min(h, y0 + 2 * r + 1))
            sx = slice(max(0, x0), min(w, x0 + 2 * r + 1))
            yy = np.arange(sy.start, sy.stop, dtype=np.float32)[:, None]
            xx = np.arange(sx.start, sx.stop, dtype=np.float32)[None, :]
            F = np.zeros((yy.size, xx.size), np.float32)
            for ly, lx, ls in zip(o["ly"], o["lx"], o["ls"]):
                F += np.exp(-((yy - ly) ** 2 + (xx - lx) ** 2) / np.float32(2 * ls * ls))
            body = np.clip((F - 0.45) / 0.1, 0, 1)
            body = body * body * (3 - 2 * body)
            g.nl[sy, sx] = np.maximum(g.nl[sy, sx], body * g.nuc_aa[sy, sx])
            g.nucleoli.append(o)
    # bounding box of the nuclear region
    ys, xs = np.nonzero(g.nuc)
    if ys.size == 0:  # cannot happen with the fitting above; keep a valid box anyway
        ys, xs = np.array([h // 2]), np.array([w // 2])
    g.nbox = (slice(max(0, ys.min() - 3), min(h, ys.max() + 4)), slice(max(0, xs.min() - 3), min(w, xs.max() + 4)))


def _chromatin(g):
    """Mitotic chromosomes: density, mask (the 'nucleus' of a mitotic cell) and distances."""
    h, w, p = g.h, g.w, g.p
    c = np.zeros((h, w), np.float32)
    s = g.chrom_segs
    draw_segments(c, s[:, 0], s[:, 1], s[:, 2], s[:, 3], 1.0, p, spacing=0.7)
    c = blur(c, 0.28 / p)
    c *= g.cell_aa
    m = blur(c, 0.25 / p)
    mx = float(m.max())
    thr = 0.25 * float(np.percentile(m[m > 0.1 * mx], 90)) if mx > 0 else 0.0
    nuc = (m > thr) & g.cell
    if not nuc.any():
        nuc = c >= c.max()
    g.nuc = nuc
    g.chrom = (c / max(float(c[nuc].mean()), 1e-9)).astype(np.float32)
    g.nuc_aa = np.clip(m / max(thr, 1e-9) - 0.5, 0, 1).astype(np.float32) * g.cell_aa
    g.dn = (ndi.distance_transform_edt(~nuc) - ndi.distance_transform_edt(nuc)).astype(np.float32)
    g.dome = np.zeros((h, w), np.float32)


# ---------------------------------------------------------------- DNA

def make_dna(g, rng):
    """The DNA stain: chromatin texture, heterochromatin foci, rim and nucleolar holes (interphase),
    or condensed chromosomes 2-4x brighter per area (mitosis)."""
    h, w, p = g.h, g.w, g.p
    gain = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    if g.state == "mitotic":
        return (g.chrom * np.float32(0.45 * gain * rng.uniform(2, 4))).astype(np.float32), gain
    sy, sx = g.nbox
    bh, bw = sy.stop - sy.start, sx.stop - sx.start
    aa = g.nuc_aa[sy, sx]
    dn = g.dn[sy, sx]
    base = 0.7 + 0.3 * g.dome[sy, sx]
    fine = field((bh, bw), rng.uniform(0.12, 0.35) / p, rng)
    low = field((bh, bw), rng.uniform(1.5, 3.5) / p, rng)
    tex = 1 + rng.uniform(0.1, 0.3) * fine + rng.uniform(0.1, 0.25) * low
    dna = base * np.maximum(tex, 0.2)
    # rim and nucleolar holes
    dna += rng.uniform(0, 0.4) * np.exp(np.minimum(dn, 0) * np.float32(p / rng.uniform(0.25, 0.6)))
    nl = g.nl[sy, sx]
    if nl.any():
        ring = np.maximum(blur(nl, 0.4 / p) - nl, 0)
        dna = dna * (1 - rng.uniform(0.1, 0.7) * nl) + rng.uniform(0, 0.6) * ring
    dna = (dna * aa).astype(np.float32)
    # heterochromatin foci (more in a minority of cells)
    nf = int(rng.poisson(rng.uniform(5, 20) if rng.random() < 0.25 else rng.uniform(0, 4)))
    if nf:
        fy, fx = _points_in(g.nuc[sy, sx] & (nl < 0.2), nf, rng)
        sg = rng.uniform(0.3, 0.5, fy.size) / p / 2.355 * 2
        blobs(dna, fy, fx, sg, sg, 0.0, rng.uniform(0.4, 1.1, fy.size) * aa[np.rint(fy).astype(int),
                                                                          np.rint(fx).astype(int)])
    inside = g.nuc[sy, sx]
    mean = float(dna[inside].mean()) if inside.any() else 1.0
    k = 0.45 * gain * (rng.uniform(1.2, 1.6) if g.state == "rounded" else 1.0) / max(mean, 1e-9)
    out = np.zeros((h, w), np.float32)
    out[sy, sx] = dna * np.float32(k)
    for my, mx, r in g.micro:
        m = _capsule_sdf(h, w, my, mx, my + 1e-3, mx, r)
        out = np.maximum(out, np.clip(m + 0.5, 0, 1) * np.float32(0.45 * gain * rng.uniform(1.0, 1.8)))
    if rng.random() < 0.05:  # debris: small bright DNA spots outside the nucleus
        k = int(rng.integers(1, 4))
        y, x = rng.uniform(3, h - 3, k), rng.uniform(3, w - 3, k)
        sg = rng.uniform(0.2, 0.6, k) / p
        blobs(out, y, x, sg, sg * rng.uniform(0.6, 1, k), rng.uniform(0, np.pi, k),
              0.45 * gain * rng.uniform(1.5, 3, k) * ~lookup(g.nuc, y, x))
    return out, gain


def _points_in(mask, n, rng):
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return np.zeros(0), np.zeros(0)
    k = rng.integers(0, ys.size, n)
    return ys[k] + rng.uniform(-0.5, 0.5, n), xs[k] + rng.uniform(-0.5, 0.5, n)


def cell_lookup(g, y, x):
    """Distance to the cell edge (px) at points; -1 outside the canvas."""
    return lookup(g.d_edge, y, x)
