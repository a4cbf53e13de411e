"""Fields of cells: how well find_cells finds the cells, how well each is then classified, how fast.

    python benchmarks/fields.py             # full run (~5 min on 2 cores)
    python benchmarks/fields.py --quick     # fewer fields (about a minute)

On simulated fields (``phantoms.simulate_field``), whose true cells and classes are known:

* **segmentation**: cells matched at IoU >= 0.5 (a true cell and a found cell overlapping by at
  least half their union; such pairs are unique), precision, recall, F1 and the mean IoU of the
  matched cells, with the DNA channel and from the protein alone, on easy fields (separate cells,
  even illumination) and hard ones (70 % of the cells placed touching another, a vignette down to
  40 % with a background gradient, 30 specks of debris);
* **per-cell accuracy** of the bundled classifier (protein + DNA): on the cells found (each matched
  cell against its true class; and end to end, a missed cell counting as wrong), on the same cells
  cut out with their true outlines, and on single cropped cells of the same classes
  (``simulate_cell``: the images the classifier is measured on);
* **time** to find and classify the cells of a 2048 x 2048 field of 100 cells, 2 threads.

Prints the figures and writes them between the ``<!-- fields:begin -->`` / ``<!-- fields:end -->``
markers of docs/benchmarks.md (``--no-write`` to only print). Figures, not tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from napari_organelle import inference  # noqa: E402
from napari_organelle.phantoms import simulate_cell, simulate_field  # noqa: E402
from napari_organelle.segmentation import segment_cells  # noqa: E402

HARD = {"touching": 0.7, "illumination": 0.6, "debris": 30}


def log(msg=""):
    print(msg, flush=True)


def match(pred: np.ndarray, truth: np.ndarray, iou: float = 0.5) -> tuple[dict[int, int], list[float]]:
    """({true cell: found cell}, IoUs) for the pairs overlapping with IoU >= iou."""
    pred, truth = pred.astype(np.int64), truth.astype(np.int64)
    npred = int(pred.max())
    m = (pred > 0) | (truth > 0)
    cnt = np.bincount(truth[m] * (npred + 1) + pred[m],
                      minlength=(int(truth.max()) + 1) * (npred + 1)).reshape(-1, npred + 1)
    at = np.bincount(truth.ravel(), minlength=cnt.shape[0])
    ap = np.bincount(pred.ravel(), minlength=npred + 1)
    inter = cnt[1:, 1:].astype(np.float64)
    union = at[1:, None] + ap[None, 1:] - inter
    ratio = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    pairs = np.argwhere(ratio >= iou)
    return {int(t) + 1: int(p) + 1 for t, p in pairs}, [float(ratio[t, p]) for t, p in pairs]


class Tally:
    def __init__(self):
        self.true = self.found = self.matched = 0
        self.ious: list[float] = []

    def add(self, pred, truth):
        pairs, ious = match(pred, truth)
        self.true += len(np.unique(truth[truth > 0]))
        self.found += len(np.unique(pred[pred > 0]))
        self.matched += len(pairs)
        self.ious += ious
        return pairs

    def row(self, name):
        p = self.matched / max(1, self.found)
        r = self.matched / max(1, self.true)
        f1 = 2 * p * r / max(1e-9, p + r)
        return (f"| {name} | {self.true} | {self.found} | {self.matched} | {100 * p:.1f} | {100 * r:.1f} | "
                f"{f1:.3f} | {np.mean(self.ious) if self.ious else float('nan'):.3f} |"), f1


def quality(n_fields: int, n_cells: int, size: int, clf) -> tuple[list[str], dict]:
    """Segmentation and per-cell accuracy over ``n_fields`` easy and as many hard fields."""
    lines = ["| fields | true cells | found | matched (IoU >= 0.5) | precision % | recall % | F1 | mean IoU |",
             "|---|---|---|---|---|---|---|---|"]
    acc_lines = ["| fields | cells found, matched: accuracy % | end to end (missed = wrong) % | "
                 "same cells, true outlines % | single cropped cells, same classes % |",
                 "|---|---|---|---|---|"]
    figures = {}
    for kind, extra in (("easy", {}), ("hard", HARD)):
        with_dna, protein_only = Tally(), Tally()
        right_found = right_true_mask = n_true = n_matched = 0
        classes_seen: list[str] = []
        t_seg = []
        for k in range(n_fields):
            p, d, truth, classes = simulate_field(n_cells=n_cells, seed=100 + k, size=size, **extra)
            t = time.perf_counter()
            res = inference.classify_field(p, d, clf)
            t_seg.append(time.perf_counter() - t)
            pairs = with_dna.add(res.labels, truth)
            protein_only.add(segment_cells(p).labels, truth)
            right_found += sum(res.cells[c].label == classes[t_ - 1] for t_, c in pairs.items())
            n_matched += len(pairs)
            n_true += len(classes)
            true_mask = inference.classify_cells(p, truth, d, clf)
            right_true_mask += sum(true_mask[i].label == classes[i - 1] for i in true_mask)
            classes_seen += list(classes)
            log(f"  {kind} field {k + 1}/{n_fields}: {len(classes)} cells, {res.labels.max()} found, "
                f"{len(pairs)} matched, {time.perf_counter() - t:.1f} s")
        # single cropped cells of the same classes: one simulated cell per field cell
        rng = np.random.default_rng(2026)
        singles = [simulate_cell(c, rng) for c in classes_seen]
        single = inference.classify_batch(singles, clf)
        right_single = sum(r.label == c for r, c in zip(single, classes_seen))
        row, f1 = with_dna.row(f"{kind}, with DNA")
        lines.append(row)
        row_p, f1_p = protein_only.row(f"{kind}, protein only")
        lines.append(row_p)
        a_found = 100 * right_found / max(1, n_matched)
        a_e2e = 100 * right_found / max(1, n_true)
        a_true = 100 * right_true_mask / max(1, n_true)
        a_single = 100 * right_single / max(1, len(classes_seen))
        acc_lines.append(f"| {kind} | {a_found:.1f} ({n_matched} cells) | {a_e2e:.1f} ({n_true}) | {a_true:.1f} | "
                         f"{a_single:.1f} ({len(classes_seen)}) |")
        figures[kind] = {"f1": f1, "f1_protein_only": f1_p, "acc_found": a_found, "acc_e2e": a_e2e,
                         "acc_true_mask": a_true, "acc_single": a_single}
    return lines + [""] + acc_lines, figures


def timing(clf, reps: int) -> tuple[list[str], dict]:
    p, d, truth, classes = simulate_field(n_cells=100, seed=7, size=2048)
    inference.classify_field(p, d, clf)  # warm-up (imports, first allocations)
    seg_t, all_t, cpu_t, n = [], [], [], 0
    for _ in range(reps):
        t = time.perf_counter()
        segment_cells(p, d)
        seg_t.append(time.perf_counter() - t)
        t, c = time.perf_counter(), time.process_time()
        res = inference.classify_field(p, d, clf)
        all_t.append(time.perf_counter() - t)
        cpu_t.append(time.process_time() - c)
        n = len(res.cells)
    pairs, _ = match(res.labels, truth)
    acc = 100 * np.mean([res.cells[c].label == classes[t - 1] for t, c in pairs.items()]) if pairs else float("nan")
    true_mask = inference.classify_cells(p, truth, d, clf)
    acc_true = 100 * np.mean([true_mask[i].label == classes[i - 1] for i in true_mask])
    f1 = 2 * len(pairs) / max(1, n + len(classes))
    med_seg, med_all, med_cpu = float(np.median(seg_t)), float(np.median(all_t)), float(np.median(cpu_t))
    lines = [f"| 2048 x 2048, 100 cells (about 140 px across) | {n} found, F1 {f1:.3f} | {med_seg:.2f} s | "
             f"{med_all - med_seg:.2f} s | **{med_all:.2f} s** ({med_cpu:.1f} CPU s) | {acc:.1f} % "
             f"(true outlines {acc_true:.1f} %) |"]
    return lines, {"find_s": med_seg, "total_s": med_all, "cpu_s": med_cpu, "f1": f1}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 fields of each kind, 1 timing run")
    ap.add_argument("--fields", type=int, default=None, help="fields of each kind (default 8, --quick 2)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not rewrite docs/benchmarks.md")
    a = ap.parse_args()
    n_fields = a.fields or (2 if a.quick else 8)
    torch.set_num_threads(2)
    clf = inference.load_model(None)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    log(f"Quality on {n_fields} easy and {n_fields} hard simulated fields of 12 cells, 1536 x 1536 "
        "(cells the size of the classifier's training cells) ...")
    q_lines, q = quality(n_fields, 12, 1536, clf)
    log("Time for a 2048 x 2048 field of 100 cells, 2 threads ...")
    t_lines, tm = timing(clf, 1 if a.quick else 3)
    load1 = os.getloadavg()
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    cmd = "python benchmarks/" + " ".join([Path(sys.argv[0]).name] + sys.argv[1:])
    out = [f"Measured {when} by `{cmd}` ({os.cpu_count()} cores, torch {torch.__version__}, 2 threads; load "
           f"average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end: other jobs shared the machine "
           f"when it is above ~0.5). {time.perf_counter() - t0:.0f} s in all.", "",
           f"**Segmentation** (find_cells, default settings: cell size measured from the nuclei) on {n_fields} "
           "fields of each kind, 12 cells each, 1536 x 1536; hard = "
           f"touching {HARD['touching']}, illumination {HARD['illumination']}, debris {HARD['debris']} "
           "(see `simulate_field`). A cell matches when IoU >= 0.5.", "", *q_lines[:q_lines.index("")], "",
           "**Per-cell accuracy** of the bundled classifier (protein + DNA) on the same fields: the cells "
           "found (matched ones), end to end, the same cells cut out with their true outlines, and single "
           "cropped cells of the same classes (one `simulate_cell` image per field cell).", "",
           *q_lines[q_lines.index("") + 1:], "",
           "**Time** (median of the runs after a warm-up; classify_field = find_cells + classify each cell; "
           "CPU s: the process's CPU time, which other jobs on the machine do not inflate):",
           "", "| field | cells | find_cells | classify the cells | total | per-cell accuracy |",
           "|---|---|---|---|---|---|", *t_lines, "",
           "Goals: F1 >= 0.9 at IoU 0.5 on simulated fields: "
           + ", ".join(f"{k} {v['f1']:.3f} with DNA ({v['f1_protein_only']:.3f} protein only)" for k, v in q.items())
           + "; per-cell accuracy on fields within 3 points of single cropped cells: "
           + ", ".join(f"{k} {v['acc_found']:.1f} % vs {v['acc_single']:.1f} %" for k, v in q.items())
           + f"; a 2048 x 2048 field of ~100 cells found and classified in <= 10 s on 2 cores: "
             f"{tm['total_s']:.2f} s."]
    text = "\n".join(out)
    log("")
    log(text)
    if not a.no_write:
        from _docs import write_between

        doc = ROOT / "docs" / "benchmarks.md"
        write_between(doc, "fields", text)
        log(f"\nWrote the figures into {doc}")


if __name__ == "__main__":
    main()
