import threading

import numpy as np
import pytest
import torch

from napari_organelle import training as tr
from napari_organelle.checkpoints import LoadedModel, load_checkpoint
from napari_organelle.preprocess import InputError
from napari_organelle.training import (BatchEvent, EpochEvent, TrainConfig, available_devices, format_epoch,
                                       resolve_device, train)

TINY = {"stem": 8, "widths": [8, 16], "blocks": [1, 1]}
TINY_AE = {"channels": [8, 16], "latent_channels": 4}

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def blob_ring(n, s=32, seed=0):
    """Class 0: bright centre blob; class 1: ring. DNA channel: small nucleus blob."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:s, :s]
    X = np.zeros((n, 2, s, s), np.float32)
    y = np.arange(n) % 2
    for i in range(n):
        cy, cx = s / 2 + g.normal(0, s / 20, 2)
        r = np.hypot(yy - cy, xx - cx) / (s / 4)
        X[i, 0] = np.exp(-2 * r ** 2) if y[i] == 0 else np.exp(-(((r - 1) / 0.25) ** 2))
        X[i, 1] = np.exp(-4 * r ** 2)
    X += g.normal(0, 0.02, X.shape).astype(np.float32)
    return np.clip(X, 0, 1), y.astype(np.int64)


@pytest.fixture(scope="module")
def data():
    return blob_ring(32, seed=0), blob_ring(16, seed=1)


def cfg(**kw):
    # one thread: the test machines are small and shared; oversubscribed OpenMP threads crawl
    base = dict(epochs=2, batch_size=8, lr=3e-3, device="cpu", seed=0, num_threads=1)
    base.update(kw)
    return TrainConfig(**base)


def fit(data, **kw):
    (Xt, yt), (Xv, yv) = data
    opts = {k: kw.pop(k) for k in list(kw) if k not in TrainConfig.__dataclass_fields__}
    opts.setdefault("arch_kwargs", None if "init" in opts else TINY)
    opts.setdefault("classes", None if "init" in opts else ["blob", "ring"])
    return train("classifier", (Xt, yt), (Xv, yv), cfg(**kw), **opts)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_learns_easy_task_with_events(data):
    events = []
    res = fit(data, epochs=15, lr=1e-2, augment=False, callback=events.append)
    batches = [e for e in events if isinstance(e, BatchEvent)]
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert len(epochs) == 15 and len(batches) == 15 * 4
    assert batches[0].batches == 4 and batches[0].phase == "train" and batches[-1].epoch == 15
    assert epochs[-1].train_loss < epochs[0].train_loss
    assert max(e.val_acc for e in epochs) >= 0.9
    assert res.best_val_loss == min(e.val_loss for e in epochs)
    assert res.history[res.best_epoch - 1].is_best and not res.stopped
    assert res.classes == ["blob", "ring"] and res.input_size == 32 and res.kind == "classifier"
    assert not res.model.training and next(res.model.parameters()).device.type == "cpu"
    # the returned model holds the best epoch's weights: recompute its validation loss
    (Xv, yv) = data[1]
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(res.model(torch.from_numpy(Xv)), torch.from_numpy(yv))
    assert abs(float(loss) - res.best_val_loss) < 1e-4
    ck = res.checkpoint(training={"data": "blob/ring"})
    lm = load_checkpoint(ck, expected_kind="classifier", expected_classes=["blob", "ring"])
    assert lm.meta["training"]["data"] == "blob/ring" and lm.meta["metrics"]["val_accuracy"] >= 0.9


def test_format_epoch():
    ev = EpochEvent(epoch=12, epochs=20, train_loss=0.4361, train_acc=0.77583, val_loss=0.9564, val_acc=0.546875,
                    seconds=12.2, best_epoch=12, is_best=True, lr=1e-3)
    assert format_epoch(ev) == ("Epoch: 12  Train loss: 0.436  Train Acc: 77.58%  Val Loss: 0.956  "
                                "Val Acc: 54.69%  Time: 12s")
    ae = EpochEvent(epoch=3, epochs=5, train_loss=0.00123, train_acc=None, val_loss=0.00101, val_acc=None,
                    seconds=9.4, best_epoch=3, is_best=True, lr=1e-3, val_psnr=31.23)
    assert "Val PSNR: 31.2 dB" in format_epoch(ae) and "Acc" not in format_epoch(ae)


def test_should_stop(data):
    # stop after the first epoch (Event set by the callback): best weights, stopped=True
    ev = threading.Event()
    res = fit(data, epochs=5, callback=lambda e: ev.set() if isinstance(e, EpochEvent) else None, should_stop=ev)
    assert res.stopped and len(res.history) == 1 and res.best_epoch == 1 and "user" in res.stop_reason
    # stop before any epoch finished: initial weights, stopped=True
    torch.manual_seed(0)
    init_model = tr.build_model("classifier", num_classes=2, **TINY)
    init = LoadedModel(init_model.eval(), "classifier", "organelle-cnn", ["blob", "ring"], 32)
    before = weights(init_model)
    res = fit(data, init=init, should_stop=lambda: True)
    assert res.stopped and res.best_epoch == 0 and res.history == [] and "unchanged" in res.stop_reason
    assert same(before, weights(res.model))


def test_seeded_runs_repeat(data):
    a = fit(data, epochs=1, seed=3)
    b = fit(data, epochs=1, seed=3)
    c = fit(data, epochs=1, seed=4)
    assert same(weights(a.model), weights(b.model))
    assert not same(weights(a.model), weights(c.model))
    assert a.history[0].train_loss == b.history[0].train_loss


def test_finetune_new_classes_keeps_init(data):
    base = fit(data, epochs=1)
    init = LoadedModel(base.model, "classifier", "organelle-cnn", ["blob", "ring"], 32)
    before = weights(init.model)
    (Xt, yt), (Xv, yv) = data
    # new class list: "ring" is shared (head row kept), "blob" is dropped, "other" is new
    res = train("classifier", (Xt, 1 - yt), (Xv, 1 - yv), cfg(epochs=1, freeze_backbone=True, lr=1e-2),
                init=init, classes=["ring", "other"])
    assert same(before, weights(init.model))  # the model in use never changes
    assert res.classes == ["ring", "other"] and res.model.head.out_features == 2
    new = weights(res.model)
    for k, v in before.items():
        if not k.startswith("head."):
            assert torch.equal(v, new[k]), k  # frozen backbone (incl. BatchNorm statistics)
    assert not torch.equal(new["head.weight"], before["head.weight"])
    # unfrozen fine-tune: the shared class's row starts from the old one, backbone trains
    res2 = train("classifier", (Xt, 1 - yt), (Xv, 1 - yv), cfg(epochs=1, lr=1e-4), init=init,
                 classes=["ring", "other"], should_stop=lambda: True)
    w2 = weights(res2.model)
    assert torch.equal(w2["head.weight"][0], before["head.weight"][1])
    assert torch.equal(w2["stem.0.weight"], before["stem.0.weight"])
    with pytest.raises(InputError, match="classifier"):
        train("autoencoder", [Xt[0, 0]], [Xv[0, 0]], cfg(epochs=1), init=init)


def test_checkpoint_path_and_resume(data, tmp_path):
    path = tmp_path / "run" / "best.pt"
    res = fit(data, epochs=2, checkpoint_path=path, training_meta={"data": "blob/ring"})
    lm = load_checkpoint(path, expected_kind="classifier")
    assert lm.meta["training"]["data"] == "blob/ring" and lm.meta["training"]["best_epoch"] == res.best_epoch
    assert same(weights(lm.model), weights(res.model))
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt"]
    res2 = fit(data, epochs=1, init=lm)
    assert res2.classes == ["blob", "ring"] and len(res2.history) == 1


def test_argument_errors(data):
    (Xt, yt), (Xv, yv) = data
    with pytest.raises(InputError, match="Epochs"):
        fit(data, epochs=0)
    with pytest.raises(InputError, match="Batch size"):
        fit(data, batch_size=0)
    with pytest.raises(InputError, match="labels"):
        train("classifier", (Xt, yt[:-1]), (Xv, yv), cfg())
    with pytest.raises(InputError, match="empty"):
        train("classifier", (Xt[:0], yt[:0]), (Xv, yv), cfg())
    with pytest.raises(InputError, match="2 classes"):
        train("classifier", (Xt, yt + 1), (Xv, yv), cfg(), classes=["a", "b"])
    with pytest.raises(InputError, match="validation"):
        train("classifier", (Xt, yt), None, cfg(), classes=["a", "b"])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        train("classifier", (Xt * 300, yt), (Xv, yv), cfg(), classes=["a", "b"])
    # batch size larger than the data: clamped
    res = fit(data, epochs=1, batch_size=1000)
    assert len(res.history) == 1


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(InputError, match="Unknown device"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="CUDA is not available on this machine; use cpu or auto"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InputError, match="cuda:3 does not exist: this machine has 1 CUDA device"):
        resolve_device("cuda:3")
    monkeypatch.undo()
    specs = [s for s, _ in available_devices()]
    assert specs[:2] == ["auto", "cpu"]


def test_simulated_oom(data, tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    res = fit(data, epochs=1, checkpoint_path=path)
    good = path.read_bytes()
    lm = load_checkpoint(path)
    before = weights(lm.model)
    real = tr._train_step
    calls = {"n": 0}

    def step(*a, **k):
        calls["n"] += 1
        if calls["n"] > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*a, **k)

    monkeypatch.setattr(tr, "_train_step", step)
    with pytest.raises(InputError, match="CUDA ran out of memory at batch size 8; try batch size 4 or the CPU"):
        fit(data, epochs=3, init=lm, checkpoint_path=path)
    assert path.read_bytes() != b""
    assert same(before, weights(lm.model))
    assert load_checkpoint(path).meta["training"]["best_epoch"] >= 1
    # other errors propagate unchanged, the checkpoint stays loadable
    monkeypatch.setattr(tr, "_train_step", lambda *a, **k: (_ for _ in ()).throw(ValueError("boom")))
    with pytest.raises(ValueError, match="boom"):
        fit(data, epochs=1, init=lm, checkpoint_path=path)
    load_checkpoint(path)
    assert res.best_epoch == 1 and good


def test_autoencoder_trains():
    g = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]

    def plane():
        p = np.zeros((48, 48))
        for _ in range(6):
            cy, cx = g.uniform(0, 48, 2)
            p += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * g.uniform(3, 8) ** 2))
        return (p / p.max()).astype(np.float32)

    train_planes = [plane() for _ in range(24)]
    val = [np.stack([plane(), np.zeros((48, 48), np.float32)]) for _ in range(4)]  # (2,H,W), empty DNA skipped
    events = []
    res = train("autoencoder", train_planes, val,
                TrainConfig(epochs=8, batch_size=4, lr=3e-3, device="cpu", crop_size=32, num_threads=1),
                arch_kwargs=TINY_AE, callback=events.append)
    eps = [e for e in events if isinstance(e, EpochEvent)]
    assert res.n_val == 4 and res.input_size == 32 and res.classes is None
    assert all(e.val_psnr is not None and e.val_acc is None for e in eps)
    assert max(e.val_psnr for e in eps) > eps[0].val_psnr + 1.0
    assert eps[-1].train_loss < eps[0].train_loss
    assert "Val PSNR" in format_epoch(eps[-1])
    ck = res.checkpoint(training={"data": "blobs"})
    lm = load_checkpoint(ck, expected_kind="autoencoder")
    assert lm.meta["metrics"]["val_psnr"] == pytest.approx(eps[res.best_epoch - 1].val_psnr)
    x = torch.rand(1, 1, 50, 41)
    with torch.no_grad():
        assert lm.model(x).shape == x.shape


# --------------------------------------------------------------------------------------------------
# Fine-tuning: the starting model is "epoch 0" and must be beaten to be replaced
@pytest.fixture(scope="module")
def trained(data):
    """A tiny classifier that has learnt blob/ring (val accuracy 1.0) as a LoadedModel."""
    res = fit(data, epochs=12, lr=1e-2, augment=False)
    assert res.history[res.best_epoch - 1].val_acc >= 0.9
    return LoadedModel(res.model, "classifier", "organelle-cnn", ["blob", "ring"], 32, name="trained")


@pytest.mark.parametrize("kw", [dict(lr=1e-10, freeze_backbone=True),  # nothing changes
                                dict(lr=1.0)],                          # every epoch is far worse
                         ids=["tiny-lr", "huge-lr"])
def test_finetune_that_does_not_improve_returns_the_starting_model(data, trained, kw):
    before = weights(trained.model)
    (Xv, yv) = data[1]
    with torch.no_grad():
        start_loss = float(torch.nn.functional.cross_entropy(trained.model.eval()(torch.from_numpy(Xv)),
                                                             torch.from_numpy(yv)))
    events = []
    res = fit(data, init=trained, epochs=2, callback=events.append, **kw)
    assert res.baseline is not None and res.baseline["val_loss"] == pytest.approx(start_loss, abs=1e-4)
    assert res.baseline["val_accuracy"] == 1.0
    assert len(res.history) == 2 and all(ev.val_loss >= res.baseline["val_loss"] for ev in res.history)
    assert res.best_epoch == 0 and not res.improved and res.best_val_loss == res.baseline["val_loss"]
    assert same(before, weights(res.model)) and res.model is not trained.model
    assert "no epoch improved on the starting model" in res.stop_reason
    assert "the model is unchanged" in res.stop_reason
    assert all(ev.best_epoch == 0 and not ev.is_best for ev in events if isinstance(ev, EpochEvent))
    # the checkpoint says so too: training info has the baseline, metrics are the starting model's
    lm = load_checkpoint(res.checkpoint(), expected_kind="classifier")
    assert lm.training_info["baseline"]["val_loss"] == pytest.approx(res.baseline["val_loss"])
    assert lm.training_info["best_epoch"] == 0
    assert lm.metrics["val_accuracy"] == 1.0 and "no epoch improved" in lm.metrics["measured_on"]


def test_finetune_that_improves_reports_the_baseline(data, trained, tmp_path):
    path = tmp_path / "best.pt"
    res = fit(data, init=trained, epochs=2, lr=1e-3, checkpoint_path=path)
    assert res.baseline is not None and res.improved and res.best_epoch >= 1
    assert res.best_val_loss < res.baseline["val_loss"]
    assert res.best_val_loss == min(ev.val_loss for ev in res.history)
    assert f"best epoch {res.best_epoch}" in res.stop_reason
    assert not same(weights(trained.model), weights(res.model))
    lm = load_checkpoint(path)
    assert lm.training_info["baseline"] == pytest.approx(res.baseline)
    assert "baseline" in res.checkpoint()["training"]
    # from scratch there is no baseline: the first finished epoch is the best so far
    scratch = fit(data, epochs=1)
    assert scratch.baseline is None and scratch.best_epoch == 1 and "baseline" not in scratch.checkpoint()["training"]


def test_finetune_new_head_has_a_baseline_that_training_beats(data, trained):
    (Xt, yt), (Xv, yv) = data
    res = train("classifier", (Xt, 1 - yt), (Xv, 1 - yv), cfg(epochs=1, lr=1e-2, freeze_backbone=True),
                init=trained, classes=["ring", "other"])
    assert res.baseline is not None and res.best_epoch == 1
    assert res.best_val_loss < res.baseline["val_loss"]


def test_stop_before_the_first_epoch_when_fine_tuning_keeps_the_start(data, trained):
    res = fit(data, init=trained, should_stop=lambda: True)
    assert res.stopped and res.best_epoch == 0 and res.baseline is not None
    assert "unchanged" in res.stop_reason and same(weights(trained.model), weights(res.model))


def test_early_stopping_against_the_starting_model(data, trained):
    res = fit(data, init=trained, epochs=5, lr=1.0, patience=2)
    assert len(res.history) == 2 and res.best_epoch == 0
    assert "early stopping" in res.stop_reason and "no epoch improved on the starting model" in res.stop_reason


def _ae_planes(n, seed):
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :48]
    out = []
    for _ in range(n):
        p = np.zeros((48, 48))
        for _ in range(6):
            cy, cx = g.uniform(0, 48, 2)
            p += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * g.uniform(3, 8) ** 2))
        out.append((p / p.max()).astype(np.float32))
    return out


def test_autoencoder_finetune_baseline():
    tr_planes, va_planes = _ae_planes(16, 0), _ae_planes(4, 1)

    def ae_cfg(**kw):
        return TrainConfig(**{**dict(epochs=3, batch_size=4, lr=3e-3, device="cpu", crop_size=32, num_threads=1),
                              **kw})

    base = train("autoencoder", tr_planes, va_planes, ae_cfg(epochs=8), arch_kwargs=TINY_AE)
    init = LoadedModel(base.model, "autoencoder", "organelle-ae", None, 32, name="ae")
    before = weights(init.model)
    # a learning rate far too high: every epoch is worse, the starting weights come back
    bad = train("autoencoder", tr_planes, va_planes, ae_cfg(epochs=2, lr=1.0), init=init)
    assert bad.baseline["val_psnr"] == pytest.approx(base.best_event.val_psnr, abs=1e-3)
    assert bad.best_epoch == 0 and same(before, weights(bad.model))
    assert "no epoch improved on the starting model" in bad.stop_reason
    # a sensible one improves on it, and the baseline is reported alongside
    good = train("autoencoder", tr_planes, va_planes, ae_cfg(epochs=2, lr=3e-3), init=init)
    assert good.best_epoch >= 1 and good.best_event.val_psnr > good.baseline["val_psnr"]


@pytest.mark.parametrize("wide", [True, False])
def test_random_transfer_is_monotone_and_keeps_the_ends(wide):
    gen = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, 101).repeat(64, 2, 1, 1)  # (64, 2, 1, 101): 128 curves
    out = tr.random_transfer(ramp, gen, wide=wide)
    assert out.shape == ramp.shape
    assert torch.all(out.diff(dim=-1) >= -1e-6), "every transfer is non-decreasing"
    assert torch.allclose(out[..., 0], torch.zeros(1), atol=1e-5)
    assert torch.allclose(out[..., -1], torch.ones(1), atol=1e-5)
    mid = out[..., 50].flatten()  # what 0.5 becomes (gamma g sends it to 0.5 ** g)
    assert mid.std() > 0.01, "different curves for different samples and channels"
    if wide:  # S-curves and strong gammas send mid-grey almost anywhere
        assert mid.max() - mid.min() > 0.5
    else:  # gamma 0.7-1.43 only
        assert mid.min() >= 0.5 ** 1.43 - 1e-4 and mid.max() <= 0.5 ** 0.7 + 1e-4


def test_intensity_augmentation_is_a_checked_setting(data):
    with pytest.raises(InputError, match="Intensity augmentation"):
        fit(data, intensity="strong")
    res = fit(data, epochs=1, intensity="mild")
    assert res.checkpoint()["training"]["config"]["intensity"] == "mild"


def test_channels_last_only_for_networks_wide_enough_on_the_cpu():
    # torch 2.14's oneDNN backward corrupted the heap in channels-last for 4-channel convolutions on an
    # AVX2 CPU; such narrow networks train in the default layout on the CPU
    from napari_organelle.models import build_model

    assert tr._cl_safe_on_cpu(build_model("classifier", "organelle-cnn"))
    assert not tr._cl_safe_on_cpu(build_model("classifier", "organelle-cnn", stem=4, widths=(4, 8), blocks=(1, 1)))
    X = np.random.default_rng(0).random((12, 2, 32, 32)).astype(np.float32)
    y = np.arange(12) % 3
    res = train("classifier", (X, y), (X[:4], y[:4]), cfg(epochs=1, batch_size=4, channels_last=True),
                classes=["a", "b", "c"], arch_kwargs={"stem": 4, "widths": (4, 8), "blocks": (1, 1)})
    assert len(res.history) == 1 and np.isfinite(res.history[0].train_loss)
