"""The indep_d renderer: contract, determinism and a few biology checks."""

from __future__ import annotations

import numpy as np
import pytest

from napari_organelle.classes import CLASSES
from napari_organelle.simulator import indep_d
from napari_organelle.simulator.base import check_rendered, load_renderer


def _r(cls, seed, size=128, diameter=100):
    return indep_d.render(cls, np.random.default_rng(seed), size=size, diameter=diameter)


def test_info_is_json():
    import json

    for i, cls in enumerate(CLASSES):
        r = _r(cls, 300 + i)
        assert r.state in ("interphase", "mitotic", "rounded")
        json.dumps(r.info)
        assert "variant" in r.info, (cls, r.info)


def test_registered():
    assert load_renderer("indep_d") is indep_d


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("size,diameter", [(100, 80), (128, 100), (260, 200)])
def test_contract(cls, size, diameter):
    for seed in range(3):
        r = indep_d.render(cls, np.random.default_rng([seed, size]), size=size, diameter=diameter)
        assert check_rendered(r, cls, size, diameter) == [], (cls, seed, r.info)


def test_contract_large():
    for i, cls in enumerate(CLASSES):
        r = indep_d.render(cls, np.random.default_rng(i), size=512, diameter=400)
        assert check_rendered(r, cls, 512, 400) == [], (cls, r.info)


def test_same_seed_same_cell_other_seed_differs():
    for cls in ("ER", "Microtubules", "Golgi_gpp"):
        a, b, c = _r(cls, 5), _r(cls, 5), _r(cls, 6)
        assert np.array_equal(a.protein, b.protein) and np.array_equal(a.dna, b.dna)
        assert np.array_equal(a.cell, b.cell)
        assert not np.array_equal(a.protein, c.protein)


def test_bad_class_and_size_are_refused():
    with pytest.raises(ValueError, match="unknown class"):
        indep_d.render("Peroxisome", np.random.default_rng(0), size=128, diameter=100)
    with pytest.raises(ValueError, match="1.25"):
        indep_d.render("ER", np.random.default_rng(0), size=100, diameter=100)


def _interphase(cls, n, size=192, diameter=150):
    out = []
    seed = 0
    while len(out) < n:
        r = _r(cls, 1000 + seed, size, diameter)
        seed += 1
        if r.state == "interphase":
            out.append(r)
    return out


def test_nucleus_protein_follows_dna():
    for r in _interphase("Nucleus", 4):
        m = r.nucleus
        assert r.protein[m].mean() > 5 * r.protein[r.cell & ~m].mean()
        if r.info["variant"] == "dna":
            assert np.corrcoef(r.protein[m], r.dna[m])[0, 1] > 0.8


def test_nucleolus_signal_inside_nucleus():
    for r in _interphase("Nucleolus", 4):
        cyt = r.cell & ~r.nucleus
        assert r.protein[r.nucleus].mean() > 4 * r.protein[cyt].mean()
        top = r.protein >= np.percentile(r.protein[r.cell], 99.5)
        assert (top & r.nucleus).sum() > 0.95 * top.sum()
        # bright bodies sit where the DNA has holes
        hi = r.protein > np.percentile(r.protein[r.nucleus], 90)
        lo = r.nucleus & (r.protein < np.percentile(r.protein[r.nucleus], 50))
        assert r.dna[hi & r.nucleus].mean() < r.dna[lo].mean()


def test_golgi_near_nucleus():
    from scipy import ndimage as ndi

    for cls in ("Golgi_gia", "Golgi_gpp"):
        for r in _interphase(cls, 4):
            d_um = ndi.distance_transform_edt(~r.nucleus) * r.pixel_size_um
            bright = r.protein > 0.3 * r.protein.max()
            limit = 6.0 if r.info["variant"] == "dispersed" else 3.5
            assert np.median(d_um[bright]) < limit, r.info
            cyt = r.cell & ~r.nucleus
            near, far = cyt & (d_um < 4), cyt & (d_um > 7)
            if far.sum() > 50:
                assert np.percentile(r.protein[near], 99) > 5 * np.median(r.protein[far]), r.info


def test_er_dim_over_nucleus_and_ring_around_it():
    from scipy import ndimage as ndi

    for r in _interphase("ER", 4):
        inner = ndi.binary_erosion(r.nucleus, iterations=max(2, int(1.5 / r.pixel_size_um)))
        ring = r.cell & ~r.nucleus & ndi.binary_dilation(r.nucleus, iterations=max(2, int(2 / r.pixel_size_um)))
        assert r.protein[inner].mean() < 0.7 * r.protein[ring].mean(), r.info


def test_dna_only_in_nucleus_and_class_independent_geometry():
    for seed in (42, 43, 44):
        a = _r("ER", seed)
        assert a.dna[~a.cell].sum() == 0
        # the cell, nucleus and DNA are drawn before the protein: the same for every class
        for cls in CLASSES:
            b = _r(cls, seed)
            assert b.state == a.state and b.pixel_size_um == a.pixel_size_um
            assert np.array_equal(a.nucleus, b.nucleus) and np.array_equal(a.dna, b.dna), cls
            if cls == "ActinFilaments":  # filopodia may add thin spikes to the cell, nothing else
                assert (a.cell & ~b.cell).sum() == 0 and (b.cell & ~a.cell).sum() < 0.03 * a.cell.sum()
            else:
                assert np.array_equal(a.cell, b.cell), cls


def test_mitotic_and_rounded_cells_occur_at_a_few_percent():
    cells = [indep_d.render("Endosome", np.random.default_rng([9, i]), size=64, diameter=50) for i in range(300)]
    states = [r.state for r in cells]
    frac_m = states.count("mitotic") / len(states)
    frac_r = states.count("rounded") / len(states)
    assert 0.01 <= frac_m <= 0.08 and 0.01 <= frac_r <= 0.08, (frac_m, frac_r)
    # condensed chromosomes are brighter per area than interphase chromatin; rounded cells are smaller
    dna = {s: np.mean([r.dna[r.nucleus].mean() for r in cells if r.state == s]) for s in ("interphase", "mitotic")}
    assert dna["mitotic"] > 1.4 * dna["interphase"], dna
    area = {s: np.mean([r.cell.sum() * r.pixel_size_um ** 2 for r in cells if r.state == s]) for s in set(states)}
    assert area["rounded"] < area["interphase"] and area["mitotic"] < area["interphase"], area


def test_lines_keep_their_brightness_per_unit_length_at_any_pixel_size():
    from types import SimpleNamespace

    from napari_organelle.simulator import _indep_d_cell as C
    from napari_organelle.simulator._indep_d_classes import _lw

    L_um, D, w_um = 12.0, 1.0, 0.25
    totals = []
    for p in (0.05, 0.13, 0.4):
        g = SimpleNamespace(p=p)
        size = int(L_um / p) + 20
        a = np.array([[10.3, 10.7]])
        ang = 0.37
        b = a + (L_um / p) * np.array([[np.sin(ang), np.cos(ang)]])
        img = C.segments(size, a, b, _lw(g, D, w_um))
        totals.append(img.sum() * p * p)  # fluorophore per um of line x length, in physical units
        # anti-aliased: the line is spread over at most ~2 px across, never a gap along it
        assert (img > 0).sum() < 3 * L_um / p
    assert np.allclose(totals, D * w_um * L_um, rtol=1e-6), totals
