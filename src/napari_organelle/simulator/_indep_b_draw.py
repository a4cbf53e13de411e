"""Drawing primitives of the ``indep_b`` renderer (numpy + scipy, vectorised).

Units: images hold fluorophore *concentration* (amount per um^2), so a line of linear density ``B``
(amount per um) adds ``B / px`` to each pixel it crosses, a dot of ``A`` (amount) adds ``A / px^2`` in
all, and an area stain of concentration ``c`` is ``c`` per pixel, whatever the pixel size ``px`` (um).
After the imaging model's blur, relative brightnesses are then independent of the pixel size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

TWO_PI = 2.0 * np.pi
M_ANG = 256                                   # angular samples of a star-shaped outline
ANG = np.arange(M_ANG) * (TWO_PI / M_ANG)


class Radial:
    """A star-shaped outline: centre (cy, cx) and radius r(theta) (pixels) at ``ANG``."""

    def __init__(self, cy: float, cx: float, r: np.ndarray):
        self.cy, self.cx = float(cy), float(cx)
        self.r = np.asarray(r, float)
        dr = (np.roll(self.r, -1) - np.roll(self.r, 1)) / (2 * TWO_PI / M_ANG)
        self.dr = dr
        # radial distance -> distance along the normal
        self.ncorr = self.r / np.sqrt(self.r ** 2 + dr ** 2)

    def _tables(self):
        if not hasattr(self, "_tab"):
            r = np.append(self.r, self.r[0]).astype(np.float32)
            n = np.append(self.ncorr, self.ncorr[0]).astype(np.float32)
            self._tab = (r[:-1], np.diff(r), n[:-1], np.diff(n))
        return self._tab

    def radius(self, th):
        return np.interp(th, ANG, self.r, period=TWO_PI)

    def inside(self, y, x):
        """Approximate signed distance (px) inside the outline (negative outside), and rho / r."""
        dy = np.asarray(y, np.float32) - np.float32(self.cy)
        dx = np.asarray(x, np.float32) - np.float32(self.cx)
        rho = np.hypot(dy, dx)
        u = np.arctan2(dy, dx) * np.float32(M_ANG / TWO_PI)
        u += np.float32(M_ANG)
        i0 = u.astype(np.int32)
        f = u - i0.astype(np.float32)
        i0 &= M_ANG - 1
        r0, dr, n0, dn = self._tables()
        r = r0.take(i0) + dr.take(i0) * f
        n = n0.take(i0) + dn.take(i0) * f
        return (r - rho) * n, rho / np.maximum(r, np.float32(1e-6))

    def normal(self, y, x):
        """Signed distance inside (px) and the outward unit normal (ny, nx) of the outline, per point."""
        dy, dx = np.asarray(y, float) - self.cy, np.asarray(x, float) - self.cx
        rho = np.hypot(dy, dx)
        th = np.arctan2(dy, dx)
        r = np.interp(th, ANG, self.r, period=TWO_PI)
        dr = np.interp(th, ANG, self.dr, period=TWO_PI)
        nx, ny = r * np.cos(th) + dr * np.sin(th), r * np.sin(th) - dr * np.cos(th)
        nn = np.maximum(np.hypot(nx, ny), 1e-9)
        return (r - rho) * r / nn, ny / nn, nx / nn

    def boundary(self, scale: float = 1.0, offset: float = 0.0):
        """Points (y, x) on the outline scaled about the centre, or moved ``offset`` px outward."""
        rr = self.r * scale + offset
        return self.cy + rr * np.sin(ANG), self.cx + rr * np.cos(ANG)

    def area(self) -> float:
        return float(0.5 * np.sum(self.r ** 2) * TWO_PI / M_ANG)

    def bbox(self, pad: float = 0.0):
        y, x = self.boundary()
        return y.min() - pad, y.max() + pad, x.min() - pad, x.max() + pad


def extent_of_points(y, x) -> float:
    """Longest extent over the 8 directions base.extent uses (+1 as for a pixel mask)."""
    best = 0.0
    for a in np.linspace(0, np.pi, 8, endpoint=False):
        p = y * np.sin(a) + x * np.cos(a)
        best = max(best, float(p.max() - p.min() + 1))
    return best


def periodic_noise(rng, n: int, kmin: int, kmax: int, slope: float):
    """A smooth random periodic function on ANG: sum of harmonics kmin..kmax with amplitudes ~k^-slope."""
    k = np.arange(kmin, kmax + 1)
    amp = rng.normal(0, 1, k.size) * k ** (-slope)
    ph = rng.uniform(0, TWO_PI, k.size)
    return (amp[:, None] * np.cos(k[:, None] * ANG[None, :] + ph[:, None])).sum(0)


def wrap(a):
    return (a + np.pi) % TWO_PI - np.pi


# ----------------------------------------------------------------------------------------- splats
def splat(S: int, y, x, w) -> np.ndarray:
    """Bilinear splat of weights ``w`` at sub-pixel positions into a (S, S) float64 image."""
    y = np.asarray(y, float).ravel()
    x = np.asarray(x, float).ravel()
    w = np.broadcast_to(np.asarray(w, float), y.shape).ravel()
    y0 = np.floor(y)
    x0 = np.floor(x)
    fy, fx = y - y0, x - x0
    ok = (y0 >= 0) & (y0 < S - 1) & (x0 >= 0) & (x0 < S - 1)
    y0, x0, fy, fx, w = y0[ok].astype(np.intp), x0[ok].astype(np.intp), fy[ok], fx[ok], w[ok]
    i = y0 * S + x0
    idx = np.concatenate([i, i + 1, i + S, i + S + 1])
    wy0, wy1 = w * (1 - fy), w * fy
    ww = np.concatenate([wy0 * (1 - fx), wy0 * fx, wy1 * (1 - fx), wy1 * fx])
    return np.bincount(idx, ww, minlength=S * S).reshape(S, S)


def stamp(S: int, y, x, amount, radius, kind: str = "gauss", ring_w=None, fill=None) -> np.ndarray:
    """Small objects, each normalised to its ``amount`` (summed pixel value).

    kind "gauss": exp(-r^2 / 2 radius^2); "disc": an anti-aliased disc of ``radius``; "ring": a
    membrane ring of width ``ring_w`` at ``radius`` plus a lumen of relative level ``fill``.
    All sizes in pixels, per object (arrays) or scalars.
    """
    y = np.atleast_1d(np.asarray(y, float))
    n = y.size
    out = np.zeros(S * S)
    if n == 0:
        return out.reshape(S, S)
    x = np.atleast_1d(np.asarray(x, float))
    amount = np.broadcast_to(np.asarray(amount, float), (n,))
    radius = np.broadcast_to(np.asarray(radius, float), (n,))
    ring_w = np.broadcast_to(np.asarray(0.5 if ring_w is None else ring_w, float), (n,))
    fill = np.broadcast_to(np.asarray(0.0 if fill is None else fill, float), (n,))
    if kind == "gauss":
        radius = np.maximum(radius, 0.45)
        reach = 2.6 * radius
    else:
        reach = radius + 2.0 * ring_w + 1.0
    K = np.ceil(reach).astype(int)
    idx_all, w_all = [], []
    for k in np.unique(K):
        sel = np.nonzero(K == k)[0]
        off = np.arange(-k, k + 1, dtype=float)
        iy, ix = np.rint(y[sel]), np.rint(x[sel])
        dy = off[None, :, None] - (y[sel] - iy)[:, None, None]
        dx = off[None, None, :] - (x[sel] - ix)[:, None, None]
        r = np.sqrt(dy * dy + dx * dx)
        R = radius[sel][:, None, None]
        if kind == "gauss":
            v = np.exp(-0.5 * (r / R) ** 2)
        elif kind == "disc":
            v = np.clip(R - r + 0.5, 0, 1)
        else:
            wdt = ring_w[sel][:, None, None]
            v = np.exp(-0.5 * ((r - R) / wdt) ** 2) + fill[sel][:, None, None] * np.clip(R - r + 0.5, 0, 1)
        v *= (amount[sel] / np.maximum(v.sum((1, 2)), 1e-12))[:, None, None]
        py = iy.astype(np.intp)[:, None, None] + off.astype(np.intp)[None, :, None]
        px_ = ix.astype(np.intp)[:, None, None] + off.astype(np.intp)[None, None, :]
        ok = (py >= 0) & (py < S) & (px_ >= 0) & (px_ < S)
        idx_all.append((py * S + px_)[ok])
        w_all.append(v[ok])
    return np.bincount(np.concatenate(idx_all), np.concatenate(w_all), minlength=S * S).reshape(S, S)


def segments_to_points(y0, x0, y1, x1, spacing: float = 0.5):
    """Sample points along segments at <= ``spacing`` px; returns (y, x, step length px, segment id)."""
    y0, x0, y1, x1 = (np.asarray(a, float).ravel() for a in (y0, x0, y1, x1))
    L = np.hypot(y1 - y0, x1 - x0)
    cnt = np.maximum(np.ceil(L / spacing).astype(np.intp), 1)
    seg = np.repeat(np.arange(L.size), cnt)
    start = np.cumsum(cnt) - cnt
    t = (np.arange(seg.size) - start[seg] + 0.5) / cnt[seg]
    return (y0[seg] + (y1 - y0)[seg] * t, x0[seg] + (x1 - x0)[seg] * t, (L / cnt)[seg], seg)


def polylines_to_segments(Y, X, alive):
    """(n, m) node arrays with (n, m) alive flags -> segment endpoints and their curve ids."""
    ok = alive[:, 1:] & alive[:, :-1]
    cid = np.broadcast_to(np.arange(Y.shape[0])[:, None], ok.shape)[ok]
    return Y[:, :-1][ok], X[:, :-1][ok], Y[:, 1:][ok], X[:, 1:][ok], cid


def blur_region(img: np.ndarray, sigma: float, pad: int | None = None) -> np.ndarray:
    """Gaussian blur of ``img`` limited to the bounding box of its non-zero part (in place result)."""
    if sigma < 0.3:
        return img
    nz_r = np.nonzero(img.any(1))[0]
    if nz_r.size == 0:
        return img
    nz_c = np.nonzero(img.any(0))[0]
    p = int(np.ceil(4 * sigma)) + 1 if pad is None else pad
    S0, S1 = img.shape
    a0, a1 = max(nz_r[0] - p, 0), min(nz_r[-1] + p + 1, S0)
    b0, b1 = max(nz_c[0] - p, 0), min(nz_c[-1] + p + 1, S1)
    img[a0:a1, b0:b1] = ndi.gaussian_filter(img[a0:a1, b0:b1], sigma, mode="constant", truncate=3.0)
    return img


def lines(S: int, y0, x0, y1, x1, density, width_px, nbins: int = 3) -> np.ndarray:
    """Anti-aliased lines of linear density ``density`` (image value x px, per px of length) and
    full width ``width_px`` (per segment or scalar): sub-pixel widths are drawn bilinearly (the
    right brightness per length), wider ones blurred to their width, in a few width groups."""
    y0 = np.asarray(y0, float).ravel()
    n = y0.size
    out = np.zeros((S, S))
    if n == 0:
        return out
    density = np.broadcast_to(np.asarray(density, float), (n,))
    width_px = np.broadcast_to(np.asarray(width_px, float), (n,))
    py, px_, step, seg = segments_to_points(y0, x0, y1, x1)
    w = density[seg] * step
    sig = width_px[seg] / 2.355
    thin = sig < 0.55
    if thin.any():
        out += splat(S, py[thin], px_[thin], w[thin])
    if (~thin).any():
        s = sig[~thin]
        edges = np.geomspace(s.min(), s.max() * 1.0001, nbins + 1) if s.max() > s.min() * 1.05 else \
            np.array([s.min(), s.max() * 1.0001 + 1e-9])
        b = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, edges.size - 2)
        yy, xx, ww = py[~thin], px_[~thin], w[~thin]
        for k in np.unique(b):
            sel = b == k
            layer = splat(S, yy[sel], xx[sel], ww[sel])
            out += blur_region(layer, float(np.sqrt(np.mean(s[sel] ** 2) - 0.0)))
    return out


# ----------------------------------------------------------------------------------------- fields
_UP = {}


def _up_matrix(n_in: int, n_out: int, f: float) -> np.ndarray:
    key = (n_in, n_out, round(f, 6))
    m = _UP.get(key)
    if m is None:
        c = (np.arange(n_out) + 0.5) / f - 0.5
        c = np.clip(c, 0, n_in - 1)
        i0 = np.floor(c).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        t = c - i0
        m = np.zeros((n_out, n_in))
        m[np.arange(n_out), i0] += 1 - t
        m[np.arange(n_out), i1] += t
        _UP[key] = m
    return m


def upsample(a: np.ndarray, S: int, f: float) -> np.ndarray:
    """Bilinear upsampling of a coarse (n, n) field whose cells are f pixels wide to (S, S)."""
    m = _up_matrix(a.shape[-1], S, f)
    mr = _up_matrix(a.shape[-2], S, f)
    return mr @ a @ m.T


def smooth_noise(rng, shape, sigma_px: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``sigma_px``."""
    h, w = shape
    if sigma_px <= 3.0:
        a = rng.standard_normal((h, w), dtype=np.float32)
        a = ndi.gaussian_filter(a, max(sigma_px, 0.3), mode="wrap", truncate=3.0)
    else:
        f = sigma_px / 2.0
        hc, wc = int(np.ceil(h / f)) + 2, int(np.ceil(w / f)) + 2
        c = ndi.gaussian_filter(rng.standard_normal((hc, wc)), 2.0, mode="wrap", truncate=3.0)
        a = _up_matrix(hc, h, f) @ c @ _up_matrix(wc, w, f).T
    sd = float(a.std())
    return (a - a.mean()) / max(sd, 1e-9)


def block_mean(a: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return a
    h, w = (a.shape[0] // k) * k, (a.shape[1] // k) * k
    return a[:h, :w].reshape(h // k, k, w // k, k).mean((1, 3))


def sample_from_map(rng, dens: np.ndarray, n: int, f: float):
    """n points distributed as the coarse density map ``dens`` (cells f px wide), in pixels."""
    p = dens.ravel().astype(float)
    tot = p.sum()
    if n <= 0 or tot <= 0:
        return np.zeros(0), np.zeros(0)
    i = rng.choice(p.size, size=n, p=p / tot)
    cy, cx = np.divmod(i, dens.shape[1])
    return (cy + rng.random(n)) * f - 0.5, (cx + rng.random(n)) * f - 0.5


def lookup(a: np.ndarray, y, x, f: float = 1.0):
    """Nearest-cell value of a (coarse) map at pixel positions."""
    iy = np.clip(((np.asarray(y) + 0.5) / f).astype(int), 0, a.shape[0] - 1)
    ix = np.clip(((np.asarray(x) + 0.5) / f).astype(int), 0, a.shape[1] - 1)
    return a[iy, ix]


def loguniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))
