"""Finding the cells of a field of view (segmentation.find_cells) and classifying each one
(inference.classify_field), on simulated fields whose true cells and classes are known."""

import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_organelle import inference
from napari_organelle.phantoms import simulate_cell, simulate_field
from napari_organelle.preprocess import InputError
from napari_organelle.segmentation import count_cells, find_cells, segment_cells

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def matched(pred, truth, iou=0.5):
    """{true cell: found cell} for the pairs that overlap with IoU >= iou (such pairs are unique)."""
    pred, truth = pred.astype(np.int64), truth.astype(np.int64)
    npred = int(pred.max())
    m = (pred > 0) | (truth > 0)
    cnt = np.bincount(truth[m] * (npred + 1) + pred[m],
                      minlength=(int(truth.max()) + 1) * (npred + 1)).reshape(-1, npred + 1)
    at = np.bincount(truth.ravel(), minlength=cnt.shape[0])
    ap = np.bincount(pred.ravel(), minlength=npred + 1)
    inter = cnt[1:, 1:]
    union = at[1:, None] + ap[None, 1:] - inter
    pairs = np.argwhere(inter >= iou * np.maximum(union, 1))
    return {int(t) + 1: int(p) + 1 for t, p in pairs}


def f1(pred, truth):
    tp = len(matched(pred, truth))
    n_pred, n_true = len(np.unique(pred[pred > 0])), len(np.unique(truth[truth > 0]))
    return 2 * tp / max(1, n_pred + n_true)


@pytest.fixture(scope="module")
def easy():
    return simulate_field(n_cells=6, seed=1, size=768)


@pytest.fixture(scope="module")
def hard():
    # touching cells, a vignette down to 40 % with a background gradient, 20 specks of debris
    return simulate_field(n_cells=10, seed=2, size=1024, touching=0.7, illumination=0.6, debris=20)


@pytest.fixture(scope="module")
def bundled():
    return inference.load_model(None)


def test_find_cells_on_an_easy_field(easy):
    protein, dna, truth, _ = easy
    labels = find_cells(protein, dna)
    assert labels.shape == protein.shape and labels.dtype == np.int32
    ids = np.unique(labels)
    assert ids[0] == 0 and list(ids[1:]) == list(range(1, len(ids)))  # 1..n, no gaps
    assert len(ids) - 1 == 6
    assert len(matched(labels, truth)) == 6
    # every cell is one connected piece
    assert all(ndi.label(labels == i)[1] == 1 for i in ids[1:])


def test_find_cells_on_a_hard_field(hard):
    protein, dna, truth, _ = hard
    # the field really is hard: touching cells, dim corner, debris in the background
    touching = {(a, b) for a, b in zip(truth[:, :-1].ravel(), truth[:, 1:].ravel()) if a != b and a and b}
    assert len(touching) >= 2
    bright = protein[truth == 0]
    assert (bright > np.percentile(bright, 50) + 500).sum() > 100  # the debris specks
    seg = segment_cells(protein, dna)
    assert seg.n_cells == 10 and seg.labels.max() == 10
    assert f1(seg.labels, truth) >= 0.9
    # no cell was made of debris: every cell found is a true cell
    pairs = matched(seg.labels, truth)
    assert sorted(pairs.values()) == list(range(1, 11))
    # the touching pairs were split: each true cell of a touching pair has its own found cell
    for a, b in touching:
        assert a in pairs and b in pairs and pairs[a] != pairs[b]


def test_find_cells_without_dna(easy, hard):
    protein, _, truth, _ = easy
    assert f1(find_cells(protein), truth) >= 0.9
    protein, _, truth, _ = hard
    assert f1(find_cells(protein), truth) >= 0.6  # protein only and touching cells: a weaker case


def test_cells_cut_by_the_border_are_dropped(easy):
    protein, dna, truth, _ = easy
    # cut the field through a cell: its left part stays in the image, cut
    xs = np.nonzero(truth == 1)[1]
    cut = int(xs.min() + 0.5 * (xs.max() - xs.min()))
    p, d, t = protein[:, cut:], dna[:, cut:], truth[:, cut:]
    kept = find_cells(p, d, exclude_border=False)
    dropped = segment_cells(p, d)
    assert dropped.dropped_border >= 1 and dropped.n_cells == len(np.unique(kept)) - 1 - dropped.dropped_border
    # the cut cell is in the labels only when the border is kept
    cut_cell = t == 1
    assert kept[cut_cell].any() and not dropped.labels[cut_cell].any()


def test_diameter_given_or_from_the_pixel_size(easy):
    protein, dna, truth, _ = easy
    seg = segment_cells(protein, dna)
    assert seg.diameter_from == "estimated"
    true_d = 2 * np.sqrt(np.median(np.bincount(truth.ravel())[1:]) / np.pi)
    assert 0.6 * true_d < seg.diameter < 1.6 * true_d
    given = segment_cells(protein, dna, diameter=true_d)
    assert given.diameter_from == "given" and given.n_cells == 6
    by_px = segment_cells(protein, dna, pixel_size_um=30.0 / true_d)
    assert by_px.diameter_from == "pixel size" and by_px.diameter == pytest.approx(true_d)
    assert by_px.n_cells == 6


def test_bad_input_says_what_to_do(easy):
    protein, dna, _, _ = easy
    with pytest.raises(InputError, match="same field"):
        find_cells(protein, dna[:100])
    with pytest.raises(InputError, match="constant"):
        find_cells(np.zeros((64, 64)))
    with pytest.raises(InputError, match="DNA image is constant"):
        find_cells(protein, np.ones_like(dna))
    for bad in (0, -3, float("nan"), "big"):
        with pytest.raises(InputError, match="diameter"):
            find_cells(protein, dna, diameter=bad)
    with pytest.raises(InputError, match="too small"):
        find_cells(protein, dna, diameter=4)
    with pytest.raises(InputError, match="pixel size"):
        find_cells(protein, dna, pixel_size_um=0)


def test_background_only_finds_no_cells():
    noise = np.random.default_rng(0).normal(200, 5, (256, 256)).astype(np.float32)
    seg = segment_cells(noise + 0.01 * np.arange(256)[None, :])
    assert seg.n_cells == 0 and not seg.labels.any()


def test_progress_and_stop(easy):
    protein, dna, _, _ = easy
    seen = []
    find_cells(protein, dna, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(InterruptedError):
        find_cells(protein, dna, should_stop=lambda: True)


def test_count_cells():
    rng = np.random.default_rng(4)
    for cls in ("ER", "Nucleus", "Lysosome"):
        p, d = simulate_cell(cls, rng)
        assert count_cells(p, d) == 1
    p, d, _, _ = simulate_field(n_cells=5, seed=3, size=768)
    assert count_cells(p, d) == 5


def test_classify_field_labels_each_cell(hard, bundled):
    protein, dna, truth, classes = hard
    res = inference.classify_field(protein, dna, bundled)
    assert isinstance(res, inference.FieldResult) and len(res.cells) == 10
    pairs = matched(res.labels, truth)
    right = sum(res.cells[p].label == classes[t - 1] for t, p in pairs.items())
    assert right >= 8, [(classes[t - 1], res.cells[p].label) for t, p in pairs.items()]
    rows = res.rows()
    assert [r["cell"] for r in rows] == sorted(res.cells)
    for r in rows:
        ys, xs = np.nonzero(res.labels == r["cell"])
        assert r["area"] == ys.size
        assert abs(r["centroid_y"] - ys.mean()) < 0.1 and abs(r["centroid_x"] - xs.mean()) < 0.1
        assert {"label", "confidence", "uncertain", "p_ER"} <= set(r)
    s = res.summary()
    assert s["n_cells"] == 10 and sum(s["per_class"].values()) == s["n_classified"] == 10
    assert s["per_class"][s["majority"]] == max(s["per_class"].values())
    assert s["majority_fraction"] == pytest.approx(s["per_class"][s["majority"]] / 10)
    assert "DNA" in s["method"]


def test_classify_field_with_given_labels_and_progress(easy, bundled):
    protein, dna, truth, classes = easy
    seen = []
    res = inference.classify_field(protein, dna, bundled, labels=truth,
                                   progress=lambda d, t: seen.append((d, t)))
    assert sorted(res.cells) == list(range(1, 7)) and res.segmentation is None
    assert seen[-1] == (100, 100)
    assert sum(res.cells[i].label == classes[i - 1] for i in res.cells) >= 5
    with pytest.raises(InputError, match="must match"):
        inference.classify_field(protein, dna, bundled, labels=truth[:10])
    with pytest.raises(InterruptedError):
        inference.classify_field(protein, dna, bundled, should_stop=lambda: True)
    empty = inference.classify_field(protein, dna, bundled, labels=np.zeros_like(truth))
    assert empty.cells == {} and "no cell" in empty.note and empty.summary()["majority"] == ""


def test_whole_image_classification_of_a_field_warns(easy, bundled):
    protein, dna, _, _ = easy
    r = inference.classify(protein, dna, bundled)
    assert "several cells" in r.warning and "classify_field" in r.warning and r.as_row()["warning"] == r.warning
    p, d = simulate_cell("Mitochondria", np.random.default_rng(8))
    one = inference.classify(p, d, bundled)
    assert one.warning == "" and one.as_row()["warning"] == ""


def test_simulate_field_options_are_checked_and_defaults_unchanged():
    a = simulate_field(n_cells=3, seed=5, size=384)
    b = simulate_field(n_cells=3, seed=5, size=384, touching=0.0, illumination=0.0, debris=0)
    assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3])) and a[3] == b[3]
    for kw in ({"touching": 1.5}, {"illumination": 0.95}, {"debris": -1}):
        with pytest.raises(ValueError):
            simulate_field(n_cells=3, seed=5, size=384, **kw)
    p, _, truth, _ = simulate_field(n_cells=4, seed=5, size=512, illumination=0.8)
    flat, _, _, _ = simulate_field(n_cells=4, seed=5, size=512)
    assert np.array_equal(truth, simulate_field(n_cells=4, seed=5, size=512)[2])  # same cells, same places
    assert not np.array_equal(p, flat)


def _realcells() -> Path | None:
    here = Path(__file__).resolve().parents[1]
    for c in (os.environ.get("NAPARI_ORGANELLE_REALCELLS"), here.parent / "shared" / "realcells",
              here / "shared" / "realcells"):
        if c and (Path(c) / "imagej_samples").is_dir():
            return Path(c)
    return None


@pytest.mark.skipif(_realcells() is None, reason="the real images (../shared/realcells) are not here")
def test_find_cells_on_the_imagej_hela_field():
    import tifffile

    a = tifffile.imread(_realcells() / "imagej_samples" / "Nucleus" / "hela-cells.tif")
    labels = find_cells(a[..., 1], a[..., 2], exclude_border=False)  # mitochondria, DNA
    n = labels.max()
    assert 3 <= n <= 8  # by eye: 4 whole cells and a few cut by the border
    areas = np.bincount(labels.ravel())[1:]
    assert areas.min() > 0.01 * labels.size
