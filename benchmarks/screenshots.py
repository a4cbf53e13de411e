"""Take the screenshots of docs/walkthrough.md with the real docks and the bundled weights.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/screenshots.py

Writes docs/images/screenshot_classify.png (one cell per class, stack mode, bar chart and table),
screenshot_cells.png (each labelled cell of a simulated field, coloured by predicted class),
screenshot_cam.png (class-activation map of one cell) and screenshot_reconstruct.png (source,
reconstruction and residual side by side in grid mode) and screenshot_finetune.png (a short
fine-tune of the classifier on a small simulated folder: live loss plot, log, confusion matrix). ``--classifier`` / ``--autoencoder`` take a
model name or path instead of the bundled ones (to check the script itself before weights exist).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "napari-organelle"
SIZE = (1500, 950)


def _pump(seconds: float = 0.3) -> None:
    from qtpy.QtWidgets import QApplication

    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        QApplication.processEvents()
        time.sleep(0.01)


def _wait(widget, timeout: float = 300.0) -> None:
    from qtpy.QtWidgets import QApplication

    t0 = time.monotonic()
    while widget._job is not None and time.monotonic() - t0 < timeout:
        QApplication.processEvents()
        time.sleep(0.02)
    if widget._job is not None:
        raise SystemExit("timed out waiting for the dock's worker")
    _pump(0.5)


def _viewer(title: str):
    import napari

    viewer = napari.Viewer(title=title)
    viewer.window._qt_window.resize(*SIZE)
    viewer.window._qt_window.move(0, 0)
    return viewer


def _add_sample(viewer, key: str) -> None:
    viewer.open_sample(PLUGIN, key)


def _shot(viewer, name: str, out: Path) -> Path:
    _pump(0.8)
    path = out / name
    viewer.screenshot(path=str(path), canvas_only=False, flash=False)
    print("wrote", path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return path


def _dock(viewer, name: str):
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    dock.setMinimumWidth(470)
    return widget


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    ap.add_argument("--classifier", default=None, help="model name or path (default: bundled)")
    ap.add_argument("--autoencoder", default=None, help="model name or path (default: bundled)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import napari  # noqa: F401  (napari first, as a user meets it)

    from napari_organelle.checkpoints import resolve_model
    from napari_organelle.widgets._state import STATE

    try:
        STATE.set_active("classifier", resolve_model(args.classifier, kind="classifier"))
        STATE.set_active("autoencoder", resolve_model(args.autoencoder, kind="autoencoder"))
    except Exception as exc:
        print(f"cannot load the models: {exc}", file=sys.stderr)
        return 2

    # 1. One simulated cell per class: each plane of the stack, OOD check on, Golgi_gpp plane shown.
    viewer = _viewer("napari-organelle: classify")
    _add_sample(viewer, "cells")
    w = _dock(viewer, "Classify organelles")
    w.set_mode("each plane of a stack")
    w.ood_check.setChecked(True)
    w.run()
    _wait(w)
    viewer.dims.set_current_step(0, 4)
    _shot(viewer, "screenshot_classify.png", out)
    viewer.close()

    # 2. A class-activation map of one cell (whole image mode).
    viewer = _viewer("napari-organelle: class-activation map")
    _add_sample(viewer, "golgi_cell")
    w = _dock(viewer, "Classify organelles")
    w.set_mode("whole image")
    w.cam_check.setChecked(True)
    w.run()
    _wait(w)
    viewer.layers["Golgi_gpp DNA"].visible = False
    _shot(viewer, "screenshot_cam.png", out)
    viewer.close()

    # 3. Each labelled cell of a field, coloured by its predicted class.
    viewer = _viewer("napari-organelle: each labelled cell")
    _add_sample(viewer, "field")
    viewer.layers["Field cells"].visible = False
    w = _dock(viewer, "Classify organelles")
    w.set_mode("each labelled cell")
    w.run()
    _wait(w)
    _shot(viewer, "screenshot_cells.png", out)
    viewer.close()

    # 4. Reconstruction: source, reconstruction and residual side by side (grid mode).
    viewer = _viewer("napari-organelle: reconstruct")
    _add_sample(viewer, "golgi_cell")
    viewer.layers.remove("Golgi_gpp DNA")
    src = viewer.layers["Golgi_gpp protein"]
    src.colormap = "gray"
    src.blending = "translucent"
    w = _dock(viewer, "Reconstruct with autoencoder")
    w.residual_check.setChecked(True)
    w.run()
    _wait(w)
    viewer.canvas.grid.enabled = True
    viewer.canvas.grid.shape = (2, 2)
    viewer.reset_view()
    _shot(viewer, "screenshot_reconstruct.png", out)
    viewer.close()

    # 5. Fine-tune the classifier for a few epochs on a small simulated folder (3 classes x 12 cells).
    import tempfile

    from napari_organelle.phantoms import write_dataset

    data = Path(tempfile.mkdtemp(prefix="organelle_shots_")) / "my_cells"
    write_dataset(data, per_class=12, seed=3, size=192, classes=("ER", "Golgi_gpp", "Mitochondria"))
    viewer = _viewer("napari-organelle: fine-tune")
    _add_sample(viewer, "golgi_cell")
    w = _dock(viewer, "Fine-tune models")
    w.path_edit.setText(str(data))
    w.epochs_spin.setValue(6)
    w.batch_spin.setValue(8)
    w.train_button.click()
    _wait(w, timeout=600)
    w.scroll_area.verticalScrollBar().setValue(w.scroll_area.verticalScrollBar().maximum() // 2)
    _shot(viewer, "screenshot_finetune.png", out)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
