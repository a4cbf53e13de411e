"""The "Classify organelles" dock, docked through the plugin manifest, on the simulated samples."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytestmark = pytest.mark.qt

PLUGIN = "napari-organelle"
N_CLASSES = 10


def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Classify organelles")
    return widget


def _run(qtbot, widget, timeout=60_000):
    job = widget.run()
    assert job is not None, widget.controls.message.value
    qtbot.waitUntil(lambda: not job.running, timeout=timeout)
    return job


def _notifications():
    from napari.utils.notifications import notification_manager

    return notification_manager.records


def test_whole_image_with_cam(make_napari_viewer_proxy, qtbot, tiny_models, tmp_path):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample(PLUGIN, "golgi_cell")
    protein = viewer.layers["Golgi_gpp protein"]
    protein.scale = (0.5, 0.25)
    protein.translate = (7, -3)
    widget = _dock(viewer)
    assert widget.protein.value.name == "Golgi_gpp protein"
    assert widget.dna.value.name == "Golgi_gpp DNA"  # picked automatically by name and size
    assert widget.mode.value == "whole image"
    widget.cam.value = True
    _run(qtbot, widget)

    rows = widget.table.rows
    assert len(rows) == 1
    row = rows[0]
    assert row["label"] in widget.chart.probabilities()
    assert {f"p_{c}" for c in widget.chart.probabilities()} <= set(row)
    assert len(widget.chart.probabilities()) == N_CLASSES
    assert sum(widget.chart.probabilities().values()) == pytest.approx(1.0, abs=1e-3)
    meta = protein.metadata["organelle"]
    assert meta["label"] == row["label"] and meta["mode"] == "whole image"
    assert meta["has_dna"] is True and meta["model"] == "tiny-classifier"

    cams = [lay for lay in viewer.layers if lay.metadata.get("organelle_cam_of") == protein.name]
    assert len(cams) == 1
    cam = cams[0]
    assert cam.name == f"Golgi_gpp protein CAM ({row['label']})"
    assert cam.data.shape == protein.data.shape
    np.testing.assert_allclose(cam.scale, protein.scale)
    np.testing.assert_allclose(cam.translate, protein.translate)
    assert cam.colormap.name == "inferno" and cam.blending == "additive"
    assert cam.opacity == pytest.approx(0.6)
    assert 0.0 <= float(cam.data.min()) and float(cam.data.max()) <= 1.0

    # re-running replaces the CAM layer instead of piling up copies
    _run(qtbot, widget)
    assert sum(lay.metadata.get("organelle_cam_of") == protein.name for lay in viewer.layers) == 1

    path = widget.table.export_csv(tmp_path / "out.csv")
    with open(path, newline="") as fh:
        got = list(csv.DictReader(fh))
    assert len(got) == 1 and got[0]["label"] == row["label"] and "p_Nucleus" in got[0]


def test_stack_mode_rows_per_plane_and_dims_follow(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample(PLUGIN, "cells")
    widget = _dock(viewer)
    assert widget.mode.value == "each plane of a stack"  # suggested for a stack layer
    assert widget.dna.value is not None
    _run(qtbot, widget)
    rows = widget.table.rows
    assert len(rows) == N_CLASSES
    assert [r["plane"] for r in rows] == [str(i) for i in range(N_CLASSES)]
    assert {r["image"] for r in rows} == {viewer.layers[0].name}  # a CSV export says which layer
    assert [r["expected"] for r in rows] == list(viewer.layers[0].metadata["classes"])
    meta = viewer.layers[0].metadata["organelle"]
    assert meta["mode"] == "each plane of a stack" and len(meta["rows"]) == N_CLASSES

    viewer.dims.set_current_step(0, 3)
    qtbot.waitUntil(lambda: "plane 3" in widget.chart.title(), timeout=5000)
    assert widget.chart.probabilities() == pytest.approx(
        {k[2:]: v for k, v in rows[3].items() if k.startswith("p_")}, abs=1e-5)
    # a click on a table row moves the slider to that plane
    widget.table.table.native.setCurrentCell(6, 0)
    assert viewer.dims.current_step[0] == 6
    assert "plane 6" in widget.chart.title()


def test_each_cell_mode_features_and_class_layer(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample(PLUGIN, "field")
    labels = viewer.layers["Field cells"]
    labels.scale = (2, 2)
    widget = _dock(viewer)
    widget.set_mode("each labelled cell")
    assert widget.cells.value.name == "Field cells"
    assert not widget.cam.enabled
    _run(qtbot, widget)

    ids = sorted(int(i) for i in np.unique(labels.data) if i > 0)
    feats = labels.features
    assert sorted(feats["index"].astype(int)) == ids
    for col in ("label", "confidence", "p_Nucleus", "true_class"):
        assert col in feats.columns
    assert len(widget.table.rows) == len(ids)
    assert {r["cell"] for r in widget.table.rows} == set(ids)

    layer = viewer.layers["Field protein predicted classes"]
    assert layer.data.shape == labels.data.shape
    np.testing.assert_allclose(layer.scale, labels.scale)
    from napari_organelle.classes import class_color, hex_to_rgba

    first = widget.table.rows[0]
    np.testing.assert_allclose(layer.colormap.map(first["cell"]), hex_to_rgba(class_color(first["label"])),
                               atol=1e-2)
    assert not widget.legend.native.isHidden()
    assert first["label"] in widget.legend.value

    n_layers = len(viewer.layers)
    _run(qtbot, widget)  # re-run updates, does not duplicate
    assert len(viewer.layers) == n_layers


def test_dna_shape_mismatch_is_a_notification(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    rng = np.random.default_rng(0)
    viewer.add_image(rng.random((64, 64)), name="protein")
    viewer.add_image(rng.random((80, 80)), name="DNA other cell")
    widget = _dock(viewer)
    widget.dna.value = viewer.layers["DNA other cell"]
    before = len(_notifications())
    assert widget.run() is None
    assert "64x64" in widget.controls.message.value and "80x80" in widget.controls.message.value
    assert len(_notifications()) > before
    assert widget.controls.button.enabled and widget.controls.button.text == "Classify"


def test_error_inside_worker_is_a_notification(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((64, 64), np.uint16), name="blank")
    widget = _dock(viewer)
    before = len(_notifications())
    _run(qtbot, widget)
    assert "constant" in widget.controls.message.value
    assert len(_notifications()) > before
    assert widget.table.rows == []


def test_model_follows_shared_state(make_napari_viewer_proxy, qtbot, tiny_models, tiny_checkpoints):
    from napari_organelle.checkpoints import load_checkpoint
    from napari_organelle.widgets._state import STATE

    viewer = make_napari_viewer_proxy()
    widget = _dock(viewer)
    other = load_checkpoint(tiny_checkpoints["classifier"], expected_kind="classifier", name="other-model")
    STATE.set_active("classifier", other)
    assert widget.model.combo.value == "other-model"
    qtbot.waitUntil(lambda: "other-model:" in widget.model.card.value, timeout=20_000)  # the card is read off-thread
    assert "simulated" in widget.model.card.value and "other-model" in widget.model.card.tooltip
    # loading an unusable file says why and keeps the previous model
    before = len(_notifications())
    widget.model.load(str(tiny_checkpoints["autoencoder"]))
    qtbot.waitUntil(lambda: widget.model.loading is None, timeout=20_000)
    assert any("autoencoder" in str(n.message) for n in _notifications()[before:])
    assert STATE.peek("classifier") is other and widget.model.combo.value == "other-model"


def test_choosing_the_bundled_model_again_adds_no_duplicate_entry(make_napari_viewer_proxy, qtbot):
    from napari_organelle.widgets._state import STATE

    STATE.reset()
    viewer = make_napari_viewer_proxy()
    widget = _dock(viewer)
    qtbot.waitUntil(lambda: "(loads on first run)" in widget.model.card.value, timeout=20_000)  # listed
    choices = list(widget.model.combo.choices)
    assert choices[0] == "bundled-classifier" and choices[-1] == "Load from file..."
    for _ in range(2):  # pick it, then pick it again
        widget.model.load("bundled-classifier")
        qtbot.waitUntil(lambda: widget.model.loading is None, timeout=20_000)
        assert STATE.peek("classifier").name == "bundled-classifier"
        assert list(widget.model.combo.choices) == choices
    STATE.reset()


def test_cancel_stack(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.random.default_rng(1).random((40, 64, 64)).astype(np.float32), name="many")
    widget = _dock(viewer)
    job = widget.run()
    job.cancel()
    qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    assert widget.controls.button.enabled and widget.controls.button.text == "Classify"
    # the stop request is checked before each plane; it was set right after the start
    assert widget.table.rows == []
    assert "stopped" in widget.controls.message.value
    assert "organelle" not in viewer.layers["many"].metadata


def test_demo_docks_widgets_and_shows_a_result(qtbot, tiny_models):
    from napari_organelle.widgets.demo import run_demo

    viewer = run_demo(block=False, with_finetune=False)
    try:
        docks = list(viewer.window.dock_widgets)
        assert any("Classify organelles" in name for name in docks)
        assert any("Reconstruct images" in name for name in docks)
        widget = viewer.window.dock_widgets[
            next(n for n in docks if "Classify organelles" in n)]
        qtbot.waitUntil(lambda: len(widget.table.rows) == N_CLASSES, timeout=60_000)
        assert viewer.dims.current_step[0] == 4
        assert "plane 4" in widget.chart.title()
        # it fits a 1000 px screen: the docks are tabs of one area, each with the window's height
        window = widget.native.window()
        assert window.height() <= 1000 and window.minimumSizeHint().height() <= 1000
        dock = widget.native.parent()
        assert [d.windowTitle() for d in window.tabifiedDockWidgets(dock)] == [
            next(n for n in docks if "Reconstruct images" in n)]
        assert widget.native.height() >= 0.6 * window.height()
    finally:
        viewer.close()


def test_blank_plane_of_a_stack_is_not_classified_and_the_rest_are(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample(PLUGIN, "cells")
    protein = viewer.layers[0]
    data = np.array(protein.data)
    data[4] = 0  # an empty frame, as microscopes do write
    protein.data = data
    widget = _dock(viewer)
    assert list(widget.device.choices)[:2] == ["auto", "cpu"]  # "Run on": auto picks a GPU when there is one
    widget.device.value = "cpu"
    widget.cam.value = True
    _run(qtbot, widget)
    rows = widget.table.rows
    assert len(rows) == N_CLASSES
    assert rows[4]["label"] == "not classified" and "constant" in rows[4]["note"]
    assert all(r["label"] != "not classified" and r["note"] == "" for k, r in enumerate(rows) if k != 4)
    assert "1 plane not classified" in widget.controls.message.value
    cam = next(layer for layer in viewer.layers if layer.metadata.get("organelle_cam_of") == protein.name)
    assert cam.data.shape == data.shape and not np.asarray(cam.data[4]).any()
    from napari_organelle.inference import activation_map

    dna = widget.dna.value.data
    np.testing.assert_allclose(cam.data[3], activation_map(data[3], dna[3], tiny_models["classifier"],
                                                           target=rows[3]["label"]), atol=1e-5)
    widget.table.table.native.setCurrentCell(4, 0)
    assert "Not classified" in widget.chart.title()


def _field_dock(viewer, features=None):
    viewer.open_sample(PLUGIN, "field")
    labels = viewer.layers["Field cells"]
    if features is not None:
        labels.features = features
    widget = _dock(viewer)
    widget.set_mode("each labelled cell")
    return widget, labels


def test_users_own_cell_measurements_are_never_lost(make_napari_viewer_proxy, qtbot, tiny_models):
    import pandas as pd

    viewer = make_napari_viewer_proxy()
    # a regionprops_table-style table: no 'index' column, and a 'label' column of cell ids
    widget, labels = _field_dock(viewer)
    ids = sorted(int(i) for i in np.unique(labels.data) if i > 0)
    mine = pd.DataFrame({"label": ids, "area": [float(i) * 10 for i in ids]})
    labels.features = mine
    _run(qtbot, widget)
    pd.testing.assert_frame_equal(labels.features.reset_index(drop=True), mine)  # untouched
    assert "left untouched" in widget.controls.message.value
    classes = viewer.layers["Field protein predicted classes"].features
    assert sorted(classes["index"].astype(int)) == ids and "confidence" in classes.columns
    # with an 'index' column and no clash, the results are merged in and the user's column kept
    labels.features = pd.DataFrame({"index": ids, "area": [float(i) for i in ids]})
    _run(qtbot, widget)
    f = labels.features
    assert list(f["area"]) == [float(i) for i in f["index"]] and "confidence" in f.columns
    _run(qtbot, widget)  # a re-run replaces its own columns, keeps 'area'
    assert list(labels.features.columns).count("confidence") == 1 and "area" in labels.features.columns


def test_multiscale_layer_is_refused_with_a_message(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    p = np.random.default_rng(0).random((256, 256)).astype(np.float32)
    viewer.add_image([p, p[::2, ::2], p[::4, ::4]], multiscale=True, name="pyramid")
    widget = _dock(viewer)
    assert widget.run() is None
    assert "multiscale" in widget.controls.message.value


def test_cam_of_a_rotated_stack_plane_lands_on_that_plane(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample(PLUGIN, "cells")
    src = viewer.layers[0]
    src.scale, src.rotate = (2, 0.5, 0.25), 30
    widget = _dock(viewer)
    widget.set_mode("whole image")
    widget.cam.value = True
    viewer.dims.set_current_step(0, 3)
    _run(qtbot, widget)
    cam = next(layer for layer in viewer.layers if layer.metadata.get("organelle_cam_of") == src.name)
    for y, x in ((0, 0), (100, 17), (381, 250)):
        np.testing.assert_allclose(cam.data_to_world((y, x)), src.data_to_world((3, y, x))[1:], atol=1e-6)


def test_dna_layer_added_after_the_dock_opened_is_chosen(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    widget = _dock(viewer)
    from napari_organelle.phantoms import simulate_cell

    protein, dna = simulate_cell("ER", np.random.default_rng(1), size=96)
    viewer.add_image(dna, name="cell DAPI")     # DNA first: the only choice for a moment
    viewer.add_image(protein, name="cell GFP")
    assert widget.protein.value.name == "cell GFP"
    assert widget.dna.value.name == "cell DAPI"
    # a choice the user made is kept
    widget.dna.value = None
    viewer.add_image(dna, name="another DNA")
    assert widget.dna.value is None


def test_results_never_land_on_a_new_layer_that_took_the_name(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample(PLUGIN, "cells")
    src = viewer.layers[0]
    name = src.name
    widget = _dock(viewer)
    job = widget.run()
    assert job is not None and widget.run() is job  # a second Run while it starts: the same job
    viewer.layers.remove(src)
    newcomer = viewer.add_image(np.zeros((5, 64, 64), np.float32), name=name)
    qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    assert "organelle" not in newcomer.metadata
    assert "was removed" in widget.controls.message.value


def test_lazy_stack_is_read_in_the_worker_not_on_the_gui_thread(make_napari_viewer_proxy, qtbot, tiny_models):
    import threading

    import dask
    import dask.array as da

    from napari_organelle.phantoms import simulate_dataset

    cells = simulate_dataset(1, seed=2, size=64)
    stack = np.stack([s.protein for s in cells.samples])
    readers: list[str] = []

    def record(block):
        readers.append(threading.current_thread().name)
        return block

    lazy = da.from_array(stack, chunks=(1, 64, 64)).map_blocks(record, dtype=stack.dtype)
    viewer = make_napari_viewer_proxy()
    with dask.config.set(scheduler="synchronous"):  # blocks are computed in the thread that asks
        viewer.add_image(lazy, name="lazy stack")
        widget = _dock(viewer)
        readers.clear()  # napari itself reads the plane it shows, on the GUI thread
        _run(qtbot, widget)
    assert len(widget.table.rows) == len(stack)
    assert readers and threading.main_thread().name not in readers


def test_the_simulated_cells_warning_leads_the_model_card(make_napari_viewer_proxy, qtbot):
    from napari_organelle.widgets._state import STATE

    STATE.reset()
    viewer = make_napari_viewer_proxy()
    widget = _dock(viewer)
    STATE.get_active("classifier")  # the bundled classifier, as on first run
    widget.model.show_active()
    qtbot.waitUntil(lambda: "bundled-classifier:" in widget.model.card.value, timeout=30_000)
    card = widget.model.card.value
    assert card.splitlines()[0].startswith("These weights learned from simulated cells")
    assert len(card.splitlines()) <= 3 and "accuracy on real HPA cells" in card  # short; the whole card is the tooltip
    assert "Trained on: simulated cells" in widget.model.card.tooltip
    STATE.reset()


def test_cells_found_automatically_become_an_editable_labels_layer(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample(PLUGIN, "field")
    viewer.layers.remove("Field cells")  # the user has no segmentation
    widget = _dock(viewer)
    widget.set_mode("each cell (found automatically)")
    assert not widget.cells.enabled and not widget.cam.enabled
    _run(qtbot, widget, timeout=120_000)
    found = viewer.layers["Field protein cells"]
    ids = sorted(int(i) for i in np.unique(found.data) if i > 0)
    assert len(ids) >= 3 and found.data.shape == viewer.layers["Field protein"].data.shape
    assert sorted(found.features["index"].astype(int)) == ids and "label" in found.features.columns
    assert {r["cell"] for r in widget.table.rows} == set(ids)
    assert "Field protein predicted classes" in [x.name for x in viewer.layers]
    # the next Classify uses that layer, edited: one cell erased, the others classified again
    assert widget.mode.value == "each labelled cell" and widget.cells.value is not None
    assert widget.cells.value.name == "Field protein cells"
    data = np.array(found.data)
    data[data == ids[0]] = 0
    found.data = data
    _run(qtbot, widget)
    assert {r["cell"] for r in widget.table.rows} == set(ids[1:])


def test_three_docks_from_the_plugins_menu_fit_a_1600x1000_screen(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy(show=True)
    viewer.add_image(np.zeros((8, 8)), name="a layer with a very long name: " + "protein " * 12)
    docks = {name: viewer.window.add_plugin_dock_widget(PLUGIN, name)
             for name in ("Classify organelles", "Reconstruct images", "Fine-tune models")}
    viewer.window.resize(1600, 1000)
    qtbot.wait(300)
    window = docks["Classify organelles"][1].native.window()
    assert window.minimumSizeHint().height() <= 1000 and window.height() <= 1000
    for name, (dock, widget) in docks.items():
        assert dock.height() >= 190, (name, dock.height())       # each one usable, none squeezed
        assert widget.native.minimumSizeHint().width() <= 400, name  # long names never widen a dock
    classify = docks["Classify organelles"][1]
    assert classify.protein.native.minimumSizeHint().width() < 300  # the drop-down elides the name
    docks["Fine-tune models"][1]._shutdown()


def test_the_table_leaves_the_layer_name_to_the_csv(make_napari_viewer_proxy, qtbot, tiny_models, tmp_path):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample(PLUGIN, "cells")
    widget = _dock(viewer)
    _run(qtbot, widget)
    q = widget.table.table.native
    headers = [q.horizontalHeaderItem(j).text() for j in range(q.columnCount())]
    assert headers[:3] == ["plane", "label", "confidence"] and "image" not in headers
    assert "ER" in headers  # probabilities under their class names
    rows = list(__import__("csv").DictReader(open(widget.table.export_csv(tmp_path / "r.csv"))))
    assert rows[0]["image"] == viewer.layers[0].name and len(rows) == N_CLASSES
    assert widget.controls.message.native.wordWrap()
