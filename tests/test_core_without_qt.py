"""The core (everything but widgets/) must work where napari and Qt are not installed, e.g. on a GPU
server or in a script: run it in a subprocess in which importing them fails."""

import subprocess
import sys
import textwrap


def test_core_runs_without_napari_or_qt(tmp_path):
    script = textwrap.dedent("""
        import sys
        for m in ["napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy", "superqt"]:
            sys.modules[m] = None  # any import of these now raises ImportError
        import numpy as np
        import napari_organelle as no
        from napari_organelle import cli, distributed, recipes, training  # noqa: F401
        p, d = no.simulate_cell("Nucleolus", np.random.default_rng(0), size=128)
        r = no.classify(p, d)
        rec = no.reconstruct(p)
        assert r.label in no.CLASSES and rec.reconstruction.shape == p.shape
        print("core ok", r.label)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "core ok" in out.stdout
