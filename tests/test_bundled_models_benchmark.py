"""benchmarks/bundled_models.py: the validation copy through training's intensity family (val_transfer)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bundled_models.py"


@pytest.fixture(scope="module")
def bm():
    spec = importlib.util.spec_from_file_location("bundled_models_bench", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_transferred_copy_is_monotone_per_cell_and_channel_keeps_the_ends_and_is_reproducible(bm):
    ramp = np.linspace(0, 255, 24 * 24).round().reshape(24, 24).astype(np.uint8)
    X = np.stack([np.stack([ramp, ramp])] * 300)  # (300, 2, 24, 24): more than one chunk of 256
    out = bm.transferred_copy(X)
    assert out.dtype == np.uint8 and out.shape == X.shape
    np.testing.assert_array_equal(out, bm.transferred_copy(X))  # fixed seed: the same copy every run
    assert not np.array_equal(out, bm.transferred_copy(X, seed=100))
    p = out.reshape(300, 2, -1).astype(int)
    assert np.all(np.diff(p, axis=2) >= 0)  # each curve is monotone
    assert np.all(p[..., 0] == 0) and np.all(p[..., -1] == 255)  # 0 stays 0, 1 stays 1
    mids = p[..., p.shape[2] // 2]
    assert mids.std() > 10  # different curves for different cells ...
    assert np.mean(mids[:, 0] != mids[:, 1]) > 0.9  # ... and for the two channels of a cell
    assert np.mean(mids[256:, 0] != mids[:44, 0]) > 0.5  # the second chunk is not the first again
    mild = bm.transferred_copy(X, wide=False).reshape(300, 2, -1)[..., p.shape[2] // 2].astype(int)
    assert np.abs(mild - 128).max() < np.abs(mids - 128).max()  # mild: gamma 0.7-1.43 only
