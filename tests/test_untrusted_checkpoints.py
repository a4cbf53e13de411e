"""Opening a model file from a colleague must never run code, and metadata is validated before any
weight is applied. Extends test_checkpoints.py::test_refuses_code to every way a user opens a
model: the CLI (--model), resolve_model (names and paths) and the classify dock's "Load from file".
"""

from __future__ import annotations

import pickle

import pytest
import torch

from napari_organelle.checkpoints import CheckpointError, checkpoint_dict, load_checkpoint, resolve_model
from napari_organelle.classes import CLASSES
from napari_organelle.cli import main
from napari_organelle.models.registry import build_model


class _Evil:
    """Unpickling this creates ``marker`` (stands in for any code an attacker would run)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _tiny(n):
    torch.manual_seed(0)
    return build_model("classifier", num_classes=n, stem=8, widths=(8, 16), blocks=(1, 1)).eval()


@pytest.fixture
def evil(tmp_path):
    """(path of a checkpoint whose pickle would create ``marker``, marker path)."""
    marker = tmp_path / "PWNED"
    ckpt = checkpoint_dict(_tiny(10), kind="classifier", arch="organelle-cnn", classes=list(CLASSES),
                           input_size=32, training={}, metrics={})
    ckpt["training"]["note"] = _Evil(str(marker))
    p = tmp_path / "evil.pt"
    torch.save(ckpt, p)
    assert not marker.exists()
    return p, marker


def test_loading_uses_weights_only(monkeypatch, tmp_path):
    from napari_organelle import checkpoints

    seen = []
    real = torch.load

    def spy(*a, **k):
        seen.append(k.get("weights_only"))
        return real(*a, **k)

    monkeypatch.setattr(checkpoints.torch, "load", spy)
    p = tmp_path / "ok.pt"
    torch.save(checkpoint_dict(_tiny(3), kind="classifier", arch="organelle-cnn", classes=["a", "b", "c"],
                               training={}, metrics={}), p)
    load_checkpoint(p)
    assert seen == [True]


def test_cli_model_evil_is_refused_and_never_runs(evil, tmp_path, capsys):
    p, marker = evil
    img = tmp_path / "cell.tif"
    import numpy as np
    import tifffile

    tifffile.imwrite(img, (np.random.default_rng(0).random((40, 40)) * 1000).astype(np.uint16))
    assert main(["classify", str(img), "--model", str(p)]) == 2
    err = capsys.readouterr().err
    assert "evil.pt contains code that would run when loaded; it was refused" in err
    assert "Traceback" not in err and not marker.exists()


def test_resolve_model_refuses_by_path_and_by_store_name(evil, organelle_home):
    p, marker = evil
    with pytest.raises(CheckpointError, match="contains code"):
        resolve_model(str(p), "classifier")
    (organelle_home / "colleague.pt").write_bytes(p.read_bytes())
    with pytest.raises(CheckpointError, match="contains code"):
        resolve_model("colleague", "classifier")
    from napari_organelle.checkpoints import list_models

    listed = {m.name: m for m in list_models()}  # listing the store reads metadata safely too
    assert listed["colleague"].error and "contains code" in listed["colleague"].error
    assert not marker.exists()


def test_legacy_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    p = tmp_path / "legacy.pt"
    with open(p, "wb") as f:
        pickle.dump({"format": "napari-organelle-checkpoint", "x": _Evil(str(marker))}, f)
    with pytest.raises(CheckpointError, match="code"):
        resolve_model(str(p), "classifier")
    assert not marker.exists()


@pytest.mark.qt
def test_classify_dock_load_from_file_refuses(evil, make_napari_viewer_proxy, qtbot, tiny_models, monkeypatch):
    from napari.utils.notifications import notification_manager

    from napari_organelle.widgets._models import LOAD_FROM_FILE
    from napari_organelle.widgets._state import STATE

    p, marker = evil
    viewer = make_napari_viewer_proxy()
    _, w = viewer.window.add_plugin_dock_widget("napari-organelle", "Classify organelles")
    before = STATE.peek("classifier")
    monkeypatch.setattr("napari_organelle.widgets._models.show_file_dialog", lambda **kw: str(p))
    n = len(notification_manager.records)
    picker = w.model
    picker.combo.value = LOAD_FROM_FILE  # what choosing the item does: the file dialog, then a load
    assert picker.loading is not None
    qtbot.waitUntil(lambda: picker.loading is None, timeout=30_000)
    msgs = [str(r.message) for r in notification_manager.records[n:]]
    assert any("evil.pt contains code that would run when loaded" in m for m in msgs), msgs
    assert STATE.peek("classifier") is before  # the active model did not change
    assert picker.combo.value != LOAD_FROM_FILE
    assert not marker.exists()


def test_metadata_validated_before_weights_are_applied(monkeypatch):
    """10 classes in the metadata, a 3-output head: refused before load_state_dict is ever called."""
    calls = []
    real = torch.nn.Module.load_state_dict

    def spy(self, *a, **k):
        calls.append(type(self).__name__)
        return real(self, *a, **k)

    monkeypatch.setattr(torch.nn.Module, "load_state_dict", spy)
    three = checkpoint_dict(_tiny(3), kind="classifier", arch="organelle-cnn", classes=["a", "b", "c"],
                            training={}, metrics={})
    # (1) class list says 10, architecture settings say 3
    with pytest.raises(CheckpointError, match="lists 10 classes but its architecture has 3 outputs"):
        load_checkpoint(dict(three, classes=list(CLASSES)))
    # (2) class list and settings say 10, the stored head has 3 rows
    bad = dict(three, classes=list(CLASSES), arch_kwargs={**three["arch_kwargs"], "num_classes": 10})
    with pytest.raises(CheckpointError, match="wrong shape.*head"):
        load_checkpoint(bad)
    # (3) NaN weights
    sd = {k: v.clone() for k, v in three["state_dict"].items()}
    sd["head.weight"][0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or infinite weights"):
        load_checkpoint(dict(three, state_dict=sd))
    # (4) a tensor where a class name belongs
    with pytest.raises(CheckpointError, match="class list"):
        load_checkpoint(dict(three, classes=[torch.zeros(1)] * 3))
    assert calls == []
    assert load_checkpoint(three).classes == ["a", "b", "c"] and calls
