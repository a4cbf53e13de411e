"""Tests of the independently written ``indep_e`` renderer: contract, determinism, biology."""

from __future__ import annotations

import numpy as np
import pytest

from napari_organelle.classes import CLASSES
from napari_organelle.simulator import indep_e
from napari_organelle.simulator.base import check_rendered, load_renderer


def _render(cls, seed, size=192, diameter=150):
    return indep_e.render(cls, np.random.default_rng(seed), size=size, diameter=diameter)


def test_registered_as_a_renderer():
    assert load_renderer("indep_e") is indep_e


@pytest.mark.parametrize("size,diameter", [(104, 80), (192, 150), (512, 400)])
def test_every_class_meets_the_contract(size, diameter):
    for ci, cls in enumerate(CLASSES):
        for i in range(2 if size > 400 else 3):
            r = indep_e.render(cls, np.random.default_rng([size, ci, i]), size=size, diameter=diameter)
            assert check_rendered(r, cls, size, diameter) == [], (cls, i)
            assert r.protein[~r.cell].max() == 0 and r.dna[~r.cell].max() == 0


def test_same_seed_same_cell_and_different_seeds_differ():
    for cls in ("ER", "Microtubules", "ActinFilaments"):
        a, b, c = _render(cls, 7), _render(cls, 7), _render(cls, 8)
        assert np.array_equal(a.protein, b.protein) and np.array_equal(a.dna, b.dna)
        assert np.array_equal(a.cell, b.cell)
        assert not np.array_equal(a.protein, c.protein)


def test_bad_class_is_refused_with_a_message():
    with pytest.raises(ValueError, match="unknown class"):
        _render("Peroxisome", 0)


def _interphase(cls, n, size=192, diameter=150, seed=100):
    out, i = [], 0
    while len(out) < n:
        r = _render(cls, [seed, i], size, diameter)
        i += 1
        if r.state == "interphase":
            out.append(r)
    return out


def test_nucleus_protein_correlates_with_dna_inside_the_nucleus():
    cors = []
    for r in _interphase("Nucleus", 6):
        m = r.nucleus
        cors.append(np.corrcoef(r.protein[m], r.dna[m])[0, 1])
    assert np.median(cors) > 0.3, cors


def test_nucleolus_signal_is_inside_the_nucleus_and_bright_there():
    for r in _interphase("Nucleolus", 6):
        p = r.protein
        frac_in = p[r.nucleus].sum() / p.sum()
        assert frac_in > 0.6
        assert np.percentile(p[r.nucleus], 99) > 3 * np.median(p[r.nucleus])


def _mean_distance_to_nucleus(r):
    from scipy import ndimage as ndi

    d = ndi.distance_transform_edt(~r.nucleus) * r.pixel_size_um
    cyto = r.cell & ~r.nucleus
    bright = r.protein > np.percentile(r.protein[cyto], 97)
    w = r.protein * cyto * bright
    return (d * w).sum() / w.sum(), d[cyto].mean()


@pytest.mark.parametrize("cls", ["Golgi_gia", "Golgi_gpp"])
def test_golgi_is_concentrated_near_the_nucleus(cls):
    ratios = [np.divide(*_mean_distance_to_nucleus(r)) for r in _interphase(cls, 8)]
    # the brightest few percent of the cytoplasm lie close to the nucleus
    assert np.median(ratios) < 0.6 and max(ratios) < 1.0, ratios


def test_er_is_dimmer_over_the_nucleus_than_around_it():
    from scipy import ndimage as ndi

    for r in _interphase("ER", 6):
        ring = ndi.binary_dilation(r.nucleus, iterations=max(2, int(2 / r.pixel_size_um))) & ~r.nucleus & r.cell
        inner = ndi.binary_erosion(r.nucleus, iterations=max(2, int(1.5 / r.pixel_size_um)))
        assert r.protein[inner].mean() < 0.7 * r.protein[ring].mean()


def test_lysosomes_are_larger_and_fewer_than_endosomes_on_average():
    from scipy import ndimage as ndi

    def spots(r):
        p = r.protein * (r.cell & ~r.nucleus)
        peaks = (p == ndi.maximum_filter(p, 5)) & (p > 0.2 * p.max())
        lab, n = ndi.label(p > 0.35 * p.max())
        return peaks.sum(), (lab > 0).sum() * r.pixel_size_um ** 2 / max(n, 1)

    e = [spots(r) for r in _interphase("Endosome", 8)]
    l_ = [spots(r) for r in _interphase("Lysosome", 8)]
    assert np.median([a for _, a in l_]) > np.median([a for _, a in e])


def test_cell_statistics_do_not_depend_on_the_class():
    areas = {cls: [_render(cls, [5, i], 104, 80).cell.sum() for i in range(12)] for cls in ("ER", "Nucleus")}
    # same seeds give the same cell body whatever the class is
    assert areas["ER"] == areas["Nucleus"]


def test_mitotic_and_rounded_cells_occur_at_a_few_percent():
    from napari_organelle.simulator._indep_e_cell import make_cell

    states = [make_cell(np.random.default_rng([9, i]), 104, 80).state for i in range(400)]
    frac_m = states.count("mitotic") / len(states)
    frac_r = states.count("rounded") / len(states)
    assert 0.01 <= frac_m <= 0.08 and 0.005 <= frac_r <= 0.06, (frac_m, frac_r)
    # and a rendered mitotic cell has condensed, bright chromosomes and no nucleoli holes
    i = states.index("mitotic")
    r = indep_e.render("Microtubules", np.random.default_rng([9, i]), size=104, diameter=80)
    assert r.state == "mitotic" and check_rendered(r, "Microtubules", 104, 80) == []
    assert r.dna.max() > 1.5


def test_info_is_json_and_names_the_variant():
    import json

    for cls in CLASSES:
        r = _render(cls, 3, 104, 80)
        json.dumps(r.info)
        assert r.info["state"] == r.state and "line" in r.info
        if cls != "ActinFilaments" or r.state == "interphase":
            assert "variant" in r.info, cls


def test_subpixel_lines_keep_their_brightness_per_unit_length():
    from napari_organelle.simulator._indep_e_draw import densify, splat

    totals, peaks = [], []
    for off in (0.0, 0.25, 0.5, 0.77):
        py = np.array([[10.0 + off, 40.0 + off]])
        px = np.array([[5.0, 45.0]])
        y, x, w = densify(py, px, np.ones((1, 1), bool), np.array([2.0]))
        img = splat((64, 64), y, x, w)
        totals.append(img.sum())
        peaks.append(img[25].sum())  # one row across the line: brightness per pixel of length
    length = np.hypot(30, 40)
    assert np.allclose(totals, 2.0 * length, rtol=1e-6)
    assert np.allclose(peaks, peaks[0], rtol=0.05)
