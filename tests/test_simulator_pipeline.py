"""The shared simulator pipeline: registry, imaging model, scenes, training sets (simulator/)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_organelle.simulator import RENDERERS, available_renderers, get_renderer, imaging, scene, trainset
from napari_organelle.simulator.base import check_rendered

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_registered_renderer_is_present_and_meets_the_contract():
    assert available_renderers() == list(RENDERERS)
    for name in RENDERERS:
        if name in ("default", "alt"):
            continue  # the classic renderers predate the contract's extent rule (they are wrapped)
        render = get_renderer(name)
        for cls in ("ER", "Nucleus"):
            r = render(cls, trainset.sample_rng(3, name, cls, 0), size=160, diameter=120)
            assert check_rendered(r, cls, 160, 120) == [], name
    with pytest.raises(ValueError, match="Unknown renderer 'nope'"):
        get_renderer("nope")


def test_classic_renderers_give_a_specimen_without_noise():
    r = get_renderer("default")("Golgi_gia", np.random.default_rng(0), size=200, diameter=150)
    assert r.protein.dtype == np.float32 and r.protein.shape == (200, 200)
    assert r.cell.any() and r.nucleus.any() and not (r.nucleus & ~r.cell).any()
    from scipy import ndimage as ndi

    outside = ~ndi.binary_dilation(r.cell, iterations=3)  # beyond the soft 1-2 px edge of the outline
    assert float(r.protein[outside].max()) < 1e-3 * float(r.protein.max())  # no background, no noise


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_imaging_gives_the_bit_depth_asked_for_and_keeps_the_cell(bits):
    rng = np.random.default_rng(1)
    spec = np.zeros((96, 96), np.float32)
    spec[30:60, 30:60] = 1.0
    im = imaging.draw_imaging(rng)
    im.bits, im.jpeg, im.saturate, im.photons = bits, None, None, (500.0, 500.0)
    (p, d), used = imaging.acquire(spec, spec, rng, 0.1, cell_mask=spec > 0, imaging=im)
    assert used is im
    assert p.dtype == (np.uint8 if bits == 8 else np.uint16)
    assert p.max() <= {8: 255, 12: 4095, 16: 65535}[bits]
    inside, outside = p[35:55, 35:55].mean(), p[:20, :20].mean()
    assert inside > outside + 5 * p[:20, :20].std()  # the cell stands out of the noise


def test_imaging_draws_a_wide_range_of_microscopes():
    rng = np.random.default_rng(2)
    ims = [imaging.draw_imaging(rng) for _ in range(400)]
    assert {im.bits for im in ims} == {8, 12, 16}
    assert any(im.jpeg for im in ims) and any(im.rgb for im in ims) and any(im.emccd for im in ims)
    photons = np.array([im.photons[0] for im in ims])
    assert photons.min() < 30 and photons.max() > 2000
    psf = np.array([im.psf_um[0] for im in ims])
    assert psf.min() < 0.1 and psf.max() > 0.3


def test_jpeg_in_an_rgb_composite_round_trips():
    rng = np.random.default_rng(3)
    im = imaging.draw_imaging(rng)
    im.bits, im.jpeg, im.rgb = 8, 70, True
    spec = np.zeros((64, 64), np.float32)
    spec[20:40, 10:50] = 1.0
    (p, d), _ = imaging.acquire(spec, spec[::-1].copy(), rng, 0.2, cell_mask=spec > 0, imaging=im)
    assert p.dtype == np.uint8 and p.shape == (64, 64)
    assert p[25:35, 15:45].mean() > p[50:, :].mean() + 50  # protein kept in the green channel


def test_neighbours_touch_the_cell_and_keep_their_own_labels():
    r = get_renderer("indep_a")("ER", trainset.sample_rng(0, "indep_a", "ER", 1), size=200, diameter=150)
    P, D, L = scene.compose(r, np.random.default_rng(4), 3)
    assert set(np.unique(L)) <= {0, 1, 2, 3, 4} and (L == 1).sum() == r.cell.sum()
    assert len(set(np.unique(L)) - {0, 1}) >= 1
    from scipy import ndimage as ndi

    grown = ndi.binary_dilation(L == 1, iterations=6)
    assert (grown & (L > 1)).any()  # at least one neighbour touches the cell
    assert P.shape == D.shape == L.shape and P.shape[0] > 200


def test_signal_labels_make_a_nuclear_protein_cell_its_nucleus():
    r = get_renderer("indep_b")("Nucleus", trainset.sample_rng(0, "indep_b", "Nucleus", 4), size=200, diameter=150)
    L = np.where(r.cell, 1, 0).astype(np.int32)
    out = scene.signal_labels(L, r.protein, np.random.default_rng(5), 150)
    cell, nuc = out == 1, r.nucleus
    assert cell.sum() < 0.8 * r.cell.sum()  # shrunk towards the nucleus
    assert (cell & nuc).sum() > 0.8 * nuc.sum()


def test_training_samples_are_reproducible_and_prepared_like_the_product():
    render = get_renderer("indep_c")
    a, ia = scene.training_sample("Lysosome", trainset.sample_rng(7, "indep_c", "Lysosome", 0), render, input_size=64)
    b, _ = scene.training_sample("Lysosome", trainset.sample_rng(7, "indep_c", "Lysosome", 0), render, input_size=64)
    c, _ = scene.training_sample("Lysosome", trainset.sample_rng(7, "indep_c", "Lysosome", 1), render, input_size=64)
    assert a.dtype == np.uint8 and a.shape == (2, 64, 64)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a[0].min() == 0 and a[0].max() > 150  # percentile-scaled as prepare_pair does (then resized)
    assert {"diameter", "neighbours", "per_cell", "bits"} <= set(ia)


def test_training_set_does_not_depend_on_how_it_is_split():
    X, y, infos = trainset.build(2, ["indep_a", "alt"], seed=3, input_size=48, classes=["ER", "Nucleus"],
                                 workers=1, chunk=1)
    assert X.shape == (8, 2, 48, 48) and list(y) == [0, 0, 1, 1, 0, 0, 1, 1]
    assert [i["renderer"] for i in infos] == ["indep_a"] * 4 + ["alt"] * 4
    X1, y1, _ = trainset.build(2, ["alt"], seed=3, input_size=48, classes=["ER", "Nucleus"], workers=1)
    assert np.array_equal(X1, X[4:]) and np.array_equal(y1, y[4:])  # alt's cells whoever else is asked
    X2, _, _ = trainset.build(1, ["alt"], seed=3, input_size=48, classes=["Nucleus"], workers=1)
    assert np.array_equal(X2[0], X[6])  # and whatever the class list or the count
