"""The fast CPU paths give what the plain ones give, and the thread policy does what it says.

* histogram percentiles: bit-identical to ``np.percentile`` on the float32 plane (many random
  uint8 / int8 / uint16 / int16 / bool planes and the edge cases: constant, one odd pixel, two
  values, saturated, non-contiguous, subsampled large planes);
* ``prepare_pair``: bit-identical to the previous algorithm, written out here as the reference;
* the CPU inference network (batch norms folded, channels-last): the same labels and
  probabilities (to float rounding) as the model run as it is, for the bundled classifier and a
  resnet18; cells prepared in reading threads (PreparedCell) give the same results as pairs;
* threads: one for small work, never more than the cores left, set per calling thread and put
  back; the CPU load of another process is measured; training chooses and restores threads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from napari_organelle import _threads
from napari_organelle.preprocess import (HIGH_PERCENTILE, LOW_PERCENTILE, InputError, block_reduce_to, normalize,
                                         prepare_pair)


# --------------------------------------------------------------------------------------------------
# the reference: preprocessing exactly as it was before the histogram path
# --------------------------------------------------------------------------------------------------
def reference_normalize(plane):
    p = np.asarray(plane)
    p = p.astype(np.float32)
    flat = p.ravel()
    if flat.size > 1_000_000:
        flat = flat[:: flat.size // 1_000_000 + 1]
    lo, hi = np.percentile(flat, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if not hi > lo:
        hi = float(flat.max())
        if not hi > lo:
            return np.zeros(p.shape, np.float32)
    out = (p - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    np.clip(out, 0.0, 1.0, out=out)
    return out


def reference_resize(plane, size):
    import torch
    import torch.nn.functional as F

    p = np.asarray(plane, dtype=np.float32)
    if max(p.shape) > 4 * size:
        p = block_reduce_to(p, 2 * size)
    h, w = p.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    t = torch.from_numpy(np.ascontiguousarray(p))[None, None]
    if (nh, nw) != (h, w):
        t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h)
    out = torch.zeros((size, size), dtype=torch.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = t[0, 0]
    return out.numpy()


def reference_prepare(p, d, size):
    def huge(a):
        return block_reduce_to(a, 4 * size) if max(a.shape) > 8 * size else a

    out = np.zeros((2, size, size), np.float32)
    out[0] = reference_resize(reference_normalize(huge(p)), size)
    if d is not None:
        out[1] = reference_resize(reference_normalize(huge(d)), size)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _same_bits(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def _random_plane(rng, dtype, kind, shape):
    if dtype is bool:
        return rng.random(shape) > rng.random()
    info = np.iinfo(dtype)
    if kind == 0:   # the full range
        return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    if kind == 1:   # constant but for one pixel: the percentiles are equal, the maximum is not
        a = np.full(shape, rng.integers(info.min, info.max), dtype)
        a.flat[rng.integers(a.size)] = info.max
        return a
    if kind == 2:   # constant
        return np.full(shape, rng.integers(info.min, info.max + 1), dtype)
    if kind == 3:   # a fluorescence-like skewed image
        return (rng.gamma(1.5, 1, shape) * rng.integers(1, 2000)).clip(info.min, info.max).astype(dtype)
    if kind == 4:   # three values
        return rng.integers(0, 3, shape).astype(dtype)
    if kind == 5:   # half saturated
        a = np.zeros(shape, dtype)
        a[: rng.integers(1, shape[0])] = info.max
        return a
    return rng.integers(info.min, info.max, (shape[0], 2 * shape[1])).astype(dtype)[:, ::2]  # a strided view


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, bool])
def test_histogram_percentiles_are_bit_identical_to_np_percentile(dtype):
    rng = np.random.default_rng(abs(hash(np.dtype(dtype).str)) % 2 ** 32)
    for k in range(300):
        shape = tuple(int(s) for s in rng.integers(8, 300, 2))
        a = _random_plane(rng, dtype, k % 7, shape)
        assert _same_bits(normalize(a), reference_normalize(a)), (dtype, k % 7, shape)
    # tiny planes (n = 1 and 2: the top position has no upper neighbour) and a large, subsampled one
    for a in (np.array([[7]], dtype), np.array([[3, 9]], dtype) if dtype is not bool else np.array([[0, 1]], bool)):
        assert _same_bits(normalize(a), reference_normalize(a))
    big = _random_plane(rng, dtype, 0, (1100, 1000))
    assert _same_bits(normalize(big), reference_normalize(big))


@pytest.mark.parametrize("size", [64, 128, 192, 256])
def test_prepare_pair_is_bit_identical_to_the_plain_algorithm(size):
    rng = np.random.default_rng(size)
    for k, shape in enumerate([(382, 382), (300, 200), (120, 380), (50, 70), (382, 382), (2200, 1900)]):
        dtype = (np.uint16, np.uint8, np.int16, np.uint16, np.int8, np.uint16)[k]
        p = _random_plane(rng, dtype, 3, shape)
        d = _random_plane(rng, dtype, 0, shape) if k != 3 else None
        assert _same_bits(prepare_pair(p, d, size=size), reference_prepare(p, d, size))


def test_float_planes_keep_their_path():
    rng = np.random.default_rng(1)
    img = rng.random((60, 80)).astype(np.float32)
    img[3, 4] = np.nan
    out = normalize(img)
    assert out[3, 4] == 0 and out.max() == 1.0
    fin = img[np.isfinite(img)]
    lo, hi = np.percentile(fin, [LOW_PERCENTILE, HIGH_PERCENTILE])
    np.testing.assert_allclose(out[0, 0], np.clip((img[0, 0] - lo) / (hi - lo), 0, 1), atol=1e-6)


# --------------------------------------------------------------------------------------------------
# the CPU inference network
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_cells():
    from napari_organelle.classes import CLASSES
    from napari_organelle.phantoms import simulate_cell

    rng = np.random.default_rng(11)
    return [simulate_cell(CLASSES[i % len(CLASSES)], rng, size=192) for i in range(60)]


def _plain_scores(clf, x):
    """What inference._scores computed before: the model's own network on the batch as it is."""
    import torch

    from napari_organelle.inference import _calibration

    t, _ = _calibration(clf)
    with torch.inference_mode():
        f = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(clf.model.features(x), 1), 1)
        return torch.softmax(clf.model.head(f).float() / t, dim=1).numpy(), f.numpy()


def test_fast_network_gives_the_labels_and_probabilities_of_the_plain_one(sim_cells):
    import torch

    from napari_organelle import inference

    clf = inference.load_model(None)
    size = inference._input_size(clf)  # whatever the bundled model takes
    x = torch.from_numpy(np.stack([prepare_pair(p, d, size=size) for p, d in sim_cells]))
    want, _ = _plain_scores(clf, x)
    with torch.inference_mode():
        net, xx = inference._inference_net(clf, x)
        assert net is not clf.model, "the folded channels-last copy should be used on the CPU"
        assert xx.is_contiguous(memory_format=torch.channels_last)
        got, _, _ = inference._scores(clf, x)
    assert (got.argmax(1) == want.argmax(1)).all()
    np.testing.assert_allclose(got, want, atol=2e-5)
    # end to end: iter_classify's labels and probabilities are the plain network's
    res = inference.classify_batch(sim_cells, clf, batch_size=16)
    assert [r.label for r in res] == [clf.classes[k] for k in want.argmax(1)]
    np.testing.assert_allclose([[r.probabilities[c] for c in clf.classes] for r in res], want, atol=2e-5)


def test_fast_network_follows_weight_changes_and_train_mode(tiny_checkpoints):
    import torch

    from napari_organelle import inference
    from napari_organelle.checkpoints import load_checkpoint

    clf = load_checkpoint(tiny_checkpoints["classifier"], expected_kind="classifier")
    x = torch.rand(3, 2, 64, 64)
    with torch.inference_mode():
        a, _, _ = inference._scores(clf, x)
    with torch.no_grad():
        clf.model.head.bias += 1.0 * torch.arange(clf.model.head.bias.numel())  # in place: a new version
    with torch.inference_mode():
        b, _, _ = inference._scores(clf, x)
    want, _ = _plain_scores(clf, x)
    assert not np.allclose(a, b)
    np.testing.assert_allclose(b, want, atol=2e-5)
    clf.model.train()
    try:
        net, _ = inference._inference_net(clf, x)
        assert net is clf.model  # batch statistics: no folding
    finally:
        clf.model.eval()


def test_batchnorm_folding_is_checked_on_resnet18():
    import torch

    from napari_organelle import inference
    from napari_organelle.models.registry import build_model

    torch.manual_seed(0)
    net = build_model("classifier", "resnet18", num_classes=4).eval()
    for m in net.modules():  # non-trivial statistics, so that a wrong fold would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    fast = inference._build_fast(net, 64)
    assert fast is not None
    x = torch.rand(2, 2, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x.contiguous(memory_format=torch.channels_last)), net(x),
                                   rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())


def test_prepared_cells_classify_as_pairs_do(sim_cells, tiny_checkpoints):
    from napari_organelle import inference
    from napari_organelle.checkpoints import load_checkpoint

    clf = load_checkpoint(tiny_checkpoints["classifier"], expected_kind="classifier")
    pairs = list(sim_cells[:20])
    pairs[3] = (np.zeros((64, 64), np.uint16), None)  # constant: not classified either way
    direct = inference.classify_batch(pairs, clf, batch_size=8, skip_unusable=True)
    cells = []
    for p, d in pairs:
        try:
            cells.append(inference.prepare_cell(p, d, size=64))
        except InputError as exc:
            cells.append(None)
            why = str(exc)
    assert cells[3] is None and "constant" in why
    got = inference.classify_batch([c for c in cells if c is not None], clf, batch_size=8)
    want = [r for k, r in enumerate(direct) if k != 3]
    assert not direct[3].classified
    assert [r.label for r in got] == [r.label for r in want]
    assert [r.has_dna for r in got] == [r.has_dna for r in want]
    np.testing.assert_allclose([r.confidence for r in got], [r.confidence for r in want], rtol=1e-6)
    with pytest.raises(InputError, match="prepared for a 32-pixel"):
        list(inference.iter_classify([inference.prepare_cell(*pairs[0], size=32)], clf))


def test_bfloat16_keeps_the_labels_on_simulated_cells(sim_cells):
    from napari_organelle import inference
    from napari_organelle.training import cpu_bf16_fast

    if not cpu_bf16_fast():
        pytest.skip("this CPU has no native bfloat16: precision='bfloat16' runs in float32 here")
    clf = inference.load_model(None)
    a = inference.classify_batch(sim_cells, clf, batch_size=32)
    b = inference.classify_batch(sim_cells, clf, batch_size=32, precision="bfloat16")
    assert [r.label for r in a] == [r.label for r in b]
    pa = np.array([[r.probabilities[c] for c in clf.classes] for r in a])
    pb = np.array([[r.probabilities[c] for c in clf.classes] for r in b])
    assert np.abs(pa - pb).max() < 1e-2
    with pytest.raises(InputError, match="precision"):
        inference.classify_batch(sim_cells[:1], clf, precision="fp8")


# --------------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------------
def test_small_work_gets_one_thread_and_large_work_at_most_the_cores_left(monkeypatch):
    monkeypatch.delenv(_threads.ENV, raising=False)
    monkeypatch.setattr(_threads, "_GUI", 0)  # importing the docks (an earlier test) keeps a core for napari
    n = _threads.cores()
    assert _threads.threads_for(1) == 1 and _threads.threads_for(_threads.SMALL_BATCH - 1) == 1
    assert 1 <= _threads.threads_for(64) <= n and 1 <= _threads.threads_for(None) <= n
    monkeypatch.setattr(_threads, "others_busy", lambda: 0.0)
    assert _threads.threads_for(64) == n
    assert _threads.threads_for(64, reserve=1) == max(1, n - 1)
    with _threads.reserving(n):
        assert _threads.threads_for(None) == 1
    assert _threads.threads_for(None) == n
    monkeypatch.setattr(_threads, "others_busy", lambda: 1.0)   # another process keeps a core busy
    assert _threads.threads_for(64) == max(1, n - 1)
    monkeypatch.setattr(_threads, "others_busy", lambda: 0.2)   # a light background load does not count
    assert _threads.threads_for(64) == n
    monkeypatch.setattr(_threads, "others_busy", lambda: None)  # nothing measurable: every core
    assert _threads.threads_for(64) == n
    _threads.keep_for_gui(1)                                   # what importing the docks does
    assert _threads.threads_for(64) == max(1, n - 1) and _threads.threads_for(1) == 1
    monkeypatch.setenv(_threads.ENV, "3")
    assert _threads.threads_for(1) == 3 and _threads.threads_for(None) == 3
    assert _threads.pipeline_split(2) == (1, 2) and _threads.pipeline_split(8) == (4, 4)


def test_torch_threads_is_per_calling_thread_and_put_back():
    import torch

    before = torch.get_num_threads()
    seen = {}

    def worker():
        with _threads.torch_threads(1):
            seen["inside"] = torch.get_num_threads()
            torch.ones(1000).sum()
        seen["after"] = torch.get_num_threads()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["inside"] == 1
    assert torch.get_num_threads() == before
    with _threads.torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the load is measured from /proc")
def test_the_cpu_another_process_uses_is_measured():
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        load = _threads.CpuLoad()
        t0 = child_ticks = _ticks(child.pid)
        time.sleep(0.8)
        child_ticks = _ticks(child.pid) - t0
        other = load.others()
    finally:
        child.kill()
        child.wait()
    hz = os.sysconf("SC_CLK_TCK")
    assert other is not None
    # everything outside this process counts: at least what the busy child was measured to use
    # (its share of the window, less a few clock ticks of rounding)
    assert other >= child_ticks / hz / 0.8 - 0.1
    assert other <= _threads.cores() + 0.05


def _ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def test_training_chooses_cpu_threads_and_puts_them_back(monkeypatch):
    import torch

    from napari_organelle.training import TrainConfig, train

    monkeypatch.delenv(_threads.ENV, raising=False)
    calls = []
    real = _threads.threads_for

    def spy(cells=None, *, reserve=0):
        calls.append((cells, reserve))
        return real(cells, reserve=reserve)

    monkeypatch.setattr(_threads, "threads_for", spy)
    rng = np.random.default_rng(0)
    X = rng.random((12, 2, 32, 32)).astype(np.float32)
    y = np.arange(12) % 3
    before = torch.get_num_threads()
    train("classifier", (X, y), (X[:4], y[:4]), TrainConfig(epochs=1, batch_size=4, device="cpu", reserve_cores=1),
          classes=["a", "b", "c"], arch_kwargs={"stem": 4, "widths": (4, 8), "blocks": (1, 1)})
    assert calls and all(c == (None, 1) for c in calls)
    assert torch.get_num_threads() == before
    calls.clear()
    train("classifier", (X, y), (X[:4], y[:4]), TrainConfig(epochs=1, batch_size=4, device="cpu", num_threads=1),
          classes=["a", "b", "c"], arch_kwargs={"stem": 4, "widths": (4, 8), "blocks": (1, 1)})
    assert calls == [] and torch.get_num_threads() == before  # a fixed count is used as given


def test_reading_threads_prepare_cells_in_order_with_errors_in_place(tmp_path):
    import tifffile

    from napari_organelle.io import iter_read_pairs

    rng = np.random.default_rng(2)
    files = []
    for i in range(7):
        f = tmp_path / f"c{i}.tif"
        img = rng.integers(0, 3000, (2, 40, 40)).astype(np.uint16) if i != 4 else np.zeros((2, 40, 40), np.uint16)
        tifffile.imwrite(f, img)
        files.append(f)
    seen_threads = set()

    def prepare(p, d, f):
        seen_threads.add(threading.current_thread().name)
        return f.name, prepare_pair(p, d, size=16)

    out = list(iter_read_pairs(files, workers=3, prepare=prepare))
    assert [f for f, _, _ in out] == files
    assert out[4][1] is None and "constant" in str(out[4][2])
    for (f, got, err) in out[:4] + out[5:]:
        assert err is None and got[0] == f.name and got[1].shape == (2, 16, 16)
    assert all(n.startswith("organelle-read") for n in seen_threads)


# --------------------------------------------------------------------------------------------------
# start-up: what does not need torch does not import it
# --------------------------------------------------------------------------------------------------
def _run_py(code: str, tmp_path) -> str:
    env = {**os.environ, "NAPARI_ORGANELLE_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_import_help_and_models_do_not_import_torch(tmp_path, tiny_checkpoints):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "mine.pt").write_bytes(tiny_checkpoints["classifier"].read_bytes())
    (tmp_path / "home" / "junk.pt").write_bytes(b"not a model")
    out = _run_py("""
import sys
import napari_organelle
assert "torch" not in sys.modules, "import napari_organelle imported torch"
from napari_organelle.cli import main
try:
    main(["--help"])
except SystemExit:
    pass
assert "torch" not in sys.modules, "--help imported torch"
main(["models"])
print("TORCH", "torch" in sys.modules)
""", tmp_path)
    assert "bundled-classifier" in out and "mine" in out and "unreadable" in out and "TORCH False" in out
    # a zip that is not a plain checkpoint is read the full way: torch.load says what is wrong with it
    import zipfile

    with zipfile.ZipFile(tmp_path / "home" / "odd.pt", "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02cos\nsystem\n.")
    out = _run_py("""
import sys
from napari_organelle.cli import main
main(["models"])
print("TORCH", "torch" in sys.modules)
""", tmp_path)
    odd = [line for line in out.splitlines() if line.startswith("odd ")]
    assert odd and "unreadable" in odd[0] and "TORCH True" in out


def test_checkpoint_metadata_without_torch_is_what_the_full_read_gives(tiny_checkpoints, tmp_path):
    import torch

    from napari_organelle import _ckpt_peek
    from napari_organelle.checkpoints import bundled_path, read_checkpoint, read_checkpoint_meta

    for path in (tiny_checkpoints["classifier"], tiny_checkpoints["autoencoder"], bundled_path("classifier")):
        full = read_checkpoint(path)
        light = read_checkpoint_meta(path)
        assert {k: v for k, v in light.items() if k not in ("state_dict", "extra")} == \
            {k: v for k, v in full.items() if k not in ("state_dict", "extra")}
        assert set(light["state_dict"]) == set(full["state_dict"])
        for k, v in full["state_dict"].items():
            assert light["state_dict"][k].shape == tuple(v.shape)
    # a damaged weight record, a foreign global: not vouched for (the full read then decides)
    data = bytearray(tiny_checkpoints["classifier"].read_bytes())
    i = len(data) // 2
    data[i] ^= 0xFF
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(_ckpt_peek.NotPlain):
        _ckpt_peek.peek_checkpoint(bad)
    odd = tmp_path / "odd.pt"
    torch.save({"format": "napari-organelle-checkpoint", "x": torch.nn.Parameter(torch.zeros(2))}, odd)
    with pytest.raises(_ckpt_peek.NotPlain, match="global"):
        _ckpt_peek.peek_checkpoint(odd)


def test_the_torch_free_architecture_table_matches_the_registry():
    import inspect

    from napari_organelle._arch_names import ARCH_NAMES, ARCH_PARAMS, KINDS
    from napari_organelle.models.registry import ARCHITECTURES

    assert tuple(ARCHITECTURES) == KINDS
    assert {k: tuple(v) for k, v in ARCHITECTURES.items()} == ARCH_NAMES
    for kind, archs in ARCHITECTURES.items():
        for arch, cls in archs.items():
            sig = inspect.signature(cls.__init__).parameters
            assert {k: p.default for k, p in sig.items() if k != "self"} == ARCH_PARAMS[arch], arch


def test_cells_prepared_in_parallel_keep_their_order_results_and_errors(sim_cells, tiny_checkpoints):
    from napari_organelle import inference
    from napari_organelle.checkpoints import load_checkpoint

    clf = load_checkpoint(tiny_checkpoints["classifier"], expected_kind="classifier")
    pairs = list(sim_cells[:30])
    pairs[5] = (np.full((50, 50), 7, np.uint16), None)  # constant: refused when checked
    one = inference.classify_batch(pairs, clf, batch_size=16, skip_unusable=True, threads=1)
    seen = set()
    real = inference.prepare_pair

    def spy(*a, **k):
        seen.add(threading.current_thread().name)
        return real(*a, **k)

    inference.prepare_pair = spy
    try:
        two = inference.classify_batch(pairs, clf, batch_size=16, skip_unusable=True, threads=2)
    finally:
        inference.prepare_pair = real
    assert any(n.startswith("organelle-prep") for n in seen)  # really on two threads
    assert [r.label for r in two] == [r.label for r in one] and not two[5].classified
    np.testing.assert_array_equal([r.confidence for r in two if r.classified],
                                  [r.confidence for r in one if r.classified])
