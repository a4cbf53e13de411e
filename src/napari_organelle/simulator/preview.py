"""Contact sheet and contract check for one renderer.

    python -m napari_organelle.simulator.preview NAME [--out sheet.png] [--per-class 6] [--seed 0]
        [--size 384 --diameter 300] [--raw]

Rows are the ten classes, columns cells (seed-derived generators). Each cell is shown as a user
would see it after a simple microscope (Gaussian blur of 0.12 um, shot + read noise, unless --raw),
protein in green and DNA in magenta, each scaled by its own 1st/99.8th percentiles. Prints the
contract problems found, if any, and the mean time per cell.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy import ndimage as ndi

from ..classes import CLASSES
from .base import check_rendered, load_renderer


def _scale(a):
    lo, hi = np.percentile(a, [1, 99.8])
    return np.clip((a - lo) / max(hi - lo, 1e-9), 0, 1)


def _look(r, rng, raw):
    out = []
    for img in (r.protein, r.dna):
        if not raw:
            img = ndi.gaussian_filter(img, max(0.7, 0.12 / r.pixel_size_um))
            img = img / max(float(np.percentile(img[r.cell], 99.5)), 1e-9) * 800 + 80
            img = rng.poisson(np.maximum(img, 0)).astype(np.float32) + rng.normal(0, 4, img.shape)
        out.append(_scale(img))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("--out", default=None)
    ap.add_argument("--per-class", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--diameter", type=float, default=300)
    ap.add_argument("--raw", action="store_true", help="show the specimen without blur and noise")
    a = ap.parse_args(argv)
    mod = load_renderer(a.name)
    look_rng = np.random.default_rng(12345)
    tiles, problems, times = [], [], []
    for ci, cls in enumerate(CLASSES):
        row = []
        for i in range(a.per_class):
            rng = np.random.default_rng([a.seed, ci, i])
            t = time.perf_counter()
            r = mod.render(cls, rng, size=a.size, diameter=a.diameter)
            times.append(time.perf_counter() - t)
            for p in check_rendered(r, cls, a.size, a.diameter):
                problems.append(f"{cls} #{i}: {p}")
            if problems and problems[-1].startswith(f"{cls} #{i}: protein: expected"):
                row.append(np.zeros((a.size, a.size, 3)))
                continue
            g, m = _look(r, look_rng, a.raw)
            row.append(np.stack([m, g, m], -1))
        tiles.append(np.concatenate(row, 1))
    sheet = np.concatenate(tiles, 0)
    out = a.out or f"preview_{a.name}.png"
    from PIL import Image

    Image.fromarray((sheet * 255).astype(np.uint8)).save(out)
    print(f"wrote {out}: rows = {', '.join(CLASSES)}")
    print(f"{len(times)} cells, mean {1000 * np.mean(times):.1f} ms, max {1000 * np.max(times):.1f} ms per cell")
    for p in problems:
        print("PROBLEM", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
