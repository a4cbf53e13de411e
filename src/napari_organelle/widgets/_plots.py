"""The Fine-tune dock's live training curves and confusion matrix (plain Qt painting: magicgui has no
plot widget). Painting a few dozen points takes well under a millisecond, so it stays on the GUI
thread without a plotting library or a render thread."""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

TRAIN_COLOR, VAL_COLOR = "#1f9bde", "#f58231"


def theme_colors(viewer=None) -> tuple[str, str]:
    """(background, foreground) of the viewer's napari theme (dark defaults otherwise)."""
    try:
        from napari.utils.theme import get_theme

        theme = get_theme(viewer.theme if viewer is not None else "dark")
        return theme.background.as_hex(), theme.text.as_hex()
    except Exception:  # noqa: BLE001 - any theme trouble: the dark defaults
        return "#262930", "#f0f1f2"


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


class _Painted(QWidget):
    def __init__(self, height: int) -> None:
        super().__init__()
        self.bg, self.fg = "#262930", "#f0f1f2"
        self.setMinimumHeight(height)
        self.setMinimumWidth(10)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_colors(self, background: str, foreground: str) -> None:
        self.bg, self.fg = background, foreground
        self.update()

    def _painter(self) -> QPainter:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor(self.bg))
        font = QFont(p.font())
        font.setPointSizeF(max(6.5, font.pointSizeF() * 0.8))
        p.setFont(font)
        return p


class TrainingPlot(_Painted):
    """Loss (train / val) and accuracy (classifier) or PSNR (autoencoder) per epoch; the starting model's
    validation as a dashed line, the best epoch as a dotted one."""

    def __init__(self) -> None:
        super().__init__(150)
        self.reset("classifier")

    def reset(self, kind: str = "classifier") -> None:
        self.kind = kind
        self.epochs: list[int] = []
        self.train_loss: list = []
        self.val_loss: list = []
        self.train_metric: list = []
        self.val_metric: list = []
        self.best_epoch: int | None = None
        self.baseline: tuple | None = None
        self.update()

    @property
    def metric_name(self) -> str:
        return "PSNR (dB)" if self.kind == "autoencoder" else "accuracy"

    def set_baseline(self, val_loss, val_metric) -> None:
        self.baseline = (val_loss, val_metric)
        self.update()

    def add_epoch(self, ev) -> None:
        """Append one ``training.EpochEvent``."""
        self.epochs.append(int(ev.epoch))
        self.train_loss.append(ev.train_loss)
        self.val_loss.append(ev.val_loss)
        ae = self.kind == "autoencoder"
        self.train_metric.append(getattr(ev, "train_psnr" if ae else "train_acc", None))
        self.val_metric.append(getattr(ev, "val_psnr" if ae else "val_acc", None))
        self.best_epoch = getattr(ev, "best_epoch", None)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = self._painter()
        w, h = self.width(), self.height()
        half = w / 2
        for i, (title, tr, va) in enumerate((("loss", self.train_loss, self.val_loss),
                                             (self.metric_name, self.train_metric, self.val_metric))):
            base = None if self.baseline is None else self.baseline[i]
            self._panel(p, QRectF(i * half + 30, 16, half - 38, h - 34), title, tr, va, base)
        p.setPen(QColor(TRAIN_COLOR))
        p.drawText(QRectF(4, h - 14, 60, 12), Qt.AlignmentFlag.AlignLeft, "— train")
        p.setPen(QColor(VAL_COLOR))
        p.drawText(QRectF(56, h - 14, 160, 12), Qt.AlignmentFlag.AlignLeft,
                   "— val" + ("   - - val, start" if self.baseline else ""))
        p.end()

    def _panel(self, p: QPainter, r: QRectF, title: str, tr, va, base) -> None:
        fg = QColor(self.fg)
        p.setPen(fg)
        p.drawText(QRectF(r.left(), 2, r.width(), 12), Qt.AlignmentFlag.AlignHCenter, title)
        p.drawRect(r)
        ys = _finite(list(tr) + list(va) + ([base] if base is not None else []))
        if not self.epochs or not ys:
            return
        lo, hi = min(ys), max(ys)
        if self.kind != "autoencoder" and title == "accuracy":
            lo, hi = 0.0, 1.0
        hi = hi if hi > lo else lo + 1.0
        e0, e1 = min(self.epochs), max(max(self.epochs), min(self.epochs) + 1)

        def pt(e, y):
            return QPointF(r.left() + (e - e0) / (e1 - e0) * r.width(), r.bottom() - (y - lo) / (hi - lo) * r.height())

        for label, y in ((f"{hi:.3g}", r.top() + 8), (f"{lo:.3g}", r.bottom())):
            p.drawText(QRectF(r.left() - 30, y - 10, 28, 12), Qt.AlignmentFlag.AlignRight, label)
        if base is not None and math.isfinite(float(base)):
            p.setPen(QPen(QColor(VAL_COLOR), 1, Qt.PenStyle.DashLine))
            p.drawLine(pt(e0, base), pt(e1, base))
        if self.best_epoch:
            p.setPen(QPen(fg, 1, Qt.PenStyle.DotLine))
            p.drawLine(pt(self.best_epoch, lo), pt(self.best_epoch, hi))
        for values, color in ((tr, TRAIN_COLOR), (va, VAL_COLOR)):
            pts = [pt(e, float(y)) for e, y in zip(self.epochs, values) if y is not None and math.isfinite(float(y))]
            p.setPen(QPen(QColor(color), 1.5))
            for a, b in zip(pts, pts[1:]):
                p.drawLine(a, b)
            for q in pts:
                p.drawEllipse(q, 2, 2)


class ConfusionPlot(_Painted):
    """A confusion matrix (rows: true class, columns: predicted), cells shaded by row fraction."""

    def __init__(self) -> None:
        super().__init__(60)
        self.clear()

    def clear(self) -> None:
        self.matrix, self.classes, self.title = None, [], ""
        self.setFixedHeight(60)
        self.update()

    def show_matrix(self, matrix, classes, title: str = "validation set") -> None:
        """Show ``matrix`` (n x n counts); classes with no true and no predicted image are dropped."""
        m, classes = np.asarray(matrix, dtype=np.int64), list(classes)
        if m.ndim == 2 and m.shape == (len(classes), len(classes)) and (keep := (m.sum(0) + m.sum(1)) > 0).any():
            m, classes = m[np.ix_(keep, keep)], [c for c, k in zip(classes, keep) if k]
        self.matrix, self.classes, self.title = m, classes, title
        self.setFixedHeight(44 + 24 * len(classes))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = self._painter()
        p.setPen(QColor(self.fg))
        m = self.matrix
        if m is None or m.size == 0:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "confusion matrix after training")
            p.end()
            return
        n, total = len(self.classes), int(m.sum())
        p.drawText(QRectF(0, 2, self.width(), 14), Qt.AlignmentFlag.AlignHCenter,
                   f"{self.title}: {int(np.trace(m))}/{total} correct ({np.trace(m) / max(total, 1):.0%})")
        left, top, cell = 92.0, 20.0, min(24.0, (self.width() - 96) / max(n, 1))
        rows = m.sum(1, keepdims=True).clip(min=1)
        for i, name in enumerate(self.classes):
            p.setPen(QColor(self.fg))
            p.drawText(QRectF(0, top + i * cell, left - 4, cell), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       p.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, int(left - 6)))
            for j in range(n):
                frac = m[i, j] / rows[i, 0]
                rect = QRectF(left + j * cell, top + i * cell, cell - 1, cell - 1)
                p.fillRect(rect, QColor.fromRgbF(0.12 + 0.1 * frac, 0.2 + 0.6 * frac, 0.35 + 0.2 * frac))
                if m[i, j]:
                    p.setPen(QColor("black" if frac > 0.5 else "white"))
                    p.drawText(rect, Qt.AlignmentFlag.AlignCenter, str(int(m[i, j])))
        p.setPen(QColor(self.fg))
        y = top + n * cell + 4
        p.drawText(QRectF(left, y, self.width() - left, 14), Qt.AlignmentFlag.AlignLeft,
                   "rows: true class, columns: predicted (same order)")
        p.end()
