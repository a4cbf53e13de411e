"""The npe2 reader: a 2-channel TIFF, or a protein file with its DNA partner, opens as two named layers."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_organelle._reader import get_reader
from napari_organelle.datasets import dna_partner
from napari_organelle.phantoms import simulate_cell


@pytest.fixture(scope="module")
def cell():
    return simulate_cell("Mitochondria", np.random.default_rng(0), size=64)


def test_two_channel_tiff_becomes_protein_and_dna_layers(tmp_path, cell):
    protein, dna = cell
    path = tmp_path / "cell 7.tif"
    tifffile.imwrite(path, np.stack([protein, dna]))
    reader = get_reader(str(path))
    assert reader is not None
    (p, pkw, pt), (d, dkw, dt) = reader(str(path))
    np.testing.assert_array_equal(p, protein)
    np.testing.assert_array_equal(d, dna)
    assert (pkw["name"], dkw["name"], pt, dt) == ("cell 7 protein", "cell 7 DNA", "image", "image")
    # channels last works too; a z-stack of two planes is not split into protein and DNA
    tifffile.imwrite(tmp_path / "last.tif", np.stack([protein, dna], axis=-1))
    assert get_reader(str(tmp_path / "last.tif")) is not None
    tifffile.imwrite(tmp_path / "z.tif", np.stack([protein, dna]), imagej=True, metadata={"axes": "ZYX"})
    assert get_reader(str(tmp_path / "z.tif")) is None


def test_plain_images_are_left_to_napari(tmp_path, cell):
    tifffile.imwrite(tmp_path / "one.tif", cell[0])
    assert get_reader(str(tmp_path / "one.tif")) is None
    assert get_reader(str(tmp_path / "missing.tif")) is None
    assert get_reader([str(tmp_path / "one.tif"), str(tmp_path / "one.tif")]) is None


def test_murphy_release_files_open_with_their_dna_and_class(tmp_path, cell):
    protein, dna = cell
    prot_dir, dna_dir = tmp_path / "tubul" / "prot", tmp_path / "tubul" / "dna"
    prot_dir.mkdir(parents=True)
    dna_dir.mkdir()
    for i in (1, 2, 3):
        tifffile.imwrite(prot_dir / f"r14jul98.tubul.0{i}--1---2.tif", protein + i)
        tifffile.imwrite(dna_dir / f"r14jul98.dap.0{i}--1---2.tif", dna + i)
    path = prot_dir / "r14jul98.tubul.02--1---2.tif"
    assert dna_partner(path) == dna_dir / "r14jul98.dap.02--1---2.tif"
    assert dna_partner(dna_dir / "r14jul98.dap.02--1---2.tif") is None  # a DNA file has no DNA partner
    (p, pkw, _), (d, dkw, _) = get_reader(str(path))(str(path))
    np.testing.assert_array_equal(d, dna + 2)
    assert dkw["name"] == "r14jul98.tubul.02--1---2 DNA" and pkw["metadata"]["organelle_class"] == "Microtubules"
    # names that do not pair one to one are not guessed for a single file
    (dna_dir / "r14jul98.dap.02--1---2.tif").rename(dna_dir / "other.tif")
    assert dna_partner(path) is None


def test_flat_folder_pairs_name_and_name_dna(tmp_path, cell):
    protein, dna = cell
    tifffile.imwrite(tmp_path / "cell3.tif", protein)
    tifffile.imwrite(tmp_path / "cell3_DAPI.tif", dna)
    assert dna_partner(tmp_path / "cell3.tif") == tmp_path / "cell3_DAPI.tif"


@pytest.mark.qt
def test_napari_opens_it_as_two_layers_the_classify_dock_pairs(make_napari_viewer_proxy, tmp_path, cell):
    path = tmp_path / "er_cell.tif"
    tifffile.imwrite(path, np.stack(cell))
    viewer = make_napari_viewer_proxy()
    viewer.open(str(path), plugin="napari-organelle")
    assert [x.name for x in viewer.layers] == ["er_cell protein", "er_cell DNA"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-organelle", "Classify organelles")
    assert widget.protein.value.name == "er_cell protein" and widget.dna.value.name == "er_cell DNA"
