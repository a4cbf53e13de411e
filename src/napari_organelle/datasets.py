"""Labelled image sets: folders and archives in the layouts users and the public releases use.

:func:`load_labelled` reads, without the user unpacking anything:

* **generic** -- one sub-folder per class (any names; aliases of the ten classes map to the
  canonical names, other names stay the user's own classes). Each file holds one channel (protein)
  or two (channel 0 protein, channel 1 DNA; where the file declares its axes -- ImageJ, OME,
  tifffile metadata -- a Z or T axis is never taken for channels); or protein and DNA are separate
  files paired by name with the marker tokens left out (``x_protein.tif`` + ``x_dna.tif``,
  ``x.tif`` + ``x_dna.tif``, ``cell0_GFP.tif`` + ``cell0_DAPI.tif``); or ``prot/`` and ``dna/``
  sub-folders inside each class folder; or the images directly in the class folder and their DNA
  images in a ``dna/`` (``dapi/``, ``hoechst/``) sub-folder. A DNA-named file without a partner is
  an image of a nuclear class (Nucleus) but is skipped, not used, in any other class;
* the **Murphy-lab 2D HeLa release** -- ``<antibody>/prot/*`` and ``<antibody>/dna/*`` (antibody
  folders dap, erdak, giant, ... from :data:`classes.MURPHY_ANTIBODIES`), possibly under one top
  folder, with any ``crop/`` or ``cell/`` folders ignored;
* the **IICBU-2008 "hela"** set -- ``actin/actin_001.tif`` ... ``dna/DNA_001.TIF`` (protein only);
* a ``.zip``, ``.tar``, ``.tar.gz``/``.tgz`` (also ``.tar.bz2``/``.tar.xz``) of any of these,
  streamed member by member (never extracted to disk; unsafe member paths are refused);
* the literal source ``"simulated"`` or ``"simulated:N"`` (N simulated cells per class);
* for the autoencoder, which needs no labels (``min_classes=1``): also a single class folder, or a
  plain folder (or archive) of images without class sub-folders (label ``"unlabelled"``; images
  in its sub-folders included), and images lying beside class folders (one more set,
  ``"unlabelled"``). For a classifier such loose images are skipped, with a warning.

Unreadable files are skipped and listed, never fatal; what was read is said in ``description``.
"""

from __future__ import annotations

import os
import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Sequence

import numpy as np

from . import classes as _classes
from . import preprocess
from .io import IMAGE_SUFFIXES, _unexpected, is_image_name, read_image_axes
from .preprocess import InputError

Progress = Callable[[int, int], None]

#: Sub-folder names (lower case) that hold the protein channel inside a class folder.
PROTEIN_DIRS = ("prot", "protein", "proteins")
#: Sub-folder names (lower case) that hold the DNA channel inside a class folder.
DNA_DIRS = ("dna", "dapi", "hoechst")
#: Name tokens that mark a file as the DNA image of a pair.
DNA_TOKENS = frozenset({"dna", "dapi", "hoechst", "hoechst33342", "hoechst33258", "h33342", "h33258",
                        "draq5", "nuclei"})
#: DNA tokens that say for certain that a file is a DNA stain: such a file without a protein
#: partner is not used as an image of a (non-nuclear) class.
DNA_STAIN_TOKENS = DNA_TOKENS - {"nuclei"}
#: Name tokens that mark a file as the protein image of a pair (left out when names are compared).
PROTEIN_TOKENS = frozenset({
    "prot", "protein", "proteins", "gfp", "egfp", "yfp", "eyfp", "cfp", "ecfp", "rfp", "mcherry",
    "tdtomato", "mneongreen", "venus", "fitc", "tritc", "cy3", "cy5", "alexa488", "alexa568",
    "alexa594", "af488", "af568", "af594",
})
#: Archive suffixes read as archives.
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tbz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz")
#: Archive members larger than this many bytes (as the archive declares them, before anything is
#: decompressed) are skipped, a guard against zip bombs. None: the memory budget of one image,
#: :data:`napari_organelle.io.MAX_IMAGE_BYTES` (1 GiB unless NAPARI_ORGANELLE_MAX_IMAGE_BYTES says).
MAX_MEMBER_BYTES: int | None = None


def _member_limit() -> int:
    from . import io as _io

    return int(MAX_MEMBER_BYTES) if MAX_MEMBER_BYTES is not None else int(_io.MAX_IMAGE_BYTES)


def _too_big_member(size: int) -> str:
    return (f"member is {size / 1024 ** 3:.1f} GiB uncompressed, more than the {_member_limit() / 1024 ** 3:.1f} GiB "
            "allowed for one image (a guard against archive bombs); not read. Set NAPARI_ORGANELLE_MAX_IMAGE_BYTES "
            "to raise the limit if it is a real image")

_IGNORED_NAMES = frozenset({"__macosx", "thumbs.db", "desktop.ini"})

_EXPECTED = (
    "Expected one of: a folder with one sub-folder per class holding .tif/.tiff/.png/.jpg images "
    "(e.g. Mito/cell1.tif, ER/cell7.tif); the Murphy 2D HeLa release (<antibody>/prot/*.tif and "
    "<antibody>/dna/*.tif, e.g. tubul/prot/r14jul98.tubul.03--1---2.tif); the IICBU-2008 HeLa set "
    "(actin/actin_001.tif ... dna/DNA_001.TIF); or a .zip/.tar/.tar.gz/.tgz of one of these."
)

#: Label of the images of a plain folder without class sub-folders (autoencoder data).
UNLABELLED = "unlabelled"


# --------------------------------------------------------------------------------------------------
# Data types


@dataclass
class Sample:
    protein: np.ndarray            # 2D, any dtype, native size
    dna: np.ndarray | None         # 2D, same shape, or None
    label: str                     # class name (canonical where it is one of the ten)
    source: str                    # file path / "archive.zip::member" / "simulated:<style>:<seed>:<i>"


@dataclass
class LabelledImages:
    samples: list[Sample]
    classes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    warnings: list[str] = field(default_factory=list)
    description: str = ""

    def counts(self) -> dict[str, int]:
        """Images per class, in ``classes`` order (plus any label not in ``classes`` at the end)."""
        out = {c: 0 for c in self.classes}
        for s in self.samples:
            out[s.label] = out.get(s.label, 0) + 1
        return out

    def has_dna(self) -> bool:
        """True if any sample has a DNA image."""
        return any(s.dna is not None for s in self.samples)

    def labels(self) -> list[str]:
        return [s.label for s in self.samples]

    def subset(self, indices) -> "LabelledImages":
        """The samples at ``indices`` (same class list, so label indices stay the same)."""
        idx = [int(i) for i in np.asarray(indices, dtype=np.int64).ravel()]
        return LabelledImages(
            samples=[self.samples[i] for i in idx],
            classes=list(self.classes),
            skipped=list(self.skipped),
            warnings=list(self.warnings),
            description=f"{self.description} [subset of {len(idx)} of {len(self.samples)} images]"
            if self.description else f"subset of {len(idx)} of {len(self.samples)} images",
        )

    def __len__(self) -> int:
        return len(self.samples)


# --------------------------------------------------------------------------------------------------
# File trees: a folder, a zip or a tar, all seen as relative posix names of regular files


def _clean_member_name(name: str) -> str | None:
    """Normalise an archive member name; None if it is unsafe (absolute or with '..')."""
    n = name.replace("\\", "/")
    if n.startswith("/") or re.match(r"^[A-Za-z]:", n):
        return None
    parts = [p for p in n.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _is_ignored(name: str) -> bool:
    return any(p.startswith(".") or p.lower() in _IGNORED_NAMES for p in name.split("/"))


class _Tree:
    kind = "folder"

    def __init__(self, label: str):
        self.label = label
        self.files: list[str] = []
        self.dirs: set[str] = set()  # every folder seen (also empty ones, or ones with dot-files only)
        self.skipped: list[tuple[str, str]] = []
        self.warnings: list[str] = []

    def _note_dirs(self, name: str, is_dir: bool = False) -> None:
        """Record the folders of a member name (up to the first ignored one): archives need not
        list folders, and a folder holding only ignored files (.DS_Store) is still a folder."""
        parts = name.split("/") if is_dir else name.split("/")[:-1]
        for i, part in enumerate(parts):
            if part.startswith(".") or part.lower() in _IGNORED_NAMES:
                break
            self.dirs.add("/".join(parts[: i + 1]))

    def source(self, name: str) -> str:
        raise NotImplementedError

    def read(self, names: Sequence[str], progress: Progress | None) -> Iterator[tuple[str, object]]:
        """Yield (name, (ndarray, axes) or InputError) for ``names``, in the order cheapest to read."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class _DirTree(_Tree):
    kind = "folder"

    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path = path
        try:
            st = os.stat(path)
            root_key = {(st.st_dev, st.st_ino)}
        except OSError:
            root_key = set()
        try:
            self._root = path.resolve()
        except (OSError, RuntimeError):
            self._root = path
        self._walk(path, "", root_key)

    def _walk(self, folder: Path, rel: str, ancestors: set) -> None:
        """Files and folders under ``folder``, in sorted order (files first, then sub-folders).
        Links to folders are followed (a class folder may be a link), except a link back to a folder
        it lies in (a loop); an unreadable folder is reported, never silently left out."""
        shown = str(folder)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            why = exc.strerror or str(exc)
            where = f"{rel}/" if rel else "the folder itself"
            self.skipped.append((shown, f"folder cannot be read ({why})"))
            self.warnings.append(f"{shown} ({where}) cannot be read ({why}); its images are left out. Check its "
                                 "permissions (it must be readable and searchable: chmod u+rx).")
            if rel:
                self.dirs.add(rel)
            return
        subdirs: list[tuple[str, os.DirEntry]] = []
        for e in entries:
            name = e.name
            if name.startswith(".") or name.lower() in _IGNORED_NAMES:
                continue
            relname = name if not rel else f"{rel}/{name}"
            try:
                is_dir = e.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append((relname, e))
            else:
                self.files.append(relname)
        for relname, e in subdirs:
            key = None
            try:
                st = os.stat(e.path)
                key = (st.st_dev, st.st_ino)
            except OSError:
                pass
            try:
                real = Path(e.path).resolve()
            except (OSError, RuntimeError):
                real = None
            # a link back to a folder it lies in, or to one holding the whole set (e.g. "/"): a loop,
            # or the whole disk: not followed
            holds_root = e.is_symlink() and real is not None and real != self._root and self._root.is_relative_to(real)
            if key is not None and key in ancestors or holds_root:
                try:
                    target = os.readlink(e.path)
                except OSError:
                    target = "?"
                self.skipped.append((str(Path(e.path)), "link to a folder that contains it (a loop); not followed"))
                self.warnings.append(f"{Path(e.path)} is a link back to a folder it lies in ({target}), which would "
                                     "loop forever; it was not followed. Remove the link.")
                continue
            self.dirs.add(relname)
            self._walk(Path(e.path), relname, ancestors | ({key} if key else set()))

    def source(self, name: str) -> str:
        return str(self.path / name)

    def read(self, names, progress):
        total = len(names)
        for i, name in enumerate(names):
            try:
                got = read_image_axes(self.path / name, name=self.source(name))
            except InputError as exc:
                got = exc
            except Exception as exc:  # noqa: BLE001 - one unreadable file is skipped, never fatal
                got = _unexpected(self.source(name), exc)
            yield name, got
            if progress is not None:
                progress(i + 1, total)


class _ArchiveTree(_Tree):
    """Members are read in archive order (a compressed tar is then decompressed once, front to
    back), straight from memory: nothing is extracted to disk."""

    def _position(self, name: str) -> int:
        raise NotImplementedError

    def _member_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def read(self, names, progress):
        total = len(names)
        for i, name in enumerate(sorted(names, key=self._position)):
            src = self.source(name)
            try:
                data = self._member_bytes(name)
            except Exception as exc:  # bad CRC, truncated member, unsupported compression ...
                yield name, InputError(f"{src}: the archive member cannot be read ({exc}).")
            else:
                try:
                    got = read_image_axes(data, name=src)
                except InputError as exc:
                    got = exc
                except Exception as exc:  # noqa: BLE001 - one unreadable member is skipped, never fatal
                    got = _unexpected(src, exc)
                del data
                yield name, got
            if progress is not None:
                progress(i + 1, total)


class _ZipTree(_ArchiveTree):
    kind = "zip archive"

    def __init__(self, path: Path):
        super().__init__(str(path))
        try:
            self.zf = zipfile.ZipFile(path)
            infos = self.zf.infolist()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InputError(f"{path}: the zip archive is corrupt or truncated ({exc}).") from exc
        self.infos: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            clean = _clean_member_name(info.filename)
            if info.is_dir():
                if clean:
                    self._note_dirs(clean, is_dir=True)
                continue
            if clean is None:
                self.skipped.append((f"{path}::{info.filename}", "unsafe path in archive"))
                continue
            self._note_dirs(clean)
            if _is_ignored(clean) or clean in self.infos:
                continue
            if info.file_size > _member_limit():
                self.skipped.append((f"{path}::{info.filename}", _too_big_member(info.file_size)))
                continue
            self.infos[clean] = info
            self.files.append(clean)
        self.files.sort()

    def source(self, name: str) -> str:
        return f"{self.label}::{self.infos[name].filename}"

    def _position(self, name: str) -> int:
        return self.infos[name].header_offset

    def _member_bytes(self, name: str) -> bytes:
        return self.zf.read(self.infos[name])

    def close(self):
        self.zf.close()


class _TarTree(_ArchiveTree):
    kind = "tar archive"

    def __init__(self, path: Path):
        super().__init__(str(path))
        try:
            self.tf = tarfile.open(path, mode="r:*")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InputError(f"{path}: the tar archive is corrupt or not a tar archive ({exc}).") from exc
        self.members: dict[str, tarfile.TarInfo] = {}
        self.order: dict[str, int] = {}
        n = 0
        while True:
            try:
                m = self.tf.next()
            except Exception as exc:  # truncated gzip, bad header ...
                self.warnings.append(
                    f"{path}: the archive is truncated or corrupt after {n} members ({exc}); "
                    "the rest of it was not read."
                )
                break
            if m is None:
                break
            n += 1
            clean = _clean_member_name(m.name)
            if m.isdir():
                if clean:
                    self._note_dirs(clean, is_dir=True)
                continue
            if clean is None:
                self.skipped.append((f"{path}::{m.name}", "unsafe path in archive"))
                continue
            self._note_dirs(clean)
            if _is_ignored(clean):
                continue
            if not m.isfile():
                if is_image_name(clean):
                    self.skipped.append((f"{path}::{m.name}", "link or special file in archive (not followed)"))
                continue
            if m.size > _member_limit():
                self.skipped.append((f"{path}::{m.name}", _too_big_member(m.size)))
                continue
            if clean not in self.members:
                self.files.append(clean)
            self.members[clean] = m
            self.order[clean] = n
        self.files.sort()

    def source(self, name: str) -> str:
        return f"{self.label}::{self.members[name].name}"

    def _position(self, name: str) -> int:
        return self.order[name]

    def _member_bytes(self, name: str) -> bytes:
        fh = self.tf.extractfile(self.members[name])
        return fh.read() if fh is not None else b""

    def close(self):
        self.tf.close()


def _open_tree(path: Path) -> _Tree:
    if path.is_dir():
        return _DirTree(path)
    low = path.name.lower()
    if low.endswith(".zip"):
        return _ZipTree(path)
    if low.endswith(ARCHIVE_SUFFIXES):
        return _TarTree(path)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes); expected a folder or an archive of images.")
    if zipfile.is_zipfile(path):
        return _ZipTree(path)
    try:
        if tarfile.is_tarfile(path):
            return _TarTree(path)
    except Exception:  # pragma: no cover - is_tarfile on odd files
        pass
    if is_image_name(low):
        raise InputError(
            f"{path} is a single image. A labelled set is a folder (or archive) with one sub-folder "
            f"per class. {_EXPECTED}"
        )
    raise InputError(f"{path} is neither a folder nor a .zip/.tar/.tar.gz/.tgz archive. {_EXPECTED}")


# --------------------------------------------------------------------------------------------------
# Layout discovery (works on names only; nothing is read until the plan is made)


class _Node:
    __slots__ = ("files", "dirs")

    def __init__(self):
        self.files: list[str] = []          # full relative names of files directly here
        self.dirs: dict[str, _Node] = {}

    def all_files(self) -> list[str]:
        out = list(self.files)
        for d in sorted(self.dirs):
            out.extend(self.dirs[d].all_files())
        return out

    def has_images_here(self) -> bool:
        return any(is_image_name(f) for f in self.files)

    def image_count(self) -> int:
        return sum(1 for f in self.all_files() if is_image_name(f))

    def child(self, names: Sequence[str]) -> tuple[str, "_Node"] | None:
        """The first sub-folder (with images) whose name, lower case, is in ``names``."""
        for d in sorted(self.dirs):
            if d.lower() in names and self.dirs[d].image_count():
                return d, self.dirs[d]
        return None


def _build(names: Sequence[str], dirs: Sequence[str] = ()) -> _Node:
    root = _Node()
    for d in sorted(dirs):
        node = root
        for p in d.split("/"):
            node = node.dirs.setdefault(p, _Node())
    for name in names:
        node = root
        parts = name.split("/")
        for p in parts[:-1]:
            node = node.dirs.setdefault(p, _Node())
        node.files.append(name)
    return root


@dataclass
class _Plan:
    label: str
    protein: str
    dna: str | None


def _tokens(name: str, drop: frozenset[str] = frozenset()) -> tuple[str, ...]:
    stem = PurePosixPath(name).name
    low = stem.lower()
    for suf in IMAGE_SUFFIXES:
        if low.endswith(suf):
            low = low[: -len(suf)]
            break
    out = []
    for t in re.split(r"[^a-z0-9]+", low):
        if not t or t in drop:
            continue
        out.append(str(int(t)) if t.isdigit() else t)
    return tuple(out)


def _pair_subfolders(label: str, folder: str, class_dir: str, prot: list[str], dna: list[str],
                     warnings: list[str]) -> list[_Plan]:
    """Pair protein and DNA files of one class folder (prot/ + dna/ layout)."""
    if not dna:
        return [_Plan(label, p, None) for p in prot]
    drop = frozenset(PROTEIN_TOKENS | DNA_TOKENS | set(re.split(r"[^a-z0-9]+", class_dir.lower())) - {""})

    def match(drop_p, drop_d):
        pkeys = {p: _tokens(p, drop_p) for p in prot}
        dkeys: dict[tuple, list[str]] = {}
        for d in dna:
            dkeys.setdefault(_tokens(d, drop_d), []).append(d)
        unique = len(set(pkeys.values())) == len(prot)
        return unique, {p: dkeys[k][0] for p, k in pkeys.items() if k in dkeys and len(dkeys[k]) == 1}

    unique_p, matched = match(drop, drop)
    if not (unique_p and len(matched) == len(prot)):
        # A token in every protein name and in no DNA name (or the other way round) marks the
        # channel (e.g. "gfp" / "hoechst"); it cannot tell cells apart, so try without it.
        common_p = set.intersection(*(set(_tokens(p, drop)) for p in prot))
        common_d = set.intersection(*(set(_tokens(d, drop)) for d in dna))
        u2, m2 = match(drop | (common_p - common_d), drop | (common_d - common_p))
        if u2 and len(m2) == len(prot):
            unique_p, matched = u2, m2
    if unique_p and len(matched) == len(prot):
        left = len(dna) - len(matched)
        if left:
            warnings.append(f"{folder}: {left} DNA image(s) have no protein image of the same name; not used.")
        return [_Plan(label, p, matched[p]) for p in prot]
    if len(prot) == len(dna):
        warnings.append(
            f"{folder}: protein and DNA file names could not be matched ({len(prot) - len(matched)} of "
            f"{len(prot)} unmatched); paired them in sorted name order instead. Check that the n-th "
            "protein file and the n-th DNA file show the same cell."
        )
        return [_Plan(label, p, d) for p, d in zip(sorted(prot), sorted(dna))]
    if not unique_p:
        matched = {}
    warnings.append(
        f"{folder}: {len(prot)} protein and {len(dna)} DNA images, and only {len(matched)} pair(s) "
        f"match by name; the other {len(prot) - len(matched)} protein image(s) are used without DNA."
    )
    return [_Plan(label, p, matched.get(p)) for p in prot]


def _dna_marks(toks: Sequence[str]) -> list[str]:
    return [t for t in toks if t in DNA_TOKENS]


def _pair_flat(label: str, files: list[str], dna_is_class_image: bool = True
               ) -> tuple[list[_Plan], list[tuple[str, str]]]:
    """Files of one class folder: pair each DNA image (a DNA token in its name: ``x_dna.tif``,
    ``cell0_DAPI.tif``, ``Cell 9 Hoechst.tif``) with the protein image of the same folder whose name
    is the same without that token and without a protein-marker token (``x.tif``, ``x_protein.tif``,
    ``cell0_GFP.tif``, ``Cell 9 GFP.tif``).

    Returns (plans, unused): a DNA-named file without a partner is an image of the class in its own
    right when ``dna_is_class_image`` (a nuclear class, or unlabelled autoencoder data); otherwise
    a file whose name says it is a DNA stain (dna, DAPI, Hoechst, ...) is not used and comes back in
    ``unused`` as (file, reason)."""
    by_dir: dict[str, list[str]] = {}
    for f in files:
        by_dir.setdefault(f.rsplit("/", 1)[0] if "/" in f else "", []).append(f)
    plans: list[_Plan] = []
    unused: list[tuple[str, str]] = []
    for folder, group in sorted(by_dir.items()):
        prot: dict[tuple, list[str]] = {}
        dna: list[tuple[str, tuple, list[str]]] = []
        for f in group:
            toks = _tokens(f)
            key = tuple(t for t in toks if t not in DNA_TOKENS and t not in PROTEIN_TOKENS)
            marks = _dna_marks(toks)
            if marks:
                dna.append((f, key, marks))
            else:
                prot.setdefault(key, []).append(f)
        dkeys: dict[tuple, list[str]] = {}
        for f, k, _ in dna:
            dkeys.setdefault(k, []).append(f)
        used: set[str] = set()
        for k, fs in sorted(prot.items()):
            for f in fs:
                partner = None
                if len(fs) == 1 and len(dkeys.get(k, [])) == 1:
                    partner = dkeys[k][0]
                    used.add(partner)
                plans.append(_Plan(label, f, partner))
        # A DNA-named file without a protein partner is an image of its class in its own right in
        # a nuclear class (e.g. the IICBU "dna" folder is the Nucleus class); elsewhere it is a DNA
        # image that would be taken for a protein image.
        where = f"{folder}/" if folder else "this folder"
        for f, k, marks in dna:
            if f in used:
                continue
            stain = [t for t in marks if t in DNA_STAIN_TOKENS]
            if dna_is_class_image or not stain:
                plans.append(_Plan(label, f, None))
                continue
            stem = PurePosixPath(f).name
            if len(prot.get(k, [])) > 1:
                why = (f"its name says it is a DNA image ({stain[0]}) and it matches {len(prot[k])} protein "
                       f"images in {where} ({', '.join(PurePosixPath(x).name for x in prot[k][:3])}), so it "
                       f"cannot be paired; it is not used as a {label!r} image. Rename the files so that "
                       "one protein image matches it.")
            elif len(dkeys.get(k, [])) > 1:
                why = (f"its name says it is a DNA image ({stain[0]}), and {len(dkeys[k])} DNA images "
                       f"in {where} have the same name apart from the marker, so it cannot be paired; "
                       f"it is not used as a {label!r} image.")
            else:
                why = (f"its name says it is a DNA image ({stain[0]}) but no protein image in {where} has "
                       f"the same name without the marker (e.g. {_partner_example(stem)}); it is not used "
                       f"as a {label!r} image. Add or rename its protein image, or move it out of the "
                       "class folder.")
            unused.append((f, why))
    plans.sort(key=lambda p: p.protein)
    return plans, unused


def dna_partner(path) -> Path | None:
    """The DNA image that goes with the protein image ``path``, paired as :func:`load_labelled` pairs
    them: its partner in the ``dna/`` folder beside a ``prot/`` folder (the Murphy 2D HeLa release:
    ``tubul/prot/x.tubul.03.tif`` with ``tubul/dna/x.dap.03.tif``), or ``<name>_dna`` (DAPI, Hoechst)
    beside it. None when there is none, when names do not match one to one, or when ``path`` is
    itself a DNA image."""
    p = Path(path)
    if not p.is_file() or _dna_marks(_tokens(p.name)) or p.parent.name.lower() in DNA_DIRS:
        return None

    def images(folder: Path) -> list[str]:
        return sorted(f.name for f in folder.iterdir() if f.is_file() and is_image_name(f.name)
                      and not _is_ignored(f.name))

    if p.parent.name.lower() in PROTEIN_DIRS:
        dna_dir = next((d for d in p.parent.parent.iterdir() if d.is_dir() and d.name.lower() in DNA_DIRS), None)
        if dna_dir is None:
            return None
        notes: list[str] = []
        plans = _pair_subfolders("", str(p.parent), p.parent.parent.name, images(p.parent), images(dna_dir), notes)
        partner = next((pl.dna for pl in plans if pl.protein == p.name), None)
        # pairs in sorted order (names that do not match) are not trusted for one file opened on its own
        return dna_dir / partner if partner and not any("sorted name order" in n for n in notes) else None
    plans, _ = _pair_flat("", images(p.parent), dna_is_class_image=False)
    partner = next((pl.dna for pl in plans if pl.protein == p.name), None)
    return p.parent / partner if partner else None


def _partner_example(stem: str) -> str:
    """'cell0_DAPI.tif' -> 'cell0.tif or cell0_GFP.tif': names its protein image may have."""
    for t in sorted(DNA_TOKENS, key=len, reverse=True):
        m = re.search(rf"(?i)(^|[ _.\-]){t}(?=$|[^a-z0-9])", stem)
        if m:
            head, sep, tail = stem[:m.start()], m.group(1), stem[m.end():]
            if not head:
                return f"{tail.lstrip(' _.-')} or GFP{tail}"
            return f"{head}{tail} or {head}{sep}GFP{tail}"
    return stem


#: Name tokens of a user's class folder whose images are a DNA stain.
_NUCLEAR_TOKENS = frozenset({"nucleus", "nuclei", "chromatin", "chromosome", "chromosomes", "histone",
                             "histones", "h2b"}) | DNA_STAIN_TOKENS


def _is_nuclear(label: str, folder: str) -> bool:
    """Is this a class whose images are a DNA stain (so a DNA-named file is one of its images)?"""
    if label == "Nucleus" or label == UNLABELLED:
        return True
    if _classes.canonical_class(label) is not None:
        return False
    return bool(_NUCLEAR_TOKENS & set(re.split(r"[^a-z0-9]+", PurePosixPath(folder).name.lower())))


def _discover(tree: _Tree, skipped: list, warnings: list, notes: list,
              single: bool = False) -> tuple[str, list[_Plan]]:
    """Plan what to read. ``single``: one class is enough (autoencoder data), so a lone class folder
    and a plain folder of images (no class sub-folders) are accepted as one class."""
    root = _build(tree.files, sorted(tree.dirs))
    prefix: list[str] = []

    def looks_like_class(node: _Node) -> bool:
        # A folder with images directly in it is a class folder, unless its sub-folders look like
        # class folders holding most of its images (then it is a set with a few stray images).
        if node.child(PROTEIN_DIRS) is not None:
            return True
        if not node.has_images_here():
            return False
        if node.child(DNA_DIRS) is not None:
            return True
        subs = [n.image_count() for n in node.dirs.values() if n.image_count()]
        return len(subs) < 2 or sum(1 for f in node.files if is_image_name(f)) >= sum(subs)

    # Step down through single wrapping folders (e.g. HeLa10Class2DImages_16bit_tiff/).
    while not root.has_images_here():
        with_images = [(n, c) for n, c in root.dirs.items() if c.image_count()]
        if len(with_images) != 1:
            break
        (name, child), = with_images
        if looks_like_class(child):
            break
        prefix.append(name)
        root = child
    where = "/".join(prefix)
    shown = f"{tree.label}::{where}" if where and tree.kind != "folder" else (
        str(Path(tree.label) / where) if where else tree.label)
    single_layout = None
    synthetic: str | None = None  # what to call the set made of a folder's own images (single)

    def own_name() -> str:
        if prefix:
            return prefix.pop()
        name = PurePosixPath(tree.label.replace("\\", "/")).name
        return next((name[:-len(x)] for x in ARCHIVE_SUFFIXES if name.lower().endswith(x)), name) or "images"

    if single and root.child(PROTEIN_DIRS) is not None:
        # one class folder with prot/ and dna/: it is the one class (named after the folder)
        name = own_name()
        where = "/".join(prefix)
        wrapper = _Node()
        wrapper.dirs[name] = root
        root = wrapper
        single_layout = "one class folder with prot/ and dna/ sub-folders"
    elif single and root.has_images_here() and not looks_like_class(root):
        # class folders with a few images beside them: those are one more set (no labels needed)
        loose_node = _Node()
        loose_node.files = [f for f in root.files if is_image_name(f)]
        new_root = _Node()
        new_root.dirs = dict(root.dirs)
        new_root.dirs[UNLABELLED] = loose_node
        synthetic = f"{shown} (images beside the class folders)"
        warnings.append(
            f"{shown}: {len(loose_node.files)} image(s) lie directly in this folder, beside the class "
            f"folders; they were used as one more set, {UNLABELLED!r} (the autoencoder needs no labels). "
            "To train a classifier, each class must be a folder of its own."
        )
        root = new_root
    elif single and root.has_images_here():
        # a folder of images (autoencoder data needs no labels): all its images are one set, also
        # those in sub-folders; x.tif + x_dna.tif pairs and a dna/ sub-folder are still paired
        n_here = sum(1 for f in root.files if is_image_name(f))
        in_subs = {d: n.image_count() for d, n in sorted(root.dirs.items()) if n.image_count()}
        wrapper = _Node()
        wrapper.dirs[UNLABELLED] = root
        root = wrapper
        synthetic = shown
        if not in_subs:
            single_layout = "plain folder of images, no class folders"
        elif root.dirs[UNLABELLED].child(DNA_DIRS) is not None:
            single_layout = "folder of images with their DNA images in a sub-folder"
        else:
            single_layout = "folder of images, sub-folders included, used as one set (no labels needed)"
            notes.append(f"{n_here} image(s) directly in the folder and "
                         + ", ".join(f"{v} in {k}/" for k, v in in_subs.items()))
    if root.child(PROTEIN_DIRS) is not None:
        raise InputError(
            f"{shown} looks like ONE class folder (it holds prot/ and dna/ sub-folders). Choose the "
            "folder above it, which holds one folder per class. " + _EXPECTED
        )
    if where:
        notes.append(f"inside top folder '{where}'")

    # Folders without any image file (docs/, licence/ ...) are not classes.
    class_dirs = {d: n for d, n in sorted(root.dirs.items()) if n.image_count()}
    loose = [f for f in root.files if is_image_name(f)]
    for f in loose:
        skipped.append((tree.source(f), "not inside a class folder (images must be in one sub-folder per class)"))
    if loose:
        if class_dirs:
            warnings.append(
                f"{shown}: {len(loose)} image(s) lie directly in this folder, beside the class folder(s) "
                f"{', '.join(list(class_dirs)[:6])}{' ...' if len(class_dirs) > 6 else ''}, and were not used "
                f"(e.g. {PurePosixPath(loose[0]).name}). Each class must be a folder of its own: move "
                "these images into the folder of their class, or remove them."
            )
        else:
            warnings.append(
                f"{shown}: {len(loose)} image(s) lie directly in this folder, which has no class "
                "sub-folders; they were not used. Put each class's images in a folder of its own "
                "(e.g. Mito/, ER/) inside this folder."
            )
    # ... but one named like a class is most likely a class whose images are missing: say so.
    for d in sorted(d for d, n in root.dirs.items() if not n.image_count()):
        if class_dirs and _classes.canonical_class(d) is not None:
            n_files = len(root.dirs[d].all_files())
            warnings.append(f"Class folder {d!r} holds no images ({n_files} other file(s)); class "
                            f"{_classes.canonical_class(d)!r} is left out. Put its .tif/.png/.jpg images "
                            "in it, or remove the folder.")
    # Layout detection: per class folder, "prot" (prot/ + dna/ sub-folders), "dna" (images with
    # their DNA images in a dna/ sub-folder) or "flat".
    mode = {d: "prot" if n.child(PROTEIN_DIRS) is not None else ("dna" if n.child(DNA_DIRS) is not None else "flat")
            for d, n in class_dirs.items()}
    is_murphy = "prot" in mode.values() and all(d.lower() in _classes.MURPHY_ANTIBODIES for d in class_dirs)
    is_iicbu = bool(class_dirs) and set(mode.values()) == {"flat"} and all(
        d.lower() in _classes.IICBU_FOLDERS
        and not any(c.image_count() for c in n.dirs.values())
        and all(re.fullmatch(rf"{re.escape(d.lower())}_\d+\.tiff?", PurePosixPath(f).name.lower())
                for f in n.files if is_image_name(f))
        for d, n in class_dirs.items()
    )
    if single_layout:
        layout = single_layout
    elif is_murphy:
        layout = "Murphy 2D HeLa release (<antibody>/prot + <antibody>/dna)"
    elif is_iicbu:
        layout = "IICBU-2008 HeLa (<folder>/<folder>_NNN.tif, protein only)"
    else:
        kinds = set(mode.values())
        layout = "generic, one folder per class"
        if "prot" in kinds:
            layout += " with prot/ and dna/ sub-folders"
            if "dna" in kinds:
                layout += " (or images and a dna/ sub-folder)"
        elif "dna" in kinds:
            layout += ", DNA images in a dna/ (or dapi/, hoechst/) sub-folder"

    plans: list[_Plan] = []
    ignored: dict[str, int] = {}
    label_of: dict[str, str] = {}
    for d, node in class_dirs.items():
        label = UNLABELLED if d == UNLABELLED and single else (_classes.canonical_class(d) or d)
        if label in label_of.values():
            other = [k for k, v in label_of.items() if v == label]
            warnings.append(f"Folders {other + [d]} both mean class {label!r}; their images were merged.")
        label_of[d] = label
        folder = f"{where}/{d}" if where else d
        if d == UNLABELLED and synthetic is not None:
            folder = synthetic
        nuclear = single or _is_nuclear(label, d)
        if mode[d] == "prot":
            dpair = node.child(DNA_DIRS)
            pname, pnode = node.child(PROTEIN_DIRS)
            used = [pname] + ([dpair[0]] if dpair else [])
            for sub, snode in node.dirs.items():
                if sub not in used:
                    n_img = snode.image_count()
                    if n_img:
                        ignored[sub] = ignored.get(sub, 0) + n_img
            for f in node.files:
                if is_image_name(f):
                    ignored["(files beside prot/)"] = ignored.get("(files beside prot/)", 0) + 1
            files = pnode.all_files() + (dpair[1].all_files() if dpair else [])
            for f in files:
                if not is_image_name(f):
                    skipped.append((tree.source(f), _not_image_reason(f)))
            prot = [f for f in pnode.all_files() if is_image_name(f)]
            dna = [f for f in dpair[1].all_files() if is_image_name(f)] if dpair else []
            plans.extend(_pair_subfolders(label, folder, d, prot, dna, warnings))
        elif mode[d] == "dna":
            # images directly in the class folder, with their DNA images in dna/ (dapi/, hoechst/)
            dname, dnode = node.child(DNA_DIRS)
            files = list(node.files)
            others = {sub: snode.image_count() for sub, snode in sorted(node.dirs.items())
                      if sub != dname and snode.image_count()}
            for sub, n_img in others.items():
                ignored[sub] = ignored.get(sub, 0) + n_img
            others_text = ", ".join(f"{sub}/ ({n_img})" for sub, n_img in others.items())
            if others and any(is_image_name(f) for f in files):
                warnings.append(
                    f"{folder}: the images in its sub-folder(s) {others_text} are not used: beside a "
                    f"{dname}/ folder of DNA images, the protein images are those directly in {folder}/. Move them there (with their DNA images in {dname}/), "
                    "or into a class folder of their own."
                )
            for f in files + dnode.all_files():
                if not is_image_name(f):
                    skipped.append((tree.source(f), _not_image_reason(f)))
            prot = [f for f in files if is_image_name(f)]
            dna = [f for f in dnode.all_files() if is_image_name(f)]
            if prot:
                plans.extend(_pair_subfolders(label, folder, d, prot, dna, warnings))
            elif nuclear:
                warnings.append(f"{folder}: the only images are in its {dname}/ folder; they are used as "
                                f"{label!r} images (a DNA stain is what this class shows), without a DNA channel.")
                plans.extend(_Plan(label, f, None) for f in dna)
            else:
                warnings.append(
                    f"{folder}: holds a {dname}/ folder of DNA images ({len(dna)}) but no protein images "
                    f"(no prot/ folder and no images beside {dname}/"
                    + (f"; the images in {others_text} are not used" if others else "")
                    + f"), so class {label!r} has no images; its DNA images are not used (see skipped). "
                    f"Put the protein images in {folder}/prot/ or directly in {folder}/."
                )
                for f in dna:
                    skipped.append((tree.source(f), f"DNA image in {dname}/ of {folder}/, which has no protein "
                                                    "images to pair it with; not used"))
        else:
            files = node.all_files()
            for f in files:
                if not is_image_name(f):
                    skipped.append((tree.source(f), _not_image_reason(f)))
            imgs = [f for f in files if is_image_name(f)]
            if is_iicbu:
                plans.extend(_Plan(label, f, None) for f in imgs)
            else:
                got, unused = _pair_flat(label, imgs, dna_is_class_image=nuclear)
                plans.extend(got)
                for f, why in unused:
                    skipped.append((tree.source(f), why))
                if unused:
                    warnings.append(
                        f"{folder}: {len(unused)} image(s) are named as DNA images (DNA, DAPI or Hoechst in "
                        f"the name, e.g. {PurePosixPath(unused[0][0]).name}) but have no protein image to "
                        f"pair with; they were skipped, not used as {label!r} images. Name each DNA image "
                        "like its protein image plus the marker (cell1_GFP.tif + cell1_DAPI.tif), or move "
                        "it out of the class folder."
                    )
    if ignored:
        notes.append("ignored sub-folders: " + ", ".join(f"{k} ({v} images)" for k, v in sorted(ignored.items())))
    return layout, plans


def _not_image_reason(name: str) -> str:
    suffix = PurePosixPath(name).suffix or "(no suffix)"
    return f"not an image file ({suffix}); images must be {', '.join(IMAGE_SUFFIXES)}"


def _reason(exc: Exception, source: str) -> str:
    msg = str(exc)
    for pre in (f"{source}: ", f"{source} "):
        if msg.startswith(pre):
            return msg[len(pre):]
    return msg


def _no_signal(plane: np.ndarray) -> str | None:
    try:
        preprocess.check_not_constant(plane, "protein")
    except InputError:
        finite = plane[np.isfinite(plane)] if plane.dtype.kind == "f" else plane
        if finite.size == 0:
            return "the image has no finite pixel (all NaN or Inf)"
        return f"the image is constant (every pixel is {finite.flat[0].item()!r}); it holds no signal"
    return None


def _spatial(a: np.ndarray) -> tuple[int, int]:
    return tuple(a.shape[:2])  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# Public API


def load_labelled(path, *, min_per_class: int = 2, min_classes: int = 2,
                  progress: Progress | None = None) -> LabelledImages:
    """Read a labelled image set from a folder, an archive or ``"simulated[:N]"``.

    ``progress(done, total)`` is called after each file is read. Unreadable files go to
    ``skipped``; a class with fewer than ``min_per_class`` images gives a warning. Raises
    InputError when the path does not exist, holds no images, or holds fewer than ``min_classes``
    classes. ``min_classes=1`` is for the autoencoder, which needs no labels: a single class folder
    or a plain folder of images (class ``"unlabelled"``) is then accepted, and there is no
    per-class warning (the autoencoder does not learn classes).
    """
    if isinstance(min_classes, bool) or not isinstance(min_classes, int) or min_classes < 1:
        raise InputError(f"min_classes must be a whole number >= 1 (got {min_classes!r}).")
    text = os.fspath(path) if not isinstance(path, str) else path
    sim = re.fullmatch(r"simulated(?::(\d+))?", str(text).strip())
    if sim and not os.path.exists(text):
        return _load_simulated(int(sim.group(1)) if sim.group(1) else 40, progress)
    if "\0" in str(text):
        raise InputError(f"{text!r} is not a usable path (it holds a NUL character).")
    p = Path(text).expanduser()
    from ._files import link_problem

    why = link_problem(p)
    if why:
        raise InputError(f"{p}: {why}. Give a folder or archive of labelled images.")
    if not p.exists():
        raise InputError(f"{p}: no such file or folder. Give a folder or archive of labelled images. {_EXPECTED}")

    tree = _open_tree(p)
    try:
        skipped: list[tuple[str, str]] = list(tree.skipped)
        warnings: list[str] = list(tree.warnings)
        notes: list[str] = []
        layout, plans = _discover(tree, skipped, warnings, notes, single=min_classes <= 1)

        needed: list[str] = []
        seen: set[str] = set()
        for pl in plans:
            for n in (pl.protein, pl.dna):
                if n is not None and n not in seen:
                    seen.add(n)
                    needed.append(n)
        dna_names = {pl.dna for pl in plans if pl.dna is not None}

        # Decode every needed file once; keep 2D planes only.
        planes: dict[str, tuple[np.ndarray, np.ndarray | None] | str] = {}
        for name, result in tree.read(needed, progress):
            src = tree.source(name)
            if isinstance(result, Exception):
                planes[name] = _reason(result, src)
                continue
            arr, axes = result
            try:
                prot, dna = preprocess.split_channels(arr, name=src, axes=axes)
                prot = preprocess.as_plane(prot, name="protein" if name not in dna_names else "DNA")
                if dna is not None:
                    dna = preprocess.as_plane(dna, name="DNA")
                planes[name] = (prot, dna)
            except InputError as exc:
                planes[name] = _reason(exc, src)
            except Exception as exc:  # noqa: BLE001 - one odd image is skipped, never fatal
                planes[name] = _reason(_unexpected(src, exc), src)
            del result, arr

        samples: list[Sample] = []
        for pl in plans:
            src = tree.source(pl.protein)
            got = planes.get(pl.protein, "not read")
            if isinstance(got, str):
                skipped.append((src, got))
                continue
            prot, dna = got
            why = _no_signal(prot)
            if why:
                skipped.append((src, why))
                continue
            if pl.dna is not None:
                dsrc = tree.source(pl.dna)
                dgot = planes.get(pl.dna, "not read")
                if isinstance(dgot, str):
                    skipped.append((dsrc, f"{dgot} (its protein image {Path(pl.protein).name} is used without DNA)"))
                    dna = None
                elif _spatial(dgot[0]) != _spatial(prot):
                    skipped.append((dsrc, f"DNA image is {dgot[0].shape[0]}x{dgot[0].shape[1]} but its protein "
                                          f"image {Path(pl.protein).name} is {prot.shape[0]}x{prot.shape[1]}; "
                                          "protein used without DNA"))
                    dna = None
                else:
                    dna = dgot[0]
            samples.append(Sample(protein=prot, dna=dna, label=pl.label, source=src))
        planes.clear()
    finally:
        tree.close()

    found_labels = sorted({pl.label for pl in plans})
    have = {s.label for s in samples}
    for lab in found_labels:
        if lab not in have:
            warnings.append(f"Class {lab!r}: none of its images could be read; the class is left out.")
    present = [lab for lab in found_labels if lab in have]

    also = ""
    if warnings:
        also = " Also: " + " ".join(warnings[:3]) + (f" (and {len(warnings) - 3} more)" if len(warnings) > 3 else "")
    if not samples:
        n_files = len(tree.files)
        n_img = sum(1 for f in tree.files if is_image_name(f))
        folders = sorted({f.split("/")[0] for f in tree.files if "/" in f})
        raise InputError(
            f"No readable labelled images in {p} ({tree.kind}): found {n_files} file(s), {n_img} with an "
            f"image suffix, {len(skipped)} skipped"
            + (f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else "")
            + (f"; top-level folders: {', '.join(folders[:12])}" if folders else "; no sub-folders")
            + f". {_EXPECTED}{also}"
        )
    if len(present) < min_classes:
        if len(present) == 1:
            raise InputError(
                f"Only one class ({present[0]!r}, {len(samples)} images) was found in {p}; a classifier "
                f"needs at least two classes, each in its own sub-folder. {_EXPECTED}{also}"
            )
        raise InputError(f"Only {len(present)} classes were found in {p}; at least {min_classes} are "
                         f"needed, each in its own sub-folder. {_EXPECTED}{also}")

    if all(lab in _classes.CLASSES for lab in present):
        class_list = [c for c in _classes.CLASSES if c in present]
    else:
        class_list = sorted(present)
    data = LabelledImages(samples=samples, classes=class_list, skipped=skipped, warnings=warnings)
    for c, n in data.counts().items():
        if n < min_per_class and min_classes > 1:
            warnings.append(
                f"Class {c!r} has only {n} image(s); at least {min_per_class} are needed to train and "
                "validate on it. Add images or remove the class."
            )
    n_dna = sum(1 for s in samples if s.dna is not None)
    counts = ", ".join(f"{c} {n}" for c, n in data.counts().items())
    desc = (f"{p} ({tree.kind}; {layout}"
            + (f"; {'; '.join(notes)}" if notes else "")
            + f"): {len(samples)} images in {len(class_list)} class{'' if len(class_list) == 1 else 'es'} "
            f"({counts}); "
            f"DNA channel for {n_dna} of {len(samples)}")
    if skipped:
        desc += f"; {len(skipped)} file(s) skipped"
    data.description = desc
    return data


#: Most cells per class "simulated:N" makes (each class's cells are held in memory: about 0.6 MB a cell).
MAX_SIMULATED_PER_CLASS = 1000


def _load_simulated(per_class: int, progress: Progress | None) -> LabelledImages:
    if per_class < 1:
        raise InputError("simulated:N needs N >= 1 (cells per class).")
    if per_class > MAX_SIMULATED_PER_CLASS:
        raise InputError(f"simulated:{per_class} would hold {per_class * 10 * 0.58 / 1024:.0f} GB of simulated cells "
                         f"in memory; use at most simulated:{MAX_SIMULATED_PER_CLASS} (or write a larger set to disk "
                         "with 'napari-organelle phantoms' and train on the folder).")
    from . import phantoms  # lazy: phantoms imports this module

    data = phantoms.simulate_dataset(per_class, seed=0, progress=progress)
    if not getattr(data, "description", ""):
        data.description = f"simulated: {per_class} phantom cells per class, seed 0"
    return data


def stratified_split(labels: Sequence, fractions: Sequence[float] = (0.7, 0.15, 0.15),
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split indices into (train, val, test), class by class, deterministically for a ``seed``.

    Each class with at least 3 images has at least one image in every part whose fraction is > 0;
    a class with 2 images goes to train and val (or test if there is no val part); 1 image: train.
    Returns sorted int64 index arrays.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2 ** 32:
        raise InputError(f"The split seed must be a whole number from 0 to {2 ** 32 - 1} (got {seed!r}).")
    fr = np.asarray(list(fractions), dtype=np.float64)
    if fr.shape != (3,) or np.any(fr < 0) or not np.isfinite(fr).all() or fr.sum() <= 0 or fr[0] <= 0:
        raise InputError(f"fractions must be three non-negative numbers (train > 0), got {tuple(fractions)}.")
    fr = fr / fr.sum()
    labs = list(labels)
    groups: dict[object, list[int]] = {}
    for i, lab in enumerate(labs):
        key = lab.item() if isinstance(lab, np.generic) else lab
        groups.setdefault(key, []).append(i)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for key in sorted(groups, key=lambda k: (str(type(k)), str(k))):
        idx = np.asarray(groups[key], dtype=np.int64)
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        counts = [0, 0, 0]
        if n >= 3:
            for j in (1, 2):
                if fr[j] > 0:
                    counts[j] = max(1, int(round(n * fr[j])))
            while n - counts[1] - counts[2] < 1:
                j = 1 if counts[1] >= counts[2] else 2
                counts[j] -= 1
            counts[0] = n - counts[1] - counts[2]
        elif n == 2:
            j = 1 if fr[1] > 0 else (2 if fr[2] > 0 else 0)
            counts = [1, 0, 0]
            counts[j] += 1
        else:
            counts = [n, 0, 0]
        a, b = counts[0], counts[0] + counts[1]
        parts[0].extend(idx[:a].tolist())
        parts[1].extend(idx[a:b].tolist())
        parts[2].extend(idx[b:].tolist())
    return tuple(np.asarray(sorted(p), dtype=np.int64) for p in parts)  # type: ignore[return-value]


def to_classifier_tensors(data: LabelledImages, size: int, classes: list[str] | None = None,
                          progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 (N, 2, size, size) in [0, 1], y int64 (N,)) via preprocess.prepare_pair.

    Channel 1 is all zeros for samples without DNA. Labels index ``classes`` (default
    ``data.classes``); a label not in it raises InputError.
    """
    class_list = list(classes) if classes is not None else list(data.classes)
    index = {c: i for i, c in enumerate(class_list)}
    unknown = sorted({s.label for s in data.samples if s.label not in index})
    if unknown:
        raise InputError(
            f"The images have class(es) {unknown} that are not among the model's classes {class_list}. "
            "Rename or remove those folders, or train a new model on these classes."
        )
    n = len(data.samples)
    X = np.zeros((n, 2, size, size), np.float32)
    y = np.zeros((n,), np.int64)
    for i, s in enumerate(data.samples):
        try:
            X[i] = preprocess.prepare_pair(s.protein, s.dna, size=size, check_signal=False)
        except InputError as exc:
            raise InputError(f"{s.source}: {exc}") from exc
        y[i] = index[s.label]
        if progress is not None:
            progress(i + 1, n)
    return X, y


def to_native_planes(data: LabelledImages, max_side: int = 512,
                     progress: Progress | None = None) -> list[np.ndarray]:
    """Every protein and DNA image as a float32 2D plane in [0, 1], reduced to at most ``max_side``.

    Planes are block-mean reduced (preprocess.block_reduce_to) and then percentile-normalised
    (preprocess.normalize). Used to train the autoencoder, which works on one plane at a time.
    """
    out: list[np.ndarray] = []
    n = len(data.samples)
    for i, s in enumerate(data.samples):
        for a, what in ((s.protein, "protein"), (s.dna, "DNA")):
            if a is None:
                continue
            plane = preprocess.as_plane(a, name=what)
            out.append(preprocess.normalize(preprocess.block_reduce_to(plane, max_side)))
        if progress is not None:
            progress(i + 1, n)
    return out


def to_native_list(data: LabelledImages, max_side: int = preprocess.MAX_NATIVE_SIDE,
                   progress: Progress | None = None) -> list[np.ndarray]:
    """Every sample as float32 (2, H, W) in [0, 1] via preprocess.prepare_native (DNA zero if absent)."""
    out: list[np.ndarray] = []
    n = len(data.samples)
    for i, s in enumerate(data.samples):
        arr, _ = preprocess.prepare_native(s.protein, s.dna, max_side=max_side)
        out.append(arr)
        if progress is not None:
            progress(i + 1, n)
    return out
