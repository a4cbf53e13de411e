"""The "Reconstruct images" dock, docked through the plugin manifest."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.qt

PLUGIN = "napari-organelle"


def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Reconstruct images")
    return widget


def _run(qtbot, widget, timeout=60_000):
    job = widget.run()
    assert job is not None, widget.controls.message.value
    qtbot.waitUntil(lambda: not job.running, timeout=timeout)
    return job


def _cell(shape=(96, 80), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = np.exp(-(((yy - shape[0] / 2) / 20) ** 2 + ((xx - shape[1] / 2) / 15) ** 2))
    return (1000 * blob + 50 * rng.random(shape)).astype(np.uint16)


def test_reconstruction_layers_aligned_with_source(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    src = viewer.add_image(_cell(), name="cell", scale=(2, 3), translate=(10, -5))
    widget = _dock(viewer)
    assert widget.image.value.name == "cell"
    assert widget.residual.value
    _run(qtbot, widget)

    rec = viewer.layers["cell reconstruction"]
    res = viewer.layers["cell residual"]
    for layer in (rec, res):
        assert layer.data.shape == src.data.shape
        np.testing.assert_allclose(layer.scale, (2, 3))
        np.testing.assert_allclose(layer.translate, (10, -5))
        np.testing.assert_allclose(layer.affine.affine_matrix, src.affine.affine_matrix)
        m = layer.metadata["organelle_reconstruction"]
        assert {"mse", "psnr", "ssim"} <= set(m) and m["model"] == "tiny-autoencoder"
    np.testing.assert_allclose(rec.contrast_limits, src.contrast_limits)
    lo, hi = res.contrast_limits
    assert lo == pytest.approx(-hi) and hi > 0
    np.testing.assert_allclose(res.data, src.data.astype(np.float32) - rec.data, atol=1e-2)
    text = widget.controls.message.value
    assert "MSE" in text and "PSNR" in text and "SSIM" in text
    assert widget.last_metrics["ssim"] <= 1.0

    n = len(viewer.layers)
    _run(qtbot, widget)  # re-running replaces the data, no duplicate layers
    assert len(viewer.layers) == n
    assert [lay.name for lay in viewer.layers].count("cell reconstruction") == 1


def test_stack_without_residual(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    stack = np.stack([_cell(seed=i) for i in range(3)])
    viewer.add_image(stack, name="stack", scale=(5, 2, 3), translate=(0, 10, -5))
    widget = _dock(viewer)
    widget.residual.value = False
    _run(qtbot, widget)
    rec = viewer.layers["stack reconstruction"]
    assert rec.data.shape == stack.shape
    np.testing.assert_allclose(rec.scale, (5, 2, 3))
    np.testing.assert_allclose(rec.translate, (0, 10, -5))
    assert "stack residual" not in [lay.name for lay in viewer.layers]
    assert len(widget.last_metrics["per_plane"]) == 3


def test_rgb_layer_is_refused_with_a_message(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((32, 32, 3), np.uint8), name="photo", rgb=True)
    widget = _dock(viewer)
    assert widget.run() is None
    assert "RGB" in widget.controls.message.value
    assert len(viewer.layers) == 1


def test_run_on_a_device_this_machine_lacks_is_refused_with_a_message(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(_cell(seed=1), name="cell")
    widget = _dock(viewer)
    assert list(widget.device.choices)[:2] == ["auto", "cpu"]
    widget.device.choices = [("cuda:5", "cuda:5")]  # e.g. a GPU unplugged since the dock listed it
    widget.device.value = "cuda:5"
    job = widget.run()  # refused in the worker, which checks the device
    qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    assert "CUDA" in widget.controls.message.value and "cpu" in widget.controls.message.value
    assert [lay.name for lay in viewer.layers] == ["cell"]


def test_lazy_layer_is_read_in_the_worker(make_napari_viewer_proxy, qtbot, tiny_models):
    import threading

    import dask
    import dask.array as da

    stack = np.stack([_cell(seed=i) for i in range(3)])
    readers: list[str] = []

    def record(block):
        readers.append(threading.current_thread().name)
        return block

    viewer = make_napari_viewer_proxy()
    with dask.config.set(scheduler="synchronous"):
        viewer.add_image(da.from_array(stack, chunks=(1,) + stack.shape[1:]).map_blocks(record, dtype=stack.dtype),
                         name="lazy")
        widget = _dock(viewer)
        readers.clear()
        _run(qtbot, widget)
    assert viewer.layers["lazy reconstruction"].data.shape == stack.shape
    assert readers and threading.main_thread().name not in readers


def test_a_job_whose_dock_is_gone_stops_instead_of_raising(make_napari_viewer_proxy, qtbot, tiny_models):
    sip = pytest.importorskip("PyQt6.sip")
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.stack([_cell(seed=i) for i in range(6)]), name="stack")
    widget = _dock(viewer)
    job = widget.run()
    sip.delete(widget.controls.bar.native)  # what closing the viewer does to the dock's widgets
    qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    assert job.stopped and job.stop.is_set()


def test_stop_on_a_large_image_ends_within_a_second_and_adds_nothing(make_napari_viewer_proxy, qtbot, tiny_models):
    import time

    viewer = make_napari_viewer_proxy()
    big = np.random.default_rng(0).random((3000, 3000)).astype(np.float32)  # reconstructed tile by tile
    viewer.add_image(big, name="big")
    widget = _dock(viewer)
    job = widget.run()
    qtbot.waitUntil(lambda: job.helper is not None, timeout=30_000)  # the reconstruction is under way
    qtbot.wait(300)
    t0 = time.perf_counter()
    widget.controls.button.native.click()  # the button reads Stop while it runs
    qtbot.waitUntil(lambda: not job.running, timeout=5_000)
    took = time.perf_counter() - t0
    assert took < 1.0, f"the dock was ready again after {took:.1f} s"
    assert widget.controls.button.text == "Reconstruct" and "stopped" in widget.controls.message.value
    assert job.done.wait(30)  # the core stops at its next tile
    qtbot.wait(200)
    assert [x.name for x in viewer.layers] == ["big"] and "organelle_reconstruction" not in viewer.layers["big"].metadata


def test_residual_is_a_diverging_map_dark_at_zero(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(_cell(), name="cell")
    widget = _dock(viewer)
    _run(qtbot, widget)
    res = viewer.layers["cell residual"]
    lo, hi = res.contrast_limits
    cmap = res.colormap
    neg, zero, pos = (cmap.map(np.array([(v - lo) / (hi - lo)]))[0] for v in (lo, 0.0, hi))
    assert zero[:3].max() < 0.05  # the reproduced image is dark
    assert pos[0] > 0.9 and pos[2] < 0.3 and neg[2] > 0.9 and neg[0] < 0.3  # red above 0, blue below
    assert "red = signal the autoencoder missed" in widget.controls.message.value


def test_constant_plane_of_a_stack_is_reported(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    stack = np.stack([_cell(seed=1), np.zeros_like(_cell(seed=2))])
    viewer.add_image(stack, name="with blank")
    widget = _dock(viewer)
    _run(qtbot, widget)
    assert "1 constant plane" in widget.controls.message.value
    assert widget.last_metrics["per_plane"][1]["constant"]


def test_results_are_not_added_when_the_source_layer_was_removed(make_napari_viewer_proxy, qtbot, tiny_models):
    viewer = make_napari_viewer_proxy()
    src = viewer.add_image(np.stack([_cell(seed=i) for i in range(4)]), name="cells")
    widget = _dock(viewer)
    job = widget.run()
    assert job is not None
    viewer.layers.remove(src)
    newcomer = viewer.add_image(np.zeros((8, 8), np.float32), name="cells")
    qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    assert [x.name for x in viewer.layers] == ["cells"] and "organelle_reconstruction" not in newcomer.metadata
    assert "was removed" in widget.controls.message.value
