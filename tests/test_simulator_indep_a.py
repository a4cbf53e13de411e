"""The indep_a renderer: contract, determinism, and biology that would catch a broken class."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_organelle.classes import CLASSES
from napari_organelle.simulator import indep_a
from napari_organelle.simulator.base import check_rendered, extent, load_renderer


def _render(cls, seed, size=128, diameter=100):
    return indep_a.render(cls, np.random.default_rng(seed), size=size, diameter=diameter)


def _interphase(cls, n, size=128, diameter=100, start=0):
    out, k = [], start
    while len(out) < n:
        r = _render(cls, [11, k], size, diameter)
        k += 1
        if r.state == "interphase":
            out.append(r)
    return out


def test_registered_renderer():
    mod = load_renderer("indep_a")
    assert mod.NAME == "indep_a"


@pytest.mark.parametrize("size,diameter", [(100, 80), (128, 100), (256, 200)])
def test_every_class_meets_the_contract(size, diameter):
    for ci, cls in enumerate(CLASSES):
        for k in range(3):
            r = _render(cls, [size, ci, k], size, diameter)
            assert check_rendered(r, cls, size, diameter) == [], (cls, k, r.state, r.info)
            json.dumps(r.info)  # free-form but JSON-able


@pytest.fixture(scope="module")
def survey():
    """240 cells (classes in turn) at a small size: seed, class, state and contract problems."""
    out = []
    for k in range(240):
        cls = CLASSES[k % len(CLASSES)]
        r = _render(cls, [5, k], 100, 80)
        json.dumps(r.info)
        out.append(([5, k], cls, r.state, check_rendered(r, cls, 100, 80), extent(r.cell)))
    return out


def test_contract_holds_for_mitotic_and_rounded_cells(survey):
    other = [s for s in survey if s[2] != "interphase"]
    assert {s[2] for s in other} == {"mitotic", "rounded"}
    for seed, cls, state, problems, ext in other:
        assert problems == [], (seed, cls, state)
        assert ext <= 0.8 * 80 + 1  # physically smaller than interphase cells


def test_mitotic_and_rounded_cells_are_a_few_percent(survey):
    states = [s[2] for s in survey]
    mit, rnd = states.count("mitotic") / len(states), states.count("rounded") / len(states)
    assert 0.01 <= mit <= 0.08 and 0.01 <= rnd <= 0.08, (mit, rnd)


def test_same_seed_same_cell_different_seed_different_cell():
    for cls in ("Microtubules", "ER", "Golgi_gpp"):
        a, b = _render(cls, 42), _render(cls, 42)
        for f in ("protein", "dna", "cell", "nucleus"):
            assert np.array_equal(getattr(a, f), getattr(b, f)), (cls, f)
        assert a.info == b.info and a.pixel_size_um == b.pixel_size_um
        c = _render(cls, 43)
        assert not np.array_equal(a.protein, c.protein)
        assert not np.array_equal(a.cell, c.cell)


def test_cell_nucleus_and_dna_do_not_depend_on_the_class():
    # the same generator state gives the same cell body, nucleus and DNA for every class; only the
    # protein differs (actin may add filopodia to the cell mask, nothing else)
    for k in range(4):
        ref = _render("Nucleus", [3, k])
        for cls in CLASSES:
            r = _render(cls, [3, k])
            assert np.array_equal(r.dna, ref.dna), cls
            assert np.array_equal(r.nucleus, ref.nucleus), cls
            assert r.pixel_size_um == ref.pixel_size_um and r.state == ref.state
            if cls == "ActinFilaments":
                assert not (ref.cell & ~r.cell).any()
            else:
                assert np.array_equal(r.cell, ref.cell), cls


def test_physical_sizes():
    for r in _interphase("Nucleolus", 30):
        px = r.pixel_size_um
        assert 9 <= extent(r.cell) * px <= 85, r.info
        assert 5 <= extent(r.nucleus) * px <= 22, r.info


def test_protein_brightness_range_is_class_independent():
    med = {}
    for cls in CLASSES:
        med[cls] = np.median([np.percentile(r.protein[r.cell], 99.9)
                              for r in _interphase(cls, 8, 100, 80, start=100)])
    overall = np.median(list(med.values()))
    for cls, m in med.items():
        assert 0.5 * overall <= m <= 2 * overall, (cls, med)


def _rings(r, inner_um, outer_um):
    """Masks: the nucleus shrunk by inner_um, and a cytoplasmic ring 0..outer_um outside it."""
    px = r.pixel_size_um
    d_out = ndi.distance_transform_edt(~r.nucleus) * px
    d_in = ndi.distance_transform_edt(r.nucleus) * px
    core = d_in > inner_um
    ring = (d_out > 0) & (d_out <= outer_um) & r.cell
    return core, ring, d_out


def test_nucleus_protein_follows_the_dna():
    cors = []
    for r in _interphase("Nucleus", 12):
        m = r.nucleus
        cors.append(np.corrcoef(r.protein[m], r.dna[m])[0, 1])
        assert r.protein[m].mean() > 4 * r.protein[r.cell & ~m].mean()
    assert np.median(cors) > 0.5, cors


def test_nucleolus_signal_is_in_the_nucleus():
    for r in _interphase("Nucleolus", 12):
        m = r.nucleus
        assert r.protein[m].mean() > 4 * r.protein[r.cell & ~m].mean(), r.info
        top = r.protein >= np.percentile(r.protein[r.cell], 99.5)
        assert (top & m).sum() > 0.95 * (top & r.cell).sum()
        # bright bodies: the top of the nuclear signal is far above the nucleoplasm
        assert np.percentile(r.protein[m], 99) > 3 * np.percentile(r.protein[m], 30)


def _near_nucleus(r, um):
    """Share of the bright structure (not the diffuse background) within ``um`` of the nucleus."""
    _, _, d_out = _rings(r, 0, 0)
    bright = (r.protein > 0.25 * np.percentile(r.protein[r.cell], 99.9)) & ~r.nucleus
    return bright[d_out <= um].sum() / max(bright.sum(), 1)


def test_golgi_is_concentrated_next_to_the_nucleus():
    # the same seeds give the same cells for every class: compare classes cell by cell
    endo = [_near_nucleus(r, 3.0) for r in _interphase("Endosome", 12)]
    for cls in ("Golgi_gia", "Golgi_gpp"):
        golgi = [_near_nucleus(r, 3.0) for r in _interphase(cls, 12)]
        assert np.median(golgi) > 0.6, (cls, golgi)
        # (ties in tiny stem cells, and the occasional dispersed Golgi, are biology)
        assert sum(g >= e for g, e in zip(golgi, endo)) >= 9, (cls, golgi, endo)
        assert np.median(golgi) > np.median(endo) + 0.15, (cls, golgi, endo)


def test_er_is_dimmer_over_the_nucleus_than_around_it():
    n_ok = 0
    rs = _interphase("ER", 12)
    for r in rs:
        core, ring, _ = _rings(r, 1.0, 2.0)
        n_ok += r.protein[core].mean() < 0.7 * r.protein[ring].mean()
    assert n_ok >= len(rs) - 1


def test_mitochondria_avoid_the_nucleus():
    for r in _interphase("Mitochondria", 10):
        core, ring, _ = _rings(r, 1.0, 3.0)
        assert r.protein[core].mean() < 0.6 * r.protein[ring].mean(), r.info


def test_mitotic_cells_have_condensed_bright_chromosomes_and_a_cortex_ring(survey):
    interphase_dna = np.median([np.median(r.dna[r.nucleus]) for r in _interphase("ActinFilaments", 12, 100, 80)])
    seeds = [s[0] for s in survey if s[2] == "mitotic"][:4]
    assert len(seeds) == 4
    for seed in seeds:  # the same seed is the same (mitotic) cell for every class
        r = _render("ActinFilaments", seed, 100, 80)
        assert r.state == "mitotic"
        # condensed chromosomes: 2-4x brighter per area than interphase chromatin
        assert np.median(r.dna[r.nucleus]) > 1.5 * interphase_dna, r.info
        # rounded-up cell: a bright cortex ring, dim inside
        d = ndi.distance_transform_edt(r.cell) * r.pixel_size_um
        rim = r.protein[(d > 0) & (d <= 1.0)].mean()
        inner = r.protein[d > 3.0].mean()
        assert rim > 2 * inner, r.info


def test_bad_arguments_get_a_clear_message():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown class"):
        indep_a.render("Peroxisome", rng, size=128, diameter=100)
    with pytest.raises(ValueError, match="1.25 x diameter"):
        indep_a.render("ER", rng, size=100, diameter=100)
    with pytest.raises(ValueError, match="at least 48 pixels"):
        indep_a.render("ER", rng, size=100, diameter=30)


def test_thin_lines_have_the_right_brightness_per_unit_length_at_any_angle():
    from napari_organelle.simulator._indep_a_draw import segment_points, splat

    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.uniform(0, np.pi)
        y0, x0 = 32 + rng.random(), 32 + rng.random()
        L = rng.uniform(10, 25)
        img = np.zeros((64, 64), np.float32)
        ys, xs, ws, _, _ = segment_points(y0, x0, y0 + L * np.sin(a), x0 + L * np.cos(a), 0.3, 0.7)
        splat(img, ys, xs, ws)
        assert img.sum() == pytest.approx(0.3 * L, rel=1e-4)  # deposit per pixel of length
        # anti-aliased, at most two pixels wide: measured across the middle of the line
        my, mx = y0 + L / 2 * np.sin(a), x0 + L / 2 * np.cos(a)
        t = np.arange(-3, 3.01, 0.25)
        prof = ndi.map_coordinates(img, [my - t * np.cos(a), mx + t * np.sin(a)], order=1)
        assert prof[np.abs(t) > 2.0].max() < 0.02 * prof.max()  # (bilinear drawing + sampling)
