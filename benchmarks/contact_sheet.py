"""Render contact sheets of simulated cells (one row per class) for docs/simulator.md.

    python benchmarks/contact_sheet.py            # writes docs/images/phantoms_contact_sheet.png
                                                  # and docs/images/phantoms_alt_contact_sheet.png
    python benchmarks/contact_sheet.py --per-class 6 --seed 0 --size 382 --out docs/images

Each tile is a composite: protein in green, DNA in magenta, each scaled by its own 1st/99.8th
percentiles (the same normalisation the models use).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from napari_organelle.classes import CLASSES  # noqa: E402
from napari_organelle.phantoms import _child_rng, simulate_cell  # noqa: E402
from napari_organelle.preprocess import normalize  # noqa: E402


def composite(protein: np.ndarray, dna: np.ndarray) -> np.ndarray:
    p = normalize(protein)
    d = normalize(dna)
    return np.clip(np.stack([0.75 * d, p, 0.75 * d], -1), 0, 1)


def sheet(style: str, per_class: int, seed: int, size: int, path: Path) -> float:
    t0 = time.perf_counter()
    tiles = {c: [simulate_cell(c, _child_rng(seed, c, i, style), size=size, style=style)
                 for i in range(per_class)] for c in CLASSES}
    dt = time.perf_counter() - t0
    fig, axes = plt.subplots(len(CLASSES), per_class, figsize=(1.9 * per_class + 1.2, 1.9 * len(CLASSES)),
                             facecolor="black")
    for r, c in enumerate(CLASSES):
        for j in range(per_class):
            ax = axes[r, j]
            ax.imshow(composite(*tiles[c][j]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j == 0:
                ax.set_ylabel(c, color="white", fontsize=10, rotation=90)
    fig.suptitle(f"napari_organelle.phantoms, style={style!r} (green: protein, magenta: DNA)",
                 color="white", fontsize=11)
    fig.subplots_adjust(left=0.06, right=0.995, top=0.965, bottom=0.005, wspace=0.03, hspace=0.03)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=64, facecolor="black")
    plt.close(fig)
    return dt


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=382)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    a = ap.parse_args(argv)
    for style, name in (("default", "phantoms_contact_sheet.png"), ("alt", "phantoms_alt_contact_sheet.png")):
        dt = sheet(style, a.per_class, a.seed, a.size, a.out / name)
        print(f"{style}: {len(CLASSES) * a.per_class} cells in {dt:.2f} s -> {a.out / name}")


if __name__ == "__main__":
    main()
