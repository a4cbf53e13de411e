"""One checkpoint format, safe loading, and the model store (bundled + per-user models).

A checkpoint is a ``dict`` of plain Python values and tensors (see docs/architecture.md) and is only
ever read with ``torch.load(..., weights_only=True)``: a file that would run code when unpickled is
refused. Everything is validated (format marker, version, kind, architecture, class list against
the head, every state_dict key and shape) BEFORE the weights are applied.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import pickle
import sys
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from ._arch_names import ARCH_NAMES, ARCH_PARAMS, KINDS
from .preprocess import HIGH_PERCENTILE, LOW_PERCENTILE, OrganelleError

if TYPE_CHECKING:  # torch is imported where it is needed: `models` runs without it
    import torch

FORMAT = "napari-organelle-checkpoint"
FORMAT_VERSION = 1
BUNDLED_DIR = Path(__file__).parent / "weights"
BUNDLED_NAMES = {"classifier": "bundled-classifier", "autoencoder": "bundled-autoencoder"}
SUFFIX = ".pt"


class CheckpointError(OrganelleError):
    """A model file cannot be used; the message says why and what to do."""


# torch is imported by the functions that need it: listing models and reading their metadata
# (``napari-organelle models``) does without it (see _ckpt_peek).
def _registry():
    """The model registry when it is imported already (it imports torch), else None."""
    return sys.modules.get(f"{__package__}.models.registry")


def build_model(kind: str, arch: str | None = None, **kwargs):
    """:func:`napari_organelle.models.registry.build_model` (imported when first needed)."""
    from .models.registry import build_model as build

    return build(kind, arch, **kwargs)


def __getattr__(name: str):
    if name in ("torch", "nn"):  # for code (and tests) that reach torch through this module
        import torch

        return torch if name == "torch" else torch.nn
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _known_archs(kind: str) -> tuple:
    reg = _registry()
    return tuple(reg.ARCHITECTURES[kind]) if reg is not None else ARCH_NAMES[kind]


def _arch_params(kind: str, arch: str) -> dict:
    """{constructor setting: default} of an architecture (from its signature once torch is loaded)."""
    reg = _registry()
    if reg is None:
        return ARCH_PARAMS[arch]
    import inspect

    sig = inspect.signature(reg.ARCHITECTURES[kind][arch].__init__).parameters
    return {k: v.default for k, v in sig.items() if k != "self"}


# --------------------------------------------------------------------------------------------------
# Plain-type conversion (weights_only loading accepts only plain types and tensors)
# --------------------------------------------------------------------------------------------------
def _plain(obj: Any, where: str = "value") -> Any:
    """Convert to plain Python types (dict/list/str/int/float/bool/None) + tensors."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    torch = sys.modules.get("torch")  # no tensor can exist before torch is imported
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, (Path, os.PathLike)):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, where) for v in obj]
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    try:  # numpy scalars and arrays, without importing numpy here
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return _plain(dataclasses.asdict(obj), where)
    return str(obj)


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def checkpoint_dict(model, *, kind: str, arch: str, classes=None, input_size=None,
                    training: dict | None = None, metrics: dict | None = None,
                    extra: dict | None = None) -> dict:
    """Build the checkpoint dict (CPU tensors, plain types) without writing it."""
    if kind not in KINDS:
        raise CheckpointError(f"Unknown model kind {kind!r}; use one of {', '.join(KINDS)}.")
    if arch not in _known_archs(kind):
        raise CheckpointError(f"Unknown {kind} architecture {arch!r}.")
    arch_kwargs = getattr(model, "arch_kwargs", None)
    if not isinstance(arch_kwargs, dict):
        raise CheckpointError("The model has no arch_kwargs; build it with models.build_model.")
    if kind == "classifier":
        if classes is None:
            raise CheckpointError("A classifier checkpoint needs its class list.")
        classes = [str(c) for c in classes]
        n_out = int(model.head.out_features)
        if len(classes) != n_out:
            raise CheckpointError(f"{len(classes)} class names given for a head with {n_out} outputs.")
    elif classes is not None:
        classes = [str(c) for c in classes]
    training = dict(training or {})
    training.setdefault("date", now_iso())
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "arch": arch,
        "arch_kwargs": _plain(arch_kwargs),
        "classes": classes if kind == "classifier" else None,
        "channels": ["protein", "dna"],
        "per_plane": kind == "autoencoder",
        "normalization": {"method": "percentile", "low": LOW_PERCENTILE, "high": HIGH_PERCENTILE,
                          "clip": True},
        "input_size": None if input_size is None else int(input_size),
        "training": _plain(training),
        "metrics": _plain(dict(metrics or {})),
        "package_version": __version__,
        "state_dict": {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()},
    }
    if extra:
        ckpt["extra"] = _plain(extra)
    return ckpt


def write_checkpoint_dict(path, ckpt: dict, *, exclusive: bool = False) -> Path:
    """Atomically write an already-built checkpoint dict (temp file in the same folder, fsync,
    rename). On any error (also Ctrl-C) the temp file is removed and an existing file at ``path`` is
    intact. ``exclusive``: never replace an existing file (FileExistsError; of two writers at the
    same moment exactly one succeeds). A link at ``path`` is kept: its target is replaced."""
    from ._files import atomic_file, resolve

    import torch

    path = Path(path)
    with atomic_file(path, "wb", exclusive=exclusive) as f:
        torch.save(ckpt, f)
    return path if not path.is_symlink() else resolve(path)


def save_checkpoint(path, model, *, kind: str, arch: str, classes=None, input_size=None,
                    training: dict | None = None, metrics: dict | None = None,
                    extra: dict | None = None) -> Path:
    """Write a checkpoint atomically; never leaves a partial file. Returns the path."""
    ckpt = checkpoint_dict(model, kind=kind, arch=arch, classes=classes, input_size=input_size,
                           training=training, metrics=metrics, extra=extra)
    return write_checkpoint_dict(path, ckpt)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------
@dataclass
class LoadedModel:
    model: torch.nn.Module    # eval mode
    kind: str
    arch: str
    classes: list[str] | None
    input_size: int | None
    meta: dict = field(default_factory=dict)   # the checkpoint without state_dict
    path: Path | None = None
    name: str = "model"

    @property
    def training_info(self) -> dict:
        return dict(self.meta.get("training") or {})

    @property
    def metrics(self) -> dict:
        return dict(self.meta.get("metrics") or {})

    @functools.cached_property
    def size(self) -> dict:
        """Parameter count and FLOPs per cell (classifier: at its input size; autoencoder: one
        382x382 plane, the size of a 2D HeLa cell)."""
        from .models.registry import count_parameters, flops_per_cell

        if self.kind == "classifier":
            shape = (int(getattr(self.model, "arch_kwargs", {}).get("in_channels", 2)),
                     int(self.input_size or 128), int(self.input_size or 128))
        else:
            shape = (1, 382, 382)
        return {"parameters": count_parameters(self.model), "flops_per_cell": flops_per_cell(self.model, shape),
                "input_shape": shape}

    @property
    def card(self) -> str:
        """Short human-readable description: name, size, training data, metrics (and their data), date."""
        t, m = self.training_info, self.metrics
        lines = []
        what = f"{self.arch} {self.kind}"
        if self.kind == "classifier" and self.classes:
            shown = ", ".join(self.classes[:10]) + (" ..." if len(self.classes) > 10 else "")
            what += f", {len(self.classes)} classes ({shown})"
        try:
            sz = self.size
            what += (f"; {sz['parameters'] / 1e6:.2f} M parameters, {sz['flops_per_cell'] / 1e9:.2f} GFLOP per "
                     f"{'x'.join(str(v) for v in sz['input_shape'])} input")
        except Exception:  # noqa: BLE001 - the card must never fail for want of a FLOP count
            pass
        lines.append(f"{self.name}: {what}")
        data = t.get("data") or "unknown data"
        counts = []
        for k in ("n_train", "n_val"):
            if t.get(k) is not None:
                counts.append(f"{k.split('_')[1]} {t[k]}")
        extra = f" ({', '.join(counts)})" if counts else ""
        ep = ""
        if t.get("epochs_run") is not None or t.get("epochs") is not None:
            ep = f"; {t.get('epochs_run', t.get('epochs'))} epochs"
            if t.get("best_epoch"):
                ep += f", best epoch {t['best_epoch']}"
        lines.append(f"Trained on: {data}{extra}{ep}")
        groups: dict[str, list[str]] = {}
        data_keys = [k for k in m if k.endswith("_data") and len(k) > 5]
        for k, v in m.items():
            if (k.endswith("_data") or k == "measured_on" or isinstance(v, (dict, list)) or "loss" in k
                    or k.endswith("_n") or "_n_" in k):
                continue
            if isinstance(v, float) and ("acc" in k) and v <= 1.0:
                val = f"{100 * v:.2f}%"  # 2 decimals: 1 cell in 400 is 0.25 %
            elif isinstance(v, float) and "psnr" in k:
                val = f"{v:.1f} dB"
            elif isinstance(v, float):
                val = f"{v:.4g}"
            else:
                val = str(v)
            # the longest "<prefix>_data" entry that names this figure's data ("indep_a_accuracy" ->
            # "indep_a_data", not "indep_data")
            prefixes = [d[:-5] for d in data_keys if k.startswith(d[:-5] + "_")]
            src = (m.get(max(prefixes, key=len) + "_data") if prefixes else None) or m.get("measured_on") \
                or "held-out training data"
            groups.setdefault(str(src), []).append(f"{k} {val}")
        for src, parts in groups.items():
            lines.append(f"Measured on {src}: " + "; ".join(parts))
        real = m.get("real_cells")
        if isinstance(real, dict) and real:
            parts = []
            for key, v in real.items():
                if isinstance(v, dict) and isinstance(v.get("accuracy"), (int, float)):
                    parts.append(f"{key} {100 * float(v['accuracy']):.1f}% of {v.get('cells', '?')} cells")
            if parts:
                lines.append(f"Measured on {m.get('real_cells_data') or 'real cells'}: " + "; ".join(parts))
        if t.get("date"):
            lines.append(f"Date: {t['date']}")
        return "\n".join(lines)


def _torch_load(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        head = b""  # torch.load below reports the real problem
    if head and not (head.startswith(b"PK") or head.startswith(b"\x80")):
        # torch.save writes a zip (PK...) or, in old versions, a pickle (protocol >= 2 starts with 0x80)
        raise CheckpointError(f"{path.name} is not a model file (it is neither a zip nor a pickle). "
                              "Choose a .pt file saved by napari-organelle.")
    if head.startswith(b"PK"):
        _check_unpacked_size(path)
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Detected pickle protocol ..." on foreign files
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if any(s in msg for s in ("Unsupported global", "GLOBAL", "not an allowed global",
                                  "Unsupported operand", "REDUCE", "safe_globals", "allowlisted")):
            raise CheckpointError(
                f"{path.name} contains code that would run when loaded; it was refused for safety. "
                "Only load napari-organelle checkpoints from sources you trust."
            ) from None
        raise CheckpointError(f"{path.name} is corrupt or truncated and cannot be read ({_short(msg)}).") from None
    except (EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path.name} is truncated or corrupt ({_short(str(exc)) or type(exc).__name__}). "
                              "Copy or download it again.") from None
    except RuntimeError as exc:
        raise CheckpointError(f"{path.name} is truncated or corrupt and cannot be read ({_short(str(exc))}). "
                              "Copy or download it again.") from None
    except PermissionError as exc:
        raise CheckpointError(f"{path.name} cannot be read: permission denied ({_short(str(exc))}).") from None
    except (OSError, ValueError, TypeError, AttributeError, ImportError, KeyError, IndexError,
            MemoryError, OverflowError) as exc:
        raise CheckpointError(f"{path.name} is truncated or corrupt, or not a model file "
                              f"({_short(str(exc)) or type(exc).__name__}). Copy or download it again, "
                              "or choose a .pt file saved by napari-organelle.") from None


#: Most bytes a checkpoint may unpack to (its records as the zip declares them, checked before
#: anything is read): a small file whose compressed weights would fill the memory is refused.
MAX_CHECKPOINT_BYTES = 2 * 1024 ** 3


def _check_unpacked_size(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            total = sum(max(0, int(i.file_size)) for i in zf.infolist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return  # torch.load below says what is wrong with it
    if total > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{path.name} declares {total / 1024 ** 3:.1f} GiB of contents once unpacked (the file is "
            f"{path.stat().st_size / 1024 ** 2:.1f} MiB), more than the {MAX_CHECKPOINT_BYTES / 1024 ** 3:.0f} GiB "
            "a napari-organelle model can take; it was not loaded. Choose a model file saved by napari-organelle.")


def _short(msg: str, n: int = 160) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= n else msg[: n - 3] + "..."


def read_checkpoint(path) -> dict:
    """Read a checkpoint file safely (weights_only) and check it is ours; returns the raw dict.

    ``path`` may also be a bioimage.io model package that napari-organelle exported (the .zip, or
    the folder it was unpacked into): the checkpoint it carries as an attachment is read, as safely
    (see :func:`read_package_checkpoint`)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"No model file at {p}.")
    if p.is_dir():
        if _package_rdf_in_folder(p) is not None:
            return read_package_checkpoint(p)
        raise CheckpointError(f"{p} is a folder, not a model file (.pt) nor an unpacked bioimage.io "
                              "package (it has no rdf.yaml).")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p.name} is empty (0 bytes); the save was probably interrupted.")
    kind = _zip_kind(p)
    if kind == "package":
        return read_package_checkpoint(p)
    if kind == "other-zip":
        raise CheckpointError(f"{p.name} is a zip archive, but neither a bioimage.io model package (it has no "
                              "rdf.yaml at its top level) nor a napari-organelle checkpoint. Choose a .pt file "
                              "saved by napari-organelle or a package made by 'napari-organelle export'.")
    ckpt = _torch_load(p)
    _check_format(ckpt, p.name)
    _check_meta(ckpt, p.name)
    return ckpt


# --------------------------------------------------------------------------------------------------
# bioimage.io model packages (written by napari_organelle.export) read back
# --------------------------------------------------------------------------------------------------
#: File names a bioimage.io package's description may have (at the top of the zip or folder).
PACKAGE_RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
#: The key under the description's ``config`` that marks a package napari-organelle exported.
PACKAGE_CONFIG_KEY = "napari-organelle"
#: Largest description (rdf.yaml) read; ours are a few kB.
MAX_RDF_BYTES = 1 << 20
#: Largest checkpoint read from a package (a ResNet-18 checkpoint is about 45 MB).
MAX_PACKAGE_CHECKPOINT_BYTES = 2 << 30
#: Refuse a zip member that claims to expand more than this many times (zip bombs); weights barely
#: compress (about 1.1x).
MAX_COMPRESSION_RATIO = 100
#: A package with more members than this is not one napari-organelle wrote (ours have 9).
MAX_PACKAGE_MEMBERS = 1000


def _size(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB" if n >= (1 << 20) else f"{n / 1024:.0f} kB"


def _zip_kind(p: Path) -> str | None:
    """"package" (a zip with rdf.yaml / bioimageio.yaml at its top), "checkpoint" (a torch.save zip),
    "other-zip", or None (not a zip: old pickle checkpoints and junk go to torch.load's checks)."""
    try:
        if not zipfile.is_zipfile(p):
            return None
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    if any(n in PACKAGE_RDF_NAMES for n in names):
        return "package"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "checkpoint"
    return "other-zip"


def _package_rdf_in_folder(p: Path) -> Path | None:
    for n in PACKAGE_RDF_NAMES:
        if (p / n).is_file():
            return p / n
    return None


def is_bioimageio_package(path) -> bool:
    """True if ``path`` is a bioimage.io package (zip or unpacked folder), by its layout alone:
    whether napari-organelle can load it is only known by reading it."""
    p = Path(path)
    if p.is_dir():
        return _package_rdf_in_folder(p) is not None
    return p.is_file() and _zip_kind(p) == "package"


def _safe_member_name(name) -> bool:
    """A plain file name at the top of the package: no folder part, no '..', no NUL, no drive."""
    return (isinstance(name, str) and 0 < len(name) <= 255 and name not in (".", "..")
            and not name.startswith(".") and not any(c in name for c in "/\\:\0"))


def _parse_rdf(text: bytes, label: str) -> dict:
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with napari
        raise CheckpointError("Reading bioimage.io packages needs PyYAML (pip install pyyaml).") from None
    try:
        rdf = yaml.safe_load(text.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CheckpointError(f"{label}: its rdf.yaml is not valid YAML ({_short(str(exc))}); the package is "
                              "damaged or not a bioimage.io package.") from None
    if not isinstance(rdf, dict):
        raise CheckpointError(f"{label}: its rdf.yaml does not describe a bioimage.io resource.")
    return rdf


def _package_checkpoint_entry(rdf: dict, label: str) -> tuple[str, str]:
    """(checkpoint file name, its sha256) from an rdf.yaml napari-organelle wrote; a clear
    CheckpointError for any other package."""
    rtype, fv = rdf.get("type"), rdf.get("format_version")
    rname = str(rdf.get("name") or "unnamed")[:80]
    if rtype != "model":
        raise CheckpointError(f"{label} is a bioimage.io {rtype or 'resource'} package ({rname!r}), not a model.")
    config = rdf.get("config")
    ours = config.get(PACKAGE_CONFIG_KEY) if isinstance(config, dict) else None
    if not isinstance(ours, dict) or ours.get("format") != FORMAT:
        raise CheckpointError(
            f"{label} is a bioimage.io model package ({rname!r}, format {fv}) that napari-organelle did not "
            "export: it carries no napari-organelle checkpoint. napari-organelle only runs its own "
            "architectures, with their class lists and preprocessing, so it cannot use this model; open it "
            "with a bioimage.io consumer (bioimageio.core, deepImageJ, ilastik) instead. napari-organelle "
            "loads .pt checkpoints and the packages 'napari-organelle export' writes.")
    member = ours.get("checkpoint")
    if not _safe_member_name(member):
        raise CheckpointError(f"{label}: its rdf.yaml names the checkpoint {str(member)[:80]!r}, which is not a "
                              "plain file name in the package; refused.")
    sha = None
    for a in rdf.get("attachments") or []:
        if isinstance(a, dict) and a.get("source") == member:
            sha = a.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise CheckpointError(f"{label}: its rdf.yaml lists no SHA-256 hash for {member}, so the checkpoint "
                              "cannot be checked; export the model again.")
    return member, sha.lower()


def _copy_limited(src, dst, limit: int, label: str, member: str) -> str:
    """Copy at most ``limit`` bytes from ``src`` to ``dst``; returns the sha256 of what was copied."""
    import hashlib

    h = hashlib.sha256()
    n = 0
    while True:
        chunk = src.read(1 << 20)
        if not chunk:
            break
        n += len(chunk)
        if n > limit:
            raise CheckpointError(f"{label}: {member} is larger than {_size(limit)}; refused (no "
                                  "napari-organelle model is that large).")
        h.update(chunk)
        if dst is not None:
            dst.write(chunk)
    return h.hexdigest()


def _check_sha(got: str, want: str, label: str, member: str) -> None:
    if got != want:
        raise CheckpointError(f"{label}: {member} does not match the SHA-256 hash its rdf.yaml lists, so the "
                              "package was changed or damaged after export; export or download it again.")


def read_package_checkpoint(path) -> dict:
    """The napari-organelle checkpoint inside a bioimage.io package that napari-organelle exported
    (the .zip, or its unpacked folder).

    The package is untrusted input: nothing is extracted by the names it gives (only the one plain
    file name its rdf.yaml declares is read, and nothing is written outside a private temporary
    folder), members larger than :data:`MAX_PACKAGE_CHECKPOINT_BYTES` or compressed more than
    :data:`MAX_COMPRESSION_RATIO` times are refused, the checkpoint must match the SHA-256 hash the
    rdf.yaml lists, and it is read with ``torch.load(weights_only=True)`` like any .pt file, so a
    pickle that would run code is refused. Raises CheckpointError saying what is wrong."""
    p = Path(path)
    label = p.name
    if p.is_dir():
        rdf_path = _package_rdf_in_folder(p)
        if rdf_path is None:
            raise CheckpointError(f"{p} has no rdf.yaml; it is not an unpacked bioimage.io package.")
        if rdf_path.stat().st_size > MAX_RDF_BYTES:
            raise CheckpointError(f"{label}: its {rdf_path.name} is larger than {_size(MAX_RDF_BYTES)}; refused.")
        member, sha = _package_checkpoint_entry(_parse_rdf(rdf_path.read_bytes(), label), label)
        f = p / member
        try:
            inside = f.resolve().parent == p.resolve()
        except OSError:
            inside = False
        if not inside or not f.is_file():
            raise CheckpointError(f"{label}: the checkpoint {member} its rdf.yaml names is missing from the folder "
                                  "(or lies outside it); unpack the package again.")
        if f.stat().st_size > MAX_PACKAGE_CHECKPOINT_BYTES:
            raise CheckpointError(f"{label}: {member} is larger than {_size(MAX_PACKAGE_CHECKPOINT_BYTES)}; refused.")
        with open(f, "rb") as fh:
            _check_sha(_copy_limited(fh, None, MAX_PACKAGE_CHECKPOINT_BYTES, label, member), sha, label, member)
        return _load_packaged(f, label, member)
    try:
        zf = zipfile.ZipFile(p)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"{label} is not a readable zip archive ({_short(str(exc))}).") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_PACKAGE_MEMBERS:
            raise CheckpointError(f"{label} holds {len(infos)} files; a napari-organelle package holds about ten. "
                                  "Refused.")
        names = [i.filename for i in infos]
        rdf_name = next((n for n in PACKAGE_RDF_NAMES if n in names), None)
        if rdf_name is None:
            raise CheckpointError(f"{label} has no rdf.yaml at its top level; it is not a bioimage.io package.")

        def info_of(name: str) -> zipfile.ZipInfo:
            found = [i for i in infos if i.filename == name]
            if not found:
                raise CheckpointError(f"{label} lacks {name}, which its rdf.yaml names; the package is incomplete.")
            if len(found) > 1:
                raise CheckpointError(f"{label} holds two files named {name}; refused.")
            return found[0]

        def check_size(info: zipfile.ZipInfo, limit: int) -> None:
            if info.file_size > limit:
                raise CheckpointError(f"{label}: {info.filename} expands to {_size(info.file_size)}, more than "
                                      f"the {_size(limit)} allowed; refused.")
            if info.file_size > (1 << 20) and info.file_size > MAX_COMPRESSION_RATIO * max(1, info.compress_size):
                raise CheckpointError(f"{label}: {info.filename} claims to expand {info.file_size // max(1, info.compress_size)} "
                                      "times (a zip bomb?); refused.")

        rinfo = info_of(rdf_name)
        check_size(rinfo, MAX_RDF_BYTES)
        try:
            with zf.open(rinfo) as fh:
                text = fh.read(MAX_RDF_BYTES + 1)
        except (OSError, zipfile.BadZipFile, RuntimeError, ValueError, EOFError) as exc:
            raise CheckpointError(f"{label}: its {rdf_name} cannot be read ({_short(str(exc))}).") from None
        member, sha = _package_checkpoint_entry(_parse_rdf(text[:MAX_RDF_BYTES], label), label)
        cinfo = info_of(member)
        check_size(cinfo, MAX_PACKAGE_CHECKPOINT_BYTES)
        with tempfile.TemporaryDirectory(prefix="napari-organelle-package-") as d:
            tmp = Path(d) / "model.pt"
            try:
                with zf.open(cinfo) as src, open(tmp, "wb") as dst:
                    got = _copy_limited(src, dst, MAX_PACKAGE_CHECKPOINT_BYTES, label, member)
            except CheckpointError:
                raise
            except (zipfile.BadZipFile, RuntimeError, ValueError, EOFError, zlib.error) as exc:
                raise CheckpointError(f"{label}: {member} cannot be read from the zip ({_short(str(exc))}); the "
                                      "package is damaged.") from None
            _check_sha(got, sha, label, member)
            return _load_packaged(tmp, label, member)


def _load_packaged(f: Path, label: str, member: str) -> dict:
    try:
        ckpt = _torch_load(f)
        _check_format(ckpt, member)
    except CheckpointError as exc:
        msg = str(exc).replace(f.name, member, 1) if f.name != member else str(exc)
        raise CheckpointError(f"{label} (bioimage.io package): {msg}") from None
    return ckpt


def _check_format(ckpt, label: str) -> None:
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{label} is not a napari-organelle checkpoint (a plain PyTorch state_dict or another "
            "program's model cannot be used directly). Train or fine-tune a model with napari-organelle."
        )
    ver = ckpt.get("format_version")
    if not isinstance(ver, int) or ver < 1:
        raise CheckpointError(f"{label} has an invalid format version {ver!r}.")
    if ver > FORMAT_VERSION:
        raise CheckpointError(f"{label} was written by a newer napari-organelle (format {ver}); "
                              "update napari-organelle to load it.")


#: Bounds on the architecture settings a checkpoint may ask for (checked before anything is built).
_MAX_SETTING_INT = 4096
_MAX_SETTING_LIST = 16
#: Settings of the known architectures: name -> (kind of value, low, high).
_ARCH_SETTINGS: dict[str, dict[str, tuple]] = {
    "organelle-cnn": {"num_classes": ("int", 1, 10000), "in_channels": ("int", 2, 2), "stem": ("int", 1, 1024),
                      "widths": ("ints", 1, 2048), "blocks": ("ints", 1, 8), "dropout": ("float", 0.0, 0.99)},
    "resnet18": {"num_classes": ("int", 1, 10000), "in_channels": ("int", 2, 2), "dropout": ("float", 0.0, 0.99)},
    "organelle-ae": {"channels": ("ints", 1, 1024), "latent_channels": ("int", 1, 256),
                     "in_channels": ("int", 1, 1), "norm": ("choice", "batch", "group")},
}
#: Input size bounds by kind (classifier: the size images are resized to; autoencoder: training crops).
_INPUT_SIZE = {"classifier": (16, 1024), "autoencoder": (8, 4096)}
#: Metrics the program computes with: they must be finite numbers >= 0.
_NUMERIC_METRICS = ("ood_reference_mse", "test_mse", "val_mse")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_setting(label: str, arch: str, key: str, v, spec) -> None:
    import math

    bad = None
    kind = spec[0] if spec else "any"
    if kind == "int":
        if not _is_int(v) or not spec[1] <= v <= spec[2]:
            bad = (f"a whole number from {spec[1]} to {spec[2]}" if spec[1] != spec[2] else f"{spec[1]}")
    elif kind == "ints":
        if (not isinstance(v, (list, tuple)) or not 1 <= len(v) <= 8
                or not all(_is_int(x) and spec[1] <= x <= spec[2] for x in v)):
            bad = f"a list of 1 to 8 whole numbers from {spec[1]} to {spec[2]}"
    elif kind == "float":
        if not _is_number(v) or not math.isfinite(v) or not spec[1] <= v <= spec[2]:
            bad = f"a number from {spec[1]} to {spec[2]}"
    elif kind == "choice":
        if v not in spec[1:]:
            bad = " or ".join(repr(c) for c in spec[1:])
    else:  # a setting this version does not describe: plain and small, or nothing is built
        items = v if isinstance(v, (list, tuple)) else [v]
        ok = len(items) <= _MAX_SETTING_LIST and all(
            x is None or isinstance(x, (bool, str)) and len(str(x)) <= 100
            or _is_int(x) and abs(x) <= _MAX_SETTING_INT
            or isinstance(x, float) and math.isfinite(x) and abs(x) <= _MAX_SETTING_INT for x in items)
        if not ok:
            bad = f"a plain value (a whole number up to {_MAX_SETTING_INT}, a number, text) or a short list of them"
    if bad is not None:
        shown = _short(repr(v), 60)
        if key == "in_channels":
            want = "2 (protein, DNA)" if arch != "organelle-ae" else "1 (one plane at a time)"
            raise CheckpointError(f"{label}: its first layer takes {shown} input channel(s), but this {arch} model "
                                  f"must take {want}; it cannot be used here. Choose a napari-organelle model.")
        raise CheckpointError(f"{label} has an unusable architecture setting {key} = {shown} (expected {bad}); "
                              "the file was damaged or edited. Nothing was built from it.")


def _check_meta(ckpt: dict, label: str) -> None:
    """Validate a checkpoint's metadata by type and range, BEFORE any model is built from it:
    architecture settings (so a tiny file cannot ask for a 6 GB network), input size, class list,
    the training / metrics records and the metrics inference computes with. CheckpointError."""
    import math

    kind = ckpt.get("kind")
    if kind not in KINDS:
        raise CheckpointError(f"{label} has unknown model kind {kind!r}.")
    arch = ckpt.get("arch")
    if not isinstance(arch, str) or arch not in _known_archs(kind):
        raise CheckpointError(f"{label} uses the {kind} architecture {_short(repr(arch), 60)}, which this version "
                              f"of napari-organelle does not know (known: {', '.join(_known_archs(kind))}).")
    arch_kwargs = ckpt.get("arch_kwargs")
    if arch_kwargs is None:
        arch_kwargs = {}
    if not isinstance(arch_kwargs, dict) or not all(isinstance(k, str) for k in arch_kwargs):
        raise CheckpointError(f"{label} has invalid arch_kwargs (a dictionary of settings is expected).")
    params = _arch_params(kind, arch)
    unknown = [k for k in arch_kwargs if k not in params]
    if unknown:
        raise CheckpointError(f"{label}: the {arch} architecture has no setting {', '.join(map(repr, unknown[:3]))}; "
                              "the file was written by another version or edited. Nothing was built from it.")
    schema = _ARCH_SETTINGS.get(arch, {})
    for k, v in arch_kwargs.items():
        _check_setting(label, arch, k, v, schema.get(k))
    if "in_channels" not in arch_kwargs and "in_channels" in schema:  # the default must be what we feed
        _check_setting(label, arch, "in_channels", params["in_channels"], schema["in_channels"])
    if arch == "organelle-cnn" and "widths" in arch_kwargs and "blocks" in arch_kwargs \
            and len(arch_kwargs["widths"]) != len(arch_kwargs["blocks"]):
        raise CheckpointError(f"{label}: its settings list {len(arch_kwargs['widths'])} widths but "
                              f"{len(arch_kwargs['blocks'])} block counts; the file was damaged or edited.")

    size = ckpt.get("input_size")
    if size is not None:
        lo, hi = _INPUT_SIZE[kind]
        integral = _is_int(size) or (isinstance(size, float) and math.isfinite(size) and size == int(size))
        if not integral or not lo <= int(size) <= hi:
            raise CheckpointError(
                f"{label} records an input size of {_short(repr(size), 40)}; a {kind} needs a whole number of "
                f"pixels from {lo} to {hi}. The file was damaged or edited; it was not used.")
    for key in ("training", "metrics", "extra", "normalization"):
        v = ckpt.get(key)
        if v is not None and not isinstance(v, dict):
            raise CheckpointError(f"{label}: its {key!r} record is {type(v).__name__} {_short(repr(v), 40)}, not a "
                                  "dictionary; the file was damaged or edited.")
    classes = ckpt.get("classes")
    if kind == "classifier" and isinstance(classes, list):
        if len(classes) > 10000:
            raise CheckpointError(f"{label} lists {len(classes)} classes; at most 10000 are supported.")
        if any(isinstance(c, str) and (not c.strip() or len(c) > 200) for c in classes):
            raise CheckpointError(f"{label} has an empty or over-long class name (at most 200 characters).")
    metrics = ckpt.get("metrics") or {}
    for key in _NUMERIC_METRICS:
        if key in metrics and metrics[key] is not None:
            v = metrics[key]
            if not _is_number(v) or not math.isfinite(v) or v < 0:
                raise CheckpointError(
                    f"{label} records {key} = {_short(repr(v), 40)}; it must be a number >= 0 (the reconstruction "
                    "error on the autoencoder's own cells, which the out-of-distribution check divides by). The "
                    "file was damaged or edited; it was not used.")


def _check_state(state: dict, label: str) -> None:
    """Weights that would make every answer NaN: non-finite values, negative batch-norm variances."""
    import torch

    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{label} contains NaN or infinite weights ({k}); the training diverged.")
        if k.endswith("running_var") and v.is_floating_point() and bool((v < 0).any()):
            raise CheckpointError(f"{label} has negative batch-norm variances ({k}), which make every output "
                                  "NaN; the file is damaged. Choose another model.")


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def load_checkpoint(path_or_dict, *, expected_kind: str | None = None,
                    expected_classes: int | list | tuple | None = None, device="cpu",
                    name: str | None = None) -> LoadedModel:
    """Validate and load a checkpoint (file path or dict). Raises CheckpointError."""
    from ._threads import torch_threads

    # a few hundred small tensor operations: on one thread (more wait for each other at every one
    # of them, which crawls on a busy machine: 0.4 s instead of 5 ms; see _threads)
    with torch_threads(1):
        return _load_checkpoint(path_or_dict, expected_kind=expected_kind, expected_classes=expected_classes,
                                device=device, name=name)


def _load_checkpoint(path_or_dict, *, expected_kind, expected_classes, device, name) -> LoadedModel:
    import torch

    if isinstance(path_or_dict, dict):
        ckpt, path, label = path_or_dict, None, "The checkpoint"
        _check_format(ckpt, label)
        _check_meta(ckpt, label)
    else:
        path = Path(path_or_dict)
        ckpt = read_checkpoint(path)
        label = path.name
    kind = ckpt.get("kind")
    if kind not in KINDS:
        raise CheckpointError(f"{label} has unknown model kind {kind!r}.")
    if expected_kind is not None and kind != expected_kind:
        raise CheckpointError(
            f"{label} is {_article(kind)} {kind} checkpoint; choose {_article(expected_kind)} "
            f"{expected_kind} checkpoint."
        )
    arch = ckpt.get("arch")
    if arch not in _known_archs(kind):
        raise CheckpointError(f"{label} uses the {kind} architecture {arch!r}, which this version of "
                              f"napari-organelle does not know (known: {', '.join(_known_archs(kind))}).")
    arch_kwargs = ckpt.get("arch_kwargs") or {}
    if not isinstance(arch_kwargs, dict):
        raise CheckpointError(f"{label} has invalid arch_kwargs.")
    state = ckpt.get("state_dict")
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{label} has no usable weights (state_dict missing or invalid).")

    classes = ckpt.get("classes")
    if kind == "classifier":
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            raise CheckpointError(f"{label} has no valid class list (a list of class names is required).")
        if len(set(classes)) != len(classes):
            raise CheckpointError(f"{label} names a class twice: {classes}.")
        if arch_kwargs.get("num_classes", len(classes)) != len(classes):
            raise CheckpointError(f"{label} lists {len(classes)} classes but its architecture has "
                                  f"{arch_kwargs.get('num_classes')} outputs.")
        if expected_classes is not None:
            if isinstance(expected_classes, int):
                if len(classes) != expected_classes:
                    raise CheckpointError(f"{label} predicts {len(classes)} classes; {expected_classes} are "
                                          "expected here. Choose a model trained on the same classes.")
            else:
                exp = [str(c) for c in expected_classes]
                if len(classes) != len(exp):
                    raise CheckpointError(f"{label} predicts {len(classes)} classes ({', '.join(classes)}); "
                                          f"{len(exp)} are expected ({', '.join(exp)}).")
                if classes != exp:
                    raise CheckpointError(f"{label} predicts the classes {classes}, not the expected {exp}.")
    else:
        classes = None

    # Built first on the "meta" device (shapes only, no memory), so the stored weights are checked
    # against the architecture before a single real parameter is allocated.
    try:
        with torch.device("meta"):
            shape_model = build_model(kind, arch, **arch_kwargs)
    except Exception as exc:
        raise CheckpointError(f"{label}: the {arch} model could not be rebuilt from its settings "
                              f"{_short(repr(arch_kwargs))} ({_short(str(exc))}).") from None
    expected = shape_model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (model needs {tuple(v.shape)})" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} weights (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unknown weights (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} with the wrong shape (e.g. {'; '.join(wrong[:3])})")
        raise CheckpointError(f"{label}'s weights do not match the {arch} architecture: " + ", ".join(parts) + ".")
    if kind == "classifier" and int(shape_model.head.out_features) != len(classes):
        raise CheckpointError(f"{label}: the head has {shape_model.head.out_features} outputs for {len(classes)} classes.")
    _check_state(state, label)
    del shape_model, expected
    model = build_model(kind, arch, **arch_kwargs)  # as large as the weights just checked
    model.load_state_dict(state, strict=True)
    for k, v in model.state_dict().items():  # e.g. float64 weights beyond float32's range became inf
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{label} has weights that are not finite once loaded ({k}: values beyond "
                                  "float32's range); the file is damaged. Choose another model.")
    model.eval()
    if device is not None and str(device) != "cpu":
        from .training import resolve_device

        model.to(resolve_device(str(device)))
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    input_size = ckpt.get("input_size")
    if name is None:
        name = path.stem if path is not None else str((meta.get("training") or {}).get("name", "checkpoint"))
    return LoadedModel(model=model, kind=kind, arch=arch, classes=list(classes) if classes else None,
                       input_size=int(input_size) if _is_number(input_size) else None,
                       meta=meta, path=path, name=name)


# --------------------------------------------------------------------------------------------------
# Model store
# --------------------------------------------------------------------------------------------------
def user_models_dir() -> Path:
    """Folder of the user's own models: $NAPARI_ORGANELLE_HOME if set, else the per-user data folder
    (``~/.local/share/napari-organelle/models`` on Linux). Not created here."""
    env = os.environ.get("NAPARI_ORGANELLE_HOME")
    if env:
        return Path(env).expanduser()
    try:
        import platformdirs

        return Path(platformdirs.user_data_dir("napari-organelle", appauthor=False)) / "models"
    except ImportError:
        pass
    home = Path.home()
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or (home / "AppData" / "Local"))
    elif os.uname().sysname == "Darwin":  # pragma: no cover
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or (home / ".local" / "share"))
    return base / "napari-organelle" / "models"


def bundled_path(kind: str) -> Path:
    if kind not in KINDS:
        raise CheckpointError(f"Unknown model kind {kind!r}; use one of {', '.join(KINDS)}.")
    return BUNDLED_DIR / f"{kind}{SUFFIX}"


@dataclass
class ModelInfo:
    name: str
    kind: str | None
    path: Path
    bundled: bool
    summary: str
    error: str | None = None


def _summary(ckpt: dict) -> str:
    t, m = ckpt.get("training") or {}, ckpt.get("metrics") or {}
    parts = [str(ckpt.get("arch"))]
    if ckpt.get("kind") == "classifier" and ckpt.get("classes"):
        parts.append(f"{len(ckpt['classes'])} classes")
    for k in ("val_accuracy", "test_accuracy"):
        if isinstance(m.get(k), (int, float)):
            parts.append(f"{k.split('_')[0]} acc {100 * m[k]:.1f}%")
    for k in ("val_psnr", "test_psnr"):
        if isinstance(m.get(k), (int, float)):
            parts.append(f"{k.split('_')[0]} PSNR {m[k]:.1f} dB")
    if t.get("date"):
        parts.append(str(t["date"])[:10])
    return ", ".join(parts)


def read_checkpoint_meta(path) -> dict:
    """What :func:`read_checkpoint` returns and checks, for a listing: a plain checkpoint zip is read
    without torch (tensors as :class:`~napari_organelle._ckpt_peek.TensorStub`, their values not
    read); any other file the full way (:func:`read_checkpoint`, which says what is wrong with it)."""
    from ._ckpt_peek import NotPlain, peek_checkpoint

    p = Path(path)
    try:
        ckpt = peek_checkpoint(p)
    except NotPlain:
        return read_checkpoint(p)
    _check_format(ckpt, p.name)
    _check_meta(ckpt, p.name)
    return ckpt


def _info(path: Path, name: str, bundled: bool, kind: str | None) -> ModelInfo | None:
    try:
        ckpt = read_checkpoint_meta(path)
        k = ckpt.get("kind")
        if kind is not None and k != kind:
            return None
        return ModelInfo(name, k, path, bundled, _summary(ckpt))
    except CheckpointError as exc:
        return ModelInfo(name, None, path, bundled, f"unreadable: {exc}", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one odd file must not break the listing
        msg = f"{path.name} cannot be read ({type(exc).__name__}: {_short(str(exc))})."
        return ModelInfo(name, None, path, bundled, f"unreadable: {msg}", error=msg)


def list_models(kind: str | None = None) -> list[ModelInfo]:
    """Bundled models (those whose files are present) then user models (sorted by name).

    Unreadable user files are listed with an error summary (``error`` set, ``kind`` None)."""
    if kind is not None and kind not in KINDS:
        raise CheckpointError(f"Unknown model kind {kind!r}; use one of {', '.join(KINDS)}.")
    out: list[ModelInfo] = []
    for k in KINDS:
        if kind is not None and k != kind:
            continue
        p = bundled_path(k)
        if p.exists():
            info = _info(p, BUNDLED_NAMES[k], True, None)
            if info is not None:
                out.append(info)
    d = user_models_dir()
    if d.is_dir():
        for p in sorted(d.glob(f"*{SUFFIX}")):
            if p.name.startswith("."):
                continue
            info = _info(p, p.stem, False, kind)
            if info is not None:
                out.append(info)
    return out


@functools.lru_cache(maxsize=8)
def _load_bundled_cached(path: str, mtime_ns: int, kind: str) -> LoadedModel:
    return load_checkpoint(path, expected_kind=kind, name=BUNDLED_NAMES[kind])


def load_bundled(kind: str = "classifier") -> LoadedModel:
    """The bundled model of ``kind`` (cached by path and modification time; do not mutate it)."""
    p = bundled_path(kind)
    if not p.exists():
        raise CheckpointError(f"The bundled {kind} weights were not found ({p}); reinstall napari-organelle.")
    return _load_bundled_cached(str(p), p.stat().st_mtime_ns, kind)


def resolve_model(name_or_path=None, kind: str | None = "classifier") -> LoadedModel:
    """None -> the bundled model of ``kind``; a model name from the store (any name
    :func:`list_models` shows); a path to a .pt file; or a LoadedModel (checked to be a ``kind``).

    ``kind=None``: whatever kind the named model or file is (None and "bundled" give the bundled
    classifier)."""
    if kind is not None and kind not in KINDS:
        raise CheckpointError(f"Unknown model kind {kind!r}; use one of {', '.join(KINDS)}.")
    if isinstance(name_or_path, LoadedModel):
        if kind is not None and name_or_path.kind != kind:
            raise CheckpointError(f"The model {name_or_path.name!r} is {_article(name_or_path.kind)} "
                                  f"{name_or_path.kind}; choose {_article(kind)} {kind} model.")
        return name_or_path
    if name_or_path is None or (isinstance(name_or_path, str) and name_or_path.strip() in ("", "bundled")):
        return load_bundled(kind or "classifier")
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise CheckpointError(f"A model is given by name, path or LoadedModel, not by a "
                              f"{type(name_or_path).__name__}.")
    if "\0" in os.fspath(name_or_path):
        raise CheckpointError(f"{os.fspath(name_or_path)!r} is not a usable model name or path (it holds a NUL "
                              "character).")
    if isinstance(name_or_path, str):
        s = name_or_path.strip()
        for k, bname in BUNDLED_NAMES.items():
            if s == bname:
                if kind is not None and k != kind:
                    raise CheckpointError(f"{s} is {_article(k)} {k}; choose {_article(kind)} {kind} model.")
                return load_bundled(k)
        # A file that exists where the user points wins over a stored model of the same name
        # ('--model hela_real.pt' after retraining next to a copy in the store must load the new file).
        local = Path(s).expanduser()
        if local.is_file():
            return load_checkpoint(local, expected_kind=kind)
        p = _store_path(name_or_path)
        if p is not None:
            return load_checkpoint(p, expected_kind=kind, name=p.stem)
    p = Path(name_or_path).expanduser()
    if p.exists():
        return load_checkpoint(p, expected_kind=kind)
    what = f"{kind} model" if kind else "model"
    known = [m.name for m in list_models(kind) if m.error is None]
    raise CheckpointError(f"No {what} named or at {str(name_or_path)!r}. "
                          f"Known {what}s: {', '.join(known) if known else 'none'}.")


def _lookup_name(name: str) -> bool:
    """True if ``name`` can name a file in the store: no path separator, not '.' or '..', no NUL."""
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    return (bool(name) and name not in (".", "..") and "\0" not in name
            and not any(c in name for c in seps))


def _store_path(name: str) -> Path | None:
    """The store file of the model ``name`` (exactly as list_models shows it, or stripped of
    surrounding spaces, or in another Unicode normalization form), or None."""
    import unicodedata

    d = user_models_dir()
    if not d.is_dir():
        return None
    for cand in dict.fromkeys([name, name.strip()]):
        if cand.endswith(SUFFIX):
            cand = cand[: -len(SUFFIX)]
        if not _lookup_name(cand) or cand.startswith("."):
            continue
        p = d / f"{cand}{SUFFIX}"
        if p.is_file():
            return p
    want = {unicodedata.normalize("NFC", name), unicodedata.normalize("NFC", name.strip())}
    for p in sorted(d.glob(f"*{SUFFIX}")):  # e.g. a name typed in NFC, a file name stored in NFD (macOS)
        if not p.name.startswith(".") and unicodedata.normalize("NFC", p.stem) in want and p.is_file():
            return p
    return None


#: Characters a saved model's name must not contain (path separators, and those Windows forbids).
_FORBIDDEN = set('<>:"/\\|?*')


def _valid_name(name: str) -> bool:
    """A name the store can save: 1-100 characters, any letters (Unicode), digits, spaces and
    punctuation except path separators and <>:"|?*; not starting with '.' or ending in '.' or a space."""
    return (0 < len(name) <= 100 and _lookup_name(name) and not name.startswith((".", " "))
            and not name.endswith((".", " ")) and not any(c in _FORBIDDEN or ord(c) < 32 for c in name))


def save_user_model(result_or_loaded, name: str, *, overwrite: bool = False,
                    training: dict | None = None, metrics: dict | None = None) -> Path:
    """Save a model into the user store as ``<name>.pt``; returns the path.

    ``result_or_loaded``: what ``recipes.train_model`` returns (a TrainingOutcome: its checkpoint,
    with the data description, split, command and test metrics, is saved as it is), a
    ``training.TrainResult`` (from ``train_model``, it keeps the same description and metrics), a
    LoadedModel or a checkpoint dict. ``training`` / ``metrics`` are merged over what it records.
    """
    name = str(name).strip()
    if name.endswith(SUFFIX):
        name = name[: -len(SUFFIX)]
    if not _valid_name(name):
        raise CheckpointError(f"{name!r} is not a usable model name: use up to 100 letters, digits, spaces "
                              "or punctuation, without '/', '\\', <>:\"|?* and not starting with '.' or "
                              "ending with '.' or a space.")
    if name.lower().startswith("bundled"):
        raise CheckpointError("Names starting with 'bundled' are reserved for the bundled models.")
    obj = result_or_loaded
    if isinstance(obj, dict):
        ckpt = dict(obj)
        _check_format(ckpt, "The checkpoint")
    elif isinstance(getattr(obj, "checkpoint", None), dict):  # recipes.TrainingOutcome
        ckpt = dict(obj.checkpoint)
        _check_format(ckpt, "The checkpoint")
    elif isinstance(obj, LoadedModel):
        meta = obj.meta
        ckpt = checkpoint_dict(obj.model, kind=obj.kind, arch=obj.arch, classes=obj.classes,
                               input_size=obj.input_size,
                               training=dict(meta.get("training") or {}),
                               metrics=dict(meta.get("metrics") or {}),
                               extra=meta.get("extra"))
    elif callable(getattr(obj, "checkpoint", None)):  # training.TrainResult
        # train_model records its held-out (test) metrics on the result: keep them
        ckpt = obj.checkpoint(metrics=dict(getattr(obj, "held_out_metrics", None) or {}))
    else:
        raise CheckpointError(f"Cannot save a {type(obj).__name__} as a model.")
    if training or metrics:
        ckpt["training"] = {**(ckpt.get("training") or {}), **_plain(dict(training or {}))}
        ckpt["metrics"] = {**(ckpt.get("metrics") or {}), **_plain(dict(metrics or {}))}
    ckpt.setdefault("training", {})
    if isinstance(ckpt["training"], dict):
        ckpt["training"] = {**ckpt["training"], "name": name}
    path = user_models_dir() / f"{name}{SUFFIX}"
    exists = CheckpointError(f"A model named {name!r} already exists ({path}); choose another name or overwrite it.")
    if path.exists() and not overwrite:
        raise exists
    try:  # exclusive creation: of two saves under one new name at the same moment, one fails here
        return write_checkpoint_dict(path, ckpt, exclusive=not overwrite)
    except FileExistsError:
        raise exists from None


def clear_cache() -> None:
    _load_bundled_cached.cache_clear()
