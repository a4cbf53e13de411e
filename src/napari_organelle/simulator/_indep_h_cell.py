"""indep_h's drawing primitives and cell geometry (outline, nucleus, thickness, DNA, mitosis).

Private to ``napari_organelle.simulator.indep_h``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

_K = 720
_TH = np.linspace(-np.pi, np.pi, _K, endpoint=False)


# ----------------------------------------------------------------------------- primitives
def _noise(rng, shape, sigma):
    """Smooth Gaussian noise, zero mean, unit std, correlation length ``sigma`` px."""
    if sigma < 3:
        a = rng.standard_normal(shape).astype(np.float32)
        if sigma > 0.3:
            a = ndi.gaussian_filter(a, sigma)
    else:
        f = sigma / 1.5
        lo = (int(np.ceil(shape[0] / f)) + 3, int(np.ceil(shape[1] / f)) + 3)
        a = ndi.gaussian_filter(rng.standard_normal(lo).astype(np.float32), 1.5)
        a = ndi.zoom(a, (f, f), order=1)
        a = np.pad(a, ((0, max(0, shape[0] - a.shape[0])), (0, max(0, shape[1] - a.shape[1]))), mode="edge")
        a = a[:shape[0], :shape[1]]
    a = a - a.mean()
    return a / (a.std() + 1e-9)


def _splat(shape, y, x, w):
    """Bilinear splat of weights ``w`` at sub-pixel points: anti-aliased dots and lines."""
    H, W = shape
    w = np.broadcast_to(np.asarray(w, np.float64), np.shape(y)).ravel()
    y = np.ravel(y)
    x = np.ravel(x)
    ok = (y >= 0) & (y < H - 1) & (x >= 0) & (x < W - 1) & (w != 0)
    y, x, w = y[ok], x[ok], w[ok]
    y0 = y.astype(np.int64)
    x0 = x.astype(np.int64)
    fy, fx = y - y0, x - x0
    i = y0 * W + x0
    idx = np.concatenate([i, i + 1, i + W, i + W + 1])
    ww = np.concatenate([w * (1 - fy) * (1 - fx), w * (1 - fy) * fx, w * fy * (1 - fx), w * fy * fx])
    return np.bincount(idx, ww, minlength=H * W).reshape(H, W).astype(np.float32)


def _at(a, y, x):
    """Nearest-pixel lookup, out of frame -> 0/False."""
    H, W = a.shape
    iy = np.clip(np.rint(y).astype(np.int64), 0, H - 1)
    ix = np.clip(np.rint(x).astype(np.int64), 0, W - 1)
    v = a[iy, ix]
    out = (y < 0) | (y > H - 1) | (x < 0) | (x > W - 1)
    return np.where(out, np.zeros((), a.dtype), v)   # keeps bool masks bool (for indexing)


def _curves(rng, y0, x0, a0, nstep, ds, curv, persist):
    """N smooth random curves (N, nstep): curvature ``curv`` (1/px), persistence ``persist`` steps."""
    n = len(y0)
    k = rng.standard_normal((n, nstep)).astype(np.float32)
    if persist > 1:
        k = ndi.gaussian_filter1d(k, persist, axis=1)
        k /= k.std() + 1e-9
    curv = np.broadcast_to(np.asarray(curv, np.float32).reshape(-1, 1) if np.ndim(curv) else curv, (n, 1))
    ang = a0[:, None] + np.cumsum(k * curv * ds, axis=1)
    y = y0[:, None] + np.cumsum(ds * np.sin(ang), axis=1)
    x = x0[:, None] + np.cumsum(ds * np.cos(ang), axis=1)
    return y, x


def _alive(mask, y, x):
    """Each curve alive until it first leaves ``mask``."""
    return np.cumprod(_at(mask, y, x).astype(np.uint8), axis=1).astype(bool)


def _sample(rng, weight, n):
    """``n`` sub-pixel points drawn with probability proportional to ``weight``."""
    c = np.cumsum(weight.ravel().astype(np.float64))
    if c[-1] <= 0:
        c = np.arange(1, c.size + 1, dtype=np.float64)
    i = np.searchsorted(c, rng.random(n) * c[-1])
    i = np.clip(i, 0, c.size - 1)
    W = weight.shape[1]
    return i // W + rng.random(n) - 0.5, i % W + rng.random(n) - 0.5


def _blur(a, sigma):
    return ndi.gaussian_filter(a, sigma) if sigma > 0.35 else a


def _norm(a, mask, q=99.5):
    """Scale so the structure's bright end (among the pixels that carry signal) is ~1."""
    v = a[mask] if mask.any() else a.ravel()
    if v.size and v.max() > 0:
        v = v[v > 0.05 * float(np.percentile(v, 99.9))]
    s = float(np.percentile(v, q)) if v.size else 0.0
    if s <= 0:
        s = float(a.max()) or 1.0
    return a / s


def _dots(shape, y, x, w, sizes_px, ring=None):
    """Dots of FWHM ``sizes_px`` (blurred per size bin); ``ring`` radii (px) draw hollow rings."""
    out = np.zeros(shape, np.float32)
    if len(y) == 0:
        return out
    bins = np.digitize(sizes_px, [1.5, 3, 5, 8])
    for b in np.unique(bins):
        s = bins == b
        sig = max(0.0, float(np.median(sizes_px[s])) / 2.355)
        yy, xx, ww = y[s], x[s], w[s]
        if ring is not None:
            rr = ring[s]
            hasr = rr > 1.2
            if hasr.any():
                ph = np.linspace(0, 2 * np.pi, 12, endpoint=False)
                ry = (yy[hasr, None] + rr[hasr, None] * np.sin(ph)).ravel()
                rx = (xx[hasr, None] + rr[hasr, None] * np.cos(ph)).ravel()
                rw = np.repeat(ww[hasr] / 12, 12)
                yy, xx, ww = np.r_[yy[~hasr], ry], np.r_[xx[~hasr], rx], np.r_[ww[~hasr], rw]
        out += _blur(_splat(shape, yy, xx, ww), min(sig, 0.5 * sig + 0.8) if ring is not None else sig)
    return out


# ----------------------------------------------------------------------------- geometry
class _Geo:
    pass


def _vm(th, c, k):
    return np.exp((np.cos(th - c) - 1) * k)


def _outline(rng, line):
    """Polar radius r(theta) (local frame, mean ~1) and aspect ratio for a cell line."""
    r = np.ones(_K)
    for k in range(2, 7):
        r += rng.normal(0, 0.06 / k ** 0.7) * np.cos(k * _TH + rng.uniform(0, 2 * np.pi))
    info = {}
    if line == "spread":
        kind = rng.choice(["polygonal", "fan", "elongated", "triangular"], p=[0.3, 0.2, 0.3, 0.2])
        info["shape"] = str(kind)
        aspect = rng.uniform(0.35, 0.6) if kind == "elongated" else rng.uniform(0.55, 0.9)
        base = rng.uniform(0.5, 0.8)
        r = r * base
        n = {"polygonal": rng.integers(3, 7), "fan": 2, "elongated": rng.integers(2, 4), "triangular": 3}[kind]
        cs = np.sort(rng.uniform(0, 2 * np.pi, n)) if kind == "polygonal" else None
        if kind == "triangular":
            cs = rng.uniform(0, 2 * np.pi) + np.arange(3) * 2 * np.pi / 3 + rng.normal(0, 0.25, 3)
        elif kind == "elongated":
            cs = np.r_[0.0, np.pi, rng.uniform(0, 2 * np.pi, n - 2)] + rng.normal(0, 0.15, n)
        elif kind == "fan":
            cs = np.array([0.0, np.pi]) + rng.normal(0, 0.1, 2)
        for j, c in enumerate(cs):
            if kind == "fan":
                amp, kap = (rng.uniform(0.5, 0.8), rng.uniform(1.0, 2.5)) if j == 0 else (rng.uniform(0.4, 0.8), rng.uniform(15, 40))
            else:
                amp, kap = rng.uniform(0.3, 0.9), rng.uniform(2.5, 12)
            r = r + amp * _vm(_TH, c, kap)
    elif line == "hela":
        info["shape"] = "hela"
        aspect = rng.uniform(0.6, 0.95)
        r = r * rng.uniform(0.7, 0.9)
        for c in rng.uniform(0, 2 * np.pi, rng.integers(0, 3)):
            r = r + rng.uniform(0.15, 0.55) * _vm(_TH, c, rng.uniform(3, 14))
    elif line == "epithelial":
        info["shape"] = "compact polygonal"
        aspect = rng.uniform(0.65, 1.0)
    elif line == "stem":
        info["shape"] = "stem"
        aspect = rng.uniform(0.75, 1.0)
    else:  # rounded
        info["shape"] = "round"
        r = 1 + 0.3 * (r - 1)
        aspect = rng.uniform(0.85, 1.0)
    if line in ("epithelial", "stem", "hela") and rng.random() < (0.8 if line != "hela" else 0.3):
        for a in rng.uniform(0, 2 * np.pi, rng.integers(2, 6)):   # straight edges against neighbours
            ra = np.interp(a, _TH, r, period=2 * np.pi) * rng.uniform(0.78, 0.95)
            c = np.cos(_TH - a)
            r = np.where(c > 0.05, np.minimum(r, ra / np.maximum(c, 0.05)), r)
    if rng.random() < 0.3:  # ruffled edge
        r = r * (1 + rng.uniform(0.005, 0.02) * np.sin(rng.integers(15, 40) * _TH + rng.uniform(0, 6)))
    return np.maximum(r, 0.05), float(aspect), info


def _polar_mask(shape, cy, cx, ang, sx, sy, r, box=None):
    H, W = shape
    y0, y1, x0, x1 = box if box is not None else (0, H, 0, W)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    ca, sa = np.cos(ang), np.sin(ang)
    u = (dx * ca + dy * sa) / sx
    v = (-dx * sa + dy * ca) / sy
    rho = np.hypot(u, v)
    th = np.arctan2(v, u)
    rr = np.interp(th.ravel(), _TH, r, period=2 * np.pi).reshape(th.shape)
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = rho < rr
    return m


def _points(cy, cx, ang, sx, sy, r, th, frac=1.0):
    rr = np.interp(th, _TH, r, period=2 * np.pi) * frac
    u, v = rr * np.cos(th) * sx, rr * np.sin(th) * sy
    ca, sa = np.cos(ang), np.sin(ang)
    return cy + u * sa + v * ca, cx + u * ca - v * sa


def _geometry(rng, size, diameter):
    g = _Geo()
    g.fsize = size
    u = rng.random()
    g.state = "mitotic" if u < 0.04 else ("rounded" if u < 0.07 else "interphase")
    line = rng.choice(["spread", "hela", "epithelial", "stem"], p=[0.5, 0.28, 0.16, 0.06])
    if g.state == "rounded":
        line = "rounded"
    g.line = str(line)
    L_um = {"spread": (40, 80), "hela": (20, 40), "epithelial": (15, 30), "stem": (10, 18),
            "rounded": (12, 20)}[g.line]
    L_um = rng.uniform(*L_um)
    target = diameter * (rng.uniform(0.86, 1.0) if g.state == "interphase" else rng.uniform(0.5, 0.75))
    if g.state == "mitotic":
        r, aspect = 1 + 0.02 * np.cos(2 * _TH + rng.uniform(0, 6)), rng.uniform(0.9, 1.0)
        L_um = rng.uniform(15, 25)
        g.info = {"shape": "mitotic round"}
    else:
        r, aspect, g.info = _outline(rng, g.line)
    g.ang = rng.uniform(0, 2 * np.pi)
    # extent of the unit shape over 8 directions (as base.extent measures it)
    py, px_ = _points(0, 0, g.ang, 1, aspect, r, _TH)
    e = max(float(np.ptp(py * np.sin(a) + px_ * np.cos(a))) for a in np.linspace(0, np.pi, 8, endpoint=False))
    scale = (target - 1) / e
    g.sx, g.sy, g.r = scale, scale * aspect, r
    g.cy = size / 2 - (py.max() + py.min()) / 2 * scale
    g.cx = size / 2 - (px_.max() + px_.min()) / 2 * scale
    g.px = float(L_um / target)
    # work on a canvas around the cell (filopodia margin), embedded in the frame at the end
    m = int(4.0 / g.px) + 4
    y0 = max(0, int(g.cy + scale * py.min()) - m)
    y1 = min(size, int(np.ceil(g.cy + scale * py.max())) + m + 1)
    x0 = max(0, int(g.cx + scale * px_.min()) - m)
    x1 = min(size, int(np.ceil(g.cx + scale * px_.max())) + m + 1)
    g.off = (y0, y1, x0, x1)
    g.cy -= y0
    g.cx -= x0
    g.H, g.W = y1 - y0, x1 - x0
    g.shape = shape = (g.H, g.W)
    g.size = max(g.H, g.W)
    g.cell = _polar_mask(shape, g.cy, g.cx, g.ang, g.sx, g.sy, r)
    g.d_edge = ndi.distance_transform_edt(g.cell).astype(np.float32)
    g.area_um2 = float(g.cell.sum()) * g.px ** 2
    ys, xs = np.nonzero(g.cell)
    g.ccy, g.ccx = float(ys.mean()), float(xs.mean())
    return g


def _nucleus(rng, g):
    shape = g.shape
    # physical nuclear size (semi-major axis, µm) by cell line, capped to fit the cell's area
    a_um = {"spread": (5.5, 9.5), "hela": (5, 8.5), "epithelial": (4.5, 7.5), "stem": (4, 6.5),
            "rounded": (3.5, 6)}[g.line]
    nn = 2 if rng.random() < 0.04 else 1
    asp = rng.uniform(0.6, 1.0)
    a = rng.uniform(*a_um) / g.px / nn ** 0.35
    cap = np.sqrt({"stem": 0.75, "rounded": 0.6}.get(g.line, 0.5) * g.cell.sum() / nn / np.pi / asp)
    a = float(min(a, cap))
    r = np.ones(_K)
    for k in range(2, 6):
        r += rng.normal(0, 0.025) * np.cos(k * _TH + rng.uniform(0, 6))
    kind = "ellipse"
    if rng.random() < 0.15:
        kind = "kidney"
        r -= rng.uniform(0.12, 0.3) * _vm(_TH, rng.choice([np.pi / 2, -np.pi / 2]), 4)
    elif rng.random() < 0.1:
        kind = "lobed"
        r += rng.uniform(0.05, 0.1) * np.cos(rng.integers(3, 5) * _TH + rng.uniform(0, 6))
    ang = g.ang + rng.normal(0, 0.35)
    nuc = np.zeros(shape, bool)
    g.nuclei = []
    for j in range(nn):
        aa = a
        for _ in range(8):
            need = aa * (asp + (1 - asp) * 0.4) + 1.0 / g.px
            ok = (g.d_edge >= need) & ~ndi.binary_dilation(nuc, iterations=2) if j else (g.d_edge >= need)
            if ok.sum() > 0:
                # off-centre: prefer points near the centroid but not at it
                yy, xx = np.nonzero(ok)
                d = np.hypot(yy - g.ccy, xx - g.ccx)
                w = np.exp(-d / (0.25 * np.sqrt(g.cell.sum()))) + 1e-3
                i = rng.choice(len(yy), p=w / w.sum())
                cy, cx = float(yy[i]), float(xx[i])
                bx = max(0, int(cy - aa * 1.4) - 2), min(g.H, int(cy + aa * 1.4) + 3), \
                    max(0, int(cx - aa * 1.4) - 2), min(g.W, int(cx + aa * 1.4) + 3)
                m = _polar_mask(shape, cy, cx, ang, aa, aa * asp, r, bx) & g.cell
                if m.any() and not (m & nuc).any():
                    nuc |= m
                    g.nuclei.append((cy, cx, ang, aa, aa * asp, r))
                    break
            aa *= 0.87
    if not nuc.any():  # degenerate: a small nucleus at the deepest point
        cy, cx = np.unravel_index(np.argmax(g.d_edge), shape)
        aa = max(2.0, 0.5 * float(g.d_edge.max()))
        nuc = _polar_mask(shape, cy, cx, ang, aa, aa * asp, r) & g.cell
        g.nuclei.append((float(cy), float(cx), ang, aa, aa * asp, r))
    g.info.update(nucleus=kind, nuclei=len(g.nuclei))
    g.nuc = nuc
    g.ny, g.nx = g.nuclei[0][0], g.nuclei[0][1]
    d_nuc = ndi.distance_transform_edt(~nuc).astype(np.float32)
    g.d_nuc = d_nuc
    f = g.d_edge / (g.d_edge + d_nuc + 1e-6)
    g.t = np.where(g.cell, 0.05 + 0.95 * f ** 1.3, 0).astype(np.float32)
    g.cyto = g.cell & ~nuc
    # the MTOC / Golgi side: from the nucleus toward the bulk of the cytoplasm
    cyy, cyx = np.nonzero(g.cyto)
    if cyy.size:
        dv = np.array([cyy.mean() - g.ny, cyx.mean() - g.nx])
    else:
        dv = np.zeros(2)
    g.side = float(np.arctan2(dv[0], dv[1])) if np.hypot(*dv) > 0.5 else rng.uniform(0, 2 * np.pi)
    g.side += rng.normal(0, 0.5)


def _nuc_edge(g, th, extra_px=0.0):
    """Points on the first nucleus boundary at image angles ``th`` (plus ``extra_px`` outward)."""
    cy, cx, ang, a, b, r = g.nuclei[0]
    loc = th - ang
    # radius of the stretched polar shape along local angle (approximate ellipse inversion)
    phi = np.arctan2(np.sin(loc) / b, np.cos(loc) / a)
    rr = np.interp(phi, _TH, r, period=2 * np.pi)
    rad = rr * np.hypot(a * np.cos(phi), b * np.sin(phi)) + extra_px
    return cy + rad * np.sin(th), cx + rad * np.cos(th)


def _dna(rng, g):
    shape = g.shape
    dna = np.zeros(shape, np.float32)
    g.nucleoli = []
    ys, xs = np.nonzero(g.nuc)
    y0, y1, x0, x1 = max(0, ys.min() - 3), min(g.H, ys.max() + 4), max(0, xs.min() - 3), min(g.W, xs.max() + 4)
    m = g.nuc[y0:y1, x0:x1]
    sh = m.shape
    px = g.px
    tex = 1 + rng.uniform(0.1, 0.25) * _noise(rng, sh, max(0.6, 0.25 / px)) \
        + rng.uniform(0.08, 0.2) * _noise(rng, sh, 1.5 / px)
    din = ndi.distance_transform_edt(m).astype(np.float32)
    dome = np.clip(din * px / 2.5, 0, 1) ** 0.5
    img = tex * (0.75 + 0.25 * dome)
    img += rng.uniform(0.05, 0.35) * np.exp(-din * px / 0.4)             # brighter rim
    nf = int(rng.integers(0, 6) if rng.random() < 0.75 else rng.integers(6, 20))  # heterochromatin foci
    fy, fx = _sample(rng, m.astype(np.float32), nf)
    img += rng.uniform(0.3, 0.8) * _norm(_dots(sh, fy, fx, rng.uniform(0.6, 1.4, nf), np.full(nf, 1.0 / px)), m, 100) if nf else 0
    holes = np.zeros(sh, np.float32)
    for (cy, cx, ang, a, b, r) in g.nuclei:
        for _ in range(int(rng.integers(1, 5))):
            rad = rng.uniform(0.5, 1.9) / px
            rad = min(rad, 0.35 * b)
            for _t in range(10):
                q = np.sqrt(rng.random()) * 0.55
                ph = rng.uniform(0, 2 * np.pi)
                hy, hx = cy + q * a * np.sin(ph) - y0, cx + q * b * np.cos(ph) - x0
                if 0 <= int(hy) < sh[0] and 0 <= int(hx) < sh[1] and din[int(hy), int(hx)] > rad:
                    g.nucleoli.append((hy + y0, hx + x0, rad, rng.uniform(0.6, 1.4), rng.uniform(0, 6)))
                    break
    yy, xx = np.mgrid[0:sh[0], 0:sh[1]].astype(np.float32)
    g.nucleolus_field = np.zeros(shape, np.float32)
    for (hy, hx, rad, el, ph) in g.nucleoli:
        dy, dx = yy - (hy - y0), xx - (hx - x0)
        u = (dx * np.cos(ph) + dy * np.sin(ph)) * np.sqrt(el)
        v = (-dx * np.sin(ph) + dy * np.cos(ph)) / np.sqrt(el)
        holes = np.maximum(holes, np.exp(-(u ** 2 + v ** 2) / (2 * (0.8 * rad) ** 2)))
    g.hole_depth = rng.uniform(0.35, 0.75)
    img *= 1 - g.hole_depth * holes
    img = np.maximum(img, 0) * ndi.gaussian_filter(m.astype(np.float32), 0.5) * m
    img *= rng.uniform(0.85, 1.15) / max(float(np.percentile(img[m], 99)), 1e-6)
    dna[y0:y1, x0:x1] = img
    g.holes = np.zeros(shape, np.float32)
    g.holes[y0:y1, x0:x1] = holes * m
    g.box = (y0, y1, x0, x1)
    # micronucleus / debris
    if rng.random() < 0.03:
        ok = g.cyto & (g.d_nuc * g.px > 1) & (g.d_nuc * g.px < 5) & (g.d_edge * g.px > 1.5)
        if ok.any():
            my, mx = _sample(rng, ok.astype(np.float32), 1)
            mn = _dots(shape, my, mx, np.ones(1), np.array([rng.uniform(1, 2.5) / px]))
            mn = _norm(mn, mn > 0, 100)
            dna += 0.9 * mn
            g.nuc |= (mn > 0.3) & g.cell
    return dna


def _mitotic(rng, g):
    shape = g.shape
    px = g.px
    g.spindle = g.ang + rng.uniform(0, 2 * np.pi)
    stage = rng.choice(["prometaphase", "metaphase", "anaphase"], p=[0.3, 0.45, 0.25])
    g.info["stage"] = str(stage)
    n = int(rng.integers(30, 60))
    ca, sa = np.cos(g.spindle), np.sin(g.spindle)   # spindle axis (pole to pole)
    if stage == "prometaphase":
        q = np.sqrt(rng.random(n)) * rng.uniform(3.5, 5.5) / px
        ph = rng.uniform(0, 2 * np.pi, n)
        cy, cx = g.ccy + q * np.sin(ph), g.ccx + q * np.cos(ph)
    else:
        along = rng.normal(0, 0.5, n) / px
        across = rng.uniform(-1, 1, n) * rng.uniform(4, 6) / px
        if stage == "anaphase":
            along += np.where(rng.random(n) < 0.5, -1, 1) * rng.uniform(2.5, 5) / px
        cy, cx = g.ccy + along * sa + across * ca, g.ccx + along * ca - across * sa
    L = rng.uniform(1.0, 3.0, n) / px
    a = g.spindle + rng.normal(0, 0.6, n)
    tt = np.linspace(-0.5, 0.5, 8)
    yy = cy[:, None] + L[:, None] * tt * np.sin(a)[:, None]
    xx = cx[:, None] + L[:, None] * tt * np.cos(a)[:, None]
    dna = _blur(_splat(shape, yy, xx, 1.0), 0.35 / px)
    dna = _norm(dna, dna > 0, 99.5)
    g.nuc = (dna > 0.25) & g.cell
    if not g.nuc.any():
        g.nuc = (dna >= dna.max() * 0.5) & g.cell
    dna = np.minimum(dna, 1.3) * g.nuc * rng.uniform(2.0, 3.5)
    g.nuclei = [(g.ccy, g.ccx, 0.0, 4 / px, 4 / px, np.ones(_K))]
    g.ny, g.nx = g.ccy, g.ccx
    g.d_nuc = ndi.distance_transform_edt(~g.nuc).astype(np.float32)
    R = max(float(g.d_edge.max()), 1.0)
    g.t = np.where(g.cell, 0.3 + 0.7 * np.sqrt(np.clip(g.d_edge / R, 0, 1)), 0).astype(np.float32)
    g.cyto = g.cell & ~g.nuc
    g.nucleoli, g.holes = [], np.zeros(shape, np.float32)
    g.side = rng.uniform(0, 2 * np.pi)
    g.stage = stage
    return dna.astype(np.float32)
