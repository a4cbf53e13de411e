"""Drawing primitives for the ``indep_e`` renderer (numpy + scipy only, vectorised).

Everything works in pixel coordinates (y, x) of a square frame. Thin structures are drawn by
splatting densely sampled points bilinearly, each carrying its share of the line's length, so a
line's total brightness per unit length is right whatever its sub-pixel position.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def splat(shape, y, x, w) -> np.ndarray:
    """Bilinear splat of weights ``w`` at points (y, x) into a new float64 image."""
    h, wd = shape
    y = np.asarray(y, float).ravel()
    x = np.asarray(x, float).ravel()
    w = np.asarray(w, float)
    w = w.ravel() if w.size == y.size else np.broadcast_to(w, y.shape).ravel()
    y0 = np.floor(y)
    x0 = np.floor(x)
    ok = (y0 >= 0) & (y0 < h - 1) & (x0 >= 0) & (x0 < wd - 1) & (w != 0)
    if not ok.any():
        return np.zeros(shape)
    y, x, w, y0, x0 = y[ok], x[ok], w[ok], y0[ok], x0[ok]
    fy, fx = y - y0, x - x0
    idx = y0.astype(np.int64) * wd + x0.astype(np.int64)
    n = h * wd
    out = np.bincount(idx, w * (1 - fy) * (1 - fx), minlength=n)
    out += np.bincount(idx + 1, w * (1 - fy) * fx, minlength=n)
    out += np.bincount(idx + wd, w * fy * (1 - fx), minlength=n)
    out += np.bincount(idx + wd + 1, w * fy * fx, minlength=n)
    return out.reshape(shape)


def blur(img, sigma):
    """Gaussian blur; skipped below a third of a pixel (the splat is already anti-aliased)."""
    if sigma < 0.33:
        return img
    return ndi.gaussian_filter(img, sigma, truncate=3.0)


def _interp_matrix(n_out, n_in):
    """(n_out, n_in) linear-interpolation matrix mapping a coarse axis onto a fine one."""
    pos = (np.arange(n_out) + 0.5) * (n_in - 2) / n_out + 0.5
    i0 = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    f = (pos - i0).astype(np.float32)
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), i0] = 1 - f
    m[np.arange(n_out), i0 + 1] = f
    return m


def upsample(a, shape):
    """Bilinear upsampling of a small image to ``shape`` (two small matrix products)."""
    return _interp_matrix(shape[0], a.shape[0]) @ a.astype(np.float32) @ _interp_matrix(shape[1], a.shape[1]).T


def noise(shape, sigma, rng) -> np.ndarray:
    """Smooth Gaussian noise of correlation length ``sigma`` px, zero mean, unit sd (cheap when large)."""
    if sigma <= 1.5:
        a = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), max(sigma, 0.5), truncate=3.0)
    else:
        f = sigma / 1.0
        small = (max(4, int(np.ceil(shape[0] / f)) + 2), max(4, int(np.ceil(shape[1] / f)) + 2))
        a = ndi.gaussian_filter(rng.standard_normal(small, dtype=np.float32), 1.0, truncate=3.0)
        a = upsample(a, shape)
    s = a.std()
    return (a - a.mean()) / (s if s > 0 else 1.0)


def sample_from(density, n, rng):
    """``n`` points (y, x), jittered within pixels, drawn with probability ~ ``density``."""
    d = np.asarray(density, float).ravel()
    c = np.cumsum(np.maximum(d, 0))
    if n <= 0 or c[-1] <= 0:
        return np.zeros(0), np.zeros(0)
    i = np.searchsorted(c, rng.random(n) * c[-1], side="right")
    i = np.minimum(i, d.size - 1)
    w = density.shape[1]
    return i // w + rng.random(n), i % w + rng.random(n)


def lookup(img, y, x):
    """Nearest-pixel lookup with clipping at the frame."""
    h, w = img.shape
    yi = np.clip(np.round(y).astype(np.int64), 0, h - 1)
    xi = np.clip(np.round(x).astype(np.int64), 0, w - 1)
    return img[yi, xi]


def densify(py, px, alive, weight, spacing=0.5):
    """Points along polylines.

    ``py``, ``px``: (M, S) vertices; ``alive``: (M, S-1) which segments exist; ``weight``: (M,) or
    (M, S-1) brightness per pixel of length. Returns (y, x, w) samples at <= ``spacing`` px.
    """
    dy = np.diff(py, axis=1)
    dx = np.diff(px, axis=1)
    L = np.hypot(dy, dx)
    if L.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    k = int(np.clip(np.ceil(L.max() / spacing), 1, 64))
    t = (np.arange(k) + 0.5) / k
    y = py[:, :-1, None] + dy[:, :, None] * t
    x = px[:, :-1, None] + dx[:, :, None] * t
    wt = np.asarray(weight, float)
    if wt.ndim == 1:
        wt = wt[:, None]
    w = (L / k * wt * alive)[:, :, None] * np.ones(k)
    keep = w.ravel() > 0
    return y.ravel()[keep], x.ravel()[keep], w.ravel()[keep]


def walk(y0, x0, theta, n_steps, step, curv_sd, rng, dist=None, gy=None, gx=None, margin=2.0,
         max_steps=None, drift=None, avoid=None, edge_stop=0.0):
    """Persistent random walks, all at once.

    ``theta``: start directions; ``curv_sd``: sd of the turn per step (rad); ``n_steps`` per walker
    (array). Walkers that head out of the cell (``dist`` = distance to the cell edge, ``gy``/``gx``
    its gradient, pointing inward) turn to run along the edge. ``drift``: optional (M,) preferred
    direction the walk relaxes toward. ``avoid``: optional bool map where walkers stop.
    Returns vertices (M, S) y, x and (M, S-1) alive segments.
    """
    m = y0.size
    n_steps = np.broadcast_to(np.asarray(n_steps), (m,))
    S = int(max_steps or max(1, n_steps.max()))
    ys = np.empty((m, S + 1))
    xs = np.empty((m, S + 1))
    ys[:, 0], xs[:, 0] = y0, x0
    alive = np.zeros((m, S), bool)
    live = np.ones(m, bool)
    th = np.array(theta, float)
    y, x = np.array(y0, float), np.array(x0, float)
    turns = rng.normal(0, 1, (S, m)) * curv_sd
    for s in range(S):
        th = th + turns[s]
        if drift is not None:
            th = th + 0.15 * np.sin(drift - th)
        vy, vx = np.sin(th), np.cos(th)
        if dist is not None:
            d = lookup(dist, y, x)
            ny, nx = lookup(gy, y, x), lookup(gx, y, x)
            dot = vy * ny + vx * nx
            near = (d < margin) & (dot < 0)
            # remove the outward component: the walker bends and runs along the edge
            vy = np.where(near, vy - dot * ny, vy)
            vx = np.where(near, vx - dot * nx, vx)
            nrm = np.hypot(vy, vx) + 1e-9
            vy, vx = vy / nrm, vx / nrm
            th = np.where(near, np.arctan2(vy, vx), th)
            if edge_stop:
                live = live & ~(near & (rng.random(m) < edge_stop))
        y = y + vy * step
        x = x + vx * step
        live = live & (s < n_steps)
        if dist is not None:
            live = live & (lookup(dist, y, x) > 0.3)
        if avoid is not None:
            live = live & ~lookup(avoid, y, x)
        alive[:, s] = live
        ys[:, s + 1], xs[:, s + 1] = y, x
    return ys, xs, alive


def disc_points(cy, cx, r, total, rng, ring=False, per_px=1.0, cap=60):
    """Points filling discs (or on circles, ``ring``) of radius ``r`` px, each disc weighing ``total``."""
    cy, cx = np.atleast_1d(np.asarray(cy, float)), np.atleast_1d(np.asarray(cx, float))
    r = np.broadcast_to(np.asarray(r, float), cy.shape)
    total = np.broadcast_to(np.asarray(total, float), cy.shape)
    if ring:
        k = np.clip(np.ceil(2 * np.pi * r * per_px * 1.5), 6, cap).astype(int)
    else:
        k = np.clip(np.ceil(np.pi * r * r * per_px), 1, cap).astype(int)
    rep = np.repeat(np.arange(cy.size), k)
    if rep.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    a = rng.random(rep.size) * 2 * np.pi
    rr = r[rep] * (1.0 if ring else np.sqrt(rng.random(rep.size)))
    return cy[rep] + rr * np.sin(a), cx[rep] + rr * np.cos(a), (total / k)[rep]


def polar_of(cy, cx, by, bx):
    """A closed boundary (by, bx) as a sorted polar table (psi, rho) about (cy, cx)."""
    psi = np.arctan2(by - cy, bx - cx)
    rho = np.hypot(by - cy, bx - cx)
    o = np.argsort(psi)
    return psi[o], rho[o]


def rho_at(psi_tab, rho_tab, psi):
    """Boundary radius at angles ``psi`` (periodic interpolation)."""
    return np.interp(psi, psi_tab, rho_tab, period=2 * np.pi)


def star_mask(shape, cy, cx, psi_tab, rho_tab, yy=None, xx=None):
    """Inside mask and normalised radius s = rho / boundary(rho) of a star-shaped region."""
    if yy is None:
        yy, xx = np.mgrid[: shape[0], : shape[1]]
    dy, dx = yy - cy, xx - cx
    rho = np.hypot(dy, dx)
    rb = rho_at(psi_tab, rho_tab, np.arctan2(dy, dx))
    s = rho / np.maximum(rb, 1e-6)
    return s < 1.0, s, rb


def extent_pts(y, x) -> float:
    """Longest extent of a point set over 8 directions (as base.extent does for masks)."""
    best = 0.0
    for a in np.linspace(0, np.pi, 8, endpoint=False):
        p = y * np.sin(a) + x * np.cos(a)
        best = max(best, float(p.max() - p.min() + 1))
    return best
