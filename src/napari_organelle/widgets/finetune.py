"""The "Fine-tune models" dock: train the classifier or the autoencoder on the user's own images.

Data come from a labelled folder / archive (``datasets.load_labelled``) or from open image layers
that the user assigns to classes. Training runs in a napari ``thread_worker`` (one worker thread);
the engine's callback events cross to the GUI thread through a Qt signal of a small relay object
(queued connection), so no widget is ever touched from the worker. Stop is cooperative: a
``threading.Event`` passed to ``training.train(should_stop=...)``; the engine keeps the best weights.

The model in use is never modified: the engine deep-copies ``init``; only "Use this model" swaps the
active model in ``STATE`` (the other docks listen to ``STATE.changed``).

Save as... / Use this model act on the last run that produced a new model (``self.outcome``): a new
run replaces it only when it succeeds with weights to keep, so a failed, stopped or unimproved run
never loses an unsaved earlier result. Each kept result gets a distinct name ("fine-tuned classifier
14:32"); saving the result that is in use renames the active model after its file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt, Signal
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..classes import CLASSES
from ..preprocess import InputError
from ._common import notify_error
from ._devices import DeviceComboBox
from ._layer_table import LayerTableMixin
from ._plots import ConfusionPlot, TrainingPlot, theme_colors
from ._state import STATE
from ._train_job import (  # noqa: F401 - the job's names stay importable from here
    DEFAULT_INPUT_SIZE,
    NO_DATA_MESSAGE,
    TrainOutcome,
    TrainRequest,
    _friendly_error,
    _job,
    _load_job,
    check_classifier_data,
    run_training,
)

logger = logging.getLogger(__name__)

KINDS = ("classifier", "autoencoder")
#: Default learning rates: gentle when fine-tuning the active model (a larger one can make it
#: worse), larger from scratch. A value the user typed is never replaced.
LR_FINETUNE = "0.0001"
LR_SCRATCH = "0.001"

_RUN_NAMES: set[str] = set()


def unique_run_name(kind: str) -> str:
    """'fine-tuned classifier 14:32', distinct within this napari session ('... 14:32 (2)')."""
    base = f"fine-tuned {kind} {time.strftime('%H:%M')}"
    name, i = base, 1
    while name in _RUN_NAMES:
        i += 1
        name = f"{base} ({i})"
    _RUN_NAMES.add(name)
    return name


#: Seconds the GUI waits for a stopped training to wind down when napari or the dock closes.
SHUTDOWN_WAIT_S = 10.0


_WARM_UP: threading.Thread | None = None


def _import_training_machinery() -> None:
    try:
        import torch._dynamo  # noqa: F401 - what torch.optim imports on its first optimizer
        from .. import datasets, training  # noqa: F401
    except Exception:  # pragma: no cover - the training run reports real problems itself
        logger.debug("warming up the training imports failed", exc_info=True)


def warm_up_training() -> threading.Thread:
    """Import the training machinery in a background thread (once per process) when the dock opens.

    The first ``torch.optim`` optimizer imports ``torch._dynamo`` (and sympy): about 2 s, during
    which the importing thread holds the GIL for stretches of up to ~300 ms. Done at the start of
    the first training run, that froze napari's event loop; done when the dock opens, it is over by
    the time the user has chosen data and pressed Train. Returns the (possibly finished) thread.
    """
    global _WARM_UP
    if _WARM_UP is None:
        _WARM_UP = threading.Thread(target=_import_training_machinery, name="organelle-warm-up",
                                    daemon=True)
        _WARM_UP.start()
    return _WARM_UP


def _notify_error(exc: BaseException, what: str = "Fine-tuning") -> None:
    """User-fixable errors -> napari warning with their message; others -> short error + traceback."""
    notify_error(exc, what)


# ==================================================================================================
# Qt plumbing
# ==================================================================================================
class _Relay(QObject):
    """Carries engine events from the worker thread to the GUI thread (queued connections)."""

    event = Signal(object)
    message = Signal(str)


def _worker_classes():
    from napari.qt.threading import FunctionWorker

    class TrainWorker(FunctionWorker):
        """A FunctionWorker whose quit() (also napari's task cancel on close) sets the stop event."""

        stop_event: threading.Event | None = None

        def quit(self) -> None:
            if self.stop_event is not None:
                self.stop_event.set()
            super().quit()

    return TrainWorker


class _RunningJob:
    """Handles of one training run; kept apart from the widget so shutdown works after its deletion."""

    def __init__(self, worker, stop: threading.Event, done: threading.Event, relay: _Relay, pbar=None):
        self.worker, self.stop, self.done, self.relay, self.pbar = worker, stop, done, relay, pbar

    def shutdown(self, wait_s: float = SHUTDOWN_WAIT_S) -> bool:
        """Ask the training to stop (keeping nothing) and wait up to ``wait_s`` for the thread."""
        self.stop.set()
        try:
            self.worker.quit()
        except RuntimeError:  # pragma: no cover - Qt object already gone
            pass
        finished = self.done.wait(wait_s) if wait_s else self.done.is_set()
        if self.pbar is not None:
            try:
                self.pbar.close()
            except Exception:  # pragma: no cover
                pass
            self.pbar = None
        return finished


# ==================================================================================================
# The dock
# ==================================================================================================
class FinetuneWidget(LayerTableMixin, QWidget):
    """Fine-tune the classifier or the autoencoder on your own images, with live curves."""

    #: Emitted in the GUI thread when a run ends: the TrainOutcome, or None when it was aborted.
    training_finished = Signal(object)
    #: Emitted when a folder / archive has been loaded (the LabelledImages, or None on error).
    dataset_loaded = Signal(object)

    def __init__(self, napari_viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.outcome: TrainOutcome | None = None   # what Save as... / Use this model act on
        self.last_run: TrainOutcome | None = None  # the latest run's outcome, whatever it was
        self.dataset = None                       # LabelledImages loaded from the path
        self.dataset_path: str | None = None
        self.saved_path: Path | None = None
        self.used_model = None                    # the LoadedModel made active by "Use this model"
        self._used_outcome: TrainOutcome | None = None  # ... and the outcome it was made from
        self._lr_auto: str | None = None          # the learning rate the dock filled in itself
        self._load_error_path: str | None = None  # a path whose loading failed (retried on kind change)
        self._job: _RunningJob | None = None
        self._load_worker = None
        self._was_docked = False
        self._checkpoint_cache: dict | None = None

        warm_up_training()
        self._build_ui()
        self._connect_viewer()
        self._on_kind_changed()

        # Closing napari / the dock must stop training: several routes, all idempotent.
        # The callbacks close over a holder, not over self: they must work after the widget is gone
        # and must not keep it (and through it the viewer) alive.
        holder = self._job_holder = [None]

        def _stop_held_job(*_):
            job = holder[0]
            if job is not None:
                job.shutdown()

        self.destroyed.connect(_stop_held_job)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(_stop_held_job)
        STATE.changed.connect(self._on_state_changed)

    # ---------------------------------------------------------------------------------------------
    # UI
    def _build_ui(self) -> None:
        # Everything sits in a scroll area: the dock is taller than many screens.
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        inner = QWidget()
        self.scroll_area.setWidget(inner)
        outer.addWidget(self.scroll_area)
        root = QVBoxLayout(inner)
        root.setContentsMargins(4, 4, 4, 4)

        # --- model
        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.kind_combo = QComboBox()
        self.kind_combo.addItems(list(KINDS))
        self.kind_combo.setToolTip("Which model to train: the organelle classifier or the per-plane autoencoder.")
        form.addRow("Model", self.kind_combo)
        self.start_combo = QComboBox()
        self.start_combo.addItem("active model", "active")
        self.start_combo.addItem("scratch (random weights)", "scratch")
        self.start_combo.setToolTip("Fine-tune the model the other docks use now, or train a new one.")
        form.addRow("Start from", self.start_combo)
        self.freeze_check = QCheckBox("Freeze backbone (train only the class head)")
        self.freeze_check.setToolTip("Faster and safer with few images; only the last layer learns.")
        form.addRow(self.freeze_check)
        self.keep_classes_check = QCheckBox("Keep the model's classes that have no images here")
        self.keep_classes_check.setChecked(True)
        self.keep_classes_check.setToolTip(
            "On: the fine-tuned model still predicts all of the active model's classes (plus any new "
            "ones). Off: it predicts only the classes in your data.")
        form.addRow(self.keep_classes_check)
        root.addWidget(box)

        # --- data
        dbox = QGroupBox("Training data")
        dlay = QVBoxLayout(dbox)
        self.data_tabs = QTabWidget()
        # folder / archive tab
        ftab = QWidget()
        flay = QVBoxLayout(ftab)
        row = QHBoxLayout()
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("folder with one sub-folder per class (autoencoder: any folder of "
                                          "images), or .zip / .tgz")
        row.addWidget(self.path_edit)
        self.folder_button = QPushButton("Folder...")
        self.archive_button = QPushButton("Archive...")
        row.addWidget(self.folder_button)
        row.addWidget(self.archive_button)
        flay.addLayout(row)
        row2 = QHBoxLayout()
        self.load_button = QPushButton("Load")
        self.load_button.setToolTip("Read the images now and show the counts per class (Train also loads).")
        row2.addWidget(self.load_button)
        row2.addStretch(1)
        flay.addLayout(row2)
        self.data_summary = QPlainTextEdit()
        self.data_summary.setReadOnly(True)
        self.data_summary.setMaximumHeight(110)
        self.data_summary.setPlaceholderText("Counts per class, skipped files and warnings appear here.")
        flay.addWidget(self.data_summary)
        self.data_tabs.addTab(ftab, "Folder / archive")
        self.data_tabs.addTab(self._build_layers_tab(), "Open layers")
        dlay.addWidget(self.data_tabs)
        vrow = QFormLayout()
        self.val_spin = QDoubleSpinBox()
        self.val_spin.setRange(0.05, 0.5)
        self.val_spin.setSingleStep(0.05)
        self.val_spin.setDecimals(2)
        self.val_spin.setValue(0.2)
        self.val_spin.setToolTip("Fraction of each class held out to pick the best epoch and to score it.")
        vrow.addRow("Validation fraction", self.val_spin)
        dlay.addLayout(vrow)
        root.addWidget(dbox)

        # --- settings
        sbox = QGroupBox("Settings")
        sform = QFormLayout(sbox)
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 1000)
        self.epochs_spin.setValue(10)
        sform.addRow("Epochs", self.epochs_spin)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 1024)
        self.batch_spin.setValue(32)
        sform.addRow("Batch size", self.batch_spin)
        self.lr_edit = QLineEdit(LR_SCRATCH)
        self._lr_auto = LR_SCRATCH
        self.lr_edit.setToolTip(
            f"Learning rate. Default {LR_FINETUNE} when starting from the active model (fine-tuning "
            f"gently; a larger one can make it worse) and {LR_SCRATCH} from scratch. A value you type "
            "is kept.")
        sform.addRow("Learning rate", self.lr_edit)
        self.device_combo = DeviceComboBox()
        sform.addRow("Device", self.device_combo)
        root.addWidget(sbox)
        self._settings_boxes = (box, dbox, sbox)

        # --- run
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip("Start training; press again (Stop) to stop and keep the best epoch.")
        root.addWidget(self.train_button)
        pform = QFormLayout()
        self.epoch_bar = QProgressBar()
        self.epoch_bar.setFormat("epoch %v / %m")
        self.epoch_bar.setRange(0, 1)
        self.epoch_bar.setValue(0)
        self.batch_bar = QProgressBar()
        self.batch_bar.setFormat("batch %v / %m")
        self.batch_bar.setRange(0, 1)
        self.batch_bar.setValue(0)
        pform.addRow("Epochs", self.epoch_bar)
        pform.addRow("Batches", self.batch_bar)
        root.addLayout(pform)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        root.addWidget(self.status_label)

        self.plot = TrainingPlot()
        self.confusion_plot = ConfusionPlot()
        bg, fg = theme_colors(self.viewer)
        self.plot.set_colors(bg, fg)
        self.confusion_plot.set_colors(bg, fg)
        root.addWidget(self.plot)

        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log.setMaximumHeight(120)
        self.log.setPlaceholderText("One line per epoch.")
        root.addWidget(self.log)

        # --- result
        rbox = QGroupBox("Result")
        rlay = QVBoxLayout(rbox)
        self.result_label = QLabel("No model trained yet.")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        rlay.addWidget(self.result_label)
        rlay.addWidget(self.confusion_plot)
        self.target_label = QLabel("")
        self.target_label.setWordWrap(True)
        self.target_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.target_label.setToolTip("The model that Save as... and Use this model act on.")
        rlay.addWidget(self.target_label)
        brow = QHBoxLayout()
        self.save_button = QPushButton("Save as...")
        self.save_button.setToolTip("Save the best weights as a .pt checkpoint (default: your model folder).")
        self.use_button = QPushButton("Use this model")
        self.use_button.setToolTip("Make the classify / reconstruct docks use the fine-tuned model.")
        brow.addWidget(self.save_button)
        brow.addWidget(self.use_button)
        rlay.addLayout(brow)
        root.addWidget(rbox)
        self._set_result_buttons(False)
        self._update_target_label()

        # --- connections
        self.kind_combo.currentIndexChanged.connect(self._on_kind_changed)
        self.start_combo.currentIndexChanged.connect(self._on_kind_changed)
        self.folder_button.clicked.connect(self._browse_folder)
        self.archive_button.clicked.connect(self._browse_archive)
        self.load_button.clicked.connect(self.load_dataset)
        self.path_edit.returnPressed.connect(self.load_dataset)
        self.train_button.clicked.connect(self._on_train_clicked)
        self.save_button.clicked.connect(self.save_as)
        self.use_button.clicked.connect(self.use_model)

    # ---------------------------------------------------------------------------------------------
    # state helpers
    @property
    def kind(self) -> str:
        return self.kind_combo.currentText()

    @property
    def is_running(self) -> bool:
        return self._job is not None

    @property
    def worker(self):
        return self._job.worker if self._job is not None else None

    def _active_name(self, kind: str) -> str:
        loaded = STATE.peek(kind)
        return getattr(loaded, "name", None) or "bundled model"

    def _model_classes(self) -> list[str]:
        loaded = STATE.peek("classifier")
        classes = list(getattr(loaded, "classes", None) or CLASSES)
        return classes

    def _on_state_changed(self, kind: str = "") -> None:
        try:
            self.start_combo.setItemText(0, f"active model ({self._active_name(self.kind)})")
            self._refresh_class_items()
            self.target_label.setText(self.target_text())
        except RuntimeError:  # pragma: no cover - widget deleted while STATE still emits
            pass

    def _on_kind_changed(self, *_) -> None:
        clf = self.kind == "classifier"
        from_model = self.start_combo.currentData() == "active"
        self.freeze_check.setEnabled(clf and from_model)
        self.keep_classes_check.setEnabled(clf and from_model)
        self.layers_table.setColumnHidden(self.COL_CLASS, not clf)
        self.start_combo.setItemText(0, f"active model ({self._active_name(self.kind)})")
        if not self.is_running:
            self.plot.reset(self.kind)
        # the default learning rate follows "Start from", unless the user typed one
        lr = LR_FINETUNE if from_model else LR_SCRATCH
        if self.lr_edit.text().strip() in ("", self._lr_auto):
            self.lr_edit.setText(lr)
            self._lr_auto = lr
        # a folder that could not be loaded for one kind may suit the other (one class: autoencoder)
        path = self.path_edit.text().strip()
        if path and path == self._load_error_path and self._load_worker is None and not self.is_running:
            self.load_dataset()

    def _set_result_buttons(self, enabled: bool) -> None:
        self.save_button.setEnabled(enabled)
        self.use_button.setEnabled(enabled)

    def _set_running_ui(self, running: bool) -> None:
        for b in self._settings_boxes:
            b.setEnabled(not running)
        self.train_button.setEnabled(True)
        self.train_button.setText("Stop" if running else "Train")
        # the buttons act on the kept result (self.outcome), which a new run does not touch
        self._set_result_buttons(self.outcome is not None)

    def target_text(self) -> str:
        """Which model Save as... / Use this model act on (shown above the buttons)."""
        o = self.outcome
        if o is None:
            return "No model to save or use yet: train one first."
        res = o.result
        best = res.best_event
        score = ""
        if best is not None and best.val_acc is not None:
            score = f", val accuracy {best.val_acc:.1%}"
        elif best is not None and best.val_psnr is not None:
            score = f", val PSNR {best.val_psnr:.1f} dB"
        state = []
        if self.saved_path is not None:
            state.append(f"saved as {self.saved_path}")
        else:
            state.append("not saved yet")
        if self._used_outcome is o and STATE.peek(o.kind) is self.used_model and self.used_model is not None:
            state.append("in use")
        if self.is_running:
            state.append("a new run replaces it only if it gives a new model")
        return (f"Save as... / Use this model act on: {o.name} (best epoch {res.best_epoch}{score}; "
                + "; ".join(state) + ").")

    def _update_target_label(self) -> None:
        try:
            self.target_label.setText(self.target_text())
        except RuntimeError:  # pragma: no cover - widget deleted
            pass

    # ---------------------------------------------------------------------------------------------
    # data: folder / archive
    def _browse_folder(self) -> None:
        start = self.path_edit.text().strip() or str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Folder of labelled images", start)
        if path:
            self.set_data_path(path, load=True)

    def _browse_archive(self) -> None:
        start = self.path_edit.text().strip() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Archive of labelled images", start,
            "Archives (*.zip *.tgz *.tar.gz *.tar *.tar.bz2 *.tar.xz);;All files (*)")
        if path:
            self.set_data_path(path, load=True)

    def set_data_path(self, path, load: bool = False) -> None:
        self.path_edit.setText(os.fspath(path))
        self.data_tabs.setCurrentIndex(0)
        if load:
            self.load_dataset()

    def load_dataset(self, *_):
        """Read the folder / archive in a worker; returns the worker (None when no path)."""
        path = self.path_edit.text().strip()
        if not path:
            _notify_error(InputError("Type or choose a folder or archive of labelled images first."))
            return None
        from napari.qt.threading import create_worker

        self.load_button.setEnabled(False)
        self.data_summary.setPlainText(f"Loading {path} ...")
        worker = create_worker(_load_job, path, self.kind, _start_thread=False, _ignore_errors=True,
                               _progress={"desc": "Loading labelled images"})
        worker.returned.connect(self._on_dataset_loaded)
        worker.finished.connect(self._on_load_finished)
        self._load_worker = worker
        worker.start()
        return worker

    def _on_load_finished(self) -> None:
        self._load_worker = None
        try:
            self.load_button.setEnabled(True)
        except RuntimeError:  # the dock was closed while the folder was loading
            pass

    def _on_dataset_loaded(self, payload) -> None:
        path, data, exc = payload
        self._load_error_path = path if exc is not None else None
        if exc is not None:
            self.dataset, self.dataset_path = None, None
            self.data_summary.setPlainText(f"Could not load {path}:\n{exc}")
            _notify_error(exc)
            self.dataset_loaded.emit(None)
            return
        self.dataset, self.dataset_path = data, path
        self.data_summary.setPlainText(self.describe_dataset(data))
        problems = list(data.warnings) + [f"{f}: {why}" for f, why in data.skipped[:1]]
        if problems:  # e.g. a class folder without images: say so where the user looks
            from napari.utils.notifications import show_warning

            extra = len(data.warnings) + len(data.skipped) - 1
            show_warning(f"Loaded {len(data.samples)} images from {path}, but: {problems[0]}"
                         + (f" (and {extra} more; see 'Training data')" if extra > 0 else ""))
        self.dataset_loaded.emit(data)

    @staticmethod
    def describe_dataset(data) -> str:
        counts = data.counts()
        lines = []
        if data.description:
            lines.append(str(data.description))
        n_cls = sum(1 for v in counts.values() if v)
        lines.append(f"{len(data.samples)} images in {n_cls} class{'' if n_cls == 1 else 'es'}"
                     + (" (with DNA)" if data.has_dna() else " (no DNA channel)") + ":")
        lines.append(", ".join(f"{c} {n}" for c, n in counts.items()))
        if data.skipped:
            lines.append(f"Skipped {len(data.skipped)} file(s):")
            lines.extend(f"  {f}: {why}" for f, why in data.skipped[:20])
            if len(data.skipped) > 20:
                lines.append(f"  ... and {len(data.skipped) - 20} more")
        for w in data.warnings:
            lines.append(f"Warning: {w}")
        return "\n".join(lines)

    # ---------------------------------------------------------------------------------------------
    # training
    def _on_train_clicked(self) -> None:
        if self.is_running:
            self.stop()
            return
        try:
            req = self.build_request()
        except Exception as exc:  # noqa: BLE001 - shown to the user, never escapes into Qt
            _notify_error(exc)
            return
        self.start(req)

    def build_request(self) -> TrainRequest:
        """Gather the settings and data in the GUI thread (raises InputError for what is missing)."""
        from ..training import TrainConfig

        kind = self.kind
        if self.data_tabs.currentIndex() == 0:
            path = self.path_edit.text().strip()
            if not path:
                raise InputError(NO_DATA_MESSAGE)
            data = self.dataset if (self.dataset is not None and self.dataset_path == path) else path
        else:
            if self.layers_table.rowCount() == 0:
                raise InputError(NO_DATA_MESSAGE)
            data = self.layers_dataset()
        try:
            lr = float(self.lr_edit.text().strip())
        except ValueError:
            lr = float("nan")
        if not (lr > 0 and np.isfinite(lr)):
            raise InputError(f"The learning rate {self.lr_edit.text()!r} is not a positive number; "
                             "use e.g. 0.001.")
        if lr > 1:
            raise InputError(f"A learning rate of {lr:g} is far too large for these models (AdamW); use "
                             "0.0001 to fine-tune, 0.001 from scratch, 0.01 at most.")
        from_model = self.start_combo.currentData() == "active"
        init = STATE.get_active(kind) if from_model else None
        config = TrainConfig(
            epochs=int(self.epochs_spin.value()),
            batch_size=int(self.batch_spin.value()),
            lr=lr,
            device=self.device_combo.device(),
            freeze_backbone=bool(kind == "classifier" and from_model and self.freeze_check.isChecked()),
            # CPU threads: chosen for the load as the training runs, leaving a core to napari's GUI
            # thread (torch's spinning OpenMP threads would stall it; see widgets/__init__.py)
            num_threads=None,
        )
        return TrainRequest(kind=kind, data=data, val_fraction=float(self.val_spin.value()), config=config,
                            init=init, keep_model_classes=self.keep_classes_check.isChecked())

    def start(self, req: TrainRequest):
        """Start a training run for ``req`` in a worker thread; returns the worker."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        # The kept result (self.outcome) stays usable: Save / Use act on it until this run gives a
        # new model. Only the display of the run is reset.
        self.last_run = None
        self.plot.reset(req.kind)
        self.confusion_plot.clear()
        self.confusion_plot.setVisible(req.kind == "classifier")  # no confusion matrix for an autoencoder
        self.log.clear()
        self.result_label.setText("Training ..." + (f" Until it gives a new model, Save as... / Use this model "
                                                    f"act on {self.outcome.name}." if self.outcome else ""))
        epochs = int(getattr(req.config, "epochs", 1))
        self.epoch_bar.setRange(0, epochs)
        self.epoch_bar.setValue(0)
        self.batch_bar.setRange(0, 1)
        self.batch_bar.setValue(0)
        self.log.appendPlainText(
            f"{req.kind}: {epochs} epochs, batch {req.config.batch_size}, lr {req.config.lr:g}, "
            f"device {self.device_combo.currentText()}, from "
            f"{getattr(req.init, 'name', None) or 'scratch'}")

        stop, done = threading.Event(), threading.Event()
        relay = _Relay()
        relay.event.connect(self._on_event)
        relay.message.connect(self._on_message)
        worker = create_worker(_job, req, relay, stop, done, _start_thread=False, _ignore_errors=True,
                               _worker_class=_worker_classes())
        worker.stop_event = stop
        pbar = progress(total=epochs, desc=f"Fine-tuning the {req.kind}")
        self._job = _RunningJob(worker, stop, done, relay, pbar)
        self._job_holder[0] = self._job
        worker.returned.connect(self._on_returned)
        worker.finished.connect(self._on_finished)
        self._set_running_ui(True)
        self._update_target_label()
        worker.start()
        return worker

    def stop(self) -> None:
        """Cooperative stop: the engine ends after the current batch and keeps the best weights."""
        if self._job is None:
            return
        self._job.stop.set()
        self.train_button.setText("Stopping ...")
        self.train_button.setEnabled(False)
        self.status_label.setText("Stopping after the current batch; the best weights are kept.")

    def _on_message(self, text: str) -> None:
        self.status_label.setText(text)

    def _on_event(self, ev) -> None:
        if self._job is None:
            return
        if hasattr(ev, "batch") and hasattr(ev, "batches"):
            batches = max(1, int(ev.batches))
            self.batch_bar.setRange(0, batches)
            self.batch_bar.setValue(min(batches, int(ev.batch)))
            phase = getattr(ev, "phase", "train")
            self.batch_bar.setFormat(f"{phase} batch %v / %m")
            return
        # EpochEvent
        epochs = max(1, int(getattr(ev, "epochs", self.epoch_bar.maximum())))
        self.epoch_bar.setRange(0, epochs)
        self.epoch_bar.setValue(min(epochs, int(ev.epoch)))
        self.plot.add_epoch(ev)
        try:
            from ..training import format_epoch

            line = format_epoch(ev)
        except Exception:  # pragma: no cover - keep the dock going whatever the formatter does
            line = f"epoch {ev.epoch}/{ev.epochs}: loss {ev.train_loss} val {ev.val_loss}"
        self.log.appendPlainText(line)
        if self._job.pbar is not None:
            try:
                self._job.pbar.update(1)
            except Exception:  # pragma: no cover
                pass

    def _on_returned(self, outcome: TrainOutcome) -> None:
        self.last_run = outcome
        prev = self.outcome
        kept = (f"\nSave as... / Use this model still act on the earlier result, {prev.name}."
                if prev is not None else "")
        if outcome.error is not None:
            self.result_label.setText(f"Training failed: {outcome.error}{kept}")
            self.log.appendPlainText(f"Failed: {outcome.error}")
            _notify_error(outcome.error)
            self._after_run()
            return
        res = outcome.result
        if res is None:
            self.result_label.setText(f"Stopped before training began; nothing to keep.{kept}")
            self.log.appendPlainText("Stopped before the first epoch.")
            self._after_run()
            return
        summary = self._summary(outcome)
        if res.history and not self.plot.epochs:  # events missed: draw from the history
            for ev in res.history:
                self.plot.add_epoch(ev)
        if getattr(res, "baseline", None):  # the starting model, the line an epoch had to beat
            b = res.baseline
            self.plot.set_baseline(b.get("val_loss"), b.get("val_psnr" if res.kind == "autoencoder" else "val_accuracy"))
        if outcome.confusion is not None:
            self.confusion_plot.show_matrix(outcome.confusion, outcome.classes, "validation set")
        if outcome.has_new_model:
            # a new model to keep: the buttons now act on it
            outcome.name = unique_run_name(outcome.kind)
            self.outcome = outcome
            self.saved_path = None
            self._checkpoint_cache = None
            summary += f"\nSave as... / Use this model act on it ({outcome.name})."
        else:
            summary += kept  # best epoch 0: the model is unchanged, nothing new to keep
        self.result_label.setText(summary)
        self.log.appendPlainText(summary)
        self._after_run()

    def _after_run(self) -> None:
        self._set_result_buttons(self.outcome is not None)
        self._update_target_label()

    @staticmethod
    def _scores(metrics) -> str:
        """'val accuracy 80.0% (val loss 0.52)' / 'val PSNR 24.9 dB (val loss 0.0012)' from an
        EpochEvent or a baseline dict."""
        get = metrics.get if isinstance(metrics, dict) else (lambda k: getattr(metrics, k, None))
        acc = get("val_accuracy") if isinstance(metrics, dict) else get("val_acc")
        psnr = get("val_psnr")
        loss = f"val loss {get('val_loss'):.4g}"
        if acc is not None:
            return f"val accuracy {acc:.1%} ({loss})"
        if psnr is not None:
            return f"val PSNR {psnr:.1f} dB ({loss})"
        return loss

    @staticmethod
    def _summary(o: TrainOutcome) -> str:
        res = o.result
        n_ep = len(res.history)
        base = getattr(res, "baseline", None)
        scores = FinetuneWidget._scores
        if res.best_epoch <= 0:
            if base is not None and n_ep:
                return ((f"Stopped after {n_ep} epoch(s). " if res.stopped else "")
                        + f"No epoch improved on the starting model ({o.started_from}: {scores(base)}) in "
                        f"{n_ep} epoch(s); it is unchanged, so there is nothing new to save or use. Try a "
                        "lower learning rate or more images.")
            if "diverged" in res.stop_reason:
                return f"{res.stop_reason[0].upper()}{res.stop_reason[1:]} Nothing to save."
            return (f"Stopped before the first epoch finished ({res.stop_reason}). The model is "
                    "unchanged; nothing to save.")
        parts = []
        if res.stopped:
            parts.append(f"Stopped after {n_ep} epoch(s): {res.stop_reason}.")
        else:
            parts.append(f"Finished: {res.stop_reason}.")
        best = res.best_event
        if base is not None:
            parts.append(f"Starting model ({o.started_from}): {scores(base)} → best epoch {res.best_epoch}: "
                         f"{scores(best) if best is not None else f'val loss {res.best_val_loss:.4g}'}.")
        else:
            parts.append(f"Best epoch {res.best_epoch}: "
                         f"{scores(best) if best is not None else f'val loss {res.best_val_loss:.4g}'}.")
        parts.append(f"{o.n_train} training / {o.n_val} validation images; {res.seconds:.0f} s on "
                     f"{res.device}.")
        return "\n".join(parts)

    def _on_finished(self) -> None:
        job = self._job
        self._job = None
        self._job_holder[0] = None
        if job is not None and job.pbar is not None:
            try:
                job.pbar.close()
            except Exception:  # pragma: no cover
                pass
        try:
            self._set_running_ui(False)
            self.status_label.setText("")
            self._update_target_label()
        except RuntimeError:  # pragma: no cover - widget already deleted
            return
        self.training_finished.emit(self.last_run)

    # ---------------------------------------------------------------------------------------------
    # results
    def _default_name(self) -> str:
        o = self.outcome
        kind = o.kind if o is not None else self.kind
        return f"finetuned-{kind}-{time.strftime('%Y%m%d-%H%M%S')}"

    def checkpoint(self) -> dict:
        """The checkpoint dict of the last result (training metadata and validation metrics)."""
        o = self.outcome
        if o is None or o.result is None:
            raise InputError("Train a model first (press Train); there is nothing to save yet.")
        if self._checkpoint_cache is None:
            res = o.result
            training_meta = {"name": o.name or self._default_name()}
            metrics = {}
            if o.val_accuracy is not None:
                metrics["val_accuracy"] = float(o.val_accuracy)
            self._checkpoint_cache = res.checkpoint(training=training_meta, metrics=metrics)
        return self._checkpoint_cache

    def save_as(self, *_, path=None) -> Path | None:
        """Ask for a file (default: the user model folder) and write the checkpoint atomically."""
        o = self.outcome  # the result being saved: a run may finish while the dialog is open
        try:
            ckpt = self.checkpoint()
            asked = path is None
            if asked:
                from ..checkpoints import user_models_dir

                folder = user_models_dir()
                # the models folder is where every dock and `napari-organelle models` look: make sure
                # the dialog opens there on a first install too
                folder.mkdir(parents=True, exist_ok=True)
                default = folder / f"{self._default_name()}.pt"
                path, _ = QFileDialog.getSaveFileName(self, "Save the fine-tuned model", str(default),
                                                      "napari-organelle model (*.pt)")
                if not path:
                    return None
            path = Path(path)
            if path.suffix != ".pt":
                path = path.with_name(path.name + ".pt")
                # the dialog checked the name as typed; the file written is NAME.pt
                if asked and path.exists() and not self._confirm_overwrite(path):
                    return None
            from ..checkpoints import write_checkpoint_dict

            out = write_checkpoint_dict(path, {**ckpt, "training": {**ckpt.get("training", {}),
                                                                    "name": path.stem}})
        except Exception as exc:  # noqa: BLE001
            _notify_error(exc)
            return None
        if self.outcome is not o:  # a newer result arrived meanwhile: it is not the one saved
            self._announce(f"Saved the previous result ({o.name}) to {out}; the new one is not saved yet",
                           f"Saved the previous fine-tuned {o.kind} ({o.name}) to {out}. The run that just "
                           "finished gave a new model, which is not saved yet.")
            self._update_target_label()
            return out
        self.saved_path = out
        renamed = self._rename_active_after_save(out)
        self._announce(f"Saved to {out}" + (f"; the active {o.kind} is now {out.stem}" if renamed else ""),
                       f"Saved the fine-tuned {o.kind} to {out}"
                       + (f"; the {o.kind} docks now show it as {out.stem}." if renamed else ""))
        self._update_target_label()
        return out

    def _confirm_overwrite(self, path: Path) -> bool:
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(self, "Replace model?", f"{path.name} already exists in {path.parent}. "
                                      "Replace it?")
        return answer == QMessageBox.StandardButton.Yes

    def _rename_active_after_save(self, path: Path) -> bool:
        """When the saved result is the active model ("Use this model" came first), give the active
        model the file's name and path (same weights). Returns True when it did."""
        o, used = self.outcome, self.used_model
        if used is None or self._used_outcome is not o or STATE.peek(o.kind) is not used:
            return False
        meta = dict(used.meta or {})
        meta["training"] = {**dict(meta.get("training") or {}), "name": path.stem}
        updated = dataclasses.replace(used, name=path.stem, path=path, meta=meta)
        self.used_model = updated
        STATE.set_active(o.kind, updated)
        return True

    def use_model(self, *_):
        """Make the fine-tuned model the active one (a fresh copy; the result stays untouched)."""
        try:
            from ..checkpoints import load_checkpoint

            o = self.outcome
            ckpt = self.checkpoint()
            name = self.saved_path.stem if self.saved_path is not None else (o.name or f"fine-tuned {o.kind}")
            loaded = load_checkpoint(ckpt, expected_kind=o.kind, name=name)
            if self.saved_path is not None:
                loaded.path = self.saved_path
            self.used_model, self._used_outcome = loaded, o
            STATE.set_active(o.kind, loaded)
        except Exception as exc:  # noqa: BLE001
            _notify_error(exc)
            return None
        unsaved = "" if self.saved_path is not None else " (not saved yet: Save as... keeps it)"
        self._announce(f"Now using {loaded.name} in the other docks{unsaved}.",
                       f"The {o.kind} docks now use {loaded.name}{unsaved}.")
        self._update_target_label()
        return loaded

    def _announce(self, log_line: str, notice: str) -> None:
        """Write ``log_line`` in the dock's log and show ``notice`` as a napari notification."""
        self.log.appendPlainText(log_line)
        from napari.utils.notifications import show_info

        show_info(notice)

    # ---------------------------------------------------------------------------------------------
    # shutdown
    def _shutdown(self, wait_s: float = SHUTDOWN_WAIT_S) -> None:
        job = self._job
        if job is not None:
            job.shutdown(wait_s)
        w = self._load_worker
        if w is not None:
            try:
                w.quit()
            except RuntimeError:  # pragma: no cover
                pass

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        self._shutdown()
        super().closeEvent(event)

    def event(self, ev) -> bool:
        # napari's dock close button un-parents the inner widget (remove_dock_widget): stop then.
        if ev.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._was_docked = True
            elif self._was_docked:
                self._shutdown()
        return super().event(ev)
