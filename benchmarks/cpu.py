"""CPU benchmark: our models vs the origin's (benchmarks/baselines.py), one run, every CPU figure.

    python benchmarks/cpu.py            # full run (~10-15 min on 2 cores)
    python benchmarks/cpu.py --quick    # smaller data / fewer epochs (a few minutes)

Same simulated data and epochs for every model. Prints the figures, writes the tables between the
``<!-- cpu:begin -->`` / ``<!-- cpu:end -->`` markers of docs/benchmarks.md and the plots
docs/images/benchmarks_cpu.png and docs/images/benchmarks_ae.png (``--no-write`` to only print).
Figures, not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from baselines import (OriginAE, OriginCNN, output_stats, train_origin_ae,  # noqa: E402
                       train_origin_classifier)

from napari_organelle import inference  # noqa: E402
from napari_organelle.checkpoints import load_checkpoint  # noqa: E402
from napari_organelle.classes import CLASSES  # noqa: E402
from napari_organelle.datasets import stratified_split, to_classifier_tensors, to_native_planes  # noqa: E402
from napari_organelle.models.registry import build_model, count_parameters, flops_per_cell  # noqa: E402
from napari_organelle.phantoms import simulate_dataset  # noqa: E402
from napari_organelle.preprocess import prepare_pair  # noqa: E402
from napari_organelle.training import TrainConfig, train  # noqa: E402

SIZE = 128
N_EPOCH_CELLS = 862


def log(msg=""):
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------------
# machine, floors
# --------------------------------------------------------------------------------------------------
def machine() -> dict:
    cpu = platform.processor() or "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "loadavg_start": os.getloadavg(), "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "command": "python benchmarks/" + " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}


def matmul_gflops(threads: int, n: int = 1024, reps: int = 10) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 1e9
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, (time.perf_counter() - t) / reps)
    return 2 * n ** 3 / best / 1e9


def copy_gbs(threads: int, mb: int = 256) -> float:
    torch.set_num_threads(threads)
    x = torch.empty(mb * 2 ** 20 // 4)
    y = torch.empty_like(x)
    y.copy_(x)
    best = 1e9
    for _ in range(5):
        t = time.perf_counter()
        y.copy_(x)
        best = min(best, time.perf_counter() - t)
    return 2 * x.numel() * 4 / best / 1e9  # read + write


# --------------------------------------------------------------------------------------------------
# peak memory, in a fresh process per measurement
# --------------------------------------------------------------------------------------------------
def _status_kb(key: str = "VmRSS") -> int:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _rss_kb() -> int:
    """Current resident memory; also resets the peak (VmHWM) to it, so a later VmHWM is the peak of
    what runs in between (ru_maxrss would carry the parent's peak across fork/exec)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_kb("VmRSS")


def _mem_child(what: str) -> None:
    """Runs in a subprocess: prints the peak extra resident memory (MB) of one operation."""
    torch.set_num_threads(1)
    model_name, op = what.split(":")
    if model_name == "ours-cnn":
        m, shape = build_model("classifier"), (2, SIZE, SIZE)
    elif model_name == "origin-cnn":
        m, shape = OriginCNN(), (2, SIZE, SIZE)
    elif model_name == "ours-ae":
        m, shape = build_model("autoencoder"), (1, 382, 382)
    else:
        m, shape = OriginAE(), (1, 382, 382)
    if op == "train":
        b = 32
        shape = shape if model_name.endswith("cnn") else (1, 96, 96)
        x = torch.rand((b,) + shape)
        y = torch.randint(0, 10, (b,))
        opt = torch.optim.AdamW(m.parameters())
        base = _rss_kb()
        for _ in range(2):
            out = m(x)
            loss = torch.nn.functional.cross_entropy(out, y) if model_name.endswith("cnn") else ((out - x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        b = 64 if model_name.endswith("cnn") else 1
        x = torch.rand((b,) + shape)
        m.eval()
        base = _rss_kb()
        with torch.inference_mode():
            for _ in range(2):
                m(x)
    peak = _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_extra_mb": max(0, peak - base) / 1024, "base_mb": base / 1024}))


def peak_mem(what: str) -> float | None:
    try:
        r = subprocess.run([sys.executable, __file__, "--_mem", what], capture_output=True, text=True,
                           timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return json.loads(r.stdout.strip().splitlines()[-1])["peak_extra_mb"]
    except Exception as exc:  # noqa: BLE001
        log(f"  memory measurement {what} failed: {exc}")
        return None


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
@torch.inference_mode()
def accuracy(model, X: np.ndarray, y: np.ndarray, protein_only=False, channels_last=False) -> float:
    model.eval()
    x = torch.from_numpy(X)
    if protein_only:
        x = x.clone()
        x[:, 1] = 0
    preds = []
    for i in range(0, len(x), 128):
        xb = x[i:i + 128]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        preds.append(model(xb).argmax(1))
    return float((torch.cat(preds).numpy() == y).mean())


def ae_metrics(model, planes) -> dict:
    """Mean MSE / PSNR / SSIM over whole planes (each in [0, 1]; outputs clipped to [0, 1])."""
    mses, psnrs, ssims = [], [], []
    with torch.inference_mode():
        model.eval()
        for p in planes:
            r = model(torch.from_numpy(p)[None, None])[0, 0].clamp(0, 1).numpy()
            mses.append(float(np.mean((r - p) ** 2)))
            psnrs.append(inference.psnr(p, r))
            ssims.append(inference.ssim(p, r))
    return {"mse": float(np.mean(mses)), "psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}


def time_it(fn, reps: int, warm: int = 1) -> float:
    for _ in range(warm):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def origin_classify(model, pairs):
    x = torch.from_numpy(np.stack([prepare_pair(p, d, size=SIZE) for p, d in pairs]))
    with torch.inference_mode():
        return torch.softmax(model(x), 1).argmax(1)


# --------------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------------
def run(args) -> dict:
    R: dict = {"machine": machine(), "args": vars(args)}
    threads_list = [int(t) for t in args.threads.split(",")]
    T = threads_list[0]  # threads for the long (accuracy) runs
    log(f"# CPU benchmark  {R['machine']['date']}  {R['machine']['cpu']}  {R['machine']['cores']} cores  "
        f"load {R['machine']['loadavg_start']}")

    # floors
    R["floor"] = {}
    for t in threads_list:
        R["floor"][t] = {"matmul_gflops": matmul_gflops(t), "copy_gbs": copy_gbs(t)}
        log(f"floor, {t} thread(s): fp32 matmul {R['floor'][t]['matmul_gflops']:.1f} GFLOP/s, "
            f"copy {R['floor'][t]['copy_gbs']:.1f} GB/s")
    torch.set_num_threads(T)

    # data
    t0 = time.perf_counter()
    data = simulate_dataset(args.per_class, seed=0)
    tr, va, _ = stratified_split(data.labels(), fractions=(0.85, 0.15, 0.0), seed=0)
    trs, vas = data.subset(tr), data.subset(va)
    Xtr, ytr = to_classifier_tensors(trs, SIZE, list(CLASSES))
    Xva, yva = to_classifier_tensors(vas, SIZE, list(CLASSES))
    test = {}
    for style in ("default", "alt"):
        d = simulate_dataset(args.test_per_class, seed=7, style=style)
        test[style] = (d,) + to_classifier_tensors(d, SIZE, list(CLASSES))
    R["data"] = {"train": len(tr), "val": len(va), "test_per_style": len(test["default"][0]),
                 "seconds": time.perf_counter() - t0,
                 "desc": f"simulate_dataset(per_class={args.per_class}, seed=0) split 85/15 (seed 0); test: "
                         f"simulate_dataset(per_class={args.test_per_class}, seed=7, style=default|alt)"}
    log(f"data: {len(tr)} train / {len(va)} val cells, {len(test['default'][0])} test cells per style "
        f"({R['data']['seconds']:.0f}s)")

    # ---------------- classifiers: accuracy ----------------
    E = args.epochs
    models: dict[str, dict] = {}
    log(f"\n## classifiers, {E} epochs, {T} thread(s)")
    t0 = time.perf_counter()
    res = train("classifier", (Xtr, ytr), (Xva, yva), TrainConfig(epochs=E, device="cpu", num_threads=T, seed=0),
                classes=list(CLASSES), callback=None)
    for h in res.history:
        log(f"  ours epoch {h.epoch}: train loss {h.train_loss:.3f} acc {h.train_acc:.3f}  val loss "
            f"{h.val_loss:.3f} acc {h.val_acc:.3f}  {h.seconds:.1f}s")
    ours = res.model
    models["ours (organelle-cnn)"] = {"model": ours, "train_s": time.perf_counter() - t0,
                                      "best_epoch": res.best_epoch, "cl": True,
                                      "loaded": load_checkpoint(res.checkpoint())}
    # The architecture choice: the same engine and recipe with torchvision's resnet18 (2-channel stem).
    t0 = time.perf_counter()
    rr = train("classifier", (Xtr, ytr), (Xva, yva), TrainConfig(epochs=E, device="cpu", num_threads=T, seed=0),
               classes=list(CLASSES), arch="resnet18")
    models["resnet18 (torchvision)"] = {"model": rr.model, "train_s": time.perf_counter() - t0,
                                        "best_epoch": rr.best_epoch, "cl": True,
                                        "loaded": load_checkpoint(rr.checkpoint())}
    torch.manual_seed(0)
    oc = OriginCNN()
    t0 = time.perf_counter()
    h = train_origin_classifier(oc, (Xtr, ytr), (Xva, yva), epochs=E, seed=0, log=log)
    models["origin CNN"] = {"model": oc, "train_s": time.perf_counter() - t0,
                            "best_epoch": int(np.argmin([e["val_loss"] for e in h["history"]]) + 1), "cl": False}
    bundled = None
    wpath = ROOT / "src/napari_organelle/weights/classifier.pt"
    if wpath.exists():
        try:
            bundled = load_checkpoint(wpath)
            models["bundled classifier"] = {"model": bundled.model.eval(), "train_s": None, "best_epoch": None,
                                            "cl": False, "loaded": bundled}
        except Exception as exc:  # noqa: BLE001
            log(f"bundled classifier not usable: {exc}")
    R["classifiers"] = {}
    for name, m in models.items():
        size = int(m["loaded"].input_size) if "loaded" in m else SIZE
        row = {"params": count_parameters(m["model"]), "gflop_per_cell": flops_per_cell(m["model"], (2, size, size)) / 1e9,
               "train_total_s": m["train_s"], "best_epoch": m["best_epoch"]}
        for style in ("default", "alt"):
            d, X, y = test[style]
            if size != SIZE:
                X, y = to_classifier_tensors(d, size, list(CLASSES))
            row[f"acc_{style}"] = accuracy(m["model"], X, y)
            row[f"acc_{style}_protein_only"] = accuracy(m["model"], X, y, protein_only=True)
        R["classifiers"][name] = row
        log(f"{name}: acc default {row['acc_default']:.3f} (protein only {row['acc_default_protein_only']:.3f}); "
            f"alt {row['acc_alt']:.3f} ({row['acc_alt_protein_only']:.3f}); {row['params']:,} params, "
            f"{row['gflop_per_cell']:.3f} GFLOP/cell")

    # ---------------- classifiers: training speed over 862 cells ----------------
    Xall = np.concatenate([Xtr, Xva, test["default"][1]])[:N_EPOCH_CELLS]
    yall = np.concatenate([ytr, yva, test["default"][2]])[:N_EPOCH_CELLS]
    R["epoch_cells"] = len(Xall)
    log(f"\n## one training epoch over {len(Xall)} cells (batch 32; second epoch timed; incl. validation on 64)")
    for name in ("ours (organelle-cnn)", "resnet18 (torchvision)", "origin CNN"):
        for t in threads_list:
            if not name.startswith("origin"):
                r = train("classifier", (Xall, yall), (Xva[:64], yva[:64]),
                          TrainConfig(epochs=2, device="cpu", num_threads=t, seed=0), classes=list(CLASSES),
                          arch="resnet18" if name.startswith("resnet") else None)
                sec = r.history[-1].seconds
            else:
                torch.set_num_threads(t)
                torch.manual_seed(0)
                hh = train_origin_classifier(OriginCNN(), (Xall, yall), (Xva[:64], yva[:64]), epochs=2)
                sec = hh["history"][-1]["seconds"]
            R["classifiers"][name][f"epoch_s_{t}t"] = sec
            log(f"{name}, {t} thread(s): {sec:.1f} s/epoch")
    torch.set_num_threads(T)

    # ---------------- classifiers: inference ----------------
    d = test["default"][0]
    pairs = [(s.protein, s.dna) for s in d.samples[:64]]
    log(f"\n## inference per 382x382 uint16 cell (protein + DNA): preprocessing (percentile scaling + "
        f"antialiased resize to {SIZE}) + forward + softmax")
    for t in threads_list:
        torch.set_num_threads(t)
        prep = time_it(lambda: [prepare_pair(p, q, size=SIZE) for p, q in pairs], 1) / len(pairs)
        R.setdefault("preprocess_ms", {})[t] = prep * 1e3
        for name, m in models.items():
            row = R["classifiers"][name]
            if "loaded" in m:
                lm = m["loaded"]
                bat = time_it(lambda: inference.classify_batch(pairs, lm, batch_size=64), 2) / len(pairs)
                one = time_it(lambda: [inference.classify(p, q, lm) for p, q in pairs[:16]], 1) / 16
            else:
                mm = m["model"]
                bat = time_it(lambda: origin_classify(mm, pairs), 2) / len(pairs)
                one = time_it(lambda: [origin_classify(mm, [pq]) for pq in pairs[:16]], 1) / 16
            xb = torch.from_numpy(test["default"][1][:64])
            with torch.inference_mode():
                fwd = time_it(lambda: m["model"](xb), 2) / 64
                xcl = xb.contiguous(memory_format=torch.channels_last)
                mcl = m["model"].to(memory_format=torch.channels_last)
                fwd_cl = time_it(lambda: mcl(xcl), 2) / 64
                m["model"].to(memory_format=torch.contiguous_format)
            row[f"infer_batched_ms_{t}t"] = bat * 1e3
            row[f"infer_single_ms_{t}t"] = one * 1e3
            row[f"forward_ms_{t}t"] = fwd * 1e3
            row[f"forward_cl_ms_{t}t"] = fwd_cl * 1e3
            log(f"{name}, {t} thread(s): batched {bat * 1e3:.1f} ms/cell, single {one * 1e3:.1f} ms/cell; "
                f"model forward only (batch 64, prepared 128 px) {fwd * 1e3:.2f} ms/cell, channels-last "
                f"{fwd_cl * 1e3:.2f}; preprocessing alone {prep * 1e3:.1f} ms/cell")
    torch.set_num_threads(T)

    # ---------------- autoencoders ----------------
    AE = args.ae_epochs
    log(f"\n## autoencoders, {AE} epochs on 96x96 random crops of every train plane, {T} thread(s)")
    ptr = to_native_planes(trs)
    pva = to_native_planes(vas)
    if args.ae_max_planes:
        ptr = ptr[:: max(1, len(ptr) // args.ae_max_planes)][: args.ae_max_planes]
    dtest = test["default"][0]
    pte_all = to_native_planes(dtest)
    pte = pte_all[:: max(1, len(pte_all) // args.ae_test_planes)][: args.ae_test_planes]
    R["ae_data"] = {"train_planes": len(ptr), "val_planes": len(pva), "test_planes": len(pte)}
    aes: dict[str, torch.nn.Module] = {}
    t0 = time.perf_counter()
    r = train("autoencoder", ptr, pva, TrainConfig(epochs=AE, device="cpu", num_threads=T, seed=0))
    for h in r.history:
        log(f"  ours-ae epoch {h.epoch}: train MSE {h.train_loss:.5f}  val MSE {h.val_loss:.5f} "
            f"PSNR {h.val_psnr:.1f}  {h.seconds:.1f}s")
    aes["ours (organelle-ae)"] = r.model
    ae_train_s = {"ours (organelle-ae)": time.perf_counter() - t0}
    for name, relu in (("origin AE (as written)", True), ("origin AE without last ReLU", False)):
        torch.manual_seed(0)
        m = OriginAE(1, final_relu=relu)
        t0 = time.perf_counter()
        train_origin_ae(m, ptr, pva, epochs=AE, seed=0, log=log)
        ae_train_s[name] = time.perf_counter() - t0
        aes[name] = m
    wpath = ROOT / "src/napari_organelle/weights/autoencoder.pt"
    if wpath.exists():
        try:
            aes["bundled autoencoder"] = load_checkpoint(wpath).model.eval()
        except Exception as exc:  # noqa: BLE001
            log(f"bundled autoencoder not usable: {exc}")
    R["autoencoders"] = {}
    x1 = torch.from_numpy(pte[0])[None, None]
    for name, m in aes.items():
        row = ae_metrics(m, pte)
        lat = (m.latent_shape(382, 382))
        row.update({"params": count_parameters(m), "gflop_per_plane": flops_per_cell(m, (1, 382, 382)) / 1e9,
                    "latent": list(lat), "latent_over_input": float(np.prod(lat)) / (382 * 382),
                    "train_total_s": ae_train_s.get(name)})
        if name.startswith("origin"):
            row.update(output_stats(m, pte[:10]))
        with torch.inference_mode():
            row["infer_ms_per_plane"] = time_it(lambda: m(x1), 2) * 1e3
        R["autoencoders"][name] = row
        log(f"{name}: MSE {row['mse']:.5f} PSNR {row['psnr']:.2f} dB SSIM {row['ssim']:.3f}; latent "
            f"{row['latent']} = {row['latent_over_input']:.3g} x input; {row['params']:,} params, "
            f"{row['gflop_per_plane']:.2f} GFLOP/plane, {row['infer_ms_per_plane']:.0f} ms/plane"
            + (f"; output std {row['out_std']:.4f} (input {row['in_std']:.4f}), zero pixels "
               f"{100 * row['zero_frac']:.0f}%" if "out_std" in row else ""))
    R["_ae_models"] = aes
    R["_ae_example"] = pte[0]
    R["_ae_example_dna"] = pte[1] if len(pte) > 1 else pte[0]

    # ---------------- memory ----------------
    if not args.no_memory:
        log("\n## peak extra resident memory (fresh process each, 1 thread)")
        R["memory_mb"] = {}
        for what in ("ours-cnn:infer", "ours-cnn:train", "origin-cnn:infer", "origin-cnn:train",
                     "ours-ae:infer", "ours-ae:train", "origin-ae:infer", "origin-ae:train"):
            R["memory_mb"][what] = peak_mem(what)
            log(f"{what}: {R['memory_mb'][what]} MB")
    R["machine"]["loadavg_end"] = os.getloadavg()
    return R


# --------------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------------
def _f(v, fmt="{:.1f}"):
    return "n/a" if v is None else fmt.format(v)


def tables(R) -> str:
    m = R["machine"]
    th = sorted(R["floor"], key=int)
    L = [f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), torch {m['torch']}, Python {m['python']}; "
         f"command `{m['command']}`. Load average at start / end: "
         f"{', '.join(f'{x:.1f}' for x in m['loadavg_start'])} / "
         f"{', '.join(f'{x:.1f}' for x in m.get('loadavg_end', ()))} (another training job shared the CPU when the "
         "load is above ~1, so times are pessimistic).", "",
         f"Data: {R['data']['desc']}: {R['data']['train']} train / {R['data']['val']} val cells; "
         f"{R['data']['test_per_style']} test cells per renderer. Every classifier trained {R['args']['epochs']} "
         f"epochs, every autoencoder {R['args']['ae_epochs']} epochs on {R['ae_data']['train_planes']} planes; "
         f"autoencoders tested on {R['ae_data']['test_planes']} whole 382x382 test planes.", "",
         "CPU floor (measured): " + "; ".join(
             f"{t} thread(s): fp32 matmul {R['floor'][t]['matmul_gflops']:.0f} GFLOP/s, copy "
             f"{R['floor'][t]['copy_gbs']:.1f} GB/s" for t in th), "",
         "### Classifiers", "",
         "| model | params | GFLOP/cell | acc. default (prot.+DNA / prot. only) | acc. alt renderer (prot.+DNA / "
         "prot. only) | " + " | ".join(f"train s/epoch, {R['epoch_cells']} cells, {t} thr" for t in th) + " | "
         + " | ".join(f"infer ms/cell batched / single, {t} thr" for t in th) + " |",
         "|---|---:|---:|---:|---:|" + "---:|" * (2 * len(th))]
    for name, r in R["classifiers"].items():
        L.append(f"| {name} | {r['params']:,} | {r['gflop_per_cell']:.3f} | {100 * r['acc_default']:.1f}% / "
                 f"{100 * r['acc_default_protein_only']:.1f}% | {100 * r['acc_alt']:.1f}% / "
                 f"{100 * r['acc_alt_protein_only']:.1f}% | "
                 + " | ".join(_f(r.get(f"epoch_s_{t}t")) for t in th) + " | "
                 + " | ".join(f"{_f(r.get(f'infer_batched_ms_{t}t'))} / {_f(r.get(f'infer_single_ms_{t}t'))}"
                              for t in th) + " |")
    L += ["", "Inference times start from a 382x382 uint16 protein + DNA cell in memory and include the "
          "percentile scaling and antialiased resize to 128 px of both channels (`preprocess.prepare_pair`), "
          "the forward pass and the softmax (ours: `inference.classify_batch` with batch 64 / `inference.classify`, "
          "which also builds the result objects). Preprocessing alone: "
          + ", ".join(f"{R['preprocess_ms'][t]:.1f} ms/cell ({t} thr)" for t in th) + ". Model forward alone "
          "(batch 64 of prepared 128 px cells), default layout / channels-last:", ""]
    for name, r in R["classifiers"].items():
        L.append(f"* {name}: " + "; ".join(f"{r[f'forward_ms_{t}t']:.2f} / {r[f'forward_cl_ms_{t}t']:.2f} ms/cell "
                                           f"({t} thr)" for t in th))
    L += ["", "Fraction of the CPU floor (achieved FLOP/s / measured fp32 matmul FLOP/s at the same thread count; "
          "training counted as 3x the forward FLOPs):", ""]
    for name, r in R["classifiers"].items():
        parts = []
        for t in th:
            peak = R["floor"][t]["matmul_gflops"]
            if r.get(f"epoch_s_{t}t"):
                parts.append(f"training {100 * 3 * r['gflop_per_cell'] * R['epoch_cells'] / r[f'epoch_s_{t}t'] / peak:.0f}%"
                             f" ({t} thr)")
            parts.append(f"forward {100 * r['gflop_per_cell'] / (r[f'forward_ms_{t}t'] / 1e3) / peak:.0f}% ({t} thr)")
        L.append(f"* {name}: " + ", ".join(parts))
    L += ["", "### Autoencoders (one plane at a time)", "",
          "| model | params | GFLOP per 382x382 plane | latent (C, H, W) | latent / input | MSE | PSNR dB | SSIM | "
          "infer ms/plane | train s total |", "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in R["autoencoders"].items():
        L.append(f"| {name} | {r['params']:,} | {r['gflop_per_plane']:.2f} | {tuple(r['latent'])} | "
                 f"{r['latent_over_input']:.3g} | {r['mse']:.5f} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                 f"{r['infer_ms_per_plane']:.0f} | {_f(r['train_total_s'], '{:.0f}')} |")
    for name, r in R["autoencoders"].items():
        if "out_std" in r:
            L.append(f"\n{name}: output std over a plane {r['out_std']:.4f} (input {r['in_std']:.4f}); "
                     f"{100 * r['zero_frac']:.0f}% of output pixels exactly 0.")
    if R.get("memory_mb"):
        L += ["", "Peak extra resident memory (MB, fresh process, 1 thread; classifier: inference batch 64 / "
              "training step batch 32 at 128 px; autoencoder: inference on one 382x382 plane / training step "
              "batch 32 of 96 px crops): " + ", ".join(f"{k} {_f(v, '{:.0f}')}" for k, v in R["memory_mb"].items())
              + "."]
    return "\n".join(L)


def plots(R, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    th = sorted(R["floor"], key=int)
    C = R["classifiers"]
    names = list(C)
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)
    w = 0.2
    keys = [("acc_default", "default, prot.+DNA"), ("acc_default_protein_only", "default, prot. only"),
            ("acc_alt", "alt, prot.+DNA"), ("acc_alt_protein_only", "alt, prot. only")]
    for j, (k, lab) in enumerate(keys):
        ax[0].bar(np.arange(len(names)) + (j - 1.5) * w, [100 * C[n][k] for n in names], w, label=lab)
    ax[0].set_xticks(range(len(names)), names, fontsize=8)
    ax[0].set_ylabel("test accuracy (%)")
    ax[0].set_ylim(0, 100)
    ax[0].legend(fontsize=7)
    ax[0].set_title("accuracy (simulated test cells)")
    for j, t in enumerate(th):
        vals = [C[n].get(f"epoch_s_{t}t") or 0 for n in names]
        ax[1].bar(np.arange(len(names)) + (j - 0.5) * 0.35, vals, 0.35, label=f"{t} thread(s)")
    ax[1].axhline(30, color="k", ls="--", lw=0.8)
    ax[1].text(-0.4, 30.5, "goal 30 s", fontsize=7)
    ax[1].set_xticks(range(len(names)), names, fontsize=8)
    ax[1].set_ylabel("s per epoch (862 cells)")
    ax[1].legend(fontsize=7)
    ax[1].set_title("training")
    for j, t in enumerate(th):
        ax[2].bar(np.arange(len(names)) + (j - 0.5) * 0.35, [C[n][f"infer_batched_ms_{t}t"] for n in names], 0.35,
                  label=f"batched, {t} thr")
    ax[2].axhline(15, color="k", ls="--", lw=0.8)
    ax[2].text(-0.4, 15.3, "goal 15 ms", fontsize=7)
    ax[2].set_xticks(range(len(names)), names, fontsize=8)
    ax[2].set_ylabel("ms per 382x382 cell (incl. preprocessing)")
    ax[2].legend(fontsize=7)
    ax[2].set_title("inference")
    fig.suptitle(f"CPU benchmark {R['machine']['date']} ({R['machine']['cores']} cores, shared)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "benchmarks_cpu.png")
    plt.close(fig)

    aes = R["_ae_models"]
    ex = [R["_ae_example"], R["_ae_example_dna"]]
    fig, ax = plt.subplots(2, len(aes) + 1, figsize=(3 * (len(aes) + 1), 6), dpi=90)
    for i, p in enumerate(ex):
        ax[i, 0].imshow(p, cmap="gray", vmin=0, vmax=1)
        ax[i, 0].set_title("input", fontsize=8)
        for j, (name, m) in enumerate(aes.items()):
            with torch.inference_mode():
                r = m(torch.from_numpy(p)[None, None])[0, 0].clamp(0, 1).numpy()
            ax[i, j + 1].imshow(r, cmap="gray", vmin=0, vmax=1)
            ax[i, j + 1].set_title(f"{name}\nPSNR {inference.psnr(p, r):.1f} dB", fontsize=8)
    for a in ax.ravel():
        a.axis("off")
    fig.tight_layout()
    fig.savefig(out_dir / "benchmarks_ae.png")
    plt.close(fig)


def write_doc(md: Path, text: str) -> None:
    from _docs import write_between

    write_between(md, "cpu", text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small data, few epochs (a few minutes)")
    p.add_argument("--per-class", type=int, default=86, help="training cells per class (86 -> 860 cells)")
    p.add_argument("--test-per-class", type=int, default=20)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--ae-epochs", type=int, default=3)
    p.add_argument("--ae-max-planes", type=int, default=0, help="use at most this many training planes (0: all)")
    p.add_argument("--ae-test-planes", type=int, default=40)
    p.add_argument("--threads", default="1,2", help="thread counts to time, e.g. 1,2 (the first trains the models)")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only (no docs/ files)")
    p.add_argument("--json", default=None, help="also write all figures to this JSON file")
    p.add_argument("--_mem", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._mem:
        _mem_child(args._mem)
        return 0
    if args.quick:
        # for checking the script: accuracies after so few steps mean nothing
        args.per_class, args.test_per_class, args.epochs, args.ae_epochs = 20, 6, 3, 1
        args.ae_max_planes, args.ae_test_planes = 120, 10
    t0 = time.perf_counter()
    R = run(args)
    R["total_s"] = time.perf_counter() - t0
    text = tables(R) + f"\n\nThe whole run took {R['total_s'] / 60:.1f} min."
    log("\n" + text)
    if not args.no_write:
        img = ROOT / "docs/images"
        img.mkdir(parents=True, exist_ok=True)
        plots(R, img)
        write_doc(ROOT / "docs/benchmarks.md", text)
        log(f"\nwrote docs/benchmarks.md (cpu section), {img}/benchmarks_cpu.png, benchmarks_ae.png")
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in R.items() if not k.startswith("_")},
                                              indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
