"""The indep_f renderer: contract, reproducibility and a few biology checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_organelle.classes import CLASSES
from napari_organelle.simulator import indep_f
from napari_organelle.simulator._indep_f_cell import make_cell
from napari_organelle.simulator.base import check_rendered


@pytest.mark.parametrize("size,diameter", [(100, 80), (160, 120), (384, 300)])
def test_every_class_meets_the_contract(size, diameter):
    for ci, cls in enumerate(CLASSES):
        for i in range(2):
            r = indep_f.render(cls, np.random.default_rng([size, ci, i]), size=size, diameter=diameter)
            assert check_rendered(r, cls, size, diameter) == [], (cls, i)


def test_large_cells_meet_the_contract():
    for ci, cls in enumerate(CLASSES):
        r = indep_f.render(cls, np.random.default_rng([7, ci]), size=512, diameter=400)
        assert check_rendered(r, cls, 512, 400) == []


def test_same_seed_same_cell_and_different_seeds_differ():
    a = indep_f.render("ER", np.random.default_rng(5), size=160, diameter=120)
    b = indep_f.render("ER", np.random.default_rng(5), size=160, diameter=120)
    c = indep_f.render("ER", np.random.default_rng(6), size=160, diameter=120)
    assert np.array_equal(a.protein, b.protein) and np.array_equal(a.dna, b.dna)
    assert np.array_equal(a.cell, b.cell)
    assert not np.array_equal(a.protein, c.protein)


def test_bad_class_and_size_are_refused_with_a_message():
    with pytest.raises(ValueError, match="Unknown class"):
        indep_f.render("Peroxisome", np.random.default_rng(0), size=160, diameter=120)
    with pytest.raises(ValueError, match="1.25"):
        indep_f.render("ER", np.random.default_rng(0), size=100, diameter=120)


def _interphase(cls, n, size=200, diameter=150, seed=0):
    out = []
    i = 0
    while len(out) < n:
        r = indep_f.render(cls, np.random.default_rng([seed, i]), size=size, diameter=diameter)
        i += 1
        if r.state == "interphase":
            out.append(r)
    return out


def test_nucleus_protein_follows_dna_inside_the_nucleus():
    for r in _interphase("Nucleus", 6):
        m = r.nucleus
        assert r.protein[m].mean() > 3 * r.protein[r.cell & ~m].mean()
        corr = np.corrcoef(r.protein[m], r.dna[m])[0, 1]
        assert corr > 0.2, corr


def test_nucleolus_signal_is_inside_the_nucleus():
    for r in _interphase("Nucleolus", 6):
        bright = r.protein > 0.5 * r.protein.max()
        assert bright.any()
        assert (bright & r.nucleus).sum() >= 0.95 * bright.sum()
        # nucleoli are holes in the DNA
        assert r.dna[bright & r.nucleus].mean() < r.dna[r.nucleus].mean()


@pytest.mark.parametrize("cls", ["Golgi_gia", "Golgi_gpp"])
def test_golgi_is_concentrated_near_the_nucleus(cls):
    for r in _interphase(cls, 6):
        d_um = ndi.distance_transform_edt(~r.nucleus) * r.pixel_size_um
        cyto = r.cell & ~r.nucleus
        v = r.protein[cyto]
        top = v >= np.percentile(v, 98)
        assert (d_um[cyto][top] < 5).mean() > 0.7
        far = cyto & (d_um > 8)
        if far.sum() > 50:
            assert np.percentile(v, 99) > 4 * r.protein[far].mean()


def test_er_is_dimmer_over_the_nucleus_with_a_bright_envelope():
    for r in _interphase("ER", 6):
        d_out = ndi.distance_transform_edt(~r.nucleus) * r.pixel_size_um
        ring = r.cell & ~r.nucleus & (d_out < 2.5)
        inner = ndi.binary_erosion(r.nucleus, iterations=max(2, int(1.0 / r.pixel_size_um)))
        assert r.protein[ring].mean() > 1.5 * r.protein[inner].mean()


def test_endosomes_are_smaller_than_lysosomes():
    def puncta_size(cls):
        areas = []
        for r in _interphase(cls, 5, size=384, diameter=300, seed=3):
            p = r.protein * (r.cell & ~r.nucleus)
            lab, n = ndi.label(p > 0.4 * np.percentile(p[p > 0], 99.5))
            if n:
                a = np.bincount(lab.ravel())[1:] * r.pixel_size_um ** 2
                areas.append(np.median(a))
        return np.median(areas)

    assert puncta_size("Endosome") < puncta_size("Lysosome")


def test_mitotic_and_rounded_cells_occur_at_a_few_percent():
    states = [make_cell(np.random.default_rng([11, i]), 100, 80).state for i in range(600)]
    frac_m = states.count("mitotic") / len(states)
    frac_r = states.count("rounded") / len(states)
    assert 0.01 < frac_m < 0.08, frac_m
    assert 0.005 < frac_r < 0.06, frac_r


def test_mitotic_cells_are_smaller_with_bright_chromosomes():
    found = 0
    for i in range(400):
        rng = np.random.default_rng([13, i])
        r = indep_f.render("Microtubules", rng, size=200, diameter=150)
        if r.state != "mitotic":
            continue
        found += 1
        assert check_rendered(r, "Microtubules", 200, 150) == []
        assert r.cell.sum() < 0.6 * np.pi * 75 ** 2
        if found == 2:
            break
    assert found == 2


def test_gpp130_golgi_is_on_average_more_fragmented_than_giantin():
    def pieces(cls):
        counts = []
        for r in _interphase(cls, 20, size=200, diameter=160, seed=21):
            p = r.protein * (r.cell & ~r.nucleus)
            _, n = ndi.label(p > 0.3 * np.percentile(p[p > 0], 99.5))
            counts.append(n)
        return np.mean(counts)

    gia, gpp = pieces("Golgi_gia"), pieces("Golgi_gpp")
    assert gpp > 1.2 * gia, (gia, gpp)


def test_cell_nucleus_and_dna_do_not_depend_on_the_class():
    for seed in range(3):
        ref = indep_f.render("ER", np.random.default_rng([40, seed]), size=160, diameter=120)
        for cls in ("Nucleolus", "ActinFilaments", "Lysosome"):
            r = indep_f.render(cls, np.random.default_rng([40, seed]), size=160, diameter=120)
            assert np.array_equal(r.cell, ref.cell) and np.array_equal(r.nucleus, ref.nucleus)
            assert np.array_equal(r.dna, ref.dna) and r.state == ref.state
            assert r.pixel_size_um == ref.pixel_size_um
