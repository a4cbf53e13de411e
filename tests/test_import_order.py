"""Import order as a user meets it: napari running with an image (a GL context exists), THEN the plugin.

Importing torchvision after Mesa's software OpenGL is live segfaulted (triton's LLVM clashes with
Mesa's). Each check runs in a subprocess so a segfault fails the test instead of killing pytest.
The subprocesses inherit the Xvfb display that pytest-xvfb started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.qt

_VIEWER_FIRST = """
import sys
import numpy as np
import napari
from qtpy.QtWidgets import QApplication

viewer = napari.Viewer()
viewer.add_image(np.random.default_rng(0).random((64, 64)), name="noise")
for _ in range(20):
    QApplication.processEvents()
assert "torch" not in sys.modules, "napari alone must not import torch"
assert "torchvision" not in sys.modules
"""


def _run(code: str, tmp_path, timeout: int = 240) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(_VIEWER_FIRST) + textwrap.dedent(code))
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "xcb")
    env["NAPARI_ORGANELLE_HOME"] = str(tmp_path / "home")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=str(tmp_path))
    if proc.returncode != 0:
        msg = f"exit code {proc.returncode} (-11/139 = segfault)\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        pytest.fail(msg)
    return proc


def test_dock_and_classify_with_resnet_after_viewer(tmp_path):
    proc = _run("""
    import time
    import napari_organelle.widgets  # the guard runs here, after napari and its GL context
    from napari_organelle.checkpoints import load_checkpoint, save_checkpoint
    from napari_organelle.classes import CLASSES
    from napari_organelle.models.registry import build_model
    from napari_organelle.widgets._state import STATE

    model = build_model("classifier", "resnet18", num_classes=len(CLASSES))  # imports torchvision
    assert "torchvision" in sys.modules
    path = save_checkpoint("resnet.pt", model.eval(), kind="classifier", arch="resnet18",
                           classes=list(CLASSES), input_size=64, training={"data": "none (test)"})
    STATE.set_active("classifier", load_checkpoint(path, expected_kind="classifier", name="resnet-test"))

    _, widget = viewer.window.add_plugin_dock_widget("napari-organelle", "Classify organelles")
    job = widget.run()
    assert job is not None, widget.controls.message.value
    t0 = time.time()
    while job.running and time.time() - t0 < 180:
        QApplication.processEvents()
        time.sleep(0.02)
    rows = widget.table.rows
    assert len(rows) == 1, widget.controls.message.value
    print("OK", rows[0]["label"])
    viewer.close()
    """, tmp_path)
    assert "OK" in proc.stdout


def test_widgets_then_torchvision_after_viewer(tmp_path):
    proc = _run("""
    import napari_organelle.widgets
    assert sys.modules.get("triton") is None  # blocked (or not installed): torchvision skips it
    import torchvision
    import torch
    m = torchvision.models.resnet18(weights=None)
    with torch.inference_mode():
        print("OK", tuple(m(torch.zeros(1, 3, 64, 64)).shape))
    viewer.close()
    """, tmp_path)
    assert "OK (1, 1000)" in proc.stdout


def test_demo_command_imports_the_widgets_before_napari(tmp_path):
    """`napari-organelle demo` imports the widgets first and napari second (the reverse of the Plugins
    menu); its first model card counts FLOPs, which imports triton. It segfaulted until the widgets'
    guard stopped depending on napari being imported already."""
    script = tmp_path / "demo.py"
    script.write_text(textwrap.dedent("""
    import sys
    assert "napari" not in sys.modules
    from napari_organelle.cli import main
    assert main(["demo", "--no-block"]) == 0
    import napari
    viewer = napari.current_viewer()
    rows = viewer.layers[0].metadata["organelle"]["rows"]
    print("OK", len(rows), sum(r["label"] == e for r, e in zip(rows, viewer.layers[0].metadata["classes"])))
    viewer.close()
    """))
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "xcb")
    env["NAPARI_ORGANELLE_HOME"] = str(tmp_path / "home")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, env=env,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, f"exit code {proc.returncode} (-11/139 = segfault)\n{proc.stderr[-5000:]}"
    assert "OK 10" in proc.stdout
    assert "triton not found" not in proc.stderr  # no noise for the user


def test_docking_and_the_first_classify_never_block_napari(tmp_path):
    """What a new user does, in a fresh process (torch not imported yet): napari open with an image,
    the docks, then Classify with the bundled model: torch is imported and the model loaded off the GUI
    thread (the times are printed, not asserted: on a shared machine they measure its load). Two things are timed
    apart: napari's own docking (it also saves its settings), and the one-time import of torch in the
    background: loading its C extension holds Python's GIL for ~250 ms on this 2-core machine (it
    froze napari for 3-4 s when the first Classify imported torch on the GUI thread)."""
    proc = _run("""
    import threading
    import time
    from qtpy.QtCore import QTimer

    class Spy:  # which thread first imports torch, and which loads a model file
        seen = {}

        def find_spec(self, name, path=None, target=None):
            if name in ("torch", "napari_organelle.checkpoints") and name not in self.seen:
                self.seen[name] = threading.current_thread().name
            return None

    sys.meta_path.insert(0, Spy())
    t = time.perf_counter()
    sum(i * i for i in range(3_000_000))
    busy = time.perf_counter() - t  # how fast this machine is right now (~0.12 s on an idle core)
    from napari_organelle.widgets import ClassifyWidget, FinetuneWidget, ReconstructWidget
    gaps, last = [], [None]

    def tick():
        now = time.perf_counter()
        if last[0] is not None:
            gaps.append(now - last[0])
        last[0] = now

    def pump(seconds, until=lambda: False):
        t0 = time.time()
        while time.time() - t0 < seconds and not until():
            QApplication.processEvents()
            time.sleep(0.005)

    def gap():
        g = max(gaps) if gaps else float("nan")
        gaps.clear()
        return g

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    viewer.open_sample("napari-organelle", "cells")
    steps, docks = {}, {}

    def dock(name, cls):
        t = time.perf_counter()
        docks[name] = cls(viewer)
        steps[name] = time.perf_counter() - t
        t = time.perf_counter()
        viewer.window.add_dock_widget(docks[name], name=name)
        steps["napari_" + name] = time.perf_counter() - t

    dock("classify", ClassifyWidget)
    timer.start()  # from here: the background torch import
    pump(30, until=lambda: "napari_organelle.inference" in sys.modules or "torch" in sys.modules and len(gaps) > 150)
    pump(1)
    steps["import_gap"] = gap()
    dock("reconstruct", ReconstructWidget)
    dock("finetune", FinetuneWidget)
    last[0] = None  # the docking itself (timed above) is not an event-loop gap
    gaps.clear()
    pump(4)  # the Fine-tune dock imports torch._dynamo (the first optimizer's import) in the background
    steps["warmup_gap"] = gap()
    w = docks["classify"]
    w.protein.value = viewer.layers["Simulated protein (one cell per class)"]
    t = time.perf_counter()
    job = w.run()
    steps["click"] = time.perf_counter() - t
    pump(180, until=lambda: not job.running)
    pump(0.2)
    steps["classify_gap"] = gap()
    timer.stop()
    assert len(w.table.rows) == 10, w.controls.message.value
    print("STEPS", " ".join(f"{k}={1000 * v:.0f}" for k, v in steps.items()), f"torch={'torch' in sys.modules}",
          f"busy={1000 * busy:.0f}", *(f"thread_{k.split('.')[-1]}={v}" for k, v in Spy.seen.items()))
    docks["finetune"]._shutdown()
    viewer.close()
    """, tmp_path)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("STEPS"))
    print(line)
    got = dict(kv.split("=") for kv in line.split()[1:])
    # what makes napari freeze, whatever the machine's load: torch imported or a model file read on the
    # GUI thread (the 3-4 s freezes of the first Classify); both happen in workers
    assert got["torch"] == "True" and got["thread_torch"] != "MainThread", line
    assert got["thread_checkpoints"] != "MainThread", line
    # The times themselves (dock building, the click, event-loop gaps) are printed for the record: on
    # an idle 2-core machine 13-146 ms, 1-15 ms and <= 80 ms; on a shared busy one they measure its load.
    assert len(got) > 10, line
