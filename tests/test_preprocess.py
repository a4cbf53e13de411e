import numpy as np
import pytest

from napari_organelle.preprocess import (
    InputError, as_plane, block_reduce_to, fits_batched, normalize, prepare_batch, prepare_native, prepare_pair,
    split_channels, stack_for_batch, validate_pair,
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


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.int32, np.float32, np.float64, np.uint32])
@pytest.mark.parametrize("shape", [(96, 96), (50, 70), (40, 40), (300, 260)])
def test_batched_device_preparation_equals_prepare_pair(dtype, shape):
    """prepare_batch (the GPU-side path, run here on the CPU) gives what prepare_pair gives, plane by
    plane: downsampling, upsampling, non-square padding, every dtype, missing DNA, near-constant DNA."""
    rng = np.random.default_rng(7)
    scale = 60000 if dtype in (np.uint16, np.int32, np.uint32, np.float32, np.float64) else 250
    pairs = []
    for k in range(5):
        p = (rng.gamma(1.5, 1.0, shape) / 12 * scale).clip(0, scale).astype(dtype)
        d = (rng.random(shape) * scale).astype(dtype)
        if k == 1:
            d = None                      # no DNA image
        elif k == 2:
            d = np.zeros(shape, dtype)    # constant DNA -> zeros
            d[0, 0] = 9                   # ... all but one pixel: percentiles equal, max differs
        pairs.append((p, d))
    assert all(fits_batched(p, 128) for p, _ in pairs)
    raw = stack_for_batch(pairs)
    assert raw.shape == (5, 2) + shape
    if dtype in (np.uint16, np.uint8, np.int32):
        assert raw.dtype == dtype  # sent to the device as is: 2 bytes a pixel for uint16
    got = prepare_batch(raw, size=128).numpy()
    want = np.stack([prepare_pair(p, d, size=128) for p, d in pairs])
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_fits_batched_sends_the_rest_to_the_one_at_a_time_path():
    assert fits_batched(np.zeros((382, 382), np.uint16), 128)
    assert not fits_batched(np.zeros((600, 600), np.uint16), 128)      # would be block-reduced first
    assert not fits_batched(np.zeros((1100, 1000), np.uint16), 512)     # percentiles would be subsampled
    img = np.ones((64, 64), np.float32)
    img[3, 3] = np.nan
    assert not fits_batched(img, 128)                                    # NaN handling lives in normalize


def test_validate_pair_names_the_problem():
    img = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    p, d = validate_pair(img, None)
    assert p is img and d is None                                        # a view, no copy
    with pytest.raises(InputError, match="constant"):
        validate_pair(np.full((64, 64), 3, np.uint16))
    with pytest.raises(InputError, match="same cell"):
        validate_pair(img, img[:32])


def test_split_channels_uses_the_axes_the_file_declares():
    a = np.arange(2 * 20 * 30, dtype=np.uint16).reshape(2, 20, 30)
    # without axes (or tifffile's "unknown" Q / I axes) the shape decides, as before
    for axes in (None, "QYX", "IYX", "YX"):  # "YX" has the wrong length: ignored
        p, d = split_channels(a, axes=axes)
        assert p.shape == (20, 30) and d is not None
    p, d = split_channels(a, axes="CYX")
    assert np.array_equal(p, a[0]) and np.array_equal(d, a[1])
    p, d = split_channels(np.moveaxis(a, 0, -1), axes="YXC")
    assert np.array_equal(p, a[0]) and np.array_equal(d, a[1])
    with pytest.raises(InputError, match=r"z\.tif is a z-stack \(Z=2; .*max-project it"):
        split_channels(a, name="z.tif", axes="ZYX")
    with pytest.raises(InputError, match=r"is a time series \(T=2"):
        split_channels(a, axes="TYX")
    with pytest.raises(InputError, match=r"2-channel z-stack \(Z=3, C=2.*keeping both channels"):
        split_channels(np.stack([a] * 3), axes="ZCYX")
    with pytest.raises(InputError, match=r"stack of 2 angles"):
        split_channels(a, axes="AYX")
    # planar RGB (samples first) is RGB like interleaved RGB; 3 channels are not
    rgb = np.stack([a[0], a[1], a[0]])
    p, d = split_channels(rgb, axes="SYX")
    assert p.shape == (20, 30, 3) and d is None and as_plane(p).shape == (20, 30)
    p, d = split_channels(np.moveaxis(rgb, 0, -1), axes="YXS")
    assert p.shape == (20, 30, 3) and d is None
    with pytest.raises(InputError, match=r"c3\.tif has 3 channels \(shape 3x20x30, axes CYX.*separate files"):
        split_channels(rgb, name="c3.tif", axes="CYX")
    # singleton axes are dropped: a 1-slice z-stack is a 2D image
    p, d = split_channels(a[:1], axes="ZYX")
    assert p.shape == (20, 30) and d is None
    # no axes and 3 or 5 planes: says what is unknown and what to do
    with pytest.raises(InputError, match=r"s\.tif holds 3 planes of 20x30 .*does not say.*RGB"):
        split_channels(rgb, name="s.tif")
    with pytest.raises(InputError, match=r"4 dimensions"):
        split_channels(np.zeros((2, 3, 20, 30)))
