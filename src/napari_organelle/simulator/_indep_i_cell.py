"""Cell body, nucleus, thickness and DNA channel for the ``indep_i`` renderer.

Nothing here depends on the class being drawn: every class gets cells from the same generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dfield

import numpy as np
from scipy import ndimage as ndi

from . import _indep_i_draw as D

# cell line -> (probability, interphase longest extent in µm, nucleus length in µm)
LINES = {
    "spread": (0.5, (40.0, 80.0), (12.0, 20.0)),    # U2OS, fibroblasts, A-431 spread at 40-63x
    "hela": (0.28, (24.0, 42.0), (10.0, 16.0)),
    "compact": (0.14, (15.0, 30.0), (10.0, 16.0)),   # A-431 / MCF-7 islands
    "stem": (0.08, (10.0, 18.0), (8.0, 13.0)),        # hiPSC
}
P_MITOTIC = 0.035
P_ROUNDED = 0.03


@dataclass
class Cell:
    n: int
    px: float                 # µm per pixel
    line: str
    state: str
    cell: np.ndarray
    nucleus: np.ndarray
    cyto: np.ndarray
    de: np.ndarray            # distance to the cell edge, µm
    dn: np.ndarray            # distance outside the nucleus, µm (0 inside)
    rho: np.ndarray           # elliptic radius of the nucleus (1 at its envelope)
    thick: np.ndarray         # relative thickness 0..1
    nucleoli: np.ndarray      # 0..1 nucleolar bodies
    cy: float
    cx: float
    ny: float
    nx: float
    na: float                 # nucleus semi-axes (µm) and angle
    nb: float
    nth: float
    axis: float               # cell long-axis angle
    aspect: float
    bulk: float               # direction (rad) from nucleus to the bulk of the cytoplasm
    front: float              # leading-edge direction (lamella)
    outline: tuple = ()
    chrom: np.ndarray | None = None
    info: dict = dfield(default_factory=dict)


def _outline(rng, line):
    """Outline points (unit scale, centred) and shape facts for an interphase cell."""
    k = 256
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    r = np.ones(k)
    for m in range(2, 6):
        r += rng.normal(0, 0.05 / m * 2) * np.cos(m * t + rng.uniform(0, 2 * np.pi))
    shape = "oval"
    front = rng.uniform(0, 2 * np.pi)
    if line == "spread":
        shape = rng.choice(["fan", "triangular", "polygonal", "elongated"], p=[0.25, 0.25, 0.25, 0.25])
        aspect = rng.uniform(1.1, 2.2) if shape != "elongated" else rng.uniform(2.0, 3.5)
    elif line == "hela":
        shape = rng.choice(["polygonal", "protrusion", "roundish"], p=[0.45, 0.35, 0.2])
        aspect = rng.uniform(1.0, 1.7)
    elif line == "compact":
        shape = "packed"
        aspect = rng.uniform(1.0, 1.5)
    else:
        shape = "packed"
        aspect = rng.uniform(1.0, 1.3)

    def bump(a, h, w):
        d = np.angle(np.exp(1j * (t - a)))
        return h * np.exp(-0.5 * (d / w) ** 2)

    if shape == "fan":
        r += bump(front, rng.uniform(0.4, 0.9), rng.uniform(0.5, 0.9))
        r += bump(front + np.pi + rng.normal(0, 0.2), rng.uniform(0.5, 1.4), rng.uniform(0.12, 0.25))
        r *= 1 - bump(front + np.pi / 2, 0.25, 0.5) - bump(front - np.pi / 2, 0.25, 0.5)
    elif shape == "triangular":
        a0 = rng.uniform(0, 2 * np.pi)
        for j in range(3):
            r += bump(a0 + j * 2 * np.pi / 3 + rng.normal(0, 0.25), rng.uniform(0.5, 1.3), rng.uniform(0.15, 0.35))
        r *= rng.uniform(0.55, 0.8)
    elif shape in ("polygonal", "protrusion", "elongated"):
        npro = {"polygonal": rng.integers(3, 7), "protrusion": rng.integers(1, 3),
                "elongated": rng.integers(2, 4)}[shape]
        a0 = rng.uniform(0, 2 * np.pi)
        for j in range(npro):
            a = a0 + j * 2 * np.pi / npro + rng.normal(0, 0.3)
            if shape == "elongated":
                a = rng.choice([0.0, np.pi]) + rng.normal(0, 0.25)
            h = rng.uniform(0.3, 0.9) if shape != "protrusion" else rng.uniform(0.6, 1.4)
            r += bump(a, h, rng.uniform(0.12, 0.35))
        r *= rng.uniform(0.65, 0.9)
    elif shape == "packed":
        # straight edges where neighbours press: half-plane cuts
        for _ in range(rng.integers(2, 6)):
            a = rng.uniform(0, 2 * np.pi)
            d = rng.uniform(0.7, 0.95)
            c = np.cos(t - a)
            with np.errstate(divide="ignore"):
                lim = np.where(c > 1e-3, d / c, np.inf)
            r = np.minimum(r, lim)
    # ruffled edge in some cells
    if rng.random() < 0.3:
        for m in range(6, 24):
            r *= 1 + rng.normal(0, 0.05 / m ** 0.8) * np.cos(m * t + rng.uniform(0, 2 * np.pi))
    r = np.maximum(r, 0.25)
    x = r * np.cos(t) * aspect
    y = r * np.sin(t)
    return y, x, shape, float(aspect), float(front)


def _nucleus_rho(yy, xx, ny, nx, a, b, th, harm, bend, two):
    """Elliptic radius (1 on the envelope) of a possibly kidney-shaped or double nucleus."""
    ct, st = float(np.cos(th)), float(np.sin(th))
    a, b, bend, nx, ny = float(a), float(b), float(bend), float(nx), float(ny)
    dx, dy = xx - nx, yy - ny
    u = dx * ct + dy * st
    v = dy * ct - dx * st
    if bend:
        v = v + (bend / max(a, 1e-6)) * u * u
    if two:
        off = a * 0.55
        r1 = np.hypot((u - off) / (a * 0.5), v / (b * 0.85))
        r2 = np.hypot((u + off) / (a * 0.5), v / (b * 0.8))
        rho = np.minimum(r1, r2)
    else:
        rho = np.hypot(u / a, v / b)
    z = (u / a + 1j * (v / b)).astype(np.complex64)
    z /= np.maximum(np.abs(z), np.float32(1e-6))  # exp(i psi)
    mod = 1.0
    zm = z
    for m in range(1, max(h[0] for h in harm) + 1):
        if m > 1:
            zm = zm * z
        for mm, c, ph in harm:
            if mm == m:
                mod = mod + float(c) * (zm.real * float(np.cos(ph)) - zm.imag * float(np.sin(ph)))
    return rho / mod


def make_cell(rng, size, diameter):
    u = rng.random()
    state = "mitotic" if u < P_MITOTIC else ("rounded" if u < P_MITOTIC + P_ROUNDED else "interphase")
    names = list(LINES)
    line = names[rng.choice(len(names), p=[LINES[k][0] for k in names])]
    n = size
    cy = cx = (n - 1) / 2.0
    if state == "interphase":
        oy, ox, shape, aspect, front = _outline(rng, line)
        length = rng.uniform(*LINES[line][1])
        frac = rng.uniform(0.84, 1.02)
    else:
        k = 256
        t = np.linspace(0, 2 * np.pi, k, endpoint=False)
        r = 1 + 0.02 * np.cos(2 * t + rng.uniform(0, 6)) + 0.015 * np.cos(3 * t + rng.uniform(0, 6))
        aspect = rng.uniform(1.0, 1.12) if state == "rounded" else rng.uniform(1.0, 1.25)
        shape, front = "round", rng.uniform(0, 2 * np.pi)
        if state == "mitotic" and rng.random() < 0.2:  # telophase: two daughters joined by a bridge
            shape, aspect = "telophase", rng.uniform(1.7, 2.1)
            w = rng.uniform(0.12, 0.2)
            r = r * (1 - 0.55 * np.exp(-0.5 * (np.angle(np.exp(1j * (t - np.pi / 2))) / w) ** 2)
                     - 0.55 * np.exp(-0.5 * (np.angle(np.exp(1j * (t + np.pi / 2))) / w) ** 2))
        oy, ox = r * np.sin(t), r * np.cos(t) * aspect
        length = rng.uniform(15, 25) if state == "mitotic" else rng.uniform(11, 20)
        frac = rng.uniform(0.5, 0.76)
    rot = rng.uniform(0, 2 * np.pi)
    py = oy * np.cos(rot) + ox * np.sin(rot)
    pxx = -oy * np.sin(rot) + ox * np.cos(rot)
    scale = (frac * diameter - 1) / (D.extent_pts(py, pxx) - 1)
    py, pxx = py * scale, pxx * scale
    oy0 = cy - (py.max() + py.min()) / 2  # where the outline's origin lands (star centre)
    ox0 = cx - (pxx.max() + pxx.min()) / 2
    py, pxx = py + oy0, pxx + ox0
    ccy, ccx = float(np.mean(py)), float(np.mean(pxx))
    cell = D.star_mask((n, n), oy0, ox0, py, pxx)
    px = float(length / (frac * diameter))
    de = D.edge_distance(cell) * px
    # the outline's x axis maps to the image direction (dy, dx) = (sin rot, cos rot)
    axis = float(np.arctan2(np.sin(rot), np.cos(rot)))
    front_img = float(np.arctan2(np.sin(front) * np.cos(rot) + aspect * np.cos(front) * np.sin(rot),
                                 -np.sin(front) * np.sin(rot) + aspect * np.cos(front) * np.cos(rot)))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    yy_um, xx_um = yy * px, xx * px
    info = {"line": line, "shape": str(shape), "length_um": round(length, 1)}

    if state == "mitotic":
        return _mitotic(rng, n, px, line, cell, de, yy, xx, ccy, ccx, axis, aspect, front_img, info, (py, pxx))

    # nucleus size and place
    nl = rng.uniform(*LINES[line][2])
    if line in ("compact", "stem"):  # the nucleus fills much of a compact cell
        nl = max(nl, length * (rng.uniform(0.55, 0.75) if line == "compact" else rng.uniform(0.65, 0.82)))
    if state == "rounded":
        nl = length * rng.uniform(0.6, 0.75)
    a = nl / 2
    b = a * rng.uniform(0.6, 1.0)
    dmax = float(de.max())
    need = np.sqrt(a * b) * 1.08 + 0.2 * (a - b)
    fit = min(1.0, 0.95 * dmax / need)
    a, b, need = a * fit, b * fit, need * fit
    ok = de >= need
    if not ok.any():
        ok = de >= de.max() * 0.98
    w = ok * (0.3 + de / (de.max() + 1e-9))
    sy, sx = D.sample_positions(rng, w[::2, ::2].copy(), 1)
    ny_px, nx_px = float(sy[0]) * 2, float(sx[0]) * 2
    nth = axis + rng.normal(0, 0.4)
    harm = [(m, rng.normal(0, 0.03), rng.uniform(0, 6)) for m in (2, 3, 4)]
    bend = rng.uniform(0.1, 0.3) * (rng.random() < 0.15)
    two = rng.random() < 0.04
    rho = _nucleus_rho(yy_um, xx_um, ny_px * px, nx_px * px, a, b, nth, harm, bend, two)
    nucleus = (rho <= 1.0) & cell
    info.update(nucleus_um=[round(float(2 * a), 1), round(float(2 * b), 1)], binucleate=bool(two))
    am = (a + b) / 2
    dn = np.maximum(rho - 1.0, 0) * am
    # thickness: dome over the nucleus, thin periphery
    lh = rng.uniform(3.0, 8.0) if line == "spread" else rng.uniform(2.5, 6.0)
    if state == "rounded":
        lh = 10.0
    t_edge = rng.uniform(0.08, 0.3)
    thick = (t_edge + (1 - t_edge) * np.exp(-dn / lh)) * (1 - np.exp(-de / rng.uniform(0.4, 1.5)))
    thick = np.where(cell, thick, 0).astype(np.float32)
    cyto = cell & ~nucleus
    # bulk of the cytoplasm
    ys, xs = np.nonzero(cyto[::2, ::2])
    if ys.size:
        by, bx = ys.mean() * 2 - ny_px, xs.mean() * 2 - nx_px
        bulk = float(np.arctan2(by, bx)) if np.hypot(by, bx) > 2 / px else rng.uniform(0, 2 * np.pi)
    else:
        bulk = rng.uniform(0, 2 * np.pi)
    # nucleoli (1-5 lobed bodies)
    kn = int(rng.choice([1, 2, 3, 4, 5], p=[0.15, 0.3, 0.3, 0.15, 0.1]))
    centres = []
    for _ in range(kn):
        for _try in range(10):
            rr, ang = 0.62 * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
            uu, vv = rr * a * np.cos(ang), rr * b * np.sin(ang)
            qy = ny_px * px + uu * np.sin(nth) + vv * np.cos(nth)
            qx = nx_px * px + uu * np.cos(nth) - vv * np.sin(nth)
            if two or all(np.hypot(qy - c[0], qx - c[1]) > 1.5 for c in centres):
                break
        centres.append((qy, qx))
    sizes = rng.uniform(1.3, 4.5, kn) * (1.0 if kn < 3 else 0.8) * float(np.clip(2 * b / 12.0, 0.6, 1.0))
    lay = np.zeros((n, n), np.float32)
    for (qy, qx), s in zip(centres, sizes):
        m = rng.integers(1, 6)
        spread = s * rng.uniform(0.1, 0.28)
        oy_ = qy + rng.normal(0, spread, m)
        ox_ = qx + rng.normal(0, spread, m)
        D.splat(lay, oy_ / px, ox_ / px, np.full(m, 0.5 * s / np.median(sizes) / m ** 0.35))
    # each body a soft blob of its own size: blur the splats by one sigma (median size)
    sig = float(np.median(sizes)) / 2.8 / px
    lay = D.blur(lay, sig)
    peak = 1.0 / (2 * np.pi * sig * sig) if sig > 0.3 else 1.0
    g = lay / (peak * 0.35 + 1e-12)
    nuc_field = np.clip((g - 0.35) / 0.5, 0, 1).astype(np.float32) * nucleus
    micro = None
    if rng.random() < 0.03 and cyto.any():
        w2 = cyto * (dn > 0.5) * (dn < 4)
        if w2.any():
            my, mx = D.sample_positions(rng, w2.astype(np.float32), 1)
            rm = rng.uniform(0.5, 1.2) / px
            micro = (np.hypot(yy - my[0], xx - mx[0]) <= rm) & cell
    c = Cell(n, px, line, state, cell, nucleus, cyto, de, dn.astype(np.float32), rho.astype(np.float32),
             thick, nuc_field, ccy, ccx, ny_px, nx_px, a, b, nth, axis, aspect, bulk, front_img,
             (py, pxx), None, info)
    c.dna = _dna_interphase(rng, c, micro)
    if micro is not None:
        c.nucleus = c.nucleus | micro
        c.info["micronucleus"] = True
    return c


def _dna_interphase(rng, c, micro):
    """Chromatin texture, heterochromatin foci, a brighter rim and nucleolar holes, drawn in the
    nucleus's bounding box."""
    n, px = c.n, c.px
    ys, xs = np.nonzero(c.nucleus)
    y0, y1 = max(ys.min() - 2, 0), min(ys.max() + 3, n)
    x0, x1 = max(xs.min() - 2, 0), min(xs.max() + 3, n)
    m = max(y1 - y0, x1 - x0)
    sub = (slice(y0, y1), slice(x0, x1))
    hh, ww = y1 - y0, x1 - x0
    nuc, rho, nl = c.nucleus[sub], c.rho[sub], c.nucleoli[sub]
    low = D.field(rng, m, rng.uniform(2.0, 5.0) / px)[:hh, :ww]
    fine = D.field(rng, m, max(rng.uniform(0.15, 0.4) / px, 0.6))[:hh, :ww]
    var = rng.uniform(0.1, 0.2)
    dna = 0.7 * (1 + var * low) * (1 + rng.uniform(0.08, 0.22) * fine)
    # heterochromatin foci (~1 µm), few in human cells
    k = int(rng.integers(0, 14))
    if k:
        fy, fx = D.sample_positions(rng, (nuc & (rho < 0.85)).astype(np.float32), k)
        dna += D.dots((hh, ww), fy, fx, rng.uniform(0.2, 0.6, k), np.full(k, rng.uniform(0.7, 1.3) / px))
    rimw = rng.uniform(0.3, 0.8)
    dna += rng.uniform(0.0, 0.35) * np.exp(-np.maximum(1 - rho, 0) * c.na / rimw)
    dna *= 1 - rng.uniform(0.5, 0.8) * nl
    out = np.zeros((n, n), np.float32)
    out[sub] = np.where(nuc, np.maximum(dna, 0.05), 0)
    if micro is not None:
        out = out + micro * np.float32(rng.uniform(0.9, 1.5))
    return out.astype(np.float32)


def _mitotic(rng, n, px, line, cell, de, yy, xx, ccy, ccx, axis, aspect, front, info, outline):
    """Rounded mitotic cell with chromosomes as a metaphase plate or two anaphase groups."""
    phase = "metaphase" if rng.random() < 0.65 else "anaphase"
    sep = 0.0
    plate = rng.uniform(0, 2 * np.pi)
    if info.get("shape") == "telophase":
        phase, plate = "telophase", axis + np.pi / 2
    length = rng.uniform(7, 13)
    width = rng.uniform(1.2, 2.8)
    m = 500
    t = rng.uniform(-0.5, 0.5, m) * length
    o = rng.normal(0, width / 3, m)
    if phase == "anaphase":
        sep = rng.uniform(2.5, 5.0)
        o = o * 0.7 + np.where(rng.random(m) < 0.5, -sep, sep)
        t = t * 0.9
    elif phase == "telophase":  # two compact daughter chromatin masses, one per daughter
        sep = length * rng.uniform(0.45, 0.6)  # here length (µm) is the plate length drawn above
        sep = min(sep, 0.25 * np.hypot(*np.ptp(np.array(outline), axis=1)) * px)
        o = rng.normal(0, 1.0, m) + np.where(rng.random(m) < 0.5, -sep, sep)
        t = t * 0.4
    py = ccy + (t * np.sin(plate) + o * np.cos(plate)) / px
    pxx = ccx + (t * np.cos(plate) - o * np.sin(plate)) / px
    lay = np.zeros((n, n), np.float32)
    D.splat(lay, py, pxx, rng.uniform(0.5, 1.5, m))
    sig = 0.3 / px
    lay = D.blur(lay, sig)
    lay /= lay.max() + 1e-12
    chrom = (lay > 0.18) & cell
    if not chrom.any():
        chrom = (lay >= lay.max() * 0.5) & cell
    dna = np.where(chrom, lay * rng.uniform(1.6, 2.6), 0).astype(np.float32)
    dna = np.clip(dna, 0, None)
    rho = np.where(chrom, 0.5, 2.0).astype(np.float32)
    dc = ndi.distance_transform_edt(~chrom[::2, ::2]) * 2 * px
    dc = np.repeat(np.repeat(dc, 2, 0), 2, 1)[:n, :n].astype(np.float32)
    thick = np.where(cell, 0.6 + 0.4 * (1 - np.exp(-de / 2.0)), 0).astype(np.float32)
    info.update(phase=phase)
    c = Cell(n, px, line, "mitotic", cell, chrom, cell & ~chrom, de, dc, rho, thick,
             np.zeros((n, n), np.float32), ccy, ccx, ccy, ccx, length / 2, width, plate, axis, aspect,
             rng.uniform(0, 2 * np.pi), front, outline, chrom, info)
    c.dna = dna
    c.plate = plate
    c.phase = phase
    c.sep = sep
    return c
