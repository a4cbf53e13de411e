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
    assert job is not None, widget.summary.text()
    t0 = time.time()
    while widget._job is not None and time.time() - t0 < 180:
        QApplication.processEvents()
        time.sleep(0.02)
    rows = widget.table.rows
    assert len(rows) == 1, widget.summary.text()
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
