"""Simulated fluorescence images of single HeLa-like cells, for the ten organelle classes.

Each simulated cell has a protein channel (the organelle marker) and a DNA (DAPI) channel, both
``uint16`` and ``size x size`` (382 like the Murphy-lab 2D HeLa set by default).

The simulator is split in two layers:

* **biology** (:func:`_protein_<class>` and :class:`_Cell`): where the structures of each class are,
  as geometry - polylines (filaments, tubules, ER edges), points with a radius (puncta, Golgi
  elements, nucleoli) and smooth fields (cortex, haze, nuclear fill). This is shared by all styles.
* **rendering** (:class:`_DefaultRenderer`, :class:`_AltRenderer`): how geometry becomes pixels -
  the cell/nucleus shape generator, the drawing primitives, the intensity distributions, the PSF,
  the background and the noise model.

``style="default"`` is the renderer a classifier is trained on. ``style="alt"`` is a different
renderer of the same biology (star-polygon cells, box-profile filaments, flat-top discs, an
anisotropic Airy-like PSF, uneven illumination, EMCCD-like noise, a 12-bit camera range); it exists
only to test whether a classifier trained on ``default`` generalises to images whose low-level
statistics it has never seen.

Only numpy and scipy are used (no torch, Qt or napari); see ``docs/simulator.md``.
"""

from __future__ import annotations

import math
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import fftconvolve
from scipy.spatial import Delaunay

from .classes import CLASSES

#: Rendering styles understood by :func:`simulate_cell`.
STYLES: tuple[str, ...] = ("default", "alt")

#: Side of the Murphy-lab images; structure sizes are given for this frame and scale with ``size``.
REFERENCE_SIZE = 382

_NT = 2048  # angular resolution of the shape tables


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _lookup(mask: np.ndarray, y, x) -> np.ndarray:
    """Nearest-pixel lookup of ``mask`` at float coordinates; outside the frame is False/0."""
    h, w = mask.shape
    iy = np.rint(np.asarray(y)).astype(np.int64)
    ix = np.rint(np.asarray(x)).astype(np.int64)
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    out = np.zeros(iy.shape, dtype=mask.dtype)
    out[ok] = mask[iy[ok], ix[ok]]
    return out


def _splat(size: int, y: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Bilinear splat of weighted points onto a (size, size) float32 grid (vectorised)."""
    out = np.zeros(size * size, np.float64)
    if len(y) == 0:
        return out.reshape(size, size).astype(np.float32)
    y0 = np.floor(y)
    x0 = np.floor(x)
    fy = y - y0
    fx = x - x0
    y0 = y0.astype(np.int64)
    x0 = x0.astype(np.int64)
    for dy, dx, ww in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                       (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy = y0 + dy
        xx = x0 + dx
        ok = (yy >= 0) & (yy < size) & (xx >= 0) & (xx < size)
        out += np.bincount(yy[ok] * size + xx[ok], weights=(w * ww)[ok], minlength=size * size)
    return out.reshape(size, size).astype(np.float32)


def _stamp(size: int, y, x, radius, w, profile) -> np.ndarray:
    """Add one small patch per point, value ``w * profile(distance / radius)`` (vectorised)."""
    out = np.zeros(size * size, np.float64)
    if len(y) == 0:
        return out.reshape(size, size).astype(np.float32)
    k = int(math.ceil(float(np.max(radius)) + 1))  # profiles are 0 for distance >= radius
    o = np.arange(-k, k + 1)
    oy, ox = np.meshgrid(o, o, indexing="ij")
    oy = oy.ravel()[None]
    ox = ox.ravel()[None]
    py = np.floor(y).astype(np.int64)[:, None] + oy
    px = np.floor(x).astype(np.int64)[:, None] + ox
    d = np.hypot(py - y[:, None], px - x[:, None]) / radius[:, None]
    v = profile(d) * w[:, None]
    ok = (py >= 0) & (py < size) & (px >= 0) & (px < size) & (v != 0)
    out += np.bincount((py * size + px)[ok], weights=v[ok], minlength=size * size)
    return out.reshape(size, size).astype(np.float32)


@lru_cache(maxsize=32)
def _interp_matrix(size: int, scale: float) -> tuple[np.ndarray, int]:
    """(size, n) matrix spreading n knots (spacing scale/1.5) with a Gaussian of width ``scale``."""
    step = scale / 1.5
    n = int(math.ceil(size / step)) + 5
    pos = (np.arange(n) - 2.5) * step
    a = np.exp(-0.5 * ((np.arange(size)[:, None] - pos[None]) / scale) ** 2).astype(np.float32)
    a.setflags(write=False)
    return a, n


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Zero-mean, unit-std random field with correlation length ~``scale`` pixels."""
    scale = max(float(scale), 0.5)
    if scale >= 3:
        # separable Gaussian interpolation of white noise on a coarse knot grid, a @ W @ a.T.
        # einsum (no BLAS) on purpose: multithreaded BLAS on these small products is slow when the
        # CPU cores are busy (e.g. with a training job in another process)
        a, n = _interp_matrix(size, round(scale, 2))
        w = rng.standard_normal((n, n), dtype=np.float32)
        f = np.einsum("jl,ij->il", np.einsum("jk,lk->jl", w, a), a)
    else:
        f = ndi.gaussian_filter(rng.standard_normal((size, size), dtype=np.float32), scale, truncate=3.0)
    f -= f.mean()
    s = f.std()
    return (f / s if s > 0 else f).astype(np.float32, copy=False)


def _paths_to_segments(paths, weights, widths):
    """List of (n_i, 2) polylines -> segment arrays (p0, p1, weight, width)."""
    p0s, p1s, ws, wds = [], [], [], []
    for p, w, wd in zip(paths, weights, widths):
        p = np.asarray(p, np.float64)
        if len(p) < 2:
            continue
        p0s.append(p[:-1])
        p1s.append(p[1:])
        ws.append(np.full(len(p) - 1, w))
        wds.append(np.full(len(p) - 1, wd))
    if not p0s:
        z = np.zeros((0, 2))
        return z, z, np.zeros(0), np.zeros(0)
    return np.concatenate(p0s), np.concatenate(p1s), np.concatenate(ws), np.concatenate(wds)


def _sample_segments(p0, p1, w, wd, step):
    """Dense points along segments; each carries weight*length/n so intensity is per unit length."""
    L = np.hypot(*(p1 - p0).T)
    n = np.maximum(1, np.ceil(L / step)).astype(np.int64)
    sid = np.repeat(np.arange(len(L)), n)
    start = np.repeat(np.cumsum(n) - n, n)
    t = (np.arange(sid.size) - start + 0.5) / n[sid]
    pts = p0[sid] + t[:, None] * (p1 - p0)[sid]
    return pts, (w * L / n)[sid], wd[sid]


def _walks(rng, start, angle, n_steps, step, turn_sd, keep):
    """Vectorised persistent random walks.

    ``start`` (n, 2) yx; ``angle`` (n,); ``n_steps`` (n,) maximum steps; ``keep(y, x)`` -> bool,
    a walk stops for good at the first step where it is False. Returns (P (T+1, n, 2), A (T+1, n)).
    """
    n = len(start)
    T = int(np.max(n_steps)) if n else 0
    P = np.zeros((T + 1, n, 2))
    A = np.zeros((T + 1, n), bool)
    pos = np.array(start, np.float64)
    ang = np.array(angle, np.float64)
    alive = np.ones(n, bool)
    P[0] = pos
    A[0] = alive
    for s in range(1, T + 1):
        ang = ang + rng.normal(0, turn_sd, n)
        new = pos + step * np.stack([np.sin(ang), np.cos(ang)], 1)
        alive = alive & keep(new[:, 0], new[:, 1]) & (s <= n_steps)
        pos = np.where(alive[:, None], new, pos)
        P[s] = pos
        A[s] = alive
        if not alive.any():
            P = P[: s + 1]
            A = A[: s + 1]
            break
    return P, A


def _walk_segments(P, A, weights):
    """Segments of the live part of walks, with the weight of each walk."""
    live = A[1:]
    p0 = P[:-1][live]
    p1 = P[1:][live]
    w = np.broadcast_to(weights[None, :], live.shape)[live]
    return p0, p1, w


# --------------------------------------------------------------------------------------------
# cell geometry
# --------------------------------------------------------------------------------------------

_ANGLES = np.linspace(0, 2 * np.pi, _NT, endpoint=False)


def _fourier_table(rng, amps_sd, kmax=6, k0=2):
    ks = np.arange(k0, kmax + 1)
    a = rng.normal(0, 1, ks.size) * amps_sd / ks ** 0.8
    ph = rng.uniform(0, 2 * np.pi, ks.size)
    return 1 + (a[:, None] * np.cos(ks[:, None] * _ANGLES[None] + ph[:, None])).sum(0)


def _polygon_table(rng, n_vertices, r_sd):
    """Radius (per angle) of a random star-shaped polygon with straight edges."""
    th = np.sort(rng.uniform(0, 2 * np.pi, n_vertices))
    # keep vertices from crowding
    th = np.sort((th + np.linspace(0, 2 * np.pi, n_vertices, endpoint=False)) / 2 % (2 * np.pi))
    r = np.clip(1 + rng.normal(0, r_sd, n_vertices), 0.6, 1.4)
    vx, vy = r * np.cos(th), r * np.sin(th)
    idx = np.searchsorted(th, _ANGLES) % n_vertices  # edge from vertex idx-1 to idx
    i0 = (idx - 1) % n_vertices
    ax, ay = vx[i0], vy[i0]
    bx, by = vx[idx] - ax, vy[idx] - ay
    ux, uy = np.cos(_ANGLES), np.sin(_ANGLES)
    # ray t*u hits a + s*b :  t = cross(a, b) / cross(u, b)
    num = ax * by - ay * bx
    den = ux * by - uy * bx
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(np.abs(den) > 1e-9, num / den, 1.0)
    return np.clip(t, 0.3, 1.6)


def _table_at(table, ang):
    # _NT is a power of two, so '& (_NT - 1)' is a modulo that also wraps negative indices
    i = (np.asarray(ang, np.float32) * np.float32(_NT / (2 * np.pi))).astype(np.int32) & (_NT - 1)
    return table[i]


class _Cell:
    """Geometry of one cell: body, nucleus, cytoplasm coordinate, MTOC side and nucleoli."""

    def __init__(self, rng: np.random.Generator, size: int, style: str, scale_range=None):
        self.size = size
        self.style = style
        yy, xx = _grid(size)
        if scale_range is None:
            scale_range = (0.6, 1.0) if style == "default" else (0.5, 0.9)
        scale = rng.uniform(*scale_range)
        self.scale = scale
        theta0 = rng.uniform(0, 2 * np.pi)
        if style == "default":
            elong = rng.uniform(0.6, 1.0)
            ell = 1 / np.sqrt(np.cos(_ANGLES) ** 2 + (np.sin(_ANGLES) / elong) ** 2)
            table = ell * _fourier_table(rng, 0.22)
            soft_w = 1.5
        else:
            elong = rng.uniform(0.55, 1.0)
            ell = 1 / np.sqrt(np.cos(_ANGLES) ** 2 + (np.sin(_ANGLES) / elong) ** 2)
            table = ell * _polygon_table(rng, int(rng.integers(5, 11)), 0.18)
            soft_w = 0.8
        # mean diameter ~ scale * frame, but no part reaching far out of the frame
        R = min(scale * size / 2 / table.mean(), 0.99 * size / 2 / table.max())
        ctable = R * table  # radius in pixels at angle (relative to theta0)
        reach = ctable.max()
        jit = max(0.03 * size, size / 2 - reach - 2)
        cy = size / 2 + rng.uniform(-jit, jit) * 0.8
        cx = size / 2 + rng.uniform(-jit, jit) * 0.8
        dy = yy - np.float32(cy)
        dx = xx - np.float32(cx)
        rho = np.hypot(dy, dx)
        ang = np.arctan2(dy, dx)
        rc = _table_at(ctable, ang - theta0).astype(np.float32)
        self.body_soft = np.clip((rc - rho) / soft_w + 0.5, 0, 1).astype(np.float32)
        self.body = rc > rho
        self.cy, self.cx, self.theta0, self.ctable = cy, cx, theta0, ctable
        r_min = ctable.min()
        self.r_mean = float(ctable.mean())

        # nucleus
        a_n = rng.uniform(0.55, 0.75) * r_min
        b_n = a_n * rng.uniform(0.72, 0.95)
        th_n = theta0 + rng.normal(0, 0.4)
        if style == "default":
            ntable0 = 1 / np.sqrt(np.cos(_ANGLES) ** 2 + (np.sin(_ANGLES) * a_n / b_n) ** 2)
            ntable0 = ntable0 * _fourier_table(rng, 0.06, kmax=5)
        else:
            p = rng.uniform(2.6, 4.0)  # superellipse: boxy nuclei
            ntable0 = (np.abs(np.cos(_ANGLES)) ** p + np.abs(np.sin(_ANGLES) * a_n / b_n) ** p) ** (-1 / p)
        off_ang = rng.uniform(0, 2 * np.pi)
        off = rng.uniform(0.1, 0.45) * (r_min - a_n)
        margin = 6 * size / REFERENCE_SIZE
        for _ in range(30):
            ntable = a_n * ntable0
            ny = cy + off * np.sin(off_ang)
            nx = cx + off * np.cos(off_ang)
            by = ny + ntable * np.sin(_ANGLES + th_n)
            bx = nx + ntable * np.cos(_ANGLES + th_n)
            rr = np.hypot(by - cy, bx - cx)
            lim = _table_at(ctable, np.arctan2(by - cy, bx - cx) - theta0) - margin
            if np.all(rr < lim):
                break
            off *= 0.75
            a_n *= 0.95
        self.ny, self.nx, self.th_n, self.ntable = ny, nx, th_n, ntable
        ndy = yy - np.float32(ny)
        ndx = xx - np.float32(nx)
        nrho = np.hypot(ndy, ndx)
        nang = np.arctan2(ndy, ndx)
        rn = _table_at(ntable, nang - th_n).astype(np.float32)
        self.nuc_soft = np.clip((rn - nrho) / soft_w + 0.5, 0, 1).astype(np.float32)
        self.nuc = rn > nrho
        self.nuc_rel = nrho / np.maximum(rn, 1)  # 0 at nucleus centre, 1 on its rim
        self.nuc_ang = nang
        self.cyto = self.body & ~self.nuc
        # radial distances (cheap stand-ins for distance maps): beyond the nuclear rim along rays
        # from the nucleus centre, and inside the plasma membrane along rays from the cell centre
        self.d_nuc = np.maximum(nrho - rn, 0)
        d_edge_r = np.maximum(rc - rho, 0)
        # cytoplasmic coordinate: 0 at the nuclear envelope, 1 at the plasma membrane
        self.frac = self.d_nuc / np.maximum(self.d_nuc + d_edge_r, 1e-3)
        self._d_edge = None
        self.ys, self.xs = np.nonzero(self.body)

        # MTOC / Golgi side: a direction from the nucleus centre, preferably towards the bulk of the
        # cytoplasm (where the nucleus is off-centre)
        towards = math.atan2(cy - ny, cx - nx) if off > 1 else rng.uniform(0, 2 * np.pi)
        self.mtoc_angle = towards + rng.normal(0, 0.9)
        self.rn_mtoc = float(_table_at(ntable, self.mtoc_angle - th_n))

        # nucleoli (present in every nucleus; visible as DNA holes sometimes, as protein in the
        # Nucleolus class)
        k = int(rng.choice([1, 2, 2, 3, 3, 4]))
        ang_k = rng.uniform(0, 2 * np.pi, k)
        rad_k = np.sqrt(rng.uniform(0, 1, k)) * 0.55
        rk = _table_at(ntable, ang_k - th_n) * rad_k
        self.nucleoli = np.stack([ny + rk * np.sin(ang_k), nx + rk * np.cos(ang_k),
                                  rng.uniform(0.2, 0.32, k) * a_n * k ** -0.3], 1)

    @property
    def d_edge(self) -> np.ndarray:
        """Euclidean distance to the plasma membrane inside the cell (computed on first use)."""
        if self._d_edge is None:
            self._d_edge = ndi.distance_transform_edt(self.body).astype(np.float32)
        return self._d_edge

    # -- sampling ------------------------------------------------------------------------------
    def sample(self, rng, n, where="cyto", density=None):
        """``n`` random (y, x) points in the cytoplasm (or body / nucleus), accepted with
        probability ``density(frac)`` (a function of the cytoplasmic coordinate, max <= 1)."""
        mask = {"cyto": self.cyto, "body": self.body, "nuc": self.nuc}[where]
        ys, xs = np.nonzero(mask) if where != "body" else (self.ys, self.xs)
        out = []
        got = 0
        for _ in range(50):
            m = max(4 * (n - got), 16)
            i = rng.integers(0, ys.size, m)
            y = ys[i] + rng.uniform(-0.5, 0.5, m)
            x = xs[i] + rng.uniform(-0.5, 0.5, m)
            if density is not None:
                p = density(self.frac[ys[i], xs[i]])
                ok = rng.uniform(0, 1, m) < p
                y, x = y[ok], x[ok]
            out.append(np.stack([y, x], 1))
            got += len(y)
            if got >= n:
                break
        pts = np.concatenate(out)[:n]
        return pts

    def nucleus_point(self, angle, extra):
        """Point on the ray from the nucleus centre at ``angle``, ``extra`` px beyond the rim."""
        r = _table_at(self.ntable, np.asarray(angle) - self.th_n) + extra
        return np.stack([self.ny + r * np.sin(angle), self.nx + r * np.cos(angle)], -1)


# --------------------------------------------------------------------------------------------
# renderers
# --------------------------------------------------------------------------------------------

class _DefaultRenderer:
    """Gaussian-profile filaments and puncta, Gaussian PSF, Poisson + Gaussian read noise."""

    style = "default"
    px = 1.0  # structure size multiplier (pixel size)

    def __init__(self, rng, size, unit=None):
        self.rng = rng
        self.size = size
        #: pixels per reference pixel (structure sizes are given for a 382-pixel frame)
        self.unit = size / REFERENCE_SIZE if unit is None else float(unit)
        self.u = self.unit * self.px

    # intensity distribution of discrete objects
    def weights(self, n, spread=0.35):
        return self.rng.lognormal(0, spread, n)

    def _bin_sigma(self, wd):
        # widths quantised to a geometric ladder (ratio ~1.19) so a few Gaussian filters draw all
        k = np.rint(np.log(np.maximum(wd, 0.3) / 0.6) / np.log(2 ** 0.25))
        return 0.6 * 2 ** (np.maximum(k, 0) / 4)

    def segments(self, p0, p1, w, wd, mask=None, dim=None):
        """Filaments: dense samples splatted then blurred with the (binned) width as sigma."""
        pts, sw, swd = _sample_segments(p0, p1, w, wd * self.u, 0.5)
        if mask is not None:
            sw = sw * _lookup(mask, pts[:, 0], pts[:, 1])
        if dim is not None:
            m, f = dim
            sw = sw * np.where(_lookup(m, pts[:, 0], pts[:, 1]), f, 1.0)
        return self._blurred_groups(pts, sw, swd)

    def paths(self, paths, w, wd, mask=None, dim=None):
        return self.segments(*_paths_to_segments(paths, w, wd), mask=mask, dim=dim)

    def puncta(self, yx, radius, w):
        """Gaussian blobs, sigma = radius (in reference pixels); weight = peak height."""
        sig = np.maximum(np.broadcast_to(radius, (len(yx),)) * self.u, 0.3)
        w = np.broadcast_to(w, (len(yx),))
        if len(yx) * (6 * float(sig.max(initial=0)) + 4) ** 2 < 3e6:
            # few/small blobs: stamp exact Gaussians (cheaper than blurring whole frames)
            return _stamp(self.size, yx[:, 0], yx[:, 1], 3 * sig, w,
                          lambda d: np.where(d < 1, np.exp(-4.5 * d * d), 0.0))
        return self._blurred_groups(yx, w * 2 * np.pi * sig ** 2, sig)

    def _blurred_groups(self, pts, w, sig):
        out = np.zeros((self.size, self.size), np.float32)
        if len(pts) == 0:
            return out
        b = self._bin_sigma(np.maximum(sig, 1e-3))
        for s in np.unique(b):
            k = b == s
            out += ndi.gaussian_filter(_splat(self.size, pts[k, 0], pts[k, 1], w[k]), s, truncate=3.0)
        return out

    def texture(self, scale):
        return _smooth_noise(self.rng, self.size, scale * self.u)

    def chromatin(self, cell):
        t = 0.6 * self.texture(1.6) + 0.4 * self.texture(5.0)
        return np.clip(1 + 0.28 * t, 0.2, None)

    # acquisition -------------------------------------------------------------------------------
    def acquire(self, protein, dna, cell_mask):
        rng = self.rng
        sig = rng.uniform(0.7, 1.7) * self.unit
        gain = rng.uniform(0.4, 1.2)
        read = rng.uniform(2.0, 6.0)
        out = []
        for img, lo, hi in ((protein, 1200, 3500), (dna, 1500, 3500)):
            img = ndi.gaussian_filter(img, sig, truncate=3.0)
            img = img / _ref_level(img, cell_mask)
            bright = rng.uniform(lo, hi)
            bg = rng.uniform(60, 300)
            mean = np.maximum(img * bright + bg, 0).astype(np.float32)
            # shot noise (variance gain * mean; photon counts here are >= ~50 so the Gaussian
            # approximation of Poisson is accurate) plus Gaussian read noise, in one draw
            sd = np.sqrt(mean * np.float32(gain) + np.float32(read * read))
            val = mean + sd * rng.standard_normal(img.shape, dtype=np.float32)
            out.append(np.clip(np.rint(val), 0, 65535).astype(np.uint16))
        return out[0], out[1]


class _AltRenderer(_DefaultRenderer):
    """Another microscope and another drawing style for the same biology."""

    style = "alt"

    def __init__(self, rng, size, unit=None):
        self.px = rng.uniform(1.1, 1.35)  # larger pixels relative to structures -> thicker objects
        super().__init__(rng, size, unit)

    def weights(self, n, spread=0.35):
        # gamma instead of lognormal intensities, a bit wider
        k = 1.0 / max(spread, 0.05) ** 2 * 0.6
        return self.rng.gamma(k, 1.0 / k, n)

    def segments(self, p0, p1, w, wd, mask=None, dim=None):
        """Filaments: coarse samples, box-filter (trapezoid) profile instead of a Gaussian."""
        pts, sw, swd = _sample_segments(p0, p1, w, wd * self.u, 0.8)
        if mask is not None:
            sw = sw * _lookup(mask, pts[:, 0], pts[:, 1])
        if dim is not None:
            m, f = dim
            sw = sw * np.where(_lookup(m, pts[:, 0], pts[:, 1]), f, 1.0)
        out = np.zeros((self.size, self.size), np.float32)
        b = np.clip(np.rint(swd * 2.0).astype(int), 1, 9)
        for s in np.unique(b):
            k = b == s
            # nearest-pixel splat (no sub-pixel anti-aliasing) then a box filter
            img = _splat(self.size, np.rint(pts[k, 0]), np.rint(pts[k, 1]), sw[k])
            out += ndi.uniform_filter(img, int(s) + 1) * (int(s) + 1) / 2.0
        return out

    def paths(self, paths, w, wd, mask=None, dim=None):
        # piecewise-straight: keep every ~4th vertex of each polyline
        coarse = [p[:: 4] if len(p) > 8 else p for p in paths]
        coarse = [np.vstack([c, p[-1:]]) if len(p) > 8 else c for c, p in zip(coarse, paths)]
        return super().paths(coarse, w, wd, mask=mask, dim=dim)

    def puncta(self, yx, radius, w):
        """Flat-topped discs with a 1-px soft edge (radius ~1.3x the default sigma)."""
        r = np.maximum(radius * self.u * 1.3, 0.7)

        def disc(d, r=r):
            return np.clip((1.0 - d) * (r[:, None] + 0.5), 0, 1)

        return _stamp(self.size, yx[:, 0], yx[:, 1], r, w, disc)

    def texture(self, scale):
        # box-filtered noise (blocky correlation) instead of Gaussian-filtered noise
        s = max(2, int(round(scale * self.u * 2)))
        f = ndi.uniform_filter(self.rng.standard_normal((self.size, self.size)).astype(np.float32), s)
        f -= f.mean()
        return f / max(f.std(), 1e-6)

    def chromatin(self, cell):
        # speckled chromatin: many small discs on a flat base
        n = 400
        pts = cell.sample(self.rng, n, where="nuc")
        sp = self.puncta(pts, self.rng.uniform(0.8, 2.2, n), self.rng.uniform(0.2, 1.0, n))
        return 0.75 + 0.5 * sp / max(float(sp.max()), 1e-6)

    def acquire(self, protein, dna, cell_mask):
        rng = self.rng
        size = self.size
        psf = _airy_kernel(rng, self.unit)
        yy, xx = _grid(size)
        # uneven illumination (vignetting around an off-centre optical axis)
        oy, ox = rng.uniform(0.2, 0.8, 2) * size
        vig = 1 - rng.uniform(0.15, 0.4) * ((yy - oy) ** 2 + (xx - ox) ** 2) / size ** 2
        em = rng.uniform(4.0, 10.0)          # EM gain (counts per photo-electron)
        read = rng.uniform(3.0, 8.0)
        out = []
        for img, lo, hi in ((protein, 900, 2600), (dna, 1000, 2600)):
            img = fftconvolve(img, psf, mode="same").astype(np.float32)
            img = np.maximum(img, 0) / _ref_level(img, cell_mask)
            bright = rng.uniform(lo, hi)
            bg = rng.uniform(100, 400) + rng.uniform(-40, 40) * (xx - size / 2) / size  # gradient
            lam = (np.maximum(img * bright * vig, 0)) / em
            electrons = rng.poisson(lam).astype(np.float32)
            # EMCCD: gamma-distributed multiplication (excess noise), not Poisson*gain
            val = np.where(electrons > 0, rng.gamma(np.maximum(electrons, 1e-3), em), 0.0).astype(np.float32)
            val += bg.astype(np.float32)
            val += rng.normal(0, read, img.shape).astype(np.float32)
            val += rng.normal(0, 4.0, (1, size)).astype(np.float32)  # column fixed pattern
            hot = rng.uniform(0, 1, img.shape) < 5e-5
            val[hot] += rng.uniform(500, 2500, int(hot.sum()))
            out.append(np.clip(np.rint(val), 0, 4095).astype(np.uint16))  # 12-bit camera
        return out[0], out[1]


def _airy_kernel(rng, u):
    """Anisotropic Airy-like PSF (jinc^2 core with a faint ring), randomly elongated and rotated."""
    from scipy.special import j1

    r0 = rng.uniform(2.2, 3.6) * u          # first dark ring radius (px)
    aniso = rng.uniform(1.2, 1.7)
    phi = rng.uniform(0, np.pi)
    k = int(math.ceil(2.2 * r0 * aniso)) + 1
    o = np.arange(-k, k + 1, dtype=np.float64)
    y, x = np.meshgrid(o, o, indexing="ij")
    a = x * np.cos(phi) + y * np.sin(phi)
    b = -x * np.sin(phi) + y * np.cos(phi)
    r = np.hypot(a / aniso, b)
    v = 3.8317 * r / r0
    with np.errstate(invalid="ignore", divide="ignore"):
        psf = np.where(v > 1e-6, (2 * j1(v) / v) ** 2, 1.0)
    return (psf / psf.sum()).astype(np.float32)


def _ref_level(img, mask):
    """Intensity that maps to 'bright': the cell's 99.5th percentile, or 40 % of its maximum when
    that is higher (so compact bright structures do not reach tens of thousands of counts)."""
    v = img[mask]
    if v.size == 0:
        v = img.ravel()
    ref = max(float(np.percentile(v[:: max(1, v.size // 40000)], 99.5)), 0.4 * float(v.max()))
    return ref if ref > 1e-9 else 1.0


_RENDERERS = {"default": _DefaultRenderer, "alt": _AltRenderer}


# --------------------------------------------------------------------------------------------
# biology per class: protein channel (float, before PSF/noise)
# --------------------------------------------------------------------------------------------

def _haze(R, cell, level, where="cyto"):
    m = cell.body_soft * (1 - cell.nuc_soft) if where == "cyto" else cell.body_soft
    return level * m * np.clip(1 + 0.25 * R.texture(25.0), 0.2, None)


def _protein_actin(cell, R, rng):
    u = R.u
    n = int(rng.integers(25, 55))
    th0 = rng.uniform(0, np.pi)
    th = th0 + rng.normal(0, 0.18, n) + (rng.uniform(0, 1, n) < 0.06) * rng.uniform(0, np.pi, n)
    c = cell.sample(rng, n, where="body")
    d = np.stack([np.sin(th), np.cos(th)], 1)
    t = np.arange(-cell.size, cell.size + 1, 2.0)
    py = c[:, 0, None] + t[None] * d[:, 0, None]
    px = c[:, 1, None] + t[None] * d[:, 1, None]
    inside = _lookup(cell.body, py, px)
    zero = len(t) // 2
    # extent of the inside run around t=0
    fwd = inside[:, zero:]
    t_plus = t[zero:][np.where(fwd.all(1), fwd.shape[1] - 1, np.argmin(fwd, 1) - 1).clip(0)]
    bwd = inside[:, zero::-1]
    t_minus = -t[zero:][np.where(bwd.all(1), bwd.shape[1] - 1, np.argmin(bwd, 1) - 1).clip(0)]
    span = t_plus - t_minus
    f = rng.uniform(0.45, 1.0, n)
    a = t_minus + rng.uniform(0, 1, n) * (1 - f) * span
    b = a + f * span
    sag = rng.normal(0, 3.0 * u, n)
    paths = []
    for i in range(n):
        s = np.linspace(a[i], b[i], 9)
        off = sag[i] * (1 - ((s - (a[i] + b[i]) / 2) / max(span[i] * f[i] / 2, 1)) ** 2)
        paths.append(np.stack([c[i, 0] + s * d[i, 0] - off * d[i, 1],
                               c[i, 1] + s * d[i, 1] + off * d[i, 0]], 1))
    w = R.weights(n, 0.45) * 0.9
    wd = rng.uniform(0.65, 1.2, n)
    img = R.paths(paths, w, wd, mask=cell.body)
    # cortex: bright rim along the plasma membrane, patchy
    width = rng.uniform(2.0, 4.0) * u
    cortex = np.exp(-cell.d_edge / width) * cell.body_soft
    cortex *= np.clip(1 + 0.5 * R.texture(12.0), 0.1, None)
    img += rng.uniform(0.7, 1.3) * cortex
    img += _haze(R, cell, rng.uniform(0.06, 0.14), where="body")
    return img


def _protein_microtubules(cell, R, rng):
    u = R.u
    n = int(rng.integers(50, 110))
    centro = cell.nucleus_point(cell.mtoc_angle, rng.uniform(2, 7) * u)
    start = centro[None] + rng.normal(0, 1.5 * u, (n, 2))
    ang = rng.uniform(0, 2 * np.pi, n)
    step = 1.5 * u
    max_len = rng.uniform(0.5, 1.8, n) * cell.r_mean * 1.6
    n_steps = np.ceil(max_len / step).astype(int)
    body = cell.body
    P, A = _walks(rng, start, ang, n_steps, step, 0.05,
                  lambda y, x: _lookup(body, y, x).astype(bool))
    p0, p1, w = _walk_segments(P, A, R.weights(n, 0.3))
    wd = np.full(len(w), rng.uniform(0.75, 1.0))
    img = R.segments(p0, p1, w, wd, dim=(cell.nuc, 0.45))
    # the centrosome (aster centre) and free tubulin
    img += R.puncta(centro[None], np.array([2.5]), np.array([rng.uniform(0.6, 1.2)]))
    img += _haze(R, cell, rng.uniform(0.12, 0.25), where="body") * (1 - 0.5 * cell.nuc_soft)
    return img


def _protein_er(cell, R, rng):
    u = R.u
    n = int(rng.integers(350, 650))
    pts = cell.sample(rng, n, density=lambda f: np.exp(-2.2 * f))
    tri = Delaunay(pts)
    s = tri.simplices
    e = np.concatenate([s[:, [0, 1]], s[:, [1, 2]], s[:, [0, 2]]])
    e = np.unique(np.sort(e, 1), axis=0)
    p0, p1 = pts[e[:, 0]], pts[e[:, 1]]
    L = np.hypot(*(p1 - p0).T)
    mid = (p0 + p1) / 2
    keep = (L < rng.uniform(14, 22) * u) & (rng.uniform(0, 1, len(L)) < 0.8)
    keep &= _lookup(cell.cyto, mid[:, 0], mid[:, 1]).astype(bool)
    p0, p1, L = p0[keep], p1[keep], L[keep]
    # bend each tubule: a jittered midpoint
    d = (p1 - p0) / np.maximum(L[:, None], 1e-6)
    mid = (p0 + p1) / 2 + rng.normal(0, 0.15, (len(L), 1)) * L[:, None] * np.stack([-d[:, 1], d[:, 0]], 1)
    a0 = np.concatenate([p0, mid])
    a1 = np.concatenate([mid, p1])
    w = np.tile(R.weights(len(L), 0.3), 2) * 0.6
    wd = np.full(len(w), 0.75)
    img = R.segments(a0, a1, w, wd, mask=cell.cyto)
    # perinuclear sheets, nuclear envelope, unresolved network haze
    sheets = np.exp(-cell.frac / rng.uniform(0.12, 0.25)) * cell.cyto
    img += rng.uniform(0.3, 0.6) * sheets * np.clip(1 + 0.4 * R.texture(4.0), 0, None)
    envelope = np.exp(-(cell.d_nuc / (1.8 * u)) ** 2) * cell.body
    img += rng.uniform(0.3, 0.6) * envelope
    img += _haze(R, cell, rng.uniform(0.12, 0.22))
    return img * (1 - 0.85 * cell.nuc_soft) + rng.uniform(0.04, 0.12) * cell.nuc_soft


def _protein_mitochondria(cell, R, rng):
    u = R.u
    n = int(rng.integers(60, 150))
    start = cell.sample(rng, n, density=lambda f: 0.35 + 0.65 * np.exp(-1.5 * f))
    lengths = rng.gamma(2.0, 6.0, n) * u + 2 * u
    step = 1.0 * u
    cyto = cell.cyto
    P, A = _walks(rng, start, rng.uniform(0, 2 * np.pi, n), np.ceil(lengths / step).astype(int), step,
                  0.28, lambda y, x: _lookup(cyto, y, x).astype(bool))
    p0, p1, w = _walk_segments(P, A, R.weights(n, 0.35))
    wd = np.full(len(w), rng.uniform(1.1, 1.5))
    img = R.segments(p0, p1, w, wd)
    # fragmented (round) mitochondria
    m = int(rng.integers(5, 30))
    pts = cell.sample(rng, m)
    img += R.puncta(pts, rng.uniform(1.3, 2.0, m), R.weights(m, 0.35) * 0.35)
    img += _haze(R, cell, rng.uniform(0.04, 0.1))
    return img


def _golgi(cell, R, rng, kind):
    u = R.u
    phi = cell.mtoc_angle
    if kind == "gia":   # giantin: compact, continuous ribbon hugging the nucleus
        n = int(rng.integers(70, 130))
        ext = rng.uniform(0.3, 0.7)
        ang = phi + rng.uniform(-ext, ext, n)
        radial = rng.uniform(0.0, 5.0) * u + rng.normal(0, 1.5 * u, n)
        radial += 2.5 * u * np.sin(ang * rng.uniform(3, 6) + rng.uniform(0, 6))  # ribbon folds
        pts = cell.nucleus_point(ang, radial)
        img = R.puncta(pts, rng.uniform(1.5, 2.2, n), R.weights(n, 0.25) * 0.5)
        m = int(rng.integers(2, 10))
        ves_r = 25
    else:               # gpp130: broader, more fragmented stacks and more vesicles
        n = int(rng.integers(30, 70))
        ext = rng.uniform(0.5, 1.05)
        ang = phi + rng.uniform(-ext, ext, n)
        radial = rng.uniform(1.0, 8.0) * u + np.abs(rng.normal(0, 4.5 * u, n))
        pts = cell.nucleus_point(ang, radial)
        img = R.puncta(pts, rng.uniform(1.2, 2.0, n), R.weights(n, 0.5) * 0.6)
        m = int(rng.integers(12, 35))
        ves_r = 45
    # vesicles near the Golgi
    centre = cell.nucleus_point(phi, 6 * u)
    ves = centre[None] + rng.normal(0, ves_r * u / 2, (m, 2))
    ok = _lookup(cell.body, ves[:, 0], ves[:, 1]).astype(bool)
    ves = ves[ok]
    img += R.puncta(ves, rng.uniform(1.0, 1.5, len(ves)), R.weights(len(ves), 0.4) * 0.3)
    img *= cell.body_soft
    img += _haze(R, cell, rng.uniform(0.03, 0.08) * (1.6 if kind == "gpp" else 1.0), where="body")
    return img


def _protein_golgi_gia(cell, R, rng):
    return _golgi(cell, R, rng, "gia")


def _protein_golgi_gpp(cell, R, rng):
    return _golgi(cell, R, rng, "gpp")


def _protein_endosome(cell, R, rng):
    u = R.u
    n = int(rng.integers(160, 360))
    pts = cell.sample(rng, n, density=lambda f: 0.25 + 0.75 * f)
    img = R.puncta(pts, rng.uniform(0.9, 1.4, n), R.weights(n, 0.5) * 0.5)
    # a few recycling endosomes near the MTOC
    m = int(rng.integers(5, 25))
    c = cell.nucleus_point(cell.mtoc_angle, 8 * u)
    pc = c[None] + rng.normal(0, 8 * u, (m, 2))
    img += R.puncta(pc, rng.uniform(0.9, 1.4, m), R.weights(m, 0.5) * 0.5)
    img *= cell.body_soft * (1 - 0.7 * cell.nuc_soft)
    img += _haze(R, cell, rng.uniform(0.08, 0.16))
    return img


def _protein_lysosome(cell, R, rng):
    n = int(rng.integers(35, 100))
    pts = cell.sample(rng, n, density=lambda f: np.exp(-2.8 * f))
    img = R.puncta(pts, rng.uniform(1.6, 2.8, n), R.weights(n, 0.45) * 1.0)
    img *= cell.body_soft * (1 - 0.5 * cell.nuc_soft)
    img += _haze(R, cell, rng.uniform(0.03, 0.08))
    return img


def _nucleoli_image(cell, R, rng, n_lobes=(2, 6)):
    yx, rs = [], []
    for y, x, r in cell.nucleoli:
        k = int(rng.integers(*n_lobes))
        off = rng.normal(0, 0.45 * r, (k, 2))
        yx.append(np.array([y, x]) + off)
        rs.append(r * rng.uniform(0.5, 0.9, k))
    yx = np.concatenate(yx)
    rs = np.concatenate(rs) / R.u  # radii given in pixels; puncta() expects reference units
    f = R.puncta(yx, rs, np.ones(len(rs)))
    # soft threshold of the lobe field: irregular, fairly sharp-edged bodies (not Gaussian blobs)
    f = f / max(float(f.max()), 1e-6)
    return np.clip((f - 0.35) / 0.25, 0, 1) * cell.nuc_soft


def _protein_nucleolus(cell, R, rng):
    blobs = _nucleoli_image(cell, R, rng)
    blobs = blobs / max(float(blobs.max()), 1e-6)
    img = blobs * np.clip(1 + 0.2 * R.texture(2.0), 0.3, None)
    img += rng.uniform(0.03, 0.1) * cell.nuc_soft * np.clip(1 + 0.2 * R.texture(2.0), 0, None)
    img += _haze(R, cell, rng.uniform(0.01, 0.03))
    return img


def _protein_nucleus(cell, R, rng):
    tex = 0.7 * (cell.chromatin - 1) + 0.3 * 0.28 * R.texture(2.0)
    img = cell.nuc_soft * np.clip(1 + tex, 0.1, None) * (1 - 0.5 * cell.holes)
    img += _haze(R, cell, rng.uniform(0.0, 0.03))
    return img


_PROTEIN = {
    "ActinFilaments": _protein_actin,
    "Endosome": _protein_endosome,
    "ER": _protein_er,
    "Golgi_gia": _protein_golgi_gia,
    "Golgi_gpp": _protein_golgi_gpp,
    "Lysosome": _protein_lysosome,
    "Microtubules": _protein_microtubules,
    "Mitochondria": _protein_mitochondria,
    "Nucleolus": _protein_nucleolus,
    "Nucleus": _protein_nucleus,
}


def _dna(cell, R, rng):
    """DAPI: the nucleus with chromatin texture, a brighter rim, sometimes nucleolar holes."""
    chrom = R.chromatin(cell)
    cell.chromatin = chrom
    holes = np.zeros_like(chrom)
    if rng.uniform() < 0.65:
        h = _nucleoli_image(cell, R, rng, n_lobes=(1, 4))
        holes = rng.uniform(0.3, 0.7) * h / max(float(h.max()), 1e-6)
    cell.holes = holes
    rim = 1 + 0.15 * np.clip(cell.nuc_rel, 0, 1) ** 4
    return cell.nuc_soft * chrom * rim * (1 - holes)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------

#: Smallest image side simulate_cell draws a cell in.
MIN_SIZE = 32
#: Largest simulated image side (pixels).
MAX_SIZE = 4096


def _check(cls: str, style: str, size: int) -> None:
    """InputError (a ValueError) that says what to use instead, for an unknown class or style or a
    size that is not a whole number >= MIN_SIZE."""
    from .preprocess import InputError

    if cls not in _PROTEIN:
        raise InputError(f"Unknown class {cls!r}; the simulator knows {', '.join(CLASSES)}.")
    if style not in _RENDERERS:
        raise InputError(f"Unknown style {style!r}; choose one of: {', '.join(STYLES)}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise InputError(f"The image size must be a whole number of pixels (got {size!r}).")
    if int(size) < MIN_SIZE:
        raise InputError(f"size={size} is too small to draw a cell; use at least {MIN_SIZE} pixels.")
    if int(size) > MAX_SIZE:
        raise InputError(f"size={size} is too large: simulated cells are at most {MAX_SIZE} pixels a side "
                         "(382 is the size of a 2D HeLa cell image; one cell of 100000 pixels would need tens "
                         "of GB).")


def check_seed(seed) -> int:
    """A seed: a whole number from 0 to 2**32 - 1; else InputError."""
    from .preprocess import InputError

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2 ** 32:
        raise InputError(f"The seed must be a whole number from 0 to {2 ** 32 - 1} (got {seed!r}).")
    return int(seed)


def check_dataset_args(out_dir, per_class, size, style, classes=CLASSES) -> None:
    """Check :func:`write_dataset`'s arguments before anything is written; InputError if unusable."""
    from .preprocess import InputError

    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise InputError(f"The number of cells per class must be at least 1 (got {per_class!r}).")
    classes = list(classes)
    if not classes:
        raise InputError("No classes to simulate: give at least one class name.")
    for cls in classes:
        _check(cls, style, size)
    if out_dir is not None:
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputError(f"{out} is a file, not a folder; give a folder to write the cells into.")
        for parent in out.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise InputError(f"{out} cannot be created: {parent} is a file, not a folder.")
                break


def _render_signal(cls, rng, size, style, scale_range=None, unit=None):
    """Noise-free float protein and DNA images (before PSF) and the cell mask."""
    R = _RENDERERS[style](rng, size, unit)
    cell = _Cell(rng, size, style, scale_range=scale_range)
    dna = _dna(cell, R, rng)
    protein = _PROTEIN[cls](cell, R, rng)
    return protein.astype(np.float32), dna.astype(np.float32), cell, R


def simulate_cell(cls: str, rng: np.random.Generator, size: int = 382,
                  style: str = "default") -> tuple[np.ndarray, np.ndarray]:
    """Simulate one cell of class ``cls``: (protein uint16 (size, size), dna uint16 (size, size)).

    All randomness comes from ``rng`` (cell shape, size, position, orientation, organelle layout,
    brightness, blur, background and noise), so the same generator state gives the same images.
    """
    _check(cls, style, size)
    size = int(size)
    protein, dna, cell, R = _render_signal(cls, rng, size, style)
    return R.acquire(protein, dna, cell.body)


def _child_rng(seed: int, cls: str, index: int, style: str) -> np.random.Generator:
    key = (zlib.crc32(cls.encode()), int(index), zlib.crc32(style.encode()))
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))


def _iter_cells(per_class, seed, size, style, classes):
    check_seed(seed)
    for cls in classes:
        _check(cls, style, size)
    for cls in classes:
        for i in range(int(per_class)):
            p, d = simulate_cell(cls, _child_rng(seed, cls, i, style), size=size, style=style)
            yield cls, i, p, d


def simulate_dataset(per_class: int, seed: int = 0, size: int = 382, style: str = "default",
                     classes=CLASSES, progress=None):
    """Simulate ``per_class`` cells of each class -> ``datasets.LabelledImages``.

    Each cell has its own generator derived from (seed, class name, index, style), so a cell does
    not depend on the order of ``classes``, on which classes are requested or on ``per_class``.
    ``progress(done, total)`` is called after each cell when given.
    """
    from .datasets import LabelledImages, Sample

    classes = list(classes)
    total = len(classes) * int(per_class)
    samples = []
    for k, (cls, i, p, d) in enumerate(_iter_cells(per_class, seed, size, style, classes)):
        samples.append(Sample(protein=p, dna=d, label=cls, source=f"simulated:{style}:{seed}:{i}"))
        if progress is not None:
            progress(k + 1, total)
    return LabelledImages(
        samples=samples, classes=classes, skipped=[], warnings=[],
        description=(f"simulated cells (napari_organelle.phantoms, style={style}, seed={seed}, "
                     f"{per_class} per class, {size}x{size})"),
    )


def simulate_field(n_cells: int = 6, seed: int = 0, size: int = 768, classes=None, *,
                   touching: float = 0.0, illumination: float = 0.0, debris: int = 0):
    """A field of view with ``n_cells`` non-overlapping cells.

    Returns (protein uint16, dna uint16, labels int32 with 0 = background and i = cell i, list of the
    class of each cell i-1). ``classes``: None draws each cell's class from the ten at random; a
    sequence of exactly ``n_cells`` names assigns them in order; any other sequence is drawn from.

    Harder fields (the defaults give the plain field, unchanged):

    * ``touching`` (0-1): the fraction of the cells (after the first) placed in contact with an
      earlier cell, their bodies touching without overlap, so that clusters of touching cells form.
    * ``illumination`` (0-0.9): uneven illumination; the field (cells and background) is dimmed
      by a vignette around an off-centre optical axis, down to ``1 - illumination`` at the far
      corner, and a background gradient (``illumination`` x 4 % of a cell's brightness across the
      field) is added.
    * ``debris``: that many small bright specks in the background, no cells (dust, cell fragments;
      about half also carry DNA, like micronuclei or apoptotic bodies).
    """
    n_cells = int(n_cells)
    if n_cells < 1:
        raise ValueError("n_cells must be at least 1.")
    touching, illumination, debris = float(touching), float(illumination), int(debris)
    if not 0.0 <= touching <= 1.0:
        raise ValueError(f"touching is a fraction of the cells, between 0 and 1 (got {touching}).")
    if not 0.0 <= illumination <= 0.9:
        raise ValueError(f"illumination must be between 0 (even) and 0.9 (got {illumination}).")
    if debris < 0:
        raise ValueError(f"debris must be a number of specks, 0 or more (got {debris}).")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(0xF1E1D,)))
    # the harder fields draw from their own generator, so the plain field stays as it always was
    hrng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(0xF1E1D, 0x4A4D)))
    if classes is None:
        names = [CLASSES[i] for i in rng.integers(0, len(CLASSES), n_cells)]
    else:
        classes = list(classes)
        names = classes if len(classes) == n_cells else [classes[i] for i in rng.integers(0, len(classes), n_cells)]
    for c in names:
        _check(c, "default", 64)
    canvas = int(min(382, 0.9 * size / math.sqrt(n_cells)))
    if canvas < 48:
        raise ValueError(f"{n_cells} cells do not fit in a {size}x{size} field; use a larger size.")
    prot = np.zeros((size, size), np.float32)
    dna = np.zeros((size, size), np.float32)
    labels = np.zeros((size, size), np.int32)
    occupied = np.zeros((size, size), bool)
    bodies = np.zeros((size, size), bool)  # the cells themselves, without the gap around them
    centres: list[tuple[float, float]] = []
    gap = max(2, size // 150)
    for i, cls in enumerate(names):
        crng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(0xF1E1D, i + 1)))
        c = canvas
        placed = False
        while not placed:
            # same pixel size as single-cell images (unit=1): a field is a wider view, not a zoom
            p, d, cell, _ = _render_signal(cls, crng, c, "default", scale_range=(0.75, 0.97), unit=1.0)
            body = cell.body
            grown = ndi.binary_dilation(body, iterations=gap)
            if centres and touching > 0 and hrng.uniform() < touching:
                at = _touching_position(hrng, bodies, body, (cell.cy, cell.cx), centres)
                if at is not None:
                    (y0, x0), placed = at, True
            for _ in range(0 if placed else 300):
                y0, x0 = rng.integers(0, size - c + 1, 2)
                if not (occupied[y0:y0 + c, x0:x0 + c] & grown).any():
                    placed = True
                    break
            if not placed:
                c = int(c * 0.85)
                if c < 32:
                    raise ValueError(f"Could not place {n_cells} cells in a {size}x{size} field.")
        sl = (slice(y0, y0 + c), slice(x0, x0 + c))
        # each cell its own expression level; normalise per cell so brightness is comparable
        b = crng.uniform(0.6, 1.4)
        prot[sl] += b * p / _ref_level(p, body) * body
        dna[sl] += crng.uniform(0.8, 1.2) * d / _ref_level(d, body)
        labels[sl][body] = i + 1
        occupied[sl] |= grown
        bodies[sl] |= body
        centres.append((y0 + cell.cy, x0 + cell.cx))
    if debris:
        _add_debris(hrng, prot, dna, occupied, debris)
    if illumination > 0:
        yy, xx = _grid(size)
        oy, ox = hrng.uniform(0.25, 0.75, 2) * size
        far = max(math.hypot(cy - oy, cx - ox) for cy in (0, size) for cx in (0, size))
        vignette = 1 - illumination * ((yy - oy) ** 2 + (xx - ox) ** 2) / far ** 2
        ang = hrng.uniform(0, 2 * np.pi)
        ramp = ((yy - size / 2) * math.sin(ang) + (xx - size / 2) * math.cos(ang)) / size + 0.5
        level = float(np.percentile(prot[labels > 0], 99.5)) if (labels > 0).any() else 1.0
        prot = prot * vignette + np.float32(0.04 * illumination * level) * ramp
        dna = dna * vignette
    p16, d16 = _DefaultRenderer(rng, size, unit=1.0).acquire(prot, dna, labels > 0)
    return p16, d16, labels, list(names)


def _touching_position(rng, bodies, body, centre, centres, tries: int = 40):
    """Top-left corner for a cell ``body`` (centre ``centre`` in its canvas) so that it touches an
    already placed cell without overlapping any: slide it along a random ray from a placed cell's
    centre until it no longer overlaps. None if no such position is found in the field."""
    size = bodies.shape[0]
    c = body.shape[0]
    cy, cx = centre
    edge = body & ~ndi.binary_erosion(body)
    ey, ex = np.nonzero(edge)
    for _ in range(tries):
        ty, tx = centres[int(rng.integers(len(centres)))]
        th = rng.uniform(0, 2 * np.pi)
        dy, dx = math.sin(th), math.cos(th)
        last_overlap = None
        for t in range(0, 2 * c, 1):
            y0 = int(round(ty + t * dy - cy))
            x0 = int(round(tx + t * dx - cx))
            if y0 < 0 or x0 < 0 or y0 + c > size or x0 + c > size:
                break
            if (bodies[y0:y0 + c, x0:x0 + c] & body).any():
                last_overlap = t
                continue
            if last_overlap is not None:
                # touching: some edge pixel of the new cell is next to a placed cell
                near = ndi.binary_dilation(bodies[max(0, y0 - 1):y0 + c + 1, max(0, x0 - 1):x0 + c + 1])
                oy, ox = y0 - max(0, y0 - 1), x0 - max(0, x0 - 1)
                if near[ey + oy, ex + ox].any():
                    return y0, x0
            break
    return None


def _add_debris(rng, prot, dna, occupied, n):
    """``n`` small bright specks (radius 1.5-5 px) in the background; about half also in the DNA."""
    size = prot.shape[0]
    level = float(np.percentile(prot[occupied], 99)) if occupied.any() else 1.0
    free = np.argwhere(~ndi.binary_dilation(occupied, iterations=8))
    if free.size == 0:
        return
    pts = free[rng.integers(0, len(free), n)].astype(np.float64)
    r = rng.uniform(1.5, 5.0, n)
    k = int(math.ceil(r.max() * 3))
    yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
    for (y, x), ri in zip(pts, r):
        y, x = int(y), int(x)
        blob = np.exp(-0.5 * (yy ** 2 + xx ** 2) / ri ** 2).astype(np.float32)
        y0, y1, x0, x1 = max(0, y - k), min(size, y + k + 1), max(0, x - k), min(size, x + k + 1)
        b = blob[y0 - y + k:y1 - y + k, x0 - x + k:x1 - x + k]
        prot[y0:y1, x0:x1] += rng.uniform(0.3, 1.5) * level * b
        if rng.uniform() < 0.5:
            dna[y0:y1, x0:x1] += rng.uniform(0.3, 1.0) * b


def write_dataset(out_dir, per_class: int, seed: int = 0, size: int = 382, style: str = "default",
                  two_channel: bool = True, classes=CLASSES) -> list[Path]:
    """Write simulated cells as TIFFs, one folder per class; returns the paths written.

    InputError, before anything is written, when ``per_class`` < 1, ``size`` < MIN_SIZE, the style or
    a class is unknown, or ``out_dir`` is a file. Existing files of the same names are replaced; the
    CLI (``napari-organelle phantoms``) also refuses a folder that holds other files.

    ``two_channel``: ``<out>/<Class>/<Class>_<NNN>.tif`` holding a (2, Y, X) uint16 stack (channel 0
    protein, channel 1 DNA); otherwise ``<Class>_<NNN>_protein.tif`` and ``<Class>_<NNN>_dna.tif``.
    Cells are generated and written one at a time (memory stays small).
    """
    import tifffile

    check_dataset_args(out_dir, per_class, size, style, classes)
    check_seed(seed)
    from ._files import atomic_file

    out = Path(out_dir)
    digits = max(3, len(str(max(int(per_class) - 1, 0))))
    written: list[Path] = []
    for cls, i, p, d in _iter_cells(per_class, seed, size, style, list(classes)):
        folder = out / cls
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{cls}_{i:0{digits}d}"
        if two_channel:
            path = folder / f"{stem}.tif"
            with atomic_file(path, "wb") as fh:  # never a truncated file (full disk, Ctrl-C)
                tifffile.imwrite(fh, np.stack([p, d]), photometric="minisblack")
            written.append(path)
        else:
            for name, arr in (("protein", p), ("dna", d)):
                path = folder / f"{stem}_{name}.tif"
                with atomic_file(path, "wb") as fh:
                    tifffile.imwrite(fh, arr, photometric="minisblack")
                written.append(path)
    return written
