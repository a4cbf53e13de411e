"""recipes.train_model: what the CLI and the dock share (tiny models, real training, on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from napari_organelle.checkpoints import LoadedModel, load_checkpoint
from napari_organelle.models.registry import build_model
from napari_organelle.preprocess import InputError
from napari_organelle.recipes import train_model
from napari_organelle.training import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blobs(seed, s=64):
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:s, :s]
    p = np.zeros((s, s))
    for _ in range(6):
        cy, cx = g.uniform(0, s, 2)
        p += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * g.uniform(3, 8) ** 2))
    return (4000 * p / p.max()).astype(np.uint16)


def _folder(root, n=8, sub=None):
    d = root / sub if sub else root
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        tifffile.imwrite(d / f"cell{i}.tif", _blobs(i))
    return root


@pytest.fixture
def tiny_ae():
    torch.manual_seed(0)
    ae = build_model("autoencoder", "organelle-ae", channels=(8, 16), latent_channels=4).eval()
    return LoadedModel(ae, "autoencoder", "organelle-ae", None, 32, name="tiny-ae")


def cfg(**kw):
    return TrainConfig(**{**dict(epochs=1, batch_size=4, lr=3e-3, device="cpu", crop_size=32, num_threads=1), **kw})


def test_autoencoder_trains_on_a_plain_folder_of_images(tmp_path, tiny_ae):
    src = _folder(tmp_path / "plain")
    out = train_model(src, "autoencoder", cfg(), init=tiny_ae, fractions=(0.6, 0.2, 0.2))
    assert out.data.classes == ["unlabelled"] and len(out.data) == 8
    assert out.result.kind == "autoencoder" and len(out.result.history) == 1
    assert out.result.baseline is not None  # fine-tuned: the starting model was measured first
    lm = load_checkpoint(out.checkpoint, expected_kind="autoencoder")
    assert lm.training_info["baseline"]["val_psnr"] == pytest.approx(out.result.baseline["val_psnr"])
    assert "test_psnr" in lm.metrics
    # one class folder works for the autoencoder as well
    one = _folder(tmp_path / "one", sub="Mito")
    out = train_model(one, "autoencoder", cfg(), init=tiny_ae)
    assert out.data.classes == ["Mitochondria"]


def test_autoencoder_that_does_not_improve_keeps_the_starting_model(tmp_path, tiny_ae):
    before = {k: v.clone() for k, v in tiny_ae.model.state_dict().items()}
    out = train_model(_folder(tmp_path / "plain"), "autoencoder", cfg(epochs=2, lr=1.0), init=tiny_ae)
    res = out.result
    assert res.best_epoch == 0 and "no epoch improved on the starting model" in res.stop_reason
    assert all(torch.equal(before[k], v) for k, v in res.model.state_dict().items())
    ck = out.checkpoint
    assert ck["training"]["best_epoch"] == 0 and ck["training"]["baseline"] == res.baseline
    assert ck["metrics"]["val_mse"] == pytest.approx(res.baseline["val_loss"])


def test_classifier_still_needs_two_classes(tmp_path):
    one = _folder(tmp_path / "one", sub="Mito")
    with pytest.raises(InputError, match=r"Only one class \('Mitochondria', 8 images\).*a classifier needs"):
        train_model(one, "classifier", cfg())
    with pytest.raises(InputError, match="not inside a class folder"):
        train_model(_folder(tmp_path / "plain"), "classifier", cfg())
    with pytest.raises(InputError, match="Unknown model kind 'gan'"):
        train_model(tmp_path / "missing", "gan", cfg())


# ---------------------------------------------------------------------------------------------
# audit fixes: no test split, data description in every checkpoint, names, fractions, classes
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cells4(tmp_path_factory):
    """3 simulated cells of 4 classes, 96x96 two-channel TIFFs (napari-organelle phantoms)."""
    from napari_organelle.phantoms import write_dataset

    out = tmp_path_factory.mktemp("cells4")
    write_dataset(out, per_class=3, seed=1, size=96, classes=["ER", "Lysosome", "Nucleus", "Mitochondria"])
    return out


@pytest.fixture
def tiny_clf10(tiny_checkpoints):
    return load_checkpoint(tiny_checkpoints["classifier"], name="tiny-clf")


def test_autoencoder_without_test_split_reports_validation_not_test(cells4, tiny_ae):
    out = train_model(cells4, "autoencoder", cfg(), init=tiny_ae, fractions=(0.7, 0.3, 0.0))
    m = out.checkpoint["metrics"]
    assert out.checkpoint["training"]["n_test"] == 0
    assert not [k for k in m if k.startswith("test_")]  # never validation figures under test_* names
    assert m["val_n_planes"] > 0 and m["val_planes_psnr"] > 0 and m["val_planes_mse"] > 0
    assert "no test split" in m["measured_on"] and "validation" in m["measured_on"]
    # with a test split the test figures are there (and no val_planes_*)
    out = train_model(cells4, "autoencoder", cfg(), init=tiny_ae, fractions=(0.4, 0.3, 0.3))
    m = out.checkpoint["metrics"]
    assert out.checkpoint["training"]["n_test"] > 0 and m["test_n_planes"] > 0 and "val_planes_psnr" not in m


def test_classifier_without_test_split_has_no_test_metrics(cells4):
    out = train_model(cells4, "classifier", cfg(), size=32, fractions=(0.7, 0.3, 0.0))
    m = out.checkpoint["metrics"]
    assert out.test_report is None and not [k for k in m if k.startswith("test_")]
    assert "val_accuracy" in m and "no test split" in m["measured_on"]


def test_every_checkpoint_records_the_data_and_command(cells4, tmp_path, organelle_home):
    from napari_organelle.checkpoints import list_models, save_user_model

    resume = tmp_path / "resume.pt"
    out = train_model(cells4, "classifier", cfg(), size=32, checkpoint_path=resume, command="napari-organelle train X")
    desc = out.data.description
    r = load_checkpoint(resume)  # written during training
    assert r.training_info["data"] == desc and r.training_info["command"] == "napari-organelle train X"
    assert "unknown data" not in r.card
    assert "test_accuracy" in out.checkpoint["metrics"]
    # saving the outcome, or its result, keeps the data, the command and the test metrics
    for obj, name in ((out, "from outcome"), (out.result, "from result")):
        lm = load_checkpoint(save_user_model(obj, name))
        assert lm.training_info["data"] == desc and lm.training_info["command"] == "napari-organelle train X"
        assert lm.metrics["test_accuracy"] == pytest.approx(out.checkpoint["metrics"]["test_accuracy"])
        assert lm.training_info["n_test"] == out.checkpoint["training"]["n_test"] > 0
        assert "unknown data" not in lm.card
    assert {m.name for m in list_models()} >= {"from outcome", "from result"}


def test_init_by_name_or_path_and_bad_init(cells4, tiny_checkpoints, organelle_home, tiny_clf10):
    from napari_organelle.checkpoints import CheckpointError, save_user_model

    save_user_model(tiny_clf10, "ft1")
    by_name = train_model(cells4, "classifier", cfg(), init="ft1")
    assert by_name.checkpoint["training"]["fine_tuned_from"] == "ft1"
    assert by_name.checkpoint["input_size"] == 64  # the model's input size
    by_path = train_model(cells4, "classifier", cfg(), init=str(tiny_checkpoints["classifier"]))
    assert by_path.result.baseline is not None
    with pytest.raises(CheckpointError, match="No classifier model named or at 'nope'"):
        train_model(cells4, "classifier", cfg(), init="nope")
    with pytest.raises(CheckpointError, match="autoencoder"):
        train_model(cells4, "autoencoder", cfg(), init="ft1")


@pytest.mark.parametrize("fractions,needle", [
    ((0.5, 0.5, 0.5), "add up to 1"),
    ((0.7, 0.3), "three"),
    ((1.2, -0.1, -0.1), "non-negative"),
    ((0.0, 0.5, 0.5), "training fraction"),
    (("a", 0.5, 0.5), "three numbers"),
    ((float("nan"), 0.5, 0.5), "non-negative"),
])
def test_bad_fractions_are_refused_before_loading(fractions, needle, tmp_path):
    with pytest.raises(InputError, match=needle):
        train_model(tmp_path / "not-even-loaded", "classifier", cfg(), fractions=fractions)


@pytest.mark.parametrize("size", [100000, 1025, 8, 0, -5, 32.5])
def test_absurd_input_sizes_are_refused(size, tmp_path):
    with pytest.raises(InputError, match="input size"):
        train_model(tmp_path / "not-even-loaded", "classifier", cfg(), size=size)


def test_keep_classes_matches_the_dock_default_replace_is_the_cli_default(cells4, tiny_clf10):
    from napari_organelle.classes import CLASSES
    from napari_organelle.recipes import fine_tune

    default = train_model(cells4, "classifier", cfg(), init=tiny_clf10, fractions=(0.7, 0.3, 0.0))
    assert default.result.classes == ["ER", "Lysosome", "Mitochondria", "Nucleus"]  # the data's classes
    kept = train_model(cells4, "classifier", cfg(), init=tiny_clf10, fractions=(0.7, 0.3, 0.0),
                       keep_classes=True)
    assert kept.result.classes == list(CLASSES) and kept.checkpoint["training"]["classes_kept"]
    dock = fine_tune(str(cells4), "classifier", cfg(), init=tiny_clf10, val_fraction=0.3)  # the dock's defaults
    assert dock.result.classes == kept.result.classes
    assert tiny_clf10.classes == list(CLASSES)  # the starting model is untouched
    with pytest.raises(InputError, match="keep_classes.*fine-tuning"):
        train_model(cells4, "classifier", cfg(), keep_classes=True)


def test_keep_classes_adds_new_classes_after_the_models(tmp_path, tiny_clf10):
    from napari_organelle.classes import CLASSES
    from napari_organelle.phantoms import write_dataset

    write_dataset(tmp_path, per_class=3, size=96, classes=["ER", "Nucleus"])
    (tmp_path / "Peroxisome").mkdir()
    for f in sorted((tmp_path / "ER").glob("*.tif")):
        (tmp_path / "Peroxisome" / f.name.replace("ER", "Peroxisome")).write_bytes(f.read_bytes())
    kept = train_model(tmp_path, "classifier", cfg(), init=tiny_clf10, keep_classes=True)
    assert kept.result.classes == [*CLASSES, "Peroxisome"]
    assert kept.checkpoint["training"]["classes_added"] == ["Peroxisome"]


def test_classes_left_out_of_validation_or_test_are_named_before_training(tmp_path):
    root = tmp_path / "unbalanced"
    _folder(root, n=20, sub="ER")
    _folder(root, n=1, sub="Mitochondria")
    seen = []
    out = train_model(root, "classifier", cfg(), size=32, on_data=lambda d: seen.append(list(d.warnings)))
    assert seen, "on_data is called once the data is split, before training"
    warned = " ".join(seen[0])
    assert "No validation image for Mitochondria (1 in all)" in warned
    assert "No test image for Mitochondria (1 in all)" in warned
    assert out.data.warnings == seen[0]


def test_evaluate_lists_the_files_it_left_out(cells4, tiny_clf10, tmp_path):
    import shutil

    from napari_organelle.recipes import evaluate

    root = tmp_path / "set"
    shutil.copytree(cells4, root)
    (root / "ER" / "broken.tif").write_bytes(b"II*\x00garbage")
    rep = evaluate(root, tiny_clf10)
    assert [str(f).endswith("broken.tif") for f, _ in rep.skipped] == [True]
    assert rep.to_dict()["skipped"][0][0].endswith("broken.tif")


def test_evaluate_takes_a_single_class(cells4, tiny_clf10, tmp_path):
    """A user's own ER cells: a folder holding one class folder, or the class folder itself."""
    import shutil

    from napari_organelle.recipes import evaluate

    one = tmp_path / "mine"
    shutil.copytree(cells4 / "ER", one / "ER")
    rep = evaluate(one, tiny_clf10)
    assert rep.n == 3 and list(rep.per_class) == ["ER"]
    assert np.asarray(rep.confusion).sum() == 3 and np.asarray(rep.confusion)[rep.classes.index("ER")].sum() == 3
    rep2 = evaluate(one / "ER", tiny_clf10)  # the class folder itself: its name is the class
    assert rep2.n == 3 and list(rep2.per_class) == ["ER"] and rep2.accuracy == rep.accuracy
    shutil.copytree(cells4 / "ER", tmp_path / "Foo")
    with pytest.raises(InputError, match="no class folders, and its name 'Foo' is not a class"):
        evaluate(tmp_path / "Foo", tiny_clf10)


def test_fine_tune_loads_a_path_for_the_kind_and_scores_the_validation_images(tmp_path):
    """One class is enough for the autoencoder only; a classifier gets its validation confusion matrix."""
    import tifffile

    from napari_organelle.checkpoints import LoadedModel
    from napari_organelle.models.registry import build_model
    from napari_organelle.phantoms import simulate_dataset
    from napari_organelle.recipes import fine_tune
    from napari_organelle.training import TrainConfig

    cells = simulate_dataset(6, seed=3, size=64, classes=("ER", "Mitochondria", "Nucleus"))
    folder = tmp_path / "one" / "ER"
    folder.mkdir(parents=True)
    for i, s in enumerate(cells.samples[:6]):
        tifffile.imwrite(folder / f"cell{i}.tif", s.protein)
    cfg = TrainConfig(epochs=1, batch_size=4, device="cpu", num_threads=1, crop_size=32)
    with pytest.raises(InputError, match="Only one class"):
        fine_tune(str(tmp_path / "one"), "classifier", cfg)
    ae = build_model("autoencoder", "organelle-ae", channels=(8, 16), latent_channels=4).eval()
    init = LoadedModel(ae, "autoencoder", "organelle-ae", None, 32, name="tiny")
    out = fine_tune(str(tmp_path / "one"), "autoencoder", cfg, init=init)
    assert out.result is not None and out.n_train + out.n_val == 6 and out.result.baseline is not None
    assert out.confusion is None and "tiny" in out.summary()
    clf = fine_tune(cells, "classifier", TrainConfig(epochs=1, batch_size=4, device="cpu", num_threads=1),
                    val_fraction=0.5, size=32, arch="organelle-cnn")
    assert clf.confusion.shape == (3, 3) and clf.confusion.sum() == clf.n_val == 9
    assert clf.val_accuracy == pytest.approx(np.trace(clf.confusion) / 9)


def test_chance_warning_names_what_is_wrong():
    from napari_organelle.recipes import chance_warning

    classes = ["ER", "Golgi_gia", "Nucleus"]
    one_answer = np.array([[3, 0, 0], [3, 0, 0], [3, 0, 0]])
    assert "answers ER for every validation image" in chance_warning(one_answer, classes)
    guessing = np.array([[1, 1, 1], [1, 1, 1], [2, 1, 0]])  # 2/9 = 22 %, guessing gives 33 %
    assert "about what guessing gives (33%)" in chance_warning(guessing, classes, scratch=True)
    assert "instead of starting from scratch" in chance_warning(guessing, classes, scratch=True)
    assert chance_warning(np.diag([3, 3, 3]), classes) == ""
    assert chance_warning(np.array([[5, 1, 0], [1, 4, 1], [0, 2, 4]]), classes) == ""  # 72 %: learning


def test_fine_tuning_a_model_that_already_knows_the_cells_keeps_it_and_says_so():
    """The bundled classifier on simulated cells like its own (seed 3: all 6 validation cells right),
    fine-tuned with a learning rate far too high so that the epoch can only be worse: it is returned
    unchanged, and the summary says to keep using it. (With a sensible rate the epoch may lower the
    validation loss of a model that is already right, and then it is a new model.)"""
    from napari_organelle.checkpoints import load_bundled
    from napari_organelle.phantoms import simulate_dataset
    from napari_organelle.recipes import fine_tune

    data = simulate_dataset(8, seed=3, classes=("ER", "Mitochondria", "Nucleus"))
    out = fine_tune(data, "classifier", TrainConfig(epochs=1, batch_size=16, lr=0.5, device="cpu", num_threads=1),
                    init=load_bundled("classifier"))
    assert out.result.baseline["val_accuracy"] == 1.0 and not out.has_new_model and out.warning == ""
    text = out.summary()
    assert "No epoch improved on the starting model (bundled-classifier: val accuracy 100.0%" in text
    assert "already classifies these validation images correctly: keep using it" in text
