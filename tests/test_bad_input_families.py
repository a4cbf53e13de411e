"""Bad input, second round (issue 11): one test (or a few) per family the independent tester found.

1. decode bombs (memory budget in bytes from headers, archive members, checkpoint metadata);
2. extreme shapes and values, links, names that are not UTF-8, terminal escapes, absurd numbers;
3. Ctrl-C or a full disk during the final save of ``train``;
4. silent wrong answers (precision, NaN, overflow, channel-last, dates, broken models);
5. data lost (atomic outputs, outputs that are inputs, exclusive saves, unwritable --out);
6. compressed TIFFs (LZW, deflate, JPEG), or the name of the missing codec.

Each test asserts the message or the result, on small real computations (tiny untrained models).
"""

from __future__ import annotations

import csv
import errno
import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import threading
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_organelle import inference
from napari_organelle import io as oio
from napari_organelle.checkpoints import (CheckpointError, checkpoint_dict, list_models, load_checkpoint,
                                          save_user_model)
from napari_organelle.classes import CLASSES, NOT_CLASSIFIED
from napari_organelle.cli import main
from napari_organelle.datasets import load_labelled
from napari_organelle.models.registry import build_model
from napari_organelle.preprocess import InputError, block_reduce_to, normalize, prepare_pair

CLS3 = ("ER", "Mitochondria", "Nucleus")
TINY = {"stem": 8, "widths": (8, 16), "blocks": (1, 1)}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tiny_checkpoints):
    return {k: load_checkpoint(p, expected_kind=k) for k, p in tiny_checkpoints.items()}


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """3 classes x 3 simulated two-channel 48 px TIFFs."""
    from napari_organelle.phantoms import write_dataset

    out = tmp_path_factory.mktemp("cells")
    write_dataset(out, 3, seed=2, size=48, classes=CLS3)
    return out


def cell(n=64, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    return (np.exp(-((yy - n * 0.45) ** 2 + (xx - n * 0.55) ** 2) / (n * 1.5)) * 1000
            + rng.random((n, n)) * 50).astype(np.uint16)


def cli_error(argv, capsys) -> str:
    """Run the CLI: exit status 2, one 'error:' line, no traceback."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err, err
    return err


def declared_tiff(path, h, w):
    """A tiny TIFF whose header declares an h x w uint8 image (the pixels are not there)."""
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8))
    with tifffile.TiffFile(path, mode="r+b") as t:
        for tag, v in (("ImageWidth", w), ("ImageLength", h), ("RowsPerStrip", h)):
            t.pages[0].tags[tag].overwrite(v)
    return Path(path)


def png_header(path, w, h):
    """A 100-byte PNG whose header declares a w x h greyscale image."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 99))
                           + chunk(b"IEND", b""))
    return Path(path)


def tiny_clf(n=3):
    torch.manual_seed(0)
    return build_model("classifier", num_classes=n, **TINY).eval()


def clf_dict(classes=CLS3, **over):
    ck = checkpoint_dict(tiny_clf(len(classes)), kind="classifier", arch="organelle-cnn", classes=list(classes),
                         input_size=32, training={"data": "test"}, metrics={})
    ck.update(over)
    return ck


def ae_dict(**metrics):
    torch.manual_seed(0)
    ae = build_model("autoencoder", "organelle-ae", channels=(8, 16), latent_channels=4).eval()
    return checkpoint_dict(ae, kind="autoencoder", arch="organelle-ae", input_size=64, training={},
                           metrics=metrics)


# ============================================================================ 1. decode bombs
def test_tiff_and_png_declaring_gigabytes_are_refused_before_decoding(tmp_path):
    t = declared_tiff(tmp_path / "bomb.tif", 60000, 60000)
    p = png_header(tmp_path / "bomb.png", 60000, 60000)
    assert t.stat().st_size < 2000 and p.stat().st_size < 200
    tracemalloc.start()
    try:
        for f, kind in ((t, "TIFF"), (p, "PNG")):
            with pytest.raises(InputError) as ei:
                oio.read_image(f)
            msg = str(ei.value)
            assert f"the {kind} image is 60000x60000 (3.4 GiB once decoded)" in msg
            assert "NAPARI_ORGANELLE_MAX_IMAGE_BYTES" in msg
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20e6  # nothing was decoded


def test_the_budget_counts_bytes_not_values(tmp_path, monkeypatch):
    monkeypatch.setattr(oio, "MAX_IMAGE_BYTES", 1_000_000)
    tifffile.imwrite(tmp_path / "u8.tif", np.ones((600, 600), np.uint8))      # 0.36 MB: read
    tifffile.imwrite(tmp_path / "f64.tif", np.ones((600, 600), np.float64))   # 2.9 MB, same values: refused
    assert oio.read_image(tmp_path / "u8.tif").shape == (600, 600)
    with pytest.raises(InputError, match="600x600 .* more than the 0.0 GiB allowed"):
        oio.read_image(tmp_path / "f64.tif")
    with pytest.raises(InputError, match="GiB once decoded"):  # archive members are bytes: same check
        oio.read_image((tmp_path / "f64.tif").read_bytes(), name="a.zip::f64.tif")


def test_archive_members_over_the_budget_are_skipped_unread(cells, tmp_path, monkeypatch):
    big = io.BytesIO()
    tifffile.imwrite(big, np.zeros((400, 400), np.uint16))  # 320 KB uncompressed, ~1 KB zipped
    monkeypatch.setattr(oio, "MAX_IMAGE_BYTES", 200_000)
    z, t = tmp_path / "set.zip", tmp_path / "set.tar.gz"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf, tarfile.open(t, "w:gz") as tf:
        for f in sorted(cells.rglob("*.tif")):
            zf.write(f, f.relative_to(cells).as_posix())
            tf.add(f, f.relative_to(cells).as_posix())
        zf.writestr("ER/huge.tif", big.getvalue())
        info = tarfile.TarInfo("ER/huge.tif")
        info.size = len(big.getvalue())
        tf.addfile(info, io.BytesIO(big.getvalue()))
    assert z.stat().st_size < 200_000
    for src in (z, t):
        d = load_labelled(src)
        assert len(d) == 9
        (why,) = [w for f, w in d.skipped if f.endswith("huge.tif")]
        assert "allowed for one image (a guard against archive bombs); not read" in why


def test_reading_threads_hold_a_bounded_number_of_bytes(tmp_path, monkeypatch):
    """With the budget at one file's size, at most one decoded file waits for the consumer, however
    many threads read (without it: up to the prefetch count, 8 here)."""
    files = []
    for i in range(12):
        tifffile.imwrite(tmp_path / f"c{i}.tif", cell(seed=i))
        files.append(tmp_path / f"c{i}.tif")
    one = oio.image_nbytes(files[0])
    assert one == 64 * 64 * 2
    real = oio._read_checked
    state = {"waiting": 0, "max": 0}
    lock = threading.Lock()

    def counting(path, dna=None, *args):  # (the reader also hands over how to reserve the bytes)
        got = real(path, dna, *args)
        with lock:
            state["waiting"] += 1
            state["max"] = max(state["max"], state["waiting"])
        return got

    monkeypatch.setattr(oio, "_read_checked", counting)
    for budget, most in ((one, 1), (100 * one, 8)):
        monkeypatch.setattr(oio, "MAX_IMAGE_BYTES", budget)
        state.update(waiting=0, max=0)
        n = 0
        for _f, planes, err in oio.iter_read_pairs(files, workers=4, prefetch=8):
            assert err is None and planes[0].shape == (64, 64)
            with lock:
                state["waiting"] -= 1
            n += 1
            threading.Event().wait(0.01)  # a slow consumer: readers run ahead as far as allowed
        assert n == 12 and state["max"] <= most
    assert state["max"] > 1  # the bound, not slowness, kept it to one


def test_checkpoint_settings_are_checked_before_anything_is_built(monkeypatch):
    from napari_organelle import checkpoints

    built = []
    real = checkpoints.build_model

    def spy(*a, **k):
        m = real(*a, **k)
        built.append(next(m.parameters()).device.type)
        return m

    monkeypatch.setattr(checkpoints, "build_model", spy)
    small = clf_dict()
    # widths=[16384]: a 6 GB network, asked for by a few kilobytes; refused unbuilt
    with pytest.raises(CheckpointError, match=r"architecture setting widths = \[16384\]"):
        load_checkpoint(dict(small, arch_kwargs={**small["arch_kwargs"], "widths": [16384], "blocks": [1]}))
    assert built == []
    # settings in range but not those of the stored weights: the shapes are compared on a "meta"
    # model (no memory), and nothing real is ever built
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_checkpoint(dict(small, arch_kwargs={**small["arch_kwargs"], "widths": [2048] * 4,
                                                 "blocks": [8] * 4}))
    assert built == ["meta"]
    assert load_checkpoint(small).classes == list(CLS3) and built[-2:] == ["meta", "cpu"]


@pytest.mark.parametrize("field,value,needle", [
    ("input_size", 1e9, "input size of 1000000000.0"),
    ("input_size", 0, "input size of 0"),
    ("input_size", float("nan"), "input size of nan"),
    ("input_size", "128", "input size of '128'"),
    ("input_size", 2.7, "input size of 2.7"),
    ("input_size", 8, "from 16 to 1024"),
    ("training", "oops", "'training' record is str"),
    ("metrics", [1, 2], "'metrics' record is list"),
    ("arch_kwargs", {"num_classes": 3, "in_channels": 1}, "first layer takes 1 input channel"),
    ("arch_kwargs", {"num_classes": 3, "blocks": [10 ** 6]}, "blocks = [1000000]"),
    ("arch_kwargs", {"num_classes": 3, "rm -rf": 1}, "no setting 'rm -rf'"),
])
def test_absurd_classifier_metadata_is_refused(field, value, needle):
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint(clf_dict(**{field: value}))
    assert needle in str(ei.value)


@pytest.mark.parametrize("value", ["abc", -1, float("nan"), float("inf"), True])
def test_autoencoder_reference_error_must_be_a_number_at_least_zero(value):
    with pytest.raises(CheckpointError, match="ood_reference_mse .* must be a number >= 0"):
        load_checkpoint(ae_dict(ood_reference_mse=value))
    assert load_checkpoint(ae_dict(ood_reference_mse=0.002)).metrics["ood_reference_mse"] == 0.002


def test_an_autoencoder_that_takes_two_channels_is_refused_at_load():
    torch.manual_seed(0)
    ae = build_model("autoencoder", "organelle-ae", channels=(8, 16), latent_channels=4, in_channels=2).eval()
    ck = checkpoint_dict(ae, kind="autoencoder", arch="organelle-ae", training={}, metrics={})
    with pytest.raises(CheckpointError, match=r"first layer takes 2 input channel\(s\).*must take 1"):
        load_checkpoint(ck)


def test_one_odd_stored_model_does_not_break_the_model_list(organelle_home, capsys):
    torch.save(clf_dict(training="oops"), organelle_home / "odd.pt")
    save_user_model(clf_dict(), "fine")
    listed = {m.name: m for m in list_models()}
    assert listed["fine"].error is None and "'training' record is str" in listed["odd"].error
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "fine" in out and "odd" in out and "unreadable" in out


# ============================================================================ 2. extreme shapes and values
def test_thin_images_are_refused_with_a_reason_and_never_crash(models):
    clf = models["classifier"]
    rng = np.random.default_rng(0)
    for shape in ((5000, 8), (8, 5000), (20000, 9)):
        with pytest.raises(InputError, match="times longer than wide"):
            inference.classify(rng.random(shape), model=clf)
    assert block_reduce_to(rng.random((5000, 8)), 128).shape == (125, 1)  # was (125, 0): a crash later
    x = prepare_pair(rng.random((400, 9)), size=16)  # 44:1, accepted: block mean keeps a column
    assert x.shape == (2, 16, 16) and np.isfinite(x).all()
    rs = inference.classify_batch([(cell(), None), (rng.random((5000, 8)), None), (cell(seed=3), None)], clf,
                                  skip_unusable=True)
    assert [r.classified for r in rs] == [True, False, True] and "longer than wide" in rs[1].note


def test_a_thin_file_in_a_class_folder_is_skipped_by_evaluate_and_train(cells, tiny_checkpoints, tmp_path, capsys):
    root = tmp_path / "set"
    shutil.copytree(cells, root)
    tifffile.imwrite(root / "ER" / "thin.tif", (np.random.default_rng(0).random((5000, 8)) * 900).astype(np.uint16))
    assert main(["evaluate", str(root), "--model", str(tiny_checkpoints["classifier"]), "--json"]) == 0
    out, err = capsys.readouterr()
    import json

    rep = json.loads(out)
    assert rep["n"] == 9 and any("thin.tif" in f and "longer than wide" in w for f, w in rep["skipped"])
    assert main(["train", str(root), "--epochs", "1", "--size", "32", "--device", "cpu",
                 "--out", str(tmp_path / "m.pt")]) == 0
    assert "thin.tif" in capsys.readouterr().err and load_checkpoint(tmp_path / "m.pt").classes == list(CLS3)


def test_symlink_loops_as_input_output_and_resume_file(cells, tiny_checkpoints, tmp_path, capsys):
    loop = tmp_path / "loop"
    os.symlink(loop.name, loop)  # a link to itself
    tif_loop = tmp_path / "loop.tif"
    os.symlink(tif_loop.name, tif_loop)
    good = str(sorted(cells.glob("*/*.tif"))[0])
    clf = str(tiny_checkpoints["classifier"])
    for argv in (["classify", good, "--model", clf, "--output", loop],
                 ["train", cells, "--out", loop, "--device", "cpu"],
                 ["train", cells, "--out", tmp_path / "m.pt", "--resume-file", loop, "--device", "cpu"],
                 ["reconstruct", good, "--out", tif_loop, "--model", tiny_checkpoints["autoencoder"]],
                 ["train", loop, "--out", tmp_path / "m.pt", "--device", "cpu"]):
        assert "is a symbolic link loop" in cli_error(argv, capsys)
    out = tmp_path / "r.csv"
    assert main(["classify", good, str(loop), "--model", clf, "--output", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert rows[1]["label"] == NOT_CLASSIFIED and "symbolic link loop" in rows[1]["note"]
    assert "Traceback" not in capsys.readouterr().err


def test_file_names_that_are_not_utf8_are_written_and_printed(cells, tiny_checkpoints, tmp_path, capsys):
    src = sorted(cells.glob("*/*.tif"))[0]
    raw = os.fsencode(tmp_path) + b"/cell\xff\xfe.tif"
    with open(raw, "wb") as fh:
        fh.write(src.read_bytes())
    name = os.fsdecode(raw)  # holds lone surrogates: not encodable as UTF-8
    out = tmp_path / "r.csv"
    assert main(["classify", name, "--model", str(tiny_checkpoints["classifier"]), "--output", str(out)]) == 0
    text = out.read_bytes().decode("utf-8")  # valid UTF-8, the odd bytes as escapes
    assert "cell\\xff\\xfe.tif" in text and list(csv.DictReader(io.StringIO(text)))[0]["label"] in CLASSES
    assert main(["classify", name, "--model", str(tiny_checkpoints["classifier"])]) == 0  # printed, not crashed
    assert "cell\\xff\\xfe.tif\t" in capsys.readouterr().out


def test_terminal_escapes_in_class_names_are_shown_not_obeyed(tmp_path, capsys):
    evil = ["\x1b[2K\rER: 99.9%  (certain)", "Mito\u202echondria", "Nucleus\nFAKE\tline"]
    p = tmp_path / "evil.pt"
    torch.save(clf_dict(classes=evil), p)
    f = tmp_path / "c.tif"
    tifffile.imwrite(f, cell())
    assert main(["classify", str(f), "--model", str(p)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert out.count("\n") == 1 and ("\\x1b[2K\\r" in out or "\\u202e" in out or "\\n" in out)
    assert main(["models"]) == 0 and "\x1b" not in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["phantoms", "P", "--seed", "-1"], "seed must be a whole number from 0"),
    (["phantoms", "P", "--size", "100000"], "too large"),
    (["phantoms", "P", "--per-class", "1000000000"], "far too many"),
    (["train", "simulated:2", "--seed", "-1", "--out", "M"], "seed must be a whole number from 0"),
    (["train", "simulated:2", "--model", "autoencoder", "--crop-size", "100000", "--out", "M"], "at most 1024"),
    (["train", "simulated:100000000", "--out", "M"], "at most simulated:1000"),
    (["train", "simulated:2", "--weight-decay", "inf", "--out", "M"], "weight decay"),
    (["classify", "F", "--model", "TINY", "--batch-size", "1000000000"], "too large"),
    (["classify", "F", "--model", "TINY", "--workers", "1000000"], "too many"),
])
def test_absurd_numbers_are_refused_with_a_message(argv, needle, tmp_path, capsys, tiny_checkpoints, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tifffile.imwrite(tmp_path / "F", cell())
    argv = [str(tiny_checkpoints["classifier"]) if a == "TINY" else a for a in argv]
    err = cli_error(argv, capsys)
    assert needle.lower() in err.lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["F"]  # nothing written


# ============================================================================ 3. faults during the final save
@pytest.fixture
def old_out(tmp_path):
    out = tmp_path / "out" / "model.pt"
    out.parent.mkdir()
    out.write_bytes(b"the previous model file")
    return out


def _train_argv(cells, out):
    return ["train", str(cells), "--epochs", "1", "--size", "32", "--device", "cpu", "--out", str(out)]


def test_ctrl_c_during_the_final_save_keeps_the_weights_and_the_old_file(cells, old_out, capsys, monkeypatch):
    from napari_organelle import checkpoints

    real, calls = checkpoints.torch.save, []

    def interrupted_once(obj, f, *a, **k):
        calls.append(Path(f.name).parent)
        if len(calls) == 1:
            f.write(b"PK\x03\x04 half")
            raise KeyboardInterrupt
        return real(obj, f, *a, **k)

    monkeypatch.setattr(checkpoints.torch, "save", interrupted_once)
    assert main(_train_argv(cells, old_out)) == 130
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "interrupted (Ctrl-C)" in lines[0] and f"{old_out} is unchanged" in lines[0]
    assert old_out.read_bytes() == b"the previous model file"
    rescued = Path(lines[0].split("safe in ")[1].split(": move")[0])
    assert rescued.parent == old_out.parent and "rescued" in rescued.name
    assert load_checkpoint(rescued).classes == list(CLS3)
    assert sorted(p.name for p in old_out.parent.iterdir()) == sorted(["model.pt", rescued.name])


def test_a_full_disk_during_the_final_save_keeps_the_weights_elsewhere(cells, old_out, organelle_home, capsys,
                                                                       monkeypatch):
    from napari_organelle import checkpoints

    real = checkpoints.torch.save

    def full_disk_there(obj, f, *a, **k):
        if Path(f.name).parent == old_out.parent:
            f.write(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(checkpoints.torch, "save", full_disk_there)
    assert main(_train_argv(cells, old_out)) == 2
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert "No space left on device" in line and "is unchanged" in line and "Traceback" not in err
    assert old_out.read_bytes() == b"the previous model file"
    assert [p.name for p in old_out.parent.iterdir()] == ["model.pt"]  # no temporary file left
    (rescued,) = organelle_home.glob("model-rescued-*.pt")
    assert str(rescued) in line and load_checkpoint(rescued).classes == list(CLS3)


# ============================================================================ 4. silent wrong answers
@pytest.mark.parametrize("case,make", [
    ("int64 + 2**40", lambda c: c.astype(np.int64) + 2 ** 40),
    ("int64 - 2**62", lambda c: c.astype(np.int64) - 2 ** 62),
    ("uint64 + 2**63", lambda c: c.astype(np.uint64) + np.uint64(2 ** 63)),
    ("float64 1e8 + cell", lambda c: c.astype(np.float64) + 1e8),
    ("cell * 1e39", lambda c: c.astype(np.float64) * 1e39),
    ("cell * 1e-46", lambda c: c.astype(np.float64) * 1e-46),
])
def test_offsets_and_extreme_scales_keep_the_cell(models, case, make):
    base = cell(96)
    img = make(base)
    ref = prepare_pair(base, size=64)
    got = prepare_pair(img, size=64)
    assert np.abs(got - ref).max() < 1e-5, case
    big = np.kron(base, np.ones((6, 6), base.dtype))  # 576 px: the block-mean path
    assert np.abs(prepare_pair(make(big), size=64) - prepare_pair(big, size=64)).max() < 1e-5, case
    a, b = inference.classify(img, model=models["classifier"]), inference.classify(base, model=models["classifier"])
    assert a.label == b.label and abs(a.confidence - b.confidence) < 1e-5


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_ordinary_images_are_normalised_exactly_as_before(dtype):
    """uint8 / uint16 / float32: the float32 computation the package always did, bit for bit."""
    rng = np.random.default_rng(1)
    img = (rng.gamma(2.0, 1.0, (200, 180)) * (40 if dtype == np.uint8 else 3000)).astype(dtype)
    p = img.astype(np.float32)
    lo, hi = np.percentile(p, [1.0, 99.8])
    old = np.clip((p - np.float32(lo)) * np.float32(1.0 / (hi - lo)), 0, 1)
    assert np.array_equal(normalize(img), old)


def test_nan_pixels_do_not_spread_through_the_block_mean(models):
    rng = np.random.default_rng(2)
    img = np.kron(cell(100).astype(np.float32), np.ones((20, 20), np.float32))  # 2000 px: reduced first
    holes = img.copy()
    holes[rng.random(img.shape) < 0.01] = np.nan
    a, b = prepare_pair(holes, size=64), prepare_pair(img, size=64)
    assert np.abs(a - b).max() < 0.02 and a[0].mean() > 0.5 * b[0].mean()
    assert inference.classify(holes, model=models["classifier"]).label == \
        inference.classify(img, model=models["classifier"]).label


@pytest.mark.parametrize("scale", [1e39, 1e-46])
def test_reconstruct_beyond_float32_is_computed_in_float64(models, scale):
    base = cell(64).astype(np.float64)
    ref = inference.reconstruct(base, models["autoencoder"])
    rec = inference.reconstruct(base * scale, models["autoencoder"])
    assert rec.reconstruction.dtype == np.float64 and np.isfinite(rec.reconstruction).all()
    assert rec.psnr == pytest.approx(ref.psnr, abs=1e-3)  # the same cell, the same quality
    np.testing.assert_allclose(rec.reconstruction / scale, ref.reconstruction, rtol=1e-4, atol=1e-2)
    off = inference.reconstruct(base + 1e8, models["autoencoder"])
    assert off.psnr == pytest.approx(ref.psnr, abs=1e-3)
    np.testing.assert_allclose(off.reconstruction - 1e8, ref.reconstruction, atol=1e-2)


def test_reconstruct_that_would_overflow_is_refused_not_reported(models):
    f32 = np.linspace(-3e38, 3e38, 64 * 64, dtype=np.float32).reshape(64, 64)  # differences overflow float32
    rec = inference.reconstruct(f32, models["autoencoder"])
    assert rec.reconstruction.dtype == np.float64 and np.isfinite(rec.reconstruction).all()
    assert np.isfinite(rec.psnr)
    f64 = np.linspace(-1, 1, 64 * 64).reshape(64, 64) * 1.7e308  # ... and float64's: refused
    with pytest.raises(InputError, match="overflows float64"):
        inference.reconstruct(f64, models["autoencoder"])


def test_channel_last_arrays_are_explained_not_read_as_planes(models, tmp_path):
    a = (np.random.default_rng(0).random((382, 382, 9)) * 1000).astype(np.uint16)
    with pytest.raises(InputError, match="9 channels stored last .* not 382 planes of 382x9"):
        inference.reconstruct(a, models["autoencoder"])
    with pytest.raises(InputError, match="9 channels stored last"):
        inference.classify(a, model=models["classifier"])
    tifffile.imwrite(tmp_path / "cl.tif", a)
    with pytest.raises(InputError, match="9 channels stored last"):
        oio.read_pair(tmp_path / "cl.tif")


@pytest.mark.parametrize("dtype,word", [("datetime64[s]", "dates"), ("timedelta64[ms]", "time spans")])
def test_dates_and_time_spans_are_not_images(models, dtype, word):
    a = np.arange(64 * 64).reshape(64, 64).astype(dtype)
    with pytest.raises(InputError, match=word):
        inference.classify(a, model=models["classifier"])
    with pytest.raises(InputError, match=word):
        inference.reconstruct(a, models["autoencoder"])


def test_broken_models_are_refused_or_flagged_never_nan_percent(tmp_path, capsys):
    ck = clf_dict()
    sd = {k: v.clone() for k, v in ck["state_dict"].items()}
    sd["stem.1.running_var"][0] = -1.0
    with pytest.raises(CheckpointError, match="negative batch-norm variances"):
        load_checkpoint(dict(ck, state_dict=sd))
    loaded = load_checkpoint(ck)  # ... and a model that goes bad in memory is flagged, not believed
    with torch.no_grad():
        loaded.model.stem[1].running_var[0] = -1.0
    r = inference.classify(cell(), model=loaded)
    assert r.label == NOT_CLASSIFIED and "not a number" in r.note
    rs = inference.classify_batch([(cell(), None)] * 3, loaded)
    assert all(not x.classified for x in rs)


def test_symlinked_and_unreadable_class_folders_are_never_silently_left_out(cells, tmp_path, monkeypatch):
    root = tmp_path / "set"
    root.mkdir()
    for c in CLS3:
        os.symlink(cells / c, root / c)  # every class folder is a link
    d = load_labelled(root)
    assert d.classes == list(CLS3) and len(d) == 9
    loopy = tmp_path / "loopy"
    shutil.copytree(cells, loopy)
    os.symlink("..", loopy / "ER" / "back")  # a loop: ER/back/ER/back/...
    d = load_labelled(loopy)
    assert len(d) == 9 and any("link back to a folder it lies in" in w for w in d.warnings)
    real = os.scandir

    def no_access(path):  # as root chmod cannot make a folder unreadable: refuse it here
        if Path(path).name == "Nucleus":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", no_access)
    d = load_labelled(loopy)
    assert "Nucleus" not in d.classes
    assert any("Nucleus" in w and "cannot be read (Permission denied)" in w for w in d.warnings)


# ============================================================================ 5. data lost
def test_outputs_are_written_whole_or_not_at_all(cells, tiny_checkpoints, tmp_path, capsys, monkeypatch):
    f = str(sorted(cells.glob("*/*.tif"))[0])
    targets = {"rec": tmp_path / "r.tif", "res": tmp_path / "res.tif", "png": tmp_path / "cm.png",
               "csv": tmp_path / "p.csv"}
    for p in targets.values():
        p.write_bytes(b"old results")
    real_imwrite = tifffile.imwrite

    def imwrite_full_disk(fh, *a, **k):
        real_imwrite(fh, *a, **k)
        fh.truncate(100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", imwrite_full_disk)
    err = cli_error(["reconstruct", f, "--model", tiny_checkpoints["autoencoder"], "--out", targets["rec"],
                     "--residual", targets["res"]], capsys)
    assert "No space left on device" in err
    monkeypatch.setattr(tifffile, "imwrite", real_imwrite)
    import matplotlib.figure

    def savefig_full_disk(self, fh, **k):
        fh.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig_full_disk)
    real_rows = csv.DictWriter.writerows

    def rows_full_disk(self, rows):
        real_rows(self, list(rows)[:2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerows", rows_full_disk)
    for opt in (["--confusion-png", targets["png"]], ["--predictions", targets["csv"]]):
        cli_error(["evaluate", cells, "--model", tiny_checkpoints["classifier"], *opt], capsys)
    assert all(p.read_bytes() == b"old results" for p in targets.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in targets.values())


def test_outputs_that_are_inputs_are_refused_everywhere_before_the_work(cells, tiny_checkpoints, tmp_path,
                                                                        capsys, monkeypatch):
    import napari_organelle.recipes as rec

    def boom(*a, **k):
        raise AssertionError("the work started")

    monkeypatch.setattr(rec, "evaluate", boom)
    monkeypatch.setattr(rec, "train_model", boom)
    data = tmp_path / "data"
    shutil.copytree(cells, data)
    img = data / "ER" / "ER_000.tif"
    before = img.read_bytes()
    link = tmp_path / "innocent.png"
    os.symlink(img, link)
    hard = tmp_path / "hard.csv"
    os.link(data / "Nucleus" / "Nucleus_001.tif", hard)
    z = tmp_path / "cells.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(cells.rglob("*.tif")):
            zf.write(f, f.relative_to(cells).as_posix())
    clf = str(tiny_checkpoints["classifier"])
    cases = [
        ["evaluate", data, "--model", clf, "--confusion-png", img],
        ["evaluate", data, "--model", clf, "--predictions", img],
        ["evaluate", data, "--model", clf, "--confusion-png", link],
        ["evaluate", data, "--model", clf, "--predictions", hard],
        ["evaluate", data, "--model", clf, "--predictions", clf],
        ["train", z, "--out", z, "--device", "cpu"],
        ["train", data, "--from", clf, "--out", clf, "--device", "cpu"],
        ["train", data, "--out", tmp_path / "m.pt", "--resume-file", img, "--device", "cpu"],
    ]
    for argv in cases:
        err = cli_error(argv, capsys)
        assert ("replace the input" in err or "input folder" in err or "hard link" in err), (argv, err)
    assert img.read_bytes() == before and zipfile.is_zipfile(z)
    assert load_checkpoint(clf).classes == list(CLASSES)


def test_two_saves_under_one_new_name_cannot_both_succeed(monkeypatch, organelle_home):
    from napari_organelle import checkpoints

    real = checkpoints.torch.save

    def other_writer_wins(obj, f, *a, **k):
        real(obj, f, *a, **k)
        (organelle_home / "shared name.pt").write_bytes(b"the other model")  # it finished first

    monkeypatch.setattr(checkpoints.torch, "save", other_writer_wins)
    with pytest.raises(CheckpointError, match="already exists"):
        save_user_model(clf_dict(), "shared name")
    assert (organelle_home / "shared name.pt").read_bytes() == b"the other model"
    assert sorted(p.name for p in organelle_home.iterdir()) == ["shared name.pt"]
    monkeypatch.setattr(checkpoints.torch, "save", real)
    assert save_user_model(clf_dict(), "shared name", overwrite=True).stat().st_size > 1000


def test_two_threads_saving_one_new_name(organelle_home):
    results = []
    barrier = threading.Barrier(2)

    def save():
        barrier.wait()
        try:
            results.append(save_user_model(clf_dict(), "race"))
        except CheckpointError as exc:
            results.append(exc)

    ts = [threading.Thread(target=save) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sum(isinstance(r, Path) for r in results) == 1
    assert sum(isinstance(r, CheckpointError) and "already exists" in str(r) for r in results) == 1


def _sys_takes_files() -> bool:
    import tempfile

    try:
        fd, p = tempfile.mkstemp(dir="/sys")
    except OSError:
        return False
    os.close(fd)
    os.unlink(p)
    return True


@pytest.mark.skipif(not os.path.isdir("/sys") or _sys_takes_files(), reason="needs a folder no one can write")
def test_an_unwritable_out_fails_before_training(cells, tiny_checkpoints, capsys, monkeypatch):
    """Checked by creating a file there (os.access says yes to root everywhere), before any work."""
    import napari_organelle.recipes as rec

    def boom(*a, **k):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(rec, "train_model", boom)
    err = cli_error(["train", cells, "--out", "/sys/model.pt", "--device", "cpu"], capsys)
    assert "Cannot write --out /sys/model.pt" in err and "not writable" in err
    err = cli_error(["classify", sorted(cells.glob("*/*.tif"))[0], "--output", "/dev/null",
                     "--model", tiny_checkpoints["classifier"]], capsys)
    assert "not a regular file" in err


# ============================================================================ 6. compressed TIFFs
@pytest.mark.parametrize("compression", ["lzw", "zlib", "jpeg", "zstd"])
def test_compressed_tiffs_are_read(tmp_path, compression):
    if compression != "zlib":
        pytest.importorskip("imagecodecs")
    img = (cell(64) // 8).astype(np.uint8)
    tifffile.imwrite(tmp_path / "c.tif", img, compression=compression)
    got = oio.read_image(tmp_path / "c.tif")
    assert got.shape == img.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - img).max() <= (12 if compression == "jpeg" else 0)


def test_a_missing_codec_is_named_with_what_to_install(tmp_path):
    pytest.importorskip("imagecodecs")
    f = tmp_path / "lzw.tif"
    tifffile.imwrite(f, cell(32), compression="lzw")
    code = ("import sys; sys.modules['imagecodecs'] = None\n"  # as if it were not installed
            "from napari_organelle.io import read_image\n"
            "from napari_organelle.preprocess import InputError\n"
            f"try:\n    read_image({str(f)!r})\nexcept InputError as e:\n    print('MSG', e)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "MSG" in out.stdout, out.stderr[-2000:]
    assert "compressed (LZW)" in out.stdout and "pip install imagecodecs" in out.stdout


# ============================================================================ more cases of the same families
def test_a_small_checkpoint_that_unpacks_to_gigabytes_is_refused_unread(tmp_path, monkeypatch):
    from napari_organelle import checkpoints

    ck = clf_dict()
    ck["extra"] = {"padding": torch.zeros(4_000_000)}  # 16 MB of zeros ...
    plain = tmp_path / "plain.pt"
    torch.save(ck, plain)
    packed = tmp_path / "packed.pt"  # ... deflated inside the zip: a file of a few tens of kB
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(packed, "w") as zout:
        for info in zin.infolist():
            new = zipfile.ZipInfo(info.filename)
            new.compress_type = zipfile.ZIP_DEFLATED if "/data/" in info.filename else zipfile.ZIP_STORED
            zout.writestr(new, zin.read(info))
    assert packed.stat().st_size < 200_000
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_BYTES", 8 * 1024 ** 2)
    monkeypatch.setattr(checkpoints.torch, "load", lambda *a, **k: pytest.fail("torch.load was reached"))
    with pytest.raises(CheckpointError, match=r"declares 0.0 GiB of contents once unpacked .* not loaded"):
        load_checkpoint(packed)


def test_weights_that_overflow_float32_when_loaded_are_refused():
    ck = clf_dict()
    sd = dict(ck["state_dict"])
    sd["head.weight"] = sd["head.weight"].double() * 1e300  # finite in float64, inf once in the model
    with pytest.raises(CheckpointError, match="not finite once loaded"):
        load_checkpoint(dict(ck, state_dict=sd))


def test_trailing_singleton_channel_is_one_plane(models):
    img = cell()[..., None]  # (Y, X, 1), as some readers give
    assert inference.classify(img, model=models["classifier"]).classified
    rec = inference.reconstruct(img, models["autoencoder"])
    assert rec.reconstruction.shape == img.shape and np.isfinite(rec.psnr)
    with pytest.raises(InputError, match="3 channels stored last .* not 1910 planes"):
        inference.reconstruct(np.zeros((5, 382, 382, 3), np.uint8) + np.arange(382, dtype=np.uint8)[:, None],
                              models["autoencoder"])


def test_pipes_devices_and_nul_bytes_are_not_image_files(tmp_path, cells):
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(InputError, match="not a regular file"):
        oio.read_image(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        oio.read_image("/dev/zero")
    with pytest.raises(InputError, match="NUL"):
        oio.read_image(str(tmp_path / "a\0b.tif"))
    with pytest.raises(InputError, match="NUL"):
        load_labelled(str(cells) + "\0x")
    root = tmp_path / "set"
    shutil.copytree(cells, root)
    os.mkfifo(root / "ER" / "stuck.tif")
    d = load_labelled(root)
    assert len(d) == 9 and any(f.endswith("stuck.tif") and "not a regular file" in w for f, w in d.skipped)


def test_a_link_to_the_whole_disk_inside_a_set_is_not_followed(cells, tmp_path):
    root = tmp_path / "set"
    shutil.copytree(cells, root)
    os.symlink("/", root / "ER" / "everything")
    d = load_labelled(root)
    assert len(d) == 9 and any("everything is a link back to a folder it lies in" in w for w in d.warnings)


def test_labels_with_huge_ids_are_classified_without_a_huge_list(models):
    img = np.tile(cell(), (1, 2))
    lab = np.zeros(img.shape, np.int64)
    lab[10:50, 10:50] = 10 ** 12  # find_objects would make a list of a million million entries
    lab[10:50, 74:114] = 7
    got = inference.classify_cells(img, lab, model=models["classifier"])
    assert sorted(got) == [7, 10 ** 12] and all(r.classified for r in got.values())
    with pytest.raises(InputError, match="negative values"):
        inference.classify_cells(img, -lab, model=models["classifier"])


def test_a_full_disk_for_the_resume_file_does_not_end_training(cells, tmp_path, capsys, monkeypatch):
    from napari_organelle import checkpoints

    real = checkpoints.torch.save
    resume = tmp_path / "full" / "resume.pt"

    def full_there(obj, f, *a, **k):
        if Path(f.name).parent == resume.parent:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(checkpoints.torch, "save", full_there)
    out = tmp_path / "m.pt"
    assert main([*_train_argv(cells, out), "--epochs", "2", "--resume-file", str(resume)]) == 0
    err = capsys.readouterr().err
    assert "--resume-file" in err and "No space left on device" in err and "the run went on" in err
    assert load_checkpoint(out).training_info["epochs_run"] == 2 and not resume.exists()


def test_a_new_image_written_into_the_input_folder_is_refused(cells, tiny_checkpoints, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(cells, data)
    err = cli_error(["evaluate", data, "--model", tiny_checkpoints["classifier"],
                     "--confusion-png", data / "ER" / "confusion.png"], capsys)
    assert "would be a new image inside the input folder" in err
    assert not (data / "ER" / "confusion.png").exists()
    assert main(["evaluate", str(data), "--model", str(tiny_checkpoints["classifier"]),
                 "--predictions", str(data / "predictions.csv")]) == 0  # not an image: allowed
