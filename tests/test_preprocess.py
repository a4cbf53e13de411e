import numpy as np
import pytest

from napari_organelle.preprocess import (
    InputError, as_plane, block_reduce_to, normalize, prepare_native, prepare_pair, split_channels,
)


def test_normalize_percentiles_and_clip():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 4000, (64, 64)).astype(np.uint16)
    out = normalize(img)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    lo, hi = np.percentile(img, [1, 99.8])
    assert np.isclose(out[img == img.flat[0]][0], np.clip((img.flat[0] - lo) / (hi - lo), 0, 1), atol=1e-5)


def test_nan_inf_are_ignored_and_zeroed():
    img = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
    img[0, 0], img[0, 1], img[0, 2] = np.nan, np.inf, -np.inf
    out = normalize(img)
    assert np.isfinite(out).all() and out[0, 0] == 0 and out[0, 1] == 0
    assert out.max() == 1.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.float16, np.float64, bool])
def test_prepare_pair_any_dtype(dtype):
    rng = np.random.default_rng(1)
    img = (rng.random((50, 70)) > 0.5) if dtype is bool else (rng.random((50, 70)) * 200).astype(dtype)
    x = prepare_pair(img, img, size=32)
    assert x.shape == (2, 32, 32) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1 and x[1].max() > 0


def test_aspect_kept_and_padded():
    img = np.ones((40, 80), np.float32)
    img[::2] = 0
    x = prepare_pair(img, size=32)
    # 40x80 -> 16x32 centred: rows 0-7 and 24-31 are padding
    assert x[0, :8].max() == 0 and x[0, 24:].max() == 0 and x[0, 8:24].max() > 0
    assert x[1].max() == 0  # no DNA -> zero channel


def test_rgb_and_channel_first():
    rgb = np.zeros((30, 30, 3), np.uint8)
    rgb[10:20, 10:20, 1] = 200
    assert as_plane(rgb).shape == (30, 30) and as_plane(rgb).max() == 200
    cyx = np.stack([np.zeros((30, 30)), np.ones((30, 30))])
    assert as_plane(cyx, channel=1).max() == 1
    with pytest.raises(InputError, match="two channels"):
        as_plane(cyx)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((0, 10)), "empty"),
    (np.zeros((1, 1)), "at least"),
    (np.zeros((5, 30, 30)), "stack"),
    (np.zeros((2, 5, 30, 30)), "stack"),
    (np.zeros(10), "one-dimensional"),
    (np.array([["a"]]), "dtype"),
])
def test_bad_inputs_raise_clear_errors(bad, match):
    with pytest.raises(InputError, match=match):
        as_plane(bad)


def test_constant_and_mismatch():
    with pytest.raises(InputError, match="constant"):
        prepare_pair(np.full((20, 20), 7), size=16)
    with pytest.raises(InputError, match="same cell"):
        prepare_pair(np.random.rand(20, 20), np.random.rand(21, 20), size=16)


def test_huge_image_is_reduced_without_full_float_copy():
    big = np.zeros((6000, 5000), np.uint16)
    big[1000:5000, 1000:4000] = 1000
    x = prepare_pair(big, size=64)
    assert x.shape == (2, 64, 64) and x[0].max() == 1.0
    r = block_reduce_to(big, 1000)
    assert max(r.shape) <= 1000
    nat, f = prepare_native(big, max_side=1500)
    assert f == 4 and max(nat.shape[1:]) <= 1500


def test_split_channels():
    a = np.zeros((2, 20, 20))
    p, d = split_channels(a)
    assert p.shape == (20, 20) and d is not None
    p, d = split_channels(np.zeros((20, 20, 2)))
    assert d is not None
    p, d = split_channels(np.zeros((20, 20)))
    assert d is None
    with pytest.raises(InputError):
        split_channels(np.zeros((5, 20, 20)))
