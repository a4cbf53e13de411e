"""Accuracy of a classifier on real fluorescence micrographs of known structure (evaluation only).

    python benchmarks/real_cells.py                       # the bundled classifier, every set
    python benchmarks/real_cells.py --model my.pt --sets hpa,imagej --json out.json

Reads ``../shared/realcells`` (see its README; override with --root): real images gathered from
public sources, none of them the Murphy 2D HeLa set, none of them ever used for training. The files
are read where they are and never copied into the project.

How cells are found (the same for every model, so figures are comparable):
- fields of cells: ``napari_organelle.segmentation.find_cells`` (the product's cell finder: nuclei
  from the DNA channel, cells grown from them over the cytoplasm signal; docs/segmentation.md) on a
  "cytoplasm" image and the DNA image, keeping cells cut by the image border (most HPA cells are);
  when the product has no cell finder, the fallback below is used and the report says so.
- one cell in the image (bpae_single_cell): the whole image.
- nuclei sets (coelho_nuclei_ksr): nuclei found on the DNA image; each nucleus is a "cell".
Each cell is then classified through the product's own per-cell path
(``napari_organelle.inference.classify_cells``: bounding box + 15 % margin, other cells masked), with
the DNA image where the set has one ("protein + DNA") and without it ("protein only").

Sets (class folder -> the class it is scored as; "approx" classes are close, not identical, to the
Murphy class and are shown apart; "_other" folders are not scored, only counted):
- hpa: HPA dictionary images, G = protein, B = DNA. The white scale bar is blanked first.
- hpa_reference: the same images' reference stains as the protein: R (tubulin) -> Microtubules and
  B (DNA) -> Nucleus, for every image of the set (other classes' images too).
- imagej: ImageJ HeLa (lysosomes, mitochondria, DNA) and bovine endothelial (F-actin, tubulin, DAPI)
  fields, channel per channels.csv; hela.tif (Hoechst only) as Nucleus.
- allen: Allen Cell hiPSC figures, grey panels only (merges and panels with insets skipped), no DNA:
  protein only, cells found from the protein image.
- bpae: one bovine endothelial cell, three stains.
- coelho: DNA-stain fields, each nucleus scored as Nucleus.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

DEFAULT_ROOT = REPO.parent / "shared" / "realcells"
ALL_SETS = ("hpa", "hpa_reference", "imagej", "allen", "bpae", "coelho")

# Allen Cell figures: which panels to use. (file, layout, {panel index: class folder}); layout is
# (rows, cols) of equal panels; panels not listed are skipped (merges, other structures, insets).
ALLEN_PANELS = {
    "Mitochondria/AICS-11-27__single_plane_image_cl27.jpg": ((1, 1), {0: "Mitochondria"}),
    "Mitochondria/AICS-102-330__ad00006088_20240513_x02_001_s47_z5to65_crop_scalebar5um_8bit_slice22.png":
        ((1, 1), {0: "Mitochondria"}),
    "Mitochondria/AICS-78-79__single_plane_image_cl79.jpg": ((1, 3), {0: "Mitochondria", 1: "Microtubules"}),
    "Mitochondria_approx__TFAM_nucleoids/AICS-87-31__single_plane_image_cl31.jpg":
        ((1, 1), {0: "Mitochondria_approx__TFAM_nucleoids"}),
    "ER/AICS-10-55__single_plane_image_cl55.jpg": ((1, 2), {0: "ER", 1: "ER"}),
    "ER/AICS-46-51__single_plane_image_cl51.jpg": ((1, 2), {0: "ER"}),
    "ER/AICS-59-36__single_plane_image_cl36.jpg": ((1, 3), {0: "ER", 1: "_other_nuclear_envelope_LMNB1"}),
    "Microtubules/AICS-12-105__single_plane_image_cl105.jpg": ((1, 1), {0: "Microtubules"}),
    "Microtubules/AICS-31-35__single_plane_image_cl35.jpg": ((1, 1), {0: "Microtubules"}),
    "Nucleolus/AICS-14-6__single_plane_image_cl6.jpg": ((1, 1), {0: "Nucleolus"}),
    "Nucleolus/AICS-57-50__single_plane_image_cl50.jpg": ((1, 2), {0: "Nucleolus"}),
    "Nucleolus/AICS-84-18__single_plane_image_cl18.jpg": ((1, 3), {0: "Nucleolus", 1: "Nucleolus"}),
    "Nucleolus/AICS-89-61__single_plane_image_cl61.jpg": ((2, 2), {0: "Nucleolus", 1: "Nucleolus"}),
    "ActinFilaments/AICS-16-184__single_plane_image_cl184.jpg": ((1, 2), {0: "ActinFilaments", 1: "ActinFilaments"}),
    "Lysosome/AICS-22-37__single_plane_image_cl37.jpg": ((1, 1), {0: "Lysosome"}),
    "Golgi_approx__ST6GAL1_transGolgi/AICS-25-1__single_plane_image_cl1.jpg":
        ((1, 1), {0: "Golgi_approx__ST6GAL1_transGolgi"}),
    "Golgi_approx__ST6GAL1_transGolgi/AICS-25-44__single_plane_image_cl44.jpg":
        ((1, 1), {0: "Golgi_approx__ST6GAL1_transGolgi"}),
    "Endosome/AICS-40-13__single_plane_image_cl13.jpg": ((1, 1), {0: "Endosome"}),
    "Endosome/AICS-40-35__single_plane_image_cl35.jpg": ((1, 1), {0: "Endosome"}),
    "Nucleus_approx__H2B_chromatin/AICS-61-36__single_plane_image_cl36.jpg":
        ((1, 1), {0: "Nucleus_approx__H2B_chromatin"}),
    "_other_nuclear_envelope_LMNB1/AICS-13-210__single_plane_image_cl210.jpg":
        ((1, 1), {0: "_other_nuclear_envelope_LMNB1"}),
    "_other_nuclear_envelope_LMNB1/AICS-34-62__single_plane_image_cl62.jpg":
        ((1, 1), {0: "_other_nuclear_envelope_LMNB1"}),
}
# Skipped on purpose: AICS-0011 ...SpecSheet.tif (the same field as AICS-11-27's jpg), AICS-102-330's
# .jpg (a JPEG of the .png), AICS-120-204 and AICS-86-147 (insets drawn over the panels).


def score_as(folder: str) -> tuple[str | None, bool]:
    """(class the folder is scored as or None for 'not scored', whether that class is approximate)."""
    from napari_organelle.classes import CLASSES

    name = folder.split("/")[0]
    if name.startswith("_other"):
        return None, False
    if name in CLASSES:
        return name, False
    if name.startswith("Golgi_gia_or_gpp"):
        return "Golgi", False  # HPA does not separate giantin from gpp130: either Golgi class counts
    if name.startswith("Golgi_approx"):
        return "Golgi", True
    if name.startswith("Nucleus_approx"):
        return "Nucleus", True
    if name.startswith("Mitochondria_approx"):
        return None, True  # mitochondrial nucleoids: puncta, reported but not scored
    return None, False


def correct(pred: str, truth: str) -> bool:
    if truth == "Golgi":
        return pred in ("Golgi_gia", "Golgi_gpp")
    return pred == truth


# ------------------------------------------------------------------------------------------------
# finding cells

SEGMENTATION = {"method": None}


def _fallback_find_cells(cyto, dna=None, diameter=None):
    """Otsu nuclei (split by distance-transform peaks), cells by a seeded watershed of the smoothed
    cytoplasm signal within an Otsu foreground. Used only when the product has no cell finder."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    def smooth01(a, s):
        a = ndi.gaussian_filter(np.asarray(a, np.float32), s)
        lo, hi = np.percentile(a, [1, 99.8])
        return np.clip((a - lo) / max(hi - lo, 1e-9), 0, 1)

    src = dna if dna is not None else cyto
    n = smooth01(src, 2)
    nuc = n > threshold_otsu(n)
    nuc = ndi.binary_opening(ndi.binary_fill_holes(nuc), iterations=2)
    lab, k = ndi.label(nuc)
    if k == 0:
        return np.zeros(src.shape, np.int32)
    areas = ndi.sum(nuc, lab, range(1, k + 1))
    big = np.median(areas[areas > 0.1 * areas.max()])
    keep = np.isin(lab, 1 + np.nonzero(areas > 0.2 * big)[0])
    dist = ndi.distance_transform_edt(keep)
    r = max(3, int(np.sqrt(big / np.pi) * 0.6))
    peaks = peak_local_max(dist, min_distance=r, labels=ndi.label(keep)[0], exclude_border=False)
    markers = np.zeros(src.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    nuclei = watershed(-dist, markers, mask=keep)
    if dna is None or cyto is None:
        fg_src = smooth01(cyto, 4)
    else:
        fg_src = np.maximum(smooth01(cyto, 4), smooth01(dna, 4))
    t = threshold_otsu(fg_src)
    fg = (fg_src > 0.5 * t) | (nuclei > 0)
    cells = watershed(-fg_src, nuclei, mask=fg)
    # drop cells whose nucleus touches the border
    border = set(np.unique(np.concatenate([nuclei[0], nuclei[-1], nuclei[:, 0], nuclei[:, -1]]))) - {0}
    for b in border:
        cells[cells == b] = 0
    return cells.astype(np.int32)


_SEG_CACHE: dict = {}


def _cached(kind, fn, *arrays):
    """Segmentations are the same for every model: computed once per image and process."""
    import hashlib

    h = hashlib.sha1(kind.encode())
    for a in arrays:
        if a is not None:
            h.update(np.ascontiguousarray(a).tobytes())
            h.update(str(a.shape).encode())
    key = h.hexdigest()
    if key not in _SEG_CACHE:
        _SEG_CACHE[key] = fn()
    return _SEG_CACHE[key]


def find_cells(cyto, dna=None):
    return _cached("cells", lambda: _find_cells(cyto, dna), cyto, dna)


def _find_cells(cyto, dna=None):
    try:
        from napari_organelle.segmentation import find_cells as product_find_cells
    except ImportError:
        SEGMENTATION["method"] = "fallback (benchmarks/real_cells.py: Otsu nuclei + seeded watershed)"
        return _fallback_find_cells(cyto, dna)
    SEGMENTATION["method"] = ("napari_organelle.segmentation.find_cells (defaults, but exclude_border=False: "
                              "cells cut by the image border are kept, as most cells of the HPA fields are)")
    return np.asarray(product_find_cells(cyto, dna, exclude_border=False), np.int32)


def find_nuclei(dna):
    """Each nucleus of a DNA image as a labelled object (for the nuclei sets)."""
    return _cached("nuclei", lambda: _find_nuclei(dna), dna)


def _find_nuclei(dna):
    try:
        from napari_organelle.segmentation import find_cells as product_find_cells
    except ImportError:
        lab = _fallback_find_cells(dna, dna)
        SEGMENTATION.setdefault("nuclei", "fallback: cells of the DNA image (nuclei grown over the DNA)")
        return lab
    SEGMENTATION["nuclei"] = ("napari_organelle.segmentation.find_cells(dna, dna, exclude_border=False): "
                              "cells grown over the DNA signal are its nuclei")
    return np.asarray(product_find_cells(dna, dna, exclude_border=False), np.int32)


# ------------------------------------------------------------------------------------------------
# the sets: each yields (set name, source, class folder, protein, dna or None, labels or None)

def _grey(a):
    a = np.asarray(a)
    return a.max(axis=-1) if a.ndim == 3 and a.shape[-1] in (3, 4) else a


def _blank_scale_bar(rgb):
    """HPA images carry a white scale bar lower right: zero the near-white pixels of that corner."""
    rgb = np.array(rgb)
    h, w = rgb.shape[:2]
    corner = rgb[int(0.85 * h):, int(0.7 * w):]
    white = (corner.min(axis=-1) > 150)
    from scipy import ndimage as ndi
    white = ndi.binary_dilation(white, iterations=3)
    corner[white] = 0
    return rgb


def _read(path):
    from napari_organelle.io import read_image

    return read_image(path)


def iter_hpa(root, reference=False):
    d = root / "hpa_dictionary"
    for f in sorted(d.rglob("*.jpg")):
        rel = f.relative_to(d).as_posix()
        rgb = _blank_scale_bar(_read(f))
        r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
        labels = find_cells(np.maximum(r, g), b)
        if reference:
            yield "hpa_reference", rel + ":R", "Microtubules", r, b, labels
            yield "hpa_reference", rel + ":B", "Nucleus", b, b, labels
        else:
            yield "hpa", rel, rel.rsplit("/", 1)[0], g, b, labels


def iter_imagej(root):
    d = root / "imagej_samples"
    rows = list(csv.DictReader(open(d / "channels.csv")))
    cache = {}
    for row in rows:
        rel = row["file_in_class_folder"]
        folder = rel.split("/")[0]
        a = _read(d / rel)
        if rel.endswith("hela.tif"):
            p = a.astype(np.float32)
            yield "imagej", rel, folder, p, None, find_nuclei(p)
            continue
        ch = int(row["use_channel_index_for_this_class"].split()[0])
        planes = [a[..., i] for i in range(3)] if a.shape[-1] == 3 else [a[i] for i in range(3)]
        planes = [np.asarray(p, np.float32) for p in planes]
        dna = planes[2]
        if rel.endswith("FluorescentCells_3channel.tif"):  # text burned in the lower right
            h, w = dna.shape
            for p in planes:
                p[int(0.9 * h):, int(0.6 * w):] = np.median(p)
        key = Path(rel).name
        if key not in cache:
            cache[key] = find_cells(np.maximum(*(planes[i] / max(planes[i].max(), 1) for i in (0, 1))), dna)
        yield "imagej", rel, folder, planes[ch], dna, cache[key]


def iter_allen(root):
    d = root / "allencell_hipsc"
    for rel, ((rows, cols), use) in ALLEN_PANELS.items():
        f = d / rel
        if not f.exists():
            continue
        g = _grey(_read(f)).astype(np.float32)
        H, W = g.shape
        ph, pw = H // rows, W // cols
        for k, folder in use.items():
            r, c = divmod(k, cols)
            p = g[r * ph:(r + 1) * ph, c * pw:(c + 1) * pw]
            if rows * cols > 1:  # text labels along the top of multi-panel figures
                p = p[int(0.06 * ph):]
            yield "allen", f"{rel}[panel {k}]", folder, p, None, find_cells(p, None)


def iter_bpae(root):
    d = root / "bpae_single_cell"
    nuc = _read(d / "Nucleus" / "BPAE_nuclei.tif").astype(np.float32)
    for folder, name in (("ActinFilaments", "BPAE_actin.tif"), ("Mitochondria", "BPAE_mito.tif"),
                         ("Nucleus", "BPAE_nuclei.tif")):
        p = _read(d / folder / name).astype(np.float32)
        yield "bpae", f"{folder}/{name}", folder, p, nuc, None


def iter_coelho(root):
    d = root / "coelho_nuclei_ksr" / "Nucleus"
    for f in sorted(d.glob("*.png"), key=lambda p: int(p.stem.split("-")[-1])):
        a = _grey(_read(f)).astype(np.float32)
        yield "coelho", f"Nucleus/{f.name}", "Nucleus", a, a, find_nuclei(a)


ITERATORS = {
    "hpa": lambda root: iter_hpa(root),
    "hpa_reference": lambda root: iter_hpa(root, reference=True),
    "imagej": iter_imagej,
    "allen": iter_allen,
    "bpae": iter_bpae,
    "coelho": iter_coelho,
}


# ------------------------------------------------------------------------------------------------
# evaluation

def transfer(image, gamma: float):
    """The image through an intensity transfer ``x ** gamma`` over its own range (a display gamma, a
    different camera response): how much the answers depend on it is a robustness check."""
    if gamma == 1.0:
        return image
    p = np.asarray(image, np.float32)
    lo, hi = float(p.min()), float(p.max())
    if hi <= lo:
        return image
    return ((p - lo) / (hi - lo)) ** gamma * (hi - lo) + lo


def evaluate(root: Path, sets, model, modes=("protein+dna", "protein only"), progress=print,
             protein_gamma: float = 1.0, **classify_kw):
    """Rows of per-cell results; ``classify_kw`` (e.g. autoencoder=...) go to the product's calls;
    ``protein_gamma`` != 1 puts each protein image through :func:`transfer` first (the cells are
    found on the original images)."""
    from napari_organelle.inference import classify, classify_cells

    rows = []
    for s in sets:
        t0 = time.perf_counter()
        n0 = len(rows)
        for set_name, source, folder, protein, dna, labels in ITERATORS[s](root):
            truth, approx = score_as(folder)
            protein = transfer(protein, protein_gamma)
            for mode in modes:
                if mode == "protein+dna" and dna is None:
                    continue
                d = dna if mode == "protein+dna" else None
                if labels is None:
                    results = {1: classify(protein, d, model, **classify_kw)}
                else:
                    if not (labels > 0).any():
                        continue
                    results = classify_cells(protein, labels, d, model, **classify_kw)
                for cid, r in results.items():
                    rows.append({"set": set_name, "source": source, "folder": folder, "truth": truth,
                                 "approx": approx, "mode": mode, "cell": cid, "label": r.label,
                                 "confidence": r.confidence, "uncertain": bool(r.uncertain),
                                 "correct": (truth is not None and correct(r.label, truth))})
        progress(f"{s}: {len(rows) - n0} cell results in {time.perf_counter() - t0:.0f} s")
    return rows


def summarise(rows):
    """Per set and mode: accuracy (scored, not approx / with approx), per class, uncertain share,
    accuracy of the certain cells; what the unscored cells are called."""
    out = {}
    keyed = defaultdict(list)
    for r in rows:
        keyed[(r["set"], r["mode"])].append(r)
    for (s, mode), rs in sorted(keyed.items()):
        scored = [r for r in rs if r["truth"] is not None]
        exact = [r for r in scored if not r["approx"]]
        sure = [r for r in scored if not r["uncertain"]]
        per_class = {}
        for t in sorted({r["truth"] for r in scored}):
            rc = [r for r in scored if r["truth"] == t]
            per_class[t + (" (approx)" if rc[0]["approx"] else "")] = {
                "n": len(rc), "accuracy": float(np.mean([r["correct"] for r in rc])),
                "uncertain": float(np.mean([r["uncertain"] for r in rc])),
                "called": dict(Counter(r["label"] for r in rc).most_common(3))}
        unscored = [r for r in rs if r["truth"] is None]
        out[f"{s} | {mode}"] = {
            "cells": len(scored),
            "accuracy": float(np.mean([r["correct"] for r in scored])) if scored else None,
            "accuracy_exact_classes": float(np.mean([r["correct"] for r in exact])) if exact else None,
            "class_balanced_accuracy": float(np.mean([v["accuracy"] for v in per_class.values()])) if per_class else None,
            "uncertain_share": float(np.mean([r["uncertain"] for r in scored])) if scored else None,
            "accuracy_of_certain": float(np.mean([r["correct"] for r in sure])) if sure else None,
            "certain_cells": len(sure),
            "per_class": per_class,
            "unscored_cells": len(unscored),
            "unscored_uncertain_share": float(np.mean([r["uncertain"] for r in unscored])) if unscored else None,
        }
    return out


def print_report(summary, model_name, seg):
    print(f"\nmodel: {model_name}\ncells found by: {seg.get('method')}; nuclei sets: {seg.get('nuclei')}\n")
    print(f"{'set | mode':34s} {'cells':>6s} {'acc':>7s} {'bal.acc':>7s} {'uncert':>7s} {'acc|cert':>8s}")
    for k, v in summary.items():
        f = lambda x: "   -  " if x is None else f"{100 * x:6.1f}%"
        print(f"{k:34s} {v['cells']:6d} {f(v['accuracy'])} {f(v['class_balanced_accuracy'])} "
              f"{f(v['uncertain_share'])} {f(v['accuracy_of_certain'])}")
    print()
    for k, v in summary.items():
        print(k)
        for c, pc in v["per_class"].items():
            called = ", ".join(f"{a} {b}" for a, b in pc["called"].items())
            print(f"   {c:30s} n={pc['n']:4d}  {100 * pc['accuracy']:5.1f}%  uncertain {100 * pc['uncertain']:5.1f}%   called: {called}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(DEFAULT_ROOT))
    ap.add_argument("--model", default=None, help="classifier name or path (default: the bundled one)")
    ap.add_argument("--autoencoder", default="default",
                    help="'default' (what classify uses by default), 'none', 'bundled' or a path")
    ap.add_argument("--sets", default=",".join(ALL_SETS))
    ap.add_argument("--json", default=None, help="write the summary (and every cell's row) here")
    ap.add_argument("--protein-gamma", type=float, default=1.0,
                    help="put each protein image through x ** GAMMA over its range first (a robustness check)")
    a = ap.parse_args(argv)
    if not a.protein_gamma > 0:
        ap.error("--protein-gamma must be a positive number, e.g. 0.7 or 1.5")
    root = Path(a.root)
    if not root.is_dir():
        print(f"{root} not found: nothing to evaluate (the real images are not part of the project).")
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    from napari_organelle.inference import load_model

    model = load_model(a.model)
    kw = {}
    if a.autoencoder == "none":
        kw["autoencoder"] = None
    elif a.autoencoder != "default":
        kw["autoencoder"] = load_model(None if a.autoencoder == "bundled" else a.autoencoder, kind="autoencoder")
    sets = [s.strip() for s in a.sets.split(",") if s.strip()]
    t = time.perf_counter()
    rows = evaluate(root, sets, model, protein_gamma=a.protein_gamma, **kw)
    if a.protein_gamma != 1.0:
        print(f"(every protein image through x ** {a.protein_gamma:g} over its range)")
    summary = summarise(rows)
    print_report(summary, model.name, SEGMENTATION)
    print(f"\n{len(rows)} cell results in {time.perf_counter() - t:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps({"model": model.name, "segmentation": SEGMENTATION,
                                            "summary": summary, "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
