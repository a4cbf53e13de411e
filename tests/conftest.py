"""Shared test fixtures.

Deliberately imports neither torch nor torchvision at module level: tests/test_import_order.py
checks the import order a user meets (napari first, then the plugin), and the Qt tests import the
core only inside fixtures.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def organelle_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty model store: the real user folder is never touched."""
    home = tmp_path_factory.mktemp("organelle_home")
    monkeypatch.setenv("NAPARI_ORGANELLE_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small shared test machines: oversubscribed OpenMP threads crawl, so the CPU-heavy modules
    use one torch thread (restored afterwards). Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """Paths of a tiny random classifier (10 classes, 64 px input) and a tiny autoencoder.

    Untrained on purpose: widget tests check plumbing (layers, tables, metadata), never accuracy,
    and do not depend on the bundled weights being present.
    """
    import torch

    from napari_organelle.checkpoints import save_checkpoint
    from napari_organelle.classes import CLASSES
    from napari_organelle.models.registry import build_model

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny_models")
    clf = build_model("classifier", "organelle-cnn", num_classes=len(CLASSES), stem=8, widths=(8, 16),
                      blocks=(1, 1))
    ae = build_model("autoencoder", "organelle-ae", channels=(8, 16), latent_channels=4)
    training = {"data": "simulated cells (test fixture, untrained)", "n_train": 0, "n_val": 0, "epochs": 0}
    clf_path = save_checkpoint(out / "tiny-classifier.pt", clf.eval(), kind="classifier", arch="organelle-cnn",
                               classes=list(CLASSES), input_size=64, training=training,
                               metrics={"val_accuracy": 0.1})
    ae_path = save_checkpoint(out / "tiny-autoencoder.pt", ae.eval(), kind="autoencoder", arch="organelle-ae",
                              input_size=64, training=training, metrics={"val_mse": 0.01})
    return {"classifier": clf_path, "autoencoder": ae_path}


@pytest.fixture
def tiny_models(tiny_checkpoints):
    """Make the tiny models the active ones in the docks' shared state (reset afterwards)."""
    from napari_organelle.checkpoints import load_checkpoint
    from napari_organelle.widgets._state import STATE

    loaded = {}
    for kind, path in tiny_checkpoints.items():
        loaded[kind] = load_checkpoint(path, expected_kind=kind, name=f"tiny-{kind}")
        STATE.set_active(kind, loaded[kind])
    yield loaded
    STATE.reset()
