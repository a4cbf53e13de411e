"""The napari-organelle command, end to end on small simulated files."""

import csv
import json

import numpy as np
import pytest
import tifffile

from napari_organelle.checkpoints import load_checkpoint
from napari_organelle.classes import CLASSES
from napari_organelle.cli import main


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    out = tmp_path_factory.mktemp("cells")
    assert main(["phantoms", str(out), "--per-class", "4", "--seed", "5", "--size", "96"]) == 0
    return out


def test_phantoms_writes_two_channel_uint16(cells):
    files = sorted(cells.glob("*/*.tif"))
    assert len(files) == 40 and {f.parent.name for f in files} == set(CLASSES)
    a = tifffile.imread(files[0])
    assert a.shape == (2, 96, 96) and a.dtype == np.uint16


def test_evaluate_json_on_two_channel_tiffs(cells, tiny_checkpoints, capsys):
    assert main(["evaluate", str(cells), "--model", str(tiny_checkpoints["classifier"]), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n"] == 40 and rep["classes"] == list(CLASSES)
    assert set(rep["per_class"]) == set(CLASSES)
    cm = np.array(rep["confusion"])
    assert cm.shape == (10, 10) and cm.sum() == 40 and (cm.sum(1) == 4).all()
    assert rep["accuracy"] == pytest.approx(np.trace(cm) / 40)


def test_evaluate_table_and_png(cells, tiny_checkpoints, tmp_path, capsys):
    png = tmp_path / "cm.png"
    assert main(["evaluate", str(cells), "--model", str(tiny_checkpoints["classifier"]),
                 "--confusion-png", str(png), "--protein-only"]) == 0
    out = capsys.readouterr().out
    assert "Accuracy:" in out and "protein only" in out and png.stat().st_size > 1000


def test_classify_to_csv(cells, tiny_checkpoints, tmp_path):
    files = [str(f) for f in sorted(cells.glob("*/*.tif"))[:5]]
    out = tmp_path / "r.csv"
    assert main(["classify", *files, "--model", str(tiny_checkpoints["classifier"]), "--output", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["file"] for r in rows] == files
    assert all(r["label"] in CLASSES for r in rows) and "p_ER" in rows[0]


def test_classify_skips_bad_files(cells, tiny_checkpoints, tmp_path, capsys):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    good = str(sorted(cells.glob("*/*.tif"))[0])
    assert main(["classify", good, str(bad), "--model", str(tiny_checkpoints["classifier"])]) == 0
    err = capsys.readouterr().err
    assert "bad.tif" in err


def test_classify_one_unusable_image_does_not_stop_the_run(cells, tiny_checkpoints, tmp_path, capsys):
    files = [str(f) for f in sorted(cells.glob("*/*.tif"))[:12]]
    blank = tmp_path / "blank.tif"
    tifffile.imwrite(blank, np.zeros((2, 96, 96), np.uint16))
    files.insert(5, str(blank))
    out = tmp_path / "r.csv"
    assert main(["classify", *files, "--model", str(tiny_checkpoints["classifier"]), "--output", str(out),
                 "--workers", "3", "--batch-size", "4", "--device", "cpu"]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["file"] for r in rows] == [f for f in files if f != str(blank)]  # in order, threaded reads
    err = capsys.readouterr().err
    assert "blank.tif" in err and "constant" in err
    one = tmp_path / "one.csv"
    assert main(["classify", *files, "--model", str(tiny_checkpoints["classifier"]), "--output", str(one),
                 "--workers", "1"]) == 0
    assert [r["label"] for r in csv.DictReader(open(one))] == [r["label"] for r in rows]


def test_reconstruct(cells, tiny_checkpoints, tmp_path):
    f = sorted(cells.glob("*/*.tif"))[0]
    out, res = tmp_path / "rec.tif", tmp_path / "res.tif"
    assert main(["reconstruct", str(f), "--out", str(out), "--residual", str(res),
                 "--model", str(tiny_checkpoints["autoencoder"])]) == 0
    src = tifffile.imread(f)
    assert tifffile.imread(out).shape == src.shape and tifffile.imread(res).shape == src.shape


def test_train_then_finetune_and_models(cells, tmp_path, capsys):
    ck = tmp_path / "clf.pt"
    assert main(["train", str(cells), "--epochs", "1", "--size", "32", "--device", "cpu", "--out", str(ck)]) == 0
    out = capsys.readouterr().out
    assert "Epoch: 1  Train loss:" in out and "Test accuracy" in out
    m = load_checkpoint(ck, expected_kind="classifier")
    assert m.classes == list(CLASSES) and m.input_size == 32
    assert str(cells) in m.meta["training"]["data"] and "train" in m.meta["training"]["command"]
    assert "test_accuracy" in m.meta["metrics"]
    ck2 = tmp_path / "ft.pt"
    assert main(["train", str(cells), "--epochs", "1", "--from", str(ck), "--freeze-backbone",
                 "--device", "cpu", "--out", str(ck2)]) == 0
    m2 = load_checkpoint(ck2)
    assert m2.meta["training"]["fine_tuned_from"]
    assert main(["models"]) == 0


def test_train_autoencoder(cells, tmp_path, capsys):
    ck = tmp_path / "ae.pt"
    assert main(["train", str(cells), "--model", "autoencoder", "--epochs", "1", "--crop-size", "32",
                 "--device", "cpu", "--out", str(ck)]) == 0
    assert "PSNR" in capsys.readouterr().out
    m = load_checkpoint(ck, expected_kind="autoencoder")
    assert m.meta["metrics"]["test_psnr"] > 0


@pytest.mark.parametrize("argv,needle", [
    (["evaluate", "/no/such/folder", "--model", "TINY"], "no such"),
    (["train", "/no/such/folder", "--out", "x.pt"], "no such"),
    (["train", "simulated:2", "--epochs", "0", "--out", "x.pt"], "epochs"),
    (["train", "simulated:2", "--device", "cuda:7", "--out", "x.pt"], "cuda"),
    (["classify", "/no/file.tif", "--model", "TINY"], "No image"),
    (["classify", "/no/file.tif", "--model", "TINY", "--device", "cuda:3"], "cuda"),
    (["classify", "/no/file.tif", "--model", "TINY", "--workers", "0"], "workers"),
    (["evaluate", "/no/such/folder", "--model", "/no/model.pt"], "model"),
])
def test_errors_are_one_line_no_traceback(argv, needle, capsys, tmp_path, monkeypatch, tiny_checkpoints):
    monkeypatch.chdir(tmp_path)
    argv = [str(tiny_checkpoints["classifier"]) if a == "TINY" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and needle.lower() in err.lower() and "Traceback" not in err
