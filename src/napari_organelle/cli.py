"""The ``napari-organelle`` command: simulate, train, evaluate, classify, reconstruct, list and export models.

Every user-fixable problem prints one clear ``error: ...`` line and exits with status 2; no
traceback. Long work shows a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import codecs as _codecs
import csv
import json
import shlex
import sys
import time
from pathlib import Path

from ._text import EscapingStream, printable, raw_stream
from .preprocess import OrganelleError


class Progress:
    """A small progress bar on stderr (a line per update when stderr is not a terminal)."""

    def __init__(self, label: str, enabled: bool = True):
        self.label = label
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._t0 = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        now = time.perf_counter()
        if done < total and now - self._last < (0.1 if self.tty else 5.0):
            return
        self._last = now
        frac = done / total
        bar = "#" * int(30 * frac)
        msg = f"{self.label} [{bar:<30}] {done}/{total} ({now - self._t0:.0f}s)"
        err = raw_stream(sys.stderr)  # the bar's own carriage return is not escaped
        if self.tty:
            err.write("\r" + printable(msg) + ("\n" if done >= total else ""))
        else:
            err.write(printable(msg) + "\n")
        err.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="napari-organelle",
        description="Which organelle does this protein label? Classify, reconstruct and train models. "
        "The bundled models were trained on simulated cells (see docs/model_card.md).",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("phantoms", help="write simulated cells as <Class>/<Class>_NNN.tif (2-channel uint16)")
    s.add_argument("out")
    s.add_argument("--per-class", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=382)
    s.add_argument("--style", default="default", help="renderer: default | alt (a second, independent renderer)")
    s.add_argument("--separate-files", action="store_true", help="protein and DNA as separate files")
    s.add_argument("--overwrite", action="store_true",
                   help="write into a folder that holds other files: first delete the .tif/.tiff files of "
                        "the class folders this run writes (without it such a folder is refused, so that "
                        "two simulated sets never mix)")

    s = sub.add_parser("train", help="train or fine-tune a model on a labelled folder, archive or simulated:N")
    s.add_argument("data", help="folder / .zip / .tgz (any supported layout) or simulated:N")
    s.add_argument("--model", choices=["classifier", "autoencoder"], default="classifier")
    s.add_argument("--epochs", type=int, default=20)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--weight-decay", type=float, default=1e-4)
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    s.add_argument("--from", dest="init", default=None, help="checkpoint (path or model name) to fine-tune")
    s.add_argument("--keep-classes", action="store_true",
                   help="with --from (classifier): keep all the model's classes, in its order, and add the "
                        "data's new ones after them - what the napari fine-tune dock does by default. "
                        "Without it (the default here) the fine-tuned model predicts exactly the data's "
                        "classes (its head is rebuilt for them).")
    s.add_argument("--freeze-backbone", action="store_true")
    s.add_argument("--size", type=int, default=None,
                   help="classifier input size, 16-1024 (default 128, or the --from model's)")
    s.add_argument("--arch", default=None, help="architecture (classifier: organelle-cnn | resnet18)")
    s.add_argument("--val-fraction", type=float, default=0.15)
    s.add_argument("--test-fraction", type=float, default=0.15)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--patience", type=int, default=None, help="early stopping after N epochs without improvement")
    s.add_argument("--no-augment", action="store_true")
    s.add_argument("--crop-size", type=int, default=96, help="autoencoder training crop size")
    s.add_argument("--out", required=True, help="where to write the checkpoint (.pt)")
    s.add_argument("--resume-file", default=None,
                   help="also write the best checkpoint so far here after every improvement")

    s = sub.add_parser("evaluate", help="accuracy of a classifier on labelled data")
    s.add_argument("data")
    s.add_argument("--model", default=None, help="model name (see 'models') or checkpoint path")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--protein-only", action="store_true", help="ignore the DNA channel")
    s.add_argument("--confusion-png", default=None,
                   help="save the confusion matrix as an image (.png, or another format matplotlib writes: "
                        ".pdf, .svg, ...)")
    s.add_argument("--predictions", default=None, help="save one row per image as CSV")

    s = sub.add_parser("classify", help="classify image files (2-channel files: protein, DNA)")
    s.add_argument("files", nargs="+",
                   help="image files (a folder is refused: give its files, e.g. DIR/*/*.tif). Files that "
                        "cannot be classified get a 'not classified' row with the reason in 'note'")
    s.add_argument("--model", default=None)
    s.add_argument("--dna", nargs="*", default=None, help="DNA files, one per protein file")
    s.add_argument("--output", default=None, help="CSV file (default: print a table)")
    s.add_argument("--ood", action="store_true", help="add out-of-distribution scores (bundled autoencoder)")
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (auto: a GPU if there is one)")
    s.add_argument("--workers", type=int, default=None,
                   help="threads reading files (default: the CPU count, at most 8)")
    s.add_argument("--cells", nargs="+", default=None, metavar="auto|LABELS",
                   help="classify each cell of a field of view instead of the whole image: 'auto' finds "
                        "the cells (nuclei from the DNA channel, cells grown over the protein), or give "
                        "one labels image per file (0 = background). Writes one row per cell and a "
                        "summary per image (--summary)")
    s.add_argument("--summary", default=None,
                   help="with --cells: the per-image summary CSV (cells per class, majority); default "
                        "<output>_summary.csv next to --output, or printed")
    s.add_argument("--diameter", type=float, default=None,
                   help="with --cells auto: expected cell diameter in pixels (default: measured from the nuclei)")
    s.add_argument("--pixel-size", type=float, default=None,
                   help="with --cells auto: micrometres per pixel (gives the cell diameter when --diameter is not given)")
    s.add_argument("--keep-border-cells", action="store_true",
                   help="with --cells auto: keep cells cut by the image border (left out by default)")
    s.add_argument("--save-cells", default=None, metavar="FOLDER",
                   help="with --cells auto: write the cells found as <FOLDER>/<file>_cells.tif (int32 labels)")
    s.add_argument("--no-cell-check", action="store_true",
                   help="whole-image mode: skip the quick check that warns about images holding several cells")

    s = sub.add_parser("reconstruct", help="reconstruct an image with the autoencoder")
    s.add_argument("file")
    s.add_argument("--out", required=True, help="output TIFF (float32, input's intensity range)")
    s.add_argument("--residual", default=None, help="also write input - reconstruction here")
    s.add_argument("--model", default=None)

    sub.add_parser("models", help="list bundled and user models")

    s = sub.add_parser("export", help="write a model as a bioimage.io model package (.zip) to share it",
                       description="Write MODEL as a bioimage.io model package (format 0.5): rdf.yaml, TorchScript "
                       "and PyTorch state-dict weights, test tensors, a cover and a README model card, with the "
                       "napari-organelle checkpoint inside so that --model OUT.zip loads it back exactly. Check the "
                       "package with 'bioimageio test OUT.zip' (the optional extra napari-organelle[bioimageio]).")
    s.add_argument("model", help="a model name that 'napari-organelle models' lists (bundled-classifier, "
                                 "bundled-autoencoder, your own), or a path to a .pt checkpoint")
    s.add_argument("out", help="the package to write (.zip)")
    s.add_argument("--name", default=None, help="the package's name (default: napari-organelle MODEL)")
    s.add_argument("--description", default=None, help="one paragraph saying what the model does")
    s.add_argument("--author", action="append", default=None,
                   help="an author's name (repeat for several; default: 'napari-organelle user', or the "
                        "developers for the bundled models)")
    s.add_argument("--license", default="BSD-3-Clause", help="SPDX identifier of the weights' license")
    s.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")

    s = sub.add_parser("demo", help="open napari with simulated cells and the three docks")
    s.add_argument("--no-block", action="store_true", help=argparse.SUPPRESS)
    return p


def _phantom_paths(out: Path, per_class: int, two_channel: bool, classes) -> set[Path]:
    """The files phantoms.write_dataset writes for these settings (same names)."""
    digits = max(3, len(str(max(int(per_class) - 1, 0))))
    paths = set()
    for cls in classes:
        for i in range(int(per_class)):
            stem = f"{cls}_{i:0{digits}d}"
            if two_channel:
                paths.add(out / cls / f"{stem}.tif")
            else:
                paths.update({out / cls / f"{stem}_protein.tif", out / cls / f"{stem}_dna.tif"})
    return paths


def _cmd_phantoms(a) -> int:
    from .classes import CLASSES
    from .phantoms import check_dataset_args, write_dataset

    from .phantoms import check_seed

    out = Path(a.out)
    check_seed(a.seed)
    check_dataset_args(out, a.per_class, a.size, a.style)
    if a.per_class > 100_000:
        raise OrganelleError(f"--per-class {a.per_class} is far too many (at most 100000 cells per class).")
    if out.is_dir():
        planned = _phantom_paths(out, a.per_class, not a.separate_files, CLASSES)
        others = sorted(p for p in out.rglob("*") if (p.is_file() or p.is_symlink()) and p not in planned
                        and not p.name.startswith("."))
        if others and not a.overwrite:
            eg = ", ".join(str(p.relative_to(out)) for p in others[:3])
            raise OrganelleError(
                f"{out} already holds {len(others)} file(s) this run would not write (e.g. {eg}); new "
                "cells would mix with them. Choose an empty or new folder, or pass --overwrite to delete "
                "the .tif files of the class folders first. Nothing was written.")
        if a.overwrite:
            old = [p for cls in CLASSES if (out / cls).is_dir() for p in sorted((out / cls).iterdir())
                   if p.suffix.lower() in (".tif", ".tiff") and (p.is_file() or p.is_symlink())]
            for p in old:
                p.unlink()
            if old:
                print(f"Removed {len(old)} old .tif files from the class folders of {out}")
    t0 = time.perf_counter()
    paths = write_dataset(out, per_class=a.per_class, seed=a.seed, size=a.size, style=a.style,
                          two_channel=not a.separate_files)
    print(f"Wrote {len(paths)} files of simulated cells to {a.out} in {time.perf_counter() - t0:.1f}s")
    return 0


def _output_path(path, what: str, suffixes: tuple[str, ...] | None = None, hint: str = "") -> Path:
    """Check an output file before the work starts: a known suffix (when ``suffixes``), not a folder,
    and its folder exists or can be created (nearest existing folder writable). Creates nothing
    (:func:`_parent_made` does, when the file is written; a probe file is created and removed to
    be sure the folder takes files). OrganelleError saying what to do."""
    from ._files import check_output

    p = Path(path).expanduser()
    if suffixes is not None and p.suffix.lower() not in suffixes:
        got = f"the extension '{printable(p.suffix)}'" if p.suffix else "no extension"
        raise OrganelleError(f"{what} {printable(path)} has {got}; {hint or 'use one of ' + ', '.join(suffixes)}.")
    check_output(p, what)  # not a folder or device; its folder exists or can be made; really writable
    return p


def _parent_made(path) -> Path:
    """``path`` with its folder created (as ``train --out`` does)."""
    p = Path(path).expanduser()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OrganelleError(f"Cannot create the folder {p.parent} for {path}: {exc.strerror or exc}.") from None
    return p


def _image_formats() -> tuple[str, ...]:
    """Suffixes matplotlib's savefig writes here (png, pdf, svg, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(f".{k}" for k in FigureCanvasBase.get_supported_filetypes())


def _same_file(a, b) -> bool:
    from ._files import resolve

    return resolve(a) == resolve(b)


def _model_file(spec) -> str | None:
    """The file a --model / --from value names, when it names an existing file (else None)."""
    if spec is None:
        return None
    try:
        p = Path(str(spec)).expanduser()
        return str(p) if p.is_file() else None
    except (OSError, ValueError):
        return None


def _refuse_inputs_as_outputs(outputs: dict, inputs) -> None:
    """Before any work: an output must not be an input (same file through links, a file inside an
    input folder, an input archive) nor another output."""
    from ._files import check_outputs

    import os
    import re

    def real(i) -> bool:  # "simulated:N" is no file (unless a file of that name exists)
        return i is not None and str(i) != "" and (
            not re.fullmatch(r"simulated(?::\d+)?", str(i).strip()) or os.path.exists(str(i)))

    check_outputs(outputs, [i for i in inputs if real(i)])


def _check_int(value, opt: str, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise OrganelleError(f"{opt} must be a whole number from {lo} to {hi} (got {value}).")
    return value


def _print_data_problems(d) -> None:
    """The data's skipped files and warnings, printed as soon as the data is loaded."""
    if d.skipped:
        print(f"Skipped {len(d.skipped)} file(s):", file=sys.stderr)
        for f, why in d.skipped[:20]:
            print(f"  {printable(f)}: {printable(why)}", file=sys.stderr)
        if len(d.skipped) > 20:
            print(f"  ... and {len(d.skipped) - 20} more", file=sys.stderr)
    for w in d.warnings:
        print(f"warning: {printable(w)}", file=sys.stderr)


def _rescue_folders(out: Path) -> list[Path]:
    """Where trained weights go when --out cannot be written: its folder, the model store, the
    temporary folder, the home folder (other disks, with luck)."""
    import tempfile

    from .checkpoints import user_models_dir

    seen, out_list = set(), []
    for f in (out.parent, user_models_dir(), Path(tempfile.gettempdir()), Path.home()):
        try:
            key = str(f.expanduser().resolve())
        except (OSError, RuntimeError):
            continue
        if key not in seen:
            seen.add(key)
            out_list.append(Path(key))
    return out_list


def _save_final(out: Path, ck: dict) -> int | None:
    """Write the trained checkpoint to ``out``. If that fails (a full disk, Ctrl-C), ``out`` is
    untouched (atomic write) and the weights are saved under another name in another folder;
    one line says what happened and where they are. Returns None on success, else the exit code."""
    import signal
    import threading

    from .checkpoints import now_iso, write_checkpoint_dict

    existed = out.exists()
    try:
        write_checkpoint_dict(out, ck)
        return None
    except KeyboardInterrupt:
        problem, code = "the save was interrupted (Ctrl-C)", 130
    except OSError as exc:
        problem, code = f"it could not be written ({exc.strerror or exc})", 2
    previous = None
    if threading.current_thread() is threading.main_thread():  # the rescue copy is not interrupted
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    saved, tried = None, []
    try:
        stamp = now_iso()[:19].replace(":", "").replace("-", "")
        for folder in _rescue_folders(out):
            target = folder / f"{out.stem[:80]}-rescued-{stamp}.pt"
            try:
                write_checkpoint_dict(target, ck, exclusive=True)
                saved = target
                break
            except (OSError, OrganelleError) as exc:
                tried.append(f"{folder} ({getattr(exc, 'strerror', None) or exc})")
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    kept = f"{out} is unchanged" if existed else f"{out} was not created"
    if saved is not None:
        msg = (f"error: training finished but saving {out} failed: {problem}; {kept}. The trained weights are "
               f"safe in {saved}: move that file where you want it (or use it with --model / --from).")
    else:
        msg = (f"error: training finished but saving {out} failed: {problem}; {kept}, and the trained weights "
               f"could not be saved anywhere else either (tried {'; '.join(tried)}). Free some disk space and "
               "train again.")
    print(printable(msg), file=sys.stderr, flush=True)
    return code


def _cmd_train(a) -> int:
    from .checkpoints import resolve_model
    from .recipes import train_model
    from .training import TrainConfig, format_epoch, resolve_device

    from .recipes import check_fractions, check_input_size

    if a.epochs < 1:
        raise OrganelleError(f"--epochs must be at least 1 (got {a.epochs}).")
    if a.keep_classes and not a.init:
        raise OrganelleError("--keep-classes keeps the classes of the model you fine-tune: give it with --from.")
    if a.keep_classes and a.model != "classifier":
        raise OrganelleError("--keep-classes applies to classifiers; an autoencoder has no classes.")
    if a.size is not None:
        check_input_size(a.size)
    for f, opt in ((a.val_fraction, "--val-fraction"), (a.test_fraction, "--test-fraction")):
        if not 0 <= f < 1:
            raise OrganelleError(f"{opt} must be at least 0 and below 1 (got {f:g}).")
    if a.val_fraction <= 0:
        raise OrganelleError("--val-fraction must be above 0: the validation images choose the best epoch "
                             "(and, when fine-tuning, check the starting model). 0.15 is the default.")
    frac_train = 1.0 - a.val_fraction - a.test_fraction
    if frac_train <= 0:
        raise OrganelleError("--val-fraction plus --test-fraction must leave something to train on.")
    check_fractions((frac_train, a.val_fraction, a.test_fraction))
    cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
                      device=a.device, seed=a.seed, patience=a.patience, augment=not a.no_augment,
                      freeze_backbone=a.freeze_backbone, crop_size=a.crop_size)
    cfg.validate()  # absurd numbers (--seed -1, --crop-size 100000) are refused before anything runs
    _output_path(a.out, "--out")
    if a.resume_file:
        _output_path(a.resume_file, "--resume-file")
        if _same_file(a.resume_file, a.out):
            raise OrganelleError("--resume-file and --out name the same file; give two names.")
    # Outputs never replace inputs: not the data (folder, archive), not the model fine-tuned from.
    _refuse_inputs_as_outputs({"--out": a.out, "--resume-file": a.resume_file},
                              [a.data, _model_file(a.init)])
    dev = resolve_device(a.device)
    print(f"Device: {dev}")
    init = resolve_model(a.init, kind=a.model) if a.init else None
    if init is not None and init.path is not None:
        _refuse_inputs_as_outputs({"--out": a.out, "--resume-file": a.resume_file}, [init.path])
    bar = Progress("batches")

    def on_event(ev):
        if hasattr(ev, "batch"):
            bar(ev.batch, ev.batches)
        else:
            print(format_epoch(ev), flush=True)

    load_bar = Progress("loading")
    kwargs = {}
    if a.arch:
        kwargs["arch"] = a.arch
    # Ctrl-C once: stop after the current batch and save the best weights so far; twice: quit now.
    import signal
    import threading

    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nStopping after the current batch; the best weights so far will be saved to "
              f"{a.out} (Ctrl-C again to quit without saving).", file=sys.stderr, flush=True)

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        outcome = train_model(a.data, a.model, cfg, init=init, size=a.size,
                              fractions=(frac_train, a.val_fraction, a.test_fraction), split_seed=a.seed,
                              callback=on_event, checkpoint_path=a.resume_file, command=a.command_line,
                              progress=load_bar, keep_classes=a.keep_classes, should_stop=stop.is_set,
                              on_data=_print_data_problems, **kwargs)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    ck = outcome.checkpoint
    r = outcome.result
    if getattr(r, "checkpoint_errors", None):
        print(f"warning: --resume-file {printable(a.resume_file)} could not be written during training "
              f"({printable('; '.join(r.checkpoint_errors[:3]))}); the run went on, and it holds an older "
              "checkpoint or none.", file=sys.stderr)
    if stop.is_set() and r.best_epoch == 0 and r.baseline is None:
        raise OrganelleError(f"Stopped before the first epoch finished; nothing was saved to {a.out}.")
    failed = _save_final(Path(a.out).expanduser(), ck)
    if failed is not None:
        return failed
    if stop.is_set():
        print(f"Stopped by Ctrl-C: {r.stop_reason}. Saved to {a.out}.")
    if r.baseline is not None and not r.improved:  # fine-tuning that did not beat the starting model
        print(f"{r.stop_reason[:1].upper()}{r.stop_reason[1:]}: {a.out} holds the starting weights; try a "
              "lower --lr or more data.")
    else:
        print(f"Best epoch: {r.best_epoch} (val loss {r.best_val_loss:.4f})"
              + (f"; the starting model had {r.baseline['val_loss']:.4f}" if r.baseline is not None else "")
              + (" - stopped early: " + r.stop_reason if r.stopped and not stop.is_set() else ""))
    m = ck.get("metrics", {})
    if "test_accuracy" in m:
        print(f"Test accuracy: {100 * m['test_accuracy']:.2f}% on {m['test_n']} held-out images"
              + (f"; protein only: {100 * m['test_accuracy_protein_only']:.2f}%" if "test_accuracy_protein_only" in m else ""))
    if "test_psnr" in m:
        print(f"Test reconstruction: PSNR {m['test_psnr']:.2f} dB, MSE {m['test_mse']:.5f} on {m['test_n_planes']} held-out planes")
    n_val = ck.get("training", {}).get("n_val")
    if a.model == "classifier" and "test_accuracy" not in m and "val_accuracy" in m:
        print(f"No test split (--test-fraction 0): validation figures, not a test - validation accuracy "
              f"{100 * m['val_accuracy']:.2f}% on {n_val} images (they also chose the best epoch)")
    if "val_planes_psnr" in m:
        print(f"No test split (--test-fraction 0): validation figures, not a test - validation "
              f"reconstruction PSNR {m['val_planes_psnr']:.2f} dB, MSE {m['val_planes_mse']:.5f} on "
              f"{m['val_n_planes']} validation planes (they also chose the best epoch)")
    kept = ck.get("training", {})
    if kept.get("classes_kept"):
        print(f"Classes kept from {a.init}" + (f"; added: {', '.join(printable(c) for c in kept['classes_added'])}"
                                               if kept.get("classes_added") else "")
              + f" ({len(ck.get('classes') or [])} classes)")
    print(f"Data: {printable(outcome.data.description)}")
    print(f"Saved {a.out}")
    return 0


def _cmd_evaluate(a) -> int:
    from .inference import load_model
    from .recipes import evaluate

    if a.confusion_png:
        fmts = _image_formats()
        _output_path(a.confusion_png, "--confusion-png", fmts,
                     "use a file name ending in .png (or another format matplotlib writes here: "
                     + ", ".join(f for f in fmts if f != ".png") + ")")
    if a.predictions:
        _output_path(a.predictions, "--predictions")
    if a.confusion_png and a.predictions and _same_file(a.confusion_png, a.predictions):
        raise OrganelleError("--confusion-png and --predictions name the same file; give two names.")
    outputs = {"--confusion-png": a.confusion_png, "--predictions": a.predictions}
    _refuse_inputs_as_outputs(outputs, [a.data, _model_file(a.model)])
    clf = load_model(a.model, "classifier")
    if clf.path is not None:
        _refuse_inputs_as_outputs(outputs, [clf.path])
    rep = evaluate(a.data, clf, protein_only=a.protein_only, progress=Progress("classifying", not a.json))
    if a.predictions:
        _write_csv(_parent_made(a.predictions), rep.predictions)
    if a.confusion_png:
        rep.save_confusion_png(_parent_made(a.confusion_png))
    if a.json:
        print(json.dumps(rep.to_dict()))  # with "skipped" and "warnings"
    else:
        _print_data_problems(rep)  # the files left out and the loader's warnings (stderr)
        print(rep.table())
        if a.confusion_png:
            print(f"Confusion matrix saved to {printable(a.confusion_png)}")
    return 0


def _bytes_as_escapes(exc):
    """Codec error handler: an undecodable byte of a file name (a lone surrogate U+DC80-U+DCFF, as
    os.fsdecode makes it) is written as the escape backslash-x-NN of that byte; anything else
    unencodable as a backslash escape."""
    if isinstance(exc, UnicodeEncodeError):
        out = []
        for ch in exc.object[exc.start:exc.end]:
            o = ord(ch)
            out.append(f"\\x{o - 0xDC00:02x}" if 0xDC80 <= o <= 0xDCFF else
                       (f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}"))
        return "".join(out), exc.end
    raise exc


_codecs.register_error("napari-organelle-escape", _bytes_as_escapes)

#: How CSV files are written: UTF-8, and a file name that is not valid UTF-8 (an undecodable byte)
#: is written with that byte as an escape (a backslash, x, two hex digits), so every row can be written.
CSV_ENCODING = {"encoding": "utf-8", "errors": "napari-organelle-escape", "newline": ""}


def _write_csv(path, rows: list[dict]) -> None:
    """Write rows as CSV atomically (temporary file beside ``path``, then renamed)."""
    from ._files import atomic_file

    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    with atomic_file(path, "w", **CSV_ENCODING) as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def _cmd_classify(a) -> int:
    import os

    from .inference import iter_classify, load_model, several_cells_warning
    from .io import iter_read_pairs
    from .training import resolve_device

    if a.cells is None:
        for opt, val in (("--summary", a.summary), ("--diameter", a.diameter), ("--pixel-size", a.pixel_size),
                         ("--save-cells", a.save_cells), ("--keep-border-cells", a.keep_border_cells or None)):
            if val is not None:
                raise OrganelleError(f"{opt} goes with --cells (auto, or labels files): give --cells auto to "
                                     "classify each cell of a field.")
    if a.batch_size < 1:
        raise OrganelleError(f"--batch-size must be at least 1 (got {a.batch_size}).")
    if a.batch_size > 4096:
        raise OrganelleError(f"--batch-size {a.batch_size} is too large (at most 4096 images at a time; "
                             "64 is the default).")
    for f in [*a.files, *(a.dna or [])]:
        if Path(f).is_dir():
            raise OrganelleError(f"{f} is a folder; give its image files, e.g. {Path(f) / '*' / '*.tif'} "
                                 "(the shell expands the pattern). Nothing was classified.")
    if a.dna and len(a.dna) != len(a.files):
        raise OrganelleError(f"Give one --dna file per protein file ({len(a.files)} protein, {len(a.dna)} DNA).")
    workers = a.workers if a.workers is not None else min(8, os.cpu_count() or 1)
    if workers < 1:
        raise OrganelleError(f"--workers must be at least 1 (got {workers}).")
    if workers > 64:
        raise OrganelleError(f"--workers {workers} is too many (at most 64 reading threads).")
    if a.output:
        _output_path(a.output, "--output")
        _refuse_inputs_as_outputs({"--output": a.output}, [*a.files, *(a.dna or []), _model_file(a.model)])
    if a.cells is not None:
        _check_cells_args(a)
    dev = resolve_device(a.device)
    clf = load_model(a.model, "classifier")
    if a.output and clf.path is not None:
        _refuse_inputs_as_outputs({"--output": a.output}, [clf.path])
    clf.model.to(dev)
    ae = load_model(None, "autoencoder") if a.ood else None
    if ae is not None:
        ae.model.to(dev)
    if a.cells is not None:
        return _classify_fields(a, clf, ae, dev)
    from .inference import Classification

    warnings_: dict[int, str] = {}  # input index -> "several cells" warning

    skipped: list = []   # (input index, file, reason), in input order
    names: list[tuple[int, str]] = []  # (input index, file) of the images handed to the classifier

    def pairs():  # files that cannot be read or used get a "not classified" row, and are not fatal
        for i, (f, planes, err) in enumerate(iter_read_pairs(a.files, a.dna, workers=workers,
                                                              prefetch=2 * workers)):
            if err is not None:
                skipped.append((i, str(f), str(err)))
                continue
            names.append((i, str(f)))
            if not a.no_cell_check:
                w = several_cells_warning(*planes, command=f"napari-organelle classify {shlex.quote(str(f))} "
                                                            "--cells auto")
                if w:
                    warnings_[i] = w
            yield planes

    bar = Progress("classifying")
    out_fh = None
    writer = None
    tmp = None
    n = 0
    n_skip_out = 0  # skipped files already given their row

    def emit(row, r):
        nonlocal writer
        if out_fh is not None:
            if writer is None:
                writer = csv.DictWriter(out_fh, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
        elif r.classified:
            flag = "  (uncertain)" if r.uncertain else ""
            flag += "  (several cells: see the warning below)" if r.warning else ""
            print(f"{printable(row['file'])}\t{printable(r.label)}\t{100 * r.confidence:.1f}%{flag}")
        else:
            print(f"{printable(row['file'])}\t{r.label}\t({printable(r.note)})")

    def emit_skipped(upto: int):
        nonlocal n_skip_out
        while n_skip_out < len(skipped) and skipped[n_skip_out][0] < upto:
            _, f, why = skipped[n_skip_out]
            r = Classification.not_classified(why, clf.classes, has_dna=False, model_name=clf.name)
            emit({"file": f, **r.as_row(), "has_dna": None}, r)
            n_skip_out += 1

    try:
        if a.output:
            tmp = Path(str(_parent_made(a.output)) + ".part")
            out_fh = open(tmp, "w", **CSV_ENCODING)
        for r in iter_classify(pairs(), clf, batch_size=a.batch_size, autoencoder=ae, skip_unusable=True):
            idx, f = names[n]
            emit_skipped(idx)  # rows stay in input order
            r.warning = warnings_.get(idx, "") if r.classified else ""
            emit({"file": f, **r.as_row()}, r)
            n += 1
            bar(n + len(skipped), len(a.files))
        emit_skipped(len(a.files))
    except BaseException:  # interrupted, out of memory, disk full: keep what was done, say where
        if out_fh is not None:
            out_fh.close()
            out_fh = None
            if n:
                print(f"Stopped after {n} of {len(a.files)} images; their rows are in {tmp}", file=sys.stderr)
            else:
                tmp.unlink(missing_ok=True)
        raise
    finally:
        if out_fh is not None:
            out_fh.flush()
            os.fsync(out_fh.fileno())
            out_fh.close()
    if tmp is not None:
        from ._files import resolve

        os.replace(tmp, resolve(a.output))  # a link named by --output keeps pointing at the results
        print(f"Classified {n} images with {printable(clf.name)} on {dev}; results in {printable(a.output)}"
              + (f" ({len(skipped)} not classified: see their 'note')" if skipped else ""))
    for _, f, why in skipped:
        print(f"skipped {printable(f)}: {printable(why)}", file=sys.stderr)
    if warnings_:
        multi = [f for i, f in names if i in warnings_]
        eg = ", ".join(multi[:3]) + (f" and {len(multi) - 3} more" if len(multi) > 3 else "")
        print(f"warning: {len(multi)} image(s) seem to hold several cells ({eg}); one label for a whole "
              "field means little. Classify each cell with --cells auto (their 'warning' column says more).",
              file=sys.stderr)
    if n == 0:
        raise OrganelleError("No image could be classified (see the skipped files above).")
    return 0


def _check_cells_args(a) -> None:
    """--cells and its options, checked before any work."""
    auto = len(a.cells) == 1 and a.cells[0].lower() == "auto"
    if not auto:
        if any(c.lower() == "auto" for c in a.cells):
            raise OrganelleError("--cells takes either 'auto' or one labels file per image, not both.")
        if len(a.cells) != len(a.files):
            raise OrganelleError(f"Give one --cells labels file per image ({len(a.files)} image(s), "
                                 f"{len(a.cells)} labels file(s)), or --cells auto to find the cells.")
        for f in a.cells:
            if Path(f).is_dir():
                raise OrganelleError(f"--cells {f} is a folder; give one labels image per file.")
        for opt, val in (("--diameter", a.diameter), ("--pixel-size", a.pixel_size), ("--save-cells", a.save_cells),
                         ("--keep-border-cells", a.keep_border_cells or None)):
            if val is not None:
                raise OrganelleError(f"{opt} goes with --cells auto (the cells given as labels are used as they are).")
    for opt, val in (("--diameter", a.diameter), ("--pixel-size", a.pixel_size)):
        if val is not None and not (val > 0 and val < float("inf")):
            raise OrganelleError(f"{opt} must be a positive number (got {val:g}).")
    inputs = [*a.files, *(a.dna or []), *([] if auto else a.cells), _model_file(a.model)]
    outputs = {}
    if a.output:
        outputs["--output"] = a.output
    if a.summary:
        _output_path(a.summary, "--summary")
        outputs["--summary"] = a.summary
    elif a.output:
        outputs["the summary"] = _summary_path(a)
    _refuse_inputs_as_outputs(outputs, inputs)
    if a.save_cells and Path(a.save_cells).exists() and not Path(a.save_cells).is_dir():
        raise OrganelleError(f"--save-cells {printable(a.save_cells)} is a file; give a folder to write the "
                             "cells into.")
    if a.save_cells:
        _refuse_inputs_as_outputs({"--save-cells": Path(a.save_cells) / "x_cells.tif"},
                                  [i for i in inputs if i is not None and Path(i).is_dir()])
    a.cells_auto = auto


def _summary_path(a) -> Path | None:
    if a.summary:
        return Path(a.summary).expanduser()
    if a.output:
        out = Path(a.output).expanduser()
        return out.with_name(out.stem + "_summary.csv")
    return None


def _classify_fields(a, clf, ae, dev) -> int:
    """``classify --cells``: each image is a field of view; find (or read) its cells and classify each.
    One row per cell (--output, or printed) and one summary row per image (--summary)."""
    import os

    import numpy as np

    from .inference import classify_field
    from .io import read_image, read_pair
    from .preprocess import InputError, validate_pair

    summary_path = _summary_path(a)
    if summary_path is not None and a.output and _same_file(summary_path, a.output):
        raise OrganelleError("The summary would replace --output; give --summary another name.")
    cells_fh = None
    writer = None
    tmp = None
    summary_rows: list[dict] = []
    n_cells = n_images = 0
    problems: list[tuple[str, str]] = []

    def cell_row(f, row):
        nonlocal writer
        if cells_fh is not None:
            if writer is None:
                writer = csv.DictWriter(cells_fh, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
        elif row["label"] != "not classified":
            flag = "  (uncertain)" if row["uncertain"] else ""
            print(f"{printable(f)}\tcell {row['cell']}\t({row['centroid_y']:.0f}, {row['centroid_x']:.0f})\t"
                  f"{row['area']} px\t{printable(row['label'])}\t{100 * row['confidence']:.1f}%{flag}")
        else:
            print(f"{printable(f)}\tcell {row['cell']}\t{row['label']}\t({printable(row['note'])})")

    def summary_row(f, res=None, why=""):
        row = {"file": f}
        if res is not None:
            sm = res.summary()
            row.update({"n_cells": sm["n_cells"], "n_classified": sm["n_classified"],
                        "n_uncertain": sm["n_uncertain"], "majority": sm["majority"],
                        "majority_fraction": sm["majority_fraction"]})
            row.update({f"n_{c}": k for c, k in sm["per_class"].items()})
            seg = res.segmentation
            row["dropped_border"] = seg.dropped_border if seg is not None else 0
            row["method"] = sm["method"]
            row["note"] = res.note
        else:
            row.update({"n_cells": 0, "n_classified": 0, "n_uncertain": 0, "majority": "",
                        "majority_fraction": float("nan")})
            row.update({f"n_{c}": 0 for c in clf.classes})
            row.update({"dropped_border": 0, "method": "", "note": why})
        summary_rows.append(row)
        if summary_path is None:
            if res is None:
                print(f"{printable(f)}: not classified ({printable(why)})")
            else:
                counts = ", ".join(f"{c} {k}" for c, k in sorted(res.summary()["per_class"].items(),
                                                                 key=lambda kv: -kv[1]) if k)
                print(f"{printable(f)}: {row['n_cells']} cells" + (f", majority {printable(row['majority'])} "
                      f"({100 * row['majority_fraction']:.0f} %): {counts}" if row["n_classified"] else "")
                      + (f" - {res.note}" if res.note else ""))

    try:
        if a.output:
            tmp = Path(str(_parent_made(a.output)) + ".part")
            cells_fh = open(tmp, "w", **CSV_ENCODING)
        for i, f in enumerate(a.files):
            f = str(f)
            try:
                protein, dna = read_pair(f)
                if a.dna:
                    dna = read_image(a.dna[i])
                protein, dna = validate_pair(protein, dna)
                labels = None
                if not a.cells_auto:
                    labels = read_image(a.cells[i])
                    labels = np.squeeze(labels)
                    if labels.ndim != 2 or labels.dtype.kind not in "iu":
                        raise InputError(f"{a.cells[i]}: a labels image must be one 2D plane of whole numbers "
                                         f"(0 = background), not shape {labels.shape}, {labels.dtype}.")
                res = classify_field(protein, dna, clf, labels=labels, diameter=a.diameter,
                                     pixel_size_um=a.pixel_size, exclude_border=not a.keep_border_cells,
                                     autoencoder=ae, batch_size=a.batch_size,
                                     progress=Progress(f"{Path(f).name}"))
            except InputError as exc:
                problems.append((f, str(exc)))
                summary_row(f, why=str(exc))
                continue
            n_images += 1
            for row in res.rows():
                cell_row(f, {"file": f, **row})
                n_cells += 1
            summary_row(f, res)
            if a.save_cells and res.segmentation is not None:
                import tifffile

                folder = Path(a.save_cells).expanduser()
                folder.mkdir(parents=True, exist_ok=True)
                dest = folder / f"{Path(f).stem}_cells.tif"
                if any(_same_file(dest, x) for x in [*a.files, *(a.dna or [])]):
                    raise OrganelleError(f"--save-cells would replace the input {printable(dest)}; give another "
                                         "folder.")
                from ._files import atomic_path

                with atomic_path(dest) as part:
                    tifffile.imwrite(part, res.labels.astype(np.int32), photometric="minisblack")
    except BaseException:
        if cells_fh is not None:
            cells_fh.close()
            cells_fh = None
            if n_cells:
                print(f"Stopped after {n_images} of {len(a.files)} images; their cells are in {tmp}", file=sys.stderr)
            else:
                tmp.unlink(missing_ok=True)
        raise
    finally:
        if cells_fh is not None:
            cells_fh.close()
    if tmp is not None:
        from ._files import resolve

        os.replace(tmp, resolve(a.output))
    if summary_path is not None:
        _write_csv(_parent_made(summary_path), summary_rows)
    if a.output or summary_path is not None:
        print(f"Classified {n_cells} cells in {n_images} image(s) with {printable(clf.name)} on {dev}"
              + (f"; cells in {printable(a.output)}" if a.output else "")
              + (f"; summary per image in {printable(summary_path)}" if summary_path is not None else ""))
    for f, why in problems:
        print(f"skipped {printable(f)}: {printable(why)}", file=sys.stderr)
    if n_images == 0:
        raise OrganelleError("No image could be classified (see the skipped files above).")
    return 0


def _cmd_reconstruct(a) -> int:
    import numpy as np
    import tifffile

    from .inference import reconstruct
    from .io import read_image

    from .inference import load_model

    tif = (".tif", ".tiff")
    hint = "use a file name ending in .tif or .tiff (a float32 TIFF is written)"
    _output_path(a.out, "--out", tif, hint)
    if a.residual:
        _output_path(a.residual, "--residual", tif, hint)
        if _same_file(a.out, a.residual):
            raise OrganelleError("--out and --residual name the same file; give two names.")
    if _same_file(a.out, a.file) or (a.residual and _same_file(a.residual, a.file)):
        raise OrganelleError(f"The output would replace the input {printable(a.file)}; give another name.")
    outputs = {"--out": a.out, "--residual": a.residual}
    _refuse_inputs_as_outputs(outputs, [a.file, _model_file(a.model)])
    ae = load_model(a.model, "autoencoder")
    if ae.path is not None:
        _refuse_inputs_as_outputs(outputs, [ae.path])
    img = read_image(a.file)
    rec = reconstruct(img, ae, progress=Progress("planes"))
    from ._files import atomic_file

    # float32 as a rule; float64 when the image needs it (reconstruct says which): never +inf
    dt = np.float64 if rec.reconstruction.dtype == np.float64 else np.float32
    with atomic_file(_parent_made(a.out), "wb") as fh:  # never a truncated file on a full disk
        tifffile.imwrite(fh, rec.reconstruction.astype(dt, copy=False))
    if a.residual:
        with atomic_file(_parent_made(a.residual), "wb") as fh:
            tifffile.imwrite(fh, rec.residual.astype(dt, copy=False))
        print(f"Saved the residual to {printable(a.residual)}")
    if dt == np.float64:
        print("The image's values do not fit float32 faithfully (an offset or an extreme scale), so the "
              "output TIFFs are float64.")
    print(f"MSE {rec.mse:.5f}  PSNR {rec.psnr:.2f} dB  SSIM {rec.ssim:.4f} (on [0,1]-scaled planes)")
    print(f"Saved {printable(a.out)}")
    return 0


def _cmd_models(a) -> int:
    from .checkpoints import list_models, user_models_dir

    infos = list_models()
    for m in infos:
        where = "bundled" if m.bundled else "user"
        print(f"{printable(m.name):<28} {str(m.kind or '-'):<12} {where:<8} {printable(m.summary)}")
    print(f"\nUser models folder: {user_models_dir()}")
    return 0


def _cmd_export(a) -> int:
    from .export import export_bioimageio

    r = export_bioimageio(a.model, a.out, name=a.name, description=a.description, authors=a.author,
                          license=a.license, overwrite=a.overwrite)
    print(f"Wrote the bioimage.io package {r.path} ({r.kind}, name {r.name!r}; {len(r.files)} files)")
    print("On the test input it reproduces napari-organelle to within "
          + ", ".join(f"{v:.1g} ({k})" for k, v in r.max_abs_difference.items())
          + f"; it declares a tolerance of {r.declared_tolerance['absolute']:g} absolute + "
          f"{r.declared_tolerance['relative']:g} relative.")
    for n in r.notes:
        print(f"note: {n}")
    print(f"Check it offline: bioimageio test {r.path} (needs the extra napari-organelle[bioimageio]); load it back "
          f"with --model {r.path}.")
    return 0


def _has_display() -> bool:
    import os

    if sys.platform != "linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM"))


def _headless_demo() -> int:
    """Without a display napari cannot open: classify the simulated sample cells and say so."""
    import numpy as np

    from .classes import CLASSES
    from .inference import classify_batch, load_model
    from .phantoms import simulate_cell

    clf = load_model(None, "classifier")
    print("No display found, so napari cannot open here; run 'napari-organelle demo' on a desktop "
          "(or under xvfb-run). Classifying the demo's simulated cells instead:\n")
    print(clf.card)
    print()
    rng = np.random.default_rng(2026)
    cells = [simulate_cell(c, rng) for c in CLASSES]
    results = classify_batch(cells, clf)
    hits = 0
    print(f"{'simulated cell':<16} {'predicted':<16} {'confidence':>10}")
    for c, r in zip(CLASSES, results):
        hits += r.label == c
        print(f"{c:<16} {r.label:<16} {100 * r.confidence:9.1f}%")
    print(f"\n{hits}/{len(CLASSES)} correct on these simulated cells (protein + DNA).")
    return 0


def _cmd_demo(a) -> int:
    if not _has_display():
        return _headless_demo()
    from .widgets.demo import run_demo

    run_demo(block=not a.no_block)
    return 0


COMMANDS = {
    "phantoms": _cmd_phantoms,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "classify": _cmd_classify,
    "reconstruct": _cmd_reconstruct,
    "models": _cmd_models,
    "export": _cmd_export,
    "demo": _cmd_demo,
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.command_line = "napari-organelle " + " ".join(shlex.quote(x) for x in argv)
    # Everything printed goes through an escaping stream: user-derived text (file and class names,
    # checkpoint metadata) cannot move the cursor, recolour the terminal or fake a result line, and
    # names that are not valid UTF-8 print as escapes instead of failing.
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = EscapingStream(out), EscapingStream(err)
    try:
        return _run(args)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        sys.stdout, sys.stderr = out, err


def _run(args) -> int:
    try:
        return COMMANDS[args.command](args)
    except OrganelleError as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that could not be written (disk full, permissions, ...)
        where = f" {printable(exc.filename)}" if getattr(exc, "filename", None) else ""
        print(f"error: could not read or write{where}: {printable(exc.strerror or exc)}. Check the path, the free "
              "space and the permissions, then run the command again.", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: not enough memory for this; use smaller images (or fewer at a time: --batch-size, "
              "--workers).", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        if "out of memory" not in str(exc).lower():
            raise
        print("error: the device ran out of memory; try a smaller --batch-size or --device cpu.", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
