"""Reproduce the bundled models: train on simulated cells, test on fresh simulated cells, ship.

    python benchmarks/bundled_models.py                 # train both, evaluate, write the weights
    python benchmarks/bundled_models.py --annotate-only # evaluate existing checkpoints in --work

Steps (each one is a plain CLI command, printed before it runs):
1. napari-organelle train simulated:300 --model classifier --epochs 40 --batch-size 64 --lr 2e-3 --seed 0
2. napari-organelle train simulated:60 --model autoencoder --epochs 40 --batch-size 32 --lr 2e-3 --crop-size 96 --seed 0
3. fresh test sets: 10 x 40 cells from the default renderer with an unseen seed (7), and 10 x 40 cells
   from the second, independent renderer (style=alt, seed 11) that no model was trained on
4. napari-organelle evaluate on both, protein + DNA and protein only; the figures go into the
   checkpoints' metrics (with the data they were measured on) and the checkpoints are copied into
   src/napari_organelle/weights/.
On 2 CPU cores step 1 took 15 min (896 s) and step 2 19 min (1158 s, the machine shared with other
jobs), as the checkpoints record; on a GPU it should take a minute or two (not measured).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "src" / "napari_organelle" / "weights"

TRAIN_CLASSIFIER = ("train simulated:300 --model classifier --epochs 40 --batch-size 64 --lr 2e-3 "
                    "--device auto --seed 0 --out {out}")
TRAIN_AUTOENCODER = ("train simulated:60 --model autoencoder --epochs 40 --batch-size 32 --lr 2e-3 "
                     "--crop-size 96 --device auto --seed 0 --out {out}")
TEST_SETS = {
    "fresh": ("phantoms {out} --per-class 40 --seed 7",
              "400 simulated cells (10 x 40), default renderer, unseen seed 7"),
    "alt": ("phantoms {out} --per-class 40 --seed 11 --style alt",
                     "400 simulated cells (10 x 40) from the second, independent renderer (style=alt, "
                     "seed 11), never seen in training"),
}


def cli(args: str) -> str:
    cmd = [sys.executable, "-m", "napari_organelle.cli", *shlex.split(args)]
    print("$ napari-organelle " + args, flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    return out


def annotate(work: Path) -> dict:
    import torch

    from napari_organelle.checkpoints import write_checkpoint_dict

    figures = {}
    for key, (make, desc) in TEST_SETS.items():
        folder = work / f"test_{key}"
        if not folder.exists():
            cli(make.format(out=folder))
        for protein_only in (False, True):
            extra = " --protein-only" if protein_only else ""
            rep = json.loads(cli(f"evaluate {folder} --model {work / 'classifier.pt'} --json{extra}"))
            name = f"{key}_accuracy" + ("_protein_only" if protein_only else "")
            figures[name] = rep["accuracy"]
            figures[name.replace("accuracy", "per_class")] = rep["per_class"]
        figures[f"{key}_data"] = desc
    ck = torch.load(work / "classifier.pt", map_location="cpu", weights_only=True)
    ck["metrics"].update(figures)
    write_checkpoint_dict(work / "classifier.pt", ck)
    return figures


def annotate_autoencoder(work: Path, per_set: int = 100) -> dict:
    """PSNR / SSIM of the autoencoder on whole planes of the fresh and alt test cells (each plane
    scaled to [0, 1] by its 1st/99.8th percentiles), and the protein-plane MSE that the
    out-of-distribution score is measured against."""
    import numpy as np
    import torch

    from napari_organelle.checkpoints import load_checkpoint, write_checkpoint_dict
    from napari_organelle.inference import reconstruct
    from napari_organelle.io import read_image

    ae = load_checkpoint(work / "autoencoder.pt", expected_kind="autoencoder")
    figures = {}
    protein_mse = {}
    for key, (_, desc) in TEST_SETS.items():
        files = sorted((work / f"test_{key}").glob("*/*.tif"))
        files = files[:: max(1, len(files) // per_set)][:per_set]
        psnrs, ssims, mses, pm = [], [], [], []
        for f in files:
            img = read_image(f)  # (2, Y, X): protein, DNA
            rec = reconstruct(img, ae)
            for i, d in enumerate(rec.per_plane):
                psnrs.append(d["psnr"]); ssims.append(d["ssim"]); mses.append(d["mse"])
                if i == 0:
                    pm.append(d["mse"])
        figures[f"{key}_psnr"] = float(np.mean(psnrs))
        figures[f"{key}_psnr_min"] = float(np.min(psnrs))
        figures[f"{key}_ssim"] = float(np.mean(ssims))
        figures[f"{key}_mse"] = float(np.mean(mses))
        figures[f"{key}_data"] = f"{desc}; {len(files)} cells, protein and DNA planes, whole 382x382 planes"
        protein_mse[key] = pm
    ref = float(np.median(protein_mse["fresh"]))
    figures["ood_reference_mse"] = ref
    figures["fresh_ood_score_median"] = 1.0
    figures["alt_ood_score_median"] = float(np.median(protein_mse["alt"]) / ref)
    ck = torch.load(work / "autoencoder.pt", map_location="cpu", weights_only=True)
    ck["metrics"].update(figures)
    write_checkpoint_dict(work / "autoencoder.pt", ck)
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="bundled_work", help="working folder")
    ap.add_argument("--annotate-only", action="store_true")
    ap.add_argument("--no-install", action="store_true", help="do not copy into the package")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if not a.annotate_only:
        print(cli(TRAIN_CLASSIFIER.format(out=work / "classifier.pt")))
        print(cli(TRAIN_AUTOENCODER.format(out=work / "autoencoder.pt")))
    figures = annotate(work)
    figures.update(annotate_autoencoder(work))
    print(json.dumps({k: v for k, v in figures.items() if "per_class" not in k}, indent=1))
    if not a.no_install:
        for name in ("classifier.pt", "autoencoder.pt"):
            shutil.copy2(work / name, WEIGHTS / name)
            print(f"installed {WEIGHTS / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
