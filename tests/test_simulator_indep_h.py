"""The indep_h renderer: contract, determinism and a few biology checks."""

import numpy as np
import pytest

from napari_organelle.classes import CLASSES
from napari_organelle.simulator import indep_h
from napari_organelle.simulator.base import check_rendered


@pytest.mark.parametrize("size,diameter", [(128, 100), (384, 300)])
def test_every_class_meets_the_contract(size, diameter):
    for ci, cls in enumerate(CLASSES):
        for i in range(2):
            r = indep_h.render(cls, np.random.default_rng([ci, i, size]), size=size, diameter=diameter)
            assert check_rendered(r, cls, size, diameter) == [], (cls, i)


def test_large_cells_meet_the_contract():
    for ci, cls in enumerate(CLASSES):
        r = indep_h.render(cls, np.random.default_rng([7, ci]), size=512, diameter=400)
        assert check_rendered(r, cls, 512, 400) == []


def test_same_seed_same_cell_and_different_seeds_differ():
    a = indep_h.render("Microtubules", np.random.default_rng(3), size=160, diameter=120)
    b = indep_h.render("Microtubules", np.random.default_rng(3), size=160, diameter=120)
    c = indep_h.render("Microtubules", np.random.default_rng(4), size=160, diameter=120)
    assert np.array_equal(a.protein, b.protein) and np.array_equal(a.dna, b.dna)
    assert np.array_equal(a.cell, b.cell)
    assert not np.array_equal(a.protein, c.protein)


def _cells(cls, n, size=160, diameter=120, seed=0):
    return [indep_h.render(cls, np.random.default_rng([seed, k]), size=size, diameter=diameter) for k in range(n)]


def test_nuclear_classes_stay_in_the_nucleus():
    for r in _cells("Nucleolus", 8):
        if r.state == "interphase":
            top = r.protein >= np.percentile(r.protein[r.cell], 99.5)
            assert (top & r.cell & ~r.nucleus).sum() <= 0.05 * top.sum()   # bright bodies inside
            assert r.protein[r.nucleus].mean() > 3 * r.protein[r.cell & ~r.nucleus].mean()
    for r in _cells("Nucleus", 8, seed=1):
        if r.state == "interphase":
            m = r.nucleus
            assert np.corrcoef(r.protein[m], r.dna[m])[0, 1] > 0.2 or r.info["variant"] == "nucleoplasmic protein"
            assert r.protein[m].mean() > 5 * r.protein[r.cell & ~m].mean()


def test_dna_only_in_the_nucleus():
    for r in _cells("ER", 6, seed=2):
        assert r.dna[~r.nucleus].sum() < 0.05 * r.dna.sum() + 1e-6


def test_golgi_is_near_the_nucleus_and_er_dark_over_it():
    from scipy import ndimage as ndi
    for cls in ("Golgi_gia", "Golgi_gpp"):
        for r in _cells(cls, 6, seed=3):
            if r.state != "interphase" or r.info["variant"] == "dispersed":
                continue
            d = ndi.distance_transform_edt(~r.nucleus) * r.pixel_size_um
            top = r.protein >= np.percentile(r.protein[r.cell], 99)
            assert (top & (d < 6)).sum() > 0.8 * top.sum(), cls
    for r in _cells("ER", 6, seed=4):
        if r.state != "interphase":
            continue
        d = ndi.distance_transform_edt(~r.nucleus) * r.pixel_size_um
        ring = r.cell & (d > 0.5) & (d < 4)
        inner = ndi.binary_erosion(r.nucleus, iterations=3)
        assert r.protein[inner].mean() < 0.7 * r.protein[ring].mean()


def test_structures_differ_between_classes():
    # actin and microtubules fill the cytoplasm; puncta classes are sparse dots
    mt = _cells("Microtubules", 4, seed=5)
    endo = _cells("Endosome", 4, seed=5)
    frac = lambda rs: np.mean([(r.protein[r.cell] > 0.3).mean() for r in rs])  # noqa: E731
    assert frac(mt) > frac(endo)


def test_mitotic_and_rounded_cells_are_a_few_percent():
    states = [indep_h.render("ER", np.random.default_rng([9, k]), size=96, diameter=72).state for k in range(300)]
    share = {s: states.count(s) / len(states) for s in ("mitotic", "rounded")}
    assert 0.01 <= share["mitotic"] <= 0.09
    assert 0.005 <= share["rounded"] <= 0.08
    assert states.count("interphase") > 0.85 * len(states)


def test_puncta_classes_draw_many_separate_dots():
    from scipy import ndimage as ndi
    for cls in ("Endosome", "Lysosome"):
        counts = []
        for r in _cells(cls, 6, size=384, diameter=300, seed=6):
            p = r.protein
            peaks = (p == ndi.maximum_filter(p, size=5)) & (p > 0.25 * np.percentile(p[r.cell], 99.5)) & r.cell
            counts.append(int(peaks.sum()))
        assert np.median(counts) >= 25, (cls, counts)
