"""The "Fine-tune models" dock: train the classifier or the autoencoder on the user's own images.

Controls (what to train and from what, the data: a folder / archive or open layers, the settings),
then what Train does (``recipes.fine_tune`` in a helper thread fed through a generator
``thread_worker``; Train becomes Stop, which ends after the current batch and keeps the best weights),
then how results are shown (live curves, the engine's log, a confusion matrix, Save as... / Use this
model). The model in use is never modified; a run replaces the kept result (``self.kept.outcome``) only
when it gives a new model, so a failed, stopped or unimproved run never loses an unsaved result.
"""

from __future__ import annotations

import threading
import time

from magicgui.widgets import (CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, ProgressBar, RadioButtons, SpinBox, TextEdit)
from psygnal import Signal

from ..classes import CLASSES
from ..preprocess import InputError
from ._charts import embed
from ._devices import device_picker
from ._jobs import fit_dock, Progress, RunControls, notify_error, stream, wrapped_label
from ._plots import ConfusionPlot, TrainingPlot, theme_colors
from ._state import STATE
from ._kept_model import KeptModel
from ._training_data import FolderData, LayerRows

KINDS = ("classifier", "autoencoder")
NO_DATA_MESSAGE = ("No training data. In 'Data', choose a folder or archive of labelled images (one sub-folder per "
                   "class) and press Load, or choose 'open layers', add image layers and give each a class; then "
                   "press Train again.")
FOLDER, LAYERS = "folder / archive", "open layers"
#: Defaults measured on 10 cells a class unlike the bundled model's training cells (docs/walkthrough.md):
#: 10 epochs, batch 16 and 3e-4 took it from 20 % to 95-100 % (1e-4 and batch 32: 90 %).
LR_FINETUNE, LR_SCRATCH, EPOCHS, BATCH = "0.0003", "0.001", 10, 16
SHUTDOWN_WAIT_S = 10.0
_RUN_NAMES: set[str] = set()
_WARM_UP: threading.Thread | None = None


def _friendly_error(exc: BaseException, request: dict) -> BaseException:
    """An out-of-memory error the engine did not turn into a message (data preparation, evaluation):
    an OrganelleError that says what to do."""
    from ..preprocess import OrganelleError

    if isinstance(exc, OrganelleError) or not (type(exc).__name__ == "OutOfMemoryError"
                                                or "out of memory" in str(exc).lower()):
        return exc
    config = request["config"]
    new = OrganelleError(f"The device ({config.device}) ran out of memory while training with batch size "
                         f"{config.batch_size}. Lower the batch size, or choose 'cpu' in Device, then press Train "
                         "again. Nothing was saved.")
    new.__cause__ = exc
    return new


def _train_job(request: dict, report, stop):
    """The helper thread's body (``recipes.fine_tune``): errors travel in the outcome, shown in the GUI."""
    from ..recipes import FineTuneOutcome, fine_tune

    try:
        return fine_tune(**request, callback=report, should_stop=stop)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the GUI as a notification
        return FineTuneOutcome(kind=request["kind"], error=_friendly_error(exc, request))


def unique_run_name(kind: str) -> str:
    """'fine-tuned classifier 14:32', distinct within this napari session ('... 14:32 (2)')."""
    base = name = f"fine-tuned {kind} {time.strftime('%H:%M')}"
    i = 1
    while name in _RUN_NAMES:
        i += 1
        name = f"{base} ({i})"
    _RUN_NAMES.add(name)
    return name


def warm_up_training() -> threading.Thread:
    """Import the training machinery (torch._dynamo, ~2 s, through the first optimizer) in a background
    thread once per process, when the dock opens: over before the user presses Train."""
    global _WARM_UP

    def imports():
        import torch._dynamo  # noqa: F401

        from .. import datasets, recipes, training  # noqa: F401

    if _WARM_UP is None:
        _WARM_UP = threading.Thread(target=imports, name="organelle-warm-up", daemon=True)
        _WARM_UP.start()
    return _WARM_UP


class FinetuneWidget(Container):
    """Fine-tune the classifier or the autoencoder on your own images, with live curves."""

    training_finished = Signal(object)  # the recipes.FineTuneOutcome (None when the run was aborted)
    dataset_loaded = Signal(object)     # the LabelledImages loaded from the path (None on error)

    def __init__(self, napari_viewer) -> None:
        self.viewer = napari_viewer
        warm_up_training()
        # -- what to train
        self.kind = ComboBox(label="Train", choices=KINDS, tooltip="The organelle classifier or the autoencoder.")
        self.start_from = ComboBox(label="Start from", choices=self._start_choices,
                                   tooltip="Fine-tune the model the other docks use now, or train a new one.")
        self.freeze = CheckBox(text="freeze backbone (train the head only)",
                               tooltip="Faster and safer with few images: only the last layer learns.")
        self.keep_classes = CheckBox(text="keep classes without images here", value=True, tooltip=(
            "On: the result still predicts all the active model's classes (plus new ones). Off: only the classes "
            "in your data."))
        # -- data
        self.source = RadioButtons(label="Data", choices=[FOLDER, LAYERS], value=FOLDER, orientation="horizontal")
        self.folder = FolderData(kind=lambda: self.kind.value)
        self.layer_rows = LayerRows(napari_viewer)
        self.val_fraction = FloatSpinBox(label="Validation", min=0.05, max=0.5, step=0.05, value=0.2,
                                         tooltip="Fraction of each class held out to pick the best epoch.")
        # -- settings
        self.epochs = SpinBox(label="Epochs", min=1, max=1000, value=EPOCHS)
        self.batch = SpinBox(label="Batch size", min=1, max=1024, value=BATCH)
        self.lr = LineEdit(label="Learning rate", value=LR_FINETUNE, tooltip=(
            f"Default {LR_FINETUNE} when starting from the active model (a gentle fine-tune) and {LR_SCRATCH} "
            "from scratch. A value you type is kept."))
        self._lr_auto = LR_FINETUNE
        self.device = device_picker("training")
        self.controls = RunControls("Train")
        self.train_button = self.controls.button
        self.batch_bar = ProgressBar(value=0, max=1, visible=False)
        # -- results
        self.plot, self.confusion_plot = TrainingPlot(), ConfusionPlot()
        bg, fg = theme_colors(napari_viewer)
        self.plot.set_colors(bg, fg)
        self.confusion_plot.set_colors(bg, fg)
        plots = Container(labels=False)
        embed(plots, self.plot)
        self.log = TextEdit(value="")
        self.log.read_only = True
        self.result = wrapped_label("No model trained yet.")
        confusion = Container(labels=False)
        embed(confusion, self.confusion_plot)
        self.kept = KeptModel(log=lambda text: setattr(self.log, "value", self.log.value + "\n" + text),
                              running=lambda: self.is_running)
        self.body = Container(widgets=[self.kind, self.start_from, self.freeze, self.keep_classes, self.source,
                                       self.folder, self.layer_rows, self.val_fraction, self.epochs, self.batch, self.lr,
                                       self.device, self.controls, self.batch_bar, plots, self.log, self.result,
                                       confusion, self.kept])
        super().__init__(labels=False)
        fit_dock(self, self.body, 280)
        self.log.native.setMaximumHeight(96)
        self.last_run = None  # the latest run's outcome, whatever it was
        self._docked = False
        self.kind.changed.connect(self._on_kind_changed)
        self.start_from.changed.connect(self._on_kind_changed)
        self.source.changed.connect(self._on_source_changed)
        self.folder.loaded.connect(self.dataset_loaded.emit)
        self.train_button.changed.connect(self._clicked)
        self.native_parent_changed.connect(self._on_parent_changed)
        STATE.changed.connect(self._on_state_changed)
        self._on_kind_changed()
        self._on_source_changed()

    # ------------------------------------------------------------------ controls
    def reset_choices(self, *args) -> None:  # napari calls this when layers change
        self.body.reset_choices(*args)

    def _start_choices(self, _):
        active = getattr(STATE.peek(self.kind.value), "name", None) or f"bundled-{self.kind.value}"
        return [(f"active model ({active})", "active"), ("scratch (random weights)", "scratch")]

    @property
    def is_running(self) -> bool:
        return self.controls.busy

    @property
    def worker(self):
        return self.controls.job.worker if self.controls.busy else None

    def _on_state_changed(self, kind: str = "") -> None:
        try:
            self.start_from.reset_choices()
            self.layer_rows.set_kind(self.kind.value, getattr(STATE.peek("classifier"), "classes", None))
            self.kept.refresh()
        except RuntimeError:  # this dock was closed; STATE lives on
            STATE.changed.disconnect(self._on_state_changed)

    def _on_kind_changed(self, *_) -> None:
        clf, from_model = self.kind.value == "classifier", self.start_from.value == "active"
        self.start_from.reset_choices()
        self.freeze.enabled = self.keep_classes.enabled = clf and from_model
        self.layer_rows.set_kind(self.kind.value, getattr(STATE.peek("classifier"), "classes", None) or CLASSES)
        if not self.is_running:
            self.plot.reset(self.kind.value)
        lr = LR_FINETUNE if from_model else LR_SCRATCH  # the default follows "Start from", unless one was typed
        if self.lr.value.strip() in ("", self._lr_auto):
            self.lr.value = self._lr_auto = lr
        if not self.is_running:  # a folder that failed for one kind may suit the other (one class)
            self.folder.retry_failed()

    def _on_source_changed(self, *_) -> None:
        folder = self.source.value == FOLDER
        self.folder.visible = folder
        self.layer_rows.visible = not folder

    def set_data_path(self, path, load: bool = False) -> None:
        self.source.value = FOLDER
        self.folder.set_path(path, load=load)

    def add_layer_row(self, layer, label: str | None = None, dna="suggest"):
        self.source.value = LAYERS
        return self.layer_rows.add_layer_row(layer, label=label, dna=dna)

    def build_request(self) -> dict:
        """The settings and data as ``recipes.fine_tune`` arguments, gathered in the GUI thread (InputError for
        what is missing). ``init`` "active" is resolved in the worker (loading reads the disk)."""
        from ..training import TrainConfig

        kind, from_model = self.kind.value, self.start_from.value == "active"
        if self.source.value == FOLDER:
            if not (data := self.folder.data()):
                raise InputError(NO_DATA_MESSAGE)
        else:
            data = self.layer_rows.dataset()
        try:
            lr = float(self.lr.value.strip())
        except ValueError:
            lr = float("nan")
        if not lr > 0:
            raise InputError(f"The learning rate {self.lr.value!r} is not a positive number; use e.g. {LR_FINETUNE}.")
        if lr > 1:
            raise InputError(f"A learning rate of {lr:g} is far too large for these models (AdamW); use "
                             f"{LR_FINETUNE} to fine-tune, {LR_SCRATCH} from scratch, 0.01 at most.")
        active = STATE.peek(kind)
        config = TrainConfig(epochs=int(self.epochs.value), batch_size=int(self.batch.value), lr=lr,
                             # CPU threads: chosen for the load as the training runs, leaving a core
                             # to napari's GUI thread (see widgets/__init__.py, napari_organelle._threads)
                             device=self.device.value, num_threads=None,
                             freeze_backbone=bool(kind == "classifier" and from_model and self.freeze.value))
        return {"source": data, "kind": kind, "config": config, "init": "active" if from_model else None,
                "val_fraction": float(self.val_fraction.value), "keep_classes": self.keep_classes.value,
                "size": getattr(active, "input_size", None), "arch": getattr(active, "arch", None)}

    # ------------------------------------------------------------------ what Train does
    def _clicked(self, *_) -> None:
        if self.is_running:
            self.controls.stop("Stopping after the current batch; the best weights are kept.")
            return
        try:
            req = self.build_request()
        except Exception as exc:  # noqa: BLE001 - shown to the user, never escapes into Qt
            notify_error(exc, "Fine-tuning")
            return
        self.start(req)

    def start(self, req: dict):
        """Start a training run (``recipes.fine_tune`` arguments, as ``build_request`` gives); returns the Job."""
        kind, config = req["kind"], req["config"]
        self.last_run = None
        self.plot.reset(kind)
        self.confusion_plot.clear()
        self.confusion_plot.setVisible(kind == "classifier")
        self.batch_bar.visible, self.batch_bar.value = True, 0
        self.log.value = (f"{kind}: {config.epochs} epochs, batch {config.batch_size}, lr {config.lr:g}, device "
                          f"{config.device}, from {'the active model' if req.get('init') else 'scratch'}")
        self.result.value = "Training ..." + (f" Until it gives a new model, Save as... / Use this model act on "
                                              f"{self.kept.outcome.name}." if self.kept.outcome else "")

        def work(job):
            if req.get("init") == "active":  # resolved here: loading the bundled model reads the disk
                req["init"] = STATE.get_active(kind)
            events = stream(lambda report: _train_job(req, report, job.stop), job)
            try:
                while True:
                    ev = next(events)
                    yield ev
                    if ev is not None and not hasattr(ev, "batch"):  # an EpochEvent
                        yield Progress(int(ev.epoch), int(ev.epochs))
            except StopIteration as end:
                return end.value

        job = self.controls.start(work, desc=f"Fine-tuning the {kind}", on_done=self._on_done,
                                  on_yield=self._on_event, on_finished=self._on_finished, what="Fine-tuning",
                                  message="", keep_on_stop=True, activity=True)
        self.kept.refresh()
        return job

    def _on_event(self, ev) -> None:
        if hasattr(ev, "batch"):  # BatchEvent
            self.batch_bar.max, self.batch_bar.value = max(1, int(ev.batches)), min(int(ev.batch), int(ev.batches))
            return
        from ..training import format_epoch

        self.plot.add_epoch(ev)
        self.log.value += "\n" + format_epoch(ev)

    def _on_done(self, outcome) -> None:
        self.last_run, prev = outcome, self.kept.outcome
        kept = f"\nSave as... / Use this model still act on the earlier result, {prev.name}." if prev else ""
        res = outcome.result
        if outcome.error is not None:
            self.result.value = f"Training failed: {outcome.error}{kept}"
            self.log.value += f"\nFailed: {outcome.error}"
            notify_error(outcome.error, "Fine-tuning")
            return
        if res is None:
            self.result.value = f"Stopped before training began; nothing to keep.{kept}"
            return
        if res.baseline:
            b = res.baseline
            self.plot.set_baseline(b.get("val_loss"), b.get("val_psnr" if res.kind == "autoencoder" else "val_accuracy"))
        if outcome.confusion is not None:
            self.confusion_plot.show_matrix(outcome.confusion, outcome.classes, "validation set")
        text = outcome.summary()
        if outcome.has_new_model:
            outcome.name = unique_run_name(outcome.kind)
            self.kept.offer(outcome)
            text += f"\nSave as... / Use this model act on it ({outcome.name})."
        else:
            text += kept
        if outcome.warning:
            from napari.utils.notifications import show_warning

            text = f"<b>Warning:</b> {outcome.warning}\n{text}"
            show_warning(outcome.warning)
        self.result.value = text.replace("\n", "<br>")
        self.log.value += "\n" + text.replace("<b>", "").replace("</b>", "")

    def _on_finished(self) -> None:
        try:
            self.batch_bar.visible = False
            self.kept.refresh()
        except RuntimeError:  # pragma: no cover - the dock was deleted meanwhile
            return
        self.training_finished.emit(self.last_run)

    # ------------------------------------------------------------------ closing stops training
    def _shutdown(self, wait_s: float = SHUTDOWN_WAIT_S) -> None:
        job = self.controls.job
        if job is not None:
            job.stop.set()
            job.worker.quit()
            job.done.wait(wait_s)

    def _on_parent_changed(self, parent) -> None:
        # napari's dock close button un-parents the dock's widget (remove_dock_widget): stop then
        if parent is not None:
            self._docked = True
        elif self._docked:
            self._shutdown()

    def close(self) -> None:
        self._shutdown()
        super().close()

