"""Tests for the cell simulator (napari_organelle.phantoms)."""

from __future__ import annotations


import numpy as np
import pytest

from napari_organelle import phantoms as ph
from napari_organelle.classes import CLASSES

SIZE = 128  # small frames keep the file fast; structure sizes scale with the frame


def _cell(cls, seed=0, size=SIZE, style="default"):
    return ph.simulate_cell(cls, np.random.default_rng(seed), size=size, style=style)


def _dna_mask(dna):
    from skimage.filters import threshold_otsu

    return dna > threshold_otsu(dna)


def _cell_and_bg(protein):
    """Background level (the frame's dimmest decile) and protein above it."""
    p = protein.astype(np.float64)
    bg = np.percentile(p, 10)
    return np.clip(p - bg - 3 * p[p <= np.percentile(p, 10)].std(), 0, None)


@pytest.mark.parametrize("style", ph.STYLES)
def test_shapes_dtypes_range(style):
    for cls in CLASSES:
        p, d = _cell(cls, 1, style=style)
        assert p.shape == d.shape == (SIZE, SIZE)
        assert p.dtype == d.dtype == np.uint16
        # real signal with headroom: values up to a few thousand, not saturated
        assert 200 < int(p.max()) < 65535 and 200 < int(d.max()) < 65535
        assert np.percentile(p, 99.8) > 2 * np.percentile(p, 5) + 20


def test_default_size_is_murphy_size():
    p, d = ph.simulate_cell("ER", np.random.default_rng(0))
    assert p.shape == d.shape == (382, 382)
    assert p.max() < 20000


def test_determinism_and_seed_dependence():
    a = _cell("Mitochondria", 5)
    b = _cell("Mitochondria", 5)
    c = _cell("Mitochondria", 6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    ds1 = ph.simulate_dataset(2, seed=3, size=64)
    ds2 = ph.simulate_dataset(2, seed=3, size=64)
    ds3 = ph.simulate_dataset(2, seed=4, size=64)
    for s1, s2, s3 in zip(ds1.samples, ds2.samples, ds3.samples):
        assert np.array_equal(s1.protein, s2.protein) and np.array_equal(s1.dna, s2.dna)
        assert not np.array_equal(s1.protein, s3.protein)


def test_simulate_dataset_structure_and_subset_independence():
    calls = []
    ds = ph.simulate_dataset(2, seed=7, size=64, progress=lambda d, t: calls.append((d, t)))
    assert ds.classes == list(CLASSES)
    assert len(ds.samples) == 2 * len(CLASSES)
    assert [s.label for s in ds.samples] == [c for c in CLASSES for _ in range(2)]
    assert ds.samples[0].source == "simulated:default:7:0"
    assert ds.skipped == [] and ds.warnings == []
    assert "style=default" in ds.description and "seed=7" in ds.description
    assert calls[-1] == (20, 20) and len(calls) == 20
    # a subset (in another order, with more cells per class) gives the same images for its classes
    sub = ph.simulate_dataset(3, seed=7, size=64, classes=["Nucleus", "ER"])
    assert sub.classes == ["Nucleus", "ER"]
    full = {(s.label, s.source): s for s in ds.samples}
    for s in sub.samples:
        if (s.label, s.source) in full:
            ref = full[(s.label, s.source)]
            assert np.array_equal(s.protein, ref.protein) and np.array_equal(s.dna, ref.dna)
    assert sum((s.label, s.source) in full for s in sub.samples) == 4


def test_unknown_class_or_style_raises():
    with pytest.raises(ValueError):
        _cell("Peroxisome")
    with pytest.raises(ValueError):
        _cell("ER", style="cartoon")


def test_every_class_has_signal_in_the_cell():
    for cls in CLASSES:
        p, d = _cell(cls, 2)
        sig = _cell_and_bg(p)
        # a clear foreground exists and sits near the nucleus's cell (not at random places)
        assert (sig > 0).mean() > 0.003, cls
        assert sig.sum() > 0
        # DNA channel: one compact bright nucleus
        m = _dna_mask(d)
        assert 0.02 < m.mean() < 0.5, cls


def _bright(protein, level=0.3):
    """Pixels of the bright structures: > ``level`` after percentile scaling and a light blur."""
    from scipy import ndimage as ndi

    from napari_organelle.preprocess import normalize

    return ndi.gaussian_filter(normalize(protein), 1.0) > level


def _fraction_in_nucleus(cls, seeds=range(3)):
    fr = []
    for s in seeds:
        p, d = _cell(cls, 10 + s)
        b = _bright(p)
        fr.append((b & _dna_mask(d)).sum() / max(b.sum(), 1))
    return float(np.mean(fr))


def test_compartments_follow_the_dna_mask():
    assert _fraction_in_nucleus("Nucleus") > 0.9
    assert _fraction_in_nucleus("Nucleolus") > 0.9
    assert _fraction_in_nucleus("ER") < 0.15
    assert _fraction_in_nucleus("Mitochondria") < 0.15


def test_lysosomes_more_perinuclear_and_fewer_than_endosomes():
    from scipy import ndimage as ndi

    def stats(cls):
        dist, count = [], []
        for s in range(3):
            p, d = _cell(cls, 20 + s, size=256)
            sig = _cell_and_bg(p)
            dn = ndi.distance_transform_edt(~_dna_mask(d))
            dist.append((sig * dn).sum() / sig.sum())
            from napari_organelle.preprocess import normalize

            sm = ndi.gaussian_filter(normalize(p), 1.0)
            peaks = (sm == ndi.maximum_filter(sm, 5)) & (sm > 0.2)
            count.append(int(peaks.sum()))
        return np.mean(dist), np.mean(count)

    d_endo, n_endo = stats("Endosome")
    d_lyso, n_lyso = stats("Lysosome")
    print(f"distance from nucleus: endosome {d_endo:.1f}, lysosome {d_lyso:.1f}; "
          f"puncta: endosome {n_endo:.0f}, lysosome {n_lyso:.0f}")
    assert d_lyso < d_endo
    assert n_lyso < n_endo


def _column_pattern_ratio(p):
    """Background noise: horizontal / vertical neighbour differences (column fixed pattern > 1)."""
    from scipy import ndimage as ndi

    p = p.astype(np.float64)
    bg = ndi.binary_erosion(ndi.gaussian_filter(p, 3) < np.percentile(p, 30), iterations=3)
    bg[-1, :] = bg[:, -1] = False
    h = (p[:, 1:] - p[:, :-1])[bg[:, :-1]]
    v = (p[1:, :] - p[:-1, :])[bg[:-1, :]]
    return h.std() / v.std()


def test_alt_style_differs_statistically():
    stats = {}
    for style in ph.STYLES:
        mx, ratio = [], []
        for cls in ("ER", "Lysosome", "Microtubules"):
            for s in range(2):
                p, _ = _cell(cls, s, style=style, size=256)
                mx.append(int(p.max()))
                ratio.append(_column_pattern_ratio(p))
        stats[style] = (np.array(mx), np.array(ratio))
    # alt renders with a 12-bit camera and a column fixed pattern; default with neither
    assert stats["alt"][0].max() <= 4095
    assert stats["default"][0].max() > 4095
    assert abs(np.mean(stats["default"][1]) - 1) < 0.05
    assert np.mean(stats["alt"][1]) > 1.08
    pa, _ = _cell("ER", 0, style="default")
    pb, _ = _cell("ER", 0, style="alt")
    assert not np.array_equal(pa, pb)


def test_simulate_field():
    p, d, labels, names = ph.simulate_field(n_cells=5, seed=1, size=384)
    assert p.shape == d.shape == labels.shape == (384, 384)
    assert p.dtype == d.dtype == np.uint16 and labels.dtype == np.int32
    assert len(names) == 5 and all(n in CLASSES for n in names)
    assert set(np.unique(labels)) == set(range(6))
    # non-overlapping, each cell one connected region
    from scipy import ndimage as ndi

    for i in range(1, 6):
        assert ndi.label(labels == i)[1] == 1
    # signal sits in the cells
    assert p[labels > 0].mean() > p[labels == 0].mean()
    p2, _, l2, n2 = ph.simulate_field(n_cells=5, seed=1, size=384)
    assert np.array_equal(p, p2) and np.array_equal(labels, l2) and n2 == names
    _, _, _, given = ph.simulate_field(n_cells=3, seed=0, size=384, classes=["ER", "Nucleus", "ER"])
    assert given == ["ER", "Nucleus", "ER"]


def test_write_dataset(tmp_path):
    import tifffile

    paths = ph.write_dataset(tmp_path / "sim", per_class=2, seed=0, size=64)
    assert len(paths) == 2 * len(CLASSES)
    assert sorted(x.name for x in (tmp_path / "sim").iterdir()) == sorted(CLASSES)
    p0 = tmp_path / "sim" / "ER" / "ER_000.tif"
    assert p0 in paths and (tmp_path / "sim" / "ER" / "ER_001.tif").exists()
    arr = tifffile.imread(p0)
    assert arr.shape == (2, 64, 64) and arr.dtype == np.uint16
    ref_p, ref_d = ph.simulate_cell("ER", ph._child_rng(0, "ER", 0, "default"), size=64)
    assert np.array_equal(arr[0], ref_p) and np.array_equal(arr[1], ref_d)

    single = ph.write_dataset(tmp_path / "one", per_class=1, seed=0, size=64, two_channel=False,
                              classes=["Golgi_gpp"])
    names = sorted(x.name for x in single)
    assert names == ["Golgi_gpp_000_dna.tif", "Golgi_gpp_000_protein.tif"]
    for x in single:
        a = tifffile.imread(x)
        assert a.shape == (64, 64) and a.dtype == np.uint16


@pytest.mark.parametrize("kwargs,needle", [
    (dict(size=10), "at least 32 pixels"),
    (dict(size=31), "at least 32 pixels"),
    (dict(size=64.5), "whole number"),
    (dict(style="foo"), "Unknown style 'foo'; choose one of: default, alt"),
    (dict(per_class=0), "at least 1"),
    (dict(per_class=-3), "at least 1"),
    (dict(classes=["Peroxisome"]), "Unknown class"),
    (dict(classes=[]), "No classes"),
])
def test_write_dataset_refuses_bad_arguments_before_writing(kwargs, needle, tmp_path):
    from napari_organelle.preprocess import InputError

    args = {"per_class": 1, "size": 64, **kwargs}
    with pytest.raises(InputError, match=needle):
        ph.write_dataset(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_write_dataset_refuses_a_file_as_folder(tmp_path):
    from napari_organelle.preprocess import InputError

    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        ph.write_dataset(f, per_class=1, size=64)
    with pytest.raises(InputError, match="afile is a file"):
        ph.write_dataset(f / "sub", per_class=1, size=64)
    assert f.read_text() == "x"


def test_smallest_size_draws_every_class_in_both_styles():
    for style in ph.STYLES:
        for cls in CLASSES:
            p, d = _cell(cls, 1, size=ph.MIN_SIZE, style=style)
            assert p.shape == (ph.MIN_SIZE, ph.MIN_SIZE) and p.max() > p.min()
