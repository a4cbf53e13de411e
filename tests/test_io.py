"""io.read_image / read_pair: formats, bit depths, bytes input and clear errors for broken files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_organelle.io import (
    IMAGE_SUFFIXES, is_image_name, iter_read_pairs, read_image, read_image_axes, read_pair,
)
from napari_organelle.preprocess import InputError

RNG = np.random.default_rng(0)


def _u16(shape=(382, 512)):
    return RNG.integers(0, 4096, shape).astype(np.uint16)


def _u8(shape=(382, 512)):
    return RNG.integers(0, 256, shape).astype(np.uint8)


def _png_bytes(arr, mode=None):
    b = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(b, format="PNG") if mode else Image.fromarray(arr).save(b, format="PNG")
    return b.getvalue()


def test_suffixes():
    assert IMAGE_SUFFIXES == (".tif", ".tiff", ".png", ".jpg", ".jpeg")
    assert is_image_name("dna/DNA_001.TIF") and is_image_name("a.JPeG") and not is_image_name("a.txt")


def test_tiff_uint16_from_path_and_bytes(tmp_path):
    a = _u16()
    p = tmp_path / "cell.tif"
    tifffile.imwrite(p, a)
    r = read_image(p)
    assert r.dtype == np.uint16 and r.shape == (382, 512) and np.array_equal(r, a)
    r2 = read_image(p.read_bytes(), name="x.zip::cell.tif")
    assert np.array_equal(r2, a)
    r3 = read_image(str(p))
    assert np.array_equal(r3, a)


def test_big_endian_tiff_becomes_native(tmp_path):
    a = _u16((64, 80))
    p = tmp_path / "be.tiff"
    tifffile.imwrite(p, a, byteorder=">")
    r = read_image(p)
    assert r.dtype.isnative and np.array_equal(r, a)


def test_two_channel_tiff_read_pair(tmp_path):
    a = np.stack([_u16(), _u16()])
    p = tmp_path / "two.tif"
    tifffile.imwrite(p, a)
    prot, dna = read_pair(p)
    assert prot.shape == dna.shape == (382, 512)
    assert np.array_equal(prot, a[0]) and np.array_equal(dna, a[1])
    single = tmp_path / "one.tif"
    tifffile.imwrite(single, a[0])
    p2, d2 = read_pair(single)
    assert d2 is None and np.array_equal(p2, a[0])


def test_png_8_and_16_bit(tmp_path):
    a16 = _u16()
    p = tmp_path / "c16.png"
    p.write_bytes(_png_bytes(a16))
    r = read_image(p)
    assert r.dtype == np.uint16 and np.array_equal(r, a16)
    assert r.flags.writeable
    a8 = _u8()
    p8 = tmp_path / "c8.png"
    p8.write_bytes(_png_bytes(a8))
    r8 = read_image(p8)
    assert r8.dtype == np.uint8 and np.array_equal(r8, a8)


def test_png_rgb_palette_and_grey_alpha(tmp_path):
    rgb = _u8((40, 50, 3))
    p = tmp_path / "rgb.png"
    p.write_bytes(_png_bytes(rgb))
    r = read_image(p)
    assert r.shape == (40, 50, 3) and np.array_equal(r, rgb)
    prot, dna = read_pair(p)
    assert dna is None and prot.shape == (40, 50, 3)

    pal = Image.fromarray(_u8((40, 50))).convert("P")
    b = io.BytesIO()
    pal.save(b, format="PNG")
    r = read_image(b.getvalue(), name="pal.png")
    assert r.shape == (40, 50, 3)

    la = Image.fromarray(_u8((40, 50))).convert("LA")
    b = io.BytesIO()
    la.save(b, format="PNG")
    r = read_image(b.getvalue(), name="la.png")
    assert r.shape == (40, 50)


def test_jpeg_grey_and_rgb(tmp_path):
    g = tmp_path / "g.jpg"
    Image.fromarray(_u8()).save(g, quality=95)
    r = read_image(g)
    assert r.dtype == np.uint8 and r.shape == (382, 512)
    c = tmp_path / "c.jpeg"
    Image.fromarray(_u8((382, 512, 3))).save(c)
    r = read_image(c)
    assert r.shape == (382, 512, 3)


def test_format_from_content_not_suffix(tmp_path):
    a = _u16((30, 40))
    p = tmp_path / "really_a_png.tif"
    p.write_bytes(_png_bytes(a))
    assert np.array_equal(read_image(p), a)


@pytest.mark.parametrize("content,expect", [
    (b"", "empty (0 bytes)"),
    (b"hello, these are notes about the cells\n", "not an image"),
    (b"\x00" * 100, "not an image"),
])
def test_bad_files_raise_with_name(tmp_path, content, expect):
    p = tmp_path / "bad_file.tif"
    p.write_bytes(content)
    with pytest.raises(InputError) as ei:
        read_image(p)
    assert "bad_file.tif" in str(ei.value) and expect in str(ei.value)
    with pytest.raises(InputError) as ei:
        read_image(content, name="arch.zip::bad_file.tif")
    assert "arch.zip::bad_file.tif" in str(ei.value)


def test_corrupt_and_truncated_tiff(tmp_path):
    p = tmp_path / "corrupt.tif"
    p.write_bytes(b"II*\x00" + bytes(RNG.integers(0, 256, 500, dtype=np.uint8)))
    with pytest.raises(InputError, match="corrupt.tif.*corrupt or truncated"):
        read_image(p)
    b = io.BytesIO()
    tifffile.imwrite(b, _u16())
    t = tmp_path / "trunc.tif"
    t.write_bytes(b.getvalue()[: len(b.getvalue()) // 2])
    with pytest.raises(InputError, match="trunc.tif"):
        read_image(t)


def test_truncated_png_and_jpeg(tmp_path):
    data = _png_bytes(_u16())
    p = tmp_path / "trunc.png"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="trunc.png.*PNG file is (truncated|corrupt)"):
        read_image(p)
    b = io.BytesIO()
    Image.fromarray(_u8()).save(b, format="JPEG")
    j = tmp_path / "trunc.jpg"
    j.write_bytes(b.getvalue()[: len(b.getvalue()) // 3])
    with pytest.raises(InputError, match="trunc.jpg"):
        read_image(j)


def test_missing_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "nope.tif")
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)


def test_three_channel_stack_read_pair_error(tmp_path):
    p = tmp_path / "stack.tif"
    tifffile.imwrite(p, np.stack([_u16((40, 50))] * 5))
    assert read_image(p).shape == (5, 40, 50)
    with pytest.raises(InputError, match="stack.tif"):
        read_pair(p)


@pytest.mark.parametrize("workers", [1, 4])
def test_iter_read_pairs_in_order_with_errors_in_place(tmp_path, workers):
    rng = np.random.default_rng(0)
    files, dnas = [], []
    for i in range(9):
        f, d = tmp_path / f"p{i}.tif", tmp_path / f"d{i}.tif"
        tifffile.imwrite(f, (rng.random((24, 24)) * 1000 + i).astype(np.uint16))
        tifffile.imwrite(d, (rng.random((24, 24)) * 500).astype(np.uint16))
        files.append(f)
        dnas.append(d)
    (tmp_path / "p3.tif").write_bytes(b"garbage")
    tifffile.imwrite(tmp_path / "p6.tif", np.full((24, 24), 7, np.uint16))
    out = list(iter_read_pairs(files, dnas, workers=workers, prefetch=3))
    assert [f for f, _, _ in out] == files
    for i, (f, planes, err) in enumerate(out):
        if i in (3, 6):
            assert planes is None and isinstance(err, InputError)
            assert ("p3.tif" in str(err)) if i == 3 else ("constant" in str(err))
        else:
            assert err is None
            np.testing.assert_array_equal(planes[0], tifffile.imread(f))
            np.testing.assert_array_equal(planes[1], tifffile.imread(dnas[i]))
    gen = iter_read_pairs(files, None, workers=workers, prefetch=2)
    assert next(gen)[0] == files[0]
    gen.close()  # a consumer that stops early leaves no thread behind
    import threading
    import time

    t0 = time.monotonic()
    while any(t.name.startswith("organelle-read") for t in threading.enumerate()) and time.monotonic() - t0 < 5:
        time.sleep(0.01)
    assert not any(t.name.startswith("organelle-read") for t in threading.enumerate())
    with pytest.raises(InputError, match="one DNA file per protein file"):
        list(iter_read_pairs(files, dnas[:2]))


def test_read_image_axes_from_imagej_ome_tifffile_and_pillow(tmp_path):
    a, b = _u16((30, 40)), _u16((30, 40))
    cases = {
        "z.tif": (dict(imagej=True, metadata={"axes": "ZYX"}), "ZYX"),
        "c.tif": (dict(imagej=True, metadata={"axes": "CYX"}), "CYX"),
        "ome_z.ome.tif": (dict(ome=True, metadata={"axes": "ZYX"}), "ZYX"),
        "plain.tif": (dict(), "QYX"),  # tifffile's own metadata without axes: unknown
    }
    for name, (kw, axes) in cases.items():
        tifffile.imwrite(tmp_path / name, np.stack([a, b]), **kw)
        arr, got = read_image_axes(tmp_path / name)
        assert arr.shape == (2, 30, 40) and got == axes, name
        assert read_image(tmp_path / name).shape == (2, 30, 40)  # read_image: the array, as before
    rgb = np.stack([_u8((30, 40))] * 3)
    tifffile.imwrite(tmp_path / "planar.tif", rgb, photometric="rgb", planarconfig="separate")
    assert read_image_axes(tmp_path / "planar.tif")[1] == "SYX"
    arr, axes = read_image_axes(_png_bytes(np.moveaxis(rgb, 0, -1)), name="rgb.png")
    assert arr.shape == (30, 40, 3) and axes == "YXS"
    assert read_image_axes(_png_bytes(_u8((30, 40))), name="g.png")[1] == "YX"
    arr, axes = read_image_axes((tmp_path / "z.tif").read_bytes(), name="x.zip::z.tif")
    assert axes == "ZYX"


def test_read_pair_refuses_a_z_stack_and_splits_channels(tmp_path):
    a, b = _u16((30, 40)), _u16((30, 40))
    tifffile.imwrite(tmp_path / "z.tif", np.stack([a, b]), imagej=True, metadata={"axes": "ZYX"})
    with pytest.raises(InputError, match=r"z\.tif is a z-stack \(Z=2"):
        read_pair(tmp_path / "z.tif")
    tifffile.imwrite(tmp_path / "c.tif", np.stack([a, b]), imagej=True, metadata={"axes": "CYX"})
    p, d = read_pair(tmp_path / "c.tif")
    assert np.array_equal(p, a) and np.array_equal(d, b)
    rgb = np.stack([_u8((30, 40))] * 3)
    tifffile.imwrite(tmp_path / "planar.tif", rgb, photometric="rgb", planarconfig="separate")
    p, d = read_pair(tmp_path / "planar.tif")
    assert p.shape == (30, 40, 3) and d is None
