"""Temperature scaling, feature novelty and the uncertain flag (calibration.py, inference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_organelle import calibration
from napari_organelle.checkpoints import checkpoint_dict, load_checkpoint
from napari_organelle.inference import classify, iter_classify
from napari_organelle.models.registry import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_temperature_undoes_known_overconfidence():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (4000,), generator=g)
    true_logits = torch.randn(4000, 5, generator=g) + 2.0 * torch.nn.functional.one_hot(y, 5)
    # labels drawn from softmax(true_logits); the model reports them 3x too sharp
    y = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=g)[:, 0]
    t = calibration.fit_temperature(true_logits * 3, y)
    assert t == pytest.approx(3.0, rel=0.1)
    before = calibration.expected_calibration_error(torch.softmax(true_logits * 3, 1), y)
    after = calibration.expected_calibration_error(torch.softmax(true_logits * 3 / t, 1), y)
    assert after < 0.5 * before


def test_mahalanobis_is_small_near_a_class_and_large_far_away():
    g = torch.Generator().manual_seed(1)
    means = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    y = torch.arange(600) % 2
    f = means[y] + torch.randn(600, 3, generator=g)
    dens = calibration.fit_feature_density(f, y, 2)
    d = calibration.mahalanobis_min(torch.tensor([[5.0, 0.0, 0.0], [0.0, 30.0, 0.0]]), dens["means"], dens["precision"])
    assert d[0] < 0.5 and d[1] > 20


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A small classifier trained for a few steps on two toy classes, then calibrated."""
    torch.manual_seed(0)
    net = build_model("classifier", "organelle-cnn", num_classes=2, stem=8, widths=(8, 16), blocks=(1, 1))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]

    def cells(n, ring):
        out = []
        for _ in range(n):
            r = np.hypot(yy - 16 + rng.normal(0, 2), xx - 16 + rng.normal(0, 2))
            img = np.exp(-((r - 9) ** 2) / 4) if ring else np.exp(-(r ** 2) / 30)
            img = img + rng.normal(0, 0.03, img.shape)
            out.append(np.stack([np.clip(img, 0, 1), np.zeros_like(img)]).astype(np.float32))
        return np.stack(out)

    X = np.concatenate([cells(40, False), cells(40, True)])
    y = np.array([0] * 40 + [1] * 40)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    net.train()
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    extra = calibration.calibrate(net, X, y, n_classes=2, fitted_on="toy cells")
    ck = checkpoint_dict(net, kind="classifier", arch="organelle-cnn", classes=["blob", "ring"], input_size=32,
                         extra=extra)
    path = tmp_path_factory.mktemp("cal") / "cal.pt"
    torch.save(ck, path)
    return load_checkpoint(path), X, y


def test_calibration_is_stored_and_used(calibrated):
    clf, X, y = calibrated
    cal = clf.meta["extra"]["calibration"]
    assert 0.05 < cal["temperature"] < 20 and cal["nll_after"] <= cal["nll_before"] + 1e-6
    r = classify(X[0, 0], None, clf)
    assert r.novelty is not None and r.novelty < 1.5
    with torch.no_grad():
        logits = clf.model(torch.from_numpy(X[:1]))
    p = torch.softmax(logits / cal["temperature"], 1)[0].numpy()
    assert r.probabilities["blob"] == pytest.approx(float(p[0]), abs=2e-3)  # calibrated probabilities
    assert r.as_row()["novelty"] == pytest.approx(r.novelty, abs=1e-4)


def test_noise_and_strangers_are_flagged_uncertain_with_the_reason(calibrated):
    clf, X, y = calibrated
    noise = np.random.default_rng(3).uniform(0, 1, (32, 32))
    r = classify(noise, None, clf)
    assert r.uncertain and "looks like noise" in r.why_uncertain
    checker = (np.indices((32, 32)).sum(0) // 4 % 2).astype(np.float32)  # not a cell
    r2 = classify(checker, None, clf)
    assert r2.uncertain and "unlike the cells the model was trained on" in r2.why_uncertain
    ok = list(iter_classify([(X[i, 0], None) for i in (0, 45)], clf))
    assert all(o.why_uncertain == "" or "low confidence" in o.why_uncertain for o in ok)
    assert r.note == "" and r2.note == ""  # note is for images that could not be classified


def test_a_model_without_calibration_still_flags_noise(tiny_checkpoints):
    clf = load_checkpoint(tiny_checkpoints["classifier"])
    r = classify(np.random.default_rng(4).uniform(0, 1, (80, 80)), None, clf)
    assert r.novelty is None and r.uncertain and "looks like noise" in r.why_uncertain
