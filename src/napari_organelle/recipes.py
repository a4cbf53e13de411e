"""End-to-end recipes over the core: train a model on a labelled source, evaluate a classifier.

A "source" is anything :func:`napari_organelle.datasets.load_labelled` reads (a folder in any
supported layout, an archive, ``simulated:N``) or an already loaded ``LabelledImages``.
The CLI (``napari-organelle train`` / ``evaluate``) calls these. The fine-tune dock calls
:func:`fine_tune`: ``train_model`` on a train / validation split (no test split) that, when
fine-tuning, keeps the starting model's classes by default, then the confusion matrix on the
validation images and a warning when the result is no better than guessing.
``train_model(..., keep_classes=True)`` (CLI ``--keep-classes``) keeps them too; its default, as in
the CLI, gives the fine-tuned model exactly the data's classes (a new head).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .preprocess import InputError

DEFAULT_INPUT_SIZE = 128
#: Classifier input sizes train_model accepts (a 1024x1024 input already needs ~8 MB per image).
MIN_INPUT_SIZE = 16
MAX_INPUT_SIZE = 1024


def _load(source, progress=None, kind: str = "classifier", min_classes: int | None = None):
    """``source`` as LabelledImages. For the autoencoder, which needs no labels, one class (or a
    plain folder of images) is enough; training a classifier needs two or more; evaluating one
    (``min_classes=1``) takes a single class too."""
    from .datasets import LabelledImages, load_labelled

    if isinstance(source, LabelledImages):
        return source
    if isinstance(source, (str, os.PathLike)) and str(source).lower().endswith(".pt") and Path(source).is_file():
        raise InputError(f"{source} is a model file, not labelled images. To fine-tune it, give it as the "
                         "model to start from (--from / init=) and give your images' folder as the data.")
    if kind == "autoencoder" or min_classes == 1:
        return load_labelled(source, progress=progress, min_classes=1)
    return load_labelled(source, progress=progress)


@dataclass
class EvaluationReport:
    """Accuracy of a classifier on labelled data. Rows of ``confusion`` are true classes."""

    accuracy: float
    n: int
    classes: list[str]
    per_class: dict[str, float]
    confusion: list[list[int]]
    data: str
    model: str
    protein_only: bool = False
    predictions: list[dict] = field(default_factory=list)
    skipped: list = field(default_factory=list)     # (file, reason) of files that were not evaluated
    warnings: list = field(default_factory=list)    # what the data loader warned about

    def to_dict(self, with_predictions: bool = False) -> dict:
        d = {
            "skipped": [[str(f), str(w)] for f, w in self.skipped],
            "warnings": [str(w) for w in self.warnings],
            "accuracy": self.accuracy,
            "n": self.n,
            "classes": self.classes,
            "per_class": self.per_class,
            "confusion": self.confusion,
            "data": self.data,
            "model": self.model,
            "protein_only": self.protein_only,
        }
        if with_predictions:
            d["predictions"] = self.predictions
        return d

    def table(self) -> str:
        from ._text import printable

        names = [printable(c) for c in self.classes]
        w = max(len(c) for c in names)
        lines = [f"Data: {printable(self.data)}", f"Model: {printable(self.model)}",
                 f"Accuracy: {100 * self.accuracy:.2f}% on {self.n} images"
                 + (" (protein only)" if self.protein_only else ""), ""]
        short = [c[:6] for c in names]
        lines.append(" " * (w + 2) + " ".join(f"{s:>6}" for s in short) + "   acc")
        for c, shown, row in zip(self.classes, names, self.confusion):
            acc = self.per_class.get(c)
            acc_s = "   n/a" if acc is None else f"{100 * acc:5.1f}%"
            lines.append(f"{shown:<{w}}  " + " ".join(f"{v:>6d}" for v in row) + f"  {acc_s}")
        lines.append("(rows: true class, columns: predicted class)")
        return "\n".join(lines)

    def save_confusion_png(self, path) -> None:
        """Save the confusion matrix as an image (format from the suffix: .png, .pdf, .svg ...),
        written to a temporary file beside ``path`` and renamed (never a truncated file)."""
        import matplotlib

        from ._files import atomic_file
        from ._text import printable

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        cm = np.asarray(self.confusion, float)
        fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center",
                            color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
        names = [printable(c) for c in self.classes]
        ax.set_xticks(range(len(self.classes)), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(self.classes)), names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        import textwrap

        data = textwrap.fill(textwrap.shorten(printable(self.data), 160, placeholder=" ..."), 90)
        ax.set_title(f"{printable(self.model)}: {100 * self.accuracy:.1f}% on {self.n} cells"
                     + (" (protein only)" if self.protein_only else "") + f"\n{data}", fontsize=8)
        fig.tight_layout()
        fmt = Path(path).suffix.lower().lstrip(".") or "png"
        try:
            with atomic_file(path, "wb") as fh:
                fig.savefig(fh, format=fmt)
        finally:
            plt.close(fig)


def confusion_matrix(true: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (np.asarray(true, np.int64), np.asarray(pred, np.int64)), 1)
    return cm


def evaluate(source, model=None, *, protein_only: bool = False, batch_size: int = 64,
             progress=None) -> EvaluationReport:
    """Accuracy, per-class accuracy and confusion matrix of a classifier on labelled data."""
    from .classes import canonical_class
    from .inference import iter_classify, load_model

    clf = model if hasattr(model, "classes") and hasattr(model, "model") else load_model(model, "classifier")
    data = _load(source, min_classes=1)  # a folder of one class (a user's own ER cells) is fine
    model_classes = list(clf.classes)
    lookup = {c: i for i, c in enumerate(model_classes)}
    for c in model_classes:
        lookup.setdefault(canonical_class(c) or c, lookup[c])
    if {s.label for s in data.samples} == {"unlabelled"} and isinstance(source, (str, os.PathLike)):
        # the class folder itself (ER/ holding images): its name is the class
        own = Path(str(source).split("::")[0]).name
        for suffix in (".zip", ".tar", ".tgz", ".tar.gz"):
            own = own[: -len(suffix)] if own.lower().endswith(suffix) else own
        name = canonical_class(own) or own
        if name not in lookup:
            raise InputError(
                f"{source} holds images but no class folders, and its name {own!r} is not a class of the "
                f"model ({', '.join(model_classes)}). Put the images in a folder named after their class "
                "(e.g. ER/), or one sub-folder per class.")
        for s in data.samples:
            s.label = name
        data.description += f"; all of class {name} (the folder's name)"
    unknown = sorted({s.label for s in data.samples if (canonical_class(s.label) or s.label) not in lookup})
    if unknown:
        raise InputError(
            f"The data has classes the model does not know: {', '.join(unknown)}. The model knows "
            f"{', '.join(model_classes)}. Fine-tune it on these classes first (napari-organelle train ... --from)."
        )
    true = np.array([lookup[canonical_class(s.label) or s.label] for s in data.samples], np.int64)
    pairs = ((s.protein, None if protein_only else s.dna) for s in data.samples)
    preds, rows, kept = [], [], []
    skipped = list(data.skipped)
    # One image the model cannot be given (or whose output is not a number) is a skipped row, never
    # the end of the run and never counted as an answer.
    for i, r in enumerate(iter_classify(pairs, clf, batch_size=batch_size, skip_unusable=True)):
        rows.append({"source": data.samples[i].source, "true": model_classes[true[i]], **r.as_row()})
        if r.classified:
            preds.append(model_classes.index(r.label))
            kept.append(i)
        else:
            skipped.append((data.samples[i].source, r.note))
        if progress is not None:
            progress(i + 1, len(data.samples))
    if not kept and len(data.samples):
        raise InputError(f"None of the {len(data.samples)} images could be classified (e.g. "
                         f"{skipped[-1][0]}: {skipped[-1][1]}).")
    true = true[np.asarray(kept, np.int64)] if kept else true[:0]
    pred = np.array(preds, np.int64)
    cm = confusion_matrix(true, pred, len(model_classes))
    per_class = {}
    for k, c in enumerate(model_classes):
        if cm[k].sum():
            per_class[c] = float(cm[k, k] / cm[k].sum())
    return EvaluationReport(
        accuracy=float((pred == true).mean()) if len(true) else 0.0,
        n=int(len(true)),
        classes=model_classes,
        per_class=per_class,
        confusion=cm.tolist(),
        data=data.description or str(source),
        model=clf.name,
        protein_only=protein_only,
        predictions=rows,
        skipped=skipped,
        warnings=list(data.warnings),
    )


@dataclass
class TrainingOutcome:
    """What :func:`train_model` returns. Save it with ``checkpoints.save_user_model(outcome, name)``
    (or write ``outcome.checkpoint`` with ``checkpoints.write_checkpoint_dict``): the checkpoint
    holds the data description, split, command and the held-out metrics."""

    result: object  # training.TrainResult
    checkpoint: dict
    test_report: EvaluationReport | None
    data: object  # LabelledImages


def check_fractions(fractions) -> tuple[float, float, float]:
    """(train, val, test): three non-negative finite numbers summing to 1, train > 0; else InputError."""
    import math

    try:
        fr = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise InputError(f"fractions must be three numbers (train, validation, test), got {fractions!r}.") from None
    if len(fr) != 3 or not all(math.isfinite(f) and f >= 0 for f in fr):
        raise InputError(f"fractions must be three non-negative numbers (train, validation, test), got {fractions!r}.")
    if abs(sum(fr) - 1.0) > 1e-6:
        raise InputError(f"fractions (train, validation, test) must add up to 1, got {fractions!r} "
                         f"(sum {sum(fr):g}); e.g. (0.7, 0.15, 0.15).")
    if fr[0] <= 0:
        raise InputError(f"The training fraction must be above 0, got {fractions!r}: leave something to train on.")
    return fr


def check_input_size(size) -> int | None:
    """None, or a whole number in [MIN_INPUT_SIZE, MAX_INPUT_SIZE]; else InputError."""
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise InputError(f"The input size must be a whole number of pixels, got {size!r}.")
    if not MIN_INPUT_SIZE <= int(size) <= MAX_INPUT_SIZE:
        raise InputError(f"The input size must be between {MIN_INPUT_SIZE} and {MAX_INPUT_SIZE} pixels "
                         f"(got {size}); the default is {DEFAULT_INPUT_SIZE}. Larger inputs need far more "
                         "memory and rarely help: images are resized to it.")
    return int(size)


def _resolve_init(init, kind: str):
    """``init`` as a LoadedModel of ``kind``: a LoadedModel, a model name or a checkpoint path."""
    if init is None:
        return None
    from .checkpoints import resolve_model

    return resolve_model(init, kind=kind)


def train_model(source, kind: str = "classifier", config=None, *, init=None, size: int | None = None,
                fractions=(0.7, 0.15, 0.15), split_seed: int = 0, callback=None, should_stop=None,
                checkpoint_path=None, command: str | None = None, progress=None,
                arch: str | None = None, keep_classes: bool = False, on_data=None) -> TrainingOutcome:
    """Load ``source``, split it (stratified, seeded), train, and test on the held-out part.

    ``init``: a model to fine-tune: a LoadedModel, a model name (``napari-organelle models``) or a
    checkpoint path. By default the fine-tuned classifier predicts exactly the data's classes (the
    head is rebuilt for them; rows of classes the model knew are kept). ``keep_classes=True`` (the
    fine-tune dock's default): it keeps all the starting model's classes, in its order, and adds the
    data's new classes after them.
    ``on_data(data)``: called once the data is loaded and split, before training (the CLI prints the
    skipped files and warnings there, so a long run does not hide them until its end).
    ``fractions``: (train, validation, test), non-negative, summing to 1, train > 0. With a test
    fraction of 0 there is no test: the checkpoint's figures are validation figures (``val_*``).
    Returns the result, its checkpoint dict (with metadata: data, split, metrics, command) and, for
    classifiers with a test split, the report on it (protein + DNA and protein only).
    """
    from .checkpoints import checkpoint_dict  # noqa: F401  (import check: the store is usable)
    from .datasets import stratified_split, to_classifier_tensors, to_native_planes
    from .training import TrainConfig, train

    if kind not in ("classifier", "autoencoder"):
        raise InputError(f"Unknown model kind {kind!r}: use 'classifier' or 'autoencoder'.")
    fractions = check_fractions(fractions)
    size = check_input_size(size)
    config = config or TrainConfig()
    init = _resolve_init(init, kind)
    if keep_classes and init is None:
        raise InputError("keep_classes (--keep-classes) applies when fine-tuning: give the model to start "
                         "from (init / --from).")
    data = _load(source, progress=progress, kind=kind)
    if len(data.samples) == 0:
        raise InputError("No images were found to train on.")
    labels = [s.label for s in data.samples]
    tr, va, te = stratified_split(labels, fractions=fractions, seed=split_seed)
    if len(va) == 0:
        raise InputError(
            f"Too few images ({len(labels)}) to hold any out for validation; add images "
            "(at least 3 per class) or raise the validation fraction."
        )
    train_set, val_set = data.subset(tr), data.subset(va)
    test_set = data.subset(te) if len(te) else None
    if kind == "classifier":  # a class the split leaves out of validation / test is not measured there
        for part, idx in (("validation", va), ("test", te)):
            if len(idx) == 0:
                continue
            present = {labels[i] for i in idx}
            missing = [c for c in data.classes if c not in present]
            if missing:
                counts = {c: labels.count(c) for c in missing}
                data.warnings.append(
                    f"No {part} image for {', '.join(f'{c} ({n} in all)' for c, n in counts.items())}: the "
                    f"{part} accuracy says nothing about {'it' if len(missing) == 1 else 'them'}. Add images "
                    "(at least 7 per class gives each class one validation and one test image).")
    if on_data is not None:
        on_data(data)

    training_meta = {
        "data": data.description or str(source),
        "n_test": int(len(te)),
        "split": {"fractions": list(fractions), "seed": split_seed, "method": "stratified"},
        "date": _dt.date.today().isoformat(),
        "command": command or "",
        "fine_tuned_from": getattr(init, "name", None),
        "python": platform.python_version(),
    }
    if kind == "classifier":
        classes = list(data.classes)
        if init is not None:
            size = size or int(init.input_size or DEFAULT_INPUT_SIZE)
            if keep_classes and init.classes:
                new = [c for c in classes if c not in init.classes]
                classes = list(init.classes) + new
                training_meta["classes_kept"] = True
                if new:
                    training_meta["classes_added"] = new
        else:
            size = size or DEFAULT_INPUT_SIZE
        xtr, ytr = to_classifier_tensors(train_set, size, classes)
        xva, yva = to_classifier_tensors(val_set, size, classes)
        result = train("classifier", (xtr, ytr), (xva, yva), config, classes=classes, init=init,
                       arch=arch, callback=callback, should_stop=should_stop, checkpoint_path=checkpoint_path,
                       training_meta=training_meta)
    else:
        ptr = to_native_planes(train_set)
        pva = to_native_planes(val_set)
        result = train("autoencoder", ptr, pva, config, init=init, callback=callback,
                       should_stop=should_stop, checkpoint_path=checkpoint_path, training_meta=training_meta)

    training_meta = {
        **training_meta,
        "n_train": int(len(tr)),
        "n_val": int(len(va)),
        "epochs": int(config.epochs),
        "epochs_run": len(result.history),
        "best_epoch": int(result.best_epoch),
        "stopped": bool(result.stopped),
        "seed": config.seed,
        "device": str(result.device),
        "seconds": round(float(result.seconds), 1),
    }
    best = next((h for h in result.history if h.epoch == result.best_epoch), None)
    metrics: dict = {}
    if best is not None:
        metrics["val_loss"] = float(best.val_loss)
        if best.val_acc is not None:
            metrics["val_accuracy"] = float(best.val_acc)
    elif result.baseline is not None:  # no epoch improved on the starting model: it is returned
        metrics["val_loss"] = float(result.baseline["val_loss"])
        if "val_accuracy" in result.baseline:
            metrics["val_accuracy"] = float(result.baseline["val_accuracy"])
    metrics["measured_on"] = ("held-out split of the training data"
                              + ("" if test_set is not None else
                                 " (validation split; no test split: validation figures, from the images "
                                 "that chose the best epoch, not an independent test)")
                              + ": " + (data.description or str(source)))
    test_report = None
    if kind == "classifier":
        from .checkpoints import load_checkpoint

        provisional = load_checkpoint(result.checkpoint(training=training_meta, metrics=metrics))
        if test_set is not None:
            test_report = evaluate(test_set, provisional)
            metrics["test_accuracy"] = test_report.accuracy
            metrics["test_n"] = test_report.n
            metrics["test_per_class"] = test_report.per_class
            if data.has_dna():
                metrics["test_accuracy_protein_only"] = evaluate(test_set, provisional, protein_only=True).accuracy
    else:
        from .inference import _run_ae, psnr

        planes = to_native_planes(test_set if test_set is not None else val_set)
        mses, psnrs = [], []
        for p in planes:
            r = _run_ae(result.model, p[None])[0]
            mses.append(float(np.mean((r - p) ** 2)))
            psnrs.append(psnr(p, r))
        metrics["val_mse"] = float(result.best_val_loss)
        if test_set is not None:
            metrics["test_mse"] = float(np.mean(mses))
            metrics["test_psnr"] = float(np.mean(psnrs))
            metrics["test_n_planes"] = len(planes)
        else:  # whole validation planes (the epochs' val_psnr is on centre crops)
            metrics["val_planes_mse"] = float(np.mean(mses))
            metrics["val_planes_psnr"] = float(np.mean(psnrs))
            metrics["val_n_planes"] = len(planes)
            metrics["ood_reference_mse"] = float(np.mean(mses))  # what ood_score divides by
    ckpt = result.checkpoint(training=training_meta, metrics=metrics)
    result.training_meta = {**result.training_meta, **training_meta}
    # kept on the result so that checkpoints.save_user_model(outcome.result, name) saves them too
    result.held_out_metrics = dict(metrics)
    return TrainingOutcome(result=result, checkpoint=ckpt, test_report=test_report, data=data)


@dataclass
class FineTuneOutcome:
    """What :func:`fine_tune` returns: the run, its checkpoint, the validation confusion matrix."""

    kind: str
    result: object | None = None               # training.TrainResult (None: stopped before training)
    checkpoint: dict | None = None             # the checkpoint dict (metadata and metrics)
    classes: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None        # classifier: validation confusion (true x predicted)
    val_accuracy: float | None = None
    n_train: int = 0
    n_val: int = 0
    started_from: str = "scratch"
    error: BaseException | None = None         # set by callers that catch what fine_tune raised
    warning: str = ""                          # e.g. a classifier at chance
    name: str = ""                             # a name the caller gives a kept result

    @property
    def has_new_model(self) -> bool:
        """True when the run gave weights to keep: an epoch finished (and, when fine-tuning, beat the
        starting model). False: failed, stopped before an epoch, or the model is unchanged."""
        return self.error is None and self.result is not None and int(self.result.best_epoch) > 0

    def summary(self) -> str:
        """What happened, in a few lines: the starting model's figures, the best epoch's, the counts."""
        res = self.result
        if res is None:
            return "Stopped before training began; nothing to keep."
        n_ep, base = len(res.history), res.baseline
        if res.best_epoch <= 0:
            if base is not None and n_ep:
                good = base.get("val_accuracy") is not None and base["val_accuracy"] >= 0.95
                return ((f"Stopped after {n_ep} epoch(s). " if res.stopped else "")
                        + f"No epoch improved on the starting model ({self.started_from}: {_scores(base)}) in "
                        f"{n_ep} epoch(s); it is unchanged, so there is nothing new to save or use. "
                        + ("It already classifies these validation images correctly: keep using it. Fine-tuning "
                           "helps on images it gets wrong (another microscope, stain or noise) or for new classes."
                           if good else "Try more epochs, more images, or another learning rate."))
            if "diverged" in res.stop_reason:
                return f"{res.stop_reason[0].upper()}{res.stop_reason[1:]} Nothing to save."
            return f"Stopped before the first epoch finished ({res.stop_reason}). The model is unchanged; nothing to save."
        best = res.best_event
        best_text = _scores(best) if best is not None else f"val loss {res.best_val_loss:.4g}"
        return "\n".join([
            f"Stopped after {n_ep} epoch(s): {res.stop_reason}." if res.stopped else f"Finished: {res.stop_reason}.",
            f"Starting model ({self.started_from}): {_scores(base)} → best epoch {res.best_epoch}: {best_text}."
            if base is not None else f"Best epoch {res.best_epoch}: {best_text}.",
            f"{self.n_train} training / {self.n_val} validation images; {res.seconds:.0f} s on {res.device}."])


def _scores(m) -> str:
    """'val accuracy 80.0% (val loss 0.52)' / 'val PSNR 24.9 dB (...)' from an EpochEvent or a baseline dict."""
    get = m.get if isinstance(m, dict) else (lambda k: getattr(m, k, None))
    acc, psnr = get("val_accuracy") if isinstance(m, dict) else get("val_acc"), get("val_psnr")
    loss = f"val loss {get('val_loss'):.4g}"
    return f"val accuracy {acc:.1%} ({loss})" if acc is not None else \
        f"val PSNR {psnr:.1f} dB ({loss})" if psnr is not None else loss


def check_classifier_data(data) -> list[str]:
    """Classes with images, in the data's order; InputError when a classifier cannot train on them."""
    from collections import Counter

    counts = Counter(s.label for s in data.samples)
    if (empty := [c for c in data.classes if not counts.get(c)]):
        raise InputError(f"Class {empty[0]!r} has no images. Add images of it (or remove it from the data), then "
                         "train again.")
    present = [c for c in data.classes if counts.get(c)] + [c for c in counts if c not in data.classes]
    if len(present) < 2:
        raise InputError(f"Only one class ({present[0]}) has images; a classifier needs at least two. Add images of "
                         "another class (another sub-folder, or another layer with a different class).")
    if (few := [c for c in present if counts[c] < 2]):
        raise InputError(f"Class {few[0]!r} has only one image; at least two per class are needed (one to train on, "
                         "one to validate). Add images or remove the class.")
    return present


def chance_warning(confusion, classes, scratch: bool = False) -> str:
    """A warning when a validation confusion matrix shows a classifier no better than guessing: one class
    for every image, or an accuracy within 10 points of picking at random among the classes present."""
    if confusion is None or np.asarray(confusion).sum() == 0:
        return ""
    cm = np.asarray(confusion)
    present = int((cm.sum(1) > 0).sum())
    acc = float(np.trace(cm)) / float(cm.sum())
    predicted = [c for c, n in zip(classes, cm.sum(0)) if n]
    if present >= 2 and len(predicted) == 1:
        why = f"it answers {predicted[0]} for every validation image"
    elif present >= 2 and acc <= 1.0 / present + 0.10:
        why = f"its validation accuracy ({acc:.0%}) is about what guessing gives ({1 / present:.0%})"
    else:
        return ""
    return (f"This model is at chance: {why}. Do not use it to classify; train longer (more epochs) or on more "
            "images" + (", or fine-tune the active model instead of starting from scratch." if scratch else "."))


def fine_tune(source, kind: str = "classifier", config=None, *, init=None, val_fraction: float = 0.2,
              keep_classes: bool = True, size: int | None = None, arch: str | None = None, callback=None,
              should_stop=None, command: str = "napari dock: Fine-tune models") -> FineTuneOutcome:
    """Train ``kind`` on ``source`` (LabelledImages or a path) split into train / validation only, starting
    from ``init`` (a LoadedModel; None: from scratch, then ``size`` and ``arch`` choose the new model),
    keeping ``init``'s classes (``keep_classes``); then score the returned model on the validation
    images (classifier: confusion matrix, accuracy, :func:`chance_warning`). Raises InputError for
    data that cannot train (one class, a class with one image, no images)."""
    from .checkpoints import load_checkpoint
    from .datasets import stratified_split
    from .training import TrainConfig

    config = config or TrainConfig()
    data = _load(source, kind=kind)
    if not data.samples:
        raise InputError("No images to train on.")
    if kind == "classifier":
        check_classifier_data(data)
    elif len(data.samples) < 2:
        raise InputError("The autoencoder needs at least two images (one to train on, one to validate).")
    vf, seed = float(val_fraction), int(config.seed or 0)
    fractions = (1.0 - vf, vf, 0.0)
    labels = [s.label for s in data.samples] if kind == "classifier" else ["_"] * len(data.samples)
    _, val, _ = stratified_split(labels, fractions=fractions, seed=seed)  # the split train_model makes
    out = FineTuneOutcome(kind=kind, started_from=getattr(init, "name", None) or "scratch",
                          n_train=len(data.samples) - len(val), n_val=len(val))
    if should_stop is not None and (should_stop.is_set() if hasattr(should_stop, "is_set") else should_stop()):
        return out
    done = train_model(data, kind, config, init=init, fractions=fractions, split_seed=seed,
                       size=size if init is None else None, arch=arch if init is None else None,
                       callback=callback, should_stop=should_stop, command=command,
                       keep_classes=bool(keep_classes and init is not None and kind == "classifier"))
    out.result, out.checkpoint = done.result, done.checkpoint
    out.classes = list(getattr(done.result, "classes", None) or [])
    if kind == "classifier" and done.result.history:
        report = evaluate(data.subset(val), load_checkpoint(done.checkpoint))
        out.confusion = np.asarray(report.confusion, dtype=np.int64)
        out.val_accuracy = float(report.accuracy)
        out.warning = chance_warning(out.confusion, report.classes, scratch=init is None)
    return out


def command_line() -> str:
    """The command that is running, for checkpoint metadata."""
    import os

    prog = os.path.basename(sys.argv[0]) if sys.argv else "python"
    return " ".join([prog] + sys.argv[1:])
