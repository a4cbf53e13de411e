"""How much a classifier's answers depend on the image's intensity transfer, on simulated cells.

    python benchmarks/intensity_transfers.py                          # the bundled classifier
    python benchmarks/intensity_transfers.py --model my.pt --work bundled_work --tta

Data: the validation cells of every renderer (benchmarks/bundled_models.py's sets: 40 per class,
seed 1, 192 px; made and cached in WORK the first time, about a minute per renderer on 2 cores), or
with ``--split test`` its test cells (40 per class, seed 2), on which no weights were ever chosen.
Each set is classified as rendered (P) and with its protein image through a test family of
intensity transfers that no training augmentation uses (T): for half of the cells a gamma
log-uniform in 0.33-3, for the other half a random monotone piecewise-linear lookup table with four
inner knots (seed 123; the DNA image as is). Both with DNA and protein only.

``--tta``: also the mean of the probabilities over the cell turned 0, 90, 180 and 270 degrees
(test-time augmentation; four times the network's cost).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bundled_models as bm  # noqa: E402  (its sys.path holds the repository's src/)


def test_family(X: np.ndarray, seed: int = 123) -> np.ndarray:
    """X (N, 2, S, S) uint8 -> float32 in [0, 1], channel 0 through one random transfer per cell."""
    rng = np.random.default_rng(seed)
    X = X.astype(np.float32) / 255
    for i in range(len(X)):
        if rng.random() < 0.5:
            X[i, 0] = X[i, 0] ** np.exp(rng.uniform(np.log(0.33), np.log(3)))
        else:
            knots_in = np.concatenate([[0], np.sort(rng.random(4)), [1]])
            knots_out = np.concatenate([[0], np.sort(rng.random(4)), [1]])
            X[i, 0] = np.interp(X[i, 0], knots_in, knots_out)
    return X


def accuracies(model, X, y, tta: bool = False) -> dict[str, float]:
    """Accuracy with DNA and protein only (and with rotation TTA when ``tta``)."""
    import torch

    from napari_organelle.calibration import features_and_logits

    def probs(A):
        with torch.inference_mode():
            return torch.softmax(features_and_logits(model, A)[1], 1).numpy()

    out = {}
    for mode in ("protein+dna", "protein only"):
        A = np.array(X)
        if mode == "protein only":
            A[:, 1] = 0
        p = [probs(A)]
        out[mode] = float((p[0].argmax(1) == y).mean())
        if tta:
            p += [probs(np.ascontiguousarray(np.rot90(A, k, axes=(2, 3)))) for k in (1, 2, 3)]
            out[mode + ", tta"] = float((np.mean(p, 0).argmax(1) == y).mean())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="classifier name or path (default: the bundled one)")
    ap.add_argument("--work", default="bundled_work", help="where bundled_models.py caches its sets")
    ap.add_argument("--renderers", default=None, help="comma-separated (default: all)")
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--split", choices=("val", "test"), default="val",
                    help="val: the validation cells (seed 1; rounds 1-6 chose their weights on them); test: the "
                         "test cells (seed 2, 40 per class), which no training or choice of weights ever saw")
    a = ap.parse_args(argv)
    import torch

    from napari_organelle.inference import load_model
    from napari_organelle.simulator import available_renderers

    model = load_model(a.model, "classifier").model.eval()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    renderers = a.renderers.split(",") if a.renderers else available_renderers()
    size = bm.FULL["size"]
    totals: dict[str, float] = {}
    n = 0
    t = time.perf_counter()
    for r in renderers:
        X, y = bm.sets(Path(a.work), r, a.split, bm.FULL[f"{a.split}_per_class"], size, 2)
        row = {f"P {k}": v for k, v in accuracies(model, X, y, a.tta).items()}
        row.update({f"T {k}": v for k, v in accuracies(model, test_family(X), y, a.tta).items()})
        print(f"{r:10s} " + "  ".join(f"{k} {100 * v:.2f}%" for k, v in row.items()), flush=True)
        for k, v in row.items():
            totals[k] = totals.get(k, 0.0) + v * len(y)
        n += len(y)
    print(f"{'all':10s} " + "  ".join(f"{k} {100 * v / n:.2f}%" for k, v in totals.items())
          + f"   ({n} cells, {time.perf_counter() - t:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
