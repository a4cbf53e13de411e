"""The viewer stays responsive while the Fine-tune dock trains.

A QTimer ticks every 10 ms in the GUI thread while a real (tiny, CPU) fine-tune runs in the dock; the
longest gap between two ticks is the longest time the event loop was blocked (by work done on the GUI
thread, by the training thread holding the GIL, or by a flood of queued signals). On an idle 2-core
machine it is 50-70 ms; the limit is 250 ms, still well below one epoch of training on the GUI thread
(seconds) and below the ~300 ms where a pause is felt, with room for a CI machine that is busy with
something else (a run sharing the cores with a benchmark once measured 100 ms).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.qt

MAX_GAP_MS = 250.0
CLASSES3 = ("ER", "Mitochondria", "Nucleus")


class _GapMeter:
    """Records the longest interval between ticks of a 10 ms QTimer (the event loop's latency)."""

    def __init__(self):
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = None
        self.gaps: list[float] = []

    def _tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.gaps.append(now - self.last)
        self.last = now

    def start(self):
        self.last = None
        self.gaps.clear()
        self.timer.start()

    def stop(self):
        self.timer.stop()

    @property
    def max_ms(self) -> float:
        return 1000 * max(self.gaps) if self.gaps else float("nan")


def test_event_loop_stays_responsive_during_finetune(make_napari_viewer_proxy, qtbot, tiny_models, capsys):
    from qtpy.QtCore import QTimer

    from napari_organelle.phantoms import simulate_dataset

    viewer = make_napari_viewer_proxy(show=True)
    _, w = viewer.window.add_plugin_dock_widget("napari-organelle", "Fine-tune models")
    w.device.value = "cpu"
    cells = simulate_dataset(6, seed=3, size=64, classes=CLASSES3)
    for cls in CLASSES3:
        layer = viewer.add_image(np.stack([s.protein for s in cells.samples if s.label == cls]), name=f"{cls} protein")
        dna = viewer.add_image(np.stack([s.dna for s in cells.samples if s.label == cls]), name=f"{cls} dna")
        w.add_layer_row(layer, label=cls, dna=dna)
    w.epochs.value = 4
    w.batch.value = 2
    # The dock imports torch's lazily loaded optimizer machinery (torch._dynamo, ~2 s) in the
    # background when it opens (finetune.warm_up_training); a user needs longer than that to choose
    # data. Wait for it, and for the first paint, before measuring the training itself.
    from napari_organelle.widgets.finetune import warm_up_training

    qtbot.waitUntil(lambda: not warm_up_training().is_alive(), timeout=60_000)
    qtbot.wait(300)

    meter = _GapMeter()
    click_ms = []

    def click_then_measure():
        # The click handler itself (gathering the layers, starting the thread) runs once, before the
        # training does; its time is reported apart. Most of it is napari creating its activity-dialog
        # progress bar, which repaints the canvas (software OpenGL under Xvfb here).
        t = time.perf_counter()
        w.train_button.native.click()
        click_ms.append(1000 * (time.perf_counter() - t))
        meter.start()

    try:
        with qtbot.waitSignal(w.training_finished, timeout=120_000) as blocker:
            QTimer.singleShot(50, click_then_measure)
        qtbot.wait(100)  # the plots' background renders after the last epoch, and the confusion matrix
    finally:
        meter.stop()
        w._shutdown()
    outcome = blocker.args[0]
    assert outcome is not None and outcome.error is None, outcome and outcome.error
    assert len(outcome.result.history) == 4
    gaps = np.array(meter.gaps) * 1000
    with capsys.disabled():
        print(f"\n[responsiveness] fine-tune of {outcome.n_train} cells x 4 epochs: {len(gaps)} ticks, "
              f"longest event-loop gap {gaps.max():.1f} ms, 99th percentile {np.percentile(gaps, 99):.1f} ms, "
              f"median {np.median(gaps):.1f} ms; the Train click handler took {click_ms[0]:.0f} ms")
    assert len(gaps) > 20
    assert gaps.max() < MAX_GAP_MS, f"the event loop was blocked for {gaps.max():.0f} ms"

