"""The npe2 manifest: valid, every python_name importable, the expected widgets and samples."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "src" / "napari_organelle" / "napari.yaml"


def _manifest():
    from npe2 import PluginManifest

    return PluginManifest.from_distribution("napari-organelle")


def test_manifest_is_the_packaged_file():
    import napari_organelle

    assert (Path(napari_organelle.__file__).parent / "napari.yaml").resolve() == MANIFEST.resolve()
    top = ROOT / "napari.yaml"
    assert top.exists() and top.resolve() == MANIFEST.resolve()


def test_widgets_and_samples_listed():
    mf = _manifest()
    assert mf.name == "napari-organelle"
    assert mf.display_name == "Organelle classifier"
    widgets = {w.display_name for w in mf.contributions.widgets}
    assert widgets == {"Classify organelles", "Reconstruct images", "Fine-tune models"}
    samples = {s.display_name for s in mf.contributions.sample_data}
    assert {"Simulated cells (one per class)", "Simulated field of cells"} <= samples
    commands = {c.id: c.python_name for c in mf.contributions.commands}
    assert commands["napari-organelle.finetune_widget"] == "napari_organelle.widgets.finetune:FinetuneWidget"


def test_npe2_validate_imports():
    exe = shutil.which("npe2")
    cmd = [exe] if exe else [sys.executable, "-m", "npe2"]
    proc = subprocess.run(cmd + ["validate", "--imports", "napari-organelle"], capture_output=True,
                          text=True, timeout=180)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 and "finetune" in out and "No module named" in out:
        pytest.fail("widgets/finetune.py (FinetuneWidget) is missing:\n" + out[-2000:])
    assert proc.returncode == 0, out[-3000:]
    assert "valid" in out.lower()


def test_reader_and_menus_are_contributed():
    mf = _manifest()
    readers = {r.command: r for r in mf.contributions.readers}
    reader = readers["napari-organelle.read_pair"]
    assert "*.tif" in reader.filename_patterns and not reader.accepts_directories
    menus = {mid: [item.command for item in items] for mid, items in mf.contributions.menus.items()}
    assert menus["napari/layers/classify"] == ["napari-organelle.classify_widget", "napari-organelle.finetune_widget"]
    assert menus["napari/layers/measure"] == ["napari-organelle.reconstruct_widget"]


def test_one_version():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    import napari_organelle

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert napari_organelle.__version__ and _manifest().package_metadata.version == napari_organelle.__version__
