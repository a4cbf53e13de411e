"""Matplotlib plots embedded in the docks: live training curves and a confusion matrix.

Both use a plain :class:`matplotlib.figure.Figure` on a ``FigureCanvasQTAgg`` (never pyplot, so no
global figure state and no extra windows) and only ever run in the GUI thread.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

#: Dark defaults that match napari's dark theme; :func:`theme_colors` reads the viewer's theme.
DEFAULT_BG = "#262930"
DEFAULT_FG = "#f0f1f2"
TRAIN_COLOR = "#1f9bde"
VAL_COLOR = "#f58231"


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


class _Canvas(QWidget):
    def __init__(self, parent=None, *, height: float = 2.4, min_height: int = 180) -> None:
        super().__init__(parent)
        self.figure = Figure(figsize=(4.0, height), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(min_height)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas)
        self._bg, self._fg = DEFAULT_BG, DEFAULT_FG

    def set_colors(self, background: str, foreground: str) -> None:
        self._bg, self._fg = background, foreground
        self.redraw()

    def _style(self, ax) -> None:
        ax.set_facecolor(self._bg)
        for spine in ax.spines.values():
            spine.set_color(self._fg)
        ax.tick_params(colors=self._fg, labelsize=7)
        ax.xaxis.label.set_color(self._fg)
        ax.yaxis.label.set_color(self._fg)
        ax.title.set_color(self._fg)

    def redraw(self) -> None:  # pragma: no cover - overridden
        self.canvas.draw_idle()


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

    def redraw(self) -> None:
        self.figure.set_facecolor(self._bg)
        x = np.asarray(self.epochs, dtype=float)
        for ax, title, (tr, va) in (
            (self.ax_loss, "loss", (self.train_loss, self.val_loss)),
            (self.ax_metric, self.metric_name, (self.train_metric, self.val_metric)),
        ):
            ax.clear()
            self._style(ax)
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("epoch", fontsize=7)
            drew = False
            for values, color, label in ((tr, TRAIN_COLOR, "train"), (va, VAL_COLOR, "val")):
                y = _finite(values)
                if y.size and np.isfinite(y).any():
                    ax.plot(x, y, "-o", color=color, label=label, markersize=3, linewidth=1.2)
                    drew = True
            if self.best_epoch is not None and self.epochs:
                ax.axvline(self.best_epoch, color=self._fg, linestyle=":", linewidth=0.8, alpha=0.7)
            if drew:
                leg = ax.legend(fontsize=7, facecolor=self._bg, edgecolor=self._fg, labelcolor=self._fg)
                leg.get_frame().set_alpha(0.6)
            if self.epochs:
                lo, hi = min(self.epochs), max(self.epochs)
                ax.set_xlim(lo - 0.5, hi + 0.5 if hi > lo else lo + 0.5)
                ax.xaxis.get_major_locator().set_params(integer=True)
        if self.kind != "autoencoder":
            vals = _finite(self.train_metric + self.val_metric)
            if vals.size and np.isfinite(vals).any() and np.nanmax(vals) <= 1.0:
                self.ax_metric.set_ylim(-0.02, 1.02)
        self.canvas.draw_idle()


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

    def redraw(self) -> None:
        self.figure.clear()
        self.figure.set_facecolor(self._bg)
        ax = self.figure.add_subplot(1, 1, 1)
        self._style(ax)
        if self.matrix is None or self.matrix.size == 0:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "confusion matrix after training", ha="center", va="center",
                    color=self._fg, fontsize=8, alpha=0.6, transform=ax.transAxes)
            self.canvas.draw_idle()
            return
        m = self.matrix
        rows = m.sum(1, keepdims=True).astype(float)
        frac = np.divide(m, rows, out=np.zeros(m.shape, float), where=rows > 0)
        ax.imshow(frac, cmap="viridis", vmin=0, vmax=1, aspect="equal")
        n = len(self.classes)
        ticks = np.arange(n)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        fs = 7 if n <= 10 else 5
        ax.set_xticklabels(self.classes, rotation=60, ha="right", fontsize=fs)
        ax.set_yticklabels(self.classes, fontsize=fs)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        total = int(m.sum())
        acc = float(np.trace(m)) / total if total else math.nan
        ax.set_title(f"{self.title}: {np.trace(m)}/{total} correct ({acc:.0%})" if total else self.title,
                     fontsize=8)
        if n <= 15:
            for i in range(n):
                for j in range(n):
                    if m[i, j]:
                        ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=fs,
                                color="black" if frac[i, j] > 0.5 else "white")
        self.canvas.draw_idle()
