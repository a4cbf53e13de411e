"""Drawing primitives of the ``indep_a`` renderer: sub-pixel splatting, lines, walkers, noise.

Conventions used throughout indep_a:

* positions are in pixels of the working crop, pixel centres at integer coordinates;
* pixel values are fluorophore per unit *area* (so a filled sheet has the same value at any pixel
  size); a line of physical brightness ``lam`` (per µm of length) drawn at pixel size ``px`` (µm)
  deposits ``lam * ds_px / px`` per sample spaced ``ds_px`` pixels apart, a dot of physical flux
  ``phi`` (per µm²) deposits ``phi / px**2``. Thin structures are therefore exactly as bright per
  unit length as they should be and become one-pixel, anti-aliased lines; the imaging model blurs
  them afterwards.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

TWO_PI = 2.0 * np.pi


def wrap(a):
    """Angle(s) wrapped to [-pi, pi)."""
    return (a + np.pi) % TWO_PI - np.pi


def splat(img: np.ndarray, y, x, w) -> None:
    """Add weights ``w`` at sub-pixel positions (y, x) into ``img`` (bilinear, in place)."""
    h, wd = img.shape
    y = np.asarray(y, np.float64)
    w = np.broadcast_to(np.asarray(w, np.float64), y.shape).ravel()
    y = y.ravel()
    x = np.asarray(x, np.float64).ravel()
    y0 = np.floor(y)
    x0 = np.floor(x)
    ok = (y0 >= 0) & (y0 <= h - 2) & (x0 >= 0) & (x0 <= wd - 2)
    if not ok.all():
        y, x, w, y0, x0 = y[ok], x[ok], w[ok], y0[ok], x0[ok]
    if y.size == 0:
        return
    fy = y - y0
    fx = x - x0
    i = y0.astype(np.intp) * wd + x0.astype(np.intp)
    gy = 1.0 - fy
    gx = 1.0 - fx
    idx = np.concatenate([i, i + 1, i + wd, i + wd + 1])
    ww = np.concatenate([w * gy * gx, w * gy * fx, w * fy * gx, w * fy * fx])
    img += np.bincount(idx, ww, minlength=h * wd).reshape(h, wd).astype(img.dtype, copy=False)


def segment_points(y0, x0, y1, x1, lam, spacing: float = 0.7, bow=None):
    """Sample points along straight (or bowed) segments, with per-sample weights.

    ``lam``: deposit per pixel of length (scalar or per segment). ``bow``: optional sagitta in
    pixels per segment (a parabolic bend to the left of the direction of travel).
    Returns (ys, xs, ws, seg_index, t) as flat arrays.
    """
    y0 = np.atleast_1d(np.asarray(y0, np.float64))
    x0 = np.atleast_1d(np.asarray(x0, np.float64))
    y1 = np.atleast_1d(np.asarray(y1, np.float64))
    x1 = np.atleast_1d(np.asarray(x1, np.float64))
    lam = np.broadcast_to(np.asarray(lam, np.float64), y0.shape)
    dy = y1 - y0
    dx = x1 - x0
    length = np.hypot(dy, dx)
    n = np.maximum(1, np.ceil(length / spacing)).astype(np.intp)
    seg = np.repeat(np.arange(y0.size), n)
    start = np.cumsum(n) - n
    t = (np.arange(seg.size) - start[seg] + 0.5) / n[seg]
    ys = y0[seg] + dy[seg] * t
    xs = x0[seg] + dx[seg] * t
    if bow is not None:
        bow = np.broadcast_to(np.asarray(bow, np.float64), y0.shape)
        b = 4.0 * t * (1.0 - t) * bow[seg] / np.maximum(length[seg], 1e-9)
        ys = ys + b * dx[seg]
        xs = xs - b * dy[seg]
    ws = lam[seg] * (length / n)[seg]
    return ys, xs, ws, seg, t


def polyline_points(Y, X, valid, lam, spacing: float = 0.7):
    """Sample points along polylines given as node arrays (n, K) with a node validity mask.

    ``lam``: deposit per pixel of length, scalar or per polyline. A segment is drawn when both of
    its nodes are valid. Returns (ys, xs, ws, line_index, node_fraction).
    """
    n, k = Y.shape
    ok = valid[:, :-1] & valid[:, 1:]
    line = np.broadcast_to(np.arange(n)[:, None], (n, k - 1))[ok]
    node = np.broadcast_to(np.arange(k - 1)[None, :], (n, k - 1))[ok]
    lam = np.broadcast_to(np.asarray(lam, np.float64), (n,))
    ys, xs, ws, seg, t = segment_points(Y[:, :-1][ok], X[:, :-1][ok], Y[:, 1:][ok], X[:, 1:][ok],
                                        lam[line], spacing)
    return ys, xs, ws, line[seg], (node[seg] + t) / max(k - 1, 1)


def walk(y, x, ang, n_steps: int, step, ang_sd, rng, constrain=None):
    """Persistent random walks (vectorised over walkers), optionally kept inside a region.

    ``constrain(ny, nx) -> (ny, nx, hit, tangent_angle, edge_hit)`` projects proposed positions
    back into the allowed region; walkers that hit a boundary turn to run along it. Returns node
    arrays Y, X of shape (n, n_steps + 1) and the index of the first step that met the outer edge
    (n_steps + 1 where none did).
    """
    y = np.asarray(y, np.float64).copy()
    x = np.asarray(x, np.float64).copy()
    ang = np.asarray(ang, np.float64).copy()
    n = y.size
    step = np.broadcast_to(np.asarray(step, np.float64), (n,))
    Y = np.empty((n, n_steps + 1))
    X = np.empty((n, n_steps + 1))
    Y[:, 0] = y
    X[:, 0] = x
    noise = rng.standard_normal((n_steps, n)) * np.broadcast_to(np.asarray(ang_sd, np.float64), (n,))
    first = np.full(n, n_steps + 1)
    for k in range(n_steps):
        ang += noise[k]
        ny = y + step * np.sin(ang)
        nx = x + step * np.cos(ang)
        if constrain is not None:
            ny, nx, hit, tang, edge = constrain(ny, nx)
            first = np.where(edge & (first > n_steps), k + 1, first)
            if hit.any():
                # run along the boundary: keep the tangential sense of the current heading
                t = tang[hit]
                s = np.where(np.cos(ang[hit] - t) >= 0, 0.0, np.pi)
                ang[hit] = t + s
        Y[:, k + 1] = ny
        X[:, k + 1] = nx
        y, x = ny, nx
    return Y, X, first


def blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur for drawing a structure of finite width (skipped when below a pixel)."""
    if sigma_px < 0.3:
        return img
    return ndi.gaussian_filter(img, sigma_px, truncate=3.0)


def _upsample(c: np.ndarray, f: int, shape) -> np.ndarray:
    h, w = shape
    iy = np.clip((np.arange(h) + 0.5) / f - 0.5, 0, c.shape[0] - 1.001)
    ix = np.clip((np.arange(w) + 0.5) / f - 0.5, 0, c.shape[1] - 1.001)
    y0 = iy.astype(np.intp)
    x0 = ix.astype(np.intp)
    wy = (iy - y0).astype(np.float32)[:, None]
    wx = (ix - x0).astype(np.float32)[None, :]
    rows = c[y0] * (1 - wy) + c[y0 + 1] * wy
    return rows[:, x0] * (1 - wx) + rows[:, x0 + 1] * wx


def smooth_noise(shape, sigma_px: float, rng) -> np.ndarray:
    """A zero-mean, unit-variance Gaussian random field with correlation length ``sigma_px``."""
    h, w = shape
    if sigma_px < 2.0:
        g = rng.standard_normal((h, w), dtype=np.float32)
        if sigma_px >= 0.3:
            g = ndi.gaussian_filter(g, sigma_px, truncate=3.0)
        return g / max(float(g.std()), 1e-9)
    f = max(1, int(sigma_px / 1.25))
    c = rng.standard_normal((h // f + 3, w // f + 3), dtype=np.float32)
    c = ndi.gaussian_filter(c, sigma_px / f, truncate=3.0, mode="wrap")
    c /= max(float(c.std()), 1e-9)
    return _upsample(c, f, shape)


def sample_density(dens: np.ndarray, n: int, rng):
    """``n`` random sub-pixel positions distributed as the non-negative map ``dens``."""
    n = int(n)
    c = np.cumsum(dens, dtype=np.float64)  # flattens
    if n <= 0 or c[-1] <= 0:
        return np.zeros(0), np.zeros(0)
    idx = np.searchsorted(c, rng.random(n) * c[-1], side="right")
    idx = np.minimum(idx, c.size - 1)
    y, x = np.divmod(idx, dens.shape[1])
    return y + rng.random(n) - 0.5, x + rng.random(n) - 0.5


def lookup(img: np.ndarray, y, x, fill=0.0):
    """Nearest-pixel values of ``img`` at positions (y, x); ``fill`` outside."""
    yi = np.rint(np.asarray(y)).astype(np.intp)
    xi = np.rint(np.asarray(x)).astype(np.intp)
    ok = (yi >= 0) & (yi < img.shape[0]) & (xi >= 0) & (xi < img.shape[1])
    out = np.full(yi.shape, fill, dtype=np.float64 if img.dtype != bool else bool)
    out[ok] = img[yi[ok], xi[ok]]
    return out


def loguniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))
