"""Reproduce the bundled classifier: train on every renderer, measure on the ones left out, ship.

    python benchmarks/bundled_models.py                  # everything (see the steps), then install
    python benchmarks/bundled_models.py --quick          # a small run of every step (minutes)
    python benchmarks/bundled_models.py --skip-loro      # reuse the leave-one-renderer-out table
    python benchmarks/bundled_models.py --skip-loro --continue-from OLD.pt --set epochs2=6   # a further round
                                                         # from a bundled model, e.g. with new renderers

Steps (every sample is reproducible from its seed; see simulator/trainset.py):
1. training, validation and test sets from each renderer in ``simulator.RENDERERS`` (independently
   written: see docs/simulator.md), each cell through the shared randomised imaging model and the
   product's per-cell crop (simulator/scene.py), at the classifier's input size;
2. leave one renderer out (LORO): for each renderer R, a model trained on all the others (smaller:
   --loro-per-class, --loro-epochs) is tested on R's test set, protein + DNA and protein only, and a
   temperature is fitted on R's validation set: how the classifier does on a renderer it never saw,
   and how over-confident it is there;
3. the bundled model: trained on every renderer; its temperature is the median of the LORO
   temperatures (the correction a never-seen domain needs); its feature statistics for the novelty
   score are fitted on its training cells, with the threshold at the 99th percentile of the
   validation cells (calibration.py);
4. figures: each renderer's test set (in distribution), the classic phantoms test sets
   (napari-organelle phantoms --seed 7, and --style alt --seed 11, 10 x 40 cells each, whole images
   as before), and real cells (benchmarks/real_cells.py, when ../shared/realcells exists). All of
   them go into the checkpoint's metrics with the data they were measured on; the LORO table goes
   into docs/model_card.md.

Training uses bf16 on CPUs that have it (training.cpu_bf16_fast) and the GPU when there is one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))
WEIGHTS = REPO / "src" / "napari_organelle" / "weights"

FULL = dict(size=192, per_class=500, val_per_class=40, test_per_class=40, epochs=14, epochs2=8, lr2=5e-4,
            batch_size=64, lr=2e-3,
            loro_per_class=200, loro_epochs=10, arch="organelle-cnn", arch_kwargs={}, intensity="wide",
            val_transfer=False)
QUICK = dict(size=96, per_class=12, val_per_class=6, test_per_class=6, epochs=2, epochs2=1, lr2=5e-4,
             batch_size=32, lr=2e-3,
             loro_per_class=8, loro_epochs=1, arch="organelle-cnn", arch_kwargs={}, intensity="wide",
             val_transfer=False)
# rounds 1-5 of the bundled classifier trained with intensity="mild" (gamma 0.7-1.43), round 6 on with "wide".
# val_transfer: the weights kept are chosen on the validation cells as rendered AND on a copy of them
# through the training augmentation's own intensity family (training.random_transfer, both channels,
# seed 99), so that a round trained for robustness to intensity transfers is not judged by rendered
# cells alone (round 7 on). The test family of benchmarks/intensity_transfers.py is never used here.
SEEDS = {"train": 0, "val": 1, "test": 2}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sets(work: Path, renderer: str, split: str, per_class: int, size: int, workers: int):
    """(X uint8, y) for one renderer and split, cached in ``work``."""
    from napari_organelle.simulator import trainset

    f = work / "sets" / f"{renderer}_{split}_{per_class}_{size}.npz"
    if f.exists():
        z = np.load(f)
        return z["X"], z["y"]
    f.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    X, y, _ = trainset.build(per_class, [renderer], seed=SEEDS[split], input_size=size, workers=workers)
    tmp = f.with_suffix(".tmp.npz")
    np.savez(tmp, X=X, y=y)
    os.replace(tmp, f)
    log(f"{f.name}: {len(X)} samples in {time.perf_counter() - t:.0f} s")
    return X, y


def first_per_class(X, y, n):
    """The first ``n`` samples of each class (a smaller set is the start of a larger one: every
    sample has its own seed)."""
    idx = np.concatenate([np.nonzero(y == k)[0][:n] for k in np.unique(y)])
    return X[idx], y[idx]


def accuracy(model, X, y, protein_only=False) -> float:

    from napari_organelle.calibration import features_and_logits

    X = np.array(X)
    if protein_only:
        X[:, 1] = 0
    _, logits = features_and_logits(model, X)
    return float((logits.argmax(1).numpy() == y).mean())


def transferred_copy(Xv: np.ndarray, seed: int = 99, wide: bool = True) -> np.ndarray:
    """Validation cells (N, C, S, S) uint8 through training's intensity family (one random transfer per
    cell and channel, ``training.random_transfer``), back to uint8."""
    import torch

    from napari_organelle import training

    gen = torch.Generator().manual_seed(seed)
    out = np.empty_like(Xv)
    for i in range(0, len(Xv), 256):
        x = torch.from_numpy(Xv[i:i + 256].astype(np.float32) / 255)
        out[i:i + 256] = (training.random_transfer(x, gen, wide=wide) * 255).round().clamp(0, 255).to(
            torch.uint8).numpy()
    return out


def train(X, y, Xv, yv, cfg: dict, epochs: int, classes, seed=0, label="", init=None, lr=None):
    from napari_organelle import training

    if cfg.get("val_transfer"):
        Xv = np.concatenate([Xv, transferred_copy(Xv, wide=cfg.get("intensity", "mild") == "wide")])
        yv = np.concatenate([yv, yv])

    conf = training.TrainConfig(epochs=epochs, batch_size=cfg["batch_size"], lr=lr or cfg["lr"], device="auto",
                                seed=seed, intensity=cfg.get("intensity", "mild"))
    t = time.perf_counter()

    def cb(ev):
        if isinstance(ev, training.EpochEvent):
            log(f"{label} {training.format_epoch(ev)}")

    if init is not None:  # a further round from these weights (the starting model counts as epoch 0)
        res = training.train("classifier", (X, y), (Xv, yv), conf, classes=list(classes), init=init, callback=cb)
    else:
        res = training.train("classifier", (X, y), (Xv, yv), conf, classes=list(classes), arch=cfg["arch"],
                             arch_kwargs=dict(cfg["arch_kwargs"]), callback=cb)
    log(f"{label} trained in {time.perf_counter() - t:.0f} s ({res.stop_reason})")
    return res


def loro(work: Path, renderers, cfg, workers, classes):
    from napari_organelle.calibration import features_and_logits, fit_temperature

    table = {}
    for held in renderers:
        others = [r for r in renderers if r != held]
        parts = [first_per_class(*sets(work, r, "train", cfg["per_class"], cfg["size"], workers),
                                 cfg["loro_per_class"]) for r in others]
        vparts = [sets(work, r, "val", cfg["val_per_class"], cfg["size"], workers) for r in others]
        X = np.concatenate([p[0] for p in parts]); y = np.concatenate([p[1] for p in parts])
        Xv = np.concatenate([p[0] for p in vparts]); yv = np.concatenate([p[1] for p in vparts])
        res = train(X, y, Xv, yv, cfg, cfg["loro_epochs"], classes, label=f"LORO -{held}")
        Xt, yt = sets(work, held, "test", cfg["test_per_class"], cfg["size"], workers)
        Xh, yh = sets(work, held, "val", cfg["val_per_class"], cfg["size"], workers)
        _, lh = features_and_logits(res.model, Xh)
        pc = {}
        _, lt = features_and_logits(res.model, Xt)
        pred = lt.argmax(1).numpy()
        for k, c in enumerate(classes):
            pc[c] = float((pred[yt == k] == k).mean())
        table[held] = {"trained_on": others, "accuracy": accuracy(res.model, Xt, yt),
                       "accuracy_protein_only": accuracy(res.model, Xt, yt, protein_only=True),
                       "per_class": pc, "temperature": fit_temperature(lh, yh), "n_test": int(len(yt))}
        log(f"LORO -{held}: {100 * table[held]['accuracy']:.1f} % / protein only "
            f"{100 * table[held]['accuracy_protein_only']:.1f} %, T {table[held]['temperature']:.2f}")
        (work / "loro.json").write_text(json.dumps(table, indent=1))
    return table


def classic_sets(work: Path):
    """The earlier fixed test sets: 10 x 40 whole-image cells, default renderer seed 7 and alt seed 11."""
    from napari_organelle.phantoms import write_dataset

    out = {}
    for key, (seed, style) in {"fresh": (7, "default"), "alt": (11, "alt")}.items():
        d = work / f"test_{key}"
        if not d.exists():
            write_dataset(d, per_class=40, seed=seed, style=style)
        out[key] = d
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="bundled_work")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-loro", action="store_true", help="reuse WORK/loro.json")
    ap.add_argument("--renderers", default=None, help="comma-separated (default: all available)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="override a setting, e.g. --set epochs=12")
    ap.add_argument("--round1", default=None, help="reuse this checkpoint (WORK/classifier_round1.pt of an earlier "
                                                   "run with the same settings) instead of training round 1 again")
    ap.add_argument("--continue-from", default=None, metavar="PATH",
                    help="a further round (epochs2 epochs at lr2) from this bundled checkpoint, on --renderers "
                         "(which may add renderers it never saw: its accuracy on their test sets is measured "
                         "first); its schedule is carried into the new checkpoint")
    a = ap.parse_args()
    import torch

    from napari_organelle.calibration import calibrate
    from napari_organelle.checkpoints import load_checkpoint, write_checkpoint_dict
    from napari_organelle.classes import CLASSES
    from napari_organelle.recipes import evaluate
    from napari_organelle.simulator import available_renderers

    cfg = dict(QUICK if a.quick else FULL)
    for kv in a.set:
        k, v = kv.split("=", 1)
        cfg[k] = v if k in ("arch", "intensity") else json.loads(v)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if a.continue_from and Path(a.continue_from).resolve() == (work / "classifier.pt").resolve():
        raise SystemExit(f"--continue-from {a.continue_from} is the file this run writes; copy it elsewhere first")
    renderers = a.renderers.split(",") if a.renderers else available_renderers()
    workers = a.workers or len(os.sched_getaffinity(0))
    classes = list(CLASSES)
    log(f"renderers {renderers}; settings {cfg}")

    # 2. leave one renderer out
    if a.skip_loro and (work / "loro.json").exists():
        table = json.loads((work / "loro.json").read_text())
    else:
        table = loro(work, renderers, cfg, workers, classes)

    # 3. the bundled model
    parts = [sets(work, r, "train", cfg["per_class"], cfg["size"], workers) for r in renderers]
    vparts = [sets(work, r, "val", cfg["val_per_class"], cfg["size"], workers) for r in renderers]
    X = np.concatenate([p[0] for p in parts]); y = np.concatenate([p[1] for p in parts])
    Xv = np.concatenate([p[0] for p in vparts]); yv = np.concatenate([p[1] for p in vparts])
    # round 1: warm-up + cosine from scratch; round 2 (epochs2 > 0): a warm restart at the lower lr2
    # from round 1's weights, kept only if it beats them on the validation cells
    before = {}  # the starting model on renderers it never saw (--continue-from)
    history = None
    if a.continue_from:
        if a.round1:
            raise SystemExit("--continue-from and --round1 exclude each other")
        first = load_checkpoint(a.continue_from, expected_kind="classifier", name="previous")
        prev = torch.load(a.continue_from, map_location="cpu", weights_only=True).get("training", {})
        history = prev.get("schedule", "an earlier schedule")
        for r in renderers:
            if r in prev.get("renderers", renderers):
                continue
            Xt, yt = sets(work, r, "test", cfg["test_per_class"], cfg["size"], workers)
            before[r] = {"accuracy": accuracy(first.model, Xt, yt),
                         "accuracy_protein_only": accuracy(first.model, Xt, yt, protein_only=True),
                         "n_test": int(len(yt)), "model": f"the model continued from ({a.continue_from}), trained "
                                                           f"on {', '.join(prev.get('renderers', []))}"}
            log(f"starting model on never-seen renderer {r}: {100 * before[r]['accuracy']:.1f} % / protein only "
                f"{100 * before[r]['accuracy_protein_only']:.1f} %")
        log(f"continuing from {a.continue_from}")
    elif a.round1:
        first = load_checkpoint(a.round1, expected_kind="classifier", name="round1")
        log(f"round 1 reused from {a.round1}")
    else:
        res = train(X, y, Xv, yv, cfg, cfg["epochs"], classes, label="bundled")
        first = load_checkpoint(res.checkpoint(), expected_kind="classifier", name="round1")
        write_checkpoint_dict(work / "classifier_round1.pt", res.checkpoint())
    if cfg.get("epochs2"):
        res = train(X, y, Xv, yv, cfg, cfg["epochs2"], classes, label="bundled, further round", init=first,
                    lr=cfg["lr2"])
    elif a.round1 or a.continue_from:
        raise SystemExit("--round1 and --continue-from need a further round (epochs2 > 0)")
    temps = [v["temperature"] for v in table.values()]
    extra = calibrate(res.model, Xv, yv, X[:: max(1, len(X) // 4000)], y[:: max(1, len(X) // 4000)],
                      n_classes=len(classes),
                      fitted_on=f"validation cells of {', '.join(renderers)} ({len(yv)}); feature density on "
                                f"training cells")
    extra["calibration"].update(temperature=float(np.median(temps)), temperature_source=(
        f"median of the leave-one-renderer-out temperatures {', '.join(f'{t:.2f}' for t in temps)}, each fitted on "
        "the validation cells of the renderer its model never saw"), loro_temperatures=temps,
        in_distribution_temperature=extra["calibration"]["temperature"])
    data_desc = (f"simulated cells: {cfg['per_class']} per class from each of {len(renderers)} independently "
                 f"written renderers ({', '.join(renderers)}), seed 0, through the randomised imaging model "
                 f"and the per-cell crop, {cfg['size']} px")
    if history is not None:
        k = max([int(n) for n in re.findall(r"round (\d+):", history)] or [1]) + 1
        schedule = (f"{history}; round {k}: {cfg['epochs2']} more epochs from round {k - 1}'s weights on "
                    f"{', '.join(renderers)}, lr {cfg['lr2']} (warm-up + cosine), best epoch {res.best_epoch} "
                    f"(0 = round {k - 1}'s weights kept)")
    else:
        schedule = (f"round 1: {cfg['epochs']} epochs from scratch, lr {cfg['lr']} (warm-up + cosine)"
                    + (f"; round 2: {cfg['epochs2']} more epochs from round 1's weights, lr {cfg['lr2']} (warm-up + "
                       f"cosine), best epoch {res.best_epoch} (0 = round 1's weights kept)" if cfg.get("epochs2") else ""))
    command = "python benchmarks/bundled_models.py" + " ".join([""] + sys.argv[1:])
    ck = res.checkpoint(training={"data": data_desc, "renderers": renderers, "settings": cfg, "schedule": schedule,
                                  "command": command},
                        metrics={})
    ck["extra"] = extra
    out = work / "classifier.pt"
    write_checkpoint_dict(out, ck)

    # 4. figures
    model = load_checkpoint(out, expected_kind="classifier", name="bundled-classifier")
    m = {"loro": table, "loro_data": (f"leave one renderer out: trained on the other renderers "
                                      f"({cfg['loro_per_class']} per class each, {cfg['loro_epochs']} epochs), "
                                      f"tested on {cfg['test_per_class']} per class of the one left out")}
    if before:
        m["unseen_renderers_before"] = before
        m["unseen_renderers_before_data"] = (f"{cfg['test_per_class']} per class of each renderer new in this round "
                                             "(seed 2), classified by the starting model, which never saw them")
    for r in renderers:
        Xt, yt = sets(work, r, "test", cfg["test_per_class"], cfg["size"], workers)
        m[f"{r}_accuracy"] = accuracy(model.model, Xt, yt)
        m[f"{r}_accuracy_protein_only"] = accuracy(model.model, Xt, yt, protein_only=True)
        m[f"{r}_data"] = f"{len(yt)} fresh simulated cells of renderer {r} (seed 2, in distribution)"
    for key, folder in classic_sets(work).items():
        for po in (False, True):
            rep = evaluate(folder, model, protein_only=po)
            m[f"classic_{key}_accuracy" + ("_protein_only" if po else "")] = rep.accuracy
        m[f"classic_{key}_data"] = (f"400 simulated whole-image cells (10 x 40), napari-organelle phantoms "
                                    f"--style {'default --seed 7' if key == 'fresh' else 'alt --seed 11'}")
    real_root = REPO.parent / "shared" / "realcells"
    if real_root.is_dir() and not a.quick:
        import real_cells

        rows = real_cells.evaluate(real_root, list(real_cells.ALL_SETS), model, progress=log)
        summ = real_cells.summarise(rows)
        real_cells.print_report(summ, "bundled", real_cells.SEGMENTATION)
        m["real_cells"] = {k: {kk: v[kk] for kk in ("cells", "accuracy", "class_balanced_accuracy",
                                                     "uncertain_share", "accuracy_of_certain")}
                           for k, v in summ.items()}
        m["real_cells_data"] = ("benchmarks/real_cells.py on ../shared/realcells (public real micrographs, "
                                f"never trained on); cells found by {real_cells.SEGMENTATION.get('method')}")
        (work / "real_cells.json").write_text(json.dumps({"summary": summ, "rows": rows}, default=str))
    ck = torch.load(out, map_location="cpu", weights_only=True)
    ck["metrics"].update(m)
    write_checkpoint_dict(out, ck)
    log(json.dumps({k: v for k, v in m.items() if not isinstance(v, dict)}, indent=1))
    if not a.no_install and not a.quick:
        shutil.copy2(out, WEIGHTS / "classifier.pt")
        log(f"installed {WEIGHTS / 'classifier.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
