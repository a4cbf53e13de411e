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
    assert [r["file"] for r in rows] == files  # in order, threaded reads; the skipped file has its row
    assert rows[5]["label"] == "not classified" and "constant" in rows[5]["note"]
    assert all(r["label"] in CLASSES and r["note"] == "" for i, r in enumerate(rows) if i != 5)
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
    (["train", "simulated:2", "--size", "100000", "--out", "x.pt"], "between 16 and 1024"),
    (["train", "simulated:2", "--size", "4", "--out", "x.pt"], "between 16 and 1024"),
    (["train", "simulated:2", "--keep-classes", "--out", "x.pt"], "--from"),
    (["train", "simulated:2", "--val-fraction", "-0.2", "--out", "x.pt"], "--val-fraction"),
    (["train", "simulated:2", "--out", "x.pt", "--resume-file", "x.pt"], "same file"),
    (["classify", "/no/file.tif", "--model", "TINY", "--output", "/no/file.tif"], "input files"),
    (["phantoms", "p", "--size", "10"], "at least 32"),
    (["phantoms", "p", "--style", "foo"], "unknown style 'foo'"),
    (["phantoms", "p", "--per-class", "0"], "at least 1"),
    (["phantoms", "p", "--per-class", "-4"], "at least 1"),
    (["train", "simulated:2", "--val-fraction", "0", "--out", "x.pt"], "choose the best epoch"),
    (["train", "TINY", "--out", "x.pt"], "is a model file, not labelled images"),
    (["train", "simulated:2", "--batch-size", "1", "--epochs", "1", "--size", "32", "--device", "cpu",
      "--out", "x.pt"], "batches of at least 2"),
])
def test_errors_are_one_line_no_traceback(argv, needle, capsys, tmp_path, monkeypatch, tiny_checkpoints):
    monkeypatch.chdir(tmp_path)
    argv = [str(tiny_checkpoints["classifier"]) if a == "TINY" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and needle.lower() in err.lower() and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# audit fixes
# ---------------------------------------------------------------------------------------------
def _no_work(monkeypatch, *targets):
    """Make the long work fail loudly: an output check must come before it."""
    def boom(*a, **k):
        raise AssertionError("the work started before the output was checked")
    for mod, name in targets:
        monkeypatch.setattr(mod, name, boom)


def test_train_without_test_split_prints_validation_figures(cells, tmp_path, capsys):
    ae = tmp_path / "ae0.pt"
    resume = tmp_path / "res" / "resume.pt"
    assert main(["train", str(cells), "--model", "autoencoder", "--test-fraction", "0", "--epochs", "1",
                 "--crop-size", "32", "--device", "cpu", "--out", str(ae), "--resume-file", str(resume)]) == 0
    out = capsys.readouterr().out
    assert "Test reconstruction" not in out and "No test split" in out and "validation planes" in out
    m = load_checkpoint(ae)
    assert m.meta["training"]["n_test"] == 0 and not [k for k in m.metrics if k.startswith("test_")]
    assert m.metrics["val_planes_psnr"] > 0
    r = load_checkpoint(resume)  # the file written during training knows its data and command
    assert str(cells) in r.training_info["data"] and "--resume-file" in r.training_info["command"]
    clf = tmp_path / "clf0.pt"
    assert main(["train", str(cells), "--test-fraction", "0", "--epochs", "1", "--size", "32",
                 "--device", "cpu", "--out", str(clf)]) == 0
    out = capsys.readouterr().out
    assert "Test accuracy" not in out and "No test split" in out and "validation accuracy" in out
    assert not [k for k in load_checkpoint(clf).metrics if k.startswith("test_")]


def test_train_keep_classes_vs_default(cells, tmp_path, tiny_checkpoints, capsys):
    sub = tmp_path / "sub"
    for c in ("ER", "Nucleus", "Lysosome"):
        (sub / c).mkdir(parents=True)
        for f in sorted((cells / c).glob("*.tif")):
            (sub / c / f.name).write_bytes(f.read_bytes())
    base = ["train", str(sub), "--from", str(tiny_checkpoints["classifier"]), "--epochs", "1", "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "d.pt")]) == 0
    assert load_checkpoint(tmp_path / "d.pt").classes == ["ER", "Lysosome", "Nucleus"]  # CLI default
    assert main([*base, "--keep-classes", "--out", str(tmp_path / "k.pt")]) == 0
    assert load_checkpoint(tmp_path / "k.pt").classes == list(CLASSES)  # the dock's default
    assert "Classes kept" in capsys.readouterr().out
    assert main(["train", str(sub), "--model", "autoencoder", "--from", str(tiny_checkpoints["autoencoder"]),
                 "--keep-classes", "--out", str(tmp_path / "a.pt")]) == 2
    assert "classifiers" in capsys.readouterr().err


def test_train_from_a_listed_name(cells, tmp_path, tiny_checkpoints, capsys):
    from napari_organelle.checkpoints import save_user_model

    save_user_model(load_checkpoint(tiny_checkpoints["classifier"]), "ER (v2)")
    assert "ER (v2)" in (main(["models"]) == 0 and capsys.readouterr().out)
    f = str(sorted(cells.glob("*/*.tif"))[0])
    assert main(["classify", f, "--model", "ER (v2)"]) == 0
    assert main(["evaluate", str(cells), "--model", "ER (v2)", "--json"]) == 0


def test_outputs_in_missing_folders_are_created(cells, tiny_checkpoints, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    f = str(sorted(cells.glob("*/*.tif"))[0])
    clf, ae = str(tiny_checkpoints["classifier"]), str(tiny_checkpoints["autoencoder"])
    assert main(["classify", f, "--model", clf, "--output", "nodir/x.csv"]) == 0
    assert list(csv.DictReader(open("nodir/x.csv")))[0]["file"] == f
    assert main(["reconstruct", f, "--model", ae, "--out", "a/r.tif", "--residual", "b/c/res.tif"]) == 0
    assert tifffile.imread("a/r.tif").shape == tifffile.imread("b/c/res.tif").shape == (2, 96, 96)
    assert main(["evaluate", str(cells), "--model", clf, "--predictions", "p/p.csv",
                 "--confusion-png", "q/cm.svg"]) == 0
    assert len(list(csv.DictReader(open("p/p.csv")))) == 40 and (tmp_path / "q" / "cm.svg").stat().st_size > 1000
    assert "Traceback" not in capsys.readouterr().err


def test_unusable_outputs_are_refused_before_the_work(cells, tiny_checkpoints, tmp_path, monkeypatch, capsys):
    import napari_organelle.inference as inf
    import napari_organelle.recipes as rec

    monkeypatch.chdir(tmp_path)
    _no_work(monkeypatch, (rec, "evaluate"), (inf, "reconstruct"), (inf, "iter_classify"), (rec, "train_model"))
    (tmp_path / "afile").write_text("x")
    f = str(sorted(cells.glob("*/*.tif"))[0])
    clf, ae = str(tiny_checkpoints["classifier"]), str(tiny_checkpoints["autoencoder"])
    cases = [
        (["evaluate", str(cells), "--model", clf, "--confusion-png", "x.xyz"], "'.xyz'; use a file name ending in .png"),
        (["evaluate", str(cells), "--model", clf, "--confusion-png", "cm"], "no extension"),
        (["evaluate", str(cells), "--model", clf, "--predictions", "afile/p.csv"], "afile is a file"),
        (["evaluate", str(cells), "--model", clf, "--predictions", str(tmp_path)], "is a folder"),
        (["reconstruct", f, "--model", ae, "--out", "r.tif", "--residual", "afile/r.tif"], "afile is a file"),
        (["reconstruct", f, "--model", ae, "--out", "r.png"], "'.png'; use a file name ending in .tif"),
        (["reconstruct", f, "--model", ae, "--out", "r.tif", "--residual", "r.tif"], "same file"),
        (["reconstruct", f, "--model", ae, "--out", f], "replace the input"),
        (["classify", f, "--model", clf, "--output", "afile/x.csv"], "afile is a file"),
        (["train", str(cells), "--out", "afile/m.pt"], "afile is a file"),
        (["train", str(cells), "--out", "m.pt", "--resume-file", "afile/r.pt"], "afile is a file"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "error:" in err and needle in err and "Traceback" not in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing written, no folder made


def test_classify_a_folder_says_how(cells, tiny_checkpoints, capsys):
    assert main(["classify", str(cells), "--model", str(tiny_checkpoints["classifier"])]) == 2
    err = capsys.readouterr().err
    assert f"{cells} is a folder; give its image files, e.g. {cells}/*/*.tif" in err and "Traceback" not in err


def test_classify_skipped_files_get_rows_in_input_order(cells, tiny_checkpoints, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    good = [str(f) for f in sorted(cells.glob("*/*.tif"))[:3]]
    files = [str(bad), good[0], good[1], str(bad), str(tmp_path / "missing.tif"), good[2], str(bad)]
    out = tmp_path / "r.csv"
    assert main(["classify", *files, "--model", str(tiny_checkpoints["classifier"]), "--output", str(out),
                 "--batch-size", "2", "--workers", "2"]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["file"] for r in rows] == files
    skipped = [i for i, r in enumerate(rows) if r["label"] == "not classified"]
    assert skipped == [0, 3, 4, 6]
    assert all(rows[i]["note"] for i in skipped) and "missing.tif" in rows[4]["note"]
    assert all(rows[i]["label"] in CLASSES and not rows[i]["note"] for i in (1, 2, 5))


def test_phantoms_refuses_a_folder_of_other_files_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "cells"
    assert main(["phantoms", str(out), "--per-class", "3", "--size", "48", "--seed", "1"]) == 0
    first = tifffile.imread(out / "ER" / "ER_000.tif")
    # the same settings again (or more cells) only rewrites this run's own files: allowed
    assert main(["phantoms", str(out), "--per-class", "3", "--size", "48", "--seed", "1"]) == 0
    assert np.array_equal(tifffile.imread(out / "ER" / "ER_000.tif"), first)
    # fewer cells, or separate files, would leave old files beside the new ones: refused, nothing written
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")}
    for extra in (["--per-class", "2"], ["--per-class", "3", "--separate-files"]):
        assert main(["phantoms", str(out), "--size", "48", "--seed", "2", *extra]) == 2
        err = capsys.readouterr().err
        assert "already holds" in err and "--overwrite" in err and "Traceback" not in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")} == before
    (out / "notes.txt").write_text("mine")
    assert main(["phantoms", str(out), "--per-class", "2", "--size", "48", "--seed", "2", "--overwrite"]) == 0
    assert len(list(out.glob("*/*.tif"))) == 20 and (out / "notes.txt").read_text() == "mine"
    assert not np.array_equal(tifffile.imread(out / "ER" / "ER_000.tif"), first)
    assert "Removed 30 old .tif files" in capsys.readouterr().out
    # an existing file as the folder
    assert main(["phantoms", str(out / "notes.txt")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_phantoms_paths_match_what_write_dataset_writes(tmp_path):
    from napari_organelle.cli import _phantom_paths
    from napari_organelle.phantoms import write_dataset

    for two in (True, False):
        d = tmp_path / str(two)
        written = write_dataset(d, per_class=2, size=40, two_channel=two, classes=["ER", "Nucleus"])
        assert set(written) == _phantom_paths(d, 2, two, ["ER", "Nucleus"])


def test_classify_interrupted_keeps_the_rows_done_and_says_where(cells, tiny_checkpoints, tmp_path, capsys,
                                                                 monkeypatch):
    from napari_organelle import inference

    files = [str(f) for f in sorted(cells.glob("*/*.tif"))[:6]]
    real = inference.iter_classify

    def dies_after_two(*args, **kwargs):
        for k, r in enumerate(real(*args, **kwargs)):
            if k == 2:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            yield r

    monkeypatch.setattr(inference, "iter_classify", dies_after_two)
    out = tmp_path / "r.csv"
    assert main(["classify", *files, "--model", str(tiny_checkpoints["classifier"]), "--output", str(out),
                 "--batch-size", "1"]) == 2
    err = capsys.readouterr().err
    assert "ran out of memory" in err and "Traceback" not in err
    part = tmp_path / "r.csv.part"
    assert "Stopped after 2 of 6 images" in err and str(part) in err
    assert [r["file"] for r in csv.DictReader(open(part))] == files[:2] and not out.exists()


def test_ctrl_c_during_train_saves_the_best_weights_so_far(tmp_path):
    """Ctrl-C once: the run stops after the current batch and --out holds the best epoch's weights."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from napari_organelle.checkpoints import load_checkpoint

    out = tmp_path / "m.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "napari_organelle.cli", "train", "simulated:3", "--epochs", "200",
                             "--size", "32", "--batch-size", "4", "--device", "cpu", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("Epoch: 2 "):
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    assert "Stopping after the current batch" in stderr and "Stopped by Ctrl-C" in stdout
    info = load_checkpoint(out).training_info
    assert info["stopped"] and "stopped by the user" in info["stop_reason"] and info["best_epoch"] >= 1


@pytest.fixture(scope="module")
def field_files(tmp_path_factory):
    from napari_organelle.phantoms import simulate_field

    out = tmp_path_factory.mktemp("field")
    p, d, labels, classes = simulate_field(n_cells=4, seed=3, size=640)
    tifffile.imwrite(out / "field.tif", np.stack([p, d]))
    tifffile.imwrite(out / "field_cells.tif", labels)
    return out, classes


def test_classify_cells_auto_writes_a_row_per_cell_and_a_summary(field_files, tmp_path, capsys):
    folder, classes = field_files
    out = tmp_path / "cells.csv"
    assert main(["classify", str(folder / "field.tif"), "--cells", "auto", "--output", str(out),
                 "--save-cells", str(tmp_path / "masks")]) == 0
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 4 and [r["cell"] for r in rows] == ["1", "2", "3", "4"]
    assert {"file", "centroid_y", "centroid_x", "area", "label", "confidence", "uncertain"} <= set(rows[0])
    assert all(r["label"] in CLASSES and int(r["area"]) > 1000 for r in rows)
    summary = list(csv.DictReader(open(tmp_path / "cells_summary.csv")))
    assert len(summary) == 1 and summary[0]["n_cells"] == "4"
    counts = {c: int(summary[0][f"n_{c}"]) for c in CLASSES}
    assert sum(counts.values()) == 4 and counts[summary[0]["majority"]] == max(counts.values())
    assert "DNA" in summary[0]["method"]
    masks = tifffile.imread(tmp_path / "masks" / "field_cells.tif")
    assert masks.shape == (640, 640) and masks.max() == 4
    assert "summary per image" in capsys.readouterr().out


def test_classify_cells_from_a_labels_file(field_files, capsys):
    folder, classes = field_files
    assert main(["classify", str(folder / "field.tif"), "--cells", str(folder / "field_cells.tif")]) == 0
    out = capsys.readouterr().out
    assert out.count("\tcell ") == 4 and "4 cells" in out and "majority" in out


def test_classify_whole_field_warns_and_suggests_cells_auto(field_files, tmp_path, capsys):
    folder, _ = field_files
    out = tmp_path / "whole.csv"
    assert main(["classify", str(folder / "field.tif"), "--output", str(out)]) == 0
    row = next(csv.DictReader(open(out)))
    assert "several cells" in row["warning"] and "--cells auto" in row["warning"]
    assert "--cells auto" in capsys.readouterr().err
    assert main(["classify", str(folder / "field.tif"), "--output", str(out), "--no-cell-check"]) == 0
    assert next(csv.DictReader(open(out)))["warning"] == ""


@pytest.mark.parametrize("extra, needle", [
    (["--cells", "a.tif", "b.tif"], "one --cells labels file per image"),
    (["--cells", "auto", "x.tif"], "either 'auto'"),
    (["--diameter", "50"], "goes with --cells"),
    (["--cells", "auto", "--diameter", "-5"], "positive"),
    (["--cells", "LABELS", "--save-cells", "m"], "goes with --cells auto"),
])
def test_classify_cells_options_are_checked(field_files, extra, needle, capsys):
    folder, _ = field_files
    extra = [str(folder / "field_cells.tif") if x == "LABELS" else x for x in extra]
    assert main(["classify", str(folder / "field.tif"), *extra]) == 2
    assert needle in capsys.readouterr().err
