"""Bad input through the napari docks: every case ends as a napari notification that names the
problem; no exception reaches Qt (pytest-qt fails a test on any exception in the event loop) and no
traceback dialog. API and CLI cases are in test_bad_input.py.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.qt

PLUGIN = "napari-organelle"
CLASSES3 = ("ER", "Mitochondria", "Nucleus")


@pytest.fixture
def notes(monkeypatch):
    """Every napari notification shown (warning / error / info), as text."""
    from napari.utils import notifications

    got: list[str] = []
    for name in ("show_warning", "show_error", "show_info"):
        real = getattr(notifications, name)

        def capture(msg, *a, _real=real, **k):
            got.append(str(msg))
            return _real(msg, *a, **k)

        monkeypatch.setattr(notifications, name, capture)
    return got


def _dock(viewer, name):
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return w


def _classify(qtbot, w):
    job = w.run()
    if job is not None:
        qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    return job


@pytest.fixture(scope="module")
def cells():
    from napari_organelle.phantoms import simulate_dataset

    return simulate_dataset(4, seed=3, size=48, classes=CLASSES3)


# ------------------------------------------------------------------------------------- classify dock
def test_classify_no_layer_selected(make_napari_viewer_proxy, qtbot, tiny_models, notes):
    viewer = make_napari_viewer_proxy()
    w = _dock(viewer, "Classify organelles")
    assert _classify(qtbot, w) is None
    assert any("Select the protein image layer" in m for m in notes)
    assert "Select the protein image layer" in w.controls.message.value


def test_classify_labels_layer_is_not_offered_as_an_image(make_napari_viewer_proxy, qtbot, tiny_models, notes):
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.zeros((40, 40), np.int32), name="cells")
    w = _dock(viewer, "Classify organelles")
    assert [c for c in w.protein.choices if c is not None] == []  # only Image layers are listed
    assert _classify(qtbot, w) is None
    assert any("Select the protein image layer" in m for m in notes)
    # each-cell mode without a Labels layer
    viewer.add_image(np.random.default_rng(0).random((40, 40)), name="protein")
    viewer.layers.remove("cells")
    w.set_mode("each labelled cell")
    assert _classify(qtbot, w) is None
    assert any("needs a Labels layer" in m for m in notes)


def test_classify_labels_all_zero(make_napari_viewer_proxy, qtbot, tiny_models, notes):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.random.default_rng(0).random((40, 40)), name="protein")
    viewer.add_labels(np.zeros((40, 40), np.int32), name="cells")
    w = _dock(viewer, "Classify organelles")
    w.set_mode("each labelled cell")
    _classify(qtbot, w)
    assert any("no labelled cells" in m for m in notes)


@pytest.mark.parametrize("case,data,needle", [
    ("1x1", np.ones((1, 1), np.float32), "1x1 pixels; at least 8x8"),
    ("constant", np.full((40, 40), 5, np.uint16), "is constant"),
    ("all NaN", np.full((40, 40), np.nan, np.float32), "no finite pixel"),
])
def test_classify_unusable_image_layer(make_napari_viewer_proxy, qtbot, tiny_models, notes, case, data, needle):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(data, name="protein")
    w = _dock(viewer, "Classify organelles")
    _classify(qtbot, w)
    assert any(needle in m for m in notes), (case, notes)
    assert w.controls.button.enabled and not w.controls.busy  # ready for the next try


def test_classify_rgb_bool_int64_and_4d_work(make_napari_viewer_proxy, qtbot, tiny_models, notes):
    rng = np.random.default_rng(1)
    viewer = make_napari_viewer_proxy()
    w = _dock(viewer, "Classify organelles")
    for name, data, kw in (("rgb", rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), {"rgb": True}),
                           ("rgba", rng.integers(0, 255, (40, 40, 4), dtype=np.uint8), {"rgb": True}),
                           ("mask", rng.random((40, 40)) > 0.6, {}),
                           ("big ints", rng.integers(0, 2 ** 40, (40, 40)), {}),
                           ("hyperstack", rng.random((2, 3, 40, 40)).astype(np.float32), {})):
        layer = viewer.add_image(data, name=name, **kw)
        w.protein.value = layer
        w.set_mode("whole image")
        _classify(qtbot, w)
        assert layer.metadata.get("organelle", {}).get("label"), (name, notes)
        assert ("RGB layer" in w.controls.message.value) == kw.get("rgb", False)  # says how colours were used


def test_classify_checkpoint_of_other_kind_and_truncated(make_napari_viewer_proxy, qtbot, tiny_models, tiny_checkpoints,
                                                        tmp_path, notes):
    from napari_organelle.widgets._state import STATE

    viewer = make_napari_viewer_proxy()
    w = _dock(viewer, "Classify organelles")
    before = STATE.peek("classifier")

    def load(path):
        w.model.load(path)
        qtbot.waitUntil(lambda: w.model.loading is None, timeout=30_000)

    load(str(tiny_checkpoints["autoencoder"]))
    assert any("is an autoencoder checkpoint; choose a classifier" in m for m in notes)
    cut = tmp_path / "cut.pt"
    data = tiny_checkpoints["classifier"].read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    load(str(cut))
    assert any("cut.pt is truncated or corrupt" in m for m in notes)
    assert STATE.peek("classifier") is before


def test_stale_input_messages_are_cleared_when_the_inputs_change(make_napari_viewer_proxy, qtbot, tiny_models, notes):
    viewer = make_napari_viewer_proxy()
    w = _dock(viewer, "Classify organelles")
    assert _classify(qtbot, w) is None and "Select the protein image layer" in w.controls.message.value
    viewer.add_image(np.random.default_rng(0).random((40, 40)), name="protein")  # the problem is gone
    assert w.protein.value is not None and "Select the protein" not in w.controls.message.value
    r = _dock(viewer, "Reconstruct images")
    viewer.add_image(np.zeros((8, 8, 3), np.uint8), name="photo", rgb=True)
    r.image.value = viewer.layers["photo"]
    assert r.run() is None and "RGB" in r.controls.message.value
    r.image.value = viewer.layers["protein"]
    assert "RGB" not in r.controls.message.value


# ----------------------------------------------------------------------------------- reconstruct dock
def test_reconstruct_no_layer_and_nan_layer(make_napari_viewer_proxy, qtbot, tiny_models, notes):
    viewer = make_napari_viewer_proxy()
    w = _dock(viewer, "Reconstruct images")
    assert w.run() is None
    assert any("Select an image layer to reconstruct" in m for m in notes)
    viewer.add_image(np.full((40, 40), np.nan, np.float32), name="blank")
    job = w.run()
    qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    assert job is not None and any("no finite pixel" in m for m in notes)
    assert not any(layer.name.endswith("reconstruction") for layer in viewer.layers)


# ------------------------------------------------------------------------------------- fine-tune dock
@pytest.fixture
def ft(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    w = _dock(viewer, "Fine-tune models")
    w.device.value = "cpu"
    w.batch.value = 4
    w.epochs.value = 1
    yield viewer, w
    w._shutdown()


def _load(qtbot, w, path):
    with qtbot.waitSignal(w.dataset_loaded, timeout=30_000) as blocker:
        w.set_data_path(path, load=True)
    return blocker.args[0]


def _train(qtbot, w):
    with qtbot.waitSignal(w.training_finished, timeout=90_000) as blocker:
        w.train_button.native.click()
    return blocker.args[0]


def test_finetune_folder_with_no_images(ft, qtbot, tmp_path, notes):
    _, w = ft
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "readme.txt").write_text("no images here")
    assert _load(qtbot, w, tmp_path / "nothing") is None
    assert any("No readable labelled images" in m for m in notes)
    assert "No readable labelled images" in w.folder.summary.value


def test_finetune_class_folder_with_no_images_and_bad_files(ft, qtbot, tmp_path, notes):
    from napari_organelle.phantoms import write_dataset

    _, w = ft
    root = tmp_path / "set"
    write_dataset(root, 3, seed=1, size=40, classes=CLASSES3)
    (root / "Golgi_gia").mkdir()
    (root / "ER" / "zero.tif").write_bytes(b"")
    (root / "ER" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    data = _load(qtbot, w, root)
    assert data is not None and len(data.samples) == 9
    summary = w.folder.summary.value
    assert "'Golgi_gia' holds no images" in summary and "zero.tif" in summary and "broken.png" in summary
    assert any("'Golgi_gia' holds no images" in m for m in notes)


def test_finetune_one_class_folder(ft, qtbot, tmp_path, notes):
    from napari_organelle.phantoms import write_dataset

    _, w = ft
    write_dataset(tmp_path / "set", 3, seed=1, size=40, classes=CLASSES3)
    shutil.copytree(tmp_path / "set" / "ER", tmp_path / "one" / "ER")
    assert _load(qtbot, w, tmp_path / "one") is None
    assert any("Only one class" in m for m in notes)


def test_finetune_archive_with_path_traversal(ft, qtbot, tmp_path, notes):
    import zipfile

    from napari_organelle.phantoms import write_dataset

    _, w = ft
    src = tmp_path / "set"
    write_dataset(src, 3, seed=1, size=40, classes=CLASSES3)
    z = tmp_path / "data.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(src.rglob("*.tif")):
            zf.write(f, f.relative_to(src).as_posix())
        zf.writestr("../../escape.tif", (src / "ER" / "ER_000.tif").read_bytes())
    data = _load(qtbot, w, z)
    assert data is not None and len(data.samples) == 9
    assert "unsafe path in archive" in w.folder.summary.value
    assert any("unsafe path in archive" in m for m in notes)
    assert not (tmp_path.parent / "escape.tif").exists()


def test_finetune_dna_layer_of_another_size(ft, qtbot, cells, notes):
    viewer, w = ft
    for cls in CLASSES3:
        layer = viewer.add_image(np.stack([s.protein for s in cells.samples if s.label == cls]), name=cls)
        w.add_layer_row(layer, label=cls)
    viewer.add_image(np.zeros((30, 30), np.uint16), name="small dna")
    w.layer_rows.rows[0].dna.value = viewer.layers["small dna"]
    w.train_button.native.click()
    assert w.worker is None
    assert any("differ in size" in m and "small dna" in m for m in notes)


def test_finetune_no_image_layer_to_add(ft, qtbot, notes):
    viewer, w = ft
    viewer.add_labels(np.zeros((20, 20), np.int32), name="segmentation")
    w.source.value = "open layers"
    w.layer_rows.add_button.native.click()
    assert w.layer_rows.rows == []
    assert any("no image layer to add" in m for m in notes)


def test_finetune_unknown_class_names_train_a_new_head(ft, qtbot, cells, notes):
    """A class the active model does not know ('Banana') is a new class, not an error."""
    viewer, w = ft
    w.keep_classes.value = False
    for cls, name in zip(CLASSES3, ("ER", "Banana", "Nucleus")):
        layer = viewer.add_image(np.stack([s.protein for s in cells.samples if s.label == cls]), name=name)
        w.add_layer_row(layer, label=name)
    w.batch.value = 1000  # larger than the data: clamped
    outcome = _train(qtbot, w)
    assert outcome.error is None, outcome.error
    assert "Banana" in outcome.classes and len(outcome.classes) == 3


def test_finetune_device_that_does_not_exist(ft, qtbot, cells, notes):
    from napari_organelle.training import TrainConfig

    viewer, w = ft
    assert "cuda:9" not in w.device.choices  # never offered
    req = {"source": cells, "kind": "classifier", "val_fraction": 0.25,
           "config": TrainConfig(epochs=1, batch_size=4, device="cuda:9")}
    with qtbot.waitSignal(w.training_finished, timeout=60_000) as blocker:
        w.start(req)
    outcome = blocker.args[0]
    assert outcome.error is not None
    assert any("cuda" in m.lower() and ("not available" in m or "does not exist" in m) for m in notes)
    assert w.train_button.text == "Train" and not w.kept.save_button.enabled
