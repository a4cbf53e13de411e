"""Reading image files: TIFF (tifffile), PNG and JPEG (Pillow), from a path or from bytes.

Every problem with a file (empty, not an image, corrupt or truncated, too large) raises
:class:`~napari_organelle.preprocess.InputError` with a message that names the file and says what is
wrong. The file's format is taken from its first bytes, not its suffix, so a PNG saved as ``.tif``
still reads.

An image is decoded once: Pillow's buffer is handed to numpy and the Pillow image is closed at once.
"""

from __future__ import annotations

import io as _io
import os
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np

from .preprocess import InputError, split_channels

#: File suffixes (lower case) that are read as images.
IMAGE_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

#: Images with more pixels than this (per plane) are refused instead of exhausting memory.
MAX_PIXELS = 1_000_000_000

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"

# Pillow's decompression-bomb limit (~180 Mpx) is lower than a large microscopy image; it is
# lifted for our own reads only (under a lock, because it is a module-level setting of Pillow).
_PIL_LOCK = threading.Lock()
# PNG/JPEG arrays up to this size are returned writeable (one extra copy); larger stay read-only.
_WRITEABLE_COPY_LIMIT = 64 * 1024 * 1024


def is_image_name(name: str) -> bool:
    """True if ``name`` ends with one of :data:`IMAGE_SUFFIXES` (any case)."""
    return str(name).lower().endswith(IMAGE_SUFFIXES)


def _sniff(head: bytes) -> str | None:
    if head.startswith(_TIFF_MAGIC):
        return "tiff"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    return None


def _describe_bytes(head: bytes) -> str:
    if not head.strip(b"\x00"):
        return "it contains only zero bytes"
    text = head[:64]
    try:
        s = text.decode("utf-8")
        if s.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in s):
            return f"it starts with text ({s[:40].strip()!r})"
    except UnicodeDecodeError:
        pass
    return "its first bytes are not those of a TIFF, PNG or JPEG file"


def read_image(path_or_bytes, name: str | None = None) -> np.ndarray:
    """Read one image file into a numpy array (as stored: 2D, (C, Y, X), (Y, X, 3|4), ...).

    ``path_or_bytes`` is a path (str / Path) or the file's bytes (e.g. an archive member); ``name``
    is what error messages call the file (defaults to the path, or "image bytes").

    TIFF is read with tifffile (first series), PNG and JPEG with Pillow (8- and 16-bit grey, RGB and
    RGBA; palette images become RGB, grey+alpha drops the alpha). Raises InputError for empty,
    non-image, corrupt or truncated files. :func:`read_image_axes` also says what the axes are.
    """
    return read_image_axes(path_or_bytes, name=name)[0]


def read_image_axes(path_or_bytes, name: str | None = None) -> tuple[np.ndarray, str | None]:
    """Like :func:`read_image`, and also return what the file says its axes are.

    The axes are tifffile's codes for the first series, one letter per array dimension (size-1
    axes dropped): ``"YX"``, ``"CYX"`` (channels), ``"ZYX"`` (z-stack), ``"TYX"`` (time series),
    ``"SYX"`` / ``"YXS"`` (samples, e.g. RGB stored planar / interleaved), or ``"QYX"`` / ``"IYX"``
    when the file does not say what its planes are; from ImageJ, OME and tifffile's own metadata.
    PNG and JPEG give ``"YX"`` or ``"YXS"``. None when unknown.
    :func:`napari_organelle.preprocess.split_channels` takes them (``axes=``).
    """
    source: object
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        label = name or "image bytes"
        if len(data) == 0:
            raise InputError(f"{label}: the file is empty (0 bytes); it holds no image.")
        head = data[:16]
        source = data
    else:
        p = Path(os.fspath(path_or_bytes))
        label = name or str(p)
        if not p.exists():
            raise InputError(f"{label}: no such file.")
        if p.is_dir():
            raise InputError(f"{label}: is a folder, not an image file.")
        try:
            size = p.stat().st_size
            if size == 0:
                raise InputError(f"{label}: the file is empty (0 bytes); it holds no image.")
            with open(p, "rb") as fh:
                head = fh.read(16)
        except OSError as exc:
            raise InputError(f"{label}: could not be opened ({exc.strerror or exc}).") from exc
        source = p

    kind = _sniff(head)
    if kind is None:
        raise InputError(
            f"{label}: is not an image that can be read ({_describe_bytes(head)}); "
            "expected a TIFF, PNG or JPEG file."
        )
    if kind == "tiff":
        arr, axes = _read_tiff(source, label)
    else:
        arr = _read_pil(source, label, kind)
        axes = "YX" if arr.ndim == 2 else ("YXS" if arr.ndim == 3 else None)
    if arr.size == 0:
        raise InputError(f"{label}: the image has no pixels (shape {arr.shape}).")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if axes is not None and len(axes) != arr.ndim:
        axes = None
    return arr, axes


def _read_tiff(source, label: str) -> tuple[np.ndarray, str | None]:
    import tifffile

    fh = _io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with tifffile.TiffFile(fh) as tif:
            if not tif.series:
                raise InputError(f"{label}: the TIFF file is corrupt or truncated; it holds no readable image.")
            series = tif.series[0]
            n = int(np.prod(series.shape)) if series.shape else 0
            if n > MAX_PIXELS * 4:
                raise InputError(
                    f"{label}: the TIFF image is {series.shape} ({n / 1e9:.1f} G values), too large "
                    "to read into memory; crop or downsample it first."
                )
            arr = series.asarray()
            try:
                axes = str(series.axes).upper() or None
            except Exception:  # pragma: no cover - odd metadata
                axes = None
    except InputError:
        raise
    except MemoryError as exc:
        raise InputError(f"{label}: not enough memory to read this TIFF image.") from exc
    except Exception as exc:  # tifffile raises many kinds for damaged files
        raise InputError(
            f"{label}: the TIFF file is corrupt or truncated and cannot be read "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    return np.asarray(arr), axes


def _read_pil(source, label: str, kind: str) -> np.ndarray:
    from PIL import Image

    fmt = "PNG" if kind == "png" else "JPEG"
    fh = _io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with _PIL_LOCK:
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                im = Image.open(fh, formats=[fmt])
            finally:
                Image.MAX_IMAGE_PIXELS = old
        with im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise InputError(
                    f"{label}: the {fmt} image is {w}x{h} pixels, too large to read into memory; "
                    "crop or downsample it (or save it as a tiled TIFF)."
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.load()
            mode = im.mode
            if mode == "P":
                im2 = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode in ("LA", "La", "PA"):
                im2 = im.convert("L")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im2 = im.convert("RGB")
            elif mode == "1":
                im2 = im.convert("L")
            else:
                im2 = im
            arr = np.asarray(im2)
            if im2 is not im:
                im2.close()
    except InputError:
        raise
    except MemoryError as exc:
        raise InputError(f"{label}: not enough memory to read this {fmt} image.") from exc
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as exc:
        msg = str(exc)
        what = "truncated (the file ends early)" if "truncated" in msg.lower() else "corrupt"
        raise InputError(f"{label}: the {fmt} file is {what} and cannot be read ({msg}).") from exc
    except Exception as exc:  # pragma: no cover - anything else Pillow throws for broken data
        raise InputError(f"{label}: the {fmt} file cannot be read ({type(exc).__name__}: {exc}).") from exc
    if not arr.flags.writeable and arr.nbytes <= _WRITEABLE_COPY_LIMIT:
        # np.asarray on a Pillow image is a read-only view of a bytes buffer. Small images are
        # copied so callers may write in place; huge ones stay read-only rather than be held twice.
        arr = arr.copy()
    return arr


def read_pair(path, name: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a file and split it into (protein, DNA or None).

    2-channel files, (2, Y, X) or (Y, X, 2), hold protein in channel 0 and DNA in channel 1; a 2D
    or RGB file is protein only. Where the file says what its axes are (ImageJ, OME, tifffile
    metadata), they decide: a z-stack or time series is refused, not split into protein and DNA.
    Accepts a path or bytes (then give ``name``).
    """
    label = name or (str(path) if not isinstance(path, (bytes, bytearray, memoryview)) else "image bytes")
    arr, axes = read_image_axes(path, name=label)
    return split_channels(arr, name=label, axes=axes)


def _read_checked(path, dna_path=None) -> tuple[np.ndarray, np.ndarray | None]:
    from .preprocess import validate_pair

    protein, dna = read_pair(path)
    if dna_path is not None:
        dna = read_image(dna_path)
    return validate_pair(protein, dna)


def iter_read_pairs(files, dna_files=None, *, workers: int = 1, prefetch: int | None = None):
    """Read image files in order and yield ``(file, (protein, dna-or-None), error)`` for each:
    ``error`` is None and the planes are checked (:func:`~napari_organelle.preprocess.validate_pair`),
    or the planes are None and ``error`` is the InputError that says what is wrong with that file.

    ``workers`` > 1 reads with that many threads (file reading and TIFF decoding release the GIL),
    keeping at most ``prefetch`` (default ``2 * workers``) files in memory ahead of the consumer, so
    memory stays bounded however many files there are. ``dna_files``: one DNA file
    per protein file (else 2-channel files carry the DNA in channel 1).
    """
    import collections
    import concurrent.futures as cf

    files = list(files)
    dnas = list(dna_files) if dna_files else [None] * len(files)
    if len(dnas) != len(files):
        raise InputError(f"Give one DNA file per protein file ({len(files)} protein, {len(dnas)} DNA).")

    def job(i):
        try:
            return files[i], _read_checked(files[i], dnas[i]), None
        except InputError as exc:
            return files[i], None, exc

    if workers <= 1:
        for i in range(len(files)):
            yield job(i)
        return
    ahead = max(1, int(prefetch) if prefetch is not None else 2 * int(workers))
    with cf.ThreadPoolExecutor(max_workers=int(workers), thread_name_prefix="organelle-read") as pool:
        queue: collections.deque = collections.deque()
        nxt = 0
        try:
            while nxt < len(files) or queue:
                while nxt < len(files) and len(queue) < ahead:
                    queue.append(pool.submit(job, nxt))
                    nxt += 1
                yield queue.popleft().result()
        finally:  # the consumer stopped early: drop what is queued
            for f in queue:
                f.cancel()
