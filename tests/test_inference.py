"""Inference on real computations with tiny untrained models (plumbing, shapes, ranges, errors)."""

import numpy as np
import pytest

from napari_organelle import inference
from napari_organelle.checkpoints import load_checkpoint
from napari_organelle.classes import CLASSES
from napari_organelle.phantoms import simulate_cell, simulate_field
from napari_organelle.preprocess import InputError


@pytest.fixture(scope="module")
def cell():
    return simulate_cell("ER", np.random.default_rng(3), size=96)


@pytest.fixture(scope="module")
def models(tiny_checkpoints):
    return {k: load_checkpoint(p, expected_kind=k) for k, p in tiny_checkpoints.items()}


def test_classify_returns_every_class(cell, models):
    protein, dna = cell
    r = inference.classify(protein, dna, models["classifier"], autoencoder=models["autoencoder"])
    assert set(r.probabilities) == set(CLASSES)
    assert abs(sum(r.probabilities.values()) - 1) < 1e-4
    assert r.label == max(r.probabilities, key=r.probabilities.get)
    assert r.confidence == pytest.approx(r.probabilities[r.label])
    assert r.has_dna and r.ood_score is not None and r.ood_score > 0
    row = r.as_row()
    assert row["label"] == r.label and all(f"p_{c}" in row for c in CLASSES)


def test_classify_by_path_and_without_dna(cell, tiny_checkpoints):
    r = inference.classify(cell[0], None, str(tiny_checkpoints["classifier"]))
    assert not r.has_dna and r.label in CLASSES


def test_batch_matches_single(cell, models):
    rng = np.random.default_rng(0)
    pairs = [simulate_cell(c, rng, size=80) for c in CLASSES[:5]]
    batch = inference.classify_batch(pairs, models["classifier"], batch_size=2)
    single = [inference.classify(p, d, models["classifier"]) for p, d in pairs]
    for b, s in zip(batch, single):
        assert b.label == s.label
        assert b.confidence == pytest.approx(s.confidence, abs=1e-5)


def test_iter_classify_streams_and_stops(models):
    rng = np.random.default_rng(0)
    made = []

    def gen():
        for i in range(10):
            made.append(i)
            yield rng.random((32, 32)), None

    stop = {"now": False}
    out = []
    for r in inference.iter_classify(gen(), models["classifier"], batch_size=4, should_stop=lambda: stop["now"]):
        out.append(r)
        stop["now"] = True
    # the first batch of 4 was computed; nothing after the stop was read beyond the next item
    assert len(out) == 4 and len(made) <= 6


def test_stack_one_result_per_plane(models):
    stack = np.random.default_rng(1).random((3, 40, 40))
    res = inference.classify_stack(stack, stack, models["classifier"])
    assert len(res) == 3
    with pytest.raises(InputError):
        inference.classify_stack(stack, stack[:, :20], models["classifier"])


def test_classify_cells_on_field(models):
    protein, dna, labels, classes = simulate_field(n_cells=3, seed=1, size=256)
    res = inference.classify_cells(protein, labels, dna, models["classifier"])
    assert sorted(res) == sorted(int(v) for v in np.unique(labels) if v)
    with pytest.raises(InputError, match="no labelled"):
        inference.classify_cells(protein, np.zeros_like(labels), dna, models["classifier"])


def test_activation_map_aligned_with_input(cell, models):
    protein, dna = cell
    cam = inference.activation_map(protein[:, :80], dna[:, :80], models["classifier"])
    assert cam.shape == (96, 80) and cam.dtype == np.float32
    assert 0 <= cam.min() and cam.max() <= 1
    cam2 = inference.activation_map(protein, dna, models["classifier"], target="Nucleus")
    assert cam2.shape == protein.shape
    with pytest.raises(InputError, match="not a class"):
        inference.activation_map(protein, dna, models["classifier"], target="Peroxisome")


def test_reconstruct_shape_range_and_metrics(cell, models):
    protein = cell[0]
    rec = inference.reconstruct(protein, models["autoencoder"])
    assert rec.reconstruction.shape == protein.shape and rec.residual.shape == protein.shape
    assert np.allclose(protein.astype(np.float32) - rec.reconstruction, rec.residual)
    lo, hi = np.percentile(protein, [1, 99.8])
    assert rec.reconstruction.min() >= lo - 1e-3 and rec.reconstruction.max() <= hi + 1e-3
    assert rec.psnr > 0 and -1 <= rec.ssim <= 1 and rec.mse > 0
    # a perfect reconstruction scores infinitely well; identical images have SSIM 1
    p01 = np.random.default_rng(0).random((32, 32))
    assert inference.ssim(p01, p01) == pytest.approx(1.0)
    assert inference.psnr(p01, p01) == float("inf")


def test_reconstruct_stack_plane_by_plane(models):
    stack = np.random.default_rng(0).random((2, 3, 40, 48)).astype(np.float32)
    seen = []
    rec = inference.reconstruct(stack, models["autoencoder"], progress=lambda d, t: seen.append((d, t)))
    assert rec.reconstruction.shape == stack.shape and seen[-1] == (6, 6) and len(rec.per_plane) == 6


def test_reconstruct_large_plane_tiles(models, monkeypatch):
    monkeypatch.setattr(inference, "MAX_NATIVE_SIDE", 64)
    monkeypatch.setattr(inference, "_TILE", 48)
    img = np.random.default_rng(0).random((150, 130)).astype(np.float32)
    rec = inference.reconstruct(img, models["autoencoder"])
    assert rec.reconstruction.shape == img.shape and np.isfinite(rec.reconstruction).all()


def test_wrong_kind_is_refused(models, cell):
    with pytest.raises(InputError, match="autoencoder"):
        inference.classify(cell[0], None, models["autoencoder"])


def test_models_report_parameters_and_flops(models):
    from napari_organelle.models.registry import count_parameters

    for kind, m in models.items():
        assert m.size["parameters"] == count_parameters(m.model) > 0
        assert m.size["flops_per_cell"] > m.size["parameters"]  # every weight is used at least once per cell
        assert "M parameters" in m.card and "GFLOP per" in m.card


def test_bundled_models_load_and_say_they_learned_from_simulated_cells():
    clf = inference.load_model(None, "classifier")
    ae = inference.load_model(None, "autoencoder")
    assert clf.classes == list(CLASSES) and clf.name == "bundled-classifier"
    for m in (clf, ae):
        assert "simulated cells" in m.meta["training"]["data"]
        assert "simulated" in m.card
    assert ae.model.compression_ratio(382, 382) >= 16
