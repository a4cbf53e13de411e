"""npe2 sample data: right shapes, types and metadata (and fast enough to open instantly)."""

from __future__ import annotations


import numpy as np

from napari_organelle import _sample_data
from napari_organelle.classes import CLASSES


def _check_tuples(out):
    assert isinstance(out, list) and out
    for item in out:
        assert len(item) == 3
        data, kwargs, layer_type = item
        assert isinstance(data, np.ndarray)
        assert isinstance(kwargs, dict) and kwargs["name"]
        assert layer_type in ("image", "labels")
    return out


def test_cells_one_per_class():
    out = _check_tuples(_sample_data.sample_cells())
    (protein, pk, pt), (dna, dk, dt) = out
    assert pt == dt == "image"
    assert protein.shape == dna.shape == (len(CLASSES), 382, 382)
    assert protein.dtype == dna.dtype == np.uint16
    assert pk["metadata"]["classes"] == list(CLASSES)
    assert "protein" in pk["name"].lower() and "dna" in dk["name"].lower()
    for plane in protein:
        assert plane.max() > plane.min()  # every plane shows a cell
    # deterministic: the same cells for every user
    again = _sample_data.sample_cells()
    np.testing.assert_array_equal(again[0][0], protein)


def test_golgi_single_cell():
    (protein, pk, _), (dna, dk, _) = _check_tuples(_sample_data.sample_golgi_cell())
    assert protein.shape == dna.shape == (382, 382)
    assert pk["metadata"]["classes"] == ["Golgi_gpp"]


def test_field_has_labels_with_true_classes():
    out = _check_tuples(_sample_data.sample_field())
    (protein, _, pt), (dna, _, dt), (labels, lk, lt) = out
    assert (pt, dt, lt) == ("image", "image", "labels")
    assert protein.shape == dna.shape == labels.shape == (768, 768)
    assert np.issubdtype(labels.dtype, np.integer)
    ids = [int(i) for i in np.unique(labels) if i > 0]
    assert len(ids) >= 2
    feats = lk["features"]
    assert feats["index"] == ids
    assert all(c in CLASSES for c in feats["true_class"])
