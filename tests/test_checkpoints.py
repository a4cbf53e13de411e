import os
import pickle

import pytest
import torch

from napari_organelle import checkpoints as ck
from napari_organelle.checkpoints import (CheckpointError, LoadedModel, checkpoint_dict, list_models,
                                          load_checkpoint, resolve_model, save_checkpoint, save_user_model,
                                          user_models_dir)
from napari_organelle.models import build_model
from napari_organelle.preprocess import OrganelleError

CLS3 = ["ER", "Golgi_gia", "Nucleus"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def tiny_clf(n=3):
    torch.manual_seed(0)
    return build_model("classifier", num_classes=n, stem=8, widths=(8, 16), blocks=(1, 1)).eval()


def tiny_ae():
    torch.manual_seed(0)
    return build_model("autoencoder", channels=(8, 16), latent_channels=4).eval()


def save_clf(path, n=3, classes=None):
    return save_checkpoint(path, tiny_clf(n), kind="classifier", arch="organelle-cnn",
                           classes=classes or CLS3[:n], input_size=32,
                           training={"data": "unit-test cells", "n_train": 8, "n_val": 4, "epochs": 1},
                           metrics={"val_accuracy": 0.75, "val_data": "4 held-out test cells"})


def test_round_trip_identical_outputs(tmp_path):
    m = tiny_clf()
    p = save_checkpoint(tmp_path / "m.pt", m, kind="classifier", arch="organelle-cnn", classes=CLS3,
                        input_size=32, training={"data": "unit"}, metrics={"val_accuracy": 0.5})
    lm = load_checkpoint(p, expected_kind="classifier", expected_classes=3)
    assert isinstance(lm, LoadedModel) and not lm.model.training
    assert lm.classes == CLS3 and lm.input_size == 32 and lm.arch == "organelle-cnn" and lm.name == "m"
    assert "state_dict" not in lm.meta and lm.meta["format"] == ck.FORMAT
    x = torch.rand(2, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(m(x), lm.model(x))
    card = lm.card
    assert "m:" in card and "unit" in card and "50.00%" in card and "Date:" in card
    # dict input works too, and torch.load(weights_only=True) reads the file
    d = torch.load(p, map_location="cpu", weights_only=True)
    assert load_checkpoint(d).kind == "classifier"

    ae = tiny_ae()
    p2 = save_checkpoint(tmp_path / "ae.pt", ae, kind="autoencoder", arch="organelle-ae", input_size=96,
                         training={"data": "unit"}, metrics={"val_psnr": 30.5})
    la = load_checkpoint(p2, expected_kind="autoencoder")
    y = torch.rand(1, 1, 40, 33)
    with torch.no_grad():
        assert torch.equal(ae(y), la.model(y))
    assert la.classes is None and "30.5 dB" in la.card


def test_card_names_each_figures_data_and_the_real_cell_figures(tmp_path):
    metrics = {"val_accuracy": 0.8, "indep_a_accuracy": 0.79, "indep_a_data": "cells of renderer indep_a",
               "indep_data": "not this one", "real_cells": {"hpa | protein+dna": {"cells": 53, "accuracy": 0.736}},
               "real_cells_data": "real micrographs"}
    p = save_checkpoint(tmp_path / "m.pt", tiny_clf(), kind="classifier", arch="organelle-cnn", classes=CLS3,
                        input_size=32, training={"data": "unit"}, metrics=metrics)
    card = load_checkpoint(p).card
    assert "Measured on cells of renderer indep_a: indep_a_accuracy 79.00%" in card  # the longest prefix
    assert "not this one" not in card
    assert "Measured on real micrographs: hpa | protein+dna 73.6% of 53 cells" in card


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file when unpickled


def test_refuses_code(tmp_path):
    marker = tmp_path / "PWNED"
    ckpt = checkpoint_dict(tiny_clf(), kind="classifier", arch="organelle-cnn", classes=CLS3,
                           training={}, metrics={})
    ckpt["payload"] = _Evil(str(marker))
    p = tmp_path / "evil.pt"
    torch.save(ckpt, p)
    with pytest.raises(CheckpointError, match="contains code"):
        load_checkpoint(p)
    assert not marker.exists()
    # a legacy (non-zip) pickle too
    p2 = tmp_path / "evil2.pt"
    with open(p2, "wb") as f:
        pickle.dump({"x": _Evil(str(marker))}, f)
    with pytest.raises(CheckpointError, match="code"):
        load_checkpoint(p2)
    assert not marker.exists()


def test_truncated_missing_and_junk(tmp_path):
    p = save_clf(tmp_path / "ok.pt")
    data = p.read_bytes()
    t = tmp_path / "trunc.pt"
    t.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(t)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "junk.pt").write_bytes(b"this is not a model at all")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="No model file"):
        load_checkpoint(tmp_path / "nothing.pt")
    assert issubclass(CheckpointError, OrganelleError)


def test_wrong_kind_and_classes(tmp_path):
    p = save_clf(tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="is a classifier checkpoint; choose an autoencoder"):
        load_checkpoint(p, expected_kind="autoencoder")
    p2 = save_checkpoint(tmp_path / "a.pt", tiny_ae(), kind="autoencoder", arch="organelle-ae",
                         training={}, metrics={})
    with pytest.raises(CheckpointError, match="is an autoencoder checkpoint; choose a classifier"):
        load_checkpoint(p2, expected_kind="classifier")
    with pytest.raises(CheckpointError, match="predicts 3 classes; 10"):
        load_checkpoint(p, expected_classes=10)
    with pytest.raises(CheckpointError, match="not the expected"):
        load_checkpoint(p, expected_classes=["ER", "Nucleus", "Golgi_gia"])
    assert load_checkpoint(p, expected_classes=CLS3).classes == CLS3


def test_not_a_checkpoint_and_inconsistent(tmp_path):
    sd = tiny_clf().state_dict()
    torch.save(sd, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a napari-organelle checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a napari-organelle checkpoint"):
        load_checkpoint({"hello": 1})
    good = checkpoint_dict(tiny_clf(), kind="classifier", arch="organelle-cnn", classes=CLS3,
                           training={}, metrics={})
    bad = dict(good, classes=["a", "b"])
    with pytest.raises(CheckpointError, match="classes"):
        load_checkpoint(bad)
    bad = dict(good, format_version=99)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(bad)
    bad = dict(good, arch="vit-huge")
    with pytest.raises(CheckpointError, match="does not know"):
        load_checkpoint(bad)
    sd = dict(good["state_dict"])
    sd["head.weight"] = torch.zeros(3, 99)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_checkpoint(dict(good, state_dict=sd))
    sd = dict(good["state_dict"])
    sd.pop("head.bias")
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(dict(good, state_dict=sd))


def test_atomic_save(tmp_path, monkeypatch):
    p = save_clf(tmp_path / "model.pt")
    before = p.read_bytes()
    assert [f.name for f in tmp_path.iterdir()] == ["model.pt"]

    real_save = torch.save

    def broken_save(obj, f, *a, **k):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_clf(tmp_path / "model.pt", n=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["model.pt"]  # no temp file left
    assert load_checkpoint(p).classes == CLS3


def test_store(tmp_path, monkeypatch, organelle_home):
    monkeypatch.setenv("NAPARI_ORGANELLE_HOME", str(tmp_path / "store"))
    assert user_models_dir() == tmp_path / "store"
    monkeypatch.setattr(ck, "BUNDLED_DIR", tmp_path / "no-bundled")
    ck.clear_cache()
    assert list_models() == []
    with pytest.raises(CheckpointError, match="bundled classifier weights were not found.*reinstall"):
        resolve_model(None, "classifier")

    lm = load_checkpoint(save_clf(tmp_path / "x.pt"))
    path = save_user_model(lm, "my cells")
    assert path == tmp_path / "store" / "my cells.pt"
    with pytest.raises(CheckpointError, match="already exists"):
        save_user_model(lm, "my cells")
    save_user_model(lm, "my cells", overwrite=True)
    with pytest.raises(CheckpointError, match="not a usable model name"):
        save_user_model(lm, "../escape")
    (tmp_path / "store" / "broken.pt").write_bytes(b"nope")
    ae_path = save_checkpoint(tmp_path / "store" / "ae1.pt", tiny_ae(), kind="autoencoder",
                              arch="organelle-ae", training={}, metrics={})
    names = {m.name: m for m in list_models()}
    assert set(names) == {"my cells", "broken", "ae1"}
    assert names["broken"].error and "unreadable" in names["broken"].summary
    assert names["my cells"].kind == "classifier" and not names["my cells"].bundled
    assert "3 classes" in names["my cells"].summary
    # unreadable files are listed whatever kind is asked for (their kind is unknown)
    assert [m.name for m in list_models("autoencoder")] == ["ae1", "broken"]

    r = resolve_model("my cells", "classifier")
    assert r.name == "my cells" and r.classes == CLS3
    assert resolve_model(str(ae_path), "autoencoder").kind == "autoencoder"
    with pytest.raises(CheckpointError, match="autoencoder checkpoint"):
        resolve_model("ae1", "classifier")
    with pytest.raises(CheckpointError, match="No classifier model"):
        resolve_model("unknown-name", "classifier")

    # bundled models: found, cached, listed
    bdir = tmp_path / "bundled"
    monkeypatch.setattr(ck, "BUNDLED_DIR", bdir)
    save_clf(bdir / "classifier.pt")
    b1 = resolve_model(None, "classifier")
    assert b1.name == "bundled-classifier" and resolve_model("bundled-classifier") is b1
    assert any(m.bundled and m.name == "bundled-classifier" for m in list_models("classifier"))
    ck.clear_cache()


@pytest.mark.parametrize("name", ["ER (v2)", "modèle_été", "my+model, 2024", "細胞"])
def test_every_listed_name_resolves(name, tmp_path, monkeypatch, organelle_home):
    """A file the store lists (copied in by hand, or saved by save_user_model) loads by that name."""
    store = user_models_dir()
    store.mkdir(parents=True, exist_ok=True)
    save_clf(store / f"{name}.pt")
    assert name in [m.name for m in list_models()]
    lm = resolve_model(name, "classifier")
    assert lm.name == name and lm.classes == CLS3
    assert resolve_model(f"  {name} ", "classifier").name == name  # surrounding spaces, as typed
    assert resolve_model(name, None).kind == "classifier"  # kind: whatever the name is
    (store / f"{name}.pt").unlink()
    p = save_user_model(lm, name)  # and save_user_model accepts the same names
    assert p == store / f"{name}.pt" and resolve_model(name).name == name


def test_names_in_another_unicode_form_resolve(organelle_home):
    import unicodedata

    store = user_models_dir()
    store.mkdir(parents=True, exist_ok=True)
    save_clf(store / (unicodedata.normalize("NFD", "modèle") + ".pt"))  # as macOS stores file names
    assert resolve_model(unicodedata.normalize("NFC", "modèle"), "classifier").classes == CLS3


def test_names_never_reach_outside_the_store(tmp_path, monkeypatch, organelle_home):
    monkeypatch.chdir(tmp_path)
    store = user_models_dir()
    store.mkdir(parents=True, exist_ok=True)
    save_clf(store.parent / "outside.pt")
    (store / "sub").mkdir()
    save_clf(store / "sub" / "inner.pt")
    rel = os.path.relpath(store.parent / "outside", store)  # '../outside' seen from the store
    for name in (rel, "sub/inner", "..", ".", "sub\\inner"):  # ('.', '..': the working folder's, a folder)
        with pytest.raises(CheckpointError, match="No classifier model named or at|is a folder"):
            resolve_model(name, "classifier")
    lm = load_checkpoint(save_clf(tmp_path / "x.pt"))
    for bad in ("../escape", "a/b", "a\\b", ".", "..", ".hidden", "x" * 101, "tab\there", "what?", ""):
        with pytest.raises(CheckpointError, match="not a usable model name"):
            save_user_model(lm, bad)
    assert sorted(p.name for p in store.iterdir()) == ["sub"]


def test_a_local_file_wins_over_a_stored_model_of_the_same_name(tmp_path, monkeypatch, organelle_home):
    import torch

    from napari_organelle.models.registry import build_model

    def ckpt(path, seed):
        torch.manual_seed(seed)
        m = build_model("classifier", num_classes=3)
        return save_checkpoint(path, m.eval(), kind="classifier", arch="organelle-cnn", classes=["a", "b", "c"], input_size=32,
                               training={"data": f"seed {seed}"})

    stored = save_user_model(load_checkpoint(ckpt(tmp_path / "s.pt", 1)), "model")
    monkeypatch.chdir(tmp_path)
    ckpt(tmp_path / "model.pt", 2)  # retrained next to the stored copy
    assert resolve_model("model.pt", "classifier").training_info["data"] == "seed 2"  # the file given
    assert resolve_model("model", "classifier").path == stored                       # the store's, by name
    (tmp_path / "model.pt").unlink()
    assert resolve_model("model.pt", "classifier").path == stored  # no such file here: the store's
