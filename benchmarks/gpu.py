"""GPU benchmark (one run, < 10 min on an H200): training epoch, inference, end-to-end from TIFF files.

    python benchmarks/gpu.py --out results/          # on a CUDA machine (or set $OUT)
    python benchmarks/gpu.py --smoke --out /tmp/gs   # tiny sizes on the CPU: checks the code paths only

What it measures (figures, not tests; nothing asserts a speed):

1. floors: measured dense bf16 matmul TFLOP/s and device-memory copy GB/s (next to the spec sheet);
2. training: one epoch over 862 simulated cells through the real engine (``training.train``; data
   resident on the GPU, augmentation on the GPU) for fp32, bf16 autocast, bf16 + channels-last,
   bf16 + channels-last + torch.compile, at batch sizes 32 and 128 (median of the epochs after the
   first);
3. inference with the data already on the GPU: the model alone on prepared 128 px cells, and the
   whole pipeline from raw 382x382 uint16 cells (percentile scaling + antialiased resize on the GPU
   by the product's ``preprocess.prepare_batch``, checked against ``preprocess.prepare_pair``),
   same variants;
4. end to end from 2-channel uint16 TIFF files on disk: first the product's own path, exactly what
   ``napari-organelle classify FILES --device cuda`` runs (``io.iter_read_pairs`` threads +
   ``inference.iter_classify`` with device-side preparation, bundled classifier, fp32); then a
   tuned pipeline that shows the ceiling: a thread pool decodes into pinned host buffers
   (double/triple buffered), a side stream copies them to the GPU while the previous batch is
   classified in bf16 + channels-last; two decoders: ``tifffile.imread`` and a same-layout fast
   path (a file whose bytes outside the pixel data equal those of the first file has the same
   layout, so its pixels are read straight into the pinned buffer; anything else falls back to
   tifffile). Predictions are checked against the CPU path (``prepare_pair`` + the same model).

Every figure is also given as a fraction of the chip's FLOP and memory-bandwidth floors. The table
goes to OUT/gpu_benchmark.md and everything to OUT/gpu_benchmark.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

try:
    import napari_organelle  # noqa: F401
except ImportError:  # run from a checkout that is not pip-installed (e.g. the GPU machine)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from napari_organelle.classes import CLASSES
from napari_organelle.datasets import to_classifier_tensors
from napari_organelle.models.registry import build_model, count_parameters, flops_per_cell
from napari_organelle.phantoms import simulate_dataset
from napari_organelle.preprocess import prepare_batch, prepare_pair
from napari_organelle.training import TrainConfig, train

SPEC = {"H200": {"bf16_tflops_spec": 989.0, "bf16_tflops_measured_ref": 790.0, "hbm_tbs": 4.8}}
T0 = time.perf_counter()


def log(msg=""):
    print(f"[{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev, reps=10, warm=2) -> float:
    """Seconds per call (best of 3 rounds of ``reps`` calls)."""
    for _ in range(warm):
        fn()
    sync(dev)
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        sync(dev)
        best = min(best, (time.perf_counter() - t) / reps)
    return best


# --------------------------------------------------------------------------------------------------
# floors
# --------------------------------------------------------------------------------------------------
def floors(dev, smoke) -> dict:
    n = 512 if smoke else 8192
    dt_ = torch.bfloat16 if dev.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=dev, dtype=dt_)
    b = torch.randn(n, n, device=dev, dtype=dt_)
    s = timed(lambda: a @ b, dev, reps=3 if smoke else 20)
    mm = 2 * n ** 3 / s / 1e12
    m = (16 if smoke else 2048) * 2 ** 20
    x = torch.empty(m // 4, device=dev)
    y = torch.empty_like(x)
    s = timed(lambda: y.copy_(x), dev, reps=3 if smoke else 20)
    bw = 2 * m / s / 1e12
    a = b = x = y = None  # free the device memory (not `del`: the timed lambdas close over them)
    return {"matmul_tflops": mm, "matmul_dtype": str(dt_), "copy_tbs": bw}


# --------------------------------------------------------------------------------------------------
# GPU preprocessing equal to preprocess.prepare_pair (percentile scaling + antialiased resize)
# --------------------------------------------------------------------------------------------------
def _u16_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint16 data held in an int16 tensor (pinned buffers) -> float32 0..65535."""
    if x.dtype == torch.int16:
        return (x.to(torch.int32) & 0xFFFF).to(torch.float32)
    return x.to(torch.float32)


def gpu_prepare(raw: torch.Tensor, size: int = 128) -> torch.Tensor:
    """raw (B, 2, H, W) uint16 values on the device (int16-held or any int/float dtype) ->
    (B, 2, size, size) in [0, 1]: the product's ``preprocess.prepare_batch``."""
    return prepare_batch(_u16_to_float(raw), size=size)


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
def _sim_class(args):
    per_class, seed, cls, size = args
    d = simulate_dataset(per_class, seed=seed, size=size, classes=[cls])
    return [(s.protein, s.dna, s.label) for s in d.samples]


def simulate(per_class, seed, size, workers):
    with cf.ProcessPoolExecutor(max_workers=workers) as ex:
        parts = list(ex.map(_sim_class, [(per_class, seed, c, size) for c in CLASSES]))
    from napari_organelle.datasets import LabelledImages, Sample

    samples = [Sample(p, d, lab, f"simulated:{seed}:{i}") for i, (p, d, lab) in
               enumerate(x for part in parts for x in part)]
    return LabelledImages(samples=samples, classes=list(CLASSES), skipped=[], warnings=[],
                          description=f"simulated per_class={per_class} seed={seed}")


# --------------------------------------------------------------------------------------------------
# end to end from TIFF files
# --------------------------------------------------------------------------------------------------
class FastTiff:
    """Reads 2-channel uint16 TIFFs that share the first file's layout straight into a buffer."""

    def __init__(self, template: Path):
        import tifffile

        with tifffile.TiffFile(template) as tf:
            pages = tf.pages
            offs, counts = [], []
            for p in pages:
                offs += list(p.dataoffsets)
                counts += list(p.databytecounts)
            self.shape = tf.series[0].shape
            self.dtype = tf.series[0].dtype
        raw = template.read_bytes()
        self.size = len(raw)
        # one contiguous run of pixel data?
        order = np.argsort(offs)
        start, end = offs[order[0]], offs[order[0]]
        for i in order:
            if offs[i] != end:
                start = None
                break
            end += counts[i]
        self.ok = (start is not None and self.dtype == np.uint16 and
                   end - start == int(np.prod(self.shape)) * 2 and tuple(self.shape)[-3:][0] == 2)
        self.start, self.end = start, end
        self.head = raw[:start] if self.ok else b""
        self.tail = raw[end:] if self.ok else b""
        self.fast, self.slow = 0, 0

    def read_into(self, path: Path, out: np.ndarray) -> None:
        """out: (2, H, W) uint16 view into the pinned buffer."""
        if self.ok:
            fd = os.open(path, os.O_RDONLY)
            try:
                if os.fstat(fd).st_size == self.size and os.pread(fd, len(self.head), 0) == self.head and \
                        os.pread(fd, len(self.tail), self.end) == self.tail:
                    mv = memoryview(out.reshape(-1).view(np.uint8))
                    got = os.preadv(fd, [mv], self.start)
                    if got == self.end - self.start:
                        self.fast += 1
                        return
            finally:
                os.close(fd)
        self.slow += 1
        out[...] = read_tifffile(path)


def read_tifffile(path: Path) -> np.ndarray:
    import tifffile

    a = tifffile.imread(path)
    if a.ndim == 3 and a.shape[-1] == 2:
        a = np.moveaxis(a, -1, 0)
    return a


def e2e_classify(files, classify_gpu, dev, batch, workers, reader: str, hw, slots=3) -> tuple[torch.Tensor, float]:
    """Decode ``files`` with a thread pool into pinned buffers, copy on a side stream, classify.
    Returns (predictions on the CPU, seconds)."""
    cuda = dev.type == "cuda"
    h, w = hw
    pinned = [torch.empty((batch, 2, h, w), dtype=torch.int16, pin_memory=cuda) for _ in range(slots)]
    views = [p.numpy().view(np.uint16) for p in pinned]
    copied = [None] * slots
    fast = FastTiff(Path(files[0])) if reader == "fast" else None
    pool = cf.ThreadPoolExecutor(max_workers=workers)
    copy_stream = torch.cuda.Stream(dev) if cuda else None
    nb = math.ceil(len(files) / batch)

    def read_chunk(s, i0, paths):
        for j, p in enumerate(paths):
            if fast is not None:
                fast.read_into(p, views[s][i0 + j])
            else:
                views[s][i0 + j] = read_tifffile(p)

    def submit(b):
        s = b % slots
        if copied[s] is not None:
            copied[s].synchronize()  # the slot's previous copy to the GPU has finished
        fs = files[b * batch:(b + 1) * batch]
        per = math.ceil(len(fs) / workers)
        return [pool.submit(read_chunk, s, i, fs[i:i + per]) for i in range(0, len(fs), per)]

    t0 = time.perf_counter()
    futs = {b: submit(b) for b in range(min(slots - 1, nb))}
    preds = []
    for b in range(nb):
        if b + slots - 1 < nb:
            futs[b + slots - 1] = submit(b + slots - 1)
        for f in futs.pop(b):
            f.result()
        s = b % slots
        n = min(batch, len(files) - b * batch)
        if cuda:
            with torch.cuda.stream(copy_stream):
                xg = pinned[s][:n].to(dev, non_blocking=True)
                ev = torch.cuda.Event()
                ev.record(copy_stream)
            copied[s] = ev
            torch.cuda.current_stream(dev).wait_event(ev)
            xg.record_stream(torch.cuda.current_stream(dev))
        else:
            xg = pinned[s][:n].clone()
        preds.append(classify_gpu(xg).argmax(1))
    out = torch.cat(preds).cpu()
    sec = time.perf_counter() - t0
    pool.shutdown()
    if fast is not None:
        log(f"    fast reader: {fast.fast} files via the same-layout path, {fast.slow} via tifffile")
    return out, sec


# --------------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT", "results"))
    p.add_argument("--smoke", action="store_true", help="tiny sizes, CPU allowed: checks the code paths")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--files", type=int, default=8192, help="TIFF files for the end-to-end test")
    p.add_argument("--workers", type=int, default=0, help="decoder threads (0: CPU count)")
    p.add_argument("--tmp", default=None, help="folder for the TIFF files (default: a temp dir)")
    p.add_argument("--budget", type=float, default=480.0,
                   help="seconds for the whole run: training may use up to 45%% of it, inference up to "
                        "65%%, end to end up to 90%%; what would start later is skipped and marked so")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    smoke = args.smoke
    dev = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if dev.type != "cuda" and not smoke:
        print("No CUDA device: run with --smoke to check the code paths on the CPU.", file=sys.stderr)
        return 2
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or "CPU")
    spec = next((v for k, v in SPEC.items() if k in name), None)
    workers = args.workers or os.cpu_count() or 4
    R: dict = {"date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "device": name, "torch": torch.__version__,
               "cpus": os.cpu_count(), "smoke": smoke, "spec": spec,
               "command": "python benchmarks/gpu.py " + " ".join(sys.argv[1:] if argv is None else argv)}

    def time_for(section_frac: float) -> bool:
        return time.perf_counter() - T0 < section_frac * args.budget

    def save():  # after every section, so a run cut short still leaves its figures
        R["total_s"] = time.perf_counter() - T0
        (out / "gpu_benchmark.md").write_text(table(R) + "\n")
        (out / "gpu_benchmark.json").write_text(json.dumps(R, indent=1, default=str))

    log(f"device {name}, torch {torch.__version__}, {os.cpu_count()} CPUs{' (SMOKE: tiny sizes)' if smoke else ''}")
    R["floor"] = floors(dev, smoke)
    log(f"floor: matmul {R['floor']['matmul_tflops']:.1f} TFLOP/s ({R['floor']['matmul_dtype']}), copy "
        f"{R['floor']['copy_tbs']:.2f} TB/s")
    peak_f = (spec or {}).get("bf16_tflops_spec") or R["floor"]["matmul_tflops"]
    peak_b = (spec or {}).get("hbm_tbs") or R["floor"]["copy_tbs"]

    def frac(flops_s, bytes_s):
        return {"flop_frac_spec": flops_s / (peak_f * 1e12), "flop_frac_measured": flops_s / (R["floor"]["matmul_tflops"] * 1e12),
                "bw_frac_spec": bytes_s / (peak_b * 1e12), "bw_frac_measured": bytes_s / (R["floor"]["copy_tbs"] * 1e12)}

    # ---- data ----
    size = 128
    raw_side = 96 if smoke else 382
    per_class = 3 if smoke else 87
    data = simulate(per_class, 0, raw_side, min(10, os.cpu_count() or 1))
    X, y = to_classifier_tensors(data, size, list(CLASSES))
    n_ep = min(len(X), 862)
    Xtr, ytr = X[:n_ep], y[:n_ep]
    Xva, yva = X[-64:], y[-64:]
    R["epoch_cells"] = n_ep
    log(f"data: {len(X)} simulated cells ({raw_side}x{raw_side}); training epoch over {n_ep} cells")
    fwd_flops = flops_per_cell(build_model("classifier"), (2, size, size))
    R["model"] = {"arch": "organelle-cnn", "params": count_parameters(build_model("classifier")),
                  "gflop_per_cell": fwd_flops / 1e9}

    # ---- training ----
    R["train"] = []
    # the variant we expect to keep first, so a run short of time still measures it
    variants = [("bf16+channels_last", dict(amp=True, channels_last=True)), ("fp32", dict(amp=False)),
                ("bf16", dict(amp=True))]
    if not args.no_compile:
        variants.append(("bf16+channels_last+compile", dict(amp=True, channels_last=True, compile=True)))
    epochs = 2 if smoke else 5
    best_model = None
    for bs in (128, 32):
        for vname, kw in variants:
            if not time_for(0.45):
                log(f"train {vname} bs {bs}: skipped (time budget)")
                R["train"].append({"variant": vname, "batch": bs, "error": "skipped: time budget"})
                continue
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            try:
                t = time.perf_counter()
                r = train("classifier", (Xtr, ytr), (Xva, yva),
                          TrainConfig(epochs=epochs, batch_size=bs, device=str(dev), seed=0, **kw),
                          classes=list(CLASSES))
                wall = time.perf_counter() - t
            except Exception as exc:  # noqa: BLE001 - report and go on
                log(f"train {vname} bs {bs}: FAILED {type(exc).__name__}: {exc}")
                R["train"].append({"variant": vname, "batch": bs, "error": str(exc)[:300]})
                continue
            secs = [h.seconds for h in r.history]
            ep = statistics.median(secs[1:]) if len(secs) > 1 else secs[0]
            mem = torch.cuda.max_memory_allocated(dev) / 2 ** 20 if dev.type == "cuda" else None
            row = {"variant": vname, "batch": bs, "epoch_s": ep, "first_epoch_s": secs[0], "wall_s": wall,
                   "cells_per_s": n_ep / ep, "peak_mem_mb": mem, "val_acc_last": r.history[-1].val_acc,
                   **frac(3 * fwd_flops * n_ep / ep, 2 * size * size * 4 * n_ep / ep)}
            R["train"].append(row)
            best_model = r.model if best_model is None or "compile" not in vname else best_model
            log(f"train {vname:28s} bs {bs:4d}: {ep:.3f} s/epoch ({n_ep / ep:,.0f} cells/s; first epoch "
                f"{secs[0]:.2f}s), peak {mem and round(mem)} MB, {100 * row['flop_frac_spec']:.2f}% of FLOP peak")

    save()

    # ---- inference, data on the device ----
    model = (best_model or build_model("classifier")).to(dev).eval()
    R["infer"] = []
    B = 64 if smoke else 1024
    reps = 2 if smoke else 20
    xprep = torch.from_numpy(np.concatenate([X] * math.ceil(B / len(X)))[:B]).to(dev)
    raw = np.stack([np.stack([s.protein, s.dna]) for s in data.samples])
    raw_b = torch.from_numpy(np.concatenate([raw] * math.ceil(B / len(raw)))[:B].astype(np.int32)).to(dev)
    # correctness of the GPU preprocessing vs the CPU reference
    ref = torch.from_numpy(np.stack([prepare_pair(s.protein, s.dna, size=size) for s in data.samples[:16]]))
    try:
        got = gpu_prepare(raw_b[:16], size).cpu()
        R["prep_maxdiff"] = float((got - ref).abs().max())
    except Exception as exc:  # noqa: BLE001
        R["prep_maxdiff"] = f"FAILED {exc}"[:200]
    log(f"GPU preprocessing (preprocess.prepare_batch) vs prepare_pair, max |diff|: {R['prep_maxdiff']}")
    prep_ok = isinstance(R["prep_maxdiff"], float) and R["prep_maxdiff"] < 1e-3
    cm = torch.compile(model) if not args.no_compile and not smoke else (
        torch.compile(model, backend="eager") if not args.no_compile else None)
    inf_variants = [("fp32", model, False, False), ("bf16", model, True, False), ("bf16+channels_last", model, True, True)]
    if cm is not None:
        inf_variants.append(("bf16+channels_last+compile", cm, True, True))
    for vname, m, amp, cl in inf_variants:
        if not time_for(0.65):
            log(f"infer {vname}: skipped (time budget)")
            R["infer"].append({"variant": vname, "error": "skipped: time budget"})
            continue
        m_ = m
        if cl:
            model.to(memory_format=torch.channels_last)
        else:
            model.to(memory_format=torch.contiguous_format)
        ac = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp and dev.type == "cuda" else \
            (lambda: torch.autocast("cpu", enabled=False))

        def fwd(x, m_=m_, cl=cl, ac=ac):
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), ac():
                return m_(x)

        try:
            s = timed(lambda: fwd(xprep), dev, reps=reps)
            row = {"variant": vname, "what": "model only, prepared 128px cells on device", "batch": B,
                   "cells_per_s": B / s, **frac(fwd_flops * B / s, 2 * size * size * 4 * B / s)}
            R["infer"].append(row)
            log(f"infer {vname:28s} model only    : {B / s:12,.0f} cells/s")
            if prep_ok:
                s = timed(lambda: fwd(gpu_prepare(raw_b, size)), dev, reps=max(1, reps // 4))
                row = {"variant": vname, "what": "raw 382px uint16 on device + GPU preprocessing",
                       "batch": B, "cells_per_s": B / s,
                       **frac(fwd_flops * B / s, 2 * raw_side * raw_side * 2 * B / s)}
                R["infer"].append(row)
                log(f"infer {vname:28s} + GPU prep  : {B / s:12,.0f} cells/s")
        except Exception as exc:  # noqa: BLE001
            log(f"infer {vname}: FAILED {type(exc).__name__}: {exc}")
            R["infer"].append({"variant": vname, "error": str(exc)[:300]})
    model.to(memory_format=torch.contiguous_format)
    save()

    # ---- end to end from TIFF files ----
    import tifffile

    nfiles = 64 if smoke else args.files
    tmp = Path(args.tmp) if args.tmp else Path(tempfile.mkdtemp(prefix="organelle_tiffs_"))
    tmp.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    files = []
    for i in range(nfiles):
        f = tmp / f"cell_{i:05d}.tif"
        tifffile.imwrite(f, raw[i % len(raw)].astype(np.uint16))
        files.append(f)
    log(f"wrote {nfiles} TIFF files ({files[0].stat().st_size / 1e3:.0f} kB each) to {tmp} in "
        f"{time.perf_counter() - t:.1f}s (they are in the page cache)")
    best = max((r for r in R["infer"] if r.get("what", "").startswith("raw")), key=lambda r: r["cells_per_s"],
               default=None)
    use_cl = True
    model.to(memory_format=torch.channels_last)
    m_e2e = cm if (best and "compile" in best["variant"] and cm is not None) else model

    def classify_gpu(xg):
        with torch.inference_mode(), (torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda"
                                      else torch.autocast("cpu", enabled=False)):
            x = gpu_prepare(xg, size)
            return m_e2e(x.contiguous(memory_format=torch.channels_last) if use_cl else x).float()

    # reference predictions (CPU path) for the first 64 files
    model_cpu = build_model("classifier")
    model_cpu.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    model_cpu.eval()
    with torch.inference_mode():
        xr = torch.from_numpy(np.stack([prepare_pair(*read_tifffile(f), size=size) for f in files[:64]]))
        ref_pred = model_cpu(xr).argmax(1)
    R["e2e"] = []
    bsz = 32 if smoke else 512
    # the product's own path: exactly what `napari-organelle classify FILES --device cuda` runs
    # (threaded reads + checks in io.iter_read_pairs, batched device-side preparation in
    # inference.iter_classify), with the bundled classifier in fp32
    if time_for(0.9):
        try:
            from napari_organelle.inference import iter_classify, load_model
            from napari_organelle.io import iter_read_pairs

            clf = load_model(None, "classifier")
            clf.model.to(dev).eval()

            def product_run(fs, preprocess="auto"):
                t = time.perf_counter()
                labels = [r.label for r in iter_classify(
                    (pl for _, pl, err in iter_read_pairs(fs, workers=workers) if err is None),
                    clf, batch_size=bsz, preprocess=preprocess)]
                return labels, time.perf_counter() - t

            product_run(files[: min(len(files), 2 * bsz)])  # warm-up
            labels, sec = product_run(files)
            host_labels, _ = product_run(files[:64], preprocess="host")
            agree = float(np.mean([a == b for a, b in zip(labels[:64], host_labels)]))
            row = {"reader": "product (napari-organelle classify)", "files": nfiles, "batch": bsz, "workers": workers,
                   "cells_per_s": nfiles / sec, "agree_with_cpu_path": agree, "preprocessing": "prepare_batch",
                   **frac(fwd_flops * nfiles / sec, 2 * raw_side * raw_side * 2 * nfiles / sec)}
            R["e2e"].append(row)
            log(f"end to end, the product's path ({workers} threads, batch {bsz}): {nfiles / sec:,.0f} cells/s; "
                f"labels agree with host preprocessing on {100 * agree:.0f}% of 64")
        except Exception as exc:  # noqa: BLE001
            log(f"end to end, product path: FAILED {type(exc).__name__}: {exc}")
            R["e2e"].append({"reader": "product (napari-organelle classify)", "error": str(exc)[:300]})
    else:
        R["e2e"].append({"reader": "product (napari-organelle classify)", "error": "skipped: time budget"})
    for reader in ("fast", "tifffile"):
        if not time_for(0.9):
            log(f"end to end {reader}: skipped (time budget)")
            R["e2e"].append({"reader": reader, "error": "skipped: time budget"})
            continue
        try:
            e2e_classify(files[: min(len(files), 2 * bsz)], classify_gpu, dev, bsz, workers, reader,
                         (raw_side, raw_side))  # warm-up
            pred, sec = e2e_classify(files, classify_gpu, dev, bsz, workers, reader, (raw_side, raw_side))
            agree = float((pred[:64] == ref_pred[: len(pred[:64])]).float().mean())
            row = {"reader": reader, "files": nfiles, "batch": bsz, "workers": workers, "cells_per_s": nfiles / sec,
                   "agree_with_cpu_path": agree, "preprocessing": "prepare_batch",
                   **frac(fwd_flops * nfiles / sec, 2 * raw_side * raw_side * 2 * nfiles / sec)}
            R["e2e"].append(row)
            log(f"end to end ({reader:8s}, {workers} threads, batch {bsz}): {nfiles / sec:,.0f} cells/s; "
                f"predictions agree with the CPU path on {100 * agree:.0f}% of 64")
        except Exception as exc:  # noqa: BLE001
            log(f"end to end {reader}: FAILED {type(exc).__name__}: {exc}")
            R["e2e"].append({"reader": reader, "error": str(exc)[:300]})
    if not args.tmp:
        for f in files:
            f.unlink()
        tmp.rmdir()

    save()
    print("\n" + table(R))
    log(f"wrote {out / 'gpu_benchmark.md'} and gpu_benchmark.json")
    return 0


def _err(r) -> str:
    e = r["error"][:80]
    return e if e.startswith("skipped") else f"failed: {e}"


def table(R) -> str:
    f = R["floor"]
    sp = R["spec"] or {}
    L = [f"GPU benchmark {R['date']} on {R['device']} ({R['cpus']} CPUs), torch {R['torch']}; command "
         f"`{R['command']}`{' -- SMOKE RUN (tiny sizes; not a measurement)' if R['smoke'] else ''}.", "",
         f"Floors: measured matmul {f['matmul_tflops']:.1f} TFLOP/s ({f['matmul_dtype']}), copy {f['copy_tbs']:.2f} TB/s"
         + (f"; spec {sp['bf16_tflops_spec']:.0f} TFLOP/s dense bf16, {sp['hbm_tbs']} TB/s HBM" if sp else "")
         + ". Fractions below: achieved FLOP/s and minimum input bytes/s over the spec (measured in brackets).",
         "", (f"Model: organelle-cnn, {R['model']['params']:,} params, {R['model']['gflop_per_cell']:.3f} GFLOP per "
              "128 px cell (training counted as 3x)." if "model" in R else "(the run ended before the data was ready)"),
         "",
         f"| training (engine, {R['epoch_cells']} cells, data + augmentation on the device) | batch | s/epoch | cells/s | first epoch s "
         "| peak MB | FLOP frac | BW frac |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in R.get("train", []):
        if "error" in r:
            L.append(f"| {r['variant']} | {r['batch']} | {_err(r)} | | | | | |")
            continue
        L.append(f"| {r['variant']} | {r['batch']} | {r['epoch_s']:.3f} | {r['cells_per_s']:,.0f} | "
                 f"{r['first_epoch_s']:.2f} | {r['peak_mem_mb'] and round(r['peak_mem_mb'])} | "
                 f"{100 * r['flop_frac_spec']:.2f}% ({100 * r['flop_frac_measured']:.2f}%) | "
                 f"{100 * r['bw_frac_spec']:.3f}% ({100 * r['bw_frac_measured']:.3f}%) |")
    L += ["", "| inference, data on the device | input | batch | cells/s | FLOP frac | BW frac |",
          "|---|---|---:|---:|---:|---:|"]
    for r in R.get("infer", []):
        if "error" in r:
            L.append(f"| {r['variant']} | {_err(r)} | | | | |")
            continue
        L.append(f"| {r['variant']} | {r['what']} | {r['batch']} | {r['cells_per_s']:,.0f} | "
                 f"{100 * r['flop_frac_spec']:.2f}% ({100 * r['flop_frac_measured']:.2f}%) | "
                 f"{100 * r['bw_frac_spec']:.3f}% ({100 * r['bw_frac_measured']:.3f}%) |")
    L += ["", f"GPU preprocessing (`preprocess.prepare_batch`) vs `prepare_pair`, max abs difference: "
          f"{R.get('prep_maxdiff')}.", "",
          "| end to end from TIFF files (page cache) | files | threads | batch | cells/s | agrees with CPU path | "
          "BW frac |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in R.get("e2e", []):
        if "error" in r:
            L.append(f"| {r['reader']} | {_err(r)} | | | | | |")
            continue
        what = r["reader"] if r["reader"].startswith("product") else f"{r['reader']} decoder"
        L.append(f"| {what}, GPU preprocessing ({r['preprocessing']}) | {r['files']} | {r['workers']} | "
                 f"{r['batch']} | {r['cells_per_s']:,.0f} | {100 * r['agree_with_cpu_path']:.0f}% | "
                 f"{100 * r['bw_frac_spec']:.3f}% |")
    L.append(f"\nThe whole run took {R.get('total_s', 0):.0f} s" + ("." if "e2e" in R else
             " (partial: written before the end of the run)."))
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
