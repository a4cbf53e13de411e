"""Faults mid-training: Stop, an exception inside an epoch, CUDA out of memory (simulated), an
interrupted checkpoint write, and SIGKILL of the process between epochs. In every case the model in
use and every saved file stay intact and loadable, the best checkpoint so far is recoverable, and a
fresh run resumes from it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from napari_organelle import training as tr
from napari_organelle.checkpoints import load_checkpoint
from napari_organelle.preprocess import InputError
from napari_organelle.training import BatchEvent, TrainConfig, train

TINY = {"stem": 8, "widths": (8, 16), "blocks": (1, 1)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)

    def make(n):
        x = torch.rand((n, 2, 24, 24), generator=g) * 0.2
        y = torch.arange(n) % 2
        x[y == 1, 0, 8:16, 8:16] += 0.7
        return x.clamp(0, 1), y

    return make(16), make(8)


def cfg(**kw):
    base = dict(epochs=3, batch_size=4, lr=3e-3, device="cpu", augment=False, dna_dropout=0.0, num_threads=1)
    base.update(kw)
    return TrainConfig(**base)


def fit(data, **kw):
    arch_kwargs = None if kw.get("init") is not None else {**TINY, "num_classes": 2}
    config = kw.pop("config", None) or cfg(**{k: kw.pop(k) for k in list(kw) if k in TrainConfig.__annotations__})
    return train("classifier", data[0], data[1], config, classes=["a", "b"], arch_kwargs=arch_kwargs, **kw)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def first(data, tmp_path):
    """A finished 1-epoch run saved to best.pt, loaded as the 'active' model, with its weights."""
    path = tmp_path / "best.pt"
    fit(data, epochs=1, checkpoint_path=path)
    active = load_checkpoint(path)
    return path, active, state(active.model), path.read_bytes()


def test_stop_mid_training_keeps_best_and_file(data, first):
    path, active, before, _ = first
    events = []

    def stop():
        return any(isinstance(e, BatchEvent) and e.epoch == 2 and e.batch == 2 for e in events)

    res = fit(data, epochs=5, init=active, checkpoint_path=path, callback=events.append, should_stop=stop)
    assert res.stopped and "stopped by the user during epoch 2" in res.stop_reason
    assert res.best_epoch == 1 and len(res.history) == 1
    assert same(before, state(active.model))  # the active model is untouched
    saved = load_checkpoint(path)
    assert saved.training_info["best_epoch"] == 1 and saved.training_info["in_progress"]
    assert same(state(saved.model), state(res.model))
    again = fit(data, epochs=1, init=saved)  # a fresh run resumes from it
    assert len(again.history) == 1


def test_exception_inside_an_epoch(data, first, monkeypatch):
    path, active, before, _ = first
    real, calls = tr._train_step, {"n": 0}

    def step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2 (4 batches per epoch)
            raise RuntimeError("boom: a bug in a batch")
        return real(*a, **k)

    monkeypatch.setattr(tr, "_train_step", step)
    with pytest.raises(RuntimeError, match="boom"):
        fit(data, epochs=4, init=active, checkpoint_path=path)
    monkeypatch.setattr(tr, "_train_step", real)
    assert same(before, state(active.model))
    saved = load_checkpoint(path)  # epoch 1 of the failed run: the best so far, intact
    assert saved.training_info["best_epoch"] == 1
    assert fit(data, epochs=1, init=saved).best_epoch == 1
    assert not [f for f in path.parent.iterdir() if f.name.endswith(".tmp")]


def test_cuda_out_of_memory_simulated(data, first, monkeypatch):
    path, active, before, _ = first
    real, calls = tr._train_step, {"n": 0}

    def step(*a, **k):
        calls["n"] += 1
        if calls["n"] > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(*a, **k)

    monkeypatch.setattr(tr, "_train_step", step)
    with pytest.raises(InputError, match="ran out of memory at batch size 4; try batch size 2"):
        fit(data, epochs=4, init=active, checkpoint_path=path)
    monkeypatch.setattr(tr, "_train_step", real)
    assert same(before, state(active.model))
    saved = load_checkpoint(path)
    assert saved.training_info["best_epoch"] == 1
    assert fit(data, epochs=1, batch_size=2, init=saved).best_epoch == 1


def test_oom_in_the_finetune_job_becomes_a_message():
    """The dock's worker turns an out-of-memory error it did not expect into a message with the fix."""
    from napari_organelle.widgets.finetune import _friendly_error

    req = {"kind": "classifier", "source": None, "val_fraction": 0.2, "config": cfg(batch_size=64)}
    err = _friendly_error(torch.cuda.OutOfMemoryError("CUDA out of memory."), req)
    assert "ran out of memory" in str(err) and "Lower the batch size" in str(err) and "64" in str(err)


def test_interrupted_checkpoint_write_leaves_previous_file(data, first, monkeypatch):
    """Killed while writing epoch 2's checkpoint: epoch 1's file is intact (atomic replace)."""
    from napari_organelle import checkpoints

    path, active, _, _ = first
    real = checkpoints.torch.save
    n = {"saves": 0}

    def dying_save(obj, f, *a, **k):
        n["saves"] += 1
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # the process is being stopped mid-write

    res1 = fit(data, epochs=1, init=active, checkpoint_path=path)
    good = path.read_bytes()
    monkeypatch.setattr(checkpoints.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        fit(data, epochs=3, init=active, checkpoint_path=path)
    monkeypatch.setattr(checkpoints.torch, "save", real)
    assert n["saves"] == 1 and path.read_bytes() == good
    assert sorted(f.name for f in path.parent.iterdir()) == ["best.pt"]
    assert load_checkpoint(path).training_info["best_epoch"] == res1.best_epoch


def test_sigkill_between_epochs_then_resume(tmp_path):
    """CLI train with --resume-file in a subprocess, SIGKILL after the first epoch line, load, resume."""
    from napari_organelle.phantoms import write_dataset

    cells = tmp_path / "cells"
    write_dataset(cells, 4, seed=1, size=40, classes=("ER", "Mitochondria", "Nucleus"))
    resume = tmp_path / "run" / "best-so-far.pt"
    final = tmp_path / "final.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "napari_organelle.cli", "train", str(cells), "--epochs", "500", "--batch-size", "2",
           "--size", "32", "--device", "cpu", "--out", str(final), "--resume-file", str(resume)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    lines = []
    try:
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Epoch: 1 "):
                break
            assert time.monotonic() < deadline, "no epoch line in 90 s"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert any(x.startswith("Epoch: 1 ") for x in lines), lines
    assert not final.exists()  # the run never finished
    saved = load_checkpoint(resume, expected_kind="classifier")
    assert saved.training_info["best_epoch"] >= 1 and saved.training_info["in_progress"]
    assert saved.classes == ["ER", "Mitochondria", "Nucleus"]
    from napari_organelle.cli import main

    assert main(["train", str(cells), "--epochs", "1", "--from", str(resume), "--device", "cpu",
                 "--out", str(final)]) == 0
    resumed = load_checkpoint(final)
    assert resumed.meta["training"]["fine_tuned_from"] and resumed.classes == saved.classes
