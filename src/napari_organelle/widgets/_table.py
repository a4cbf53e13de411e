"""The results table of the Classify dock: one row per image, plane or cell, and Export CSV...

The table shows what fits a narrow dock (which plane or cell, the answer, its confidence, the flags,
then each class probability); the CSV and ``rows`` carry every column, the layer name included.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from pathlib import Path

import numpy as np
from magicgui.widgets import Container, Label, PushButton, Table, show_file_dialog
from psygnal import Signal

from ..classes import class_color

FIRST = ("plane", "cell", "label", "confidence", "expected", "uncertain", "why_uncertain", "warning", "note",
         "novelty", "ood_score")
HIDDEN = ("image", "has_dna")


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.3f}" if math.isfinite(float(value)) else "-"
    return str(value)


def write_csv(path, rows: list[dict]) -> Path:
    """Write ``rows`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=cols)
            writer.writeheader()
            writer.writerows({c: "" if r.get(c) is None else r.get(c) for c in cols} for r in rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class ResultsTable(Container):
    row_selected = Signal(int)

    def __init__(self) -> None:
        self.table = Table(value=([], [], []))
        self.table.read_only = True
        self.count_label = Label(value="")
        self.export_button = PushButton(text="Export CSV...", enabled=False)
        bottom = Container(widgets=[self.count_label, self.export_button], layout="horizontal", labels=False)
        bottom.margins = (0, 0, 0, 0)
        super().__init__(widgets=[self.table, bottom], labels=False)
        self.margins = (0, 0, 0, 0)
        self._rows: list[dict] = []
        q = self.table.native
        q.setMinimumHeight(110)
        q.setSelectionBehavior(q.SelectionBehavior.SelectRows)
        q.setSelectionMode(q.SelectionMode.SingleSelection)
        q.verticalHeader().setVisible(False)
        q.currentCellChanged.connect(lambda row, *_: row >= 0 and self.row_selected.emit(row))
        self.export_button.changed.connect(self._export_clicked)

    @property
    def rows(self) -> list[dict]:
        return [dict(r) for r in self._rows]

    def set_rows(self, rows: list[dict]) -> None:
        from qtpy.QtGui import QColor

        self._rows = [dict(r) for r in rows]
        keys = list(dict.fromkeys(k for r in self._rows for k in r))
        cols = [c for c in FIRST if c in keys] + [c for c in keys if c not in FIRST and c not in HIDDEN]
        q = self.table.native
        q.blockSignals(True)
        self.table.value = ([[_fmt(r.get(c)) for c in cols] for r in self._rows], [],
                            [c.removeprefix("p_") for c in cols])
        for i, r in enumerate(self._rows):  # the answer in its class colour, uncertain rows highlighted
            for j, c in enumerate(cols):
                item = q.item(i, j)
                if c == "label" and r.get(c):
                    item.setForeground(QColor(class_color(str(r[c]))))
                if r.get("uncertain"):
                    item.setBackground(QColor(110, 65, 20))
                    item.setToolTip("Uncertain: low confidence or unlike the training cells. Check it by eye.")
        q.resizeColumnsToContents()
        q.blockSignals(False)
        n_unc = sum(bool(r.get("uncertain")) for r in self._rows)
        self.count_label.value = f"{len(self._rows)} row(s)" + (f", {n_unc} uncertain" if n_unc else "")
        self.export_button.enabled = bool(self._rows)

    def select_row(self, i: int) -> None:
        q = self.table.native
        if 0 <= i < q.rowCount():
            q.blockSignals(True)
            q.selectRow(i)
            q.blockSignals(False)

    def export_csv(self, path) -> Path:
        return write_csv(path, self._rows)

    def _export_clicked(self, *_) -> None:
        from napari.utils.notifications import show_info, show_warning

        path = show_file_dialog(mode="w", caption="Export results", start_path="organelle_results.csv",
                                filter="CSV files (*.csv)")
        if not path:
            return
        path = path if path.lower().endswith(".csv") else path + ".csv"
        try:
            self.export_csv(path)
        except OSError as exc:
            show_warning(f"Could not write {path}: {exc}")
            return
        show_info(f"Saved {len(self._rows)} rows to {path}")
