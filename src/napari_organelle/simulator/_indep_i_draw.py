"""Drawing primitives and cell geometry for the ``indep_i`` renderer (numpy + scipy only).

Units: every function takes pixel coordinates; callers convert physical sizes with the cell's
pixel size. Lines are splatted bilinearly with a weight per sample equal to their brightness per
unit length times the sample spacing, so a line thinner than a pixel keeps its brightness per µm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def splat(img, y, x, w):
    """Add weights ``w`` at float positions (y, x) into ``img`` (bilinear, in place)."""
    h, wd = img.shape
    y = np.asarray(y, np.float64)
    w = np.broadcast_to(np.asarray(w, np.float64), y.shape).ravel()
    y = y.ravel()
    x = np.asarray(x, np.float64).ravel()
    y0 = np.floor(y)
    x0 = np.floor(x)
    ok = (y0 >= 0) & (x0 >= 0) & (y0 < h - 1) & (x0 < wd - 1) & (w != 0)
    y0, x0, fy, fx, w = y0[ok], x0[ok], (y - y0)[ok], (x - x0)[ok], w[ok]
    i = (y0 * wd + x0).astype(np.int64)
    idx = np.concatenate([i, i + 1, i + wd, i + wd + 1])
    ww = np.concatenate([w * (1 - fy) * (1 - fx), w * (1 - fy) * fx, w * fy * (1 - fx), w * fy * fx])
    img += np.bincount(idx, ww, minlength=h * wd).reshape(h, wd).astype(img.dtype)
    return img


def blur(img, sigma):
    if sigma < 0.3:
        return img
    return ndi.gaussian_filter(img, sigma, truncate=3.0)


def field(rng, n, sigma):
    """Smooth Gaussian random field (n x n), correlation ``sigma`` px, unit std, float32."""
    sigma = max(float(sigma), 0.5)
    f = max(1, int(sigma / 2.5))
    m = -(-n // f) + 1
    a = rng.standard_normal((m, m)).astype(np.float32)
    a = ndi.gaussian_filter(a, sigma / f, mode="wrap", truncate=3.0)
    if f > 1:
        a = ndi.zoom(a, f, order=1, prefilter=False)
    a = a[:n, :n]
    a -= a.mean()
    a /= a.std() + 1e-9
    return a


def lookup(mask, y, x):
    """Values of ``mask`` at the nearest pixels of (y, x); False/0 outside the frame."""
    h, w = mask.shape
    iy = np.rint(y).astype(np.int64)
    ix = np.rint(x).astype(np.int64)
    ok = (iy >= 0) & (ix >= 0) & (iy < h) & (ix < w)
    out = np.zeros(iy.shape, mask.dtype)
    out[ok] = mask[iy[ok], ix[ok]]
    return out


def walks(rng, y0, x0, th0, length, ds, amp, wavelength, diffusion):
    """Vectorised curved random walks (all in px): returns y, x (N, S) and the alive mask by length.

    Curvature = two random sinusoids (amplitude ``amp`` rad/px, wavelength ``wavelength`` px)
    plus an angular random walk of ``diffusion`` rad per sqrt(px).
    """
    n = len(y0)
    steps = max(2, int(np.ceil(np.max(length) / ds)))
    s = np.arange(steps) * ds
    th = np.repeat(np.asarray(th0, float)[:, None], steps, 1)
    for _ in range(2):
        lam = wavelength * rng.uniform(0.6, 1.6, (n, 1))
        a = amp * rng.uniform(0.2, 1.0, (n, 1))
        ph = rng.uniform(0, 2 * np.pi, (n, 1))
        th = th + np.cumsum(a * np.sin(2 * np.pi * s / lam + ph), 1) * ds
    if diffusion > 0:
        th = th + np.cumsum(rng.normal(0, diffusion * np.sqrt(ds), (n, steps)), 1)
    y = np.asarray(y0, float)[:, None] + np.cumsum(np.sin(th), 1) * ds
    x = np.asarray(x0, float)[:, None] + np.cumsum(np.cos(th), 1) * ds
    alive = s[None, :] < np.asarray(length, float)[:, None]
    return y, x, alive


def keep_inside(alive, mask, y, x):
    """Cut each walk at its first step outside ``mask``."""
    inside = lookup(mask, y, x).astype(bool)
    return alive & (np.cumprod(inside, 1) > 0)


def sample_positions(rng, weight, n):
    """``n`` sub-pixel positions drawn with probability proportional to ``weight``."""
    flat = weight.ravel()
    nz = np.flatnonzero(flat > 0)
    if nz.size == 0 or n <= 0:
        return np.zeros(0), np.zeros(0)
    p = flat[nz].astype(np.float64)
    p /= p.sum()
    pick = nz[rng.choice(nz.size, size=int(n), p=p)]
    w = weight.shape[1]
    return pick // w + rng.uniform(-0.5, 0.5, pick.size), pick % w + rng.uniform(-0.5, 0.5, pick.size)


def dots(shape, y, x, peak, diam_px, rings=None, nbins=3):
    """Round puncta of diameter ``diam_px`` (array) and peak brightness ``peak``; rings (bool
    array) draw a membrane ring (dark centre) instead of a filled dot."""
    out = np.zeros(shape, np.float32)
    if len(y) == 0:
        return out
    diam_px = np.asarray(diam_px, float)
    sig = diam_px / 3.0
    edges = np.quantile(sig, np.linspace(0, 1, nbins + 1))
    b = np.clip(np.searchsorted(edges, sig, side="right") - 1, 0, nbins - 1)
    for k in range(nbins):
        sel = b == k
        if not sel.any():
            continue
        s = float(np.median(sig[sel]))
        layer = np.zeros(shape, np.float32)
        yy, xx, pk, dd = y[sel], x[sel], np.asarray(peak)[sel], diam_px[sel]
        if rings is not None and s > 1.2:
            rr = np.asarray(rings)[sel]
            solid = ~rr
            splat(layer, yy[solid], xx[solid], pk[solid] * 2 * np.pi * s * s)
            if rr.any():
                na = 12
                ang = np.linspace(0, 2 * np.pi, na, endpoint=False)
                rad = (dd[rr] * 0.36)[:, None]
                wt = (pk[rr] * 2 * np.pi * s * s * 0.9 / na)[:, None] * np.ones(na)
                splat(layer, yy[rr][:, None] + rad * np.sin(ang), xx[rr][:, None] + rad * np.cos(ang), wt)
            out += blur(layer, s * 0.6)
        else:
            splat(layer, yy, xx, pk * 2 * np.pi * max(s, 0.4) ** 2)
            out += blur(layer, s)
    return out


def lines(shape, y, x, alive, per_len, width_px=0.0, ds=1.0):
    """Draw walks (y, x, alive: (N, S)) with brightness per px length ``per_len`` (N,) or (N, S)."""
    layer = np.zeros(shape, np.float32)
    pl = np.asarray(per_len, float)
    if pl.ndim == 1:
        pl = pl[:, None]
    w = np.broadcast_to(pl, y.shape) * ds
    splat(layer, y[alive], x[alive], w[alive])
    return blur(layer, width_px / 2.5) if width_px > 0.75 else layer


def star_mask(shape, cy, cx, pts_y, pts_x):
    """Fill a polygon that is star-shaped around (cy, cx) (computed in its bounding box)."""
    h, w = shape
    ang = np.arctan2(pts_y - cy, pts_x - cx)
    rad = np.hypot(pts_y - cy, pts_x - cx)
    o = np.argsort(ang)
    ang, rad = ang[o], rad[o]
    y0, y1 = max(int(np.floor(pts_y.min())) - 1, 0), min(int(np.ceil(pts_y.max())) + 2, h)
    x0, x1 = max(int(np.floor(pts_x.min())) - 1, 0), min(int(np.ceil(pts_x.max())) + 2, w)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - np.float32(cy), xx - np.float32(cx)
    pa = np.arctan2(dy, dx)
    pr = np.hypot(dy, dx)
    rb = np.interp(pa.ravel(), ang, rad, period=2 * np.pi).reshape(pa.shape)
    out = np.zeros(shape, bool)
    out[y0:y1, x0:x1] = pr <= rb
    return out


def extent_pts(py, px):
    best = 0.0
    for a in np.linspace(0, np.pi, 8, endpoint=False):
        p = py * np.sin(a) + px * np.cos(a)
        best = max(best, float(p.max() - p.min() + 1))
    return best


def edge_distance(mask):
    """Distance (px) from each cell pixel to the outside, computed at half resolution."""
    small = mask[::2, ::2]
    d = ndi.distance_transform_edt(np.pad(small, 1))[1:-1, 1:-1] * 2.0
    d = np.repeat(np.repeat(d, 2, 0), 2, 1)[: mask.shape[0], : mask.shape[1]]
    if d.shape != mask.shape:
        d = np.pad(d, ((0, mask.shape[0] - d.shape[0]), (0, mask.shape[1] - d.shape[1])))
    return np.where(mask, np.maximum(d - 0.5, 0.5), 0.0).astype(np.float32)


def cat_walks(a, b):
    """Stack two sets of walks (y, x, alive) of possibly different step counts."""
    s = max(a[0].shape[1], b[0].shape[1])

    def pad(t):
        y, x, al = t
        k = s - y.shape[1]
        if k:
            y = np.pad(y, ((0, 0), (0, k)), mode="edge")
            x = np.pad(x, ((0, 0), (0, k)), mode="edge")
            al = np.pad(al, ((0, 0), (0, k)))
        return y, x, al

    a, b = pad(a), pad(b)
    return tuple(np.concatenate([p, q]) for p, q in zip(a, b))
