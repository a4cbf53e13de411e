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
    out = train_model(_folder(tmp_path / "plain"), "autoencoder", cfg(epochs=2, lr=50.0), init=tiny_ae)
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
