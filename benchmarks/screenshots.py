"""Take the screenshots of docs/walkthrough.md with the real docks and the bundled weights.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/screenshots.py

Writes docs/images/screenshot_demo.png (`napari-organelle demo` on a 1600x1000 screen: the three docks
as tabs, the first result), screenshot_classify.png (one cell per class, stack mode, bar chart and table),
screenshot_cells.png (each labelled cell of a simulated field, coloured by predicted class),
screenshot_cam.png (class-activation map of one cell) and screenshot_reconstruct.png (source,
reconstruction and residual side by side in grid mode) and screenshot_finetune.png (the bundled
classifier fine-tuned on noisy simulated cells it starts at chance on: live curves with the starting
model's line, log, confusion matrix). ``--classifier`` / ``--autoencoder`` take a
model name or path instead of the bundled ones (to check the script itself before weights exist).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "napari-organelle"
SIZE = (1600, 1000)  # the screen size the docks must fit (issue 10)


def _pump(seconds: float = 0.3) -> None:
    from qtpy.QtWidgets import QApplication

    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        QApplication.processEvents()
        time.sleep(0.01)


def _wait(widget, timeout: float = 300.0) -> None:
    from qtpy.QtWidgets import QApplication

    t0 = time.monotonic()
    while widget.controls.busy and time.monotonic() - t0 < timeout:
        QApplication.processEvents()
        time.sleep(0.02)
    if widget.controls.busy:
        raise SystemExit("timed out waiting for the dock's worker")
    _pump(0.5)


def _viewer(title: str):
    import napari

    viewer = napari.Viewer(title=title)
    viewer.window.resize(*SIZE)
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
    return viewer.window.add_plugin_dock_widget(PLUGIN, name)[1]


def _scroll(widget, fraction: float) -> None:
    from qtpy.QtWidgets import QScrollArea

    bar = widget.native.findChild(QScrollArea).verticalScrollBar()
    bar.setValue(int(bar.maximum() * fraction))


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

    # 0. `napari-organelle demo` as a new user sees it on a 1600x1000 screen.
    from napari_organelle.widgets.demo import run_demo

    viewer = run_demo(block=False)
    viewer.window.resize(*SIZE)
    _pump(1.0)
    _shot(viewer, "screenshot_demo.png", out)
    viewer.close()

    # 1. One simulated cell per class: each plane of the stack, OOD check on, Golgi_gpp plane shown.
    viewer = _viewer("napari-organelle: classify")
    _add_sample(viewer, "cells")
    w = _dock(viewer, "Classify organelles")
    w.set_mode("each plane of a stack")
    w.ood.value = True
    w.run()
    _wait(w)
    viewer.dims.set_current_step(0, 4)
    _pump(0.3)
    _scroll(w, 0.45)
    _shot(viewer, "screenshot_classify.png", out)
    viewer.close()

    # 2. A class-activation map of one cell (whole image mode).
    viewer = _viewer("napari-organelle: class-activation map")
    _add_sample(viewer, "golgi_cell")
    w = _dock(viewer, "Classify organelles")
    w.set_mode("whole image")
    w.cam.value = True
    w.run()
    _wait(w)
    viewer.layers["Golgi_gpp DNA"].visible = False
    _shot(viewer, "screenshot_cam.png", out)
    viewer.close()

    # 3. Each cell of a field, found automatically and coloured by its predicted class.
    viewer = _viewer("napari-organelle: each cell of a field")
    _add_sample(viewer, "field")
    viewer.layers.remove("Field cells")
    w = _dock(viewer, "Classify organelles")
    w.set_mode("each cell (found automatically)")
    w.run()
    _wait(w)
    viewer.layers["Field protein cells"].contour = 2
    _scroll(w, 0.6)
    _shot(viewer, "screenshot_cells.png", out)
    viewer.close()

    # 4. Reconstruction: source, reconstruction and residual side by side (grid mode).
    viewer = _viewer("napari-organelle: reconstruct")
    _add_sample(viewer, "golgi_cell")
    viewer.layers.remove("Golgi_gpp DNA")
    src = viewer.layers["Golgi_gpp protein"]
    src.colormap = "gray"
    src.blending = "translucent"
    w = _dock(viewer, "Reconstruct images")
    w.residual.value = True
    w.run()
    _wait(w)
    viewer.canvas.grid.enabled = True
    viewer.canvas.grid.shape = (2, 2)
    viewer.reset_view()
    _shot(viewer, "screenshot_reconstruct.png", out)
    viewer.close()

    # 5. Fine-tune the bundled classifier on cells unlike its training cells: simulated cells with heavy
    #    camera noise (8 a class), on which it starts at about chance; 10 epochs bring it back.
    import tempfile

    import numpy as np
    import tifffile

    from napari_organelle.phantoms import simulate_dataset

    data = Path(tempfile.mkdtemp(prefix="organelle_shots_")) / "noisy_cells"
    rng = np.random.default_rng(0)
    for i, cell in enumerate(simulate_dataset(8, seed=5, style="alt").samples):
        folder = data / cell.label
        folder.mkdir(parents=True, exist_ok=True)
        noisy = [np.clip(c + rng.normal(0, 1.5 * c.std(), c.shape), 0, 65535).astype(np.uint16)
                 for c in (cell.protein.astype(np.float32), cell.dna.astype(np.float32))]
        tifffile.imwrite(folder / f"cell{i:03d}.tif", np.stack(noisy))
    viewer = _viewer("napari-organelle: fine-tune")
    _add_sample(viewer, "golgi_cell")
    w = _dock(viewer, "Fine-tune models")
    w.set_data_path(data, load=True)
    t0 = time.monotonic()
    while w.folder.worker is not None and time.monotonic() - t0 < 120:
        _pump(0.1)
    w.train_button.native.click()
    _wait(w, timeout=900)
    _scroll(w, 0.55)
    _shot(viewer, "screenshot_finetune.png", out)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
