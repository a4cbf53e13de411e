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

from ._files import link_problem
from ._text import printable
from .preprocess import InputError, split_channels

#: File suffixes (lower case) that are read as images.
IMAGE_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

#: Images with more pixels than this (per plane) are refused instead of exhausting memory.
MAX_PIXELS = 1_000_000_000


def _budget_from_env(default: int) -> int:
    raw = os.environ.get("NAPARI_ORGANELLE_MAX_IMAGE_BYTES", "").strip()
    try:
        v = int(float(raw)) if raw else default
    except ValueError:
        v = default
    return v if v > 0 else default


#: Memory budget of one decoded image, in bytes (shape x bytes per value, all planes, as the file
#: header declares it), checked BEFORE anything is decoded: a small file that declares a huge
#: image (a "decompression bomb") is refused with a message instead of exhausting memory. Also the
#: limit for one archive member. 1 GiB by default (e.g. 23000 x 23000 16-bit pixels); set the
#: environment variable NAPARI_ORGANELLE_MAX_IMAGE_BYTES to change it.
MAX_IMAGE_BYTES = _budget_from_env(1024 ** 3)

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
        label = name or printable(str(p))
        if "\0" in str(p):
            raise InputError(f"{label}: is not a usable file name (it holds a NUL character).")
        why = link_problem(p)
        if why:
            raise InputError(f"{label}: {why}.")
        if not p.exists():
            raise InputError(f"{label}: no such file.")
        if p.is_dir():
            raise InputError(f"{label}: is a folder, not an image file.")
        if not p.is_file():
            raise InputError(f"{label}: is not a regular file (a device, pipe or socket); give an image file.")
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


def _too_large(label: str, what: str, shape, nbytes: int) -> InputError:
    dims = "x".join(str(int(n)) for n in shape)
    return InputError(
        f"{label}: the {what} image is {dims} ({nbytes / 1024 ** 3:.1f} GiB once decoded), more than the "
        f"{MAX_IMAGE_BYTES / 1024 ** 3:.1f} GiB allowed for one image; it was not read. Crop or downsample "
        "it (or save one plane or channel per file). If it is a real image and this machine has the memory, "
        "raise the limit with the environment variable NAPARI_ORGANELLE_MAX_IMAGE_BYTES (in bytes)."
    )


def _codec_error(label: str, exc: BaseException, compression: str | None) -> InputError | None:
    """The message for a compressed TIFF whose codec is not installed, or None."""
    msg = f"{type(exc).__name__}: {exc}"
    if "imagecodecs" in msg or isinstance(exc, ImportError):
        comp = f" ({compression})" if compression else ""
        return InputError(
            f"{label}: the TIFF file is compressed{comp} and the codec to decode it is not installed: "
            "install the 'imagecodecs' package (pip install imagecodecs, or conda install -c conda-forge "
            "imagecodecs), then read it again. (Or save the image uncompressed: in Fiji, File > Save As > "
            "Tiff... writes it uncompressed.)"
        )
    return None


def _read_tiff(source, label: str) -> tuple[np.ndarray, str | None]:
    import tifffile

    fh = _io.BytesIO(source) if isinstance(source, bytes) else source
    compression = None
    try:
        with tifffile.TiffFile(fh) as tif:
            if not tif.series:
                raise InputError(f"{label}: the TIFF file is corrupt or truncated; it holds no readable image.")
            series = tif.series[0]
            shape = tuple(int(n) for n in series.shape) if series.shape else ()
            n = int(np.prod(shape, dtype=np.float64)) if shape else 0
            try:
                itemsize = int(np.dtype(series.dtype).itemsize)
            except Exception:  # noqa: BLE001 - an odd or missing sample format
                itemsize = 8
            nbytes = n * max(1, itemsize)
            if nbytes > MAX_IMAGE_BYTES or n > MAX_PIXELS * 4:
                raise _too_large(label, "TIFF", shape, nbytes)
            try:
                compression = getattr(tif.pages.first.compression, "name", None)
            except Exception:  # noqa: BLE001
                compression = None
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
        codec = _codec_error(label, exc, compression)
        if codec is not None:
            raise codec from None
        raise InputError(
            f"{label}: the TIFF file is corrupt or truncated and cannot be read "
            f"({type(exc).__name__}: {printable(exc)})."
        ) from exc
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{label}: the TIFF image holds {arr.dtype} values (not integer or floating-point "
                         "pixel values); save it as an integer or float image.")
    return arr, axes


#: Bytes a decoded pixel takes, per Pillow mode (with the conversion _read_pil makes).
_PIL_BYTES = {"1": 2, "L": 1, "P": 5, "LA": 3, "La": 3, "PA": 6, "I;16": 2, "I;16B": 2, "I;16L": 2,
              "I;16N": 2, "I": 4, "F": 4, "RGB": 3, "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 7,
              "YCbCr": 6, "LAB": 6, "HSV": 6}


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
            nbytes = int(w) * int(h) * _PIL_BYTES.get(im.mode, 8)
            if w * h > MAX_PIXELS or nbytes > MAX_IMAGE_BYTES:
                raise _too_large(label, fmt, (h, w), nbytes)
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
        msg = printable(exc)
        what = "truncated (the file ends early)" if "truncated" in msg.lower() else "corrupt"
        raise InputError(f"{label}: the {fmt} file is {what} and cannot be read ({msg}).") from exc
    except Exception as exc:  # pragma: no cover - anything else Pillow throws for broken data
        raise InputError(f"{label}: the {fmt} file cannot be read ({type(exc).__name__}: {printable(exc)}).") from exc
    if not arr.flags.writeable and arr.nbytes <= _WRITEABLE_COPY_LIMIT:
        # np.asarray on a Pillow image is a read-only view of a bytes buffer. Small images are
        # copied so callers may write in place; huge ones stay read-only rather than be held twice.
        arr = arr.copy()
    return arr


def image_nbytes(path_or_bytes) -> int | None:
    """The bytes a file's image takes once decoded, from its header alone (nothing is decoded), or
    None when the header cannot say (the file is then reported by :func:`read_image`)."""
    try:
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            data = bytes(path_or_bytes)
            head, src = data[:16], _io.BytesIO(data)
        else:
            p = Path(os.fspath(path_or_bytes))
            with open(p, "rb") as fh:
                head = fh.read(16)
            src = p
        kind = _sniff(head)
        if kind == "tiff":
            import tifffile

            with tifffile.TiffFile(src) as tif:
                s = tif.series[0]
                return int(np.prod(s.shape, dtype=np.float64)) * int(np.dtype(s.dtype).itemsize)
        if kind in ("png", "jpeg"):
            from PIL import Image

            with _PIL_LOCK:
                old = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = None
                try:
                    im = Image.open(src, formats=["PNG" if kind == "png" else "JPEG"])
                finally:
                    Image.MAX_IMAGE_PIXELS = old
            with im:
                return int(im.size[0]) * int(im.size[1]) * _PIL_BYTES.get(im.mode, 8)
    except Exception:  # noqa: BLE001 - the reader says what is wrong
        return None
    return None


def read_pair(path, name: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a file and split it into (protein, DNA or None).

    2-channel files, (2, Y, X) or (Y, X, 2), hold protein in channel 0 and DNA in channel 1; a 2D
    or RGB file is protein only. Where the file says what its axes are (ImageJ, OME, tifffile
    metadata), they decide: a z-stack or time series is refused, not split into protein and DNA.
    Accepts a path or bytes (then give ``name``).
    """
    label = name or (printable(str(path)) if not isinstance(path, (bytes, bytearray, memoryview)) else "image bytes")
    arr, axes = read_image_axes(path, name=label)
    return split_channels(arr, name=label, axes=axes)


def _read_checked(path, dna_path=None) -> tuple[np.ndarray, np.ndarray | None]:
    from .preprocess import validate_pair

    protein, dna = read_pair(path)
    if dna_path is not None:
        dna = read_image(dna_path)
    return validate_pair(protein, dna)


class _ReadBudget:
    """Bytes of decoded images the reading threads may hold ahead of the consumer. Files reserve
    their share in input order (so a file never waits for one that comes after it: no deadlock) and
    the consumer gives it back when it takes the next file."""

    def __init__(self, limit: int):
        self.limit = int(limit)
        self.held = 0
        self.turn = 0
        self.closed = False
        self.cond = threading.Condition()

    def reserve(self, i: int, nbytes: int) -> bool:
        with self.cond:
            while not self.closed and (self.turn != i or (self.held and self.held + nbytes > self.limit)):
                self.cond.wait(0.5)
            if self.closed:
                return False
            self.held += nbytes
            self.turn += 1
            self.cond.notify_all()
            return True

    def release(self, nbytes: int) -> None:
        with self.cond:
            self.held = max(0, self.held - nbytes)
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def _unexpected(f, exc: BaseException) -> InputError:
    label = printable(str(f))
    if isinstance(exc, MemoryError):
        return InputError(f"{label}: not enough memory to read this image.")
    return InputError(f"{label}: could not be read ({type(exc).__name__}: {printable(exc)}).")


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
        except Exception as exc:  # noqa: BLE001 - one unreadable file must not end the run
            return files[i], None, _unexpected(files[i], exc)

    if workers <= 1:
        for i in range(len(files)):
            yield job(i)
        return
    ahead = max(1, int(prefetch) if prefetch is not None else 2 * int(workers))
    # Memory: besides the prefetch count, the decoded images held ahead of the consumer are bounded
    # in bytes (from each file's header, before it is decoded): MAX_IMAGE_BYTES in all.
    budget = _ReadBudget(MAX_IMAGE_BYTES)

    def budgeted(i):
        nb = 0
        for f in (files[i], dnas[i]):
            if f is not None:
                nb += image_nbytes(f) or 0
        if not budget.reserve(i, nb):
            return files[i], None, InputError(f"{printable(str(files[i]))}: not read (the run was stopped)."), 0
        return (*job(i), nb)

    with cf.ThreadPoolExecutor(max_workers=int(workers), thread_name_prefix="organelle-read") as pool:
        queue: collections.deque = collections.deque()
        nxt = 0
        try:
            while nxt < len(files) or queue:
                while nxt < len(files) and len(queue) < ahead:
                    queue.append(pool.submit(budgeted, nxt))
                    nxt += 1
                f, planes, err, nb = queue.popleft().result()
                try:
                    yield f, planes, err
                finally:
                    budget.release(nb)
        finally:  # the consumer stopped early: drop what is queued
            budget.close()
            for f in queue:
                f.cancel()
