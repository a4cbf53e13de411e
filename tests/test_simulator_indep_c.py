"""The ``indep_c`` renderer: the base.py contract, determinism, and biology checks per class."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_organelle.classes import CLASSES
from napari_organelle.preprocess import InputError
from napari_organelle.simulator.base import check_rendered, load_renderer

R = load_renderer("indep_c")


def _draw(cls, seed, size=256, diameter=200):
    return R.render(cls, np.random.default_rng(seed), size=size, diameter=diameter)


def _interphase(cls, n, size=256, diameter=200, start=0):
    """``n`` interphase cells of ``cls`` (seeds from ``start``)."""
    out, s = [], start
    while len(out) < n:
        r = _draw(cls, s, size, diameter)
        if r.state == "interphase":
            out.append(r)
        s += 1
    return out


@pytest.mark.parametrize("size,diameter,seeds", [(100, 80, 2), (256, 200, 2), (512, 400, 1)])
def test_every_class_meets_the_contract(size, diameter, seeds):
    for cls in CLASSES:
        for s in range(seeds):
            r = _draw(cls, [s, size], size, diameter)
            assert check_rendered(r, cls, size, diameter) == [], (cls, s, r.state, r.info)
            assert r.info["line"] and json.loads(json.dumps(r.info)) == r.info


def test_mitotic_and_rounded_cells_meet_the_contract():
    seen = set()
    s = 0
    while len(seen) < 2 and s < 400:
        r = _draw(CLASSES[s % len(CLASSES)], [7, s], 160, 120)
        if r.state != "interphase":
            seen.add(r.state)
            assert check_rendered(r, CLASSES[s % len(CLASSES)], 160, 120) == [], r.info
        s += 1
    assert seen == {"mitotic", "rounded"}


def test_same_seed_same_cell_different_seed_different_cell():
    a = _draw("Mitochondria", 3)
    b = _draw("Mitochondria", 3)
    c = _draw("Mitochondria", 4)
    for name in ("protein", "dna", "cell", "nucleus"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.pixel_size_um == b.pixel_size_um and a.info == b.info
    assert not np.array_equal(a.protein, c.protein)
    assert not np.array_equal(a.cell, c.cell)


def test_cell_nucleus_and_dna_do_not_depend_on_the_class():
    # the class is drawn last from the generator: one seed gives one cell body whatever the class
    ref = _draw("ER", 11)
    for cls in CLASSES:
        r = _draw(cls, 11)
        np.testing.assert_array_equal(r.cell, ref.cell)
        np.testing.assert_array_equal(r.nucleus, ref.nucleus)
        np.testing.assert_array_equal(r.dna, ref.dna)
        assert r.pixel_size_um == ref.pixel_size_um
        # the protein's brightest structures are around 1 times the cell's expression level
        top = np.percentile(r.protein[r.cell], 99.9)
        assert 0.3 * r.info["expression"] < top < 1.5 * r.info["expression"], cls


def test_states_and_cell_lines_occur_at_sensible_rates():
    # the cell body (state, line) is drawn first, before DNA and protein: draw only that part here
    from napari_organelle.simulator._indep_c_cell import make_cell

    states, lines = [], []
    for s in range(500):
        g = make_cell(np.random.default_rng([5, s]), 60, 48)
        states.append(g.state)
        lines.append(g.line)
    states = np.array(states)
    assert 0.01 < np.mean(states == "mitotic") < 0.08
    assert 0.01 < np.mean(states == "rounded") < 0.08
    assert set(lines) >= {"hela", "spread", "epithelial", "stem"}


def test_physical_sizes_follow_the_cell_line():
    from napari_organelle.simulator.base import extent

    for r in _interphase("Nucleolus", 12, 160, 120):
        L = extent(r.cell) * r.pixel_size_um
        lo, hi = {"hela": (16, 46), "spread": (34, 90), "epithelial": (12, 35), "stem": (8, 21)}[r.info["line"]]
        assert lo <= L <= hi, (r.info["line"], L)
        n_um = extent(r.nucleus) * r.pixel_size_um
        assert 4 <= n_um <= 24, n_um


def test_nucleus_protein_follows_the_dna():
    cs = []
    for r in _interphase("Nucleus", 6):
        inside = ndi.binary_erosion(r.nucleus, iterations=2)
        cs.append(np.corrcoef(r.protein[inside], r.dna[inside])[0, 1])
        assert r.protein[r.nucleus].sum() > 0.8 * r.protein.sum()
    assert min(cs) > 0.2 and np.median(cs) > 0.4, cs


def test_nucleolus_signal_is_in_a_few_bright_bodies_inside_the_nucleus():
    for r in _interphase("Nucleolus", 4):
        prot = r.protein
        assert prot[r.nucleus].mean() > 3 * prot[r.cell & ~r.nucleus].mean()
        bright = prot > 0.5 * np.percentile(prot[r.nucleus], 99.5)
        assert (bright & r.nucleus).sum() > 0.95 * bright.sum()
        assert bright.sum() < 0.5 * r.nucleus.sum()
        n = ndi.label(ndi.binary_opening(bright))[1]
        assert 1 <= n <= 12, n


def _dist_um(r):
    return ndi.distance_transform_edt(~r.nucleus) * r.pixel_size_um


@pytest.mark.parametrize("cls", ["Golgi_gia", "Golgi_gpp"])
def test_golgi_is_concentrated_next_to_the_nucleus(cls):
    for r in _interphase(cls, 4):
        d = _dist_um(r)
        prot = r.protein
        near = (d <= 6) & r.cell
        assert prot[near].sum() > 0.6 * prot[r.cell].sum(), r.info
        # ... and on one side of it: the brightest pixels cluster within a small angular range
        cy, cx = ndi.center_of_mass(r.nucleus)
        top = prot > np.percentile(prot[r.cell], 99)
        ys, xs = np.nonzero(top)
        ang = np.arctan2(ys - cy, xs - cx)
        R_ = np.hypot(np.mean(np.cos(ang)), np.mean(np.sin(ang)))
        if r.info["variant"] in ("knot", "arc"):
            assert R_ > 0.3, (R_, r.info["variant"])


def test_er_is_dim_over_the_nucleus_and_bright_around_it():
    for r in _interphase("ER", 4):
        d = _dist_um(r)
        inner = ndi.binary_erosion(r.nucleus, iterations=int(np.ceil(1.5 / r.pixel_size_um)))
        ring = (d > 0.4) & (d < 3) & r.cell
        assert r.protein[inner].mean() < 0.7 * r.protein[ring].mean(), r.info


def test_cytoplasmic_classes_avoid_the_nucleus_and_nuclear_classes_fill_it():
    def nuc_frac(cls):
        return np.mean([r.protein[r.nucleus].mean() / r.protein[r.cell & ~r.nucleus].mean()
                        for r in _interphase(cls, 3)])
    for cls in ("Mitochondria", "Lysosome", "Endosome"):
        assert nuc_frac(cls) < 0.7, cls
    for cls in ("Nucleus", "Nucleolus"):
        assert nuc_frac(cls) > 3, cls


def test_lysosomes_are_larger_and_fewer_than_endosomes():
    def spots(cls):
        sizes, counts = [], []
        for r in _interphase(cls, 4, 384, 300):
            prot = ndi.gaussian_filter(r.protein, 0.12 / r.pixel_size_um)
            m = (prot > 0.3 * np.percentile(prot[r.cell], 99.5)) & r.cell & ~r.nucleus
            lab, n = ndi.label(m)
            area = np.bincount(lab.ravel())[1:] * r.pixel_size_um ** 2
            sizes.append(np.median(area) if n else 0)
            counts.append(n)
        return np.median(sizes), np.median(counts)
    (ls, _), (es, _) = spots("Lysosome"), spots("Endosome")
    assert ls > 1.5 * es, (ls, es)


def _ridges(r):
    """Pixels brighter than their surroundings (lines and dots), in the cytoplasm."""
    img = ndi.gaussian_filter(r.protein, max(0.7, 0.12 / r.pixel_size_um))  # as a microscope sees it
    hp = img - ndi.uniform_filter(img, max(3, int(round(1.0 / r.pixel_size_um))))
    return (hp > 0.15 * np.percentile(hp[r.cell], 99)) & r.cell & ~r.nucleus


def _long_fraction(r, length_um=3.0):
    """Fraction of the ridge pixels that belong to structures longer than ``length_um``."""
    lab, _ = ndi.label(_ridges(r), structure=np.ones((3, 3)))
    sizes = np.bincount(lab.ravel())
    long_ = sum(sizes[i] for i, s in enumerate(ndi.find_objects(lab), 1)
                if max(s[0].stop - s[0].start, s[1].stop - s[1].start) * r.pixel_size_um > length_um)
    return long_ / max(sizes[1:].sum(), 1)


def test_microtubules_are_long_lines_and_endosomes_are_dots():
    for r in _interphase("Microtubules", 3, 384, 300):
        assert _long_fraction(r) > 0.5
        d = _dist_um(r)
        ring = (d > 0.5) & (d < 4) & r.cell
        inner = ndi.binary_erosion(r.nucleus, iterations=int(np.ceil(1.5 / r.pixel_size_um)))
        assert r.protein[ring].mean() > 1.5 * r.protein[inner].mean()  # fainter over the nucleus
    for r in _interphase("Endosome", 3, 384, 300):
        assert _long_fraction(r) < 0.15
        assert ndi.label(_ridges(r))[1] > 20  # many separate dots


def test_actin_has_a_bright_cortex_in_cortex_dominated_cells():
    checked = 0
    for r in _interphase("ActinFilaments", 12):
        if r.info["variant"] != "cortex":
            continue
        edge = r.cell & ~ndi.binary_erosion(r.cell, iterations=max(2, int(0.8 / r.pixel_size_um)))
        inner = ndi.binary_erosion(r.cell, iterations=int(3 / r.pixel_size_um)) & ~r.nucleus
        if inner.any():
            assert np.median(r.protein[edge]) > 1.3 * np.median(r.protein[inner])  # fibres aside
            checked += 1
    assert checked >= 1


def test_bad_input_is_refused_with_a_clear_message():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="Unknown class"):
        R.render("Peroxisome", rng, size=256, diameter=200)
    with pytest.raises(InputError, match="1.25"):
        R.render("ER", rng, size=200, diameter=200)
    with pytest.raises(InputError, match="too small"):
        R.render("ER", rng, size=40, diameter=30)
    with pytest.raises(InputError, match="Generator"):
        R.render("ER", 0, size=256, diameter=200)


@pytest.mark.parametrize("p", [0.03, 0.1, 0.4, 1.0])
def test_thin_lines_and_small_dots_keep_their_amount_at_any_pixel_size(p):
    from napari_organelle.simulator._indep_c_draw import blobs, draw_segments, line_density

    img = np.zeros((200, 200), np.float32)
    lam = float(line_density(1.0, 0.025))  # one microtubule
    L_um = 5.0
    for ang in (0.0, 0.3, np.pi / 4, 1.2):
        img[:] = 0
        L = L_um / p
        draw_segments(img, 20.0, 20.0, 20 + L * np.sin(ang) * 0.9, 20 + L * np.cos(ang) * 0.9, lam, p)
        amount = img.sum() * p * p  # density x pixel area
        assert amount == pytest.approx(lam * L_um * 0.9, rel=1e-4)
        # anti-aliased: a line across pixels never puts all of a sample into one pixel
        assert img.max() < lam / p * 1.5
    img[:] = 0
    sig = 0.1 / p  # 0.1 um: sub-pixel once p > 0.2
    blobs(img, [50.3, 120.7], [60.2, 80.9], sig, sig, 0.0, 1.0)
    assert img.sum() == pytest.approx(2 * 2 * np.pi * max(sig, 0.55) ** 2 * min(1, (sig / 0.55) ** 2), rel=0.02)
