"""Cell body, nucleus, nucleoli, thickness and DNA for the ``indep_e`` renderer.

Nothing here depends on the class being drawn: every class gets cells from the same generator.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .base import extent
from ._indep_e_draw import (blur, disc_points, extent_pts, noise, polar_of, rho_at, splat,
                            star_mask)

# cell line: probability, longest extent (um), aspect, nucleus area fraction, outline wobble
LINES = {
    "hela": (0.36, (20, 40), (1.0, 1.8), (0.14, 0.32), 0.10),
    "spread": (0.24, (40, 80), (1.6, 3.2), (0.06, 0.14), 0.08),
    "epithelial": (0.25, (15, 30), (1.0, 1.5), (0.30, 0.50), 0.06),
    "stem": (0.15, (10, 18), (1.0, 1.4), (0.50, 0.70), 0.05),
}
P_MITOTIC = 0.035
P_ROUNDED = 0.025


class Cell:
    """Geometry and maps of one cell (pixel units unless a name ends in _um)."""


def _outline(rng, n, aspect, wobble, line, state):
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 8):
        r += rng.normal(0, wobble / k ** 0.8) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    info = {}
    if state == "interphase":
        if rng.random() < 0.25:  # ruffled edge
            for k in rng.integers(12, 30, 3):
                r += rng.normal(0, 0.012) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
            info["ruffled"] = True
        n_pro = rng.choice([0, 1, 2, 3], p=[0.35, 0.35, 0.2, 0.1]) if line in ("hela", "spread") else \
            rng.choice([0, 1], p=[0.8, 0.2])
        for _ in range(n_pro):
            a = rng.uniform(0, 2 * np.pi)
            w = rng.uniform(0.08, 0.25)
            d = np.angle(np.exp(1j * (th - a)))
            r += rng.uniform(0.25, 0.9) * np.exp(-0.5 * (d / w) ** 2)
        info["protrusions"] = int(n_pro)
    r = np.maximum(r, 0.35)
    x, y = r * np.cos(th) * aspect, r * np.sin(th)
    straight = np.zeros(n, bool)
    if state == "interphase" and line == "spread" and rng.random() < 0.55:
        fan = rng.uniform(0.3, 0.9)  # broad lamella at +x, narrow tail at -x
        y = y * (1 + fan * x / aspect) / (1 + fan)
        info["fan"] = round(float(fan), 2)
    if state == "interphase" and (line == "epithelial" or (line == "stem" and rng.random() < 0.6)
                                  or rng.random() < 0.15):
        for _ in range(rng.integers(1, 5)):  # straight edges shared with neighbours
            a = rng.uniform(0, 2 * np.pi)
            nx, ny = np.cos(a), np.sin(a)
            p = x * nx + y * ny
            dmax = p.max()
            d = dmax * rng.uniform(0.7, 0.92)
            over = np.maximum(p - d, 0)
            straight |= over > 0
            x, y = x - over * nx, y - over * ny
        info["straight_edges"] = True
    info["_straight"] = straight
    return y, x, info


def _nucleus_outline(rng, n, a, b, ang):
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    shape = "ellipse"
    for k in range(2, 5):
        r += rng.normal(0, 0.03) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    u = rng.random()
    if u < 0.18:
        shape = "kidney"
        d = np.angle(np.exp(1j * (th - np.pi / 2)))
        r -= rng.uniform(0.1, 0.25) * np.exp(-0.5 * (d / 0.45) ** 2)
    elif u < 0.28:
        shape = "lobed"
        k = rng.integers(2, 5)
        r += rng.uniform(0.05, 0.12) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    x, y = r * np.cos(th) * a, r * np.sin(th) * b
    ca, sa = np.cos(ang), np.sin(ang)
    return x * sa + y * ca, x * ca - y * sa, shape


def _fits(c, ny, nx, margin):
    rb = rho_at(c.cpsi, c.crho, np.arctan2(ny - c.oy, nx - c.ox))
    return bool(np.all(np.hypot(ny - c.oy, nx - c.ox) < rb - margin))


def make_cell(rng, size, diameter):
    c = Cell()
    c.size = size
    c.diameter = float(diameter)
    u = rng.random()
    c.state = "mitotic" if u < P_MITOTIC else "rounded" if u < P_MITOTIC + P_ROUNDED else "interphase"
    names = list(LINES)
    c.line = names[rng.choice(len(names), p=[LINES[k][0] for k in names])]
    _, lrange, arange_, frange, wob = LINES[c.line]
    if c.state == "interphase":
        length_um = rng.uniform(*lrange)
        target = diameter * rng.uniform(0.84, 1.04)
        aspect = rng.uniform(*arange_)
        y, x, info = _outline(rng, 256, aspect, wob, c.line, c.state)
    else:
        c.stage = None
        if c.state == "mitotic":
            c.stage = str(rng.choice(["prometaphase", "metaphase", "anaphase", "telophase"],
                                     p=[0.27, 0.4, 0.18, 0.15]))
        length_um = rng.uniform(15, 25) if c.state == "mitotic" else rng.uniform(10, 18)
        target = diameter * rng.uniform(0.5, 0.75)
        if c.stage == "telophase":  # two daughters joined by a narrow bridge
            length_um = rng.uniform(24, 38)
            y, x, info = _outline(rng, 256, rng.uniform(1.7, 2.0), 0.02, c.line, c.state)
            y = y * (1 - rng.uniform(0.45, 0.7) * np.exp(-0.5 * (x / 0.3) ** 2))
        else:
            y, x, info = _outline(rng, 256, rng.uniform(1.0, 1.12), 0.03, c.line, c.state)
    c.straight = info.pop("_straight")  # outline points on an edge shared with a neighbour
    c.info = {"line": c.line, **info}
    rot = rng.uniform(0, 2 * np.pi)
    cr, sr = np.cos(rot), np.sin(rot)
    y, x = x * sr + y * cr, x * cr - y * sr
    scale = (target - 1) / (extent_pts(y, x) - 1)
    y, x = y * scale, x * scale
    c.px = float(length_um / target)  # um per pixel
    c.axis = rot  # long axis direction (angle of +x of the outline frame)
    c.frame = size
    uy, ux = rng.random(2)
    for _fix in range(4):
        # place: bounding box inside the frame with a margin
        m = 4
        lo_y, lo_x = m - y.min(), m - x.min()
        hi_y, hi_x = size - 1 - m - y.max(), size - 1 - m - x.max()
        oy = lo_y + uy * (hi_y - lo_y) if hi_y > lo_y else (lo_y + hi_y) / 2
        ox = lo_x + ux * (hi_x - lo_x) if hi_x > lo_x else (lo_x + hi_x) / 2
        # work on a crop around the cell (the renderer pastes it into the frame at the end)
        y0 = int(max(0, np.floor(oy + y.min()) - 3))
        x0 = int(max(0, np.floor(ox + x.min()) - 3))
        y1 = int(min(size, np.ceil(oy + y.max()) + 4))
        x1 = int(min(size, np.ceil(ox + x.max()) + 4))
        c.off = (y0, x0)
        c.oy, c.ox = oy - y0, ox - x0
        h, w = y1 - y0, x1 - x0
        c.size = (h, w)
        c.by, c.bx = y + c.oy, x + c.ox
        c.cpsi, c.crho = polar_of(c.oy, c.ox, c.by, c.bx)
        c.yy, c.xx = np.mgrid[:h, :w].astype(np.float32)
        c.cell, _, _ = star_mask(None, c.oy, c.ox, c.cpsi, c.crho, c.yy, c.xx)
        e = extent(c.cell)
        # thin tails narrower than a pixel vanish when rasterised: grow the outline to compensate
        if abs(e - target) < 0.06 * target or e < 1:
            break
        f = target / e
        y, x = (y - y.mean()) * f + y.mean(), (x - x.mean()) * f + x.mean()
    c.psi = np.arctan2(c.yy - c.oy, c.xx - c.ox)
    c.d_edge = ndi.distance_transform_edt(c.cell).astype(np.float32)
    gy, gx = np.gradient(ndi.gaussian_filter(c.d_edge, 1.0))
    g = np.hypot(gy, gx) + 1e-6
    c.gy, c.gx = (gy / g).astype(np.float32), (gx / g).astype(np.float32)
    c.area_um = float(c.cell.sum()) * c.px ** 2
    ys, xs = np.nonzero(c.cell)
    c.cy, c.cx = float(ys.mean()), float(xs.mean())
    if c.state == "mitotic":
        _mitotic_chromosomes(c, rng)
    else:
        _nuclei(c, rng, frange)
        _thickness(c, rng)
        _nucleoli(c, rng)
        _dna(c, rng)
    return c


def um(c, v):
    return v / c.px


def _nuclei(c, rng, frange):
    frac = rng.uniform(*frange) if c.state == "interphase" else rng.uniform(0.4, 0.65)
    ratio = rng.uniform(0.6, 1.0)
    area_px = c.area_um * frac / c.px ** 2
    a = np.sqrt(area_px / (np.pi * ratio))
    a = float(np.clip(a, um(c, 3.5), um(c, 11)))
    b = a * ratio
    n_nuc = 2 if (c.state == "interphase" and rng.random() < 0.04) else 1
    if n_nuc == 2:
        a, b = a * 0.75, b * 0.75
    ang = c.axis + rng.normal(0, 0.4)
    centres = []
    outlines = []
    margin = max(um(c, 1.0), 3.0)
    toward = rng.uniform(0, 2 * np.pi)
    if c.info.get("fan"):
        toward = c.axis + np.pi + rng.normal(0, 0.3)  # nucleus toward the tail
    for k in range(n_nuc):
        ny0, nx0, shape = _nucleus_outline(rng, 96, a, b, ang)
        base_y, base_x = c.cy, c.cx
        if n_nuc == 2:
            sgn = 1 if k == 0 else -1
            base_y += sgn * np.sin(ang + np.pi / 2) * b * 1.05
            base_x += sgn * np.cos(ang + np.pi / 2) * b * 1.05
        off = rng.uniform(0.1, 0.5) * max(c.crho.mean() - a, 0)
        scale = 1.0
        for it in range(14):
            py = base_y + np.sin(toward) * off
            px_ = base_x + np.cos(toward) * off
            if _fits(c, ny0 * scale + py, nx0 * scale + px_, margin):
                break
            if it % 2 == 0:
                off *= 0.6
            else:
                scale *= 0.9
        centres.append((py, px_))
        outlines.append((ny0 * scale + py, nx0 * scale + px_))
        c.info["nucleus_shape"] = shape
    c.info["nuclei"] = n_nuc
    c.nuclei = []
    nuc = np.zeros(c.cell.shape, bool)
    s_best = np.full(c.cell.shape, np.inf, np.float32)
    dn = np.full(c.cell.shape, np.inf, np.float32)
    for (py, px_), (oy, ox) in zip(centres, outlines):
        psi_t, rho_t = polar_of(py, px_, oy, ox)
        ins, s, rb = star_mask(None, py, px_, psi_t, rho_t, c.yy, c.xx)
        nuc |= ins
        s_best = np.minimum(s_best, s)
        dn = np.minimum(dn, (s - 1) * rb)
        c.nuclei.append((py, px_, psi_t, rho_t))
    nuc &= c.cell
    c.nucleus = nuc
    c.s_n = s_best
    c.dnuc = dn  # signed ray distance to the nuclear envelope (px), negative inside
    c.ncy, c.ncx = c.nuclei[0][0], c.nuclei[0][1]
    # Golgi / centrosome side: toward the bulk of the cytoplasm
    vy, vx = c.cy - c.ncy, c.cx - c.ncx
    if np.hypot(vy, vx) < um(c, 1.0):
        vy, vx = rng.normal(size=2)
    c.golgi_angle = float(np.arctan2(vy, vx) + rng.normal(0, 0.5))
    psi_t, rho_t = c.nuclei[0][2], c.nuclei[0][3]
    rg = rho_at(psi_t, rho_t, c.golgi_angle) + um(c, rng.uniform(0.5, 1.5))
    c.mtoc = (c.ncy + rg * np.sin(c.golgi_angle), c.ncx + rg * np.cos(c.golgi_angle))
    if not c.cell[int(np.clip(c.mtoc[0], 0, c.size[0] - 1)), int(np.clip(c.mtoc[1], 0, c.size[1] - 1))]:
        c.mtoc = (c.ncy, c.ncx)
    # micronucleus
    c.micro = None
    if c.state == "interphase" and rng.random() < 0.04:
        ang2 = rng.uniform(0, 2 * np.pi)
        rr = rho_at(psi_t, rho_t, ang2) + um(c, rng.uniform(1.5, 3))
        my, mx = c.ncy + rr * np.sin(ang2), c.ncx + rr * np.cos(ang2)
        if c.d_edge[int(np.clip(my, 0, c.size[0] - 1)), int(np.clip(mx, 0, c.size[1] - 1))] > um(c, 2):
            c.micro = (my, mx, um(c, rng.uniform(0.5, 1.2)))
            c.info["micronucleus"] = True


def _thickness(c, rng):
    """Relative height of the cell: 1 over the nucleus, falling off into the thin periphery."""
    lam = um(c, rng.uniform(2.0, 6.0) * (1.6 if c.state == "rounded" else 1.0))
    t_edge = rng.uniform(0.05, 0.2) if c.state == "interphase" else rng.uniform(0.35, 0.6)
    dn = np.maximum(c.dnuc, 0)
    t = t_edge + (1 - t_edge) * np.exp(-dn / lam)
    t *= 1 - np.exp(-c.d_edge / um(c, 0.8))
    c.T = (t * c.cell).astype(np.float32)
    c.cyto = c.cell & ~c.nucleus


def _nucleoli(c, rng):
    shp = c.cell.shape
    fill = np.zeros(shp)
    rim = np.zeros(shp)
    c.nol_list = []
    ys, xs, ws, ry, rx, rw = [], [], [], [], [], []
    for (py, px_, psi_t, rho_t) in c.nuclei:
        n = rng.choice([1, 2, 3, 4, 5], p=[0.2, 0.3, 0.25, 0.15, 0.1])
        big = rng.random() < 0.25
        for _ in range(n):
            r_um = rng.uniform(1.2, 2.5) if big and n <= 2 else rng.uniform(0.5, 1.6)
            r = um(c, r_um)
            for _t in range(10):
                a = rng.uniform(0, 2 * np.pi)
                rr = rng.uniform(0, 0.6) * max(rho_at(psi_t, rho_t, a) - r, 0)
                y, x = py + rr * np.sin(a), px_ + rr * np.cos(a)
                if rr + r < rho_at(psi_t, rho_t, a) * 0.9:
                    break
            n_lobe = rng.integers(1, 4)
            for j in range(n_lobe):
                lr = r * (1.0 if j == 0 else rng.uniform(0.4, 0.8))
                oy, ox = (0.0, 0.0) if j == 0 else rng.normal(0, 0.45 * r, 2)
                ys.append(y + oy), xs.append(x + ox), ws.append(lr)
            c.nol_list.append((y, x, r))
    if ys:
        ys, xs, rs = np.array(ys), np.array(xs), np.array(ws)
        per = np.clip(400.0 / (np.pi * rs ** 2), 0, 4.0)
        k = np.clip(np.pi * rs ** 2 * per, 1, 400).astype(int)
        rep = np.repeat(np.arange(ys.size), k)
        a = rng.random(rep.size) * 2 * np.pi
        rr = rs[rep] * np.sqrt(rng.random(rep.size))
        fill = splat(shp, ys[rep] + rr * np.sin(a), xs[rep] + rr * np.cos(a), (np.pi * rs ** 2 / k)[rep])
        fill = blur(fill, max(um(c, 0.25), 0.8 * np.sqrt(1 / per.min())))
        fill = np.clip(fill, 0, 1.3)
        ry, rx, rw = disc_points(ys, xs, rs * 0.95, np.pi * rs * 2, rng, ring=True, cap=200)
        rim = blur(splat(shp, ry, rx, rw), max(um(c, 0.2), 0.7))
        rim /= max(rim.max(), 1e-9)
    c.nol = fill * c.nucleus
    c.nol_rim = rim * c.nucleus


def _soft_nucleus(c):
    # soft edge over ~0.3 um
    w = max(um(c, 0.3), 0.7)
    return np.clip(0.5 - c.dnuc / w, 0, 1) * c.cell


def _dna(c, rng):
    shp = c.cell.shape
    base = _soft_nucleus(c)
    c.nuc_soft = base
    grain = noise(shp, max(um(c, rng.uniform(0.15, 0.4)), 0.5), rng)
    coarse = noise(shp, um(c, rng.uniform(1.0, 2.5)), rng)
    amp = rng.uniform(0.12, 0.3)
    tex = np.clip(1 + amp * grain + rng.uniform(0.05, 0.2) * coarse, 0.2, None)
    dome = np.clip(1 - np.clip(c.s_n, 0, 1) ** 2, 0, 1) ** 0.3
    rim = np.exp(-np.maximum(-c.dnuc, 0) / max(um(c, 0.5), 0.7))
    rim_a = rng.uniform(0.0, 0.5)
    hole = rng.uniform(0.4, 0.85)
    dna = base * (0.6 + 0.4 * dome) * tex * (1 + rim_a * rim) * (1 - hole * np.clip(c.nol, 0, 1))
    mouse = rng.random() < 0.15
    nf = rng.integers(8, 30) if mouse else rng.integers(0, 8)
    if nf:
        fy, fx = _points_in(c, c.nucleus, nf, rng)
        fy, fx, fw = disc_points(fy, fx, np.full(fy.size, um(c, 0.45)), rng.uniform(0.5, 1.5, fy.size), rng, cap=80)
        foci = blur(splat(shp, fy, fx, fw), max(um(c, 0.25), 0.6))
        if foci.max() > 0:
            dna = dna + foci / foci.max() * rng.uniform(0.4, 0.9) * base
    if c.micro is not None:
        my, mx, mr = c.micro
        dy, dx, dw = disc_points([my], [mx], [mr], [1.0], rng, cap=200)
        mic = blur(splat(shp, dy, dx, dw), max(um(c, 0.2), 0.6))
        mic = mic / max(mic.max(), 1e-9) * 0.9
        dna = dna + mic
        c.nucleus = c.nucleus | ((mic > 0.3) & c.cell)
    if rng.random() < 0.06:  # debris: a few small bright DNA spots in the cytoplasm
        k = int(rng.integers(1, 4))
        dy, dx = _points_in(c, c.cell & ~c.nucleus & (c.d_edge > 2), k, rng)
        if dy.size:
            dy, dx, dw = disc_points(dy, dx, um(c, rng.uniform(0.15, 0.4)), rng.uniform(0.5, 1.5, dy.size), rng)
            deb = blur(splat(shp, dy, dx, dw), max(um(c, 0.15), 0.5))
            dna = dna + deb / max(deb.max(), 1e-9) * rng.uniform(0.5, 1.2)
            c.info["debris"] = int(k)
    c.dna = dna * c.cell
    c.chrom = None


def _points_in(c, mask, n, rng):
    from ._indep_e_draw import sample_from
    return sample_from(mask.astype(float), n, rng)


def _mitotic_chromosomes(c, rng):
    shp = c.cell.shape
    stage = c.stage
    c.info["stage"] = str(stage)
    ang = rng.uniform(0, 2 * np.pi)  # plate long axis
    if stage == "telophase":
        ang = c.axis + np.pi / 2  # the division axis is the outline's long axis
    ua = np.array([np.sin(ang), np.cos(ang)])  # along the plate
    ub = np.array([np.cos(ang), -np.sin(ang)])  # spindle axis
    n = rng.integers(40, 80)
    Rcell = c.crho.min()
    plate_l = min(um(c, rng.uniform(8, 13)), 1.3 * Rcell)
    if stage == "telophase":
        half = c.crho.max() * rng.uniform(0.45, 0.6)
        side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        r = np.sqrt(rng.random(n)) * min(um(c, rng.uniform(2, 3.5)), 0.5 * half)
        a = rng.uniform(0, 2 * np.pi, n)
        cy = c.oy + side * half * ub[0] + r * np.sin(a)
        cx = c.ox + side * half * ub[1] + r * np.cos(a)
        th = rng.uniform(0, 2 * np.pi, n)
        c.plate = None
        c.daughters = [(c.oy + s_ * half * ub[0], c.ox + s_ * half * ub[1]) for s_ in (-1, 1)]
    elif stage == "prometaphase":
        r = np.sqrt(rng.random(n)) * min(um(c, rng.uniform(3, 5)), 0.6 * Rcell)
        a = rng.uniform(0, 2 * np.pi, n)
        cy, cx = c.cy + r * np.sin(a), c.cx + r * np.cos(a)
        th = rng.uniform(0, 2 * np.pi, n)
        c.poles = None
        c.plate = None
    else:
        along = rng.uniform(-0.5, 0.5, n) * plate_l
        across = rng.normal(0, um(c, rng.uniform(0.4, 1.0)), n)
        if stage == "anaphase":
            gap = min(um(c, rng.uniform(2, 5)), 0.35 * Rcell)
            across += np.where(rng.random(n) < 0.5, -gap, gap)
        cy = c.cy + along * ua[0] + across * ub[0]
        cx = c.cx + along * ua[1] + across * ub[1]
        th = np.arctan2(ub[0], ub[1]) + rng.normal(0, 0.4, n)
        c.plate = (ua, ub, plate_l)
    ln = um(c, rng.uniform(1.0, 3.0, n))
    t = np.linspace(-0.5, 0.5, 16)
    ry = (cy[:, None] + t * ln[:, None] * np.sin(th)[:, None]).ravel()
    rx = (cx[:, None] + t * ln[:, None] * np.cos(th)[:, None]).ravel()
    chrom = blur(splat(shp, ry, rx, 1.0), max(um(c, 0.25), 0.6))
    chrom = chrom / max(chrom.max(), 1e-9)
    chrom = np.clip(chrom * 1.6, 0, 1) * c.cell
    region = blur(chrom, max(um(c, 0.4), 0.6)) > 0.15
    region &= c.cell
    if not region.any():
        region = chrom > 0.5 * chrom.max()
    c.chrom = chrom
    c.nucleus = region
    c.cyto = c.cell & ~region
    c.dnuc = (ndi.distance_transform_edt(~region) - ndi.distance_transform_edt(region)).astype(np.float32)
    c.s_n = np.where(region, 0.5, 2.0).astype(np.float32)
    c.ncy, c.ncx = c.cy, c.cx
    c.nuclei = []
    c.nol = np.zeros(shp)
    c.nol_rim = np.zeros(shp)
    c.nol_list = []
    c.micro = None
    half = plate_l / 2 if stage != "prometaphase" else um(c, 4)
    sep = min(half + um(c, rng.uniform(2, 5)), 0.85 * Rcell)
    if stage == "prometaphase":
        ub = np.array([np.sin(ang), np.cos(ang)])
    c.poles = [(c.cy + s * sep * ub[0], c.cx + s * sep * ub[1]) for s in (-1, 1)]
    if stage == "telophase":
        c.poles = c.daughters
    c.spindle_axis = ub
    c.golgi_angle = ang
    c.mtoc = c.poles[0]
    if stage == "telophase":
        rr = np.minimum(*[np.hypot(c.yy - py, c.xx - px) for py, px in c.daughters]) / max(c.crho.max() * 0.55, 1)
    else:
        rr = np.hypot(c.yy - c.oy, c.xx - c.ox) / max(c.crho.max(), 1)
    dome = np.clip(1 - rr ** 2, 0, 1)
    c.T = ((0.45 + 0.55 * np.sqrt(dome)) * (1 - np.exp(-c.d_edge / um(c, 0.5))) * c.cell).astype(np.float32)
    c.nuc_soft = chrom
    c.dna = (chrom * rng.uniform(2.0, 4.0)).astype(np.float64)
