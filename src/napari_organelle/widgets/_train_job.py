"""The fine-tuning run of the "Fine-tune models" dock, without Qt: it runs in a worker thread.

``run_training`` checks the data, calls ``recipes.train_model`` (load, stratified split, train; the
starting model is scored first and is returned unchanged if no epoch beats it) and scores the result
on the validation images (``recipes.evaluate``: the confusion matrix). ``chance_warning`` says when a
classifier is no better than guessing. The dock gathers a TrainRequest in the GUI thread.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..preprocess import InputError, OrganelleError

NO_DATA_MESSAGE = (
    "No training data. In 'Training data', choose a folder or archive of labelled images (one sub-folder "
    "per class) and press Load, or choose 'open layers', add image layers and give each a class; then "
    "press Train again."
)


@dataclass
class TrainRequest:
    """Everything the worker needs, gathered in the GUI thread."""

    kind: str
    data: object                    # LabelledImages, or a path to load in the worker
    val_fraction: float
    config: object                  # training.TrainConfig
    init: object | None = None      # LoadedModel to start from (None: from scratch)
    keep_model_classes: bool = True
    size: int | None = None         # classifier from scratch: its input size (default: the active model's)
    arch: str | None = None         # ... and its architecture


@dataclass
class TrainOutcome:
    """What the worker hands back: the recipe's result plus the dock's evaluation."""

    kind: str
    result: object | None = None               # training.TrainResult
    checkpoint: dict | None = None             # the recipe's checkpoint dict (metadata and metrics)
    classes: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None        # classifier: validation confusion (true x predicted)
    val_accuracy: float | None = None
    n_train: int = 0
    n_val: int = 0
    started_from: str = "scratch"
    error: BaseException | None = None
    warning: str = ""                          # e.g. a classifier at chance
    name: str = ""                             # the dock's name for the model (set when it is kept)

    @property
    def has_new_model(self) -> bool:
        """True when the run gave weights to keep: an epoch finished (and, when fine-tuning, beat the
        starting model). False: failed, stopped before an epoch, or the model is unchanged."""
        return self.error is None and self.result is not None and int(self.result.best_epoch) > 0


def check_classifier_data(data) -> list[str]:
    """Classes with images, in the data's order; raises InputError when training cannot work."""
    counts = Counter(s.label for s in data.samples)
    if (empty := [c for c in data.classes if not counts.get(c)]):
        raise InputError(f"Class {empty[0]!r} has no images. Add images of it (or remove it from the data), then "
                         "press Train again.")
    present = [c for c in data.classes if counts.get(c)] + [c for c in counts if c not in data.classes]
    if len(present) < 2:
        raise InputError(f"Only one class ({present[0]}) has images; a classifier needs at least two. Add images of "
                         "another class (another sub-folder, or another layer with a different class).")
    if (few := [c for c in present if counts[c] < 2]):
        raise InputError(f"Class {few[0]!r} has only one image; at least two per class are needed (one to train on, "
                         "one to validate). Add images or remove the class.")
    return present


def chance_warning(confusion: np.ndarray | None, classes, scratch: bool = False) -> str:
    """A warning when the validation confusion shows a classifier no better than guessing: one class for
    every image, or an accuracy within 10 points of picking at random among the classes present."""
    if confusion is None or confusion.sum() == 0:
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


def _friendly(exc: BaseException, req: TrainRequest) -> BaseException:
    """CUDA out-of-memory -> an OrganelleError that says what to do."""
    if isinstance(exc, OrganelleError) or not (type(exc).__name__ == "OutOfMemoryError"
                                                or "out of memory" in str(exc).lower()):
        return exc
    new = OrganelleError(f"The device ({req.config.device}) ran out of memory while training with batch size "
                         f"{req.config.batch_size}. Lower the batch size, or choose 'cpu' in Device, then press "
                         "Train again. Nothing was saved.")
    new.__cause__ = exc
    return new


def run_training(req: TrainRequest, *, emit=None, stop=None) -> TrainOutcome:
    """Check, train, evaluate (pure Python + torch; raises on errors). ``emit(event)`` receives the
    engine's BatchEvent / EpochEvent."""
    from .. import datasets, recipes
    from ..checkpoints import load_checkpoint

    data = req.data
    if data is None:
        raise InputError(NO_DATA_MESSAGE)
    if isinstance(data, (str, os.PathLike)):
        data = datasets.load_labelled(data, min_classes=1 if req.kind == "autoencoder" else 2)
    if not data.samples:
        raise InputError(NO_DATA_MESSAGE)
    if req.kind == "classifier":
        check_classifier_data(data)
    elif len(data.samples) < 2:
        raise InputError("The autoencoder needs at least two images (one to train on, one to validate). Add "
                         "images, then press Train again.")
    vf, seed = float(req.val_fraction), int(req.config.seed or 0)
    fractions = (1.0 - vf, vf, 0.0)
    labels = [s.label for s in data.samples] if req.kind == "classifier" else ["_"] * len(data.samples)
    _, val, _ = datasets.stratified_split(labels, fractions=fractions, seed=seed)  # the split the recipe makes
    out = TrainOutcome(kind=req.kind, started_from=getattr(req.init, "name", None) or "scratch",
                       n_train=len(data.samples) - len(val), n_val=len(val))
    if stop is not None and stop.is_set():
        return out  # stopped before training began: no result
    done = recipes.train_model(data, req.kind, req.config, init=req.init, fractions=fractions, split_seed=seed,
                               size=req.size if req.init is None else None,
                               arch=req.arch if req.init is None else None, callback=emit, should_stop=stop,
                               command="napari dock: Fine-tune models",
                               keep_classes=bool(req.keep_model_classes and req.init is not None and
                                                 req.kind == "classifier"))
    out.result, out.checkpoint = done.result, done.checkpoint
    out.classes = list(getattr(done.result, "classes", None) or [])
    if req.kind == "classifier" and done.result.history:
        report = recipes.evaluate(data.subset(val), load_checkpoint(done.checkpoint))
        out.confusion = np.asarray(report.confusion, dtype=np.int64)
        out.val_accuracy = float(report.accuracy)
        out.warning = chance_warning(out.confusion, report.classes, scratch=req.init is None)
    return out


def job(req: TrainRequest, report, stop) -> TrainOutcome:
    """The helper thread's body: never raises (errors travel in the outcome, shown by the GUI thread)."""
    try:
        return run_training(req, emit=report, stop=stop)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the GUI as a notification
        return TrainOutcome(kind=req.kind, error=_friendly(exc, req))


def load_job(path: str, kind: str = "classifier"):
    from .. import datasets

    try:
        return path, datasets.load_labelled(path, min_classes=1 if kind == "autoencoder" else 2), None
    except Exception as exc:  # noqa: BLE001 - shown in the GUI thread
        return path, None, exc
