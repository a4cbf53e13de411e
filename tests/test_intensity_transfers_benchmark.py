"""benchmarks/intensity_transfers.py: its test family of transfers, and its accuracies on a tiny model."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "intensity_transfers.py"


@pytest.fixture(scope="module")
def it():
    spec = importlib.util.spec_from_file_location("intensity_transfers_bench", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_test_family_is_monotone_keeps_the_ends_and_the_dna_and_is_reproducible(it):
    ramp = np.linspace(0, 255, 32 * 32).reshape(32, 32).astype(np.uint8)
    X = np.stack([np.stack([ramp, 255 - ramp])] * 40)  # (40, 2, 32, 32)
    out = it.test_family(X)
    assert out.dtype == np.float32 and out.shape == X.shape
    np.testing.assert_array_equal(out, it.test_family(X))  # the same seed, the same transfers
    np.testing.assert_allclose(out[:, 1], X[:, 1] / 255, atol=1e-7)  # DNA untouched
    p = out[:, 0].reshape(40, -1)
    assert np.all(np.diff(p, axis=1) >= -1e-6)  # monotone along the ramp
    np.testing.assert_allclose(p[:, 0], 0, atol=1e-6)
    np.testing.assert_allclose(p[:, -1], 1, atol=1e-6)
    mids = p[:, p.shape[1] // 2]
    assert mids.std() > 0.05  # the cells get different curves
    assert np.any(np.abs(mids - 0.5) > 0.1)


def test_accuracies_with_and_without_rotations(it, tiny_checkpoints):
    from napari_organelle.inference import load_model

    model = load_model(tiny_checkpoints["classifier"], "classifier").model.eval()
    rng = np.random.default_rng(0)
    X = (rng.random((12, 2, 64, 64)) * 255).astype(np.uint8)
    y = rng.integers(0, 10, 12)
    acc = it.accuracies(model, X, y, tta=True)
    assert set(acc) == {"protein+dna", "protein+dna, tta", "protein only", "protein only, tta"}
    assert all(0.0 <= v <= 1.0 for v in acc.values())
    # the plain figure is the model's own argmax on the cells as given
    import torch

    from napari_organelle.calibration import features_and_logits

    with torch.inference_mode():
        want = float((features_and_logits(model, X)[1].argmax(1).numpy() == y).mean())
    assert acc["protein+dna"] == pytest.approx(want)
