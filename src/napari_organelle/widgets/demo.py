"""``napari-organelle demo``: napari with simulated cells, the three docks, and a first result."""

from __future__ import annotations

PLUGIN = "napari-organelle"
CLASSIFY = "Classify organelles"
RECONSTRUCT = "Reconstruct images"
FINETUNE = "Fine-tune models"
#: Fits a 1600x1000 screen with its title bar and task bar.
WINDOW = (1560, 900)


def _wait(job, timeout_s: float = 120.0) -> None:
    """Process Qt events until ``job`` finished (the GUI stays live meanwhile)."""
    import time

    from qtpy.QtWidgets import QApplication

    t0 = time.monotonic()
    while job is not None and job.running and time.monotonic() - t0 < timeout_s:
        QApplication.processEvents()
        time.sleep(0.02)
    QApplication.processEvents()


def run_demo(block: bool = True, *, with_finetune: bool = True):
    """Open napari with one simulated cell per class, dock the widgets (as tabs of one dock area, so each
    gets the window's full height) and classify the stack. Returns the viewer."""
    import napari

    from .. import _sample_data

    viewer = napari.Viewer(title="napari-organelle demo")
    viewer.window.resize(*WINDOW)
    for data, kwargs, layer_type in _sample_data.sample_cells():
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    dock, classify = viewer.window.add_plugin_dock_widget(PLUGIN, CLASSIFY)
    viewer.window.add_plugin_dock_widget(PLUGIN, RECONSTRUCT, tabify=True)
    if with_finetune:
        try:
            viewer.window.add_plugin_dock_widget(PLUGIN, FINETUNE, tabify=True)
        except Exception as exc:  # the demo still shows classification without the fine-tune dock
            from napari.utils.notifications import show_warning

            show_warning(f"The fine-tune dock could not be opened: {exc}")
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    dock.raise_()  # the Classify tab in front (napari raises the last dock it added)
    QTimer.singleShot(0, dock.raise_)
    viewer.dims.set_current_step(0, 4)  # Golgi_gpp: a plane the eye can check
    job = classify.run()
    if block:
        napari.run()
    else:
        _wait(job)
    return viewer


if __name__ == "__main__":  # pragma: no cover
    run_demo()
