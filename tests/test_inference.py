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
    # a labelled cell with no protein signal at all is reported, the others are still classified
    dark = protein.copy()
    ys, xs = np.nonzero(labels == 2)
    dark[max(0, ys.min() - 40):ys.max() + 40, max(0, xs.min() - 40):xs.max() + 40] = 0
    res2 = inference.classify_cells(dark, labels, dna, models["classifier"])
    assert not res2[2].classified and "constant" in res2[2].note
    assert all(res2[i].label == res[i].label for i in res if i != 2 and res2[i].classified)
    assert sum(r.classified for r in res2.values()) >= len(res) - 2


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


def test_a_stop_is_honoured_between_the_tiles_of_one_large_plane(models, monkeypatch):
    monkeypatch.setattr(inference, "MAX_NATIVE_SIDE", 64)
    monkeypatch.setattr(inference, "_TILE", 48)
    img = np.random.default_rng(0).random((150, 130)).astype(np.float32)
    tiles = []
    real = inference._run_ae

    def counting(model, planes):
        tiles.append(planes.shape)
        return real(model, planes)

    monkeypatch.setattr(inference, "_run_ae", counting)
    with pytest.raises(InterruptedError):  # one plane of 4 x 3 tiles; the stop comes after the second
        inference.reconstruct(img, models["autoencoder"], should_stop=lambda: len(tiles) >= 2)
    assert len(tiles) == 2


def test_cell_mask_and_activation_map_inside_the_cell(models):
    protein, dna = simulate_cell("ER", np.random.default_rng(3), size=160)
    mask = inference.cell_mask(protein, dna)
    assert mask.shape == protein.shape and 0.05 < mask.mean() < 0.9
    assert mask[80, 80] and not mask[0, 0]  # the cell is centred; the corners are background
    cams = [inference.activation_map(protein, dna, models["classifier"], target=c, inside_cell=True) for c in CLASSES]
    assert all(cam.shape == protein.shape and not cam[~mask].any() for cam in cams)
    assert any(cam.max() == pytest.approx(1.0) for cam in cams)  # rescaled to [0, 1] inside the cell
    assert inference.cell_mask(np.full((40, 40), 7.0)).all()  # no background to tell apart: nothing masked


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


def test_device_side_preprocessing_gives_the_host_results(models):
    """preprocess="device" (the GPU path: raw pixels batched per shape) on the CPU: same probabilities
    as the host path, in input order, with images it cannot take exactly (NaN, huge) falling back."""
    rng = np.random.default_rng(4)
    pairs = [simulate_cell(c, rng, size=96) for c in CLASSES[:6]]
    pairs += [(simulate_cell("ER", rng, size=80)[0][:70].astype(np.float32), None)]
    nan = simulate_cell("Nucleus", rng, size=96)[0].astype(np.float32)
    nan[5, 5] = np.nan
    pairs += [(nan, None), (np.pad(pairs[0][0], 300), None)] + pairs[:3]
    host = inference.classify_batch(pairs, models["classifier"], batch_size=5, preprocess="host")
    dev = inference.classify_batch(pairs, models["classifier"], batch_size=5, preprocess="device")
    assert len(dev) == len(pairs)
    for h, d in zip(host, dev):
        assert d.label == h.label
        assert max(abs(d.probabilities[c] - h.probabilities[c]) for c in CLASSES) < 1e-4
    with pytest.raises(InputError, match="preprocess"):
        next(inference.iter_classify(pairs, models["classifier"], preprocess="gpu"))


def test_unusable_images_are_reported_in_place_or_raise(models):
    rng = np.random.default_rng(5)
    good = [simulate_cell(c, rng, size=64) for c in ("ER", "Golgi_gpp")]
    blank = (np.zeros((64, 64), np.uint16), None)
    pairs = [good[0], blank, good[1]]
    with pytest.raises(InputError, match="constant"):
        inference.classify_batch(pairs, models["classifier"])
    res = inference.classify_batch(pairs, models["classifier"], skip_unusable=True, batch_size=2)
    assert [r.classified for r in res] == [True, False, True]
    assert res[1].label == "not classified" and "constant" in res[1].note and res[1].uncertain
    assert np.isnan(res[1].confidence) and res[1].as_row()["note"] == res[1].note
    alone = [inference.classify(p, d, models["classifier"]) for p, d in good]
    assert [r.label for r in (res[0], res[2])] == [r.label for r in alone]
    assert res[0].probabilities == pytest.approx(alone[0].probabilities, abs=1e-5)


def test_model_on_copies_to_another_device_once_and_leaves_the_original(models, monkeypatch):
    import torch

    from napari_organelle import training

    clf = models["classifier"]
    assert inference.model_on(clf, "cpu") is clf and inference.model_on(clf, "auto") is clf  # no GPU here
    with pytest.raises(InputError, match="CUDA is not available"):
        inference.model_on(clf, "cuda")
    # another device (torch's "meta" device stands in for a GPU): a copy, made once, original untouched
    monkeypatch.setattr(training, "resolve_device", lambda spec: torch.device("meta"))
    moved = inference.model_on(clf, "cuda:0")
    assert moved is not clf and next(moved.model.parameters()).device.type == "meta"
    assert next(clf.model.parameters()).device.type == "cpu"
    assert moved.classes == clf.classes and moved.name == clf.name and moved.input_size == clf.input_size
    assert inference.model_on(clf, "cuda:0") is moved


def test_reconstruct_constant_planes(models, cell):
    ae = models["autoencoder"]
    with pytest.raises(InputError, match="constant"):
        inference.reconstruct(np.full((64, 64), 3, np.uint16), ae)
    stack = np.stack([cell[0][:64, :64], np.full((64, 64), 7, np.uint16), cell[1][:64, :64]])
    rec = inference.reconstruct(stack, ae)
    assert [bool(d.get("constant")) for d in rec.per_plane] == [False, True, False]
    np.testing.assert_array_equal(rec.reconstruction[1], 7)
    np.testing.assert_array_equal(rec.residual[1], 0)
    assert rec.psnr == pytest.approx(np.mean([rec.per_plane[0]["psnr"], rec.per_plane[2]["psnr"]]))
    with pytest.raises(InputError, match="Every one of the 2 planes is constant"):
        inference.reconstruct(np.zeros((2, 32, 32), np.float32), ae)
    nan = np.stack([cell[0][:64, :64].astype(np.float32), np.full((64, 64), np.nan, np.float32)])
    rec = inference.reconstruct(nan, ae)  # an all-NaN plane of a stack is kept as it is, like a blank one
    assert [bool(d.get("constant")) for d in rec.per_plane] == [False, True] and np.isfinite(rec.psnr)


def test_model_on_and_load_model_take_names_and_paths(tiny_checkpoints, organelle_home):
    from napari_organelle.checkpoints import save_user_model

    lm = load_checkpoint(tiny_checkpoints["autoencoder"])
    save_user_model(load_checkpoint(tiny_checkpoints["classifier"]), "ft1")
    save_user_model(lm, "ae (v2)")
    clf = inference.model_on("ft1", "cpu")
    assert clf.kind == "classifier" and clf.name == "ft1" and clf.classes == list(CLASSES)
    ae = inference.model_on("ae (v2)", "cpu")  # kind: what the name is
    assert ae.kind == "autoencoder"
    assert inference.model_on(str(tiny_checkpoints["autoencoder"]), "cpu").kind == "autoencoder"
    assert inference.model_on("ft1", "cpu", kind="classifier").name == "ft1"
    with pytest.raises(Exception, match="autoencoder checkpoint"):
        inference.model_on("ft1", "cpu", kind="autoencoder")
    assert inference.load_model("ae (v2)", None).kind == "autoencoder"
    with pytest.raises(Exception, match="No model named or at 'nope'"):
        inference.model_on("nope", "cpu")


def test_top_level_exports():
    import napari_organelle as no
    from napari_organelle import checkpoints

    assert no.iter_classify is inference.iter_classify and no.classify_batch is inference.classify_batch
    assert no.model_on is inference.model_on and no.load_model is inference.load_model
    assert no.save_user_model is checkpoints.save_user_model
    assert {"iter_classify", "classify_batch", "model_on", "load_model", "save_user_model"} <= set(no.__all__)


def test_model_on_cache_is_bounded_thread_safe_and_releasable(models, monkeypatch):
    import threading

    import torch

    from napari_organelle import training

    inference.release_device_copies()
    monkeypatch.setattr(training, "resolve_device", lambda spec: torch.device("meta"))
    clf = models["classifier"]
    got = []
    threads = [threading.Thread(target=lambda: got.append(inference.model_on(clf, "cuda"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(m) for m in got}) == 1  # one copy, however many workers asked at once
    import dataclasses

    others = [dataclasses.replace(clf, model=torch.nn.Linear(2, 2)) for _ in range(6)]
    for o in others:
        inference.model_on(o, "cuda")
    assert len(inference._ON_DEVICE) <= 4
    assert inference.release_device_copies() >= 1 and not inference._ON_DEVICE
