"""bioimage.io model packages: export, what they hold, agreement with classify() / reconstruct(),
loading them back, refusing untrusted or foreign packages, and (when bioimageio.core is installed:
``pip install napari-organelle[bioimageio]``) ``bioimageio test`` with the network refused.

Agreement is checked by re-running the package's own files (its TorchScript, and its state dict in
the architecture file it ships) on its test input through the pre- and post-processing its
rdf.yaml declares, implemented here from the spec's definitions; the tolerance is
``export.CHECK_TOLERANCE`` (1e-4 absolute, on probabilities and [0, 1] intensities).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from napari_organelle import export as ex
from napari_organelle.checkpoints import (CheckpointError, checkpoint_dict, load_checkpoint, read_checkpoint,
                                          resolve_model)
from napari_organelle.classes import CLASSES
from napari_organelle.cli import main
from napari_organelle.inference import classify, reconstruct
from napari_organelle.models.registry import ARCHITECTURES, build_model
from napari_organelle.preprocess import HIGH_PERCENTILE, LOW_PERCENTILE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HERE = Path(__file__).parent
SRC = HERE.parent / "src"
HAS_BIOIMAGEIO = importlib.util.find_spec("bioimageio") is not None and \
    importlib.util.find_spec("bioimageio.core") is not None
needs_bioimageio = pytest.mark.skipif(not HAS_BIOIMAGEIO, reason="bioimageio.core is not installed "
                                      "(pip install napari-organelle[bioimageio])")


# --------------------------------------------------------------------------------------------------
# helpers: read a package and run it as the spec says
# --------------------------------------------------------------------------------------------------
def _members(pkg: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(pkg) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _rdf(files: dict[str, bytes]) -> dict:
    return yaml.safe_load(files["rdf.yaml"].decode("utf-8"))


def _npy(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


def _apply_pre(x: np.ndarray, steps: list[dict]) -> np.ndarray:
    """The rdf's preprocessing as the bioimage.io spec defines it (only the ops our packages use)."""
    a = np.asarray(x, np.float64)
    for s in steps:
        k = s.get("kwargs", {})
        if s["id"] == "scale_range":
            assert k["axes"] == ["y", "x"]
            lo = np.percentile(a, k["min_percentile"], axis=(2, 3), keepdims=True)
            hi = np.percentile(a, k["max_percentile"], axis=(2, 3), keepdims=True)
            a = (a - lo) / (hi - lo + k.get("eps", 1e-6))
        elif s["id"] == "clip":
            a = np.clip(a, k["min"], k["max"])
        elif s["id"] == "ensure_dtype":
            a = a.astype(k["dtype"]).astype(np.float64)
        else:
            raise AssertionError(f"unexpected preprocessing {s['id']}")
    return a.astype(np.float32)


def _apply_post(y: np.ndarray, steps: list[dict]) -> np.ndarray:
    a = np.asarray(y, np.float64)
    for s in steps:
        k = s.get("kwargs", {})
        if s["id"] == "scale_linear":
            a = a * k.get("gain", 1.0) + k.get("offset", 0.0)
        elif s["id"] == "softmax":
            assert k.get("axis", "channel") == "channel"
            e = np.exp(a - a.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
        else:
            raise AssertionError(f"unexpected postprocessing {s['id']}")
    return a.astype(np.float32)


def _import_arch(source: bytes, tmp_path: Path):
    f = tmp_path / "pkg_arch_module.py"
    f.write_bytes(source)
    spec = importlib.util.spec_from_file_location(f"pkg_arch_{hashlib.sha256(source).hexdigest()[:12]}", f)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _package_outputs(pkg: Path, tmp_path: Path) -> dict[str, np.ndarray]:
    """Run both weight formats of the package on its test input, as a consumer would."""
    files = _members(pkg)
    rdf = _rdf(files)
    x = _apply_pre(_npy(files[rdf["inputs"][0]["test_tensor"]["source"]]), rdf["inputs"][0]["preprocessing"])
    post = rdf["outputs"][0].get("postprocessing", [])
    w = rdf["weights"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ts = torch.jit.load(io.BytesIO(files[w["torchscript"]["source"]]), map_location="cpu").eval()
    arch = w["pytorch_state_dict"]["architecture"]
    mod = _import_arch(files[arch["source"]], tmp_path)
    net = getattr(mod, arch["callable"])(**arch["kwargs"]).eval()
    state = torch.load(io.BytesIO(files[w["pytorch_state_dict"]["source"]]), weights_only=True)
    net.load_state_dict(state, strict=True)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        return {"torchscript": _apply_post(ts(xt).numpy(), post),
                "pytorch_state_dict": _apply_post(net(xt).numpy(), post)}


def _tiny_classifier(tmp_path, classes=CLASSES, size=48, arch="organelle-cnn", **meta):
    torch.manual_seed(1)
    kw = dict(num_classes=len(classes))
    if arch == "organelle-cnn":
        kw.update(stem=8, widths=(8, 16), blocks=(1, 1))
    m = build_model("classifier", arch, **kw).eval()
    ckpt = checkpoint_dict(m, kind="classifier", arch=arch, classes=list(classes), input_size=size,
                           training={"data": "simulated cells (test fixture)", "n_train": 10, "n_val": 5,
                                     "epochs": 1},
                           metrics={"val_accuracy": 0.5, "measured_on": "the test fixture's validation cells"})
    ckpt.update(meta)
    p = tmp_path / f"tiny-{arch}-{len(classes)}.pt"
    torch.save(ckpt, p)
    return p


@pytest.fixture(scope="module")
def fine_tuned(tiny_checkpoints):
    """What recipes.train_model returns after fine-tuning the tiny classifier for one epoch on a few
    simulated cells (30: 3 per class)."""
    from napari_organelle.recipes import train_model
    from napari_organelle.training import TrainConfig

    torch.set_num_threads(1)
    return train_model("simulated:3", "classifier", TrainConfig(epochs=1, batch_size=8, device="cpu"),
                       init=tiny_checkpoints["classifier"])


@pytest.fixture(scope="module")
def packages(tmp_path_factory, tiny_checkpoints):
    """The tiny classifier and autoencoder of conftest, exported once."""
    out = tmp_path_factory.mktemp("packages")
    return {kind: ex.export_bioimageio(path, out / f"{kind}.zip") for kind, path in tiny_checkpoints.items()}


# --------------------------------------------------------------------------------------------------
# architectures
# --------------------------------------------------------------------------------------------------
_SMALL = {("classifier", "organelle-cnn"): dict(num_classes=5, stem=8, widths=(8, 16, 16), blocks=(1, 2, 1)),
          ("classifier", "resnet18"): dict(num_classes=4),
          ("autoencoder", "organelle-ae"): dict(channels=(8, 16), latent_channels=4)}


@pytest.mark.parametrize("kind,arch", [(k, a) for k in ARCHITECTURES for a in ARCHITECTURES[k]])
def test_every_registry_architecture_has_a_standalone_scriptable_twin(kind, arch):
    """The architecture file shipped in packages rebuilds every registry model exactly."""
    from napari_organelle import _bioimageio_arch as A

    assert (kind, arch) in ex.ARCH_CALLABLES, f"add {kind}/{arch} to _bioimageio_arch.py and ARCH_CALLABLES"
    torch.manual_seed(0)
    m = build_model(kind, arch, **_SMALL.get((kind, arch), {})).eval()
    for mod in m.modules():  # non-trivial normalisation statistics
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
    twin = getattr(A, ex.ARCH_CALLABLES[(kind, arch)])(**m.arch_kwargs).eval()
    twin.load_state_dict(m.state_dict(), strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(twin)
    shapes = [(2, 2, 48, 48)] if kind == "classifier" else [(2, 1, 37, 50), (1, 1, 9, 30)]  # 9 < pad: replicate
    for shape in shapes:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            ref = m(x)
            assert torch.equal(ref, twin(x))
            assert (scripted(x) - ref).abs().max().item() < 1e-6
            assert ref.shape == ((shape[0], m.arch_kwargs["num_classes"]) if kind == "classifier" else shape)


# --------------------------------------------------------------------------------------------------
# what a package holds
# --------------------------------------------------------------------------------------------------
def test_classifier_package_contents(packages, tiny_checkpoints):
    r = packages["classifier"]
    files = _members(r.path)
    assert set(files) == {"rdf.yaml", "README.md", "cover.png", ex.TEST_INPUT_FILE, ex.TEST_OUTPUT_FILE,
                          ex.SAMPLE_INPUT_FILE, ex.SAMPLE_OUTPUT_FILE, ex.ARCH_FILE, ex.STATE_DICT_FILE,
                          ex.TORCHSCRIPT_FILE, ex.CHECKPOINT_FILE}
    assert set(r.files) == set(files)
    rdf = _rdf(files)
    assert rdf["type"] == "model" and rdf["format_version"].startswith("0.5.")
    ckpt = read_checkpoint(tiny_checkpoints["classifier"])
    # every file the rdf names is there, with the hash it lists
    named = [rdf["documentation"], *rdf["covers"], *rdf["attachments"], rdf["inputs"][0]["test_tensor"],
             rdf["outputs"][0]["test_tensor"], rdf["inputs"][0]["sample_tensor"], rdf["outputs"][0]["sample_tensor"],
             rdf["weights"]["torchscript"], rdf["weights"]["pytorch_state_dict"],
             rdf["weights"]["pytorch_state_dict"]["architecture"]]
    for f in named:
        assert hashlib.sha256(files[f["source"]]).hexdigest() == f["sha256"], f["source"]
    # read from the checkpoint: input size, classes, normalisation, architecture settings
    inp, outp = rdf["inputs"][0], rdf["outputs"][0]
    assert [a.get("size") for a in inp["axes"] if a["type"] == "space"] == [64, 64]
    assert inp["axes"][1]["channel_names"] == ["protein", "dna"]
    assert outp["axes"][1]["channel_names"] == list(CLASSES)
    assert inp["preprocessing"] == [
        {"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": LOW_PERCENTILE,
                                         "max_percentile": HIGH_PERCENTILE, "eps": ex.SCALE_RANGE_EPS}},
        {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}}]
    assert outp["postprocessing"] == [{"id": "softmax", "kwargs": {"axis": "channel"}}]
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"] == ckpt["arch_kwargs"]
    assert rdf["config"]["napari-organelle"]["checkpoint"] == ex.CHECKPOINT_FILE
    # the attachment is our checkpoint, exactly
    att = torch.load(io.BytesIO(files[ex.CHECKPOINT_FILE]), weights_only=True)
    assert {k: v for k, v in att.items() if k != "state_dict"} == {k: v for k, v in ckpt.items() if k != "state_dict"}
    assert all(torch.equal(att["state_dict"][k], v) for k, v in ckpt["state_dict"].items())
    # the state dict weights are a plain state dict (what bioimageio.core loads with weights_only)
    sd = torch.load(io.BytesIO(files[ex.STATE_DICT_FILE]), weights_only=True)
    assert set(sd) == set(ckpt["state_dict"])
    # README: model card with the training data said plainly, the figures and their data, Validation
    readme = files["README.md"].decode()
    assert "simulated cells (test fixture, untrained)" in readme and "**simulated cells**" in readme
    assert "| val_accuracy | 10.00 % | not recorded (0 images) |" in readme  # conftest records no data for it
    assert "## Validation" in readme and "classify()" in readme
    # cover: a PNG, 2:1, small
    from PIL import Image

    im = Image.open(io.BytesIO(files["cover.png"]))
    assert im.format == "PNG" and im.size[0] == 2 * im.size[1] and len(files["cover.png"]) < 500_000


def test_classifier_package_reproduces_classify(packages, tiny_checkpoints, tmp_path):
    """Test output == classify() on the test input; both weight formats, run as the rdf declares,
    agree with classify() within CHECK_TOLERANCE."""
    r = packages["classifier"]
    files = _members(r.path)
    x = _npy(files[ex.TEST_INPUT_FILE])
    y = _npy(files[ex.TEST_OUTPUT_FILE])
    assert x.shape == (1, 2, 64, 64) and x.dtype == np.float32 and y.shape == (1, 10) and y.dtype == np.float32
    res = classify(x[0, 0], x[0, 1], tiny_checkpoints["classifier"])
    ref = np.array([res.probabilities[c] for c in res.classes], np.float32)
    assert np.max(np.abs(y[0] - ref)) < 1e-6
    outs = _package_outputs(r.path, tmp_path)
    for fmt, got in outs.items():
        err = float(np.max(np.abs(got[0] - ref)))
        assert err <= ex.CHECK_TOLERANCE, (fmt, err)
    assert max(r.max_abs_difference.values()) <= ex.CHECK_TOLERANCE


def test_autoencoder_package_reproduces_reconstruct(packages, tiny_checkpoints, tmp_path):
    r = packages["autoencoder"]
    files = _members(r.path)
    rdf = _rdf(files)
    x = _npy(files[ex.TEST_INPUT_FILE])
    assert x.shape == (1, 1, ex.AE_TEST_SIDE, ex.AE_TEST_SIDE)
    axes = rdf["inputs"][0]["axes"]
    assert axes[2]["size"] == {"min": 8, "step": 1} and rdf["outputs"][0]["axes"][3]["size"] == \
        {"tensor_id": "plane", "axis_id": "x"}
    assert "postprocessing" not in rdf["outputs"][0]
    rec = reconstruct(x[0, 0], tiny_checkpoints["autoencoder"])
    lo, hi = np.percentile(x[0, 0], [LOW_PERCENTILE, HIGH_PERCENTILE])
    ref01 = (rec.reconstruction - lo) / (hi - lo)
    assert np.max(np.abs(_npy(files[ex.TEST_OUTPUT_FILE])[0, 0] - ref01)) <= ex.CHECK_TOLERANCE
    for fmt, got in _package_outputs(r.path, tmp_path).items():
        assert got.shape == x.shape
        assert float(np.max(np.abs(got[0, 0] - ref01))) <= ex.CHECK_TOLERANCE, fmt


def test_user_classes_any_input_size_and_resnet(tmp_path):
    """Any architecture in the registry, any input size, user class lists."""
    classes = ["my ER marker", "Golgi α", "Mitochondria"]
    for arch, size in (("organelle-cnn", 40), ("resnet18", 32)):
        src = _tiny_classifier(tmp_path, classes=classes, size=size, arch=arch)
        r = ex.export_bioimageio(src, tmp_path / f"{arch}.zip")
        files = _members(r.path)
        rdf = _rdf(files)
        assert rdf["outputs"][0]["axes"][1]["channel_names"] == classes
        assert rdf["inputs"][0]["axes"][2]["size"] == size
        assert rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] == ex.ARCH_CALLABLES[("classifier", arch)]
        x = _npy(files[ex.TEST_INPUT_FILE])
        res = classify(x[0, 0], x[0, 1], src)
        ref = np.array([res.probabilities[c] for c in classes])
        for got in _package_outputs(r.path, tmp_path).values():
            assert np.max(np.abs(got[0] - ref)) <= ex.CHECK_TOLERANCE
        back = resolve_model(r.path)
        assert back.classes == classes and back.arch == arch and back.input_size == size


def test_temperature_follows_what_classify_does(tmp_path):
    """A temperature in the checkpoint is declared (scale_linear before softmax) exactly when
    classify() applies it (``extra.calibration.temperature``); one recorded elsewhere, which classify()
    ignores, is left out of the package, which says so."""
    src = _tiny_classifier(tmp_path, calibration={"temperature": 2.5})  # top level: not what classify reads
    r = ex.export_bioimageio(src, tmp_path / "plain.zip")
    post = _rdf(_members(r.path))["outputs"][0]["postprocessing"]
    assert [s["id"] for s in post] == ["softmax"] and r.temperature is None
    assert any("temperature 2.5" in n for n in r.notes)

    src = _tiny_classifier(tmp_path, extra={"calibration": {"temperature": 2.5}})
    r = ex.export_bioimageio(src, tmp_path / "calibrated.zip")
    post = _rdf(_members(r.path))["outputs"][0]["postprocessing"]
    assert post[0] == {"id": "scale_linear", "kwargs": {"gain": 0.4, "offset": 0.0}} and post[1]["id"] == "softmax"
    assert r.temperature == 2.5
    x = _npy(_members(r.path)[ex.TEST_INPUT_FILE])
    res = classify(x[0, 0], x[0, 1], src)
    ref = np.array([res.probabilities[c] for c in res.classes])
    for got in _package_outputs(r.path, tmp_path).values():
        assert np.max(np.abs(got[0] - ref)) <= ex.CHECK_TOLERANCE


def test_yaml_writer_round_trips():
    obj = {"a": 1e-6, "b": [1.5e20, 2.0, -3e-7, 0], "c": "x: y # z", "d": "\u2028é😀\n\t\"q\"", "yes": True, "n": None,
           "e": [], "f": {}, "g": [[1, 2], {"h": [], "i": {"j": "null"}}], "k-l": "-", "true": "false"}
    assert yaml.safe_load(ex.to_yaml(obj)) == obj


# --------------------------------------------------------------------------------------------------
# loading back
# --------------------------------------------------------------------------------------------------
def test_packages_load_back_exactly(packages, tiny_checkpoints, tmp_path):
    for kind, r in packages.items():
        orig = load_checkpoint(tiny_checkpoints[kind])
        unpacked = tmp_path / f"{kind}-unpacked"
        with zipfile.ZipFile(r.path) as zf:
            zf.extractall(unpacked)
        for src in (r.path, str(r.path), unpacked):
            m = resolve_model(src, kind=kind)
            assert m.kind == kind and m.arch == orig.arch and m.classes == orig.classes
            assert m.meta == orig.meta
            sd = m.model.state_dict()
            assert all(torch.equal(sd[k], v) for k, v in orig.model.state_dict().items())
        with pytest.raises(CheckpointError, match=f"is {'a' if kind == 'classifier' else 'an'} {kind} checkpoint"):
            resolve_model(r.path, kind="autoencoder" if kind == "classifier" else "classifier")
    # and it gives the same answers
    x = _npy(_members(packages["classifier"].path)[ex.TEST_INPUT_FILE])
    a = classify(x[0, 0], x[0, 1], packages["classifier"].path)
    b = classify(x[0, 0], x[0, 1], tiny_checkpoints["classifier"])
    assert a.label == b.label and a.probabilities == b.probabilities


def test_cli_export_and_model_zip(tmp_path, tiny_checkpoints, capsys):
    import tifffile

    out = tmp_path / "shared" / "clf.zip"
    assert main(["export", str(tiny_checkpoints["classifier"]), str(out), "--author", "Ada Lovelace",
                 "--name", "my organelle model, v2!"]) == 0
    o = capsys.readouterr().out
    assert f"Wrote the bioimage.io package {out}" in o and "bioimageio test" in o
    rdf = _rdf(_members(out))
    assert rdf["authors"] == [{"name": "Ada Lovelace"}] and rdf["name"] == "my organelle model- v2"
    x = _npy(_members(out)[ex.TEST_INPUT_FILE])[0]
    img = tmp_path / "cell.tif"
    tifffile.imwrite(img, x.astype(np.uint16))
    assert main(["classify", str(img), "--model", str(out), "--device", "cpu"]) == 0
    assert "cell.tif" in capsys.readouterr().out
    # errors: one line, exit 2, nothing written
    for argv, msg in [
        (["export", "bundled-classifier", str(tmp_path / "x.tar")], "a bioimage.io package is a .zip file"),
        (["export", "bundled-classifier", str(out)], "already exists"),
        (["export", "no such model", str(tmp_path / "y.zip")], "No model named or at 'no such model'"),
        (["export", str(out), str(out), "--overwrite"], "is the model being exported"),
        (["export", "bundled-classifier", str(tmp_path)], "is a folder"),
        (["export", "bundled-classifier", str(tmp_path / "z.zip"), "--license", "my licence"], "SPDX"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "y.zip").exists() and not (tmp_path / "z.zip").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["clf.zip"]  # no temporary files left


def test_failed_export_leaves_nothing(tmp_path, tiny_checkpoints, monkeypatch):
    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    out = tmp_path / "pkg.zip"
    monkeypatch.setattr(ex.zipfile.ZipFile, "writestr", boom)
    with pytest.raises(OSError):
        ex.export_bioimageio(tiny_checkpoints["classifier"], out)
    assert list(tmp_path.iterdir()) == []


def test_export_takes_loaded_and_trained_models(tmp_path, tiny_checkpoints, fine_tuned):
    """What the fine-tune dock holds: a LoadedModel (here changed in place, as training does) or
    what recipes.train_model returns."""
    m = load_checkpoint(tiny_checkpoints["classifier"], name="tuned in the dock")
    with torch.no_grad():
        m.model.head.bias.add_(0.5)
    r = ex.export_bioimageio(m, tmp_path / "loaded.zip")
    back = resolve_model(r.path)
    assert torch.equal(back.model.head.bias, m.model.head.bias)
    assert r.name == "napari-organelle tuned in the dock"

    r = ex.export_bioimageio(fine_tuned, tmp_path / "trained.zip")
    back = resolve_model(r.path)
    assert back.meta["training"]["fine_tuned_from"] and back.meta["metrics"] == fine_tuned.checkpoint["metrics"]
    assert "Fine-tuned from" in _members(r.path)["README.md"].decode()


# --------------------------------------------------------------------------------------------------
# untrusted and foreign packages
# --------------------------------------------------------------------------------------------------
def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    return path


def _repack(src: Path, dst: Path, *, replace: dict[str, bytes] | None = None, rdf_edit=None, drop=()) -> Path:
    files = _members(src)
    files.update(replace or {})
    if rdf_edit is not None:
        rdf = _rdf(files)
        rdf_edit(rdf)
        files["rdf.yaml"] = ex.to_yaml(rdf).encode()
    return _zip(dst, {n: b for n, b in files.items() if n not in drop})


def test_foreign_and_non_model_packages_get_a_clear_message(tmp_path, packages):
    foreign = {"type": "model", "format_version": "0.5.4", "name": "UNet nuclei", "config": {"other-tool": {}}}
    p = _zip(tmp_path / "unet.zip", {"rdf.yaml": ex.to_yaml(foreign).encode(), "weights.pt": b"x"})
    with pytest.raises(CheckpointError) as e:
        resolve_model(p)
    msg = str(e.value)
    assert "unet.zip is a bioimage.io model package ('UNet nuclei', format 0.5.4)" in msg
    assert "napari-organelle did not export" in msg and "bioimage.io consumer" in msg
    # the same as a folder, and through the CLI
    folder = tmp_path / "unet"
    folder.mkdir()
    (folder / "rdf.yaml").write_text(ex.to_yaml(foreign))
    with pytest.raises(CheckpointError, match="napari-organelle did not export"):
        resolve_model(folder)
    ds = _zip(tmp_path / "ds.zip", {"rdf.yaml": b"type: dataset\nname: cells\n"})
    with pytest.raises(CheckpointError, match="is a bioimage.io dataset package"):
        load_checkpoint(ds)
    other = _zip(tmp_path / "photos.zip", {"a.txt": b"hello"})
    with pytest.raises(CheckpointError, match="neither a bioimage.io model package"):
        load_checkpoint(other)
    notyaml = _zip(tmp_path / "bad.zip", {"rdf.yaml": b"type: [model\n"})
    with pytest.raises(CheckpointError, match="not valid YAML"):
        load_checkpoint(notyaml)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(CheckpointError, match="is a folder, not a model file"):
        load_checkpoint(empty_dir)


def test_cli_names_a_foreign_package(tmp_path, capsys):
    foreign = {"type": "model", "format_version": "0.5.3", "name": "some denoiser"}
    p = _zip(tmp_path / "denoiser.zip", {"rdf.yaml": ex.to_yaml(foreign).encode()})
    img = tmp_path / "c.tif"
    import tifffile

    tifffile.imwrite(img, (np.random.default_rng(0).random((40, 40)) * 1000).astype(np.uint16))
    assert main(["classify", str(img), "--model", str(p)]) == 2
    err = capsys.readouterr().err
    assert "denoiser.zip is a bioimage.io model package ('some denoiser'" in err and "Traceback" not in err


def test_unsafe_member_names_are_refused(tmp_path, packages):
    """The rdf names the checkpoint: a path out of the package (zip slip) is refused, and nothing is
    ever extracted by the names the zip gives."""
    src = packages["classifier"].path
    ckpt = _members(src)[ex.CHECKPOINT_FILE]
    outside = tmp_path / "outside"
    for bad in ("../evil.pt", "/etc/evil.pt", "sub/evil.pt", "..\\evil.pt", "C:evil.pt", ".hidden.pt"):
        def edit(rdf, bad=bad):
            rdf["config"]["napari-organelle"]["checkpoint"] = bad
            rdf["attachments"] = [{"source": bad, "sha256": hashlib.sha256(ckpt).hexdigest()}]
        p = _repack(src, tmp_path / "slip.zip", rdf_edit=edit, replace={bad: ckpt, "../../outside/x.txt": b"pwned"})
        with pytest.raises(CheckpointError, match="not a plain file name"):
            load_checkpoint(p)
    assert not outside.exists()


def test_oversized_and_bomb_members_are_refused(tmp_path, packages, monkeypatch):
    from napari_organelle import checkpoints

    src = packages["classifier"].path
    monkeypatch.setattr(checkpoints, "MAX_PACKAGE_CHECKPOINT_BYTES", 10_000)
    with pytest.raises(CheckpointError, match=r"napari_organelle_model.pt expands to \d+ kB, more than the 10 kB allowed"):
        load_checkpoint(src)
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(src) as zf:
        zf.extractall(folder)
    with pytest.raises(CheckpointError, match="is larger than 10 kB"):
        load_checkpoint(folder)
    monkeypatch.undo()
    zeros = b"\0" * (4 << 20)  # compresses about 1000x
    bomb = _repack(src, tmp_path / "bomb.zip", replace={ex.CHECKPOINT_FILE: zeros}, rdf_edit=lambda rdf: rdf.update(
        attachments=[{"source": ex.CHECKPOINT_FILE, "sha256": hashlib.sha256(zeros).hexdigest()}]))
    with pytest.raises(CheckpointError, match="zip bomb"):
        load_checkpoint(bomb)
    big_rdf = _repack(src, tmp_path / "bigrdf.zip", replace={"rdf.yaml": b"# " + b"x" * (2 << 20)},
                      )
    with pytest.raises(CheckpointError, match="rdf.yaml expands to|larger than"):
        load_checkpoint(big_rdf)
    many = _zip(tmp_path / "many.zip", {"rdf.yaml": b"type: model\n", **{f"f{i}": b"" for i in range(1001)}})
    with pytest.raises(CheckpointError, match="holds 1002 files"):
        load_checkpoint(many)


def test_tampered_missing_or_code_running_checkpoints_are_refused(tmp_path, packages):
    src = packages["classifier"].path
    other = _members(packages["autoencoder"].path)[ex.CHECKPOINT_FILE]
    swapped = _repack(src, tmp_path / "swapped.zip", replace={ex.CHECKPOINT_FILE: other})
    with pytest.raises(CheckpointError, match="does not match the SHA-256 hash its rdf.yaml lists"):
        load_checkpoint(swapped)
    missing = _repack(src, tmp_path / "missing.zip", drop=(ex.CHECKPOINT_FILE,))
    with pytest.raises(CheckpointError, match="lacks napari_organelle_model.pt"):
        load_checkpoint(missing)
    nohash = _repack(src, tmp_path / "nohash.zip", rdf_edit=lambda rdf: rdf.pop("attachments"))
    with pytest.raises(CheckpointError, match="lists no SHA-256 hash"):
        load_checkpoint(nohash)

    class Evil:
        def __init__(self, marker):
            self.marker = marker

        def __reduce__(self):
            return (open, (self.marker, "w"))

    marker = tmp_path / "PWNED"
    ck = read_checkpoint(_members_to_file(src, tmp_path))
    ck["training"]["note"] = Evil(str(marker))
    buf = io.BytesIO()
    torch.save(ck, buf)
    evil = buf.getvalue()
    p = _repack(src, tmp_path / "evil.zip", replace={ex.CHECKPOINT_FILE: evil}, rdf_edit=lambda rdf: rdf.update(
        attachments=[{"source": ex.CHECKPOINT_FILE, "sha256": hashlib.sha256(evil).hexdigest()}]))
    with pytest.raises(CheckpointError, match="contains code that would run when loaded"):
        resolve_model(p)
    assert not marker.exists()
    # a truncated zip
    cut = tmp_path / "cut.zip"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(cut)


def _members_to_file(pkg: Path, tmp_path: Path) -> Path:
    f = tmp_path / "extracted.pt"
    f.write_bytes(_members(pkg)[ex.CHECKPOINT_FILE])
    return f


def test_unpacked_folder_checkpoint_must_stay_inside(tmp_path, packages):
    folder = tmp_path / "pkg"
    with zipfile.ZipFile(packages["classifier"].path) as zf:
        zf.extractall(folder)
    real = tmp_path / "elsewhere.pt"
    (folder / ex.CHECKPOINT_FILE).rename(real)
    (folder / ex.CHECKPOINT_FILE).symlink_to(real)
    with pytest.raises(CheckpointError, match="outside it"):
        load_checkpoint(folder)


# --------------------------------------------------------------------------------------------------
# bioimageio.core (optional extra): `bioimageio test`, network refused
# --------------------------------------------------------------------------------------------------
def _offline_prefix() -> list[str]:
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-n"]
    return []


def bioimageio_test(pkg: Path, tmp_path: Path) -> dict:
    """``bioimageio test PKG`` in a subprocess with the network refused (no network namespace where
    unshare works, and tests/no_network.py's audit hook, which fails on any attempt, always)."""
    summary = tmp_path / f"{pkg.stem}-summary.json"
    cmd = _offline_prefix() + [sys.executable, str(HERE / "no_network.py"), "-m", "bioimageio.core", "test", str(pkg),
                               "--summary", str(summary), "--devices", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s = json.loads(summary.read_text())
    assert s["status"] == "passed", json.dumps(s["details"], indent=1)[:3000]
    return s


@needs_bioimageio
def test_bioimageio_validates_the_package_format(packages):
    from bioimageio.spec import load_description

    for r in packages.values():
        d = load_description(r.path, perform_io_checks=True)
        assert d.validation_summary.status == "valid-format", d.validation_summary.format()
        assert str(d.name) == r.name


@needs_bioimageio
def test_bioimageio_test_passes_offline(packages, tmp_path, fine_tuned):
    """Both tiny models, and a model fine-tuned for one epoch on a few simulated cells. (.ci/bioimageio_check
    does the same for the bundled models and one fine-tuned from the bundled classifier.)"""
    tuned = ex.export_bioimageio(fine_tuned, tmp_path / "fine-tuned.zip")
    for r in (packages["classifier"], packages["autoencoder"], tuned):
        s = bioimageio_test(r.path, tmp_path)
        ran = {d["name"]: d["status"] for d in s["details"]}
        for fmt in ("pytorch_state_dict", "torchscript"):
            assert ran[f"Reproduce test outputs from test inputs ({fmt})"] == "passed"


def test_no_network_guard_catches_attempts(tmp_path):
    """The guard used above really fails a command that tries the network, even one that catches the error."""
    script = tmp_path / "net.py"
    script.write_text("import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
                      "except OSError as e:\n    print('caught', e)\n")
    r = subprocess.run([sys.executable, str(HERE / "no_network.py"), str(script)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 3 and "network access attempt" in r.stderr and "caught" in r.stdout
    ok = tmp_path / "ok.py"
    ok.write_text("import socket\ns = socket.socket()\ntry:\n    s.connect(('127.0.0.1', 9))\nexcept OSError:\n    pass\n")
    r = subprocess.run([sys.executable, str(HERE / "no_network.py"), str(ok)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_an_architecture_without_a_standalone_twin_is_refused_clearly(tmp_path, tiny_checkpoints, monkeypatch):
    monkeypatch.setattr(ex, "ARCH_CALLABLES", {k: v for k, v in ex.ARCH_CALLABLES.items() if k[1] != "organelle-cnn"})
    with pytest.raises(ex.ExportError, match="'organelle-cnn' has no standalone version"):
        ex.export_bioimageio(tiny_checkpoints["classifier"], tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
