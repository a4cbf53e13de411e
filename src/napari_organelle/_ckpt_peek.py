"""A checkpoint's metadata without torch: for listing models (``napari-organelle models``) in a
fraction of a second instead of the second that importing torch takes.

A checkpoint written by ``torch.save`` is a zip with ``<name>/data.pkl`` (the pickled dict) and one
record per tensor storage (``<name>/data/<key>``). The pickle is read here by an unpickler that
knows only what a plain napari-organelle checkpoint holds (dicts, lists, numbers, text, and tensors
made by ``torch._utils._rebuild_tensor_v2`` from typed storages, with ``collections.OrderedDict``
for their hooks): tensors become :class:`TensorStub` (shape and dtype, no values), and every storage
they name must be in the zip with at least the bytes it needs. Every record's CRC is checked.

Anything else (another global, an old pickle file, a bioimage.io package, a zip with a member of
another name, a CRC or size that does not match) raises :class:`NotPlain`: the caller then reads the
file the full way (``torch.load(weights_only=True)``), which says precisely what is wrong. So this
never accepts a file that the full read would refuse, and never runs code from a file.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

#: Bytes per element of the storage types torch.save writes.
_STORAGES = {"FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
             "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1}
#: Largest data.pkl read (ours are a few tens of kB; the weights are separate records).
_MAX_PICKLE = 16 << 20


class NotPlain(Exception):
    """The file is not a plain checkpoint zip this reader vouches for: read it the full way."""


class TensorStub:
    """A tensor's shape and storage type, without its values."""

    __slots__ = ("shape", "storage")

    def __init__(self, shape, storage):
        self.shape, self.storage = tuple(shape), storage

    def __repr__(self):  # pragma: no cover - debugging aid
        return f"TensorStub({self.shape}, {self.storage})"


class _Storage:
    __slots__ = ("kind", "key", "numel")

    def __init__(self, kind, key, numel):
        self.kind, self.key, self.numel = kind, key, numel


def _rebuild_tensor_v2(storage, offset, size, stride, *rest):
    if not isinstance(storage, _Storage) or not isinstance(offset, int) or offset < 0:
        raise NotPlain("odd tensor")
    if not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride) \
            or not all(isinstance(n, int) and n >= 0 for n in (*size, *stride)):
        raise NotPlain("odd tensor shape")
    if all(n > 0 for n in size) and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.numel:
        raise NotPlain("tensor beyond its storage")
    return TensorStub(size, storage.kind)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, zf: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self._zf, self._prefix = zf, prefix

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGES:
            return ("storage-type", name)
        raise NotPlain(f"global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise NotPlain("odd persistent id")
        _, kind, key, _location, numel = pid
        if not (isinstance(kind, tuple) and kind[:1] == ("storage-type",)) or not isinstance(numel, int) \
                or numel < 0 or not isinstance(key, str):
            raise NotPlain("odd storage")
        try:
            info = self._zf.getinfo(f"{self._prefix}data/{key}")
        except KeyError:
            raise NotPlain("missing storage") from None
        if info.file_size < numel * _STORAGES[kind[1]]:
            raise NotPlain("short storage")
        return _Storage(kind[1], key, numel)


def peek_checkpoint(path) -> dict:
    """The checkpoint dict of ``path`` with :class:`TensorStub` for its tensors; NotPlain when the
    file is anything but a plain torch.save zip of plain values and tensors (see the module doc)."""
    p = Path(path)
    try:
        if not p.is_file() or p.is_symlink():
            raise NotPlain("not a regular file")
        with open(p, "rb") as fh:
            if fh.read(2) != b"PK":
                raise NotPlain("not a zip")
        with zipfile.ZipFile(p) as zf:
            infos = zf.infolist()
            pkl = [i.filename for i in infos if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
            if len(pkl) != 1:
                raise NotPlain("no data.pkl")
            prefix = pkl[0][: -len("data.pkl")]
            total = 0
            for i in infos:
                name = i.filename
                if not (name.startswith(prefix) or name.startswith(".data/")) or i.flag_bits & 0x1:
                    raise NotPlain(f"member {name!r}")
                total += max(0, int(i.file_size))
            from .checkpoints import MAX_CHECKPOINT_BYTES

            if total > MAX_CHECKPOINT_BYTES or zf.getinfo(pkl[0]).file_size > _MAX_PICKLE:
                raise NotPlain("too large")
            if zf.testzip() is not None:  # every record's CRC
                raise NotPlain("CRC")
            obj = _Unpickler(zf.read(pkl[0]), zf, prefix).load()
    except NotPlain:
        raise
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, IndexError, KeyError, RecursionError, MemoryError, OverflowError) as exc:
        raise NotPlain(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise NotPlain("not a dict")
    return obj
