"""Honest confidence: temperature scaling and a feature-space "unlike the training data" score.

Both are fitted after training, on cells the model did not train on (for the bundled classifier:
cells of a renderer left out of training), and stored in the checkpoint's ``extra``:

* ``extra["calibration"] = {"temperature": T, ...}``: probabilities are ``softmax(logits / T)``.
  T is the one number that minimises the negative log-likelihood of the held-out cells (Guo et al.
  2017); it changes confidences, never the predicted class.
* ``extra["feature_ood"] = {"means", "precision", "threshold", ...}``: the pooled features of the
  last convolutional layer, modelled as one Gaussian per class with a shared covariance (Lee et al.
  2018). A cell's score is its smallest Mahalanobis distance to a class mean divided by
  ``threshold`` (the distance that ``quantile`` of the held-out cells stay under): above 1 the cell
  is unlike anything the model was trained on, and its answer is flagged uncertain.

Pure torch; no Qt.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Share of held-out (in-distribution) cells that the feature score lets through.
OOD_QUANTILE = 0.99


@torch.inference_mode()
def features_and_logits(model, X, batch_size: int = 128):
    """Pooled features (N, C) and logits (N, K) of a classifier over X (N, 2, S, S): float in [0, 1]
    or uint8 standing for value / 255."""
    feats, logits = [], []
    model.eval()
    for i in range(0, len(X), batch_size):
        xb = torch.as_tensor(X[i:i + batch_size])
        xb = xb.float() / 255 if xb.dtype == torch.uint8 else xb.float()
        f = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(model.features(xb), 1), 1)
        feats.append(f)
        logits.append(model.head(f))
    return torch.cat(feats), torch.cat(logits)


def fit_temperature(logits: torch.Tensor, y, lo: float = 0.05, hi: float = 20.0) -> float:
    """The temperature minimising the NLL of ``y`` under softmax(logits / T) (golden-section search
    on log T; the NLL is convex in 1/T)."""
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    logits = logits.float()

    def nll(log_t):
        return float(torch.nn.functional.cross_entropy(logits / math.exp(log_t), y))

    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(d)
    return float(math.exp((a + b) / 2))


def expected_calibration_error(probs: torch.Tensor, y, bins: int = 15) -> float:
    """ECE: |accuracy - confidence| averaged over confidence bins, weighted by their share."""
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    conf, pred = probs.max(1)
    ok = (pred == y).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = 0.0
    for i in range(bins):
        m = (conf > edges[i]) & (conf <= edges[i + 1])
        if m.any():
            ece += float(m.float().mean()) * abs(float(ok[m].mean()) - float(conf[m].mean()))
    return ece


def fit_feature_density(feats: torch.Tensor, y, n_classes: int, shrink: float = 0.05) -> dict:
    """Class means (K, C) and the precision (C, C) of the shared within-class covariance, shrunk
    towards its diagonal by ``shrink`` so it stays well conditioned."""
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    f = feats.double()
    means = torch.stack([f[y == k].mean(0) if (y == k).any() else f.mean(0) for k in range(n_classes)])
    centred = f - means[y]
    cov = centred.T @ centred / max(1, len(f) - n_classes)
    cov = (1 - shrink) * cov + shrink * torch.diag(torch.diag(cov)) + 1e-6 * torch.eye(cov.shape[0], dtype=cov.dtype)
    precision = torch.linalg.inv(cov)
    return {"means": means.float(), "precision": precision.float()}


def mahalanobis_min(feats: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """Smallest Mahalanobis distance of each row of ``feats`` to a class mean (N,)."""
    d = feats.float()[:, None, :] - means[None]                       # (N, K, C)
    q = torch.einsum("nkc,cd,nkd->nk", d, precision, d).clamp_min(0)  # squared distances
    return q.min(1).values.sqrt()


def calibrate(model, X_held_out, y_held_out, X_train=None, y_train=None, *, n_classes: int,
              fitted_on: str, quantile: float = OOD_QUANTILE) -> dict:
    """Fit the temperature on held-out cells and the feature density on training cells (or on the
    held-out ones when no training cells are given); returns the checkpoint ``extra`` entries and
    the before/after figures."""
    f_ho, l_ho = features_and_logits(model, X_held_out)
    T = fit_temperature(l_ho, y_held_out)
    yh = torch.as_tensor(np.asarray(y_held_out), dtype=torch.long)
    p1, pT = torch.softmax(l_ho, 1), torch.softmax(l_ho / T, 1)
    if X_train is not None:
        f_tr, _ = features_and_logits(model, X_train)
        dens = fit_feature_density(f_tr, y_train, n_classes)
    else:
        dens = fit_feature_density(f_ho, y_held_out, n_classes)
    dist = mahalanobis_min(f_ho, dens["means"], dens["precision"])
    thr = float(torch.quantile(dist, quantile))
    return {
        "calibration": {
            "temperature": T, "fitted_on": fitted_on, "n": int(len(yh)),
            "nll_before": float(torch.nn.functional.cross_entropy(l_ho, yh)),
            "nll_after": float(torch.nn.functional.cross_entropy(l_ho / T, yh)),
            "ece_before": expected_calibration_error(p1, yh), "ece_after": expected_calibration_error(pT, yh),
        },
        "feature_ood": {**dens, "threshold": thr, "quantile": float(quantile), "fitted_on": fitted_on},
    }
