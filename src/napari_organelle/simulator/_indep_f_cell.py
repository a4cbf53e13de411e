"""indep_f: drawing primitives, the cell body, nucleus, thickness and DNA channel (private).

Everything is vectorised numpy/scipy; all randomness comes from the generator passed in.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

TAU = 2 * np.pi
_NA = 360  # angular samples of a polar outline


# ----------------------------------------------------------------------------- primitives
def noise(rng, shape, scale_px):
    """Smooth random field, ~unit std, correlation length ~scale_px (cheap for large scales)."""
    h, w = shape
    if scale_px < 3:
        a = ndi.gaussian_filter(rng.standard_normal(shape), max(0.5, 0.5 * scale_px))
    else:
        n = int(max(h, w) / scale_px) + 3
        small = ndi.gaussian_filter(rng.standard_normal((n, n)), 0.7, mode="wrap")
        a = ndi.zoom(small, max(h, w) / (n - 1), order=1)[:h, :w]
    s = a.std()
    return a / s if s > 0 else a


def splat(img, y, x, w):
    """Bilinear add of point weights w at sub-pixel positions (y, x) into img (in place)."""
    H, W = img.shape
    y = np.asarray(y, float)
    x = np.asarray(x, float)
    w = np.broadcast_to(np.asarray(w, float), y.shape)
    y0 = np.floor(y).astype(np.int64)
    x0 = np.floor(x).astype(np.int64)
    ok = (y0 >= 0) & (y0 < H - 1) & (x0 >= 0) & (x0 < W - 1)
    if not ok.any():
        return img
    y0, x0, fy, fx, w = y0[ok], x0[ok], (y - y0)[ok], (x - x0)[ok], w[ok]
    i = y0 * W + x0
    idx = np.concatenate([i, i + 1, i + W, i + W + 1])
    wt = np.concatenate([w * (1 - fy) * (1 - fx), w * (1 - fy) * fx, w * fy * (1 - fx), w * fy * fx])
    img += np.bincount(idx, wt, minlength=H * W).reshape(H, W)
    return img


def segments(img, y0, x0, y1, x1, inten, width):
    """Anti-aliased line segments; inten = density per unit area, width in px (sub-pixel ok).

    A segment narrower than a pixel gets brightness per unit length inten * width.
    """
    y0, x0, y1, x1 = (np.asarray(a, float).ravel() for a in (y0, x0, y1, x1))
    if y0.size == 0:
        return img
    inten = np.broadcast_to(np.asarray(inten, float), y0.shape).ravel()
    width = np.broadcast_to(np.asarray(width, float), y0.shape).ravel()
    dy, dx = y1 - y0, x1 - x0
    L = np.hypot(dy, dx)
    sp = np.where(width > 3, 0.95, 0.7)  # sample spacing (px); wide ribbons need fewer samples
    n = np.maximum(1, np.ceil(L / sp)).astype(np.int64)
    m = np.maximum(1, np.ceil(width / np.where(width > 3, 0.95, 0.6))).astype(np.int64)
    tot = n * m
    seg = np.repeat(np.arange(L.size), tot)
    start = np.cumsum(tot) - tot
    k = np.arange(int(tot.sum())) - start[seg]
    ms, ns = m[seg], n[seg]
    a, b = k // ms, k % ms
    t = (a + 0.5) / ns
    o = ((b + 0.5) / ms - 0.5) * width[seg] * (ms > 1)
    Ls = np.maximum(L, 1e-9)
    ux, uy = (dx / Ls)[seg], (dy / Ls)[seg]
    py = y0[seg] + t * dy[seg] + o * ux
    px = x0[seg] + t * dx[seg] - o * uy
    wt = inten[seg] * (L / n)[seg] * width[seg] / ms
    return splat(img, py, px, wt)


def paths(img, Y, X, ok, inten, width):
    """Draw polylines (n, L) arrays; ok marks valid points; inten/width per path or per point."""
    v = ok[:, 1:] & ok[:, :-1]
    inten = np.broadcast_to(np.asarray(inten, float).reshape(-1, 1) if np.ndim(inten) == 1 else inten,
                            Y.shape)[:, :-1]
    width = np.broadcast_to(np.asarray(width, float).reshape(-1, 1) if np.ndim(width) == 1 else width,
                            Y.shape)[:, :-1]
    return segments(img, Y[:, :-1][v], X[:, :-1][v], Y[:, 1:][v], X[:, 1:][v], inten[v], width[v])


def dots(img, y, x, r, inten, ring=None):
    """Discs (radius r px, density inten); ring: per-dot fraction of the centre left dark (0..1)."""
    y, x, r = (np.asarray(a, float).ravel() for a in (y, x, r))
    inten = np.broadcast_to(np.asarray(inten, float), y.shape).ravel()
    ring = np.zeros_like(r) if ring is None else np.broadcast_to(np.asarray(ring, float), r.shape).ravel()
    small = r < 1.0
    if small.any():
        splat(img, y[small], x[small], inten[small] * np.pi * r[small] ** 2 * (1 - 0.5 * ring[small]))
    big = ~small
    if not big.any():
        return img
    y, x, r, inten, ring = y[big], x[big], r[big], inten[big], ring[big]
    H, W = img.shape
    R = np.ceil(r).astype(int) + 1
    bins = np.unique(np.ceil(np.log(R) / np.log(1.4)).astype(int))
    kb = np.ceil(np.log(R) / np.log(1.4)).astype(int)
    for b in bins:
        sel = kb == b
        Rb = int(R[sel].max())
        off = np.arange(-Rb, Rb + 1)
        cy, cx = np.round(y[sel]).astype(int), np.round(x[sel]).astype(int)
        py = cy[:, None, None] + off[None, :, None]
        px = cx[:, None, None] + off[None, None, :]
        d = np.hypot(py - y[sel, None, None], px - x[sel, None, None])
        rr = r[sel, None, None]
        v = np.clip(rr + 0.5 - d, 0, 1)
        inner = rr * (1 - 0.55 * ring[sel, None, None])
        v = v * (1 - 0.85 * np.clip(inner + 0.5 - d, 0, 1) * (ring[sel, None, None] > 0))
        v = v * inten[sel, None, None]
        py, px = np.broadcast_arrays(py, px)
        ok = (py >= 0) & (py < H) & (px >= 0) & (px < W) & (v > 0)
        img += np.bincount((py[ok] * W + px[ok]), v[ok], minlength=H * W).reshape(H, W)
    return img


def sample_points(rng, weight, n):
    """n sub-pixel positions drawn with probability proportional to the weight image."""
    p = weight.ravel().astype(float)
    s = p.sum()
    if n <= 0 or s <= 0:
        return np.zeros(0), np.zeros(0)
    idx = rng.choice(p.size, size=int(n), p=p / s)
    W = weight.shape[1]
    return idx // W + rng.uniform(-0.5, 0.5, idx.size), idx % W + rng.uniform(-0.5, 0.5, idx.size)


def at(img, y, x):
    H, W = img.shape
    return img[np.clip(np.rint(y), 0, H - 1).astype(np.intp), np.clip(np.rint(x), 0, W - 1).astype(np.intp)]


def wrap(a):
    return (a + np.pi) % TAU - np.pi


# ----------------------------------------------------------------------------- outlines
def polar_profile(rng, rough, kmax=8, lobes=0.0):
    th = np.linspace(0, TAU, _NA, endpoint=False)
    R = np.ones(_NA)
    for k in range(2, kmax + 1):
        R += rng.normal(0, rough / k ** 1.3) * np.cos(k * th + rng.uniform(0, TAU))
    if lobes > 0:
        k = int(rng.integers(3, 7))
        R += lobes * np.cos(k * th + rng.uniform(0, TAU))
    return th, R


def raster_polar(shape, cy, cx, scale, elong, alpha, th, R):
    """Mask of the star-shaped outline (R(theta) * scale, stretched by elong along alpha)."""
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W].astype(float)
    dy, dx = yy - cy, xx - cx
    ca, sa = np.cos(alpha), np.sin(alpha)
    u = (dx * ca + dy * sa) / (scale * elong)
    v = (-dx * sa + dy * ca) / scale
    rho = np.hypot(u, v)
    t = np.arctan2(v, u) % TAU
    Rt = np.interp(t, np.concatenate([th, [TAU]]), np.concatenate([R, R[:1]]))
    return rho, Rt


def boundary_pts(cy, cx, scale, elong, alpha, th, R):
    u = R * np.cos(th) * scale * elong
    v = R * np.sin(th) * scale
    ca, sa = np.cos(alpha), np.sin(alpha)
    return cy + u * sa + v * ca, cx + u * ca - v * sa


def pts_extent(y, x):
    best = 0.0
    for a in np.linspace(0, np.pi, 8, endpoint=False):
        p = y * np.sin(a) + x * np.cos(a)
        best = max(best, float(p.max() - p.min() + 1))
    return best


# ----------------------------------------------------------------------------- cell lines
LINES = {  # name: (long extent um range, elongation range, roughness, nucleus area fraction range)
    "hela": ((20, 40), (1.0, 1.6), 0.16, (0.13, 0.35)),
    "spread": ((40, 80), (1.4, 2.8), 0.22, (0.05, 0.14)),
    "epithelial": ((15, 30), (1.0, 1.35), 0.10, (0.3, 0.5)),
    "stem": ((10, 18), (1.0, 1.3), 0.08, (0.5, 0.72)),
}


class Cell:
    """Geometry of one cell, shared by every class."""


def make_cell(rng, size, diameter):
    c = Cell()
    c.size = size
    u = rng.random()
    c.state = "mitotic" if u < 0.035 else ("rounded" if u < 0.06 else "interphase")
    line = rng.choice(list(LINES), p=[0.42, 0.25, 0.22, 0.11])
    c.line = str(line)
    (l0, l1), (e0, e1), rough, (f0, f1) = LINES[line]
    L_um = float(np.exp(rng.uniform(np.log(l0), np.log(l1))))
    frac = rng.uniform(0.84, 1.0)
    c.px = float(L_um / (frac * diameter))
    shape = (size, size)
    th = None
    if c.state == "interphase":
        elong = rng.uniform(e0, e1)
        th, R = polar_profile(rng, rough, lobes=rng.uniform(0, 0.12) if rng.random() < 0.3 else 0)
        nprot = rng.choice([0, 1, 2, 3], p=[0.35, 0.35, 0.2, 0.1]) if line in ("hela", "spread") else 0
        for _ in range(nprot):  # protrusions
            a0 = rng.uniform(0, TAU)
            R += rng.uniform(0.2, 0.7) * np.exp(-0.5 * (wrap(th - a0) / rng.uniform(0.08, 0.25)) ** 2)
        if line == "spread" and rng.random() < 0.5:  # fan / triangular: broad lamella, narrow tail
            a0 = rng.uniform(0, TAU)
            R *= 1 + rng.uniform(0.15, 0.45) * np.cos(th - a0) + rng.uniform(0, 0.2) * np.cos(3 * (th - a0))
        if rng.random() < 0.35:  # ruffled
            R *= 1 + 0.025 * np.cos(rng.integers(12, 25) * th + rng.uniform(0, TAU))
        if line in ("epithelial", "stem") or rng.random() < 0.25:  # straight edges against neighbours
            for _ in range(int(rng.integers(1, 5))):
                phi, d = rng.uniform(0, TAU), rng.uniform(0.7, 0.95)
                cs = np.cos(th - phi)
                R = np.where(cs > 0.05, np.minimum(R, d / np.maximum(cs, 0.05)), R)
        R = np.maximum(R, 0.35)
    else:
        elong = rng.uniform(1.0, 1.12)
        th, R = polar_profile(rng, 0.03 if c.state == "mitotic" else 0.05, kmax=5)
        L_round = rng.uniform(15, 25) if c.state == "mitotic" else rng.uniform(10, 20)
        fr = np.clip(L_round / L_um * frac, 0.5, 0.78)
    alpha = rng.uniform(0, TAU)
    by, bx = boundary_pts(0, 0, 1.0, elong, alpha, th, R)
    e1 = pts_extent(by, bx)
    target = frac * diameter if c.state == "interphase" else fr * diameter
    scale = (target - 1) / (e1 - 1 / 1.0) if e1 > 1 else target
    by, bx = by * scale, bx * scale
    m = 3.0
    cy = rng.uniform(m - by.min(), size - 1 - m - by.max()) if size - 1 - 2 * m > by.max() - by.min() else size / 2
    cx = rng.uniform(m - bx.min(), size - 1 - m - bx.max()) if size - 1 - 2 * m > bx.max() - bx.min() else size / 2
    # work in the cell's bounding window (pasted into the frame at the end)
    oy = int(max(0, np.floor(cy + by.min()) - 3))
    ox = int(max(0, np.floor(cx + bx.min()) - 3))
    h = int(min(size, np.ceil(cy + by.max()) + 4)) - oy
    w = int(min(size, np.ceil(cx + bx.max()) + 4)) - ox
    c.off = (oy, ox)
    c.shape = (h, w)
    cy, cx = cy - oy, cx - ox
    shape = c.shape
    rho, Rt = raster_polar(shape, cy, cx, scale, elong, alpha, th, R)
    c.cell = rho < Rt
    c.rho_rel = rho / Rt
    c.filo = None
    if c.state == "interphase" and rng.random() < 0.3:  # filopodia: thin spikes, part of the cell
        k = int(rng.integers(3, 16))
        D0 = ndi.distance_transform_edt(c.cell)
        gy, gx = np.gradient(D0)
        ey, ex = sample_points(rng, (c.cell & (D0 < 1.5)) * 1.0, k)
        g = np.hypot(at(gy, ey, ex), at(gx, ey, ex)) + 1e-9
        L = rng.uniform(2, 8, k) / c.px
        fy, fx = ey - at(gy, ey, ex) / g * L, ex - at(gx, ey, ex) / g * L
        tmp = segments(np.zeros(shape), ey, ex, fy, fx, 1.0, max(1.0, 0.2 / c.px))
        tmp[:3], tmp[-3:], tmp[:, :3], tmp[:, -3:] = 0, 0, 0, 0
        spikes = tmp > 0.3
        ys, xs = np.nonzero(c.cell | spikes)
        if pts_extent(ys.astype(float), xs.astype(float)) <= 1.07 * diameter:
            c.cell = c.cell | spikes
            c.filo = (ey, ex, fy, fx)
    c.cy, c.cx, c.alpha, c.elong = cy, cx, alpha, elong
    c.D = ndi.distance_transform_edt(c.cell)  # px to the cell edge
    c.gy, c.gx = np.gradient(c.D)
    ys, xs = np.nonzero(c.cell)
    c.my, c.mx = ys.mean(), xs.mean()
    c.area = ys.size
    _make_nucleus(c, rng, (f0, f1))
    _make_thickness(c, rng)
    return c


def _nucleus_blob(c, rng, ny, nx, a, ratio, ang, kidney):
    th, R = polar_profile(rng, 0.05, kmax=6, lobes=rng.uniform(0, 0.06) if rng.random() < 0.2 else 0)
    if kidney:
        a0 = rng.uniform(0, TAU)
        R -= kidney * np.exp(-0.5 * (wrap(th - a0) / 0.45) ** 2)
    h, w = c.cell.shape
    r = int(np.ceil(a * R.max() * 1.05)) + 2
    y0, y1, x0, x1 = max(0, int(ny) - r), min(h, int(ny) + r + 1), max(0, int(nx) - r), min(w, int(nx) + r + 1)
    out = np.full((h, w), 9.0)
    rho, Rt = raster_polar((y1 - y0, x1 - x0), ny - y0, nx - x0, a * ratio, 1 / ratio, ang, th, R)
    out[y0:y1, x0:x1] = rho / Rt
    return out


def _make_nucleus(c, rng, frac_rng):
    um = 1 / c.px
    if c.state == "mitotic":
        _make_chromosomes(c, rng)
        return
    if c.state == "rounded":
        f = rng.uniform(0.45, 0.7)
    else:
        f = rng.uniform(*frac_rng)
    area = f * c.area
    ratio = rng.uniform(0.6, 1.0)
    a = np.sqrt(area / (np.pi * ratio))  # semi-major px
    if c.state == "interphase":  # nuclei are 10-20 um long whatever the cell
        a = float(np.clip(a, rng.uniform(4.8, 5.6) * um, 10 * um))
    ang = c.alpha + rng.normal(0, 0.4)
    binuc = c.state == "interphase" and rng.random() < 0.02
    kidney = rng.uniform(0.1, 0.25) if rng.random() < 0.15 else 0.0
    for _ in range(12):
        need = a * 1.08 + 0.6 * um
        cand = c.D > need
        if cand.sum() >= 1:
            break
        a *= 0.9
    w = cand * np.exp(-0.5 * ((np.arange(c.shape[0])[:, None] - c.my) ** 2 + (np.arange(c.shape[1])[None] - c.mx) ** 2)
                      / (0.3 * np.sqrt(c.area)) ** 2) + cand * 1e-6
    ny, nx = sample_points(rng, w, 1)
    ny, nx = float(ny[0]), float(nx[0])
    if binuc:
        a2 = a * 0.72
        off = a2 * 0.95
        d = np.array([np.sin(ang), np.cos(ang)])
        r1 = _nucleus_blob(c, rng, ny + d[0] * off, nx + d[1] * off, a2, ratio, ang + 1.57, 0)
        r2 = _nucleus_blob(c, rng, ny - d[0] * off, nx - d[1] * off, a2, ratio, ang + 1.57, 0)
        rel = np.minimum(r1, r2)
    else:
        rel = _nucleus_blob(c, rng, ny, nx, a, ratio, ang, kidney)
    c.nucleus = (rel < 1) & (c.D > 0.4 * um)
    c.nuc_soft = np.clip((1 - rel) * a / 1.0, 0, 1)  # ~1 px soft edge
    c.nuc_a = a
    c.ny, c.nx = ny, nx
    c.binucleate = bool(binuc)
    c.micronucleus = None
    if c.state == "interphase" and rng.random() < 0.05:
        t = rng.uniform(0, TAU)
        r = a * rng.uniform(1.2, 1.6)
        my, mx = ny + r * np.sin(t), nx + r * np.cos(t)
        if at(c.D, my, mx) > 1.5 * um:
            c.micronucleus = (my, mx, rng.uniform(0.6, 1.2) * um)
    c.chrom = None
    _centrosome(c, rng)
    _make_nucleoli(c, rng)


def _centrosome(c, rng):
    um = 1 / c.px
    vy, vx = c.my - c.ny, c.mx - c.nx
    n = np.hypot(vy, vx)
    if n < 1.5 * um:
        t = rng.uniform(0, TAU)
        vy, vx, n = np.sin(t), np.cos(t), 1.0
    c.gdir = float(np.arctan2(vy, vx) + rng.normal(0, 0.5))
    d, y, x = 0.0, c.ny, c.nx
    ins = c.nucleus if c.nucleus.any() else c.cell
    for d in np.arange(0, 4 * c.nuc_a, 0.5):  # march out of the nucleus
        y, x = c.ny + d * np.sin(c.gdir), c.nx + d * np.cos(c.gdir)
        if not at(ins, y, x):
            break
    c.edge_y, c.edge_x = y, x
    g = rng.uniform(0.5, 2.0) * um
    c.csy, c.csx = y + g * np.sin(c.gdir), x + g * np.cos(c.gdir)
    if not at(c.cell, c.csy, c.csx):
        c.csy, c.csx = y, x


def _make_nucleoli(c, rng):
    um = 1 / c.px
    c.nucleoli = np.zeros(c.shape)
    c.nucleoli_list = []
    k = int(rng.choice([1, 2, 3, 4], p=[0.2, 0.35, 0.3, 0.15]))
    Dn = ndi.distance_transform_edt(c.nucleus)
    c.Dn_in = Dn
    if c.state != "interphase" and rng.random() < 0.5:
        k = max(1, k - 1)
    big = rng.random() < 0.25
    for _ in range(k):
        r = (rng.uniform(1.5, 2.4) if big and not c.nucleoli_list else rng.uniform(0.5, 1.5)) * um
        cand = Dn > r + 0.3 * um
        if not cand.any():
            r = 0.6 * Dn.max()
            cand = Dn >= Dn.max() * 0.9
        y, x = sample_points(rng, cand.astype(float), 1)
        nl = int(rng.integers(1, 4))  # lobed: a few overlapping discs
        yy = y[0] + rng.normal(0, 0.35 * r, nl) * (np.arange(nl) > 0)
        xx = x[0] + rng.normal(0, 0.35 * r, nl) * (np.arange(nl) > 0)
        rr = r * rng.uniform(0.6, 1.0, nl) * np.where(np.arange(nl) == 0, 1, 0.75)
        tmp = np.zeros(c.shape)
        dots(tmp, yy, xx, rr, 1.0)
        c.nucleoli = np.maximum(c.nucleoli, np.clip(tmp, 0, 1))
        c.nucleoli_list.append((float(y[0]), float(x[0]), float(r)))
    c.nucleoli *= c.nucleus


def _make_chromosomes(c, rng):
    """Mitotic: condensed chromosomes (plate, two groups, or an irregular prometaphase mass)."""
    um = 1 / c.px
    kind = rng.choice(["metaphase", "anaphase", "prometaphase"], p=[0.5, 0.25, 0.25])
    ang = rng.uniform(0, TAU)
    cy, cx = c.my + rng.normal(0, 0.5 * um), c.mx + rng.normal(0, 0.5 * um)
    n = 60
    if kind == "prometaphase":
        y = cy + rng.normal(0, 2.2 * um, n)
        x = cx + rng.normal(0, 2.2 * um, n)
    else:
        Lp = rng.uniform(7, 13) * um
        t = rng.uniform(-0.5, 0.5, n) * Lp
        s = rng.normal(0, 0.6 * um, n)
        if kind == "anaphase":
            s += np.where(rng.random(n) < 0.5, -1, 1) * rng.uniform(2, 5) * um
        y = cy + t * np.cos(ang) + s * np.sin(ang)
        x = cx - t * np.sin(ang) + s * np.cos(ang)
    chrom = np.zeros(c.shape)
    segments(chrom, y, x, y + rng.normal(0, 0.9 * um, n), x + rng.normal(0, 0.9 * um, n), 1.0, 0.6 * um)
    chrom = ndi.gaussian_filter(chrom, 0.25 * um)
    chrom *= c.D > 1.5 * um
    m = chrom > 0.25 * chrom.max()
    c.chrom = chrom / max(chrom.max(), 1e-9)
    c.nucleus = m & c.cell
    c.nuc_soft = np.clip(c.chrom / 0.25, 0, 1)
    c.chrom_kind = str(kind)
    c.spindle_ang = ang
    c.ny, c.nx = cy, cx
    c.nuc_a = 3 * um
    c.binucleate = False
    c.micronucleus = None
    c.nucleoli = np.zeros(c.shape)
    c.nucleoli_list = []
    c.Dn_in = ndi.distance_transform_edt(c.nucleus)
    c.gdir = ang
    c.csy, c.csx = cy, cx
    c.edge_y, c.edge_x = cy, cx


def _make_thickness(c, rng):
    um = 1 / c.px
    c.Dn_out = ndi.distance_transform_edt(~c.nucleus)  # px to the nucleus
    if c.state == "interphase":
        ramp = rng.uniform(1.5, 5) * um
        lam = rng.uniform(3, 9) * um
        T = np.clip(c.D / ramp, 0, 1) ** 0.7 * (0.2 + 0.8 * np.exp(-c.Dn_out / lam))
        T = np.maximum(T, c.nucleus * 1.0)
    else:
        T = np.sqrt(np.clip(1 - c.rho_rel ** 2, 0, 1))
    c.T = T * c.cell


def dna_image(c, rng):
    """The DNA channel: textured nucleus with rim, heterochromatin foci and nucleolar holes."""
    um = 1 / c.px
    if c.state == "mitotic":
        tex = 1 + 0.25 * noise(rng, c.shape, 0.5 * um)
        return (c.chrom * tex * rng.uniform(2, 3.5)).clip(0) * c.cell
    img = c.nuc_soft * (1 + rng.uniform(0.12, 0.25) * noise(rng, c.shape, rng.uniform(0.3, 1.0) * um)
                        + rng.uniform(0.05, 0.15) * noise(rng, c.shape, 3 * um))
    rim = rng.uniform(0, 0.4)
    img *= 1 + rim * np.exp(-c.Dn_in / (0.6 * um))
    nf = int(rng.choice([rng.integers(0, 6), rng.integers(8, 30)], p=[0.75, 0.25]))  # mouse-like: many
    if nf:
        y, x = sample_points(rng, (c.Dn_in > 0.7 * um).astype(float), nf)
        fo = np.zeros(c.shape)
        dots(fo, y, x, rng.uniform(0.35, 0.6, nf) * um, rng.uniform(0.4, 1.0, nf))
        img += ndi.gaussian_filter(fo, 0.2 * um) * c.nucleus
    img *= 1 - rng.uniform(0.55, 0.85) * ndi.gaussian_filter(c.nucleoli, 0.15 * um)
    if c.state == "rounded":
        img *= 1.4
    if c.micronucleus is not None:
        dots(img, [c.micronucleus[0]], [c.micronucleus[1]], [c.micronucleus[2]], 1.1)
    if rng.random() < 0.05:  # DNA debris: a few small bright spots in the cytoplasm
        k = int(rng.integers(1, 4))
        y, x = sample_points(rng, (c.cell & ~c.nucleus & (c.D > 1.0 * um)) * 1.0, k)
        dots(img, y, x, rng.uniform(0.2, 0.4, y.size) * um, rng.uniform(1.0, 2.0, y.size))
    return np.clip(img, 0, None) * 0.6
