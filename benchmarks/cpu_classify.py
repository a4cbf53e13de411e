"""CPU speed of the classify path, idle and with one core kept busy by another process (issue 14).

    python benchmarks/cpu_classify.py                    # ~5 min on 2 cores (first run: +1 min of phantoms)
    python benchmarks/cpu_classify.py --quick            # fewer repeats (a check of the script)
    python benchmarks/cpu_classify.py --compare-src DIR  # also time the same command with another source
                                                         # tree (e.g. a checkout of main) and compare labels

One run prints, side by side:

* start-up: ``import napari_organelle``, ``napari-organelle --help``, ``models``, ``classify`` of one file;
* the 1,000-file command (``napari-organelle classify`` of 1,000 two-channel 382x382 uint16 TIFFs
  written by ``napari-organelle phantoms``, start-up included), and its labels against a plain
  reference computed here (np.percentile scaling, the model's network as it is, float32);
* batched per-cell time with each stage's share (read, several-cells check, percentile scaling,
  resize, network), the network with folded batch norms / channels-last / bfloat16;
* idle vs one core kept busy (``python -c "while True: pass"`` pinned to CPU 0), for single
  ``classify()`` calls, ``classify_batch``, the 1,000-file command and a training epoch, with the
  product's thread policy and with two threads forced (what torch does by default).

Every figure is measured with the bundled model as it is (its input size read from it). Writes
the text between ``<!-- cpu-classify:begin -->`` / ``<!-- cpu-classify:end -->`` in docs/benchmarks.md
(``--no-write`` to only print). Figures, not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"


def log(msg=""):
    print(msg, flush=True)


def env_for(src: Path, **extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("OMP_NUM_THREADS", None)  # the product decides (unless a figure forces it)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cmd(args, src: Path = SRC, **extra) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, *args], env=env_for(src, **extra), capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args[:4]))} failed: {r.stderr[-2000:]}")
    return wall


def timed(args, reps: int, src: Path = SRC, **extra) -> dict:
    walls = [run_cmd(args, src, **extra) for _ in range(reps)]
    return {"best": min(walls), "median": statistics.median(walls), "all": walls}


@contextlib.contextmanager
def busy_core(cpu: int = 0):
    """Another process that keeps one core busy (pinned to ``cpu``) while the block runs."""
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(child.pid, {cpu})
        time.sleep(0.5)
        yield child
    finally:
        child.kill()
        child.wait()
        time.sleep(0.3)


@contextlib.contextmanager
def forced_threads(n):
    old = os.environ.get("NAPARI_ORGANELLE_THREADS")
    if n is None:
        os.environ.pop("NAPARI_ORGANELLE_THREADS", None)
    else:
        os.environ["NAPARI_ORGANELLE_THREADS"] = str(n)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("NAPARI_ORGANELLE_THREADS", None)
        else:
            os.environ["NAPARI_ORGANELLE_THREADS"] = old


def machine() -> dict:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "loadavg_start": os.getloadavg(),
            "command": "python benchmarks/" + " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}


# --------------------------------------------------------------------------------------------------
# the plain reference (what the classify path computed before it was optimised)
# --------------------------------------------------------------------------------------------------
def plain_prepare(p, d, size):
    import numpy as np
    import torch
    import torch.nn.functional as F

    from napari_organelle.preprocess import HIGH_PERCENTILE, LOW_PERCENTILE

    def norm(a):
        a = a.astype(np.float32)
        lo, hi = np.percentile(a.ravel(), [LOW_PERCENTILE, HIGH_PERCENTILE])
        if not hi > lo:
            hi = float(a.max())
            if not hi > lo:
                return np.zeros(a.shape, np.float32)
        return np.clip((a - np.float32(lo)) * np.float32(1.0 / (hi - lo)), 0, 1)

    def resize(a):
        h, w = a.shape
        s = size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        t = torch.from_numpy(a)[None, None]
        if (nh, nw) != (h, w):
            t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h)
        out = torch.zeros((size, size))
        top, left = (size - nh) // 2, (size - nw) // 2
        out[top:top + nh, left:left + nw] = t[0, 0]
        return out.numpy()

    x = np.zeros((2, size, size), np.float32)
    x[0] = resize(norm(p))
    if d is not None:
        x[1] = resize(norm(d))
    return np.clip(x, 0, 1)


def plain_probs(clf, X):
    import torch

    from napari_organelle.inference import _calibration

    t, _ = _calibration(clf)
    with torch.inference_mode():
        out = []
        for i in range(0, len(X), 64):
            x = torch.from_numpy(X[i:i + 64])
            f = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(clf.model.features(x), 1), 1)
            out.append(torch.softmax(clf.model.head(f).float() / t, 1).numpy())
    import numpy as np

    return np.concatenate(out)


# --------------------------------------------------------------------------------------------------
def ensure_phantoms(data: Path) -> list[str]:
    files = sorted(glob.glob(str(data / "*" / "*.tif")))
    if len(files) < 1000:
        log(f"writing 1,000 simulated two-channel 382x382 TIFFs to {data} (napari-organelle phantoms) ...")
        data.mkdir(parents=True, exist_ok=True)
        run_cmd(["-m", "napari_organelle.cli", "phantoms", str(data), "--per-class", "100", "--overwrite"])
        files = sorted(glob.glob(str(data / "*" / "*.tif")))
    return files[:1000]


def read_csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def run(args) -> dict:
    import numpy as np
    import torch

    from napari_organelle import _threads, inference
    from napari_organelle.io import _read_checked, read_pair
    from napari_organelle.preprocess import normalize, prepare_pair, _resize_square_into
    from napari_organelle.training import TrainConfig, cpu_bf16_fast, train

    R: dict = {"machine": machine()}
    m = R["machine"]
    log(f"# CPU classify benchmark  {m['date']}  {m['cpu']}  {m['cores']} cores  load {m['loadavg_start']}")
    if m["loadavg_start"][0] > 1.5:
        log("  (the load average is above 1.5: other work shares the CPU and the figures are pessimistic)")
    clf = inference.load_model(None)
    size = inference._input_size(clf)
    R["model"] = {"name": clf.name, "arch": clf.arch, "input_size": size}
    log(f"model: {clf.name} ({clf.arch}), input {size} px")
    files = ensure_phantoms(Path(args.data))
    reps = 2 if args.quick else args.reps
    tmp = Path(args.work)
    tmp.mkdir(parents=True, exist_ok=True)
    cli = ["-m", "napari_organelle.cli"]

    # ---------------- start-up ----------------
    log("\n## start-up (wall, fresh process each; best / median of %d)" % (3 if args.quick else 7))
    n_su = 3 if args.quick else 7
    R["startup"] = {
        "import napari_organelle": timed(["-c", "import napari_organelle"], n_su),
        "napari-organelle --help": timed([*cli, "--help"], n_su),
        "napari-organelle models": timed([*cli, "models"], n_su),
        "napari-organelle classify (1 file)": timed([*cli, "classify", files[0]], n_su),
        "python -c 'import torch'": timed(["-c", "import torch"], n_su),
    }
    for k, v in R["startup"].items():
        log(f"{k}: {v['best']:.2f} / {v['median']:.2f} s")

    # ---------------- the 1,000-file command ----------------
    log(f"\n## napari-organelle classify of {len(files)} files to a CSV (start-up included; best / median of {reps})")
    out_csv = tmp / "classify.csv"
    cmd = [*cli, "classify", *files, "--output", str(out_csv)]
    R["command"] = {"default": timed(cmd, reps)}
    rows = read_csv_rows(out_csv)
    R["command"]["no_cell_check"] = timed(cmd + ["--no-cell-check"], reps)
    if cpu_bf16_fast():
        bf_csv = tmp / "classify_bf16.csv"
        R["command"]["bfloat16"] = timed([*cli, "classify", *files, "--output", str(bf_csv), "--precision",
                                          "bfloat16"], reps)
        bf_rows = read_csv_rows(bf_csv)
    if args.compare_src:
        ref_csv = tmp / "classify_compare.csv"
        R["command"]["compare_src"] = timed([*cli, "classify", *files, "--output", str(ref_csv)], reps,
                                            src=Path(args.compare_src))
        cmp_rows = read_csv_rows(ref_csv)
    for k, v in R["command"].items():
        log(f"{k}: {v['best']:.2f} / {v['median']:.2f} s ({1e3 * v['best'] / len(files):.2f} ms a file)")

    # labels against the plain reference
    log("\nplain reference (np.percentile scaling, the network as it is, float32) ...")
    pairs = [read_pair(f) for f in files]
    X = np.stack([plain_prepare(p, d, size) for p, d in pairs])
    ref = plain_probs(clf, X)
    classes = list(clf.classes)
    lab_ref = [classes[k] for k in ref.argmax(1)]
    P = np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows])
    R["identity"] = {"files": len(files), "labels_identical": [r["label"] for r in rows] == lab_ref,
                     "max_prob_diff": float(np.abs(P - ref).max())}
    if args.compare_src:
        R["identity"]["compare_labels_identical"] = [r["label"] for r in rows] == [r["label"] for r in cmp_rows]
        pcols = [f"p_{c}" for c in classes] + ["confidence"]
        R["identity"]["compare_other_columns_identical"] = all(
            all(x[k] == y[k] for k in x if k not in pcols) for x, y in zip(rows, cmp_rows))
        R["identity"]["compare_max_prob_diff"] = max(abs(float(x[k]) - float(y[k]))
                                                     for x, y in zip(rows, cmp_rows) for k in pcols)
    if cpu_bf16_fast():
        Pb = np.array([[float(r[f"p_{c}"]) for c in classes] for r in bf_rows])
        R["identity"]["bf16_labels_identical"] = [r["label"] for r in bf_rows] == lab_ref
        R["identity"]["bf16_label_differences"] = int(sum(a["label"] != b for a, b in zip(bf_rows, lab_ref)))
        R["identity"]["bf16_max_prob_diff"] = float(np.abs(Pb - ref).max())
        R["identity"]["bf16_uncertain_flips"] = int(sum(a["uncertain"] != b["uncertain"] for a, b in zip(bf_rows, rows)))
    log(json.dumps(R["identity"]))

    # ---------------- stages, per cell ----------------
    n = 256
    sub = files[:: len(files) // n][:n]
    log(f"\n## stages per cell ({n} files, one thread, CPU time and wall)")
    torch.set_num_threads(1)
    stages: dict[str, list] = {k: [0.0, 0.0] for k in ("read + validate", "several-cells check",
                                                        "percentile scaling", "resize", "network")}

    def tick(key, fn, *a, **k):
        c, w = time.thread_time(), time.perf_counter()
        out = fn(*a, **k)
        stages[key][0] += time.thread_time() - c
        stages[key][1] += time.perf_counter() - w
        return out

    # one untimed pass over the first file: lazy imports and first-call set-up are start-up, not a cell
    p, d = _read_checked(sub[0])
    inference.several_cells_warning(p, d)
    _resize_square_into([normalize(p), normalize(d)], size, np.zeros((2, size, size), np.float32))
    xs = []
    for f in sub:
        p, d = tick("read + validate", _read_checked, f)
        tick("several-cells check", inference.several_cells_warning, p, d)
        planes = tick("percentile scaling", lambda: [normalize(p), normalize(d)])
        out = np.zeros((2, size, size), np.float32)
        tick("resize", _resize_square_into, planes, size, out)
        xs.append(np.clip(out, 0, 1))
    Xs = torch.from_numpy(np.stack(xs))
    with torch.inference_mode():
        inference._scores(clf, Xs[:64])  # builds the folded copy once (not timed)
        for i in range(0, n, 64):
            tick("network", inference._scores, clf, Xs[i:i + 64])

    def per_cell(fn, reps_=3):
        fn()
        best = 1e9
        for _ in range(reps_):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return best / n * 1e3

    import copy

    fast_net, _ = inference._inference_net(clf, Xs[:2])
    cl_net = copy.deepcopy(clf.model).to(memory_format=torch.channels_last)
    batches = [Xs[i:i + 64] for i in range(0, n, 64)]
    batches_cl = [b.contiguous(memory_format=torch.channels_last) for b in batches]

    def forward(net, bs):
        return lambda: [net.head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(net.features(b), 1), 1))
                        for b in bs]

    with torch.inference_mode():
        net_plain = per_cell(forward(clf.model, batches))
        net_cl = per_cell(forward(cl_net, batches_cl))
        net_fast = per_cell(forward(fast_net, batches_cl))
        net_bf16 = per_cell(forward(inference._Bfloat16Features(fast_net), batches_cl)) if cpu_bf16_fast() else None
        scores = per_cell(lambda: [inference._scores(clf, b) for b in batches])
    total_cpu = sum(v[0] for v in stages.values())
    R["stages_ms"] = {k: {"cpu": 1e3 * v[0] / n, "wall": 1e3 * v[1] / n, "share": v[0] / total_cpu}
                      for k, v in stages.items()}
    R["network_ms"] = {"as stored (float32)": net_plain, "channels-last": net_cl,
                       "folded batch norms + channels-last (the default)": net_fast,
                       "the same, bfloat16 but the stem (opt-in)": net_bf16,
                       "inference._scores (the default network + softmax, novelty, structure)": scores}
    for k, v in R["stages_ms"].items():
        log(f"{k}: {v['cpu']:.3f} ms CPU ({100 * v['share']:.0f} %), {v['wall']:.3f} ms wall")
    log(f"total {1e3 * total_cpu / n:.2f} ms CPU a cell")
    for k, v in R["network_ms"].items():
        if v is not None:
            log(f"network, batch 64, 1 thread, {k}: {v:.2f} ms a cell")
    ref_prep = per_cell(lambda: [plain_prepare(*pairs[i], size) for i in range(n)], 1)
    new_prep = per_cell(lambda: [prepare_pair(*pairs[i], size=size) for i in range(n)], 1)
    R["prepare_ms"] = {"plain (np.percentile)": ref_prep, "prepare_pair": new_prep}
    log(f"preparation of a cell: plain {ref_prep:.2f} ms, prepare_pair {new_prep:.2f} ms")

    # ---------------- idle vs one core busy ----------------
    log("\n## idle vs one core kept busy by another process (pinned to CPU 0)")
    cells = pairs[:n]
    single = pairs[:32]
    Xtr = X[:862] if len(X) >= 862 else X
    ytr = np.array([classes.index(Path(f).parent.name) for f in files[:len(Xtr)]])
    R["load"] = {}

    def scenario(name, fn, modes=(None, 2)):
        for mode in modes:
            label = "policy" if mode is None else f"{mode} threads forced"
            got = {}
            for state in ("idle", "busy"):
                ctx = busy_core() if state == "busy" else contextlib.nullcontext()
                with ctx, forced_threads(mode):
                    load = _threads.CpuLoad()
                    time.sleep(0.5)
                    got[f"{state}_others"] = load.others()  # cores other processes used just before
                    _threads.mark()
                    got[state] = fn(mode)
            got["ratio"] = got["busy"] / got["idle"]
            R["load"][f"{name}, {label}"] = got
            log(f"{name}, {label}: idle {got['idle']:.3g}, busy {got['busy']:.3g} ({got['ratio']:.2f}x); "
                f"cores used by other processes just before: {got['idle_others']}, {got['busy_others']}")

    def single_calls(mode):
        t = time.perf_counter()
        for p, d in single:
            inference.classify(p, d, clf, check_cells=False)
        return (time.perf_counter() - t) / len(single) * 1e3  # ms a call

    def batch_calls(mode):
        t = time.perf_counter()
        inference.classify_batch(cells, clf, batch_size=64)
        return (time.perf_counter() - t) / len(cells) * 1e3  # ms a cell

    def command(mode):
        extra = {} if mode is None else {"NAPARI_ORGANELLE_THREADS": mode}
        return min(run_cmd(cmd, **extra) for _ in range(max(1, reps - 1)))  # s

    def epoch(mode):
        # a fine-tune of the bundled model, as the dock and `train --from` do; the second epoch timed
        res = train("classifier", (Xtr, ytr), (Xtr[:64], ytr[:64]),
                    TrainConfig(epochs=2, batch_size=32, device="cpu", seed=0, num_threads=None),
                    classes=classes, init=clf)
        return res.history[-1].seconds  # s

    torch.set_num_threads(_threads.cores())
    scenario("single classify() call, ms", single_calls)
    scenario("classify_batch, ms a cell", batch_calls)
    scenario(f"{len(files)}-file command, s", command)
    scenario(f"training epoch ({len(Xtr)} cells, batch 32), s", epoch)
    R["machine"]["loadavg_end"] = os.getloadavg()
    return R


def text(R: dict) -> str:
    m = R["machine"]
    md = R["model"]
    L = [f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), torch {m['torch']}, Python {m['python']}; "
         f"command `{m['command']}`; load average at start / end: "
         f"{', '.join(f'{x:.1f}' for x in m['loadavg_start'])} / {', '.join(f'{x:.1f}' for x in m['loadavg_end'])}"
         f"{' (other work shared the CPU: pessimistic)' if m['loadavg_start'][0] > 1.5 else ''}. "
         f"Model: {md['name']} ({md['arch']}, input {md['input_size']} px).", ""]
    L += ["| start-up (fresh process) | best s | median s |", "|---|---:|---:|"]
    for k, v in R["startup"].items():
        L.append(f"| `{k}` | {v['best']:.2f} | {v['median']:.2f} |")
    L += ["", "| `napari-organelle classify`, 1,000 two-channel 382x382 TIFFs to a CSV, start-up included | best s | median s | ms a file |",
          "|---|---:|---:|---:|"]
    names = {"default": "default (several-cells check, float32)", "no_cell_check": "`--no-cell-check`",
             "bfloat16": "`--precision bfloat16`", "compare_src": "the compared source tree (`--compare-src`)"}
    for k, v in R["command"].items():
        L.append(f"| {names.get(k, k)} | {v['best']:.2f} | {v['median']:.2f} | {1e3 * v['best'] / 1000:.2f} |")
    i = R["identity"]
    L += ["", f"Against a plain reference computed in the benchmark (np.percentile scaling, the network as stored, "
          f"float32) on the {i['files']} files: labels identical: **{i['labels_identical']}**, largest probability "
          f"difference {i['max_prob_diff']:.1g} (the CSV rounds to 1e-6)."
          + (f" Against the compared tree's CSV: labels identical {i['compare_labels_identical']}, every other "
             f"column but the probabilities identical {i['compare_other_columns_identical']}, probabilities within "
             f"{i['compare_max_prob_diff']:.0e} (their last printed digit)." if "compare_labels_identical" in i else "")
          + (f" `--precision bfloat16`: {i['bf16_label_differences']} label(s) differ, largest probability difference "
             f"{i['bf16_max_prob_diff']:.3f}, {i['bf16_uncertain_flips']} 'uncertain' flag(s) differ." if "bf16_max_prob_diff" in i
             else ""), ""]
    L += ["| stage, per 382x382 cell (1 thread) | ms CPU | share | ms wall |", "|---|---:|---:|---:|"]
    for k, v in R["stages_ms"].items():
        L.append(f"| {k} | {v['cpu']:.2f} | {100 * v['share']:.0f} % | {v['wall']:.2f} |")
    L.append(f"| total | {sum(v['cpu'] for v in R['stages_ms'].values()):.2f} | | "
             f"{sum(v['wall'] for v in R['stages_ms'].values()):.2f} |")
    L += ["", "The network, batch 64, 1 thread, ms a cell: " + "; ".join(
        f"{k} {v:.2f}" for k, v in R["network_ms"].items() if v is not None) + ". Preparation of a cell: "
        + "; ".join(f"{k} {v:.2f} ms" for k, v in R["prepare_ms"].items()) + ".", ""]
    L += ["| idle vs one core busy (`python -c \"while True: pass\"` pinned to CPU 0) | idle | one core busy | busy / idle | cores other processes used (idle / busy) |",
          "|---|---:|---:|---:|---:|"]

    def cores_(v):
        return "?" if v is None else f"{v:.1f}"

    for k, v in R["load"].items():
        L.append(f"| {k} | {v['idle']:.3g} | {v['busy']:.3g} | {v['ratio']:.2f}x | "
                 f"{cores_(v.get('idle_others'))} / {cores_(v.get('busy_others'))} |")
    return "\n".join(L)


def write_doc(md: Path, text: str) -> None:
    from _docs import write_between

    write_between(md, "cpu-classify", text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--reps", type=int, default=3, help="repeats of the 1,000-file command")
    p.add_argument("--data", default="/tmp/napari-organelle-bench/phantoms1000",
                   help="folder of the 1,000 simulated files (written if missing)")
    p.add_argument("--work", default="/tmp/napari-organelle-bench/work", help="scratch folder (CSVs)")
    p.add_argument("--compare-src", default=None, help="another source tree's src/ to time and compare with")
    p.add_argument("--no-write", action="store_true", help="print only (docs/benchmarks.md is not changed)")
    p.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    sys.path.insert(0, str(SRC))
    t0 = time.perf_counter()
    R = run(args)
    R["total_s"] = time.perf_counter() - t0
    body = text(R) + f"\n\nThe whole run took {R['total_s'] / 60:.1f} min."
    log("\n" + body)
    if not args.no_write:
        write_doc(ROOT / "docs/benchmarks.md", body)
        log("\nwrote docs/benchmarks.md (cpu-classify section)")
    if args.json:
        Path(args.json).write_text(json.dumps(R, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
