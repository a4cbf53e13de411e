"""Small parts shared by the docks: error notifications, a background-job runner with progress,
layer and model pickers, the probability chart, the results table and the class legend.

Nothing here imports torch; the core is imported lazily, when a model is first needed.
"""

from __future__ import annotations

import csv
import logging
import math
import threading
from typing import Callable

import numpy as np
from qtpy.QtCore import QObject, QRectF, Qt, Signal, Slot
from qtpy.QtGui import QColor, QFont, QPainter
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..classes import class_color
from ..preprocess import OrganelleError
from ._state import STATE

logger = logging.getLogger("napari_organelle")

LOAD_FROM_FILE = "Load from file..."


# --------------------------------------------------------------------------------------------
# errors


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, OrganelleError):
        return True
    try:
        from ..checkpoints import CheckpointError
    except Exception:  # pragma: no cover - core missing
        return False
    return isinstance(exc, CheckpointError)


def notify_error(exc: BaseException, what: str = "The operation") -> str:
    """Show ``exc`` in napari without a traceback dialog; return the message shown.

    Errors meant for the user (OrganelleError, CheckpointError) appear as a napari warning with their
    own message. Anything unexpected appears as one short error line; its traceback goes to the log.
    """
    from napari.utils.notifications import show_info, show_warning, show_error

    if isinstance(exc, InterruptedError):
        msg = f"{what} was stopped."
        show_info(msg)
        return msg
    if _is_user_error(exc):
        msg = str(exc)
        show_warning(msg)
        return msg
    if isinstance(exc, MemoryError):
        msg = f"{what} ran out of memory. Try a smaller image, fewer planes, or a crop."
    else:
        msg = f"{what} failed: {type(exc).__name__}: {exc}. The full traceback is in the log."
    logger.error("%s failed", what, exc_info=(type(exc), exc, exc.__traceback__))
    show_error(msg)
    return msg


# --------------------------------------------------------------------------------------------
# background jobs


class _ProgressRelay(QObject):
    """Carries progress(done, total) from a worker thread to the main thread (queued signal)."""

    progressed = Signal(int, int)

    def __init__(self, callback: Callable[[int, int], None]) -> None:
        super().__init__()
        self._callback = callback
        self.progressed.connect(self._deliver)

    @Slot(int, int)
    def _deliver(self, done: int, total: int) -> None:
        self._callback(done, total)


_RUNNING: "set[Job]" = set()
_QUIT_HOOKED = False


def _stop_all_jobs() -> None:
    """On application quit: ask every running job to stop and give it a moment to finish."""
    for job in list(_RUNNING):
        job.cancel()
    if _RUNNING:
        try:
            type(next(iter(_RUNNING)).worker).await_workers(msecs=5000)
        except Exception:  # pragma: no cover - best effort at exit
            pass


def _hook_quit() -> None:
    global _QUIT_HOOKED
    if _QUIT_HOOKED:
        return
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(_stop_all_jobs)
        _QUIT_HOOKED = True


class Job:
    """A function running in a napari ``thread_worker`` with progress and a stop request.

    ``fn(progress, stop)`` runs in the worker thread; ``progress(done, total)`` may be called from it;
    ``stop`` is a threading.Event set by :meth:`cancel`. Whatever ``fn`` raises is caught in the
    thread and handed to ``on_error`` in the main thread (so napari never shows a traceback dialog);
    its return value goes to ``on_done``. ``on_finished`` runs last in either case.
    """

    def __init__(self, fn, *, desc: str, on_done, on_error, on_finished=None, on_progress=None) -> None:
        from napari.qt.threading import create_worker
        from napari.utils import progress as napari_progress

        self.stop = threading.Event()
        self.cancelled = False
        self._started = False
        self._finished = False
        self._pbar = napari_progress(total=0, desc=desc)
        self._on_progress = on_progress
        self._relay = _ProgressRelay(self._progress_main)

        def _emit(done, total):
            self._relay.progressed.emit(int(done), int(total))

        def _work():
            try:
                return True, fn(_emit, self.stop)
            except Exception as exc:  # handed to on_error in the main thread
                return False, exc

        def _returned(out):
            ok, value = out
            try:
                if ok:
                    on_done(value)
                else:
                    on_error(value)
            except RuntimeError as exc:
                if "deleted" in str(exc):  # the dock was closed while the job ran: nothing to show
                    logger.info("result of %r dropped: its dock was closed", desc)
                else:
                    notify_error(exc, desc)
            except Exception as exc:  # a bug in a result handler must not crash napari
                notify_error(exc, desc)

        def _finished():
            self._finished = True
            _RUNNING.discard(self)
            self._pbar.close()
            if on_finished is not None:
                try:
                    on_finished()
                except RuntimeError:  # pragma: no cover - dock closed meanwhile
                    pass

        self.worker = create_worker(_work, _start_thread=False)
        self.worker.returned.connect(_returned)
        self.worker.finished.connect(_finished)

    def start(self) -> "Job":
        _hook_quit()
        _RUNNING.add(self)
        self._started = True
        self.worker.start()
        return self

    def cancel(self) -> None:
        self.cancelled = True
        self.stop.set()

    @property
    def running(self) -> bool:
        """True from start() until the worker has finished (also while its thread is still starting)."""
        return self._started and not self._finished

    def _progress_main(self, done: int, total: int) -> None:
        try:
            if total and self._pbar.total != total:
                self._pbar.total = total
            if done > self._pbar.n:
                self._pbar.update(done - self._pbar.n)
            if self._on_progress is not None:
                self._on_progress(done, total)
        except RuntimeError:  # its progress bar or dock was deleted (viewer closed): stop the work
            self.cancel()


class JobControls:
    """Mixin for a dock that runs one :class:`Job` at a time from a Run / Cancel pair and a progress bar.

    Call :meth:`_make_job_controls` while building the UI; it creates ``run_button``,
    ``cancel_button`` and ``progress_bar`` and connects the buttons to ``self.run`` and
    :meth:`cancel`. The dock shows messages with ``_show_message(text)``, which writes into the
    label named by ``message_label_attr``. ``cancel_message`` is what Cancel shows.
    """

    cancel_message = "Stopping..."
    message_label_attr = "summary"

    def _make_job_controls(self, run_text: str) -> QHBoxLayout:
        """Create the Run / Cancel buttons and the (hidden) progress bar; return the button row."""
        self._job: Job | None = None
        self.last_job: Job | None = None
        self.run_button = QPushButton(run_text)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        return buttons

    def _busy_job(self) -> Job | None:
        """The job still running, if any (``run`` returns it instead of starting another)."""
        if self._job is not None and self._job.running:
            return self._job
        return None

    def start_job(self, work, *, desc: str, on_done, error_title: str, message: str) -> Job:
        """Switch the controls to "running", show ``message`` and start ``work`` in a :class:`Job`."""
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setVisible(True)
        self.progress_bar.setRange(0, 0)
        self._show_message(message)
        job = Job(work, desc=desc, on_done=on_done,
                  on_error=lambda exc: self._show_message(notify_error(exc, error_title)),
                  on_finished=self._on_finished, on_progress=self._on_progress)
        self._job = self.last_job = job
        return job.start()

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self._show_message(self.cancel_message)

    def _on_progress(self, done: int, total: int) -> None:
        try:
            if total:
                self.progress_bar.setRange(0, total)
                self.progress_bar.setValue(done)
        except RuntimeError:  # the dock (or the whole viewer) was closed: nobody is waiting any more
            if self._job is not None:
                self._job.cancel()

    def _on_finished(self) -> None:
        try:
            self.run_button.setEnabled(True)
            self.cancel_button.setEnabled(False)
            self.progress_bar.setVisible(False)
        except RuntimeError:  # pragma: no cover - dock closed meanwhile
            pass
        self._job = None

    def _show_message(self, text: str) -> None:
        try:
            getattr(self, self.message_label_attr).setText(text)
        except RuntimeError:  # pragma: no cover - dock closed meanwhile
            pass


# --------------------------------------------------------------------------------------------
# layers


def layer_transform_kwargs(layer) -> dict:
    """Keyword arguments that place a new layer exactly over ``layer`` (same world transform)."""
    kw = {
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "rotate": np.asarray(layer.rotate),
        "shear": np.asarray(layer.shear),
        "affine": np.asarray(layer.affine.affine_matrix),
    }
    for attr in ("units", "axis_labels"):
        val = getattr(layer, attr, None)
        if val is not None:
            kw[attr] = tuple(str(v) for v in val)
    return kw


def yx_shape(layer) -> tuple[int, int]:
    """The (Y, X) shape of an image or labels layer (RGB layers: without the colour axis)."""
    shape = tuple(layer.data.shape)
    if getattr(layer, "rgb", False):
        shape = shape[:-1]
    return shape[-2:]


def current_plane_index(viewer, layer) -> tuple[int, ...]:
    """Index over the layer's leading (non-YX) data axes of the plane shown by the dims slider."""
    shape = tuple(layer.data.shape)
    if getattr(layer, "rgb", False):
        shape = shape[:-1]
    lead = shape[:-2]
    if not lead:
        return ()
    try:
        coords = layer.world_to_data(viewer.dims.point)
    except Exception:  # pragma: no cover - exotic transforms
        coords = [0] * len(shape)
    coords = list(coords)[: len(lead)]
    return tuple(int(min(max(round(float(c)), 0), n - 1)) for c, n in zip(coords, lead))


def find_layer(viewer, name: str):
    for layer in viewer.layers:
        if layer.name == name:
            return layer
    return None


class LayerCombo(QComboBox):
    """A combo box of the viewer's layers of one type, kept in step with the layer list."""

    NONE = "(none)"

    def __init__(self, viewer, layer_type, *, optional: bool = False, prefer=None, avoid=(), parent=None):
        super().__init__(parent)
        self._viewer = viewer
        self._type = layer_type
        self._optional = optional
        self._prefer = tuple(s.lower() for s in (prefer or ()))
        self._avoid = tuple(s.lower() for s in avoid)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(14)
        ev = viewer.layers.events
        for name in ("inserted", "removed", "moved", "reordered"):
            getattr(ev, name).connect(self._on_layers_changed)
        for layer in viewer.layers:
            layer.events.name.connect(self.refresh)
        self.refresh()

    def _on_layers_changed(self, event=None):
        value = getattr(event, "value", None)
        if value is not None and hasattr(value, "events"):
            try:
                value.events.name.connect(self.refresh)
            except Exception:  # pragma: no cover
                pass
        self.refresh()

    def layers(self):
        return [layer for layer in self._viewer.layers if isinstance(layer, self._type)]

    def _default(self, names: list[str]) -> str | None:
        if self._optional:
            for n in names:
                if self._prefer and any(p in n.lower() for p in self._prefer):
                    return n
            return self.NONE
        for n in names:
            if not any(a in n.lower() for a in self._avoid):
                return n
        return names[0] if names else None

    def refresh(self, event=None) -> None:
        try:
            current = self.currentText()
        except RuntimeError:  # the C++ widget is gone (dock closed)
            return
        names = [layer.name for layer in self.layers()]
        items = ([self.NONE] if self._optional else []) + names
        if items == [self.itemText(i) for i in range(self.count())]:
            return
        self.blockSignals(True)
        self.clear()
        self.addItems(items)
        target = current if current in items and current else self._default(names)
        if target is not None:
            self.setCurrentText(target)
        self.blockSignals(False)
        if self.currentText() != current:
            self.currentIndexChanged.emit(self.currentIndex())

    def layer(self):
        name = self.currentText()
        if not name or name == self.NONE:
            return None
        for layer in self.layers():
            if layer.name == name:
                return layer
        return None

    def set_layer(self, layer) -> None:
        self.setCurrentText(self.NONE if layer is None else layer.name)


# --------------------------------------------------------------------------------------------
# models


def model_card_text(loaded) -> str:
    """A short plain-language card: name, architecture, what data trained it, measured accuracy."""
    try:
        text = str(loaded.card)
    except Exception:  # pragma: no cover - card not available
        text = f"{getattr(loaded, 'name', 'model')} ({getattr(loaded, 'kind', '')})"
    meta = getattr(loaded, "meta", {}) or {}
    training = meta.get("training", {}) or {}
    data = str(training.get("data", ""))
    metrics = meta.get("metrics", {}) or {}
    extra = []
    if getattr(loaded, "kind", "") == "classifier" and "accuracy" not in text.lower():
        for key in ("test_accuracy", "val_accuracy"):
            if metrics.get(key) is not None:
                extra.append(f"{key.replace('_', ' ')}: {100 * float(metrics[key]):.1f} %")
                break
    if "simulat" in data.lower() and "simulat" not in text.lower():
        extra.append("trained on simulated cells")
    head = []
    if "simulat" in (text + data).lower():  # first, so a short dock never hides it
        head.append("These weights learned from simulated cells: check them on your own labelled "
                    "images (or fine-tune) before trusting them on real microscopy.")
    return "\n".join(head + [text] + extra)


class _RefreshingCombo(QComboBox):
    """A combo box that calls ``before_popup`` each time its list opens (to pick up new models)."""

    def __init__(self, before_popup, parent=None) -> None:
        super().__init__(parent)
        self._before_popup = before_popup

    def showPopup(self) -> None:  # noqa: N802 - Qt API
        try:
            self._before_popup()
        finally:
            super().showPopup()


class ModelPicker(QWidget):
    """Choose the active model of one kind: the store's models plus "Load from file...".

    The choice is shared through ``STATE`` (so the fine-tune dock's "Use this model" shows up here and
    the other docks agree); the card below says what the model is and what data trained it.
    """

    def __init__(self, kind: str, parent=None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.combo = _RefreshingCombo(self.refresh)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(16)
        self.card = QLabel()
        self.card.setWordWrap(True)
        self.card.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.card.setStyleSheet("color: #b0b8c0; font-size: 11px;")
        self.card.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        # The whole card stays readable in a short dock: it scrolls instead of being cut off.
        self.card_area = QScrollArea()
        self.card_area.setWidget(self.card)
        self.card_area.setWidgetResizable(True)
        self.card_area.setFrameShape(QFrame.Shape.NoFrame)
        self.card_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.card_area.setMaximumHeight(120)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.combo)
        lay.addWidget(self.card_area)
        self._infos: list = []
        self.refresh()
        self.combo.activated.connect(self._on_activated)
        STATE.changed.connect(self._on_state_changed)

    # -- items
    def refresh(self) -> None:
        try:
            from ..checkpoints import list_models

            self._infos = list(list_models(self.kind))
        except Exception as exc:  # the store could not be read: say so in the card, keep working
            logger.warning("could not list %s models: %s", self.kind, exc)
            self._infos = []
        self.combo.blockSignals(True)
        self.combo.clear()
        self._infos = [m for m in self._infos if not getattr(m, "error", None)]
        for info in self._infos:
            text = f"{info.name} (bundled)" if getattr(info, "bundled", False) else info.name
            self.combo.addItem(text, str(info.path) if info.path else info.name)
            self.combo.setItemData(self.combo.count() - 1, getattr(info, "summary", "") or "",
                                   Qt.ItemDataRole.ToolTipRole)
        self.combo.addItem(LOAD_FROM_FILE, None)
        self.combo.blockSignals(False)
        self._show_active()

    def _index_of(self, loaded) -> int:
        path = str(getattr(loaded, "path", "") or "")
        name = getattr(loaded, "name", None)
        items = [(i, self.combo.itemText(i), self.combo.itemData(i)) for i in range(self.combo.count() - 1)]
        for i, text, data in items:  # the same name (and file) first ...
            if text.removesuffix(" (bundled)") == name and (not path or data in (path, name)):
                return i
        for i, text, data in items:  # ... else the same name ...
            if text.removesuffix(" (bundled)") == name:
                return i
        if name in (None, "", "model"):  # ... and for unnamed models, the same file
            for i, text, data in items:
                if path and data == path:
                    return i
        return -1

    def _show_active(self) -> None:
        loaded = STATE.peek(self.kind)
        self.combo.blockSignals(True)
        if loaded is None:
            bundled = next((i for i, m in enumerate(self._infos) if getattr(m, "bundled", False)), 0)
            if self._infos:
                self.combo.setCurrentIndex(bundled)
                info = self._infos[bundled]
                self.card.setText(f"{getattr(info, 'summary', '') or info.name}\n(loads on first run)")
            else:
                self.card.setText(f"No {self.kind} found. Train one (Fine-tune dock or the CLI) or load a "
                                  "checkpoint file.")
        else:
            i = self._index_of(loaded)
            if i < 0:
                self.combo.insertItem(self.combo.count() - 1, str(loaded.name),
                                      str(getattr(loaded, "path", "") or loaded.name))
                i = self.combo.count() - 2
            self.combo.setCurrentIndex(i)
            self.card.setText(model_card_text(loaded))
        self.combo.blockSignals(False)

    # -- user actions
    def _on_activated(self, index: int) -> None:
        data = self.combo.itemData(index)
        if self.combo.itemText(index) == LOAD_FROM_FILE:
            path, _ = QFileDialog.getOpenFileName(self, f"Load a {self.kind} checkpoint", "",
                                                  "Model checkpoints (*.pt *.pth);;All files (*)")
            if path:
                self.load(path)
            else:
                self._show_active()
            return
        self.load(data)

    def load(self, name_or_path) -> object | None:
        """Load a model by store name or path and make it the active one (errors are notified)."""
        try:
            from ..checkpoints import resolve_model

            loaded = resolve_model(name_or_path, kind=self.kind)
        except Exception as exc:
            notify_error(exc, f"Loading the {self.kind}")
            self._show_active()
            return None
        STATE.set_active(self.kind, loaded)
        return loaded

    def _on_state_changed(self, kind: str) -> None:
        if kind != self.kind:
            return
        try:
            self._show_active()
        except RuntimeError:  # widget deleted
            pass

    def active(self):
        """The active model (loads the bundled one on first use)."""
        loaded = STATE.get_active(self.kind)
        self._show_active()
        return loaded


# --------------------------------------------------------------------------------------------
# display


class ProbabilityChart(QWidget):
    """Horizontal bars of the class probabilities, each in its class colour (plain Qt painting)."""

    ROW = 19

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._probs: dict[str, float] = {}
        self._title = "No result yet: pick a layer and press Classify."
        self._highlight: str | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._update_height()

    def _update_height(self) -> None:
        self.setFixedHeight(28 + self.ROW * max(len(self._probs), 3))

    def set_probabilities(self, probabilities: dict[str, float] | None, title: str = "",
                          highlight: str | None = None) -> None:
        self._probs = dict(probabilities or {})
        self._title = title
        self._highlight = highlight
        self._update_height()
        self.update()

    def probabilities(self) -> dict[str, float]:
        return dict(self._probs)

    def title(self) -> str:
        return self._title

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w = self.width()
        font = QFont(p.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.95))
        p.setFont(font)
        p.setPen(QColor("#e0e0e0"))
        p.drawText(QRectF(4, 2, w - 8, 20), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   self._title)
        if not self._probs:
            p.end()
            return
        label_w = min(130, max(90, int(w * 0.35)))
        value_w = 44
        bar_w = max(10, w - label_w - value_w - 12)
        y = 26
        for name, prob in self._probs.items():
            bold = name == self._highlight
            f = QFont(font)
            f.setBold(bold)
            p.setFont(f)
            p.setPen(QColor("#e0e0e0"))
            p.drawText(QRectF(4, y, label_w - 6, self.ROW - 2),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, name)
            p.fillRect(QRectF(label_w, y + 3, bar_w, self.ROW - 7), QColor("#3a3f47"))
            val = 0.0 if not math.isfinite(prob) else min(max(prob, 0.0), 1.0)
            p.fillRect(QRectF(label_w, y + 3, bar_w * val, self.ROW - 7), QColor(class_color(name)))
            p.drawText(QRectF(label_w + bar_w + 4, y, value_w, self.ROW - 2),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, f"{100 * val:.0f}%")
            y += self.ROW
        p.end()


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            return str(value)
        return f"{float(value):.3f}"
    return str(value)


class ResultsTable(QWidget):
    """One row per image / plane / cell, with "Export CSV..."; uncertain rows are highlighted."""

    row_selected = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[dict] = []
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setMinimumHeight(120)
        self.table.verticalHeader().setVisible(False)
        self.table.currentCellChanged.connect(lambda r, *_: r >= 0 and self.row_selected.emit(r))
        self.export_button = QPushButton("Export CSV...")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._export_clicked)
        self.count_label = QLabel("")
        bottom = QHBoxLayout()
        bottom.addWidget(self.count_label, 1)
        bottom.addWidget(self.export_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table)
        lay.addLayout(bottom)

    @property
    def rows(self) -> list[dict]:
        return [dict(r) for r in self._rows]

    def columns(self) -> list[str]:
        cols: list[str] = []
        for r in self._rows:
            for k in r:
                if k not in cols:
                    cols.append(k)
        return cols

    def set_rows(self, rows: list[dict]) -> None:
        self._rows = [dict(r) for r in rows]
        cols = self.columns()
        t = self.table
        t.blockSignals(True)
        t.clear()
        t.setColumnCount(len(cols))
        t.setRowCount(len(self._rows))
        t.setHorizontalHeaderLabels(cols)
        warn = QColor(120, 70, 20)
        for i, r in enumerate(self._rows):
            flagged = bool(r.get("uncertain"))
            for j, c in enumerate(cols):
                item = QTableWidgetItem(_fmt(r.get(c)))
                if c == "label" and r.get(c):
                    item.setForeground(QColor(class_color(str(r[c]))))
                if flagged:
                    item.setBackground(warn)
                    item.setToolTip("Uncertain: low confidence or unlike the training cells "
                                    "(out-of-distribution). Check this one by eye.")
                t.setItem(i, j, item)
        t.resizeColumnsToContents()
        t.blockSignals(False)
        n_unc = sum(bool(r.get("uncertain")) for r in self._rows)
        self.count_label.setText(f"{len(self._rows)} row(s)" + (f", {n_unc} uncertain" if n_unc else ""))
        self.export_button.setEnabled(bool(self._rows))

    def select_row(self, i: int) -> None:
        if 0 <= i < self.table.rowCount():
            self.table.blockSignals(True)
            self.table.selectRow(i)
            self.table.blockSignals(False)

    def export_csv(self, path) -> str:
        cols = self.columns()
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=cols)
            writer.writeheader()
            for r in self._rows:
                writer.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})
        return str(path)

    def _export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export results", "organelle_results.csv",
                                              "CSV files (*.csv)")
        if not path:
            return
        if not path.lower().endswith(".csv"):
            path += ".csv"
        try:
            self.export_csv(path)
        except OSError as exc:
            from napari.utils.notifications import show_warning

            show_warning(f"Could not write {path}: {exc}")
            return
        from napari.utils.notifications import show_info

        show_info(f"Saved {len(self._rows)} rows to {path}")


def legend_html(classes, counts: dict[str, int] | None = None) -> str:
    """HTML listing each class with its colour swatch (and how many cells got it)."""
    parts = []
    for c in classes:
        n = "" if counts is None else f" ({counts.get(c, 0)})"
        parts.append(f"<span style='color:{class_color(c)}'>&#9632;</span>&nbsp;{c}{n}")
    return "&nbsp;&nbsp; ".join(parts)
