"""datasets: every layout the plugin reads, written exactly as it is found on disk, plus archives."""

from __future__ import annotations

import io
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_organelle import datasets
from napari_organelle.classes import CLASSES
from napari_organelle.datasets import (
    LabelledImages,
    Sample,
    load_labelled,
    stratified_split,
    to_classifier_tensors,
    to_native_list,
    to_native_planes,
)
from napari_organelle.preprocess import InputError

H, W = 382, 512  # Murphy 2D HeLa images are 512 wide, 382 high
_RNG = np.random.default_rng(1)


def _img(tag: int, shape=(H, W), dtype=np.uint16):
    """A noisy 16-bit image whose pixel (0, 0) carries ``tag`` so pairs can be checked."""
    hi = 4000 if dtype == np.uint16 else 250
    a = _RNG.integers(0, hi, shape).astype(dtype)
    a[0, 0] = tag
    return a


def _tif(path: Path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, arr)


# --- layout writers -------------------------------------------------------------------------------

MURPHY_SUBSET = ("tubul", "phal", "dap")


def write_murphy(root: Path, n=3, top="HeLa10Class2DImages_16bit_tiff", dna_names="by_name", crop=True):
    base = root / top if top else root
    for a, ab in enumerate(MURPHY_SUBSET):
        for i in range(n):
            tag = 100 * (a + 1) + i
            stem = f"r14jul98.{ab}.{i + 1:02d}--1---2"
            _tif(base / ab / "prot" / f"{stem}.tif", _img(tag))
            if dna_names == "by_name":
                dname = f"r14jul98.dna.{i + 1:02d}--1---2.tif"
            else:  # names that share nothing with the protein names
                dname = f"h{chr(ord('a') + i)}_nuclear.tif"
            _tif(base / ab / "dna" / dname, _img(tag))
            if crop:
                _tif(base / ab / "crop" / f"{stem}.crop.tif", np.ones((H, W), np.uint8))
    return root


def write_iicbu(root: Path, n=3):
    for folder in ("actin", "dna", "er"):
        for i in range(n):
            name = f"{folder}_{i + 1:03d}.tif" if folder != "dna" else f"DNA_{i + 1:03d}.TIF"
            _tif(root / folder / name, _img(i, (382, 382)))
    return root


def write_generic_two_channel(root: Path, n=3):
    for c, cls in enumerate(("mitochondria", "ER")):
        for i in range(n):
            tag = 10 * c + i
            _tif(root / cls / f"cell{i}.tif", np.stack([_img(tag), _img(tag)]))
    return root


def _zip(src: Path, out: Path, extra: dict | None = None):
    with zipfile.ZipFile(out, "w") as zf:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(src).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return out


def _tar(src: Path, out: Path, mode: str, extra: dict | None = None):
    with tarfile.open(out, mode) as tf:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                tf.add(f, arcname=f.relative_to(src).as_posix())
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out


def _pairs_match(data: LabelledImages):
    for s in data.samples:
        assert s.dna is not None, s.source
        assert s.protein[0, 0] == s.dna[0, 0], s.source


# --- generic folders ------------------------------------------------------------------------------


def test_generic_two_channel_tiff(tmp_path):
    d = load_labelled(write_generic_two_channel(tmp_path / "set"))
    assert d.classes == ["ER", "Mitochondria"]
    assert d.counts() == {"ER": 3, "Mitochondria": 3} and len(d) == 6
    assert d.has_dna()
    _pairs_match(d)
    assert all(s.protein.shape == (H, W) and s.protein.dtype == np.uint16 for s in d.samples)
    assert "generic" in d.description and "6 images" in d.description
    assert not d.skipped and not d.warnings


def test_generic_separate_files_paired_by_name(tmp_path):
    root = tmp_path / "set"
    for i in range(3):
        _tif(root / "Golgi_gia" / f"x{i}_protein.tif", _img(i))
        _tif(root / "Golgi_gia" / f"x{i}_dna.tif", _img(i))
        _tif(root / "lysosomes" / f"c{i}.tif", _img(50 + i))
        _tif(root / "lysosomes" / f"c{i}_DAPI.tif", _img(50 + i))
    d = load_labelled(root)
    assert d.classes == ["Golgi_gia", "Lysosome"] and len(d) == 6
    _pairs_match(d)
    assert all("_dna" not in s.source.lower() and "dapi" not in s.source.lower() for s in d.samples)


def test_generic_prot_dna_subfolders_user_classes(tmp_path):
    root = tmp_path / "set"
    for c, cls in enumerate(("treated", "control")):
        for i in range(3):
            _tif(root / cls / "prot" / f"well{i}_gfp.tif", _img(c * 10 + i))
            _tif(root / cls / "dna" / f"well{i}_hoechst.tif", _img(c * 10 + i))
    d = load_labelled(root)
    assert d.classes == ["control", "treated"]  # the user's own classes, sorted
    assert {s.label for s in d.samples} == {"control", "treated"}
    _pairs_match(d)
    assert not d.warnings  # "gfp" / "hoechst" mark the channel: paired by name, not by order
    assert "prot/ and dna/" in d.description


def test_generic_png_jpg_mixed(tmp_path):
    root = tmp_path / "set"
    (root / "Nucleolus").mkdir(parents=True)
    (root / "Endosome").mkdir(parents=True)
    Image.fromarray(_img(1, dtype=np.uint8)).save(root / "Nucleolus" / "a8.png")
    Image.fromarray(_img(2)).save(root / "Nucleolus" / "a16.png")  # 16-bit PNG (mode I;16)
    Image.fromarray(_img(3, dtype=np.uint8)).save(root / "Nucleolus" / "a.jpg")
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 1] = _img(4, dtype=np.uint8)
    Image.fromarray(rgb).save(root / "Endosome" / "b.JPEG")
    Image.fromarray(rgb).save(root / "Endosome" / "b2.jpg")
    d = load_labelled(root)
    assert d.counts() == {"Endosome": 2, "Nucleolus": 3}
    assert all(s.protein.ndim == 2 and s.protein.shape == (H, W) and s.dna is None for s in d.samples)
    dtypes = {Path(s.source).name: s.protein.dtype for s in d.samples}
    assert dtypes["a16.png"] == np.uint16 and dtypes["a8.png"] == np.uint8
    assert not d.has_dna()


# --- Murphy release -------------------------------------------------------------------------------


def test_murphy_release_with_top_folder(tmp_path):
    d = load_labelled(write_murphy(tmp_path / "release"))
    assert d.classes == ["ActinFilaments", "Microtubules", "Nucleus"]
    assert d.counts() == {"ActinFilaments": 3, "Microtubules": 3, "Nucleus": 3}
    _pairs_match(d)
    assert all("/prot/" in s.source for s in d.samples)
    assert "Murphy" in d.description and "HeLa10Class2DImages_16bit_tiff" in d.description
    assert "crop" in d.description  # said to be ignored
    assert not d.warnings and not d.skipped


def test_murphy_unpairable_names_fall_back_to_sorted_order(tmp_path):
    d = load_labelled(write_murphy(tmp_path / "release", dna_names="unrelated", top=None, crop=False))
    assert len(d) == 9 and all(s.dna is not None for s in d.samples)
    _pairs_match(d)  # sorted order happens to be right here; a warning must still say so
    assert any("sorted" in w and "tubul" in w for w in d.warnings)


def test_murphy_dna_count_mismatch_uses_protein_only(tmp_path):
    root = write_murphy(tmp_path / "release", dna_names="unrelated", top=None, crop=False)
    next((root / "tubul" / "dna").iterdir()).unlink()
    d = load_labelled(root)
    assert len(d) == 9
    tub = [s for s in d.samples if s.label == "Microtubules"]
    assert all(s.dna is None for s in tub)
    assert any("without DNA" in w for w in d.warnings)


def test_single_class_folder_chosen_is_explained(tmp_path):
    root = write_murphy(tmp_path / "release", top=None)
    with pytest.raises(InputError, match="ONE class folder"):
        load_labelled(root / "tubul")


# --- IICBU ---------------------------------------------------------------------------------------


def test_iicbu_layout(tmp_path):
    d = load_labelled(write_iicbu(tmp_path / "hela"))
    assert d.classes == ["ActinFilaments", "ER", "Nucleus"]
    assert d.counts() == {"ActinFilaments": 3, "ER": 3, "Nucleus": 3}
    assert not d.has_dna()
    assert any(s.source.endswith("DNA_001.TIF") and s.label == "Nucleus" for s in d.samples)
    assert all(s.protein.shape == (382, 382) for s in d.samples)
    assert "IICBU" in d.description


# --- archives ------------------------------------------------------------------------------------


@pytest.mark.parametrize("writer,n,layout", [
    (write_generic_two_channel, 6, "generic"),
    (write_murphy, 9, "Murphy"),
    (write_iicbu, 9, "IICBU"),
])
@pytest.mark.parametrize("kind", [".zip", ".tar.gz", ".tgz", ".tar"])
def test_archives_of_each_layout(tmp_path, writer, n, layout, kind):
    src = writer(tmp_path / "src")
    out = tmp_path / f"data{kind}"
    if kind == ".zip":
        _zip(src, out)
    else:
        _tar(src, out, "w:gz" if kind != ".tar" else "w")
    before = sorted(tmp_path.rglob("*"))
    d = load_labelled(out)
    assert sorted(tmp_path.rglob("*")) == before  # nothing was extracted to disk
    assert len(d) == n and layout in d.description
    assert all(s.source.startswith(f"{out}::") for s in d.samples)
    assert not d.skipped
    if d.has_dna():
        _pairs_match(d)


@pytest.mark.parametrize("kind", [".zip", ".tar.gz"])
def test_archive_unsafe_and_hidden_members(tmp_path, kind):
    src = write_generic_two_channel(tmp_path / "src")
    evil = io.BytesIO()
    tifffile.imwrite(evil, _img(7))
    extra = {
        "../evil.tif": evil.getvalue(),
        "/abs/evil2.tif": evil.getvalue(),
        "ER/../../evil3.tif": evil.getvalue(),
        "__MACOSX/ER/._cell0.tif": b"\x00\x05\x16\x07junk",
        "ER/._cell0.tif": b"\x00\x05\x16\x07junk",
        ".DS_Store": b"junk",
    }
    out = tmp_path / f"data{kind}"
    _zip(src, out, extra) if kind == ".zip" else _tar(src, out, "w:gz", extra)
    d = load_labelled(out)
    assert len(d) == 6
    unsafe = [f for f, why in d.skipped if why == "unsafe path in archive"]
    assert len(unsafe) == 3 and any(f.endswith("../evil.tif") for f in unsafe)
    assert len(d.skipped) == 3  # hidden / __MACOSX members are ignored silently
    assert not (tmp_path / "evil.tif").exists() and not (tmp_path.parent / "evil.tif").exists()


def test_truncated_tgz_reads_what_it_can(tmp_path):
    src = write_murphy(tmp_path / "src", crop=False)
    tail = bytes(_RNG.integers(0, 256, 300_000, dtype=np.uint8))  # incompressible last member
    out = _tar(src, tmp_path / "release.tgz", "w:gz", {"zz_last/README.bin": tail})
    data = out.read_bytes()
    out.write_bytes(data[: len(data) - 100_000])
    d = load_labelled(out)
    assert len(d) == 9
    assert any("truncated" in w for w in d.warnings)
    # cut before the images: nothing readable, and the error says the archive is truncated
    out.write_bytes(data[:5000])
    with pytest.raises(InputError, match="truncated"):
        load_labelled(out)


def test_dna_folder_without_prot_folder_is_not_a_class_of_dna_images(tmp_path):
    root = write_murphy(tmp_path / "release", top=None, crop=False)
    import shutil

    shutil.rmtree(root / "tubul" / "prot")
    d = load_labelled(root)
    assert "Microtubules" not in d.classes and len(d) == 6
    assert any("tubul" in w and "no prot/" in w for w in d.warnings)


def test_corrupt_archive_raises(tmp_path):
    p = tmp_path / "broken.zip"
    p.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(InputError, match="broken.zip"):
        load_labelled(p)


# --- broken files, empty sets, warnings ----------------------------------------------------------


def test_broken_files_are_skipped_and_listed(tmp_path):
    root = write_generic_two_channel(tmp_path / "set")
    (root / "ER" / "corrupt.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 2)
    good = io.BytesIO()
    Image.fromarray(_img(1)).save(good, format="PNG")
    (root / "ER" / "truncated.png").write_bytes(good.getvalue()[:2000])
    (root / "mitochondria" / "empty.tif").write_bytes(b"")
    (root / "mitochondria" / "notes.txt").write_text("imaged on tuesday")
    _tif(root / "mitochondria" / "flat.tif", np.zeros((H, W), np.uint16))
    d = load_labelled(root)
    assert len(d) == 6
    why = {Path(f).name: r for f, r in d.skipped}
    assert set(why) == {"corrupt.tif", "truncated.png", "empty.tif", "notes.txt", "flat.tif"}
    assert "corrupt" in why["corrupt.tif"]
    assert "truncated" in why["truncated.png"] or "corrupt" in why["truncated.png"]
    assert "empty" in why["empty.tif"] and "not an image" in why["notes.txt"]
    assert "constant (every pixel is 0)" in why["flat.tif"]  # the value as a user writes it, not np.uint16(0)
    assert "5 file(s) skipped" in d.description


def test_nonexistent_and_empty(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_labelled(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="No readable labelled images.*Expected"):
        load_labelled(tmp_path / "empty")
    (tmp_path / "emptyclasses" / "ER").mkdir(parents=True)
    (tmp_path / "emptyclasses" / "Golgi").mkdir(parents=True)
    with pytest.raises(InputError, match="No readable"):
        load_labelled(tmp_path / "emptyclasses")


def test_flat_folder_without_class_folders(tmp_path):
    for i in range(3):
        _tif(tmp_path / "flat" / f"c{i}.tif", _img(i))
    with pytest.raises(InputError, match="not inside a class folder"):
        load_labelled(tmp_path / "flat")


def test_one_class_only(tmp_path):
    for i in range(3):
        _tif(tmp_path / "one" / "Mito" / f"c{i}.tif", _img(i))
    with pytest.raises(InputError, match=r"Only one class \('Mitochondria', 3 images\)"):
        load_labelled(tmp_path / "one")
    with pytest.raises(InputError, match="Only one class"):
        load_labelled(tmp_path / "one" / "Mito" / "..")


def test_autoencoder_data_may_have_one_class_or_none(tmp_path):
    """min_classes=1 (autoencoder: no labels needed): one class folder, or a plain folder of images."""
    for i in range(3):
        _tif(tmp_path / "one" / "Mito" / f"c{i}.tif", _img(i))
    d = load_labelled(tmp_path / "one", min_classes=1)
    assert d.classes == ["Mitochondria"] and len(d) == 3 and not d.warnings
    assert "3 images in 1 class (" in d.description
    # a plain folder of images (and x_dna.tif partners), no class sub-folders
    for i in range(3):
        _tif(tmp_path / "flat" / f"c{i}.tif", _img(i))
    _tif(tmp_path / "flat" / "c0_dna.tif", _img(50))
    d = load_labelled(tmp_path / "flat", min_classes=1)
    assert d.classes == [datasets.UNLABELLED] and len(d) == 3 and not d.skipped
    assert d.samples[0].dna is not None and d.samples[0].dna[0, 0] == 50
    assert "plain folder of images" in d.description
    # the same as an archive
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as z:
        for i in range(3):
            z.write(tmp_path / "flat" / f"c{i}.tif", f"c{i}.tif")
    assert len(load_labelled(tmp_path / "flat.zip", min_classes=1)) == 3
    # a single Murphy antibody folder (prot/ + dna/) is one class too
    write_murphy(tmp_path / "m", top=None, crop=False)
    d = load_labelled(tmp_path / "m" / "tubul", min_classes=1)
    assert len(d) == 3 and len(d.classes) == 1 and all(s.dna is not None for s in d.samples)
    # two classes stay two classes; a single image per class gives no warning here
    root = write_generic_two_channel(tmp_path / "set", n=1)
    d = load_labelled(root, min_classes=1)
    assert len(d.classes) == 2 and not d.warnings
    # the classifier's default still refuses all of these, with the same message
    for src in ("one", "flat"):
        with pytest.raises(InputError, match="Only one class|not inside a class folder"):
            load_labelled(tmp_path / src)
    with pytest.raises(InputError, match="min_classes"):
        load_labelled(tmp_path / "one", min_classes=0)


def test_class_with_too_few_images_warns(tmp_path):
    root = write_generic_two_channel(tmp_path / "set")
    _tif(root / "tubulin" / "only.tif", _img(1))
    d = load_labelled(root)
    assert d.counts()["Microtubules"] == 1
    assert any("Microtubules" in w and "only 1" in w for w in d.warnings)
    d = load_labelled(root, min_per_class=5)
    assert sum("only" in w for w in d.warnings) == 3


def test_simulated_source(monkeypatch):
    calls = {}

    def simulate_dataset(per_class, seed, **kw):
        calls["args"] = (per_class, seed)
        samples = [Sample(_img(i, (64, 64)), _img(i, (64, 64)), c, f"simulated:default:{seed}:{i}")
                   for i, c in enumerate(CLASSES[:2] * per_class)]
        return LabelledImages(samples, list(CLASSES[:2]))

    fake = types.ModuleType("napari_organelle.phantoms")
    fake.simulate_dataset = simulate_dataset
    import napari_organelle

    monkeypatch.setitem(sys.modules, "napari_organelle.phantoms", fake)
    monkeypatch.setattr(napari_organelle, "phantoms", fake, raising=False)
    d = load_labelled("simulated:3")
    assert calls["args"] == (3, 0) and len(d) == 6 and d.description
    load_labelled("simulated")
    assert calls["args"] == (40, 0)


# --- splits and tensors --------------------------------------------------------------------------


def test_stratified_split_deterministic_and_stratified():
    labels = ["a"] * 20 + ["b"] * 7 + ["c"] * 3 + ["d"] * 2 + ["e"]
    tr, va, te = stratified_split(labels, seed=0)
    tr2, va2, te2 = stratified_split(labels, seed=0)
    assert all(np.array_equal(x, y) for x, y in ((tr, tr2), (va, va2), (te, te2)))
    assert all(x.dtype == np.int64 for x in (tr, va, te))
    allidx = np.concatenate([tr, va, te])
    assert sorted(allidx.tolist()) == list(range(len(labels)))  # disjoint and complete
    lab = np.array(labels)
    for c in "abc":
        for part in (tr, va, te):
            assert (lab[part] == c).sum() >= 1, c
    assert (lab[tr] == "a").sum() == 14 and (lab[va] == "a").sum() == 3
    assert (lab[tr] == "e").sum() == 1
    assert (lab[tr] == "d").sum() == 1 and (lab[va] == "d").sum() == 1
    other = stratified_split(labels, seed=1)
    assert not np.array_equal(other[0], tr)
    # integer labels and a split without a test part
    tr, va, te = stratified_split(np.array([0, 1, 2] * 10), fractions=(0.8, 0.2, 0.0))
    assert len(te) == 0 and len(tr) + len(va) == 30 and len(va) == 6


def test_stratified_split_bad_fractions():
    with pytest.raises(InputError):
        stratified_split([0, 1], fractions=(0.5, 0.5))
    with pytest.raises(InputError):
        stratified_split([0, 1], fractions=(-1, 1, 1))


def test_to_classifier_tensors(tmp_path):
    root = tmp_path / "set"
    for i in range(3):
        _tif(root / "ER" / f"c{i}.tif", np.stack([_img(i), _img(i)]))
        _tif(root / "Mitochondria" / f"m{i}.tif", _img(i))  # protein only
    d = load_labelled(root)
    X, y = to_classifier_tensors(d, 64)
    assert X.shape == (6, 2, 64, 64) and X.dtype == np.float32
    assert y.dtype == np.int64 and y.tolist() == [0, 0, 0, 1, 1, 1]
    assert X.min() >= 0 and X.max() <= 1 and X[:, 0].max() > 0.3
    assert np.all(X[3:, 1] == 0) and np.all(X[:3, 1].max(axis=(1, 2)) > 0.3)
    # the model's full class list: labels index into it
    X2, y2 = to_classifier_tensors(d, 32, classes=list(CLASSES))
    assert y2.tolist() == [CLASSES.index("ER")] * 3 + [CLASSES.index("Mitochondria")] * 3
    with pytest.raises(InputError, match="Mitochondria"):
        to_classifier_tensors(d, 32, classes=["ER", "Golgi_gia"])
    seen = []
    to_classifier_tensors(d, 16, progress=lambda i, n: seen.append((i, n)))
    assert seen[-1] == (6, 6)


def test_native_planes_subset_and_counts(tmp_path):
    d = load_labelled(write_generic_two_channel(tmp_path / "set"))
    planes = to_native_planes(d, max_side=200)
    assert len(planes) == 12
    assert all(p.dtype == np.float32 and p.ndim == 2 and max(p.shape) <= 200 for p in planes)
    assert all(p.min() >= 0 and p.max() <= 1 for p in planes)
    full = to_native_planes(d)
    assert full[0].shape == (H, W)
    nat = to_native_list(d)
    assert len(nat) == 6 and nat[0].shape == (2, H, W)
    sub = d.subset([0, 5])
    assert len(sub) == 2 and sub.classes == d.classes and sub.counts() == {"ER": 1, "Mitochondria": 1}
    assert sub.has_dna()


def test_progress_called_while_reading(tmp_path):
    seen = []
    load_labelled(write_generic_two_channel(tmp_path / "set"), progress=lambda i, n: seen.append((i, n)))
    assert seen and seen[-1] == (6, 6)


def test_module_all_names():
    for name in ("Sample", "LabelledImages", "load_labelled", "stratified_split", "to_classifier_tensors",
                 "to_native_planes"):
        assert hasattr(datasets, name)


# --- audit of loading a user's own labelled data ---------------------------------------------------

S = (40, 50)  # small images: these tests are about names and layouts


def test_flat_pairing_strips_dna_and_protein_marker_tokens(tmp_path):
    root = tmp_path / "set"
    for i in range(2):
        _tif(root / "ER" / f"cell{i}_GFP.tif", _img(i, S))
        _tif(root / "ER" / f"cell{i}_DAPI.tif", _img(i, S))
        _tif(root / "Mito" / f"Cell {i} GFP.tif", _img(10 + i, S))
        _tif(root / "Mito" / f"Cell {i} Hoechst.tif", _img(10 + i, S))
        _tif(root / "Nucleus" / f"DNA_{i + 1:03d}.tif", _img(20 + i, S))  # a nuclear class: its images
    d = load_labelled(root)
    assert d.counts() == {"ER": 2, "Mitochondria": 2, "Nucleus": 2}
    _pairs_match(d.subset([i for i, s in enumerate(d.samples) if s.label != "Nucleus"]))
    assert not any("dapi" in s.source.lower() or "hoechst" in s.source.lower() for s in d.samples)
    assert all(s.dna is None for s in d.samples if s.label == "Nucleus")
    assert not d.skipped and not d.warnings


def test_dna_named_image_without_partner_is_skipped_not_used_as_protein(tmp_path):
    root = tmp_path / "set"
    for i in range(2):
        _tif(root / "ER" / f"cell{i}_GFP.tif", _img(i, S))
        _tif(root / "ER" / f"cell{i}_DAPI.tif", _img(i, S))
        _tif(root / "Mito" / f"m{i}.tif", _img(10 + i, S))
    _tif(root / "ER" / "cell7_DAPI.tif", _img(7, S))
    _tif(root / "Mito" / "Hoechst 3.tif", _img(8, S))
    _tif(root / "treated" / "t0.tif", _img(30, S))
    _tif(root / "treated" / "t1.tif", _img(31, S))
    _tif(root / "Chromatin" / "x_dapi.tif", _img(32, S))  # the user's own nuclear class: kept
    _tif(root / "Chromatin" / "y_dapi.tif", _img(33, S))
    d = load_labelled(root)
    assert d.counts() == {"Chromatin": 2, "ER": 2, "Mitochondria": 2, "treated": 2}
    why = {Path(f).name: r for f, r in d.skipped}
    assert set(why) == {"cell7_DAPI.tif", "Hoechst 3.tif"}
    assert "DNA image" in why["cell7_DAPI.tif"] and "not used as a 'ER' image" in why["cell7_DAPI.tif"]
    assert "cell7.tif or cell7_GFP.tif" in why["cell7_DAPI.tif"]
    assert any(w.startswith("ER: 1 image(s) are named as DNA images") for w in d.warnings)
    assert any(w.startswith("Mito: 1 image(s)") and "'Mitochondria'" in w for w in d.warnings)
    # the autoencoder needs no labels: there a DNA image is an image like any other
    d1 = load_labelled(root, min_classes=1)
    assert len(d1) == 10 and not d1.skipped


def _ij(path: Path, arr, axes):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, arr, imagej=True, metadata={"axes": axes})


def test_file_axes_decide_channels_zstacks_and_rgb(tmp_path):
    root = tmp_path / "set"
    a, b = _img(1, S), _img(1, S)
    _ij(root / "ER" / "zstack.tif", np.stack([a, b]), "ZYX")          # not protein + DNA
    _ij(root / "ER" / "two_channel.tif", np.stack([a, b]), "CYX")     # protein + DNA
    _ij(root / "ER" / "three_channel.tif", np.stack([a, b, a]), "CYX")
    _ij(root / "ER" / "movie.tif", np.stack([a, b, a]), "TYX")
    _ij(root / "ER" / "zc.tif", np.stack([np.stack([a, b])] * 3), "ZCYX")
    rgb = np.zeros((3,) + S, np.uint8)
    rgb[1] = _img(2, S, np.uint8)
    (root / "Mito").mkdir(parents=True)
    tifffile.imwrite(root / "Mito" / "planar_rgb.tif", rgb, photometric="rgb")  # (3, Y, X) planar RGB
    tifffile.imwrite(root / "Mito" / "planar_rgb2.tif", rgb, photometric="rgb", planarconfig="separate")
    _tif(root / "Mito" / "five.tif", np.stack([a] * 5))  # no axes in the file: the shape decides
    d = load_labelled(root)
    assert d.counts() == {"ER": 1, "Mitochondria": 2}
    er = next(s for s in d.samples if s.label == "ER")
    assert er.source.endswith("two_channel.tif") and er.dna is not None
    assert all(s.protein.shape == S and s.dna is None and s.protein[0, 0] == 2
               for s in d.samples if s.label == "Mitochondria")  # RGB: max over colours
    why = {Path(f).name: r for f, r in d.skipped}
    assert set(why) == {"zstack.tif", "three_channel.tif", "movie.tif", "zc.tif", "five.tif"}
    assert "is a z-stack (Z=2" in why["zstack.tif"] and "max-project" in why["zstack.tif"]
    assert "3 channels" in why["three_channel.tif"] and "2-channel file" in why["three_channel.tif"]
    assert "time series (T=3" in why["movie.tif"]
    assert "2-channel z-stack (Z=3, C=2" in why["zc.tif"]
    assert "5 planes" in why["five.tif"] and "does not say" in why["five.tif"]
    assert not any("expected a 2D image" in r for r in why.values())
    # the same read from an archive (bytes)
    z = load_labelled(_zip(root, tmp_path / "set.zip"))
    assert z.counts() == d.counts() and len(z.skipped) == 5


def test_loose_images_with_a_dapi_subfolder_are_the_protein_images(tmp_path):
    root = tmp_path / "set"
    for i in range(3):
        _tif(root / "ER" / f"ER_{i:03d}.tif", _img(i, S))
        _tif(root / "Mito" / f"m{i}.tif", _img(10 + i, S))
    _tif(root / "ER" / "DAPI" / "ER_000.tif", _img(0, S))
    d = load_labelled(root)
    assert d.counts() == {"ER": 3, "Mitochondria": 3} and not d.skipped
    er = {Path(s.source).name: s for s in d.samples if s.label == "ER"}
    assert er["ER_000.tif"].dna is not None and er["ER_000.tif"].dna[0, 0] == 0
    assert er["ER_001.tif"].dna is None
    assert any("ER" in w and "1 DNA" in w and "without DNA" in w for w in d.warnings)
    assert "prot/ and dna/" not in d.description and "dna/" in d.description
    assert not any("no prot/" in w for w in d.warnings)
    # names paired with the channel markers left out, all pairs found: no warning
    for i in range(3):
        _tif(root / "Golgi_gpp" / f"c{i}_GFP.tif", _img(40 + i, S))
        _tif(root / "Golgi_gpp" / "hoechst" / f"c{i}_hoechst.tif", _img(40 + i, S))
    d = load_labelled(root)
    gpp = [s for s in d.samples if s.label == "Golgi_gpp"]
    assert len(gpp) == 3
    _pairs_match(d.subset([i for i, s in enumerate(d.samples) if s.label == "Golgi_gpp"]))
    assert not any("Golgi_gpp" in w for w in d.warnings)


def test_dna_folder_alone_lists_its_images_and_nucleus_uses_them(tmp_path):
    root = tmp_path / "set"
    for i in range(2):
        _tif(root / "Mito" / f"m{i}.tif", _img(i, S))
        _tif(root / "ER" / "dna" / f"e{i}.tif", _img(10 + i, S))
        _tif(root / "Nucleus" / "DAPI" / f"n{i}.tif", _img(20 + i, S))
        _tif(root / "Nucleus" / "DAPI" / f"n{i + 2}.tif", _img(22 + i, S))
    d = load_labelled(root)
    assert d.counts() == {"Mitochondria": 2, "Nucleus": 4}
    assert {Path(f).name for f, _ in d.skipped} == {"e0.tif", "e1.tif"}
    assert any(w.startswith("ER: holds a dna/ folder of DNA images (2) but no protein images") for w in d.warnings)
    assert any(w.startswith("Nucleus: the only images are in its DAPI/ folder") for w in d.warnings)


def test_class_folder_with_only_hidden_files_warns_everywhere(tmp_path):
    src = tmp_path / "src" / "wrap"
    for i in range(2):
        _tif(src / "ER" / f"e{i}.tif", _img(i, S))
        _tif(src / "Mito" / f"m{i}.tif", _img(10 + i, S))
    (src / "Lysosome").mkdir()
    (src / "Lysosome" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (src / "Endosome").mkdir()  # truly empty
    zpath = _zip(tmp_path / "src", tmp_path / "set.zip")  # zip keeps no folder entries here
    tpath = tmp_path / "set.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        tf.add(tmp_path / "src", arcname=".")  # with folder entries
    for source in (src, tmp_path / "src", zpath, tpath):
        d = load_labelled(source)
        assert d.counts() == {"ER": 2, "Mitochondria": 2}, source
        empty = sorted(w.split("'")[1] for w in d.warnings if w.startswith("Class folder"))
        if source == zpath:  # a zip lists no empty folder; .DS_Store still shows Lysosome/
            assert empty == ["Lysosome"], d.warnings
        else:
            assert empty == ["Endosome", "Lysosome"], (source, d.warnings)


def test_loose_images_beside_class_folders(tmp_path):
    nuc = tmp_path / "Nucleus"
    for i in range(8):
        _tif(nuc / f"n{i}.tif", _img(i, S))
    _tif(nuc / "day1" / "x.tif", _img(50, S))
    d = load_labelled(nuc, min_classes=1)  # the autoencoder: every image is used
    assert len(d) == 9 and d.classes == [datasets.UNLABELLED] and not d.skipped
    assert "8 image(s) directly in the folder and 1 in day1/" in d.description
    with pytest.raises(InputError, match=r"8 image\(s\) lie directly in this folder.*class must be a folder"):
        load_labelled(nuc)
    # the folder above: Nucleus is one class with all 9 images (not stepped into)
    d = load_labelled(tmp_path, min_classes=1)
    assert d.counts() == {"Nucleus": 9}
    # a set with a few stray images beside its class folders
    root = write_generic_two_channel(tmp_path / "set")
    _tif(root / "stray.tif", _img(60, S))
    d = load_labelled(root)
    assert len(d) == 6 and [Path(f).name for f, _ in d.skipped] == ["stray.tif"]
    assert any("1 image(s) lie directly in this folder, beside the class folder(s) ER, mitochondria" in w
               for w in d.warnings)
    d = load_labelled(root, min_classes=1)
    assert len(d) == 7 and d.counts()[datasets.UNLABELLED] == 1 and not d.skipped
