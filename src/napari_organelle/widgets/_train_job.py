"""The fine-tuning job of the "Fine-tune models" dock, without Qt: it runs in the worker thread.

``run_training`` loads / splits / converts the data, calls ``training.train`` and evaluates the best
weights; ``_job`` wraps it so that nothing escapes the worker (errors travel in the TrainOutcome).
The dock (``finetune.py``) gathers a TrainRequest in the GUI thread and shows the outcome.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..preprocess import InputError, OrganelleError

#: Input size of a classifier trained from scratch when TrainConfig does not say otherwise.
DEFAULT_INPUT_SIZE = 128

NO_DATA_MESSAGE = (
    "No training data. In 'Training data', choose a folder or archive of labelled images (one "
    "sub-folder per class) and press Load, or open the 'Open layers' tab, add image layers and give "
    "each a class; then press Train again."
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


@dataclass
class TrainOutcome:
    """What the worker hands back: the engine's result plus the dock's evaluation."""

    kind: str
    result: object | None = None               # training.TrainResult
    classes: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None        # classifier: validation confusion (true x predicted)
    val_accuracy: float | None = None
    n_train: int = 0
    n_val: int = 0
    data_description: str = ""
    started_from: str = "scratch"
    val_fraction: float = 0.2
    error: BaseException | None = None
    name: str = ""                             # the dock's name for the model (set when it is kept)

    @property
    def has_new_model(self) -> bool:
        """True when the run produced weights to keep: an epoch finished (and, when fine-tuning,
        beat the starting model). False: failed, stopped before an epoch, or the model is unchanged."""
        return self.error is None and self.result is not None and int(self.result.best_epoch) > 0


def _stop_is_set(stop) -> bool:
    return stop is not None and stop.is_set()


def _ordered_classes(labels: list[str], declared: list[str]) -> list[str]:
    out = [c for c in declared if c in set(labels)]
    for lab in labels:
        if lab not in out:
            out.append(lab)
    return out


def check_classifier_data(data) -> list[str]:
    """Classes with images, in the data's order; raises InputError when training cannot work."""
    counts = Counter(s.label for s in data.samples)
    empty = [c for c in data.classes if counts.get(c, 0) == 0]
    if empty:
        raise InputError(
            f"Class {empty[0]!r} has no images. Add images of it (or remove it from the data), then "
            "press Train again."
        )
    present = _ordered_classes([s.label for s in data.samples], list(data.classes))
    if len(present) < 2:
        raise InputError(
            f"Only one class ({present[0]}) has images; a classifier needs at least two. Add images of "
            "another class (another sub-folder, or another layer with a different class)."
        )
    few = [c for c in present if counts[c] < 2]
    if few:
        raise InputError(
            f"Class {few[0]!r} has only one image; at least two per class are needed (one to train "
            "on, one to validate). Add images or remove the class."
        )
    return present


def _friendly_error(exc: BaseException, req: TrainRequest) -> BaseException:
    """Turn CUDA out-of-memory (and similar) into an OrganelleError that says what to do."""
    if isinstance(exc, OrganelleError):
        return exc
    text = str(exc)
    oom = type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower()
    if oom:
        bs = getattr(req.config, "batch_size", "?")
        dev = getattr(req.config, "device", "?")
        new = OrganelleError(
            f"The device ({dev}) ran out of memory while training with batch size {bs}. Lower the "
            "batch size, or choose 'cpu' in Device, then press Train again. Nothing was saved."
        )
        new.__cause__ = exc
        return new
    return exc


def _confusion(model, X: np.ndarray, y: np.ndarray, n_classes: int, batch_size: int = 64) -> np.ndarray:
    """Confusion matrix (true x predicted) of ``model`` on (X, y), in eval mode, without gradients."""
    import torch

    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        preds = []
        with torch.no_grad():
            for i in range(0, len(X), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(X[i:i + batch_size])).to(device)
                preds.append(model(xb).argmax(1).cpu().numpy())
    finally:
        model.train(was_training)
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y, np.int64), pred.astype(np.int64)), 1)
    return cm


def min_classes_for(kind: str) -> int:
    """Classes the data must have: the autoencoder needs no labels (one class, or a plain folder of
    images, is enough); a classifier needs two."""
    return 1 if kind == "autoencoder" else 2


def run_training(req: TrainRequest, *, emit=None, message=None, stop=None) -> TrainOutcome:
    """Load / split / convert the data, train, evaluate. Pure Python + torch; raises on errors.

    ``emit(event)`` receives the engine's BatchEvent / EpochEvent; ``message(str)`` stage notes.
    """
    from .. import datasets, training

    say = message or (lambda s: None)
    data = req.data
    if data is None:
        raise InputError(NO_DATA_MESSAGE)
    if isinstance(data, (str, os.PathLike)):
        say(f"Loading {data} ...")
        data = datasets.load_labelled(data, min_classes=min_classes_for(req.kind))
    if not data.samples:
        raise InputError(NO_DATA_MESSAGE)
    out = TrainOutcome(kind=req.kind, data_description=str(data.description or ""),
                       started_from=getattr(req.init, "name", None) or "scratch",
                       val_fraction=float(req.val_fraction))
    labels = [s.label for s in data.samples]
    vf = float(req.val_fraction)
    if req.kind == "classifier":
        present = check_classifier_data(data)
        classes = list(present)
        if req.init is not None and req.keep_model_classes and req.init.classes:
            classes = list(req.init.classes) + [c for c in present if c not in req.init.classes]
        tr, va, _ = datasets.stratified_split(labels, fractions=(1.0 - vf, vf, 0.0),
                                              seed=int(getattr(req.config, "seed", 0)))
        if len(va) == 0:
            raise InputError("The validation set is empty: add images or raise the validation fraction.")
        size = None
        if req.init is not None and req.init.input_size:
            size = int(req.init.input_size)
        size = size or int(getattr(req.config, "input_size", 0) or DEFAULT_INPUT_SIZE)
        say(f"Preparing {len(tr)} training and {len(va)} validation images at {size}x{size} ...")
        train_data = datasets.to_classifier_tensors(data.subset(tr), size, classes)
        val_data = datasets.to_classifier_tensors(data.subset(va), size, classes)
    else:
        classes = None
        if len(data.samples) < 2:
            raise InputError("The autoencoder needs at least two images (one to train on, one to "
                             "validate). Add images, then press Train again.")
        tr, va, _ = datasets.stratified_split(["_"] * len(labels), fractions=(1.0 - vf, vf, 0.0),
                                              seed=int(getattr(req.config, "seed", 0)))
        say(f"Preparing {len(tr)} training and {len(va)} validation images ...")
        train_data = datasets.to_native_planes(data.subset(tr))
        val_data = datasets.to_native_planes(data.subset(va))
    out.n_train, out.n_val = int(len(tr)), int(len(va))
    if _stop_is_set(stop):
        return out  # stopped before training began: no result
    say(f"Training the {req.kind} ...")
    meta = {"data": out.data_description, "command": "napari dock: Fine-tune models",
            "started_from": out.started_from, "val_fraction": vf}
    result = training.train(req.kind, train_data, val_data, req.config, classes=classes, init=req.init,
                            callback=emit, should_stop=stop, training_meta=meta)
    out.result = result
    out.classes = list(getattr(result, "classes", None) or classes or [])
    if req.kind == "classifier" and int(getattr(result, "best_epoch", 1)) > 0:
        say("Evaluating the best weights on the validation set ...")
        Xv, yv = val_data
        cm = _confusion(result.model, Xv, yv, len(out.classes),
                        batch_size=max(1, int(getattr(req.config, "batch_size", 64))))
        out.confusion = cm
        out.val_accuracy = float(np.trace(cm)) / max(1, int(cm.sum()))
    return out


def _job(req: TrainRequest, relay, stop: threading.Event, done: threading.Event) -> TrainOutcome:
    """Worker-thread body: never raises (errors travel in the outcome, shown by the GUI thread).

    ``relay`` carries the engine's events and stage notes to the GUI thread (``finetune._Relay``:
    its ``event`` and ``message`` signals).
    """
    try:
        return run_training(req, emit=relay.event.emit, message=relay.message.emit, stop=stop)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the GUI as a notification
        return TrainOutcome(kind=req.kind, error=_friendly_error(exc, req))
    finally:
        done.set()


def _load_job(path: str, kind: str = "classifier"):
    from .. import datasets

    try:
        return path, datasets.load_labelled(path, min_classes=min_classes_for(kind)), None
    except BaseException as exc:  # noqa: BLE001
        return path, None, exc
