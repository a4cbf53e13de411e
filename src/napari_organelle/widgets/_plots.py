"""Matplotlib plots embedded in the docks: live training curves and a confusion matrix.

Both use a plain :class:`matplotlib.figure.Figure` on an Agg canvas (never pyplot, so no global
figure state and no extra windows). Drawing a figure takes tens of milliseconds, and several times
that while a training thread competes for the GIL, so it never runs in the GUI thread: each redraw
snapshots the data, one background thread renders the figure to pixels, and the GUI thread only
shows the finished image (a queued Qt signal). At most one render per plot is in flight; updates that
arrive meanwhile are folded into one more render of the latest data. After construction the figure
is only ever touched by that render thread.
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QSize, Signal
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

logger = logging.getLogger("napari_organelle")

#: Dark defaults that match napari's dark theme; :func:`theme_colors` reads the viewer's theme.
DEFAULT_BG = "#262930"
DEFAULT_FG = "#f0f1f2"
TRAIN_COLOR = "#1f9bde"
VAL_COLOR = "#f58231"

#: One thread renders every plot (matplotlib is not thread-safe: renders never overlap).
_RENDERER: ThreadPoolExecutor | None = None
_RENDERER_LOCK = threading.Lock()


def _renderer() -> ThreadPoolExecutor:
    global _RENDERER
    with _RENDERER_LOCK:
        if _RENDERER is None:
            _RENDERER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="organelle-plot")
        return _RENDERER


def theme_colors(viewer=None) -> tuple[str, str]:
    """(background, foreground) hex colours of the viewer's napari theme (dark defaults otherwise)."""
    try:
        from napari.utils.theme import get_theme

        name = viewer.theme if viewer is not None else "dark"
        theme = get_theme(name)
        return theme.background.as_hex(), theme.text.as_hex()
    except Exception:
        return DEFAULT_BG, DEFAULT_FG


def _finite(values) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


class _ImageLabel(QLabel):
    """Shows the rendered figure; its size hint is the figure's, never the last image's."""

    def __init__(self, hint: QSize) -> None:
        super().__init__()
        self._hint = hint

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return self._hint

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(50, self.minimumHeight())


class _Canvas(QWidget):
    _rendered = Signal(object)  # (QImage-ready bytes, width, height, device pixel ratio), from the render thread

    def __init__(self, parent=None, *, height: float = 2.4, min_height: int = 180) -> None:
        super().__init__(parent)
        self.figure = Figure(figsize=(4.0, height), dpi=100, layout="constrained")
        self._agg = FigureCanvasAgg(self.figure)
        self.canvas = _ImageLabel(QSize(400, int(100 * height)))
        self.canvas.setMinimumHeight(min_height)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas)
        self._bg, self._fg = DEFAULT_BG, DEFAULT_FG
        self._in_flight = False
        self._dirty = False
        self._rendered.connect(self._show_rendered)

    # -- rendering (snapshot in the GUI thread, draw in the render thread, show in the GUI thread)
    def _snapshot(self) -> SimpleNamespace:  # pragma: no cover - overridden
        return SimpleNamespace()

    def _draw(self, s: SimpleNamespace) -> None:  # pragma: no cover - overridden
        pass

    def redraw(self) -> None:
        """Render the current data (in the background; the image appears when it is ready)."""
        if self._in_flight:
            self._dirty = True
            return
        s = self._snapshot()
        s.bg, s.fg = self._bg, self._fg
        size = self.canvas.size()
        s.width, s.height = max(50, size.width()), max(50, size.height())
        try:
            s.ratio = float(self.canvas.devicePixelRatioF())
        except Exception:  # pragma: no cover
            s.ratio = 1.0
        self._in_flight, self._dirty = True, False
        try:
            _renderer().submit(self._render, s)
        except RuntimeError:  # interpreter shutting down
            self._in_flight = False

    def _render(self, s: SimpleNamespace) -> None:
        try:
            dpi = 100.0 * s.ratio
            self.figure.set_dpi(dpi)
            self.figure.set_size_inches(s.width / 100.0, s.height / 100.0, forward=False)
            self._draw(s)
            self._agg.draw()
            buf = self._agg.buffer_rgba()
            h, w = buf.shape[:2]
            payload = (bytes(buf), w, h, s.ratio)
        except Exception:  # a plotting bug must never take the dock down
            logger.exception("rendering a plot failed")
            payload = None
        try:
            self._rendered.emit(payload)
        except RuntimeError:  # the widget was deleted meanwhile
            pass

    def _show_rendered(self, payload) -> None:
        self._in_flight = False
        if payload is not None:
            data, w, h, ratio = payload
            img = QImage(data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
            pix = QPixmap.fromImage(img)
            pix.setDevicePixelRatio(ratio)
            self.canvas.setPixmap(pix)
        if self._dirty:
            self.redraw()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self.redraw()

    def set_colors(self, background: str, foreground: str) -> None:
        self._bg, self._fg = background, foreground
        self.redraw()

    @staticmethod
    def _style(ax, s) -> None:
        ax.set_facecolor(s.bg)
        for spine in ax.spines.values():
            spine.set_color(s.fg)
        ax.tick_params(colors=s.fg, labelsize=7)
        ax.xaxis.label.set_color(s.fg)
        ax.yaxis.label.set_color(s.fg)
        ax.title.set_color(s.fg)


class TrainingPlot(_Canvas):
    """Two axes per epoch: loss (train/val) and accuracy (train/val) or PSNR for the autoencoder."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, height=2.2)
        self.ax_loss, self.ax_metric = self.figure.subplots(1, 2)
        self.reset("classifier")

    def reset(self, kind: str = "classifier") -> None:
        self.kind = kind
        self.epochs: list[int] = []
        self.train_loss: list[float | None] = []
        self.val_loss: list[float | None] = []
        self.train_metric: list[float | None] = []
        self.val_metric: list[float | None] = []
        self.best_epoch: int | None = None
        self.baseline: tuple[float | None, float | None] | None = None
        self.redraw()

    def set_baseline(self, val_loss: float | None, val_metric: float | None) -> None:
        """The starting model's validation loss / metric (fine-tuning): drawn as dashed "start" lines."""
        self.baseline = (val_loss, val_metric)
        self.redraw()

    @property
    def metric_name(self) -> str:
        return "PSNR (dB)" if self.kind == "autoencoder" else "accuracy"

    def add_epoch(self, ev) -> None:
        """Append one ``training.EpochEvent`` (accuracy, or PSNR for the autoencoder) and redraw."""
        self.epochs.append(int(ev.epoch))
        self.train_loss.append(getattr(ev, "train_loss", None))
        self.val_loss.append(getattr(ev, "val_loss", None))
        if self.kind == "autoencoder":
            self.train_metric.append(getattr(ev, "train_psnr", None))
            self.val_metric.append(getattr(ev, "val_psnr", None))
        else:
            self.train_metric.append(getattr(ev, "train_acc", None))
            self.val_metric.append(getattr(ev, "val_acc", None))
        best = getattr(ev, "best_epoch", None)
        self.best_epoch = None if best is None else int(best)
        self.redraw()

    def set_series(self, epochs, train_loss, val_loss, train_metric, val_metric, best_epoch=None) -> None:
        """Replace all data at once (e.g. from a TrainResult's history)."""
        self.epochs = [int(e) for e in epochs]
        self.train_loss, self.val_loss = list(train_loss), list(val_loss)
        self.train_metric, self.val_metric = list(train_metric), list(val_metric)
        self.best_epoch = best_epoch
        self.redraw()

    def _snapshot(self) -> SimpleNamespace:
        return SimpleNamespace(kind=self.kind, metric_name=self.metric_name, epochs=list(self.epochs),
                               train_loss=list(self.train_loss), val_loss=list(self.val_loss),
                               train_metric=list(self.train_metric), val_metric=list(self.val_metric),
                               best_epoch=self.best_epoch, baseline=self.baseline)

    def _draw(self, s: SimpleNamespace) -> None:
        self.figure.set_facecolor(s.bg)
        x = np.asarray(s.epochs, dtype=float)
        for ax, title, (tr, va) in (
            (self.ax_loss, "loss", (s.train_loss, s.val_loss)),
            (self.ax_metric, s.metric_name, (s.train_metric, s.val_metric)),
        ):
            ax.clear()
            self._style(ax, s)
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("epoch", fontsize=7)
            drew = False
            for values, color, label in ((tr, TRAIN_COLOR, "train"), (va, VAL_COLOR, "val")):
                y = _finite(values)
                if y.size and np.isfinite(y).any():
                    ax.plot(x, y, "-o", color=color, label=label, markersize=3, linewidth=1.2)
                    drew = True
            base = None if s.baseline is None else s.baseline[0 if ax is self.ax_loss else 1]
            if base is not None and np.isfinite(base):
                ax.axhline(base, color=VAL_COLOR, linestyle="--", linewidth=0.9, alpha=0.8, label="val, start")
                drew = True
            if s.best_epoch is not None and s.epochs:
                ax.axvline(s.best_epoch, color=s.fg, linestyle=":", linewidth=0.8, alpha=0.7)
            if drew:
                leg = ax.legend(fontsize=7, facecolor=s.bg, edgecolor=s.fg, labelcolor=s.fg)
                leg.get_frame().set_alpha(0.6)
            if s.epochs:
                lo, hi = min(s.epochs), max(s.epochs)
                ax.set_xlim(lo - 0.5, hi + 0.5 if hi > lo else lo + 0.5)
                ax.xaxis.get_major_locator().set_params(integer=True)
        if s.kind != "autoencoder":
            vals = _finite(s.train_metric + s.val_metric)
            if vals.size and np.isfinite(vals).any() and np.nanmax(vals) <= 1.0:
                self.ax_metric.set_ylim(-0.02, 1.02)


class ConfusionPlot(_Canvas):
    """A confusion matrix (rows: true class, columns: predicted), coloured by row fraction."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, height=3.2, min_height=240)
        self.matrix: np.ndarray | None = None
        self.classes: list[str] = []
        self.title = ""
        self.redraw()

    def clear(self) -> None:
        self.matrix, self.classes, self.title = None, [], ""
        self.redraw()

    def show_matrix(self, matrix, classes, title: str = "validation set") -> None:
        """Show ``matrix`` (n x n counts); classes with no true and no predicted cell are dropped."""
        m = np.asarray(matrix, dtype=np.int64)
        classes = list(classes)
        if m.ndim == 2 and m.shape[0] == m.shape[1] == len(classes) and len(classes) > 0:
            keep = (m.sum(0) + m.sum(1)) > 0
            if keep.any():
                m = m[np.ix_(keep, keep)]
                classes = [c for c, k in zip(classes, keep) if k]
        self.matrix, self.classes, self.title = m, classes, title
        self.redraw()

    def _snapshot(self) -> SimpleNamespace:
        m = None if self.matrix is None else np.array(self.matrix, copy=True)
        return SimpleNamespace(matrix=m, classes=list(self.classes), title=self.title)

    def _draw(self, s: SimpleNamespace) -> None:
        self.figure.clear()
        self.figure.set_facecolor(s.bg)
        ax = self.figure.add_subplot(1, 1, 1)
        self._style(ax, s)
        if s.matrix is None or s.matrix.size == 0:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "confusion matrix after training", ha="center", va="center",
                    color=s.fg, fontsize=8, alpha=0.6, transform=ax.transAxes)
            return
        m = s.matrix
        rows = m.sum(1, keepdims=True).astype(float)
        frac = np.divide(m, rows, out=np.zeros(m.shape, float), where=rows > 0)
        ax.imshow(frac, cmap="viridis", vmin=0, vmax=1, aspect="equal")
        n = len(s.classes)
        ticks = np.arange(n)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        fs = 7 if n <= 10 else 5
        ax.set_xticklabels(s.classes, rotation=60, ha="right", fontsize=fs)
        ax.set_yticklabels(s.classes, fontsize=fs)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        total = int(m.sum())
        acc = float(np.trace(m)) / total if total else math.nan
        ax.set_title(f"{s.title}: {np.trace(m)}/{total} correct ({acc:.0%})" if total else s.title,
                     fontsize=8)
        if n <= 15:
            for i in range(n):
                for j in range(n):
                    if m[i, j]:
                        ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=fs,
                                color="black" if frac[i, j] > 0.5 else "white")
