"""Drawing primitives for the ``indep_c`` renderer (numpy + scipy only, all vectorised).

Conventions: images are float32 canvases indexed ``[y, x]`` with pixel centres at integer
coordinates. Values are fluorophore *densities* in "brightness" units: a structure drawn with
brightness 1 would peak at about 1 after a nominal point-spread function of ``PSF_UM`` (so thin
lines, dots and diffuse haze can be given comparable numbers whatever the pixel size). Lines carry
their brightness per unit length exactly (anti-aliased sub-pixel splatting), whatever the pixel size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

PSF_UM = 0.12  # sigma of the nominal point-spread function used to express brightness
_SQ2PI = float(np.sqrt(2 * np.pi))
_RBINS = np.array([1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 32, 40, 50, 64, 80, 100, 128])


def line_density(brightness, width_um=0.0):
    """Linear density (brightness x um) of a line of physical width ``width_um`` (FWHM) that peaks at
    ``brightness`` after the nominal PSF."""
    s = np.sqrt(PSF_UM ** 2 + (np.asarray(width_um) / 2.355) ** 2)
    return np.asarray(brightness) * _SQ2PI * s


def dot_peak(brightness, sigma_um):
    """Specimen peak density of a Gaussian dot of sigma ``sigma_um`` that peaks at ``brightness``
    after the nominal PSF."""
    s2 = np.asarray(sigma_um) ** 2
    return np.asarray(brightness) * (s2 + PSF_UM ** 2) / np.maximum(s2, 1e-6)


def splat(img, y, x, w):
    """Add weights ``w`` at sub-pixel positions (bilinear, so the sum is conserved) into ``img``."""
    h, wd = img.shape
    y = np.asarray(y, np.float64)
    x = np.asarray(x, np.float64)
    w = np.broadcast_to(np.asarray(w, np.float64), y.shape)
    y0 = np.floor(y)
    x0 = np.floor(x)
    fy = y - y0
    fx = x - x0
    y0 = y0.astype(np.intp)
    x0 = x0.astype(np.intp)
    ok = (y0 >= 0) & (y0 < h - 1) & (x0 >= 0) & (x0 < wd - 1)
    if not ok.all():
        y0, x0, fy, fx, w = y0[ok], x0[ok], fy[ok], fx[ok], w[ok]
    if y0.size == 0:
        return img
    i = y0 * wd + x0
    gy = 1.0 - fy
    gx = 1.0 - fx
    idx = np.concatenate((i, i + 1, i + wd, i + wd + 1))
    ww = np.concatenate((w * gy * gx, w * gy * fx, w * fy * gx, w * fy * fx))
    img += np.bincount(idx, ww, minlength=h * wd).reshape(h, wd).astype(np.float32)
    return img


def lookup(field, y, x, fill=None):
    """Nearest-pixel values of ``field`` at positions (y, x). Positions off the canvas read its
    border (outside every cell, so a distance field reads "outside"); with ``fill`` given they read
    ``fill`` instead."""
    h, w = field.shape
    iy = np.rint(y).astype(np.intp)
    ix = np.rint(x).astype(np.intp)
    if fill is None:
        np.clip(iy, 0, h - 1, out=iy)
        np.clip(ix, 0, w - 1, out=ix)
        return field.ravel()[iy * w + ix]
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    out = np.full(np.shape(y), fill, dtype=field.dtype)
    out[ok] = field[iy[ok], ix[ok]]
    return out


def seg_samples(ay, ax, by, bx, spacing=0.7):
    """Sample points along segments a->b (pixels): positions, segment index, length per sample."""
    dy = by - ay
    dx = bx - ax
    L = np.hypot(dy, dx)
    n = np.maximum(1, np.ceil(L / spacing)).astype(np.intp)
    idx = np.repeat(np.arange(L.size), n)
    start = np.cumsum(n) - n
    t = (np.arange(idx.size) - start[idx] + 0.5) / n[idx]
    return ay[idx] + t * dy[idx], ax[idx] + t * dx[idx], idx, (L / n)[idx]


def draw_segments(img, ay, ax, by, bx, lam, p, wfield=None, spacing=0.7):
    """Draw segments with linear density ``lam`` (brightness x um, per segment or scalar) at pixel
    size ``p``; ``wfield`` (a canvas) scales each sample by its local value."""
    ay, ax, by, bx = (np.asarray(v, np.float64).ravel() for v in (ay, ax, by, bx))
    if ay.size == 0:
        return img
    y, x, idx, ds = seg_samples(ay, ax, by, bx, spacing)
    lam = np.broadcast_to(np.asarray(lam, np.float64).ravel(), ay.shape)
    w = lam[idx] * ds / p  # amount (lam * ds * p) per pixel area (p^2)
    if wfield is not None:
        w = w * lookup(wfield, y, x)
    return splat(img, y, x, w)


def draw_paths(img, P, alive, lam, p, wfield=None, spacing=0.7):
    """Draw polylines ``P`` (steps, n, 2) where consecutive points are both ``alive`` (steps, n)."""
    ok = alive[1:] & alive[:-1]
    lam = np.broadcast_to(np.asarray(lam, np.float64), P.shape[1:2])
    lam2 = np.broadcast_to(lam[None, :], ok.shape)[ok]
    a = P[:-1][ok]
    b = P[1:][ok]
    return draw_segments(img, a[:, 0], a[:, 1], b[:, 0], b[:, 1], lam2, p, wfield, spacing)


def blobs(img, y, x, sl, ss, ang, peak, ring=None):
    """Add Gaussian blobs (sigma ``sl`` along angle ``ang``, ``ss`` across, pixels) or, where ``ring``
    (radius in pixels) is > 0, rings of that radius and cross-section sigma ``ss``."""
    y = np.atleast_1d(np.asarray(y, np.float64))
    n = y.size
    if n == 0:
        return img
    x = np.atleast_1d(np.asarray(x, np.float64))
    sl = np.broadcast_to(np.asarray(sl, np.float64), (n,)).copy()
    ss = np.broadcast_to(np.asarray(ss, np.float64), (n,)).copy()
    ang = np.broadcast_to(np.asarray(ang, np.float64), (n,))
    peak = np.broadcast_to(np.asarray(peak, np.float64), (n,)).copy()
    r0 = np.zeros(n) if ring is None else np.broadcast_to(np.asarray(ring, np.float64), (n,)).copy()
    smin = 0.55  # below this a blob is a sub-pixel dot: keep its integral, not its peak
    sl = np.maximum(sl, ss)
    isring = r0 > 0
    f = np.where(isring, ss / np.maximum(ss, smin), sl * ss / (np.maximum(sl, smin) * np.maximum(ss, smin)))
    peak *= f
    sl = np.maximum(sl, smin)
    ss = np.maximum(ss, smin)
    rq = r0 / ss  # ring radius in units of ss
    ext = (rq + 3.0) * sl
    R = _RBINS[np.minimum(np.searchsorted(_RBINS, np.ceil(ext)), _RBINS.size - 1)]
    h, w = img.shape
    acc = np.zeros(h * w, np.float64)
    for rb in np.unique(R):
        sel = np.nonzero(R == rb)[0]
        k = np.arange(-rb, rb + 1, dtype=np.float64)
        # chunk to bound memory
        per = (2 * rb + 1) ** 2
        step = max(1, int(2_000_000 // per))
        for c0 in range(0, sel.size, step):
            s = sel[c0:c0 + step]
            cy = np.rint(y[s])
            cx = np.rint(x[s])
            dy = (cy - y[s])[:, None, None] + k[None, :, None]
            dx = (cx - x[s])[:, None, None] + k[None, None, :]
            ca = np.cos(ang[s])[:, None, None]
            sa = np.sin(ang[s])[:, None, None]
            u = (dx * ca + dy * sa) / sl[s][:, None, None]
            v = (-dx * sa + dy * ca) / ss[s][:, None, None]
            q = np.sqrt(u * u + v * v) - rq[s][:, None, None]
            val = peak[s][:, None, None] * np.exp(-0.5 * q * q)
            iy = cy.astype(np.intp)[:, None, None] + k.astype(np.intp)[None, :, None]
            ix = cx.astype(np.intp)[:, None, None] + k.astype(np.intp)[None, None, :]
            ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
            acc += np.bincount((iy * w + ix)[ok], val[ok], minlength=h * w)
    img += acc.reshape(h, w).astype(np.float32)
    return img


def blur(img, sigma):
    """Gaussian blur (sigma in pixels); a no-op below a third of a pixel."""
    if sigma < 0.33:
        return img
    return ndi.gaussian_filter(img, sigma, truncate=3.0, output=np.float32)


_BAND = 3  # coarse nodes on each side that a fine pixel takes from


def _band(n_out, k, sig=1.0):
    """Indices (n_out, 2 * _BAND + 1) and normalised Gaussian weights (sigma ``sig`` coarse cells)
    of the coarse nodes (spacing ``k`` fine pixels, node j at fine position (j - _BAND - 1) * k)
    around each fine pixel."""
    pos = np.arange(n_out) / k + _BAND + 1
    j = np.floor(pos).astype(np.intp)[:, None] + np.arange(-_BAND, _BAND + 1)[None, :]
    w = np.exp(-0.5 * ((pos[:, None] - j) / sig) ** 2)
    w /= w.sum(1, keepdims=True)
    return j, w.astype(np.float32)


def field(shape, corr, rng):
    """Smooth Gaussian random field of zero mean, about unit variance, correlation length ``corr``
    pixels (white noise below half a pixel)."""
    if corr < 0.5:
        return rng.standard_normal(shape, dtype=np.float32)
    if corr <= 2.5:
        n = rng.standard_normal(shape, dtype=np.float32)
        return ndi.gaussian_filter(n, corr, truncate=2.5, output=np.float32) * np.float32(2 * np.sqrt(np.pi) * corr)
    k = float(corr)
    ch = int(shape[0] / k) + 2 * _BAND + 3
    cw = int(shape[1] / k) + 2 * _BAND + 3
    c = rng.standard_normal((ch, cw), dtype=np.float32) * np.float32(2 * np.sqrt(np.pi))
    jx, wx = _band(shape[1], k)
    t = np.einsum("ynb,nb->yn", c[:, jx], wx)  # (ch, w)
    jy, wy = _band(shape[0], k)
    return np.einsum("nbx,nb->nx", t[jy], wy)


def sample_points(weight, n, rng, stride=None):
    """``n`` random positions (y, x) distributed with density proportional to ``weight`` (a canvas,
    >= 0), drawn on a grid of ``stride`` pixels and jittered within each grid cell."""
    h, w = weight.shape
    if n <= 0:
        return np.zeros(0), np.zeros(0)
    if stride is None:
        stride = max(1, int(round(max(h, w) / 110)))
    wc = weight[stride // 2::stride, stride // 2::stride].astype(np.float64).ravel()
    tot = wc.sum()
    if not np.isfinite(tot) or tot <= 0:
        return np.zeros(0), np.zeros(0)
    cw = weight[stride // 2::stride, stride // 2::stride].shape[1]
    cum = np.cumsum(wc)
    k = np.searchsorted(cum, rng.random(n) * tot, side="right")
    k = np.minimum(k, wc.size - 1)
    yy = (k // cw) * stride + stride // 2 + (rng.random(n) - 0.5) * stride
    xx = (k % cw) * stride + stride // 2 + (rng.random(n) - 0.5) * stride
    return yy, xx


def walk(rng, y0, x0, th0, nsteps, ds, sigma_th, d_edge, edge_zone, keep_inside=1.0, edge_stop=0.0):
    """Persistent random walks (one per start) that stay inside the region ``d_edge`` > 0: near its
    edge (``d_edge`` < ``edge_zone`` px) a walker turns to run along it, and stops there with
    probability ``edge_stop`` per step. ``nsteps`` per walker; returns the path (max_steps + 1, n, 2)
    and an alive mask of the same leading shape."""
    n = y0.size
    K = int(nsteps.max()) if n else 0
    P = np.empty((K + 1, n, 2))
    A = np.zeros((K + 1, n), bool)
    y = y0.astype(np.float64).copy()
    x = x0.astype(np.float64).copy()
    th = th0.astype(np.float64).copy()
    d = lookup(d_edge, y, x)
    alive = d > 0
    P[0, :, 0], P[0, :, 1], A[0] = y, x, alive
    noise = rng.standard_normal((K, n)) * sigma_th
    stop = rng.random((K, n)) < edge_stop if edge_stop > 0 else None
    for k in range(1, K + 1):
        th += noise[k - 1]
        near = np.nonzero(alive & (d < edge_zone))[0]
        if near.size:
            yn, xn, dn = y[near], x[near], d[near]
            gy = lookup(d_edge, yn + 1.5, xn) - lookup(d_edge, yn - 1.5, xn)
            gx = lookup(d_edge, yn, xn + 1.5) - lookup(d_edge, yn, xn - 1.5)
            gn = np.hypot(gy, gx) + 1e-9
            gy /= gn
            gx /= gn
            vy = np.sin(th[near])
            vx = np.cos(th[near])
            dot = vy * gy + vx * gx  # > 0: heading inward
            push = np.where(dot < 0, -dot * np.clip(1.2 - dn / edge_zone, 0.3, 1.0), 0.0)
            push += np.where(dn < keep_inside, 0.35, 0.0)
            th[near] = np.arctan2(vy + push * gy, vx + push * gx)
            if stop is not None:
                alive[near[stop[k - 1, near]]] = False
        y = y + np.sin(th) * ds
        x = x + np.cos(th) * ds
        d = lookup(d_edge, y, x)
        alive = alive & (k <= nsteps) & (d > 0)
        P[k, :, 0], P[k, :, 1], A[k] = y, x, alive
    return P, A
