"""The class-probability bars (plain Qt painting: magicgui has no chart widget), and ``embed``, which
puts such a raw Qt widget at the end of a magicgui Container."""

from __future__ import annotations

import math

from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget

from ..classes import class_color


def embed(container, qwidget) -> None:
    """Append a raw Qt widget to a magicgui Container (after its magicgui widgets)."""
    container.native.layout().addWidget(qwidget)


class ProbabilityChart(QWidget):
    """Horizontal bars of the class probabilities, each in its class colour."""

    ROW = 18

    def __init__(self) -> None:
        super().__init__()
        self._probs: dict[str, float] = {}
        self._title = "No result yet: pick a layer and press Classify."
        self._highlight: str | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(10)
        self._fit()

    def _fit(self) -> None:
        self.setFixedHeight(26 + self.ROW * max(len(self._probs), 1))

    def set_probabilities(self, probabilities: dict[str, float] | None, title: str = "",
                          highlight: str | None = None) -> None:
        self._probs, self._title, self._highlight = dict(probabilities or {}), title, highlight
        self._fit()
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
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
        p.setFont(font)
        p.setPen(QColor("#e0e0e0"))
        left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        p.drawText(QRectF(4, 2, w - 8, 20), left, p.fontMetrics().elidedText(
            self._title, Qt.TextElideMode.ElideRight, w - 8))
        label_w = min(120, max(80, int(w * 0.33)))
        bar_w = max(10, w - label_w - 46)
        for i, (name, prob) in enumerate(self._probs.items()):
            y = 24 + i * self.ROW
            f = QFont(font)
            f.setBold(name == self._highlight)
            p.setFont(f)
            p.drawText(QRectF(2, y, label_w - 6, self.ROW - 2), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       p.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, label_w - 6))
            p.fillRect(QRectF(label_w, y + 3, bar_w, self.ROW - 7), QColor("#3a3f47"))
            val = min(max(prob, 0.0), 1.0) if math.isfinite(prob) else 0.0
            p.fillRect(QRectF(label_w, y + 3, bar_w * val, self.ROW - 7), QColor(class_color(name)))
            p.drawText(QRectF(label_w + bar_w + 4, y, 42, self.ROW - 2), left,
                       f"{100 * val:.0f}%" if math.isfinite(prob) else "-")
        p.end()
