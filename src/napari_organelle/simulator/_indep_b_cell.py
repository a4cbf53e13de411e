"""Cell body, nucleus, thickness and DNA of the ``indep_b`` renderer (the same for every class).

Every cell is drawn from the generator before anything class-specific, so one generator state
gives the same cell (outline, nucleus, nucleoli, DNA) whatever protein is then drawn in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ._indep_b_draw import (ANG, M_ANG, TWO_PI, Radial, extent_of_points, lines, loguniform,
                            lookup, periodic_noise, sample_from_map, smooth_noise, stamp, upsample, wrap)

#: cell lines: probability, longest extent (um), outline axis ratio, nucleus area fraction,
#: nucleus length (um), filopodia (probability, count range)
LINES = {
    "HeLa": dict(p=0.42, L=(20, 40), ar=(0.5, 1.0), nfrac=(0.14, 0.35), nlen=(10, 18), filo=(0.4, 2, 12)),
    "U2OS": dict(p=0.20, L=(40, 80), ar=(0.22, 0.6), nfrac=(0.05, 0.13), nlen=(13, 20), filo=(0.55, 4, 22)),
    "epithelial": dict(p=0.24, L=(15, 30), ar=(0.65, 1.0), nfrac=(0.28, 0.5), nlen=(9, 17), filo=(0.2, 2, 8)),
    "hiPSC": dict(p=0.14, L=(10, 18), ar=(0.72, 1.0), nfrac=(0.5, 0.72), nlen=(7, 14), filo=(0.1, 2, 6)),
}
P_MITOTIC, P_ROUNDED = 0.035, 0.025
_GRID: dict = {}


def grid(S: int):
    g = _GRID.get(S)
    if g is None:
        if len(_GRID) > 16:
            _GRID.clear()
        yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
        g = _GRID[S] = (yy, xx)
    return g


@dataclass
class Cell:
    S: int
    px: float                      # um per pixel
    state: str
    line: str
    outline: Radial
    nuclei: list                   # main nuclei (Radial), empty for a mitotic cell
    micro: list                    # micronuclei (Radial)
    info: dict = field(default_factory=dict)
    stage: str = ""                # mitotic stage
    axis: float = 0.0              # long axis of the cell (rad)
    lead: np.ndarray | None = None       # leading-edge weight per outline angle
    junction: np.ndarray | None = None   # straight (cell-cell) edge per outline angle
    filo: tuple = ()               # filopodia: (y0, x0, y1, x1, width_px)
    centrosome: tuple = (0.0, 0.0)
    psi: float = 0.0               # direction nucleus -> centrosome / bulk of the cytoplasm
    nucleoli: list = field(default_factory=list)   # (y, x, radius px) of each nucleolus
    poles: tuple = ()              # mitotic spindle poles ((y, x), (y, x))
    gamma: float = 0.7             # how a volume stain follows thickness (widefield ~1)
    # maps, filled by the builders
    cell_f: np.ndarray = None      # soft coverage of the cell (anti-aliased edge)
    support: np.ndarray = None     # where protein may be (cell incl. filopodia)
    cell: np.ndarray = None
    nuc_f: np.ndarray = None
    nucleus: np.ndarray = None
    d_edge: np.ndarray = None      # px inside the body outline (negative outside)
    s_cell: np.ndarray = None      # rho / r of the outline (0 centre, 1 edge)
    d_nuc: np.ndarray = None       # px outside the nuclear envelope (negative inside)
    nl_f: np.ndarray = None        # soft coverage of the nucleoli
    h: np.ndarray = None           # thickness (um)
    vol: np.ndarray = None         # relative thickness 0..1
    chrom: np.ndarray = None       # mitotic chromosome density
    dna: np.ndarray = None
    cf: float = 4.0                # coarse grid: cells of cf px
    win: tuple = (0, 0)            # where this cell's S x S window sits in the output frame
    c_cyto: np.ndarray = None      # coarse cytoplasm coverage
    c_dnuc: np.ndarray = None      # coarse distance from the nucleus (um)
    c_dedge: np.ndarray = None     # coarse distance from the cell edge (um)
    c_vol: np.ndarray = None

    @property
    def um(self) -> float:         # pixels per um
        return 1.0 / self.px

    def cyto(self) -> np.ndarray:
        return self.cell_f * (1.0 - self.nuc_f)

    def inside_cell(self, y, x):
        return self.outline.inside(y, x)

    def nuc_dist(self, y, x):
        """px outside the nearest nucleus (negative inside); large where there is none."""
        best = np.full(np.shape(y), 1e6, np.float32)
        for n in self.nuclei + self.micro:
            best = np.minimum(best, -n.inside(y, x)[0])
        return best


# ------------------------------------------------------------------------------------------ outline
def _interphase_outline(rng, line):
    """Unit-free radius r(theta) of a cell of this line, with axis, leading edge and junctions."""
    cfg = LINES[line]
    ar = rng.uniform(*cfg["ar"])
    axis = rng.uniform(0, TWO_PI)
    c, s = np.cos(ANG - axis), np.sin(ANG - axis)
    r = ar / np.sqrt((ar * c) ** 2 + s ** 2)
    variant = "round"
    lead = np.zeros(M_ANG)
    harm = {"HeLa": 0.09, "U2OS": 0.05, "epithelial": 0.06, "hiPSC": 0.04}[line]
    r = r * (1 + harm * periodic_noise(rng, M_ANG, 2, 7, 1.2))
    if line == "U2OS":
        variant = rng.choice(["fan", "triangular", "elongated"], p=[0.45, 0.25, 0.3])
        if variant == "fan":
            w = rng.uniform(0.5, 0.95)
            r = r + rng.uniform(0.15, 0.4) * np.exp(-0.5 * (wrap(ANG - axis) / w) ** 4)
            r = r + rng.uniform(0.25, 0.7) * np.exp(-np.abs(wrap(ANG - axis - np.pi)) / rng.uniform(0.06, 0.14))
            lead = np.exp(-0.5 * (wrap(ANG - axis) / (w * 0.9)) ** 4)
        elif variant == "triangular":
            r = r * (1 + rng.uniform(0.12, 0.25) * np.cos(3 * (ANG - axis)))
            lead = np.exp(-0.5 * (wrap(ANG - axis) / 0.5) ** 2)
        else:
            for end in (axis, axis + np.pi):
                r = r + rng.uniform(0.0, 0.35) * np.exp(-np.abs(wrap(ANG - end)) / rng.uniform(0.05, 0.15))
    n_prot = {"HeLa": rng.choice([0, 1, 2], p=[0.35, 0.4, 0.25]), "U2OS": rng.integers(0, 2),
              "epithelial": rng.choice([0, 1], p=[0.8, 0.2]), "hiPSC": 0}[line]
    if n_prot:
        variant = "protrusions" if variant == "round" else variant
        r = r * rng.uniform(0.8, 0.95)
        for _ in range(n_prot):
            a = rng.uniform(0, TWO_PI)
            r = r + rng.uniform(0.2, 0.7) * np.exp(-np.abs(wrap(ANG - a)) / rng.uniform(0.06, 0.2))
    if rng.random() < {"HeLa": 0.25, "U2OS": 0.2, "epithelial": 0.15, "hiPSC": 0.05}[line]:
        variant = variant + "+ruffled"
        r = r * (1 + rng.uniform(0.004, 0.012) * periodic_noise(rng, M_ANG, 10, 40, 0.5))
    k = np.exp(-0.5 * (np.arange(-6, 7) / 1.5) ** 2)
    r = np.convolve(np.concatenate([r[-6:], r, r[:6]]), k / k.sum(), "valid")
    junction = np.zeros(M_ANG, bool)
    p_edge, n_edge = {"HeLa": (0.3, (1, 3)), "U2OS": (0.15, (1, 2)), "epithelial": (0.75, (2, 5)),
                      "hiPSC": (0.85, (3, 6))}[line]
    if rng.random() < p_edge:
        variant = variant + "+straight"
        for _ in range(rng.integers(n_edge[0], n_edge[1] + 1)):
            a = rng.uniform(0, TWO_PI)
            d = rng.uniform(0.72, 0.95) * np.interp(a, ANG, r, period=TWO_PI)
            cosd = np.cos(ANG - a)
            lim = np.where(cosd > 0.05, d / np.maximum(cosd, 0.05), np.inf)
            junction |= lim < r
            r = np.minimum(r, lim)
    if line != "U2OS" and rng.random() < 0.4:
        a = rng.uniform(0, TWO_PI)
        lead = np.exp(-0.5 * (wrap(ANG - a) / rng.uniform(0.3, 0.8)) ** 2)
    lead = lead * ~junction
    r = np.maximum(r, 0.15 * r.max())
    return r, axis, lead, junction, str(variant), ar


def _filopodia(rng, outline: Radial, line, px, lead, junction, diameter):
    p, n0, n1 = LINES[line]["filo"]
    if rng.random() >= p:
        return ()
    n = int(rng.integers(n0, n1 + 1))
    w = (0.25 + 3 * lead) * (~junction)
    if w.sum() <= 0:
        return ()
    th = ANG[rng.choice(M_ANG, n, p=w / w.sum())] + rng.normal(0, 0.01, n)
    r = outline.radius(th)
    dr = (outline.radius(th + 1e-3) - outline.radius(th - 1e-3)) / 2e-3
    nx, ny = r * np.cos(th) + dr * np.sin(th), r * np.sin(th) - dr * np.cos(th)
    na = np.arctan2(ny, nx) + rng.normal(0, 0.3, n)
    base = r - 0.3 / px
    y0, x0 = outline.cy + base * np.sin(th), outline.cx + base * np.cos(th)
    L = np.clip(rng.lognormal(np.log(4.0), 0.5, n), 2, 10) / px
    by, bx = outline.boundary()
    for _ in range(8):
        y1, x1 = y0 + L * np.sin(na), x0 + L * np.cos(na)
        if extent_of_points(np.concatenate([by, y1]), np.concatenate([bx, x1])) <= 1.07 * diameter:
            break
        L = L * 0.7
    width = rng.uniform(0.15, 0.3, n) / px
    return (y0, x0, y1, x1, width)


# ------------------------------------------------------------------------------------------ nucleus
def _nucleus_shape(rng, a, q, ori, lobed):
    c, s = np.cos(ANG - ori), np.sin(ANG - ori)
    r = a * q / np.sqrt((q * c) ** 2 + s ** 2)
    r = r * (1 + 0.03 * periodic_noise(rng, M_ANG, 2, 6, 1.0))
    if lobed:
        r = r * (1 + rng.uniform(0.05, 0.11) * np.cos(rng.integers(2, 5) * ANG + rng.uniform(0, TWO_PI)))
    return r


def _fits(outline: Radial, nucs, margin):
    for n in nucs:
        by, bx = n.boundary()
        if outline.inside(by, bx)[0].min() < margin:
            return False
    return True


def _place_nuclei(rng, outline: Radial, line, px, axis, ar, variant):
    cfg = LINES[line]
    A = outline.area()
    frac = rng.uniform(*cfg["nfrac"])
    binuc = line != "hiPSC" and rng.random() < 0.03
    q = rng.uniform(0.6, 1.0)
    An = frac * A * (0.55 if binuc else 1.0)
    a = np.sqrt(An / (np.pi * q))
    a = float(np.clip(a, cfg["nlen"][0] / 2 / px, cfg["nlen"][1] / 2 / px))
    ori = axis + rng.normal(0, 0.3) if ar < 0.75 else rng.uniform(0, TWO_PI)
    lobed = rng.random() < 0.07
    r0 = _nucleus_shape(rng, a, q, ori, lobed)
    r1 = _nucleus_shape(rng, a * rng.uniform(0.85, 1.0), q, ori, False) if binuc else None
    if "fan" in variant:
        d = axis + np.pi + rng.normal(0, 0.4)
    else:
        d = rng.uniform(0, TWO_PI)
    room = max(outline.radius(d) - np.interp(d - ori, ANG, r0, period=TWO_PI), 0.0)
    off = rng.uniform(0.1, 0.65) * room
    margin = (0.4 if line == "hiPSC" else rng.uniform(0.6, 1.5)) / px
    sep = 1.0
    scale = 1.0
    for it in range(40):
        cy, cx = outline.cy + off * np.sin(d), outline.cx + off * np.cos(d)
        if binuc:
            gap = (a * q * scale + 0.3 / px) * sep
            nucs = [Radial(cy + gap * np.sin(ori + np.pi / 2), cx + gap * np.cos(ori + np.pi / 2), r0 * scale),
                    Radial(cy - gap * np.sin(ori + np.pi / 2), cx - gap * np.cos(ori + np.pi / 2), r1 * scale)]
        else:
            nucs = [Radial(cy, cx, r0 * scale)]
        if _fits(outline, nucs, margin):
            break
        if it < 5:
            off *= 0.6
        else:
            off = 0.0
            scale *= 0.94
    return nucs, dict(binucleate=bool(binuc), lobed=bool(lobed), nucleus_scale=round(scale, 3))


def _bulk_direction(outline: Radial, nuc: Radial):
    r = outline.r
    w = r ** 2
    cy = outline.cy + (2 / 3) * np.sum(r ** 3 * np.sin(ANG)) / w.sum()
    cx = outline.cx + (2 / 3) * np.sum(r ** 3 * np.cos(ANG)) / w.sum()
    Ac, An = outline.area(), nuc.area()
    by = (Ac * cy - An * nuc.cy) / max(Ac - An, 1e-6)
    bx = (Ac * cx - An * nuc.cx) / max(Ac - An, 1e-6)
    return np.arctan2(by - nuc.cy, bx - nuc.cx), np.hypot(by - nuc.cy, bx - nuc.cx)


def _nucleoli(rng, nuc: Radial, px):
    n = int(rng.choice([1, 2, 3, 4, 5], p=[0.2, 0.3, 0.25, 0.15, 0.1]))
    out = []
    for _ in range(n):
        D = float(np.clip(rng.lognormal(np.log(3.4 / n ** 0.4), 0.25), 1.0, 5.0)) / px
        D = min(D, 0.9 * nuc.r.min())
        a = rng.uniform(0, TWO_PI)
        rr = np.sqrt(rng.random()) * (nuc.radius(a) - D / 2) * 0.75
        cy, cx = nuc.cy + rr * np.sin(a), nuc.cx + rr * np.cos(a)
        discs = [(cy, cx, D / 2)]
        for _ in range(rng.poisson(0.9)):
            b = rng.uniform(0, TWO_PI)
            o = rng.uniform(0.3, 0.7) * D / 2
            discs.append((cy + o * np.sin(b), cx + o * np.cos(b), D / 2 * rng.uniform(0.4, 0.75)))
        out.append(discs)
    return out


def _soft_discs(S, discs, into):
    yy, xx = grid(S)
    for cy, cx, r in discs:
        y0, y1 = max(int(cy - r - 2), 0), min(int(cy + r + 3), S)
        x0, x1 = max(int(cx - r - 2), 0), min(int(cx + r + 3), S)
        if y1 <= y0 or x1 <= x0:
            continue
        d = np.hypot(yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx)
        np.maximum(into[y0:y1, x0:x1], np.clip(r - d + 0.5, 0, 1), out=into[y0:y1, x0:x1])
    return into


# ------------------------------------------------------------------------------------------ builders
def _place_in_frame(rng, S, pts_y, pts_x):
    """Place points (about 0, 0) at random in the S x S frame, 3 px from its border, and choose the
    square window around them that the cell is drawn in. Returns the offset in window coordinates,
    the window's side and its corner in the frame."""
    y0, y1, x0, x1 = pts_y.min(), pts_y.max(), pts_x.min(), pts_x.max()
    lo_y, hi_y = 3 - y0, S - 4 - y1
    lo_x, hi_x = 3 - x0, S - 4 - x1
    oy, ox = rng.uniform(lo_y, max(hi_y, lo_y)), rng.uniform(lo_x, max(hi_x, lo_x))
    L = min(int(np.ceil(max(y1 - y0, x1 - x0))) + 10, S)
    wy = int(np.clip(np.floor(oy + y0) - 4, 0, S - L))
    wx = int(np.clip(np.floor(ox + x0) - 4, 0, S - L))
    return oy - wy, ox - wx, L, (wy, wx)


def _masks(cell: Cell):
    S = cell.S
    yy, xx = grid(S)
    d_edge, s_cell = cell.outline.inside(yy, xx)
    body = np.clip(d_edge + 0.5, 0, 1)
    cell.d_edge, cell.s_cell = d_edge, s_cell
    support = body.copy()
    cell_f = body
    mask = body > 0.5
    if cell.filo:
        y0, x0, y1, x1, w = cell.filo
        cov = lines(S, y0, x0, y1, x1, w, w)
        wmin = float(min(np.min(w), 1.0))
        fm = cov > 0.35 * wmin
        cell_f = np.maximum(body, np.minimum(cov, 1.0)).astype(np.float32)
        support = np.maximum(body, fm).astype(np.float32)
        mask = mask | fm
    cell.cell_f, cell.support, cell.cell = cell_f.astype(np.float32), support, mask


def _nuclear_maps(cell: Cell):
    S = cell.S
    yy, xx = grid(S)
    dn = np.full((S, S), 1e4, np.float32)
    for n in cell.nuclei + cell.micro:
        dn = np.minimum(dn, -n.inside(yy, xx)[0])
    cell.d_nuc = dn
    cell.nuc_f = (np.clip(0.5 - dn, 0, 1) * cell.cell_f).astype(np.float32)
    cell.nucleus = (cell.nuc_f > 0.5) & cell.cell


def _coarse(cell: Cell, h_nuc, lam, mu, h_edge):
    """Thickness on a coarse grid (um), upsampled: thick over the nucleus, thin at the edge."""
    S, f = cell.S, cell.cf
    n = int(np.ceil(S / f))
    c = (np.arange(n) + 0.5) * f - 0.5
    cy, cx = np.meshgrid(c, c, indexing="ij")
    de, _ = cell.outline.inside(cy, cx)
    inside = de > 0
    de_um = ndi.distance_transform_edt(inside) * f * cell.px
    dn = np.full((n, n), 1e4, np.float32)
    t = np.ones((n, n), np.float32) * 9
    for nu in cell.nuclei:
        d_in, tt = nu.inside(cy, cx)
        dn = np.minimum(dn, -d_in)
        t = np.minimum(t, tt)
    dn_um = np.maximum(dn, 0) * cell.px
    h = h_edge + (0.8 * h_nuc - h_edge) * np.exp(-dn_um / lam) * (1 - np.exp(-de_um / mu))
    over = np.clip(0.5 - dn / f, 0, 1)
    h = h * (1 - over) + over * h_nuc * (0.8 + 0.2 * np.sqrt(np.clip(1 - t ** 2, 0, 1)))
    h = ndi.gaussian_filter(np.where(inside, h, 0.0), max(0.8 / (f * cell.px), 0.5))
    cell.c_dnuc, cell.c_dedge = dn_um, de_um
    cell.c_cyto = (inside & (dn > 0)).astype(float)
    cell.h = np.maximum(upsample(h, S, f), 0).astype(np.float32)
    cell.vol = np.clip(cell.h / h_nuc, 0, 1).astype(np.float32)
    cell.c_vol = np.clip(h / h_nuc, 0, 1)


def _interphase(rng, S, diameter, line):
    r, axis, lead, junction, variant, ar = _interphase_outline(rng, line)
    T = diameter * rng.uniform(0.86, 1.0)
    L_um = rng.uniform(*LINES[line]["L"])
    E = extent_of_points(r * np.sin(ANG), r * np.cos(ANG)) - 1
    r = r * (T - 1) / E
    px = float(L_um / T)
    outline = Radial(0.0, 0.0, r)
    filo = _filopodia(rng, outline, line, px, lead, junction, diameter)
    nucs, ninfo = _place_nuclei(rng, outline, line, px, axis, ar, variant)
    psi, dist = _bulk_direction(outline, nucs[0])
    if dist * px < 0.7:
        psi = rng.uniform(0, TWO_PI)
    psi = float(psi + rng.normal(0, 0.3))
    if rng.random() < 0.14:          # kidney-shaped, the centrosome in the dent
        ninfo["kidney"] = True
        n0 = nucs[0]
        dent = rng.uniform(0.1, 0.22) * np.exp(-0.5 * (wrap(ANG - psi) / rng.uniform(0.35, 0.6)) ** 2)
        nucs[0] = Radial(n0.cy, n0.cx, n0.r * (1 - dent))
    micro = []
    if rng.random() < 0.04:
        n0 = nucs[0]
        rm = rng.uniform(0.6, 1.5) / px
        a = rng.uniform(0, TWO_PI)
        d = n0.radius(a) + rm + rng.uniform(0.5, 3.0) / px
        m = Radial(n0.cy + d * np.sin(a), n0.cx + d * np.cos(a), np.full(M_ANG, rm))
        if _fits(outline, [m], 0.5 / px):
            micro.append(m)
    # everything is placed about (0, 0); move it into the frame
    by, bx = outline.boundary()
    if filo:
        by, bx = np.concatenate([by, filo[2]]), np.concatenate([bx, filo[3]])
    oy, ox, S, win = _place_in_frame(rng, S, by, bx)
    mv = lambda R: Radial(R.cy + oy, R.cx + ox, R.r)  # noqa: E731
    outline = mv(outline)
    nucs = [mv(n) for n in nucs]
    micro = [mv(m) for m in micro]
    if filo:
        filo = (filo[0] + oy, filo[1] + ox, filo[2] + oy, filo[3] + ox, filo[4])
    n0 = nucs[0]
    rc = n0.radius(psi) + rng.uniform(0.4, 1.5) / px
    cell = Cell(S=S, px=px, state="interphase", line=line, outline=outline, nuclei=nucs, micro=micro,
                axis=float(axis), lead=lead, junction=junction, filo=filo, psi=psi,
                centrosome=(n0.cy + rc * np.sin(psi), n0.cx + rc * np.cos(psi)),
                gamma=float(rng.uniform(0.5, 1.0)))
    cell.cf = 4.0 if S >= 160 else 2.0
    cell.win = win
    cell.nucleoli = [b for n in nucs for b in _nucleoli(rng, n, px)]
    cell.info.update(line=line, shape=variant, axis_ratio=round(float(ar), 3), filopodia=len(filo and filo[0]),
                     micronucleus=bool(micro), n_nucleoli=len(cell.nucleoli), pixel_size_um=round(px, 4), **ninfo)
    _masks(cell)
    _nuclear_maps(cell)
    lam = {"HeLa": (3, 7), "U2OS": (3, 6), "epithelial": (4, 9), "hiPSC": (4, 8)}[line]
    _coarse(cell, rng.uniform(4, 8), rng.uniform(*lam), rng.uniform(1, 3), rng.uniform(0.2, 0.5))
    return cell


def _rounded(rng, S, diameter):
    D = rng.uniform(11, 20)
    frac = rng.uniform(0.5, 0.75)
    px = float(D / (frac * diameter))
    R = (frac * diameter - 1) / 2
    q = rng.uniform(0.88, 1.0)
    ori = rng.uniform(0, TWO_PI)
    r = R * q / np.sqrt((q * np.cos(ANG - ori)) ** 2 + np.sin(ANG - ori) ** 2)
    r = r * (1 + 0.015 * periodic_noise(rng, M_ANG, 2, 8, 0.8))
    r = r * (R * 2 / (extent_of_points(r * np.sin(ANG), r * np.cos(ANG)) - 1))
    oy, ox, S, win = _place_in_frame(rng, S, r * np.sin(ANG), r * np.cos(ANG))
    outline = Radial(oy, ox, r)
    a = R * rng.uniform(0.55, 0.75)
    d = rng.uniform(0, TWO_PI)
    off = rng.uniform(0, 0.4) * (R - a)
    nuc = Radial(oy + off * np.sin(d), ox + off * np.cos(d), _nucleus_shape(rng, a, rng.uniform(0.8, 1.0),
                                                                            rng.uniform(0, TWO_PI), False))
    k = 1.0
    while not _fits(outline, [nuc], 0.4 / px) and k > 0.5:
        k *= 0.95
        nuc = Radial(nuc.cy, nuc.cx, nuc.r * 0.95)
    psi = float(np.arctan2(outline.cy - nuc.cy, outline.cx - nuc.cx)) if off > 0.5 else rng.uniform(0, TWO_PI)
    rc = nuc.radius(psi) + 0.6 / px
    cell = Cell(S=S, px=px, state="rounded", line="rounded", outline=outline, nuclei=[nuc], micro=[],
                psi=psi, centrosome=(nuc.cy + rc * np.sin(psi), nuc.cx + rc * np.cos(psi)),
                lead=np.zeros(M_ANG), junction=np.zeros(M_ANG, bool), gamma=float(rng.uniform(0.5, 1.0)))
    cell.cf = 4.0 if S >= 160 else 2.0
    cell.win = win
    cell.nucleoli = _nucleoli(rng, nuc, px)
    cell.info.update(line="rounded", diameter_um=round(D, 2), pixel_size_um=round(px, 4))
    _masks(cell)
    _nuclear_maps(cell)
    _coarse(cell, rng.uniform(8, 14), rng.uniform(4, 8), rng.uniform(0.7, 1.5), rng.uniform(1.0, 2.0))
    return cell


def _mitotic(rng, S, diameter):
    stage = str(rng.choice(["prometaphase", "metaphase", "anaphase", "telophase"], p=[0.2, 0.45, 0.2, 0.15]))
    frac = rng.uniform(0.5, 0.78)
    alpha = rng.uniform(0, TWO_PI)                 # spindle axis
    ua = np.array([np.sin(alpha), np.cos(alpha)])
    if stage == "telophase":
        rd = rng.uniform(6, 9)
        d0 = rd * rng.uniform(0.72, 0.92)
        ext = 2 * (d0 + rd)
        px = float(ext / (frac * diameter))
        tr = np.zeros(M_ANG)
        for sgn in (1, -1):
            cth = np.cos(ANG - alpha) * d0 * sgn
            t = cth + np.sqrt(np.maximum(cth ** 2 - d0 ** 2 + rd ** 2, 0))
            tr = np.maximum(tr, t)
        r = tr / px
        k = np.exp(-0.5 * (np.arange(-4, 5) / 1.2) ** 2)
        r = np.convolve(np.concatenate([r[-4:], r, r[:4]]), k / k.sum(), "valid")
    else:
        D = rng.uniform(15, 25)
        px = float(D / (frac * diameter))
        q = rng.uniform(0.9, 1.0)
        r = (D / 2 / px) * q / np.sqrt((q * np.cos(ANG - alpha)) ** 2 + np.sin(ANG - alpha) ** 2)
        r = r * (1 + 0.012 * periodic_noise(rng, M_ANG, 2, 10, 0.6))
        for _ in range(rng.poisson(1.0)):    # blebs
            b = rng.uniform(0, TWO_PI)
            r = r * (1 + rng.uniform(0.03, 0.07) * np.exp(-0.5 * (wrap(ANG - b) / 0.12) ** 2))
    r = r * ((frac * diameter - 1) / (extent_of_points(r * np.sin(ANG), r * np.cos(ANG)) - 1))
    oy, ox, S, win = _place_in_frame(rng, S, r * np.sin(ANG), r * np.cos(ANG))
    outline = Radial(oy, ox, r)
    um = 1 / px
    c0 = np.array([oy, ox])
    # chromosomes as short thick rods (um, relative to the centre)
    nrod = int(rng.integers(40, 70))
    beta = alpha + np.pi / 2
    ub = np.array([np.sin(beta), np.cos(beta)])
    Dcell = 2 * np.mean(r) * px
    if stage == "prometaphase":
        rad = rng.uniform(0.18, 0.28) * Dcell
        a = rng.uniform(0, TWO_PI, nrod)
        rr = rad * np.sqrt(rng.uniform(0.1, 1, nrod))
        cen = np.stack([rr * np.sin(a), rr * np.cos(a)], 1)
        ori = rng.uniform(0, TWO_PI, nrod)
        poles_d = rng.uniform(0.25, 0.35) * Dcell
    else:
        Lp = rng.uniform(0.45, 0.68) * Dcell * (0.85 if stage == "telophase" else 1.0)
        thick = rng.uniform(1.5, 3.0)
        u = rng.uniform(-0.5, 0.5, nrod) * Lp
        v = rng.normal(0, thick / 4, nrod) * (1 - 0.5 * (2 * u / Lp) ** 2)
        ori = alpha + rng.normal(0, 0.6, nrod)
        if stage == "metaphase":
            shift = np.zeros(nrod)
            poles_d = rng.uniform(0.3, 0.4) * Dcell
        elif stage == "anaphase":
            half = rng.uniform(1.5, 5.0)
            shift = np.where(rng.random(nrod) < 0.5, -half, half)
            u *= 0.85
            v *= 0.6
            ori = alpha + rng.normal(0, 0.35, nrod)
            poles_d = half + rng.uniform(3, 5)
        else:
            half = d0 * rng.uniform(0.75, 0.95)
            shift = np.where(rng.random(nrod) < 0.5, -half, half)
            rad = rng.uniform(2.0, 3.2)
            a = rng.uniform(0, TWO_PI, nrod)
            rr = rad * np.sqrt(rng.random(nrod))
            u, v = rr * np.cos(a), rr * np.sin(a)
            ori = rng.uniform(0, TWO_PI, nrod)
            poles_d = half + rng.uniform(2, 3)
        cen = u[:, None] * ub[None, :] + (v + shift)[:, None] * ua[None, :]
    poles = (tuple(c0 + poles_d * um * ua), tuple(c0 - poles_d * um * ua))
    L = rng.uniform(1.0, 2.6, nrod) * (0.6 if stage == "telophase" else 1.0)
    w = rng.uniform(0.5, 0.8, nrod)
    bend = rng.normal(0, 0.25, nrod) * L
    d_ = np.stack([np.sin(ori), np.cos(ori)], 1)
    pn = np.stack([np.cos(ori), -np.sin(ori)], 1)
    p0 = c0 + (cen - 0.5 * L[:, None] * d_) * um
    p1 = c0 + (cen + bend[:, None] * pn) * um
    p2 = c0 + (cen + 0.5 * L[:, None] * d_) * um
    y0 = np.concatenate([p0[:, 0], p1[:, 0]])
    x0 = np.concatenate([p0[:, 1], p1[:, 1]])
    y1 = np.concatenate([p1[:, 0], p2[:, 0]])
    x1 = np.concatenate([p1[:, 1], p2[:, 1]])
    wpx = np.concatenate([w, w]) * um
    chrom = lines(S, y0, x0, y1, x1, wpx, wpx)
    cell = Cell(S=S, px=px, state="mitotic", line="mitotic", outline=outline, nuclei=[], micro=[], stage=stage,
                axis=float(alpha), poles=poles, psi=float(alpha), centrosome=poles[0],
                lead=np.zeros(M_ANG), junction=np.zeros(M_ANG, bool), gamma=float(rng.uniform(0.5, 1.0)))
    cell.cf = 4.0 if S >= 160 else 2.0
    cell.win = win
    _masks(cell)
    chrom *= cell.cell_f
    cell.chrom = chrom.astype(np.float32)
    sm = ndi.gaussian_filter(chrom, max(0.35 * um, 0.5))
    thr = 0.3 * float(np.percentile(sm[sm > 0], 90)) if (sm > 0).any() else 1.0
    cell.nucleus = (sm > thr) & cell.cell
    cell.nuc_f = (np.clip(sm / (2 * thr), 0, 1) * cell.cell_f).astype(np.float32)
    dn = ndi.distance_transform_edt(~cell.nucleus[:: int(cell.cf), :: int(cell.cf)]) * cell.cf
    cell.d_nuc = np.maximum(upsample(dn, S, cell.cf) - cell.cf / 2, -1).astype(np.float32)
    f = cell.cf
    n = int(np.ceil(S / f))
    c = (np.arange(n) + 0.5) * f - 0.5
    cy, cx = np.meshgrid(c, c, indexing="ij")
    de, s = outline.inside(cy, cx)
    inside = de > 0
    cell.c_dedge = ndi.distance_transform_edt(inside) * f * px
    cell.c_dnuc = dn[:n, :n] * px
    cell.c_cyto = (inside & (dn[:n, :n] > 0)).astype(float)
    vol = np.where(inside, np.sqrt(np.clip(1 - np.minimum(s, 1) ** 2, 0, 1)) * 0.75 + 0.25, 0)
    cell.c_vol = vol
    cell.vol = np.clip(upsample(vol, S, f), 0, 1).astype(np.float32)
    cell.h = cell.vol * rng.uniform(10, 16)
    cell.info.update(line="mitotic", stage=stage, pixel_size_um=round(px, 4))
    return cell


def make_cell(rng, S: int, diameter: float, state: str | None = None) -> Cell:
    """A cell (geometry and DNA). ``state`` forces a state (for inspection and tests only)."""
    u = rng.random()
    if state is not None:
        u = {"mitotic": 0.0, "rounded": P_MITOTIC, "interphase": 1.0}[state]
    if u < P_MITOTIC:
        cell = _mitotic(rng, S, diameter)
        _dna_mitotic(rng, cell)
    elif u < P_MITOTIC + P_ROUNDED:
        cell = _rounded(rng, S, diameter)
        _dna_interphase(rng, cell, boost=1.3)
    else:
        lines_ = list(LINES)
        line = lines_[rng.choice(len(lines_), p=[LINES[k]["p"] for k in lines_])]
        cell = _interphase(rng, S, diameter, line)
        _dna_interphase(rng, cell)
    return cell


# ------------------------------------------------------------------------------------------ DNA
def _dna_interphase(rng, cell: Cell, boost: float = 1.0):
    S, um = cell.S, 1 / cell.px
    level = loguniform(rng, 0.5, 1.6) * boost
    grain = rng.uniform(0.12, 0.35) * um
    a_fine, a_low = rng.uniform(0.1, 0.3), rng.uniform(0.08, 0.18)
    rim_a, rim_w = rng.uniform(0.0, 0.4), rng.uniform(0.3, 0.6) * um
    hole = rng.uniform(0.45, 0.85)
    dome = rng.uniform(0.1, 0.4)
    mouse = rng.random() < 0.1
    nl = np.zeros((S, S), np.float32)
    for b in cell.nucleoli:
        _soft_discs(S, b, nl)
    cell.nl_f = nl
    dna = np.zeros((S, S), np.float32)
    yy, xx = grid(S)
    for k, n in enumerate(cell.nuclei + cell.micro):
        y0, y1, x0, x1 = n.bbox(3)
        y0, x0 = max(int(y0), 0), max(int(x0), 0)
        y1, x1 = min(int(y1) + 1, S), min(int(x1) + 1, S)
        sub = (slice(y0, y1), slice(x0, x1))
        d_in, t = n.inside(yy[sub], xx[sub])
        cov = np.clip(d_in + 0.5, 0, 1)
        shape = cov.shape
        tex = 1 + a_fine * smooth_noise(rng, shape, max(grain, 0.5)) + a_low * smooth_noise(rng, shape, 2.0 * um)
        tex *= 1 + rim_a * np.exp(-np.maximum(d_in, 0) / rim_w)
        tex *= 1 - dome + dome * np.sqrt(np.clip(1 - t ** 2, 0, 1))
        tex = np.maximum(tex, 0.15)
        if k < len(cell.nuclei):
            nf = rng.poisson(rng.uniform(12, 25) if mouse else rng.uniform(0, 7))
            if nf:
                a = rng.uniform(0, TWO_PI, nf)
                rr = np.sqrt(rng.random(nf)) * 0.85 * n.radius(a)
                fy, fx = n.cy + rr * np.sin(a) - y0, n.cx + rr * np.cos(a) - x0
                D = rng.uniform(0.6, 1.3, nf) * um
                amp = rng.uniform(0.4, 1.2, nf) * np.pi * (D / 2) ** 2
                big = stamp(max(shape), fy, fx, amp, D / 2.5)[: shape[0], : shape[1]]
                tex += big
            tex *= 1 - hole * nl[sub]
            lev = level
        else:
            lev = level * rng.uniform(1.0, 1.6)
        dna[sub] += (lev * tex * cov).astype(np.float32)
    if rng.random() < 0.08:                   # debris: small bright specks in the cytoplasm
        nd = int(rng.integers(1, 4))
        cy, cx = sample_cyto_points(rng, cell, nd)
        D = rng.uniform(0.3, 0.8, cy.size) * um
        dna += (stamp(S, cy, cx, level * rng.uniform(1, 3, cy.size) * np.pi * (D / 2) ** 2, D / 2.5)).astype(np.float32)
    cell.dna = (np.maximum(dna, 0) * cell.cell_f).astype(np.float32)


def _dna_mitotic(rng, cell: Cell):
    # condensed chromosomes: 2-4x the interphase chromatin per area (which is ~level)
    level = loguniform(rng, 0.5, 1.6) * rng.uniform(2.0, 4.0)
    tex = np.clip(1 + 0.15 * smooth_noise(rng, (cell.S, cell.S), max(0.2 * cell.um, 0.5)), 0, None)
    cell.nl_f = np.zeros((cell.S, cell.S), np.float32)
    ch = cell.chrom
    mean = float(ch[cell.nucleus].mean()) if cell.nucleus.any() else float(ch.max())
    dna = np.maximum(ch * tex, 0) * (level / max(mean, 1e-9)) * cell.cell_f
    top = float(dna.max())
    if top > 12:
        dna *= 12 / top
    cell.dna = dna.astype(np.float32)


def sample_cyto_points(rng, cell: Cell, n: int, weight: np.ndarray | None = None):
    """n positions (px) in the cytoplasm, distributed as ``weight`` (a coarse map) or uniformly."""
    w = cell.c_cyto if weight is None else weight * cell.c_cyto
    y, x = sample_from_map(rng, w, n, cell.cf)
    if y.size:
        ok = (cell.outline.inside(y, x)[0] > 0.5) & (lookup(cell.d_nuc, y, x) > 0.3)
        y, x = y[ok], x[ok]
    return y, x
