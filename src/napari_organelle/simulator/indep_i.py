"""``indep_i``: an independently written renderer of simulated fluorescence cells.

Written from docs/biology.md only. Cells come from ``_indep_i_cell`` (four cell lines, most of them
large flat spread cells; a few percent rounded or mitotic), drawing primitives from
``_indep_i_draw``. Each class below draws the variants biology.md lists, with the common looks of
immunofluorescence in spread interphase cells as the majority:

* Microtubules: mostly a dense meshwork of hundreds of long wavy PSF-thin lines to the cell edge;
  radial stars and parallel arrays as minorities; spindles in mitosis.
* ActinFilaments: straight parallel stress fibres with focal-adhesion dashes and a cortex, or
  cortex/ruffle-dominated cells with few fibres; podosomes, filopodia, transverse arcs sometimes.
* ER: a fine lacy/grainy texture (mesh 0.5-2 µm, usually unresolved), a perinuclear cloud, the
  nuclear envelope ring and a dim nucleus.
* Golgi (giantin / gpp130): a juxtanuclear ribbon of stacks (arc, cap or knot), gpp130 a little more
  fragmented and with more small puncta; the distributions overlap.
* Endosome / Lysosome: overlapping distributions of many small dim puncta over a diffuse background.
* Mitochondria: worm-like, branched tubules, rods and dots, perinuclear-dense.
* Nucleolus / Nucleus: from the nucleus model shared with the DNA channel.

Physical units (µm) everywhere, converted with the cell's pixel size. Line brightness is per µm of
length (so a line's pixel value scales as 1/pixel size, like the real specimen's density).
"""

from __future__ import annotations

import numpy as np

from . import _indep_i_draw as D
from ._indep_i_cell import make_cell
from .base import RenderedCell, extent

NAME = "indep_i"


def _w(rng, options):
    """Pick a variant name from {name: weight}."""
    names = list(options)
    p = np.array([options[k] for k in names], float)
    return names[rng.choice(len(names), p=p / p.sum())]


def _cyto_haze(c):
    return np.where(c.cyto, c.thick, 0).astype(np.float32)


# ----------------------------------------------------------------------------------- Microtubules
def _microtubules(c, rng):
    n, px = c.n, c.px
    if c.state == "mitotic":
        return _spindle(c, rng), "spindle"
    v = _w(rng, {"meshwork": 0.62, "radial": 0.18, "parallel": 0.12 + 0.2 * (c.aspect > 2), "bundled": 0.08})
    area = c.cell.sum() * px * px
    nlines = int(np.clip(area * rng.uniform(0.15, 0.4), 60, 520))
    # centrosome on the bulk side, next to the nucleus
    ang = c.bulk + rng.normal(0, 0.4)
    rn = c.na * rng.uniform(0.9, 1.3)
    csy, csx = c.ny + np.sin(ang) * rn / px, c.nx + np.cos(ang) * rn / px
    if not D.lookup(c.cell, np.array([csy]), np.array([csx]))[0]:
        csy, csx = c.ny, c.nx
    if v == "radial":
        k = nlines
        y0 = csy + rng.normal(0, 0.6 / px, k)
        x0 = csx + rng.normal(0, 0.6 / px, k)
        th0 = rng.uniform(0, 2 * np.pi, k)
        amp, lam, dif = rng.uniform(0.04, 0.12), rng.uniform(8, 20), rng.uniform(0.03, 0.07)
    else:
        k = nlines
        wgt = np.where(c.cell, 0.25 + c.thick, 0).astype(np.float32)
        y0, x0 = D.sample_positions(rng, wgt[::2, ::2].copy(), k)
        y0, x0 = y0 * 2, x0 * 2
        radial = np.arctan2(y0 - csy, x0 - csx)
        if v == "parallel":
            th0 = c.axis + rng.choice([0, np.pi], k) + rng.normal(0, 0.25, k)
        else:
            th0 = radial + rng.normal(0, rng.uniform(0.5, 1.2), k)
        amp = rng.uniform(0.1, 0.3) if v != "bundled" else rng.uniform(0.2, 0.4)
        lam, dif = rng.uniform(5, 15), rng.uniform(0.05, 0.12)
    ds = max(0.8, nlines * rng.uniform(10, 40) / px / 250000)
    length = rng.uniform(10, 40, k) / px
    # curvature converted: amp rad/µm -> rad/px, wavelength µm -> px, diffusion rad/sqrt(µm)
    y, x, alive = D.walks(rng, y0, x0, th0, length, ds, amp * px, lam / px, dif * np.sqrt(px))
    if v != "radial":  # lines run both ways from their seed: a second, opposite half
        y2, x2, al2 = D.walks(rng, y0, x0, th0 + np.pi, length * rng.uniform(0.2, 1.0, k), ds,
                              amp * px, lam / px, dif * np.sqrt(px))
        y, x, alive = D.cat_walks((y, x, alive), (y2, x2, al2))
    alive = D.keep_inside(alive, c.cell, y, x)
    over_nuc = D.lookup(c.nucleus, y, x).astype(bool)
    th = D.lookup(c.thick, y, x)
    B = 0.25 * rng.uniform(0.7, 1.3, (len(y), 1))  # per µm; PSF-thin
    if v == "bundled":
        B = B * rng.uniform(1.5, 3.0)
    per = B / px * np.where(over_nuc, rng.uniform(0.3, 0.7), 1.0) * (0.6 + 0.4 * th)
    img = D.lines((n, n), y, x, alive, per, 0.0, ds)
    # lines following the cell edge
    pyo, pxo = c.outline
    ne = int(rng.integers(8, 30))
    for _ in range(ne):
        i0 = rng.integers(0, len(pyo))
        m = int(rng.integers(10, 60))
        idx = (i0 + np.arange(m)) % len(pyo)
        inset = rng.uniform(0.4, 2.5) / px
        ey, ex = pyo[idx], pxo[idx]
        vy, vx = c.cy - ey, c.cx - ex
        d = np.hypot(vy, vx) + 1e-9
        ey, ex = ey + vy / d * inset, ex + vx / d * inset
        seg = np.hypot(np.diff(ey), np.diff(ex))
        tt = np.concatenate([[0], np.cumsum(seg)])
        s = np.arange(0, tt[-1], 0.8)
        if s.size < 2:
            continue
        D.splat(img, np.interp(s, tt, ey), np.interp(s, tt, ex), 0.25 / px * 0.8 * rng.uniform(0.5, 1.0))
    img = img * c.cell
    haze = (_cyto_haze(c) * rng.uniform(0.1, 0.5) + np.exp(-c.dn / rng.uniform(2, 5)) * c.cyto * rng.uniform(0.2, 0.8)
            + c.nucleus * rng.uniform(0.0, 0.25))  # tubulin above and below the nucleus
    img += haze * float(np.percentile(img[c.cyto], 90) if c.cyto.any() else 1.0)
    if v == "radial" or rng.random() < 0.2:
        cen = D.dots((n, n), np.array([csy]), np.array([csx]), np.array([1.0]), np.array([1.0 / px]))
        img += cen / (cen.max() + 1e-9) * float(np.percentile(img[c.cell], 99.5)) * rng.uniform(0.8, 1.6)
    return img, v


def _spindle(c, rng):
    n, px = c.n, c.px
    if c.phase == "telophase":
        return _midbody(c, rng)
    L = c.na * 2 * rng.uniform(0.9, 1.3)
    if c.phase == "anaphase":
        L = 2 * (c.sep + rng.uniform(2.0, 4.0))
    L = min(L, 2 * (float(c.de.max()) - 1.5))
    # poles perpendicular to the plate
    pa = c.plate + np.pi / 2
    p1 = (c.ny + np.sin(pa) * L / 2 / px, c.nx + np.cos(pa) * L / 2 / px)
    p2 = (c.ny - np.sin(pa) * L / 2 / px, c.nx - np.cos(pa) * L / 2 / px)
    k = 220
    ds = 0.8
    imgs = np.zeros((n, n), np.float32)
    for (py_, px_), sgn in ((p1, -1), (p2, 1)):
        th0 = pa + (np.pi if sgn < 0 else 0) + rng.normal(0, 0.35, k)
        th0 = np.where(rng.random(k) < 0.3, rng.uniform(0, 2 * np.pi, k), th0)  # astral
        length = rng.uniform(0.4, 0.7, k) * L / px
        y, x, al = D.walks(rng, np.full(k, py_), np.full(k, px_), th0, length, ds, 0.02 * px, 10 / px, 0.01)
        al = D.keep_inside(al, c.cell, y, x)
        imgs += D.lines((n, n), y, x, al, 0.25 / px, 0.0, ds)
    for p in (p1, p2):
        imgs += D.dots((n, n), np.array([p[0]]), np.array([p[1]]), np.array([2.0]), np.array([1.0 / px]))
    imgs += c.cell * c.thick * rng.uniform(0.05, 0.2) * float(np.percentile(imgs[imgs > 0], 90))
    return imgs * c.cell


def _midbody(c, rng):
    """Late division: dim daughter arrays and a bright midbody bridge between the daughters."""
    n, px = c.n, c.px
    ax = c.plate + np.pi / 2  # the division axis
    img = np.zeros((n, n), np.float32)
    for sgn in (-1, 1):
        gy, gx = c.ny + sgn * np.sin(ax) * c.sep / px, c.nx + sgn * np.cos(ax) * c.sep / px
        k = 120
        y, x, al = D.walks(rng, np.full(k, gy), np.full(k, gx), rng.uniform(0, 2 * np.pi, k),
                           rng.uniform(2, 7, k) / px, 0.8, 0.05 * px, 8 / px, 0.05 * np.sqrt(px))
        al = D.keep_inside(al, c.cell, y, x)
        img += D.lines((n, n), y, x, al, rng.uniform(0.1, 0.2) / px, 0.0, 0.8)
    s = np.linspace(-1, 1, 60) * rng.uniform(1.5, 3.0) / px
    lay = np.zeros((n, n), np.float32)
    D.splat(lay, c.ny + np.sin(ax) * s, c.nx + np.cos(ax) * s, np.full(60, 3.0 * np.ptp(s) / 60 / px))
    img += D.blur(lay, 0.6 / px / 2.5)
    img += c.cell * c.thick * rng.uniform(0.03, 0.1) * float(img.max())
    return img * c.cell


# --------------------------------------------------------------------------------- ActinFilaments
def _actin(c, rng):
    n, px = c.n, c.px
    img = np.zeros((n, n), np.float32)
    de = c.de
    if c.state != "interphase":
        w = rng.uniform(0.5, 1.5)
        img += np.exp(-de / w) * c.cell * rng.uniform(0.8, 1.2)
        img += c.cell * c.thick * rng.uniform(0.05, 0.2)
        return img, "cortex_ring"
    spread = c.line == "spread"
    v = _w(rng, {"stress_fibres": 0.55 if spread else 0.25, "cortex": 0.15 if spread else 0.45,
                 "fan": 0.15 if spread else 0.05, "podosomes": 0.05, "ruffles": 0.1 if spread else 0.2})
    nfib = {"stress_fibres": rng.integers(25, 80), "fan": rng.integers(20, 60), "cortex": rng.integers(0, 8),
            "podosomes": rng.integers(0, 15), "ruffles": rng.integers(0, 15)}[v]
    nfib = int(nfib * (1.0 if spread else 0.5))
    if nfib:
        wgt = c.cell.astype(np.float32)[::2, ::2].copy()
        sy, sx = D.sample_positions(rng, wgt, nfib)
        sy, sx = sy * 2, sx * 2
        if v == "fan":
            oy = c.cy - np.sin(c.front) * 20 / px
            ox = c.cx - np.cos(c.front) * 20 / px
            th = np.arctan2(sy - oy, sx - ox) + rng.normal(0, 0.08, nfib)
        else:
            th = c.axis + rng.normal(0, rng.uniform(0.04, 0.22), nfib)
            cross = rng.random(nfib) < rng.uniform(0.0, 0.15)
            th = np.where(cross, th + rng.uniform(0.5, 1.3, nfib) * rng.choice([-1, 1], nfib), th)
        half = 1.2 * c.n
        t = np.arange(-half, half, 1.0)
        yy = sy[:, None] + np.sin(th)[:, None] * t[None]
        xx = sx[:, None] + np.cos(th)[:, None] * t[None]
        bow = rng.normal(0, 0.004, nfib)[:, None] * (t[None] ** 2) * px
        yy, xx = yy + np.cos(th)[:, None] * bow, xx - np.sin(th)[:, None] * bow
        inside = D.lookup(c.de > rng.uniform(0.3, 1.2), yy, xx).astype(bool)
        mid = len(t) // 2
        fw = np.cumprod(inside[:, mid:], 1) > 0
        bw = np.cumprod(inside[:, :mid][:, ::-1], 1)[:, ::-1] > 0
        keep = np.concatenate([bw, fw], 1)
        lmax = rng.uniform(8, 40, nfib) / px
        lo_end = mid - bw.sum(1)
        hi_end = mid + fw.sum(1)
        chord = hi_end - lo_end
        over = np.maximum(chord - lmax, 0)
        cut_lo = lo_end + (over * rng.random(nfib) * (rng.random(nfib) < 0.5)).astype(int)
        cut_hi = cut_lo + np.minimum(chord, lmax).astype(int)
        j = np.arange(len(t))[None]
        keep &= (j >= cut_lo[:, None]) & (j < cut_hi[:, None])
        width = rng.uniform(0.2, 1.0, nfib)
        B = width * rng.uniform(0.6, 1.2, nfib)
        over_nuc = D.lookup(c.nucleus, yy, xx).astype(bool)
        per = (B / px)[:, None] * np.where(over_nuc, rng.uniform(0.3, 0.8), 1.0)
        thin = width < 0.5
        for sel, wd in ((thin, 0.35), (~thin, 0.8)):
            if sel.any():
                img += D.lines((n, n), yy[sel], xx[sel], keep[sel], per[sel], wd / px)
        # focal adhesions: bright dashes at ends near the periphery
        fa = np.zeros((n, n), np.float32)
        for end, sgn in ((cut_lo, 1), (np.maximum(cut_hi - 1, 0), -1)):
            ey = yy[np.arange(nfib), np.clip(end, 0, len(t) - 1)]
            ex = xx[np.arange(nfib), np.clip(end, 0, len(t) - 1)]
            near = (D.lookup(c.de, ey, ex) < rng.uniform(2, 5)) & (chord > 2 / px)
            dl = rng.uniform(1, 5, nfib) / px
            s = np.linspace(0, 1, 16)[None]
            fy = ey[:, None] + sgn * np.sin(th)[:, None] * dl[:, None] * s
            fx = ex[:, None] + sgn * np.cos(th)[:, None] * dl[:, None] * s
            wfa = (near * rng.uniform(1.0, 2.5, nfib) * 0.7 / px * dl / 16)[:, None] * np.ones(16)
            D.splat(fa, fy, fx, wfa)
        img += D.blur(fa, rng.uniform(0.5, 0.9) / px / 2.5)
    # cortex
    cw = rng.uniform(0.5, 2.0)
    cort = np.exp(-c.de / cw) * c.cell
    cort_amp = {"cortex": rng.uniform(0.7, 1.2), "ruffles": rng.uniform(0.5, 1.0)}.get(v, rng.uniform(0.4, 0.9))
    if v in ("cortex", "ruffles"):
        cort = cort * (1 + 0.6 * np.abs(D.field(rng, n, 1.5 / px)))
    img_scale = float(np.percentile(img[img > 0], 98)) if (img > 0).sum() > 50 else 1.0
    img += cort * cort_amp * img_scale
    # lamellipodium / ruffles band along part of the edge
    if v in ("fan", "ruffles", "stress_fibres") and rng.random() < 0.7:
        ang = np.arctan2(np.mgrid[0:n, 0:n][0] - c.cy, np.mgrid[0:n, 0:n][1] - c.cx)
        d = np.abs(np.angle(np.exp(1j * (ang - c.front))))
        sector = np.exp(-0.5 * (d / rng.uniform(0.25, 0.7)) ** 2)
        band = (c.de < rng.uniform(2, 5)) * sector * c.cell
        mesh = 0.6 + 0.4 * np.abs(D.field(rng, n, max(0.25 / px, 0.6)))
        img += band * mesh * rng.uniform(0.4, 0.9) * img_scale
        # transverse arcs behind the lamella
        pyo, pxo = c.outline
        oang = np.arctan2(pyo - c.cy, pxo - c.cx)
        insec = np.abs(np.angle(np.exp(1j * (oang - c.front)))) < 0.8
        if insec.sum() > 4 and c.line == "spread":
            for _ in range(rng.integers(0, 5)):
                inset = rng.uniform(3, 8) / px
                ey, ex = pyo[insec], pxo[insec]
                vy, vx = c.cy - ey, c.cx - ex
                dd = np.hypot(vy, vx) + 1e-9
                fr = np.clip(inset / dd, 0, 0.4)
                ey, ex = ey + vy * fr, ex + vx * fr
                seg = np.hypot(np.diff(ey), np.diff(ex))
                tt = np.concatenate([[0], np.cumsum(seg)])
                s = np.arange(0, tt[-1], 0.8)
                if s.size > 2:
                    lay = np.zeros((n, n), np.float32)
                    D.splat(lay, np.interp(s, tt, ey), np.interp(s, tt, ex), 0.4 / px * 0.8)
                    img += D.blur(lay, 0.4 / px / 2.5) * c.cell
    if v == "podosomes":
        k = int(rng.integers(20, 120))
        py_, px_ = D.sample_positions(rng, (c.cyto * (c.de > 1)).astype(np.float32), k)
        img += D.dots((n, n), py_, px_, rng.uniform(0.6, 1.2, k) * img_scale, rng.uniform(0.5, 1.0, k) / px)
    # diffuse meshwork
    img += (c.cell * (c.thick * 0.7 + 0.3) * (1 - 0.5 * c.nucleus) * rng.uniform(0.05, 0.3)
            * (1 + 0.3 * D.field(rng, n, max(0.3 / px, 0.6)))).clip(0) * img_scale
    return img * c.cell, v


def _filopodia(c, rng):
    """Thin straight spikes 2-10 µm out of the edge (added to the cell mask)."""
    n, px = c.n, c.px
    k = int(rng.integers(0, 14)) * (rng.random() < 0.55)
    pyo, pxo = c.outline
    if k == 0:
        return None, None
    i = rng.integers(0, len(pyo), k)
    ey, ex = pyo[i], pxo[i]
    out = np.arctan2(ey - c.cy, ex - c.cx) + rng.normal(0, 0.3, k)
    L = np.exp(rng.uniform(np.log(2), np.log(10), k)) / px
    s = np.linspace(-0.1, 1, 40)[None]
    fy = ey[:, None] + np.sin(out)[:, None] * L[:, None] * s
    fx = ex[:, None] + np.cos(out)[:, None] * L[:, None] * s
    lay = np.zeros((n, n), np.float32)
    D.splat(lay, fy, fx, (0.15 / px * L / 40)[:, None] * np.ones(40))
    mask = D.blur(lay, 0.5) > 1e-3
    return lay, mask


# ---------------------------------------------------------------------------------------------- ER
def _er(c, rng):
    n, px = c.n, c.px
    if c.state == "mitotic":
        tex = 1 + 0.25 * D.field(rng, n, max(0.12 / px, 0.6))
        img = c.cell * c.thick * tex.clip(0) * (1 - np.exp(-c.dn / 0.8))
        return img, "mitotic_spread"
    v = _w(rng, {"lacy_grainy": 0.55, "perinuclear_cloud": 0.2, "mesh_visible": 0.15, "sheets": 0.1})
    mesh = rng.uniform(0.5, 2.0) if v != "mesh_visible" else rng.uniform(1.2, 2.0)
    s = max(mesh / 3.2 / px, 0.6)
    f = D.field(rng, n, s)
    ridge = np.exp(-(f / rng.uniform(0.25, 0.45)) ** 2)
    grain = (1 + 0.5 * D.field(rng, n, max(0.15 / px, 0.55))).clip(0)
    sheet_w = rng.uniform(2, 8) if v != "perinuclear_cloud" else rng.uniform(4, 8)
    fade = {"perinuclear_cloud": rng.uniform(3, 7), "sheets": rng.uniform(8, 20)}.get(v, rng.uniform(8, 25))
    sheets = 1 / (1 + np.exp(np.clip(c.dn - sheet_w, -30, 30)))
    tub_amt = {"mesh_visible": 1.0, "sheets": 0.3}.get(v, 0.75)
    tub = np.exp(-c.dn / fade) * (tub_amt * ridge * grain + (1 - tub_amt) * 0.6 + 0.25 * grain)
    img = (0.55 * sheets * (0.7 + 0.3 * grain) + (1 - 0.4 * sheets) * tub)
    img *= (0.5 + 0.5 * c.thick) * (1 - np.exp(-c.de / rng.uniform(0.5, 3.0)))
    img = img * c.cyto
    # nuclear envelope and a dim nucleus
    rimw = max(rng.uniform(0.2, 0.4), 0.7 * px)
    rim = np.exp(-0.5 * (((c.rho - 1) * (c.na + c.nb) / 2) / rimw) ** 2) * c.cell
    img += rim * rng.uniform(0.1, 0.7)
    img += c.nucleus * rng.uniform(0.05, 0.3) * (0.8 + 0.2 * grain)
    return img, v


# ------------------------------------------------------------------------------------------- Golgi
def _golgi(c, rng, gpp):
    n, px = c.n, c.px
    if c.state == "mitotic":
        k = int(rng.integers(150, 500))
        py_, px_ = D.sample_positions(rng, (c.cyto * c.thick).astype(np.float32), k)
        img = D.dots((n, n), py_, px_, rng.uniform(0.3, 1.0, k), rng.uniform(0.2, 0.5, k) / px)
        return img + c.cell * 0.03 * img.max(), "mitotic_haze"
    frag = rng.beta(4, 3) if gpp else rng.beta(2, 4)
    v = _w(rng, {"arc": 0.42, "knot": 0.32, "two_clusters": 0.07, "dispersed": 0.03 + 0.04 * gpp, "cap": 0.14})
    img = np.zeros((n, n), np.float32)
    pts_y, pts_x, pts_w = [], [], []

    def ribbon(centre_ang, span, off, nst=None):
        # a ribbon of stacks (short curved segments 0.5-1.5 µm) hugging the nucleus, with gaps
        r_mid = 1 / np.hypot(np.cos(centre_ang - c.nth) / c.na, np.sin(centre_ang - c.nth) / c.nb) + off
        larc = span * r_mid
        pos = -larc / 2 + rng.uniform(0, 0.5)
        while pos < larc / 2:
            sl = rng.uniform(0.5, 1.5)
            a = centre_ang + (pos + sl / 2) / r_mid
            r_env = 1 / np.hypot(np.cos(a - c.nth) / c.na, np.sin(a - c.nth) / c.nb)
            rr = r_env + off + rng.normal(0, 0.15 + 0.6 * frag)
            da = sl / max(rr, 1.0)
            m = 8
            aa = a + np.linspace(-da / 2, da / 2, m)
            pts_y.append(c.ny + np.sin(aa) * rr / px)
            pts_x.append(c.nx + np.cos(aa) * rr / px)
            pts_w.append(np.full(m, rng.uniform(0.5, 1.3) * sl / m))
            pos += sl + rng.exponential(0.05 + 0.8 * frag)

    bulk = c.bulk + rng.normal(0, 0.5)
    if v == "arc":
        ribbon(bulk, rng.uniform(0.6, 2.2), rng.uniform(0.3, 1.5))
    elif v == "cap":
        ribbon(bulk, rng.uniform(1.2, 3.0), rng.uniform(0.2, 0.8))
    elif v == "knot":
        for _ in range(int(rng.integers(2, 5))):
            ribbon(bulk + rng.normal(0, 0.25), rng.uniform(0.2, 0.6), rng.uniform(0.5, 3.0))
    elif v == "two_clusters":
        sep = rng.uniform(1.0, 2.5)
        ribbon(bulk - sep / 2, rng.uniform(0.3, 0.9), rng.uniform(0.3, 1.5))
        ribbon(bulk + sep / 2, rng.uniform(0.3, 0.9), rng.uniform(0.3, 1.5))
    else:  # dispersed: mini-stacks through the perinuclear cytoplasm
        k = int(rng.integers(30, 90))
        py_, px_ = D.sample_positions(rng, (c.cyto * np.exp(-c.dn / 6)).astype(np.float32), k)
        img += D.dots((n, n), py_, px_, rng.uniform(0.5, 1.0, k), rng.uniform(0.4, 1.0, k) / px)
    if pts_y:
        yy, xx, ww = np.concatenate(pts_y), np.concatenate(pts_x), np.concatenate(pts_w)
        lay = np.zeros((n, n), np.float32)
        D.splat(lay, yy, xx, ww / px)
        img += D.blur(lay, rng.uniform(0.25, 0.4) / px)
        # vesicles near the ribbon
        kv = int(rng.integers(2, 10) + frag * rng.integers(0, 30))
        j = rng.integers(0, yy.size, kv)
        r = rng.uniform(0.5, 2 + 4 * frag, kv) / px
        a = rng.uniform(0, 2 * np.pi, kv)
        scale = float(img.max())
        img += D.dots((n, n), yy[j] + r * np.sin(a), xx[j] + r * np.cos(a),
                      rng.uniform(0.2, 0.7, kv) * scale, rng.uniform(0.3, 0.5, kv) / px)
    scale = float(img.max()) + 1e-9
    kp = int(frag * rng.integers(0, 60) * (1.5 if gpp else 0.6))
    if kp:
        py_, px_ = D.sample_positions(rng, c.cyto.astype(np.float32), kp)
        img += D.dots((n, n), py_, px_, rng.uniform(0.1, 0.35, kp) * scale, rng.uniform(0.3, 0.5, kp) / px)
    img = img * c.cell
    img += _cyto_haze(c) * rng.uniform(0.01, 0.08) * scale + c.nucleus * rng.uniform(0.0, 0.03) * scale
    return img, f"{v}(frag={frag:.2f})"


# -------------------------------------------------------------------------------- Endo / Lysosome
def _puncta(c, rng, lyso):
    n, px = c.n, c.px
    if lyso:
        v = _w(rng, {"perinuclear": 0.4, "scattered_small": 0.35, "dispersed": 0.15, "peripheral": 0.1})
        k = int(rng.integers(30, 300) * (1.6 if v == "scattered_small" else 1))
        dmu, dsd, dlo, dhi = rng.uniform(0.45, 0.9), 0.35, 0.25, 1.6
    else:
        v = _w(rng, {"scattered_small": 0.5, "perinuclear_cloud": 0.25, "sparse_bright": 0.1, "clustered": 0.15})
        k = int(rng.integers(50, 500) * (0.3 if v == "sparse_bright" else 1))
        dmu, dsd, dlo, dhi = rng.uniform(0.25, 0.55), 0.3, 0.15, 1.0
    area_scale = np.clip(c.cyto.sum() * px * px / 600.0, 0.6, 2.0)
    k = max(10, int(k * area_scale))
    diam = np.exp(rng.normal(np.log(dmu), dsd, k)).clip(dlo, dhi)
    if c.state == "mitotic":
        wmap = c.cyto * c.thick * np.exp(-c.dn / 5)
    else:
        L = {"perinuclear": rng.uniform(2, 6), "perinuclear_cloud": rng.uniform(3, 8),
             "clustered": rng.uniform(3, 8)}.get(v, None)
        if v == "peripheral":
            wmap = c.cyto * (1 - np.exp(-c.dn / 8)) * (0.3 + (c.de < 6))
        elif L is None:
            wmap = c.cyto * (0.5 + c.thick)
        else:
            wmap = c.cyto * (np.exp(-c.dn / L) + rng.uniform(0.05, 0.3))
            if not lyso:  # the recycling compartment sits on the Golgi side
                ang = np.arctan2(np.mgrid[0:n, 0:n][0] - c.ny, np.mgrid[0:n, 0:n][1] - c.nx)
                wmap = wmap * (0.4 + np.exp(np.cos(ang - c.bulk) - 1))
    wmap = np.asarray(wmap, np.float32)
    py_, px_ = D.sample_positions(rng, wmap[::2, ::2].copy(), k)
    py_, px_ = py_ * 2 + rng.uniform(-0.5, 0.5, k), px_ * 2 + rng.uniform(-0.5, 0.5, k)
    if v == "clustered":
        cl = rng.integers(0, max(3, k // 8), k)
        jitter = rng.normal(0, 0.8 / px, (2, k))
        py_, px_ = py_[cl] + jitter[0], px_[cl] + jitter[1]
    bright = np.exp(rng.normal(0, 0.5, k)) * (1.0 + 0.6 * lyso) * (2.0 if v == "sparse_bright" else 1.0)
    rings = (diam > 0.8) & (rng.random(k) < 0.7) if lyso else None
    img = D.dots((n, n), py_, px_, bright, diam / px, rings)
    img *= c.cell
    scale = float(np.percentile(img[img > 0], 99.5)) if (img > 0).sum() > 20 else 1.0
    bg = _cyto_haze(c) * np.exp(rng.uniform(np.log(0.02), np.log(0.25))) * scale
    if not lyso and rng.random() < 0.5:  # transferrin receptor: faint plasma membrane
        bg += np.exp(-c.de / 0.5) * c.cell * rng.uniform(0.05, 0.2) * scale
    img += bg + c.nucleus * rng.uniform(0.0, 0.04) * scale
    return img, v


# ------------------------------------------------------------------------------------ Mitochondria
def _mito(c, rng):
    n, px = c.n, c.px
    if c.state == "mitotic":
        v = "fragmented"
    else:
        v = _w(rng, {"network": 0.45, "fragmented": 0.18, "clump": 0.2, "parallel": 0.07 + 0.2 * (c.aspect > 2)})
    area = c.cyto.sum() * px * px
    k = int(np.clip(area / rng.uniform(1.5, 4), 60, 900))
    L = {"clump": rng.uniform(2, 4), "network": rng.uniform(5, 15), "parallel": rng.uniform(8, 20)}.get(v, rng.uniform(5, 12))
    wmap = (c.cyto * (np.exp(-c.dn / L) + 0.08) * (c.thick + 0.2)).astype(np.float32)
    y0, x0 = D.sample_positions(rng, wmap[::2, ::2].copy(), k)
    y0, x0 = y0 * 2, x0 * 2
    if v == "fragmented":
        length = np.exp(rng.normal(np.log(1.0), 0.5, k)).clip(0.3, 3) / px
    else:
        length = np.exp(rng.normal(np.log(rng.uniform(1.5, 4)), 0.6, k)).clip(0.5, 10) / px
    th0 = rng.uniform(0, 2 * np.pi, k)
    if v == "parallel":
        th0 = c.axis + rng.choice([0, np.pi], k) + rng.normal(0, 0.3, k)
    ds = max(0.8, 0.6 * 0.3 / px / 2)
    y, x, al = D.walks(rng, y0, x0, th0, length, ds, rng.uniform(0.2, 0.6) * px, rng.uniform(2, 6) / px,
                       rng.uniform(0.1, 0.3) * np.sqrt(px))
    if v in ("network", "clump"):  # branches from random points of the parents
        kb = int(k * rng.uniform(0.3, 0.8))
        par = rng.integers(0, k, kb)
        stp = (rng.random(kb) * np.maximum(al[par].sum(1) - 1, 0)).astype(int)
        by, bx = y[par, stp], x[par, stp]
        y2, x2, al2 = D.walks(rng, by, bx, th0[par] + rng.choice([-1, 1], kb) * rng.uniform(0.6, 1.4, kb),
                              length[par] * rng.uniform(0.3, 0.8, kb), ds, 0.3 * px, 4 / px, 0.2 * np.sqrt(px))
        y, x, al = D.cat_walks((y, x, al), (y2, x2, al2))
    al = D.keep_inside(al, c.cell, y, x)
    width = rng.uniform(0.3, 0.6)
    over_nuc = D.lookup(c.nucleus, y, x).astype(bool)
    B = width * rng.uniform(0.7, 1.3, (len(y), 1))
    per = B / px * np.where(over_nuc, rng.uniform(0.1, 0.4), 1.0)
    img = D.lines((n, n), y, x, al, per, width / px * 0.6, ds)
    # round fragments
    kd = int(k * (rng.uniform(0.5, 1.5) if v == "fragmented" else rng.uniform(0.0, 0.3)))
    if kd:
        dy, dx = D.sample_positions(rng, wmap, kd)
        sc = float(np.percentile(img[img > 0], 95)) if (img > 0).any() else 1.0
        img += D.dots((n, n), dy, dx, rng.uniform(0.5, 1.0, kd) * sc, rng.uniform(0.5, 1.0, kd) / px)
    scale = float(np.percentile(img[img > 0], 98)) if (img > 0).sum() > 20 else 1.0
    img = img * c.cell + _cyto_haze(c) * rng.uniform(0.02, 0.2) * scale
    return img, v


# ------------------------------------------------------------------------------- Nucleolus/Nucleus
def _nucleolus(c, rng):
    n, px = c.n, c.px
    if c.state == "mitotic":
        if rng.random() < 0.6:  # coats the chromosomes
            shell = D.blur(c.nucleus.astype(np.float32), 0.5 / px)
            img = shell * (1 - 0.5 * c.nucleus) + c.cell * rng.uniform(0.05, 0.2)
            return img * c.cell, "chromosome_coat"
        return c.cell * c.thick * (1 + 0.2 * D.field(rng, n, 1 / px)).clip(0), "diffuse"
    body = c.nucleoli
    fc = D.field(rng, n, max(0.2 / px, 0.6))
    tex = 1 - rng.uniform(0.0, 0.4) * (fc > 1.0)
    rim = np.clip(body * (1 - body) * 4, 0, 1) * rng.uniform(0.0, 0.4)
    img = body * tex + rim
    fill = rng.uniform(0.04, 0.16)
    img += c.nucleus * fill * (0.8 + 0.2 * D.field(rng, n, 1 / px))
    img += _cyto_haze(c) * rng.uniform(0.0, 0.05)
    if body.max() < 0.2:  # too small to fill: a point body
        img += D.dots((n, n), np.array([c.ny]), np.array([c.nx]), np.array([1.0]), np.array([1.5 / px]))
    return img.clip(0) * c.cell, "nucleolin" if fill > 0.1 else "fibrillarin"


def _nucleus_protein(c, rng):
    n, px = c.n, c.px
    if rng.random() < 0.6 or c.state == "mitotic" and rng.random() < 0.7:
        g = rng.uniform(0.85, 1.15)
        img = c.dna ** g + _cyto_haze(c) * rng.uniform(0.0, 0.03)
        return img, "dna_stain"
    if c.state == "mitotic":
        return c.cell * c.thick * (1 - 0.7 * c.nucleus), "nucleoplasmic_mitotic"
    fine = D.field(rng, n, max(rng.uniform(0.1, 0.3) / px, 0.55))
    img = c.nucleus * (0.8 + rng.uniform(0.05, 0.25) * fine) * (1 - rng.uniform(0.6, 0.95) * c.nucleoli)
    if rng.random() < 0.4:
        img += np.exp(-np.maximum(1 - c.rho, 0) * c.na / 0.4) * c.nucleus * rng.uniform(0.1, 0.4)
    img += _cyto_haze(c) * rng.uniform(0.0, 0.06)
    return img.clip(0), "nucleoplasmic"


# ------------------------------------------------------------------------------------------ render
def render(cls: str, rng: np.random.Generator, *, size: int, diameter: float) -> RenderedCell:
    c = make_cell(rng, size, diameter)
    cell = c.cell
    if cls == "Microtubules":
        p, v = _microtubules(c, rng)
    elif cls == "ActinFilaments":
        p, v = _actin(c, rng)
        if c.state == "interphase":
            lay, fmask = _filopodia(c, rng)
            if lay is not None:
                cell2 = cell | fmask
                edge = np.zeros_like(cell2)
                edge[:3], edge[-3:], edge[:, :3], edge[:, -3:] = True, True, True, True
                if extent(cell2) <= 1.08 * diameter and not (cell2 & edge).any():
                    scale = float(np.percentile(p[cell], 98))
                    p = p + lay / (0.15 / c.px) * scale * 0.5
                    cell = cell2
    elif cls == "ER":
        p, v = _er(c, rng)
    elif cls in ("Golgi_gia", "Golgi_gpp"):
        p, v = _golgi(c, rng, cls == "Golgi_gpp")
    elif cls in ("Endosome", "Lysosome"):
        p, v = _puncta(c, rng, cls == "Lysosome")
    elif cls == "Mitochondria":
        p, v = _mito(c, rng)
    elif cls == "Nucleolus":
        p, v = _nucleolus(c, rng)
    elif cls == "Nucleus":
        p, v = _nucleus_protein(c, rng)
    else:
        raise ValueError(f"unknown class {cls!r}")
    p = np.where(cell, np.nan_to_num(p), 0).clip(0)
    # overall brightness: the cell's bright structures ~1 x a class-independent expression level
    # (a small structure, e.g. nucleoli in a large cell, can lie above the 99.7th percentile)
    ref = max(float(np.percentile(p[cell], 99.7)), 0.3 * float(p.max())) if cell.any() else 1.0
    expr = float(np.exp(rng.normal(0, 0.45))) * (1.4 if c.state != "interphase" else 1.0)
    p = np.clip(p / max(ref, 1e-9) * expr, 0, 15).astype(np.float32)
    if p.max() <= 0:
        p[int(c.ny), int(c.nx)] = 1.0
    info = dict(c.info, variant=v)
    return RenderedCell(protein=p, dna=c.dna.astype(np.float32), cell=cell, nucleus=c.nucleus & cell,
                        pixel_size_um=float(c.px), state=c.state, info=info)
