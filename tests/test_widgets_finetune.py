"""The "Fine-tune models" dock: train / stop / save / use, errors as notifications, clean shutdown.

Runs the real engine on tiny simulated sets (3 classes x 6 cells, 64 px) and the tiny models from
conftest (``tiny_models``), on the CPU. Waits on the dock's ``training_finished`` signal.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_organelle.preprocess import InputError
from napari_organelle.widgets.finetune import LR_FINETUNE, LR_SCRATCH

pytestmark = pytest.mark.qt

CLASSES3 = ("ER", "Mitochondria", "Nucleus")
AE_LR = "0.01"  # one epoch of the tiny untrained autoencoder at this rate improves on it
TIMEOUT_MS = 90_000


@pytest.fixture
def dock(make_napari_viewer_proxy, qtbot, tiny_models):
    """(viewer, FinetuneWidget) docked through the plugin manifest, set to the CPU."""
    viewer = make_napari_viewer_proxy()
    _, widget = viewer.window.add_plugin_dock_widget("napari-organelle", "Fine-tune models")
    from napari_organelle.widgets.finetune import FinetuneWidget

    assert isinstance(widget, FinetuneWidget)
    widget.device.value = "cpu"
    widget.batch.value = 4
    yield viewer, widget
    widget._shutdown()
    # no training thread outlives the test (napari's workers register themselves while running)
    from napari.qt.threading import WorkerBase

    qtbot.waitUntil(lambda: not any(wk.is_running for wk in list(getattr(WorkerBase, "_worker_set", ()))),
                    timeout=20_000)


@pytest.fixture(scope="module")
def cells():
    from napari_organelle.phantoms import simulate_dataset

    return simulate_dataset(6, seed=3, size=64, classes=CLASSES3)


def _add_class_layers(viewer, widget, cells, with_dna=True):
    """One stack layer per class (6 planes each) plus its DNA stack; one table row per class."""
    for cls in CLASSES3:
        prot = np.stack([s.protein for s in cells.samples if s.label == cls])
        layer = viewer.add_image(prot, name=f"{cls} protein")
        dna = None
        if with_dna:
            dna = viewer.add_image(np.stack([s.dna for s in cells.samples if s.label == cls]), name=f"{cls} dna")
        widget.add_layer_row(layer, label=cls, dna=dna)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _train(qtbot, widget):
    with qtbot.waitSignal(widget.training_finished, timeout=TIMEOUT_MS) as blocker:
        widget.train_button.native.click()
        assert widget.train_button.text == "Stop"
    return blocker.args[0]


def _warnings_since(n):
    from napari.utils.notifications import notification_manager

    return [str(r.message) for r in notification_manager.records[n:]]


def _n_records():
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)


def test_finetune_classifier_from_folder_then_use_and_save(dock, qtbot, tmp_path, monkeypatch):
    from napari_organelle.checkpoints import load_checkpoint, user_models_dir
    from napari_organelle.phantoms import write_dataset
    from napari_organelle.widgets._state import STATE

    viewer, w = dock
    write_dataset(tmp_path / "cells", 6, seed=1, size=64, classes=CLASSES3)
    with qtbot.waitSignal(w.dataset_loaded, timeout=30_000) as loaded:
        w.set_data_path(tmp_path / "cells", load=True)
    data = loaded.args[0]
    assert data is not None and len(data.samples) == 18
    summary = w.folder.summary.value
    assert all(c in summary for c in CLASSES3) and "18 images" in summary

    active = STATE.get_active("classifier")
    before = _state(active.model)
    assert w.lr.value == LR_FINETUNE  # starting from the active model: the gentle default
    w.epochs.value = 1
    outcome = _train(qtbot, w)
    assert outcome is not None and outcome.error is None, outcome and outcome.error
    res = outcome.result
    assert len(res.history) == 1 and res.best_epoch == 1 and not res.stopped
    # the model in use is untouched; the fine-tuned one differs from it
    after = _state(active.model)
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    tuned = _state(res.model)
    assert any(not np.array_equal(before[k].numpy(), tuned[k].numpy()) for k in before)
    # UI at the end: Train again, plot, log line, confusion matrix over the validation images
    assert w.train_button.text == "Train" and w.train_button.enabled
    assert w.plot.epochs == [1] and "Epoch: 1" in w.log.value
    assert w.controls.bar.value == 1 and w.controls.bar.max == 1
    assert outcome.confusion is not None and outcome.confusion.sum() == outcome.n_val
    assert outcome.classes == list(active.classes)  # "keep the model's classes" (default)
    assert w.kept.save_button.enabled and w.kept.use_button.enabled
    # the starting model's validation is the baseline the best epoch is compared with
    assert res.baseline is not None and res.best_val_loss < res.baseline["val_loss"]
    text = w.result.value
    assert "Starting model (tiny-classifier): val accuracy" in text and "→ best epoch 1: val accuracy" in text
    assert outcome.name.startswith("fine-tuned classifier ") and outcome.name in w.kept.target.value
    assert "not saved yet" in w.kept.target.value

    # Use this model -> the other docks' shared state switches to a copy of the result
    seen = []
    STATE.changed.connect(seen.append)
    # the tiny model starts (and, after one epoch, stays) at chance: Use asks twice, never silently
    assert outcome.warning.startswith("This model is at chance") and "at chance" in w.result.value
    w.kept.use_button.native.click()
    assert seen == [] and w.kept.use_button.text == "Use anyway (at chance)"
    w.kept.use_button.native.click()
    assert seen == ["classifier"]
    now = STATE.get_active("classifier")
    assert now is w.kept.used_model and now is not active and now.model is not res.model
    st = _state(now.model)
    assert all(np.array_equal(st[k].numpy(), tuned[k].numpy()) for k in tuned)
    assert now.name == outcome.name and now.path is None and "in use" in w.kept.target.value

    # Save as... -> a checkpoint that loads (default folder: the user's model folder)
    target = tmp_path / "saved" / "my-model"
    asked = {}

    def fake_dialog(mode, caption, start_path, filter):
        asked["dir"] = start_path
        return str(target)

    monkeypatch.setattr("napari_organelle.widgets._kept_model.show_file_dialog", fake_dialog)
    w.kept.save_button.native.click()
    assert asked["dir"].startswith(str(user_models_dir()))
    path = target.with_name("my-model.pt")
    assert w.kept.saved_path == path and path.exists()
    # the active model (used before saving) now carries the file's name and path, same weights
    renamed = STATE.get_active("classifier")
    assert seen == ["classifier", "classifier"] and renamed is w.kept.used_model
    assert renamed.name == "my-model" and renamed.path == path and renamed.model is now.model
    assert renamed.training_info["name"] == "my-model"
    assert str(path) in w.kept.target.value and "in use" in w.kept.target.value
    lm = load_checkpoint(path, expected_kind="classifier")
    assert lm.classes == outcome.classes
    assert lm.training_info["best_epoch"] == 1 and lm.training_info["n_val"] == outcome.n_val
    assert lm.training_info["baseline"]["val_loss"] == pytest.approx(res.baseline["val_loss"])
    assert "val_accuracy" in lm.metrics
    assert not list(path.parent.glob("*.tmp"))


def test_stop_keeps_best_weights(dock, qtbot, cells):
    viewer, w = dock
    _add_class_layers(viewer, w, cells)
    w.epochs.value = 40
    w.batch.value = 2
    clicked = []

    def stop_in_epoch_two(ev):
        if not clicked and getattr(ev, "batch", None) is not None and ev.epoch >= 2:
            clicked.append(ev)
            w.train_button.native.click()  # Stop
            assert w.train_button.text.startswith("Stopping")

    with qtbot.waitSignal(w.training_finished, timeout=TIMEOUT_MS) as blocker:
        w.train_button.native.click()
        w.controls.job.worker.yielded.connect(stop_in_epoch_two)
    outcome = blocker.args[0]
    assert outcome.error is None
    res = outcome.result
    assert res.stopped and "stopped by the user" in res.stop_reason
    assert 1 <= len(res.history) < 40
    assert res.best_epoch >= 1
    assert res.best_val_loss == min(ev.val_loss for ev in res.history)
    assert w.train_button.text == "Train" and w.train_button.enabled
    assert w.kept.use_button.enabled  # a finished epoch exists: its weights can be used
    assert "Stopped" in w.result.value


def test_errors_become_notifications(dock, qtbot, cells):
    viewer, w = dock
    # no data at all: refused before any thread starts
    n = _n_records()
    w.train_button.native.click()
    assert any("No training data" in m for m in _warnings_since(n))
    assert w.train_button.text == "Train" and w.worker is None
    # open-layers tab, one class only: refused by the worker, reported in the GUI thread
    layer = viewer.add_image(np.stack([s.protein for s in cells.samples[:6]]), name="only ER")
    w.add_layer_row(layer, label="ER")
    n = _n_records()
    outcome = _train(qtbot, w)
    assert outcome.error is not None and "Only one class" in str(outcome.error)
    assert any("Only one class" in m for m in _warnings_since(n))
    assert w.train_button.text == "Train" and not w.kept.save_button.enabled
    # a row without a class
    w.add_layer_row(layer, label="")
    n = _n_records()
    w.train_button.native.click()
    assert any("Give the layer" in m for m in _warnings_since(n))
    assert w.worker is None


def test_closing_the_dock_stops_training(dock, qtbot, cells):
    viewer, w = dock
    _add_class_layers(viewer, w, cells, with_dna=False)
    w.epochs.value = 500
    w.batch.value = 2
    w.train_button.native.click()
    job = w.controls.job
    qtbot.waitUntil(lambda: len(w.plot.epochs) >= 1, timeout=TIMEOUT_MS)
    viewer.window.remove_dock_widget(w.native)  # what the dock's close button does
    assert job.stop.is_set()
    assert job.done.wait(20)  # the training thread ended (shutdown waits for it)
    qtbot.waitUntil(lambda: w.worker is None, timeout=10_000)
    assert len(w.plot.epochs) < 500
    w.native.deleteLater()


def test_closing_the_widget_stops_training(dock, qtbot, cells):
    viewer, w = dock
    _add_class_layers(viewer, w, cells, with_dna=False)
    w.epochs.value = 500
    w.train_button.native.click()
    job = w.controls.job
    qtbot.waitUntil(lambda: len(w.plot.epochs) >= 1, timeout=TIMEOUT_MS)
    w.close()
    assert job.stop.is_set() and job.done.is_set()


def test_autoencoder_one_epoch(dock, qtbot, cells):
    from napari_organelle.widgets._state import STATE

    viewer, w = dock
    w.kind.value = "autoencoder"
    assert not w.freeze.enabled
    assert w.layer_rows.rows == [] or not w.layer_rows.rows[0].cls.visible
    stack = viewer.add_image(np.stack([s.protein for s in cells.samples[:8]]), name="cells")
    w.add_layer_row(stack, label="")
    w.epochs.value = 1
    w.lr.value = AE_LR
    outcome = _train(qtbot, w)
    assert outcome.error is None, outcome.error
    res = outcome.result
    assert res.kind == "autoencoder" and len(res.history) == 1 and res.best_epoch == 1
    assert outcome.confusion is None
    assert w.plot.metric_name.startswith("PSNR") and w.plot.val_metric[0] is not None
    w.kept.use_button.native.click()
    assert STATE.get_active("autoencoder") is w.kept.used_model
    assert w.kept.used_model.kind == "autoencoder"


def test_device_combo_lists_this_machine(qtbot):
    from napari_organelle.training import available_devices
    from napari_organelle.widgets._devices import device_picker

    combo = device_picker()
    assert list(combo.choices)[:2] == ["auto", "cpu"]  # there at once; the GPUs are listed in the background
    qtbot.waitUntil(lambda: combo.current_choice.startswith("auto (->"), timeout=20_000)
    assert list(combo.choices) == [d for d, _ in available_devices()]
    assert combo.value == "auto"
    combo.value = "cpu"
    with pytest.raises(ValueError):
        combo.value = "cuda:99"  # not on this machine: refused, the choice stays
    assert combo.value == "cpu"


def test_closing_the_viewer_stops_training(dock, qtbot, cells):
    viewer, w = dock
    _add_class_layers(viewer, w, cells, with_dna=False)
    w.epochs.value = 500
    w.train_button.native.click()
    job = w.controls.job
    qtbot.waitUntil(lambda: len(w.plot.epochs) >= 1, timeout=TIMEOUT_MS)
    viewer.close()  # napari cancels its running tasks: the worker's quit() sets the stop event
    assert job.stop.is_set()
    assert job.done.wait(20)
    qtbot.waitUntil(lambda: not job.worker.is_running, timeout=10_000)


def _ae_rows(viewer, w, cells, n=8):
    w.kind.value = "autoencoder"
    stack = viewer.add_image(np.stack([s.protein for s in cells.samples[:n]]), name="cells")
    w.add_layer_row(stack, label="")
    w.epochs.value = 1


def test_learning_rate_default_follows_start_from_but_keeps_a_typed_value(dock):
    _, w = dock
    assert w.start_from.value == "active" and w.lr.value == LR_FINETUNE
    w.start_from.value = "scratch"  # scratch
    assert w.lr.value == LR_SCRATCH
    w.start_from.value = "active"
    assert w.lr.value == LR_FINETUNE
    w.lr.value = "0.005"  # typed by the user: never replaced
    w.start_from.value = "scratch"
    assert w.lr.value == "0.005"
    assert LR_FINETUNE in w.lr.tooltip and LR_SCRATCH in w.lr.tooltip


def test_run_that_does_not_improve_says_the_model_is_unchanged(dock, qtbot, cells):
    from napari_organelle.widgets._state import STATE

    viewer, w = dock
    _ae_rows(viewer, w, cells)
    active = STATE.get_active("autoencoder")
    before = _state(active.model)
    w.epochs.value = 2
    w.lr.value = "50"  # refused: far too high
    with pytest.raises(InputError, match="far too large"):
        w.build_request()
    w.lr.value = "1"  # the highest allowed, still far too high: every epoch is worse than the start
    outcome = _train(qtbot, w)
    assert outcome.error is None and not outcome.has_new_model
    res = outcome.result
    assert res.best_epoch == 0 and res.baseline is not None
    assert all(np.array_equal(before[k].numpy(), v.numpy()) for k, v in _state(res.model).items())
    text = w.result.value
    assert "No epoch improved on the starting model (tiny-autoencoder: val PSNR" in text
    assert "it is unchanged" in text
    assert w.kept.outcome is None and not w.kept.use_button.enabled and not w.kept.save_button.enabled
    assert "No model to save or use yet" in w.kept.target.value
    # the plot shows the line the epochs had to beat; no confusion matrix box for an autoencoder
    assert w.plot.baseline == (pytest.approx(res.baseline["val_loss"]), pytest.approx(res.baseline["val_psnr"]))
    assert not w.confusion_plot.isVisibleTo(w.native)


def test_a_failed_run_keeps_the_previous_result_usable(dock, qtbot, cells, tmp_path, monkeypatch):
    from napari_organelle.checkpoints import load_checkpoint
    from napari_organelle.widgets._state import STATE

    viewer, w = dock
    _ae_rows(viewer, w, cells)
    w.lr.value = AE_LR
    first = _train(qtbot, w)
    assert first.has_new_model and w.kept.outcome is first
    kept = _state(first.result.model)
    # the next run fails in the worker (a classifier needs two classes; the table has one)
    w.kind.value = "classifier"
    w.layer_rows.rows[0].cls.value = "ER"
    with qtbot.waitSignal(w.training_finished, timeout=TIMEOUT_MS) as blocker:
        w.train_button.native.click()
        # while it runs the buttons still act on the first result, and the dock says so
        assert w.train_button.text == "Stop"
        assert w.kept.save_button.enabled and w.kept.use_button.enabled
        assert first.name in w.kept.target.value and "only if it gives a new model" in w.kept.target.value
        assert first.name in w.result.value
    failed = blocker.args[0]
    assert failed is w.last_run and failed.error is not None and "Only one class" in str(failed.error)
    assert w.kept.outcome is first
    assert "Training failed" in w.result.value and first.name in w.result.value
    assert w.kept.save_button.enabled and w.kept.use_button.enabled
    assert first.name in w.kept.target.value
    # Use and Save act on the first result
    w.kept.use_button.native.click()
    assert STATE.get_active("autoencoder") is w.kept.used_model and w.kept.used_model.name == first.name
    target = tmp_path / "kept.pt"
    monkeypatch.setattr("napari_organelle.widgets._kept_model.show_file_dialog", lambda **kw: str(target))
    w.kept.save_button.native.click()
    lm = load_checkpoint(target, expected_kind="autoencoder")
    assert all(np.array_equal(kept[k].numpy(), v.numpy()) for k, v in _state(lm.model).items())
    assert STATE.get_active("autoencoder").name == "kept"


def test_unsaved_runs_have_distinct_names_and_saving_renames_only_the_one_in_use(dock, qtbot, cells,
                                                                                 tmp_path, monkeypatch):
    from napari_organelle.widgets._state import STATE

    viewer, w = dock
    _ae_rows(viewer, w, cells)
    w.start_from.value = "scratch"  # scratch would build a full-size model: stay on the tiny one
    w.start_from.value = "active"
    w.lr.value = AE_LR
    first = _train(qtbot, w)
    w.kept.use_button.native.click()
    used = STATE.get_active("autoencoder")
    assert used.name == first.name and used.path is None
    second = _train(qtbot, w)  # fine-tunes the first (now active)
    assert second.has_new_model and w.kept.outcome is second
    assert second.name != first.name and second.name.startswith("fine-tuned autoencoder ")
    assert second.started_from == first.name
    # saving the second result does not rename the active model (the first result)
    monkeypatch.setattr("napari_organelle.widgets._kept_model.show_file_dialog", lambda **kw: str(tmp_path / "second.pt"))
    w.kept.save_button.native.click()
    assert STATE.get_active("autoencoder") is used and used.name == first.name
    assert "in use" not in w.kept.target.value


def test_autoencoder_trains_on_a_plain_folder_of_images(dock, qtbot, cells, tmp_path):
    import tifffile

    viewer, w = dock
    folder = tmp_path / "plain"
    folder.mkdir()
    for i, s in enumerate(cells.samples[:8]):
        tifffile.imwrite(folder / f"cell{i}.tif", s.protein)
    # the classifier refuses a folder without class sub-folders ...
    with qtbot.waitSignal(w.dataset_loaded, timeout=30_000) as loaded:
        w.set_data_path(folder, load=True)
    assert loaded.args[0] is None and "not inside a class folder" in w.folder.summary.value
    # ... switching to the autoencoder loads it again, as one class of unlabelled images
    with qtbot.waitSignal(w.dataset_loaded, timeout=30_000) as loaded:
        w.kind.value = "autoencoder"
    data = loaded.args[0]
    assert data is not None and data.classes == ["unlabelled"] and len(data) == 8
    assert "8 images in 1 class " in w.folder.summary.value
    w.epochs.value = 1
    w.lr.value = AE_LR
    outcome = _train(qtbot, w)
    assert outcome.error is None, outcome.error
    assert outcome.n_train + outcome.n_val == 8 and outcome.has_new_model


def test_a_row_whose_layer_was_deleted_never_switches_to_another_layer(dock, cells):
    viewer, w = dock
    _add_class_layers(viewer, w, cells, with_dna=False)
    w.add_layer_row("ER protein", label="Golgi_gpp")  # by name, as scripts do (napari gives proxies)
    assert w.layer_rows.rows[3].layer.current_choice == "ER protein"
    viewer.layers.remove("Nucleus protein")
    viewer.add_image(np.zeros((2, 64, 64), np.float32), name="unrelated")  # any later layer event
    viewer.layers["Mitochondria protein"].name = "Mito renamed"
    texts = [row.layer.current_choice for row in w.layer_rows.rows]
    assert texts == ["ER protein", "Mito renamed", "(layer closed)", "ER protein"]
    assert w.layer_rows.rows[2].layer.value is None
    with pytest.raises(InputError, match="Row 3"):
        w.layer_rows.dataset()  # the closed row is reported, not filled with some other layer


def test_save_as_never_overwrites_name_pt_without_asking(dock, qtbot, cells, tmp_path, monkeypatch):
    from napari_organelle.checkpoints import user_models_dir

    viewer, w = dock
    _ae_rows(viewer, w, cells)
    w.lr.value = AE_LR
    outcome = _train(qtbot, w)
    assert outcome.error is None and w.kept.outcome is not None
    home = tmp_path / "fresh-home" / "models"
    monkeypatch.setenv("NAPARI_ORGANELLE_HOME", str(home))  # a first install: the folder does not exist
    (tmp_path / "ft1.pt").write_bytes(b"PK precious")
    asked, confirm = [], []
    monkeypatch.setattr("napari_organelle.widgets._kept_model.show_file_dialog",
                        lambda **kw: asked.append(kw["start_path"]) or str(tmp_path / "ft1"))
    monkeypatch.setattr(type(w.kept), "_confirm_overwrite", lambda self, path: confirm.append(path) or False)
    assert w.kept.save_as() is None  # typed 'ft1'; ft1.pt exists; the user says no
    assert (tmp_path / "ft1.pt").read_bytes() == b"PK precious" and confirm == [tmp_path / "ft1.pt"]
    assert user_models_dir() == home and home.is_dir() and asked[0].startswith(str(home))
    monkeypatch.setattr(type(w.kept), "_confirm_overwrite", lambda self, path: True)
    assert w.kept.save_as() == tmp_path / "ft1.pt" and (tmp_path / "ft1.pt").read_bytes() != b"PK precious"


def test_a_run_finishing_while_the_save_dialog_is_open_is_not_marked_saved(dock, qtbot, cells, tmp_path,
                                                                            monkeypatch):
    import copy

    viewer, w = dock
    _ae_rows(viewer, w, cells)
    w.lr.value = AE_LR
    assert _train(qtbot, w).error is None
    first = w.kept.outcome

    def dialog_during_which_a_run_finishes(**kw):
        newer = copy.copy(first)  # what _on_done does when the next run gives a new model
        newer.name = "fine-tuned autoencoder (newer)"
        w.kept.outcome, w.kept.saved_path = newer, None
        return str(tmp_path / "old.pt")

    monkeypatch.setattr("napari_organelle.widgets._kept_model.show_file_dialog", dialog_during_which_a_run_finishes)
    out = w.kept.save_as()
    assert out == tmp_path / "old.pt" and out.exists()
    assert w.kept.saved_path is None and w.kept.outcome.name == "fine-tuned autoencoder (newer)"  # the new one: unsaved
    assert "previous result" in w.log.value.splitlines()[-1]


def test_export_to_bioimageio_writes_a_package_that_loads_back(dock, qtbot, cells, tmp_path, monkeypatch):
    import zipfile

    from napari_organelle.checkpoints import resolve_model

    viewer, w = dock
    _ae_rows(viewer, w, cells)
    w.lr.value = AE_LR
    assert _train(qtbot, w).has_new_model and w.kept.export_button.enabled
    target = tmp_path / "shared model"
    monkeypatch.setattr("napari_organelle.widgets._kept_model.show_file_dialog", lambda **kw: str(target))
    w.kept.export_button.native.click()
    qtbot.waitUntil(lambda: w.kept.export_button.enabled, timeout=120_000)
    out = tmp_path / "shared model.zip"
    assert out.exists() and "rdf.yaml" in zipfile.ZipFile(out).namelist()
    assert f"Exported {w.kept.outcome.name}" in w.log.value
    back = resolve_model(str(out), kind="autoencoder")
    assert back.kind == "autoencoder" and back.arch == w.kept.outcome.result.arch


def test_open_layers_train_from_a_stack_labelled_per_plane_with_its_dna(dock, qtbot):
    viewer, w = dock
    viewer.open_sample("napari-organelle", "cells")  # a 10-plane stack; metadata["classes"] names each plane
    protein, dna = viewer.layers[0], viewer.layers[1]
    viewer.layers.selection = {protein, dna}  # both selected: one row, the DNA layer as its DNA
    w.source.value = "open layers"
    w.layer_rows.add_button.native.click()
    assert len(w.layer_rows.rows) == 1
    row = w.layer_rows.rows[0]
    assert row.cls.value == "per plane (layer metadata)" and row.dna.value is not None
    assert row.dna.value.name == dna.name and row.n_images.value == "10 img"
    data = w.layer_rows.dataset()
    assert [s.label for s in data.samples] == list(protein.metadata["classes"])
    assert all(s.dna is not None for s in data.samples) and len(data.classes) == 10

