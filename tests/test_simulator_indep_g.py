"""indep_g renderer: contract, reproducibility and a few biology checks (fast, small images)."""

import numpy as np
import pytest

from napari_organelle.classes import CLASSES
from napari_organelle.simulator import indep_g
from napari_organelle.simulator.base import check_rendered


@pytest.mark.parametrize("size,diameter", [(104, 80), (160, 120), (260, 200)])
def test_every_class_meets_the_contract(size, diameter):
    for ci, cls in enumerate(CLASSES):
        for i in range(2):
            r = indep_g.render(cls, np.random.default_rng([size, ci, i]), size=size, diameter=diameter)
            assert check_rendered(r, cls, size, diameter) == [], (cls, i)


def test_info_is_json():
    import json

    for cls in CLASSES:
        r = indep_g.render(cls, np.random.default_rng(11), size=128, diameter=100)
        json.dumps(r.info)
        assert r.info["line"] in ("hela", "spread", "epithelial", "stem")


def test_same_seed_same_cell_and_different_seeds_differ():
    for cls in ("ER", "Microtubules", "Golgi_gpp"):
        a = indep_g.render(cls, np.random.default_rng(7), size=160, diameter=120)
        b = indep_g.render(cls, np.random.default_rng(7), size=160, diameter=120)
        c = indep_g.render(cls, np.random.default_rng(8), size=160, diameter=120)
        assert np.array_equal(a.protein, b.protein) and np.array_equal(a.dna, b.dna)
        assert np.array_equal(a.cell, b.cell)
        assert not np.array_equal(a.protein, c.protein)


def _interphase(cls, n, size=200, diameter=150, seed=0):
    out = []
    i = 0
    while len(out) < n:
        r = indep_g.render(cls, np.random.default_rng([seed, i]), size=size, diameter=diameter)
        i += 1
        if r.state == "interphase":
            out.append(r)
    return out


def test_cell_body_and_dna_do_not_depend_on_class():
    a = indep_g.render("ER", np.random.default_rng(3), size=160, diameter=120)
    b = indep_g.render("Lysosome", np.random.default_rng(3), size=160, diameter=120)
    assert np.array_equal(a.cell, b.cell) and np.array_equal(a.nucleus, b.nucleus)
    assert np.array_equal(a.dna, b.dna)


def test_nucleus_protein_follows_dna_and_nucleolus_is_inside_the_nucleus():
    corr = []
    for r in _interphase("Nucleus", 4):
        m = r.nucleus
        corr.append(np.corrcoef(r.protein[m], r.dna[m])[0, 1])
        assert r.protein[m].mean() > 4 * r.protein[r.cell & ~r.nucleus].mean()
    assert np.median(corr) > 0.3
    for r in _interphase("Nucleolus", 4):
        top = r.protein >= np.percentile(r.protein[r.cell], 99)
        assert (top & r.nucleus).sum() > 0.9 * top.sum()


def test_golgi_is_near_the_nucleus_and_er_dim_over_it():
    from scipy import ndimage as ndi

    for cls in ("Golgi_gia", "Golgi_gpp"):
        for r in _interphase(cls, 4, seed=1):
            dn = ndi.distance_transform_edt(~r.nucleus) * r.pixel_size_um
            cyto = r.cell & ~r.nucleus
            near, far = cyto & (dn < 5), cyto & (dn > 8)
            if far.sum() < 50:
                continue
            # the brightest pixels are next to the nucleus, the far cytoplasm is dim
            top = r.protein >= np.percentile(r.protein[cyto], 99)
            assert (top & near).sum() > 0.7 * (top & cyto).sum(), cls
            assert r.protein[near].mean() > 3 * r.protein[far].mean(), cls
    for r in _interphase("ER", 4, seed=2):
        inner = ndi.binary_erosion(r.nucleus, iterations=3)
        ring = ndi.binary_dilation(r.nucleus, iterations=4) & ~r.nucleus & r.cell
        assert r.protein[inner].mean() < r.protein[ring].mean()


def test_puncta_classes_and_microtubules_are_not_in_the_nucleus():
    for cls in ("Endosome", "Lysosome", "Mitochondria", "Microtubules"):
        for r in _interphase(cls, 3, seed=3):
            inner = r.nucleus
            cyto = r.cell & ~r.nucleus
            assert r.protein[inner].mean() < r.protein[cyto].mean() * 1.2, cls


def test_mitotic_and_rounded_cells_occur_at_a_few_percent():
    states = [indep_g.render("Endosome", np.random.default_rng([9, i]), size=104, diameter=80).state
              for i in range(300)]
    frac = {s: states.count(s) / len(states) for s in ("mitotic", "rounded")}
    assert 0.01 <= frac["mitotic"] <= 0.1 and 0.005 <= frac["rounded"] <= 0.08, frac


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown class"):
        indep_g.render("Peroxisome", np.random.default_rng(0), size=128, diameter=100)
    with pytest.raises(ValueError, match="1.25"):
        indep_g.render("ER", np.random.default_rng(0), size=100, diameter=100)
