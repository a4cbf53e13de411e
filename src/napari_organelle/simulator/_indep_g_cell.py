"""indep_g helpers: cell geometry (outline, nucleus, thickness, nucleoli, chromosomes), the DNA
channel and the drawing primitives (anti-aliased splats, lines, random-walk curves, textures).

Everything is in pixels; ``G.um`` converts micrometres to pixels. numpy + scipy only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

TAU = 2 * np.pi

# cell line: (probability, longest extent um, aspect range, nucleus area fraction, protrusion counts)
LINES = {
    "hela": (0.40, (20, 40), (1.0, 1.7), (0.16, 0.35), (0, 1, 1, 2)),
    "spread": (0.25, (40, 80), (1.4, 3.0), (0.06, 0.14), (0, 1, 2)),
    "epithelial": (0.25, (15, 30), (1.0, 1.45), (0.28, 0.50), (0, 0, 1)),
    "stem": (0.10, (10, 18), (1.0, 1.3), (0.50, 0.72), (0,)),
}


# ----------------------------------------------------------------------------- primitives

def splat(img, y, x, w):
    """Add weights w at sub-pixel positions (y, x) into img by bilinear splatting (in place)."""
    H, W = img.shape
    y = np.asarray(y, float)
    w = np.broadcast_to(np.asarray(w, float), y.shape).ravel()
    y = y.ravel()
    x = np.asarray(x, float).ravel()
    y0 = np.floor(y)
    x0 = np.floor(x)
    ok = (y0 >= 0) & (y0 < H - 1) & (x0 >= 0) & (x0 < W - 1) & (w != 0)
    if not ok.any():
        return img
    y, x, w, y0, x0 = y[ok], x[ok], w[ok], y0[ok].astype(np.int64), x0[ok].astype(np.int64)
    fy, fx = y - y0, x - x0
    idx = y0 * W + x0
    n = H * W
    acc = np.bincount(idx, w * (1 - fy) * (1 - fx), n)
    acc += np.bincount(idx + 1, w * (1 - fy) * fx, n)
    acc += np.bincount(idx + W, w * fy * (1 - fx), n)
    acc += np.bincount(idx + W + 1, w * fy * fx, n)
    img += acc.reshape(H, W)
    return img


def blur(img, sigma, bb=None):
    """Gaussian blur; with bb=(y0, y1, x0, x1) only that box (plus a margin) is filtered."""
    if sigma <= 0.3:
        return img
    if bb is None:
        return ndi.gaussian_filter(img, sigma, truncate=3.0)
    m = int(3 * sigma) + 2
    H, W = img.shape
    y0, y1, x0, x1 = max(bb[0] - m, 0), min(bb[1] + m, H), max(bb[2] - m, 0), min(bb[3] + m, W)
    out = np.zeros_like(img)
    out[y0:y1, x0:x1] = ndi.gaussian_filter(img[y0:y1, x0:x1], sigma, truncate=3.0)
    return out


def resample_polyline(pts, step=0.6):
    """Points every ``step`` px along a polyline (K, 2) and the segment length per point."""
    d = np.hypot(*np.diff(pts, axis=0).T)
    s = np.concatenate([[0], np.cumsum(d)])
    if s[-1] <= 0:
        return pts[:1], np.array([0.0])
    n = max(int(s[-1] / step), 1)
    t = np.linspace(0, s[-1], n + 1)
    out = np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], 1)
    return out, np.full(len(out), s[-1] / (n + 1))


def segments(y0, x0, y1, x1, step=0.6):
    """Sample points along many straight segments: (y, x, ds, segment index)."""
    L = np.hypot(y1 - y0, x1 - x0)
    n = np.maximum(np.ceil(L / step).astype(int), 1)
    seg = np.repeat(np.arange(len(L)), n)
    start = np.repeat(np.cumsum(n) - n, n)
    t = (np.arange(n.sum()) - start + 0.5) / n[seg]
    return (y0[seg] + t * (y1 - y0)[seg], x0[seg] + t * (x1 - x0)[seg], (L / n)[seg], seg)


def walks(rng, y, x, ang, nstep, ds, turn, drift=None):
    """Persistent random walks: (N, nstep) arrays of y, x. ``turn`` is the angular sd per step."""
    N = len(y)
    turn = np.broadcast_to(np.asarray(turn, float), (N,))[:, None]
    d = rng.standard_normal((N, nstep)) * turn
    d[:, 0] = 0
    if drift is not None:
        d += np.asarray(drift)[:, None]
    a = ang[:, None] + np.cumsum(d, axis=1)
    yy = y[:, None] + np.cumsum(ds * np.sin(a), axis=1) - ds * np.sin(a[:, :1])
    xx = x[:, None] + np.cumsum(ds * np.cos(a), axis=1) - ds * np.cos(a[:, :1])
    return yy, xx


def lookup(mask, y, x):
    H, W = mask.shape
    yi = np.clip(np.rint(y).astype(np.int64), 0, H - 1)
    xi = np.clip(np.rint(x).astype(np.int64), 0, W - 1)
    return mask[yi, xi]


def until_exit(inside):
    """Along axis 1: True up to (not including) the first False."""
    return np.cumprod(inside, axis=1).astype(bool)


def upsample(a, k, shape):
    """Bilinear upsampling of a coarse grid (sample i at pixel i*k) by an integer factor k."""
    H, W = shape
    out = a.astype(np.float32)
    for axis, n in ((0, H), (1, W)):
        q = np.arange(n, dtype=np.float32) / k
        i0 = np.minimum(q.astype(np.int64), out.shape[axis] - 2)
        f = q - i0
        lo, hi = np.take(out, i0, axis=axis), np.take(out, i0 + 1, axis=axis)
        f = f[:, None] if axis == 0 else f[None, :]
        out = lo + (hi - lo) * f
    return out


def smooth_noise(rng, shape, sigma):
    """Zero-mean unit-sd Gaussian random field with correlation length ~sigma px."""
    H, W = shape
    k = max(1, int(sigma / 2.0))
    small = rng.standard_normal((H // k + 3, W // k + 3))
    g = ndi.gaussian_filter(small, max(sigma / k, 0.5), mode="wrap")
    if k > 1:
        g = upsample(g, k, (H, W))
    g = g[:H, :W]
    return (g - g.mean()) / (g.std() + 1e-9)


def sample_points(rng, weight, n):
    """n sub-pixel positions drawn with probability proportional to ``weight``."""
    p = weight.ravel().astype(float)
    c = np.cumsum(p)
    if n <= 0 or c[-1] <= 0:
        return np.zeros(0), np.zeros(0)
    idx = np.searchsorted(c, rng.random(n) * c[-1], side="right")
    idx = np.minimum(idx, p.size - 1)
    W = weight.shape[1]
    return idx // W + rng.random(n) - 0.5, idx % W + rng.random(n) - 0.5


def loguni(rng, lo, hi, n=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def angdiff(a, b):
    return (a - b + np.pi) % TAU - np.pi


# ----------------------------------------------------------------------------- geometry

class Geometry:
    """One cell's body: masks, distances, thickness, nucleus, MTOC, nucleoli (class-independent)."""


def _polar(ang_pts, r_pts):
    o = np.argsort(ang_pts)
    a, r = ang_pts[o], r_pts[o]
    a = np.concatenate([a[-1:] - TAU, a, a[:1] + TAU])
    r = np.concatenate([r[-1:], r, r[:1]])
    return lambda q: np.interp(q, a, r)


def _extent_pts(p):
    best = 0.0
    for a in np.linspace(0, np.pi, 36, endpoint=False):
        q = p[:, 0] * np.sin(a) + p[:, 1] * np.cos(a)
        best = max(best, q.max() - q.min())
    return best


def _outline(rng, line, rounded):
    n = 540
    t = np.linspace(0, TAU, n, endpoint=False)
    r = np.ones(n)
    info = {}
    if rounded:
        for k in range(2, 5):
            r += rng.normal(0, 0.025) * np.cos(k * t + rng.uniform(0, TAU))
        return t, r, 1.0, []
    rough = {"hela": 0.10, "spread": 0.14, "epithelial": 0.07, "stem": 0.06}[line]
    for k in range(2, 8):
        r += rng.normal(0, rough / np.sqrt(k)) * np.cos(k * t + rng.uniform(0, TAU))
    nprot = rng.choice(LINES[line][4])
    for _ in range(nprot):
        c, w = rng.uniform(0, TAU), rng.uniform(0.12, 0.35)
        r += rng.uniform(0.25, 0.8) * np.exp(-0.5 * (angdiff(t, c) / w) ** 2)
    shape = "plain"
    if line == "spread" and rng.random() < 0.6:  # fan / triangle with broad lamella and tail
        shape = "fan"
        c = rng.uniform(0, TAU)
        r *= 1 + 0.35 * np.cos(angdiff(t, c)).clip(0) ** 0.7
        r += rng.uniform(0.3, 0.9) * np.exp(-0.5 * (angdiff(t, c + np.pi) / 0.15) ** 2)
    if rng.random() < 0.3:  # concave between protrusions
        for _ in range(rng.integers(1, 3)):
            c = rng.uniform(0, TAU)
            r -= rng.uniform(0.1, 0.25) * np.exp(-0.5 * (angdiff(t, c) / rng.uniform(0.2, 0.5)) ** 2)
    if rng.random() < 0.25:  # ruffled
        shape += "+ruffled"
        for k in rng.integers(10, 28, 4):
            r += rng.normal(0, 0.006) * np.cos(k * t + rng.uniform(0, TAU))
    r = np.maximum(r, 0.35)
    lo, hi = LINES[line][2]
    aspect = rng.uniform(lo, hi)
    info["shape"] = shape
    return t, r, aspect, [shape]


def build(rng, size, diameter, state):
    G = Geometry()
    G.size, G.state = size, state
    names = list(LINES)
    line = names[rng.choice(len(names), p=[LINES[k][0] for k in names])]
    G.line = line
    phys = rng.uniform(*LINES[line][1])  # longest extent of this line's interphase cell, um
    frac_ext = rng.uniform(0.86, 1.04)
    G.px = float(phys / (frac_ext * diameter))  # um per pixel
    G.um = 1.0 / G.px
    rounded = state != "interphase"
    t, r, aspect, _ = _outline(rng, line, rounded)
    theta = rng.uniform(0, TAU)
    G.axis = theta
    p = np.stack([r * np.sin(t), aspect * r * np.cos(t)], 1)  # (y, x), long axis along x
    c, s = np.cos(theta), np.sin(theta)
    p = np.stack([p[:, 1] * s + p[:, 0] * c, p[:, 1] * c - p[:, 0] * s], 1)
    G.straight = 0
    cuts = []
    if not rounded and line in ("epithelial", "stem", "hela") and rng.random() < {"hela": 0.3}.get(line, 0.6):
        for _ in range(rng.integers(1, 4)):  # straight edges shared with neighbours
            a = rng.uniform(0, TAU)
            nvec = np.array([np.sin(a), np.cos(a)])
            cut = rng.uniform(0.65, 0.9) * (p @ nvec).max()
            # along each ray from the star centre, stop at the line (angles kept: no saw-tooth)
            ang0, r0 = np.arctan2(p[:, 0], p[:, 1]), np.hypot(p[:, 0], p[:, 1])
            cosd = np.cos(ang0 - a)
            r0 = np.where(cosd > 1e-6, np.minimum(r0, cut / np.maximum(cosd, 1e-6)), r0)
            p = np.stack([r0 * np.sin(ang0), r0 * np.cos(ang0)], 1)
            G.straight += 1
            cuts.append((a, cut))
    if rounded:
        target = diameter * (rng.uniform(0.5, 0.78) if state == "rounded" else 1.0)
        if state == "mitotic":
            target = np.clip(rng.uniform(15, 25) * G.um, 0.5 * diameter, 0.78 * diameter)
        if state == "rounded":
            target = np.clip(rng.uniform(10, 20) * G.um, 0.48 * diameter, 0.72 * diameter)
    else:
        target = frac_ext * diameter
    fac = target / _extent_pts(p)
    p *= fac
    G.cuts = [(a, cut * fac) for a, cut in cuts]  # straight edges: direction and distance from the star centre
    ctr = (p.max(0) + p.min(0)) / 2
    p -= ctr
    G.cy = G.cx = size / 2.0
    origin = -ctr  # star centre relative to frame centre
    G.oy, G.ox = G.cy + origin[0], G.cx + origin[1]
    # polar radius function about the star centre
    q = p + ctr
    G.Rf = _polar(np.arctan2(q[:, 0], q[:, 1]), np.hypot(q[:, 0], q[:, 1]))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    G.yy, G.xx = yy, xx
    dy, dx = yy - G.oy, xx - G.ox
    G.ang = np.arctan2(dy, dx)
    G.rho = np.hypot(dy, dx)
    Rmap = G.Rf(G.ang)
    G.Rmap = Rmap
    G.cellsoft = np.clip(Rmap - G.rho + 0.5, 0, 1).astype(np.float32)
    G.cell = G.cellsoft > 0.5
    G.bnd = q  # boundary points relative to star centre
    G.filopodia = []
    if not rounded and rng.random() < 0.3:
        _filopodia(rng, G, p)
    ys, xs = np.nonzero(G.cell)
    G.bb = (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
    _nucleus(rng, G)
    _distances(rng, G)
    return G


def _filopodia(rng, G, p):
    """Thin spikes out of the edge; they are part of the cell mask (for every class)."""
    n = rng.integers(4, 25)
    c = rng.uniform(-np.pi, np.pi)
    psi = c + rng.normal(0, rng.uniform(0.3, 1.5), n)
    lo = np.array([(p @ np.array([np.sin(a), np.cos(a)])).min() for a in np.linspace(0, np.pi, 16, endpoint=False)])
    hi = np.array([(p @ np.array([np.sin(a), np.cos(a)])).max() for a in np.linspace(0, np.pi, 16, endpoint=False)])
    dirs = np.linspace(0, np.pi, 16, endpoint=False)
    for a in psi:
        R0 = float(G.Rf(np.array([a]))[0]) - 1.0
        out = a + rng.normal(0, 0.25)
        L = rng.uniform(2, 10) * G.um
        base = np.array([G.oy + R0 * np.sin(a), G.ox + R0 * np.cos(a)])
        tip = base + L * np.array([np.sin(out), np.cos(out)])
        tp = tip - np.array([G.cy, G.cx])
        proj = tp[0] * np.sin(dirs) + tp[1] * np.cos(dirs)
        if (proj < lo + 1).any() or (proj > hi - 1).any():
            continue
        G.filopodia.append((base, tip))
    if G.filopodia:
        y0, x0, y1, x1 = (np.array(v) for v in zip(*[(b[0], b[1], t[0], t[1]) for b, t in G.filopodia]))
        ys, xs, _, _ = segments(y0, x0, y1, x1, 0.5)
        m = np.zeros(G.cell.shape)
        splat(m, ys, xs, 1.0)
        fm = m > 0.3
        G.cell = G.cell | fm
        G.cellsoft = np.maximum(G.cellsoft, np.minimum(m, 1).astype(np.float32) * fm)


def _ellipse_polar(rng, a, b, orient, kidney):
    t = np.linspace(-np.pi, np.pi, 360, endpoint=False)
    r = a * b / np.sqrt((b * np.cos(t - orient)) ** 2 + (a * np.sin(t - orient)) ** 2)
    for k in range(2, 6):
        r *= 1 + rng.normal(0, 0.02) * np.cos(k * t + rng.uniform(0, TAU))
    if kidney > 0:
        c = orient + np.pi / 2 * rng.choice([-1, 1])
        r *= 1 - kidney * np.exp(-0.5 * (angdiff(t, c) / 0.45) ** 2)
    return _polar(t, r)


def _nucleus(rng, G):
    area = G.cell.sum()
    lo, hi = LINES[G.line][3]
    if G.state == "rounded":
        lo, hi = 0.45, 0.7
    frac = rng.uniform(lo, hi)
    aspect = rng.uniform(0.6, 1.0) if G.state == "interphase" else rng.uniform(0.8, 1.0)
    a = np.sqrt(frac * area / (np.pi * aspect))
    a = float(np.clip(a, 5.0 * G.um, 11 * G.um))
    b = a * aspect
    orient = G.axis + rng.normal(0, 0.4)
    kidney = rng.uniform(0.1, 0.3) if rng.random() < 0.2 else 0.0
    G.binucleate = G.state == "interphase" and rng.random() < 0.03
    if G.binucleate:
        a, b = a * 0.75, b * 0.75
    Rn = _ellipse_polar(rng, a, b, orient, kidney)
    Rn2 = _ellipse_polar(rng, a, b, orient, 0) if G.binucleate else None
    # off-centre position, shrunk until inside the cell with a margin
    d = rng.uniform(-np.pi, np.pi)
    off = rng.uniform(0.0, 0.6) if G.state == "interphase" else rng.uniform(0, 0.15)
    tb = np.linspace(-np.pi, np.pi, 120, endpoint=False)
    margin = 0.8 * G.um if G.state == "interphase" else 0.5 * G.um
    scale = 1.0
    for _ in range(30):
        Rc = G.Rf(np.array([d]))[0]
        ny, nx = G.oy + off * Rc * np.sin(d), G.ox + off * Rc * np.cos(d)
        centres = [(ny, nx, Rn)]
        if G.binucleate:
            sep = 1.02 * b * scale
            e = orient + np.pi / 2
            centres = [(ny + sep * np.sin(e), nx + sep * np.cos(e), Rn), (ny - sep * np.sin(e), nx - sep * np.cos(e), Rn2)]
        okall = True
        for (cy, cx, f) in centres:
            rr = f(tb) * scale
            by, bx = cy + rr * np.sin(tb) - G.oy, cx + rr * np.cos(tb) - G.ox
            if (np.hypot(by, bx) > G.Rf(np.arctan2(by, bx)) - margin).any():
                okall = False
        if okall:
            break
        off *= 0.85
        scale *= 0.96
    G.nuclei = [(cy, cx, f, scale) for cy, cx, f in centres]
    soft = np.zeros(G.cell.shape, np.float32)
    for cy, cx, f, sc in G.nuclei:
        rm = f(tb).max() * sc + 3
        y0, y1 = int(max(cy - rm, 0)), int(min(cy + rm + 1, G.size))
        x0, x1 = int(max(cx - rm, 0)), int(min(cx + rm + 1, G.size))
        dy, dx = G.yy[y0:y1, x0:x1] - cy, G.xx[y0:y1, x0:x1] - cx
        soft[y0:y1, x0:x1] = np.maximum(soft[y0:y1, x0:x1],
                                        np.clip(f(np.arctan2(dy, dx)) * sc - np.hypot(dy, dx) + 0.5, 0, 1))
    G.nucsoft = soft * G.cellsoft
    G.nuc = G.nucsoft > 0.5
    G.ny, G.nx = np.mean([c[0] for c in G.nuclei]), np.mean([c[1] for c in G.nuclei])
    G.nuc_r = float(np.sqrt(G.nuc.sum() / np.pi))
    # MTOC: next to the nucleus, toward the bulk of the cytoplasm
    ys, xs = np.nonzero(G.cell)
    vy, vx = ys.mean() - G.ny, xs.mean() - G.nx
    if np.hypot(vy, vx) < 0.05 * G.nuc_r:
        base = rng.uniform(-np.pi, np.pi)
    else:
        base = np.arctan2(vy, vx)
    G.mtoc_dir = base + rng.normal(0, 0.5)
    cy, cx, f, sc = G.nuclei[0]
    rn = f(np.array([G.mtoc_dir]))[0] * sc + rng.uniform(0.4, 1.8) * G.um
    G.my, G.mx = cy + rn * np.sin(G.mtoc_dir), cx + rn * np.cos(G.mtoc_dir)
    if not lookup(G.cell, G.my, G.mx):
        G.my, G.mx = G.ny, G.nx


def _distances(rng, G):
    """Edge distance, nucleus distance (outside and inside) and a thickness map in [0, 1]."""
    k = max(1, G.size // 128)
    cm = G.cell[::k, ::k]
    nm = G.nuc[::k, ::k]
    de = ndi.distance_transform_edt(cm) * k
    dn = ndi.distance_transform_edt(~nm) * k
    di = ndi.distance_transform_edt(nm) * k
    if k > 1:
        de, dn, di = (upsample(a, k, (G.size, G.size)) for a in (de, dn, di))
    G.de, G.dn, G.di = de.astype(np.float32), dn.astype(np.float32), di.astype(np.float32)
    if k > 1:  # exact distances near the nucleus (nuclear envelope, rims), coarse ones further out
        ys, xs = np.nonzero(G.nuc)
        pad = int(2 * G.um) + 6
        y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, G.size)
        x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, G.size)
        sub = G.nuc[y0:y1, x0:x1]
        dn_f = ndi.distance_transform_edt(~sub)
        inner = dn_f < pad - 2
        G.dn[y0:y1, x0:x1][inner] = dn_f[inner]
        G.di[y0:y1, x0:x1] = ndi.distance_transform_edt(np.pad(sub, 1, constant_values=False))[1:-1, 1:-1]
    if G.state == "interphase":
        gamma = rng.uniform(0.6, 1.3)
        T = (G.de / (G.de + G.dn + 1.0)) ** gamma
        T = T * (1 - np.exp(-G.de / (0.6 * G.um)))
        G.thick_um = rng.uniform(4, 8)
    else:
        q = np.clip(G.rho / np.maximum(G.Rmap, 1), 0, 1)
        T = np.sqrt(1 - q ** 2)
        G.thick_um = G.Rmap.mean() * G.px
    G.T = (T * G.cellsoft).astype(np.float32)
    G.cyto = (G.cellsoft - G.nucsoft).clip(0)


# ----------------------------------------------------------------------------- nucleoli, chromosomes, DNA

def nucleoli(rng, G):
    """Soft map of 1-5 lobed nucleolar bodies inside the nucleus and their list."""
    n = int(rng.choice([1, 2, 2, 3, 3, 4, 5]))
    out = np.zeros(G.cell.shape, np.float32)
    bodies = []
    w = np.clip(G.di - 1.2 * G.um, 0, None)
    if w.max() <= 0:
        w = G.di
    big = rng.uniform(2.5, 4.5) if n == 1 else rng.uniform(1.0, 3.2)
    ys, xs = sample_points(rng, (w > 0).astype(float) * w ** 0.5, n)
    for y, x in zip(ys, xs):
        d = big * rng.uniform(0.7, 1.2) * G.um / 2
        d = min(d, float(G.di[int(y), int(x)]) * 0.9)
        for _ in range(rng.integers(1, 4)):
            ly = y + rng.normal(0, 0.35) * d
            lx = x + rng.normal(0, 0.35) * d
            rr = d * rng.uniform(0.55, 0.9)
            y0, y1 = int(max(ly - rr - 2, 0)), int(min(ly + rr + 3, G.size))
            x0, x1 = int(max(lx - rr - 2, 0)), int(min(lx + rr + 3, G.size))
            dist = np.hypot(G.yy[y0:y1, x0:x1] - ly, G.xx[y0:y1, x0:x1] - lx)
            out[y0:y1, x0:x1] = np.maximum(out[y0:y1, x0:x1], np.clip(rr - dist + 0.5, 0, 1))
        bodies.append((y, x, d))
    G.nucleoli = out * G.nucsoft
    G.nucleolus_list = bodies


def chromosomes(rng, G):
    """Mitotic chromosome mass (soft map) and its phase; replaces the nucleus."""
    phase = rng.choice(["prometaphase", "metaphase", "anaphase"], p=[0.3, 0.45, 0.25])
    m = np.zeros(G.cell.shape)
    a = rng.uniform(0, np.pi)
    L = rng.uniform(7, 13) * G.um
    Rr = G.Rmap.min()
    L = min(L, 1.3 * Rr)
    if phase == "prometaphase":
        n = 40
        ry, rx = rng.normal(G.oy, 0.22 * L, n), rng.normal(G.ox, 0.22 * L, n)
    else:
        t = rng.uniform(-0.5, 0.5, 46) * L
        wid = rng.uniform(0.6, 1.2) * G.um
        if phase == "metaphase":
            off = rng.normal(0, wid, 46)
        else:
            sep = rng.uniform(2.5, 5.5) * G.um
            off = np.where(rng.random(46) < 0.5, -sep, sep) + rng.normal(0, 0.6 * wid, 46)
            t = t * 0.8
        ry = G.oy + t * np.cos(a) + off * np.sin(a)
        rx = G.ox - t * np.sin(a) + off * np.cos(a)
    # each chromosome a short rod of 1-3 um
    ca = rng.uniform(0, TAU, len(ry)) if phase == "prometaphase" else a + np.pi / 2 + rng.normal(0, 0.4, len(ry))
    ln = rng.uniform(1, 3, len(ry)) * G.um
    ys, xs, ds, _ = segments(ry - ln / 2 * np.sin(ca), rx - ln / 2 * np.cos(ca), ry + ln / 2 * np.sin(ca),
                             rx + ln / 2 * np.cos(ca), 0.6)
    splat(m, ys, xs, ds)
    m = blur(m, 0.35 * G.um)
    m = m / (np.percentile(m[m > 0], 98) + 1e-9)
    soft = np.clip(m * 1.6, 0, 1.5) * G.cellsoft
    G.chrom = soft.astype(np.float32)
    G.nuc = (soft > 0.35) & G.cell
    G.nucsoft = np.clip(soft, 0, 1).astype(np.float32)
    G.phase = phase
    G.plate_angle = a
    G.spindle_len = L
    G.my, G.mx = G.oy, G.ox


def dna(rng, G):
    """The DNA channel: chromatin texture, heterochromatin foci, rim, nucleolar holes."""
    S = G.cell.shape
    if G.state == "mitotic":
        tex = 1 + 0.2 * smooth_noise(rng, S, 0.3 * G.um)
        return G.chrom * tex.clip(0.3) * rng.uniform(2, 4)
    ys_, xs_ = np.nonzero(G.nuc)
    pad = int(2 * G.um) + 3
    sl = (slice(max(ys_.min() - pad, 0), ys_.max() + pad + 1), slice(max(xs_.min() - pad, 0), xs_.max() + pad + 1))
    ns, di, nl = G.nucsoft[sl], G.di[sl], G.nucleoli[sl]
    S2 = ns.shape
    gran = rng.uniform(0.3, 1.0) * G.um / 2
    tex = 1 + rng.uniform(0.08, 0.25) * smooth_noise(rng, S2, gran)
    tex *= 1 + rng.uniform(0.1, 0.3) * smooth_noise(rng, S2, 2.5 * G.um)
    sub = ns * tex.clip(0.2)
    nf = int(rng.choice([0, 2, 5, 10, 20], p=[0.3, 0.3, 0.2, 0.12, 0.08]))
    if nf:
        ys, xs = sample_points(rng, (ns > 0.5).astype(float), nf)
        f = np.zeros(S2)
        splat(f, ys, xs, rng.uniform(0.5, 1.5, nf) * (G.um ** 2))
        sub += blur(f, 0.4 * G.um) * ns
    rim = rng.uniform(0.0, 0.4)
    sub *= 1 + rim * np.exp(-di / (0.6 * G.um))
    sub *= 1 - rng.uniform(0.5, 0.85) * blur(nl, 0.15 * G.um)
    img = np.zeros(S, np.float32)
    img[sl] = sub
    if rng.random() < 0.04:  # micronucleus / debris
        ys, xs = sample_points(rng, (G.cyto > 0.9) * np.exp(-G.dn / (3 * G.um)), 1)
        if len(ys):
            r = rng.uniform(0.6, 1.5) * G.um
            img += 1.3 * np.clip(r - np.hypot(G.yy - ys[0], G.xx - xs[0]) + 0.5, 0, 1)
    return img * 0.6
