"""The indep_i renderer: contract, reproducibility and a few biology checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_organelle.classes import CLASSES
from napari_organelle.simulator import indep_i
from napari_organelle.simulator._indep_i_cell import make_cell
from napari_organelle.simulator.base import check_rendered, load_renderer


def _cells(cls, n, size=160, diameter=120, seed=0):
    return [indep_i.render(cls, np.random.default_rng([seed, i]), size=size, diameter=diameter)
            for i in range(n)]


def test_is_a_renderer():
    assert load_renderer("indep_i") is indep_i


@pytest.mark.parametrize("size,diameter", [(100, 80), (200, 150), (512, 400)])
def test_every_class_meets_the_contract(size, diameter):
    for ci, cls in enumerate(CLASSES):
        for i in range(2 if size < 500 else 1):
            r = indep_i.render(cls, np.random.default_rng([ci, i, size]), size=size, diameter=diameter)
            assert check_rendered(r, cls, size, diameter) == [], (cls, i, r.info)
            json.dumps(r.info)


def test_same_seed_same_cell_and_different_seeds_differ():
    a = indep_i.render("Mitochondria", np.random.default_rng(7), size=160, diameter=120)
    b = indep_i.render("Mitochondria", np.random.default_rng(7), size=160, diameter=120)
    c = indep_i.render("Mitochondria", np.random.default_rng(8), size=160, diameter=120)
    assert np.array_equal(a.protein, b.protein) and np.array_equal(a.dna, b.dna)
    assert np.array_equal(a.cell, b.cell) and a.info == b.info
    assert not np.array_equal(a.protein, c.protein)


def test_nucleus_protein_follows_dna_inside_the_nucleus():
    corr = []
    for r in _cells("Nucleus", 8):
        if r.state != "interphase":
            continue
        m = r.nucleus
        corr.append(np.corrcoef(r.protein[m], r.dna[m])[0, 1])
    # the DNA-stain variant is the DNA image; the nucleoplasmic one shares the nucleolar holes
    assert np.median(corr) > 0.5, corr


def test_nucleolus_signal_is_inside_the_nucleus():
    for r in _cells("Nucleolus", 6):
        if r.state != "interphase":
            continue
        inside = r.protein[r.nucleus].sum() / r.protein.sum()
        assert inside > 0.6, (inside, r.info)
        assert r.protein[r.nucleus].max() > 4 * np.median(r.protein[r.cell & ~r.nucleus])


def test_golgi_is_concentrated_near_the_nucleus():
    from scipy import ndimage as ndi

    for cls in ("Golgi_gia", "Golgi_gpp"):
        for r in _cells(cls, 6):
            if r.state != "interphase":
                continue
            d = ndi.distance_transform_edt(~r.nucleus) * r.pixel_size_um
            cyto = r.cell & ~r.nucleus
            near, far = cyto & (d < 5), cyto & (d >= 7)
            if far.sum() < 50:
                continue
            assert r.protein[near].mean() > 2.5 * r.protein[far].mean(), (cls, r.info)


def test_er_is_dimmer_over_the_nucleus_than_around_it():
    from scipy import ndimage as ndi

    for r in _cells("ER", 6):
        if r.state != "interphase":
            continue
        d = ndi.distance_transform_edt(~r.nucleus) * r.pixel_size_um
        ring = r.cell & ~r.nucleus & (d < 4)
        core = ndi.binary_erosion(r.nucleus, iterations=3)
        assert r.protein[core].mean() < 0.7 * r.protein[ring].mean(), r.info


def test_microtubules_reach_the_cell_periphery():
    for r in _cells("Microtubules", 4, size=256, diameter=200):
        if r.state != "interphase":
            continue
        from scipy import ndimage as ndi
        e = ndi.distance_transform_edt(r.cell) * r.pixel_size_um
        outer = r.cell & (e > 1) & (e < 4)
        inner = r.cell & ~r.nucleus & (e > 4)
        assert r.protein[outer].mean() > 0.15 * r.protein[inner].mean(), r.info


def test_mitotic_and_rounded_cells_are_a_few_percent():
    states = [make_cell(np.random.default_rng([99, i]), 96, 72).state for i in range(400)]
    frac = {s: states.count(s) / len(states) for s in ("mitotic", "rounded")}
    assert 0.01 <= frac["mitotic"] <= 0.08, frac
    assert 0.01 <= frac["rounded"] <= 0.08, frac


def test_cell_and_nucleus_do_not_depend_on_the_class():
    # the cell body is drawn before the class: same seed, same cell and DNA for every class
    # (ActinFilaments may add filopodia to the mask)
    base = indep_i.render("ER", np.random.default_rng(3), size=160, diameter=120)
    for cls in CLASSES:
        r = indep_i.render(cls, np.random.default_rng(3), size=160, diameter=120)
        assert np.array_equal(r.dna, base.dna) and np.array_equal(r.nucleus, base.nucleus)
        if cls != "ActinFilaments":
            assert np.array_equal(r.cell, base.cell)


def test_overall_brightness_does_not_depend_on_the_class():
    tops = {}
    for cls in CLASSES:
        rs = _cells(cls, 6, seed=11)
        tops[cls] = float(np.median([np.percentile(r.protein[r.cell], 99.9) for r in rs]))
    assert all(0.3 < t < 4 for t in tops.values()), tops
    assert max(tops.values()) / min(tops.values()) < 4, tops
