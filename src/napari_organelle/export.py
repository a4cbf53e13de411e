"""Share a model through bioimage.io: write a bioimage.io model package (spec 0.5) from a checkpoint.

``export_bioimageio(model, "my-model.zip")`` writes one zip that a bioimage.io consumer
(bioimageio.core, deepImageJ, ilastik, the bioimage.io website) can run without napari-organelle,
and that napari-organelle loads back exactly (``--model my-model.zip``, ``load_model``, the docks'
"Load from file..."). Everything is read from the checkpoint (kind, architecture and its settings,
class list, input size, normalisation, training data and figures); nothing about the bundled models
is assumed. Writing the package needs torch, numpy and matplotlib only; ``bioimageio.core`` (the
optional extra ``napari-organelle[bioimageio]``) is needed only to validate it (``bioimageio test``).

The package holds:

* ``rdf.yaml``: the description (format 0.5.12): inputs, outputs, the percentile normalisation as
  declared pre-processing (``scale_range`` over y and x, then ``clip`` to [0, 1]) and, for a
  classifier, ``softmax`` over the classes as declared post-processing (the network returns logits);
* ``torchscript.pt`` and ``pytorch_state_dict.pt`` with ``napari_organelle_arch.py`` (a copy of
  :mod:`napari_organelle._bioimageio_arch`, torch only): two weight formats of the same network;
* ``test_input.npy`` / ``test_output.npy``: a simulated cell (raw intensities) and what
  napari-organelle's own ``classify()`` (or ``reconstruct()``) returns for it;
* ``cover.png``, ``README.md`` (the model card, a "Validation" section);
* ``napari_organelle_model.pt``: the napari-organelle checkpoint itself, as an attachment, so that
  the package loads back into napari-organelle exactly.

Before the zip is written the export runs both weight formats on the test input through the
declared pre- and post-processing (implemented here from the spec's definitions) and refuses to
write a package whose result differs from ``classify()`` / ``reconstruct()`` by more than
:data:`CHECK_TOLERANCE`.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import io
import json
import math
import os
import re
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from .checkpoints import (FORMAT, PACKAGE_CONFIG_KEY, CheckpointError, LoadedModel, load_checkpoint,
                          read_checkpoint, resolve_model)
from .preprocess import OrganelleError

#: The bioimage.io model description format written (bioimageio.spec 0.5.12 implements it).
FORMAT_VERSION = "0.5.12"
#: The attachment that carries the napari-organelle checkpoint (read back by checkpoints.py).
CHECKPOINT_FILE = "napari_organelle_model.pt"
ARCH_FILE = "napari_organelle_arch.py"
TORCHSCRIPT_FILE = "torchscript.pt"
STATE_DICT_FILE = "pytorch_state_dict.pt"
TEST_INPUT_FILE = "test_input.npy"
TEST_OUTPUT_FILE = "test_output.npy"
SAMPLE_INPUT_FILE = "sample_input.tif"
SAMPLE_OUTPUT_FILE = "sample_output.tif"
COVER_FILE = "cover.png"
README_FILE = "README.md"
#: (kind, architecture) -> class in _bioimageio_arch.py (the architecture file of every package).
ARCH_CALLABLES = {
    ("classifier", "organelle-cnn"): "OrganelleCNN",
    ("classifier", "resnet18"): "ResNet18Classifier",
    ("autoencoder", "organelle-ae"): "OrganelleAE",
}
#: The export refuses to write a package whose weights, run through the declared pre- and
#: post-processing, differ from napari-organelle's classify() / reconstruct() by more than this
#: (absolute; probabilities and [0, 1] intensities). On a CPU the difference is about 1e-6.
CHECK_TOLERANCE = 1e-4
#: What the package declares to bioimage.io consumers (config.bioimageio.reproducibility_tolerance):
#: an output element may differ from the test output by absolute + relative * |expected|. Looser
#: than CHECK_TOLERANCE because GPUs convolve in TF32 by default.
DECLARED_ABSOLUTE_TOLERANCE = 1e-3
DECLARED_RELATIVE_TOLERANCE = 1e-3
#: The eps bioimage.io's scale_range adds to the percentile range: (x - lo) / (hi - lo + eps).
SCALE_RANGE_EPS = 1e-6
#: The license a package declares unless told otherwise (the project's own).
DEFAULT_LICENSE = "BSD-3-Clause"
#: Side of the simulated cell the autoencoder's test input shows (the simulator's default).
AE_TEST_SIDE = 382
#: Cite entry for the class definitions (the Murphy-lab 2D HeLa set the ten classes come from).
_CITE = {"text": "Boland MV, Murphy RF (2001). A neural network classifier capable of recognizing the patterns of "
                 "all major subcellular structures in fluorescence microscope images of HeLa cells. "
                 "Bioinformatics 17(12):1213-1223 (the ten organelle classes and the 2D HeLa images the "
                 "simulator imitates).",
         "doi": "10.1093/bioinformatics/17.12.1213"}


class ExportError(OrganelleError, ValueError):
    """The model cannot be exported as asked; the message says why and what to do."""


@dataclass
class BioimageioExport:
    """What :func:`export_bioimageio` wrote."""

    path: Path                      # the .zip
    name: str                       # the package's name (rdf.yaml ``name``)
    kind: str                       # "classifier" | "autoencoder"
    files: list[str]                # the members of the zip
    #: max |package output - napari-organelle output| on the test input, per weight format
    max_abs_difference: dict[str, float] = field(default_factory=dict)
    declared_tolerance: dict[str, float] = field(default_factory=dict)
    temperature: float | None = None  # the classifier's softmax temperature, when one applies
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------
def export_bioimageio(model, out_zip, *, name: str | None = None, description: str | None = None,
                      authors: Sequence | None = None, license: str = DEFAULT_LICENSE,
                      overwrite: bool = False, seed: int = 0) -> BioimageioExport:
    """Write ``model`` as a bioimage.io model package (a .zip) at ``out_zip``.

    ``model``: a LoadedModel (also one fine-tuned in the dock), a model name that
    ``napari-organelle models`` lists, a path to a .pt checkpoint or to a package this function
    wrote, a checkpoint dict, or what ``recipes.train_model`` / ``training.train`` return.
    ``name``: the package's name (letters, digits, spaces, ``_+-()``; other characters become ``-``;
    default "napari-organelle <model name>"). ``description``: one paragraph (default: what the model
    does and what it was trained on). ``authors``: names (or bioimage.io author dicts); default the
    napari-organelle developers for the bundled models, else "napari-organelle user" (put your own
    name before sharing). ``license``: an SPDX identifier for the weights. ``overwrite``: replace an
    existing ``out_zip`` (never the model being exported). ``seed``: the simulated test cell.

    Raises ExportError (a bad output path, a model this export cannot describe) or CheckpointError
    (the model cannot be loaded); both are OrganelleErrors with a message for the user. The zip is
    written to a temporary file in the same folder and renamed, so a failed export leaves nothing
    behind and never a partial package.
    """
    import torch

    _check_out_path(out_zip, None, overwrite)  # a bad name or license fails before any work
    license_id = _check_license(license)
    ckpt, label, src = _checkpoint_from(model)
    out = _check_out_path(out_zip, src, overwrite)
    loaded = load_checkpoint(ckpt, name=label)  # validates metadata and weights (CheckpointError)
    kind, arch = loaded.kind, loaded.arch
    callable_name = ARCH_CALLABLES.get((kind, arch))
    if callable_name is None:
        raise ExportError(f"The {kind} architecture {arch!r} has no standalone version for bioimage.io packages "
                          f"yet (add it to napari_organelle/_bioimageio_arch.py and export.ARCH_CALLABLES).")
    low, high, clip = _normalization(ckpt)
    arch_kwargs = copy.deepcopy(ckpt.get("arch_kwargs") or {})
    net = _standalone(callable_name, arch_kwargs, ckpt["state_dict"])

    notes: list[str] = []
    if kind == "classifier":
        test = _classifier_test(loaded, ckpt, seed, notes)
    else:
        test = _autoencoder_test(loaded, seed)

    # Both weight formats, run through the declared pre- and post-processing, must give what
    # napari-organelle gives (the expected output, from classify() / reconstruct()).
    ts_bytes = _torchscript_bytes(net)
    sd_bytes = _save_bytes(dict(ckpt["state_dict"]))  # a plain state dict: what bioimageio.core loads
    x = torch.from_numpy(_declared_preprocessing(test["input"], low, high, clip))
    ts = _load_torchscript(ts_bytes)
    with torch.no_grad():
        outs = {"torchscript": ts(x), "pytorch_state_dict": net(x)}
    diffs = {}
    for fmt, y in outs.items():
        got = _declared_postprocessing(y.float().numpy(), kind, test.get("gain"))
        diffs[fmt] = float(np.max(np.abs(got - test["output"])))
    worst = max(diffs.values())
    if not worst <= CHECK_TOLERANCE:
        raise ExportError(f"The exported network does not reproduce napari-organelle's {test['reference']} on the test "
                          f"input (largest difference {worst:.3g}, allowed {CHECK_TOLERANCE:g}: {diffs}); nothing was "
                          "written. This is a bug in napari-organelle; please report it.")

    pkg_name = _package_name(name, loaded)
    ckpt_bytes = _save_bytes(ckpt)
    try:  # the attachment must load back as any .pt does (weights_only): plain metadata only
        torch.load(io.BytesIO(ckpt_bytes), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"The model's checkpoint holds metadata that cannot be loaded safely ({exc}); save it with "
                          "napari-organelle (checkpoints.checkpoint_dict) and export that.") from None
    arch_bytes = (Path(__file__).parent / "_bioimageio_arch.py").read_bytes()
    files: dict[str, bytes] = {
        TEST_INPUT_FILE: _npy_bytes(test["input"]),
        TEST_OUTPUT_FILE: _npy_bytes(test["output"]),
        SAMPLE_INPUT_FILE: _tif_bytes(test["input"][0]),
        SAMPLE_OUTPUT_FILE: _tif_bytes(test["output"][0] if kind == "autoencoder" else test["output"]),
        ARCH_FILE: arch_bytes,
        STATE_DICT_FILE: sd_bytes,
        TORCHSCRIPT_FILE: ts_bytes,
        CHECKPOINT_FILE: ckpt_bytes,
        COVER_FILE: _cover_png(loaded, test, low, high, clip),
    }
    files[README_FILE] = _readme(loaded, ckpt, pkg_name, test, diffs, low, high, clip, notes, out.name).encode("utf-8")
    rdf = _rdf(loaded, ckpt, pkg_name, description, authors, license_id, test, low, high, clip, files,
               callable_name, arch_kwargs, _is_bundled(src))
    files = {"rdf.yaml": to_yaml(rdf).encode("utf-8"), **files}
    _write_zip(out, files)
    return BioimageioExport(path=out, name=pkg_name, kind=kind, files=list(files), max_abs_difference=diffs,
                            declared_tolerance={"absolute": DECLARED_ABSOLUTE_TOLERANCE,
                                                "relative": DECLARED_RELATIVE_TOLERANCE},
                            temperature=test.get("temperature"), notes=notes)


# --------------------------------------------------------------------------------------------------
# The model and the output path
# --------------------------------------------------------------------------------------------------
def _cpu_state(state: dict) -> dict:
    """The weights as CPU copies (anything that is not a tensor is left for load_checkpoint to refuse)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() if hasattr(v, "detach") else v for k, v in state.items()}


def _checkpoint_from(obj) -> tuple[dict, str, Path | None]:
    """(checkpoint dict with every metadata key kept and CPU weights, name, source file or None)."""
    ckpt, label, src = _checkpoint_any(obj)
    if isinstance(ckpt.get("state_dict"), dict):
        ckpt = {**ckpt, "state_dict": _cpu_state(ckpt["state_dict"])}
    return ckpt, label, src


def _checkpoint_any(obj) -> tuple[dict, str, Path | None]:
    if isinstance(obj, LoadedModel):
        ckpt = {**copy.deepcopy(obj.meta), "state_dict": _cpu_state(obj.model.state_dict())}
        return ckpt, obj.name, obj.path
    if isinstance(obj, dict):
        if obj.get("format") != FORMAT:
            raise CheckpointError("The checkpoint dict is not a napari-organelle checkpoint.")
        ckpt = dict(obj)
        return ckpt, str((ckpt.get("training") or {}).get("name") or "model"), None
    if isinstance(getattr(obj, "checkpoint", None), dict):  # recipes.TrainingOutcome
        ckpt = dict(obj.checkpoint)
        return ckpt, str((ckpt.get("training") or {}).get("name") or "model"), None
    if callable(getattr(obj, "checkpoint", None)):  # training.TrainResult
        ckpt = obj.checkpoint(metrics=dict(getattr(obj, "held_out_metrics", None) or {}))
        return ckpt, str((ckpt.get("training") or {}).get("name") or "model"), None
    if obj is None or isinstance(obj, (str, os.PathLike)):
        p = Path(obj).expanduser() if obj is not None else None
        if p is not None and p.exists():
            return read_checkpoint(p), p.stem, p
        loaded = resolve_model(obj, kind=None)  # a store name or a bundled name (CheckpointError if unknown)
        ckpt = {**copy.deepcopy(loaded.meta), "state_dict": _cpu_state(loaded.model.state_dict())}
        return ckpt, loaded.name, loaded.path
    raise ExportError(f"Cannot export a {type(obj).__name__}; give a model name, a .pt path or a loaded model.")


def _check_out_path(out_zip, src: Path | None, overwrite: bool) -> Path:
    if out_zip is None or str(out_zip).strip() == "":
        raise ExportError("No output file was given; name the package, e.g. my-model.zip.")
    out = Path(out_zip).expanduser()
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give a file name in it, e.g. {out / 'model.zip'}.")
    if out.suffix.lower() != ".zip":
        got = f"ends in '{out.suffix}'" if out.suffix else "has no extension"
        raise ExportError(f"{out} {got}; a bioimage.io package is a .zip file: give a name ending in .zip.")
    if src is not None and out.exists():
        try:
            same = out.resolve() == Path(src).resolve()
        except OSError:
            same = False
        if same:
            raise ExportError(f"{out} is the model being exported; the package must not replace it. Give another name.")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; choose another name or allow overwriting it (--overwrite).")
    anc = out.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        raise ExportError(f"Cannot write {out}: {anc} is a file, not a folder.")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ExportError(f"Cannot write {out}: the folder {anc} is not writable.")
    return out


def _normalization(ckpt: dict) -> tuple[float, float, bool]:
    norm = ckpt.get("normalization") or {}
    if not isinstance(norm, dict) or norm.get("method") != "percentile":
        raise ExportError(f"The model's normalisation {norm!r} is not the percentile scaling this export can declare.")
    try:
        low, high = float(norm["low"]), float(norm["high"])
    except (KeyError, TypeError, ValueError):
        raise ExportError(f"The model's normalisation {norm!r} has no valid low/high percentiles.") from None
    if not (0.0 <= low < high <= 100.0 and high > 1.0):
        raise ExportError(f"The model's normalisation percentiles ({low}, {high}) cannot be declared for bioimage.io "
                          "(0 <= low < high <= 100, high > 1).")
    return low, high, bool(norm.get("clip", True))


def _standalone(callable_name: str, arch_kwargs: dict, state: dict):
    from . import _bioimageio_arch

    try:
        net = getattr(_bioimageio_arch, callable_name)(**arch_kwargs)
        net.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - any mismatch is a bug between the two definitions
        raise ExportError(f"The standalone {callable_name} in napari_organelle/_bioimageio_arch.py does not match the "
                          f"model ({exc}); this is a bug in napari-organelle, please report it.") from None
    return net.eval()


def _check_license(license: str) -> str:
    s = str(license or "").strip()
    if not s or not re.fullmatch(r"[A-Za-z0-9.+-]+", s):
        raise ExportError(f"{license!r} is not an SPDX license identifier (e.g. {DEFAULT_LICENSE}, MIT, CC-BY-4.0).")
    return s


def _package_name(name: str | None, loaded: LoadedModel) -> str:
    raw = str(name).strip() if name else f"napari-organelle {loaded.name}"
    s = re.sub(r"[^A-Za-z0-9_+\- ()]", "-", raw)
    s = re.sub(r"-{2,}", "-", re.sub(r"\s+", " ", s)).strip(" -")
    if len(s) < 5:
        s = f"napari-organelle {loaded.kind} {s}".strip()
    return s[:64].rstrip(" -")


# --------------------------------------------------------------------------------------------------
# Test tensors and the declared processing
# --------------------------------------------------------------------------------------------------
def _test_class(classes) -> str:
    from .classes import CLASSES, canonical_class

    for c in classes or []:
        try:
            cc = canonical_class(c)
        except Exception:  # noqa: BLE001 - user classes the simulator does not know
            cc = None
        if cc in CLASSES:
            return cc
    return CLASSES[0]


def _temperature_candidates(ckpt: dict) -> list[float]:
    """Temperatures the checkpoint records for calibrating its softmax, wherever a training run put one."""
    found = []
    places = [ckpt, ckpt.get("calibration"), ckpt.get("metrics"), ckpt.get("training"), ckpt.get("extra")]
    for d in places:
        if not isinstance(d, dict):
            continue
        for key in ("temperature", "softmax_temperature", "calibration_temperature"):
            v = d.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
                found.append(float(v))
        cal = d.get("calibration")
        if isinstance(cal, dict) and isinstance(cal.get("temperature"), (int, float)) and cal["temperature"] > 0:
            found.append(float(cal["temperature"]))
    return list(dict.fromkeys(found))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _classifier_test(loaded: LoadedModel, ckpt: dict, seed: int, notes: list[str]) -> dict:
    import torch

    from .inference import classify
    from .phantoms import simulate_cell
    from .preprocess import prepare_pair, resize_square

    size = loaded.input_size
    if not isinstance(size, int) or size < 8:
        raise ExportError(f"The classifier {loaded.name!r} records no input size; it cannot be described for bioimage.io.")
    in_ch = int((ckpt.get("arch_kwargs") or {}).get("in_channels", 2))
    if in_ch != 2:
        raise ExportError(f"The classifier takes {in_ch} channels; napari-organelle classifiers take 2 (protein, DNA).")
    cls = _test_class(loaded.classes)
    protein, dna = simulate_cell(cls, np.random.default_rng(seed))
    # Raw intensities at the model's input size (the square cell resampled as a whole), so that
    # normalising and resizing commute: classify() on this input is exactly percentile scaling,
    # clipping and the network, which is what the package declares.
    raw = np.stack([resize_square(protein.astype(np.float32), size), resize_square(dna.astype(np.float32), size)])
    raw = np.round(raw).astype(np.float32)[None]
    res = classify(raw[0, 0], raw[0, 1], loaded)
    probs = np.array([[res.probabilities[c] for c in loaded.classes]], np.float32)
    x = torch.from_numpy(prepare_pair(raw[0, 0], raw[0, 1], size=size))[None]
    with torch.no_grad():
        logits = loaded.model.to("cpu")(x).double().numpy()
    # Which softmax does classify() apply? Plain, or with a temperature the checkpoint records.
    temps = _temperature_candidates(ckpt)
    best = None
    for t in [1.0] + temps:
        err = float(np.max(np.abs(_softmax(logits / t) - probs)))
        if best is None or err < best[1]:
            best = (t, err)
    t, err = best
    if err > CHECK_TOLERANCE:
        raise ExportError(f"napari-organelle's classify() gives probabilities that are not a softmax of the network's "
                          f"logits (difference {err:.3g}); this export cannot declare them. Please report it.")
    for other in temps:
        if other != t:
            notes.append(f"The checkpoint records a temperature {other:g} that napari-organelle's classify() does not "
                         "apply; the package reproduces classify() and does not apply it either.")
    return {"input": raw, "output": probs, "reference": "classify()", "test_class": cls, "seed": seed,
            "gain": None if t == 1.0 else 1.0 / t, "temperature": None if t == 1.0 else t,
            "label": res.label, "confidence": res.confidence}


def _autoencoder_test(loaded: LoadedModel, seed: int) -> dict:
    import torch

    from .inference import reconstruct
    from .phantoms import simulate_cell
    from .preprocess import HIGH_PERCENTILE, LOW_PERCENTILE, normalize

    in_ch = int(getattr(loaded.model, "in_channels", 1))
    if in_ch != 1:
        raise ExportError(f"The autoencoder takes {in_ch} channels; napari-organelle autoencoders take one plane.")
    cls = _test_class(None)
    protein, _ = simulate_cell(cls, np.random.default_rng(seed), size=AE_TEST_SIDE)
    plane = protein.astype(np.float32)
    rec = reconstruct(plane, loaded)
    lo, hi = np.percentile(plane, [LOW_PERCENTILE, HIGH_PERCENTILE])
    ref01 = (rec.reconstruction.astype(np.float64) - lo) / (hi - lo)
    x = torch.from_numpy(normalize(plane))[None, None]
    with torch.no_grad():
        out = loaded.model.to("cpu")(x).float().numpy()
    err = float(np.max(np.abs(out[0, 0] - ref01)))
    if err > CHECK_TOLERANCE:
        raise ExportError(f"The autoencoder's output differs from napari-organelle's reconstruct() by {err:.3g}; "
                          "this export cannot describe it. Please report it.")
    return {"input": plane[None, None], "output": out.astype(np.float32), "reference": "reconstruct()",
            "test_class": cls, "seed": seed, "psnr": rec.psnr, "ssim": rec.ssim}


def _declared_preprocessing(x: np.ndarray, low: float, high: float, clip: bool) -> np.ndarray:
    """The package's declared preprocessing, as the bioimage.io spec defines it: scale_range per
    sample and channel over (y, x) with linearly interpolated percentiles, out = (x - lo) / (hi - lo +
    eps), then clip to [0, 1]; float32 out."""
    a = np.asarray(x, np.float64)
    lo = np.percentile(a, low, axis=(2, 3), keepdims=True)
    hi = np.percentile(a, high, axis=(2, 3), keepdims=True)
    y = (a - lo) / (hi - lo + SCALE_RANGE_EPS)
    if clip:
        y = np.clip(y, 0.0, 1.0)
    return y.astype(np.float32)


def _declared_postprocessing(y: np.ndarray, kind: str, gain: float | None) -> np.ndarray:
    if kind != "classifier":
        return y.astype(np.float32)
    z = np.asarray(y, np.float64) * (1.0 if gain is None else gain)
    return _softmax(z).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------
def _save_bytes(obj) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _torchscript_bytes(net) -> bytes:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
        scripted = torch.jit.script(net)
        buf = io.BytesIO()
        torch.jit.save(scripted, buf)
    return buf.getvalue()


def _load_torchscript(b: bytes):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(io.BytesIO(b), map_location="cpu").eval()


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _tif_bytes(a: np.ndarray) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.ascontiguousarray(a, np.float32))
    return buf.getvalue()


def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _write_zip(out: Path, files: dict[str, bytes]) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"Cannot create the folder {out.parent}: {exc.strerror or exc}.") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for n, b in files.items():
                    info = zipfile.ZipInfo(n, date_time=_dt.datetime.now().timetuple()[:6])
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16  # rw-r--r-- when unpacked
                    zf.writestr(info, b)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # an ordinary file, not mkstemp's private 0600
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _plane_rgb(x01: np.ndarray) -> np.ndarray:
    """(2, H, W) protein, DNA in [0, 1] -> RGB: protein green, DNA magenta."""
    p, d = x01[0], (x01[1] if len(x01) > 1 else np.zeros_like(x01[0]))
    return np.clip(np.stack([d, p, d], axis=-1), 0, 1)


def _cover_png(loaded: LoadedModel, test: dict, low: float, high: float, clip: bool) -> bytes:
    """A 2:1 cover: the test input as the network sees it, and the answer (probabilities, or the
    reconstruction)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x01 = _declared_preprocessing(test["input"], low, high, clip)[0]
    fig = Figure(figsize=(8, 4), dpi=80)
    FigureCanvasAgg(fig)
    ax1 = fig.add_axes((0.01, 0.04, 0.47, 0.84))
    ax2 = fig.add_axes((0.62, 0.14, 0.35, 0.74) if loaded.kind == "classifier" else (0.52, 0.04, 0.47, 0.84))
    if loaded.kind == "classifier":
        ax1.imshow(_plane_rgb(x01), interpolation="nearest")
        ax1.set_title("simulated cell: protein (green), DNA (magenta)", fontsize=9)
        p = test["output"][0]
        order = np.argsort(p)[::-1][:5]
        names = [loaded.classes[i] for i in order][::-1]
        ax2.barh(range(len(order)), p[order][::-1], color="#3a7")
        ax2.set_yticks(range(len(order)), names, fontsize=8)
        ax2.set_xlim(0, 1)
        ax2.set_xlabel("probability", fontsize=8)
        ax2.tick_params(axis="x", labelsize=7)
        ax2.set_title("classifier output", fontsize=9)
    else:
        ax1.imshow(x01[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax1.set_title("simulated cell (protein), normalised", fontsize=9)
        ax2.imshow(test["output"][0, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax2.set_title(f"reconstruction (PSNR {test['psnr']:.1f} dB)", fontsize=9)
        ax2.set_axis_off()
    ax1.set_axis_off()
    fig.suptitle(f"napari-organelle {loaded.kind}: {loaded.arch}", fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# Model card (README.md)
# --------------------------------------------------------------------------------------------------
def _fmt_metric(k: str, v) -> str:
    if isinstance(v, float) and ("acc" in k) and v <= 1.0:
        return f"{100 * v:.2f} %"
    if isinstance(v, float) and "psnr" in k:
        return f"{v:.2f} dB"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _metric_rows(m: dict, t: dict) -> list[tuple[str, str, str]]:
    """(figure, value, data it was measured on) for every scalar figure the checkpoint records (losses and
    counts are left out; a count goes with the data it counts)."""
    rows = []
    for k, v in m.items():
        if k.endswith("_data") or k == "measured_on" or "loss" in k or k.endswith("_n") or "_n_" in k:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        prefix = k.split("_")[0]
        src = str(m.get(f"{prefix}_data") or m.get("measured_on") or "not recorded")
        n = m.get(f"{prefix}_n", m.get(f"{prefix}_n_planes", t.get(f"n_{prefix}")))
        if isinstance(n, int) and not isinstance(n, bool) and f"{prefix}_data" not in m:
            src += f" ({n} {'planes' if f'{prefix}_n_planes' in m else 'images'})"
        rows.append((k, _fmt_metric(k, v), src))
    return rows


def _per_class_rows(m: dict) -> list[str]:
    """One line per per-class breakdown (a dict of class -> accuracy) the checkpoint records."""
    out = []
    for k, v in m.items():
        if isinstance(v, dict) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v.values()):
            parts = ", ".join(f"{c} {_fmt_metric('acc', float(x))}" for c, x in v.items())
            out.append(f"- `{k}`: {parts}")
    return out


def _md(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _training_text(t: dict) -> str:
    data = t.get("data")
    if not data:
        return ("The checkpoint does not record what data the model was trained on; ask whoever trained it "
                "before relying on it.")
    text = f"{data}"
    if "simulat" in str(data).lower():
        text += (". These are **simulated cells**, synthetic images drawn by napari-organelle's simulator "
                 "(`napari_organelle.phantoms`), not microscope images; how the model does on real micrographs is "
                 "not measured by any figure below unless a row says so.")
    return text


def _readme(loaded: LoadedModel, ckpt: dict, pkg_name: str, test: dict, diffs: dict, low: float, high: float,
            clip: bool, notes: list[str], zip_name: str) -> str:
    t, m = loaded.training_info, loaded.metrics
    kind = loaded.kind
    try:
        size = loaded.size
        size_text = (f"{size['parameters']:,} parameters; {size['flops_per_cell'] / 1e9:.2f} GFLOP for one "
                     f"{'x'.join(str(v) for v in size['input_shape'])} input")
    except Exception:  # noqa: BLE001 - the card must not fail for want of a FLOP count
        size_text = f"{sum(p.numel() for p in loaded.model.parameters()):,} parameters"
    S = loaded.input_size
    L = []
    L.append(f"# {pkg_name}\n")
    if kind == "classifier":
        L.append(f"Tells which of {len(loaded.classes)} organelle classes a fluorescent protein labels, from one cell's "
                 f"protein image and (optionally) its DNA (DAPI / Hoechst) image. Exported by napari-organelle "
                 f"{__version__} from the model `{loaded.name}`.\n")
    else:
        L.append("Reconstructs a fluorescence image one plane at a time through a small latent (no skip connections); "
                 "napari-organelle uses its reconstruction error as an out-of-distribution score (how unlike the "
                 f"training cells an image is). Exported by napari-organelle {__version__} from the model "
                 f"`{loaded.name}`.\n")
    L.append("## Model card\n")
    L.append(f"- **Kind / architecture**: {kind}, `{loaded.arch}` ({size_text}); settings "
             f"`{json.dumps(ckpt.get('arch_kwargs'))}`.")
    if kind == "classifier":
        L.append(f"- **Classes** (output order): {', '.join(loaded.classes)}.")
        L.append(f"- **Input** `cell`: float32 (batch, channel, y, x) = (B, 2, {S}, {S}); channel 0 the protein, "
                 "channel 1 the DNA stain (all zeros when there is none; napari-organelle's classifiers are trained "
                 "for both).")
        L.append("- **Output** `probabilities`: (B, classes), the softmax of the network's logits"
                 + (f" divided by the temperature {test['temperature']:g}" if test.get("temperature") else "") + ".")
    else:
        L.append("- **Input** `plane`: float32 (batch, channel, y, x) = (B, 1, H, W), any H and W of 8 pixels or "
                 "more; one plane (protein or DNA) of any size.")
        L.append("- **Output** `reconstruction`: (B, 1, H, W) in [0, 1], the reconstruction of the normalised plane.")
    L.append(f"- **Trained on**: {_training_text(t)}")
    counts = [f"{k.split('_')[1]} {t[k]}" for k in ("n_train", "n_val", "n_test") if t.get(k) is not None]
    if counts:
        L.append(f"- **Images**: {', '.join(counts)}" + (f" (split {json.dumps(t['split'])})" if t.get("split") else "") + ".")
    ep = t.get("epochs_run", t.get("epochs"))
    if ep is not None:
        L.append(f"- **Training**: {ep} epoch{'' if ep == 1 else 's'}" + (f", best epoch {t['best_epoch']}" if t.get("best_epoch") else "")
                 + (f", on {t['device']}" if t.get("device") else "") + (f", {t['date']}" if t.get("date") else "") + ".")
    if t.get("fine_tuned_from"):
        L.append(f"- **Fine-tuned from**: `{t['fine_tuned_from']}`.")
    if t.get("command"):
        L.append(f"- **Command**: `{t['command']}`")
    L.append("")
    rows = _metric_rows(m, t)
    L.append("### Figures recorded in the checkpoint\n")
    if rows:
        L.append("| figure | value | measured on |")
        L.append("|---|---|---|")
        for k, v, src in rows:
            L.append(f"| {_md(k)} | {_md(v)} | {_md(src)} |")
        L.append("")
        per_class = _per_class_rows(m)
        if per_class:
            L.append("Per class (same data as the figure of the same prefix):\n")
            L += per_class
            L.append("")
        L.append(("Accuracies are the fraction of images whose top class is the true one. " if kind == "classifier" else
                  "PSNR, MSE and SSIM are measured on [0, 1]-normalised planes; an OOD score is a plane's "
                  "reconstruction error over ood_reference_mse. ")
                 + "These figures come from the checkpoint as training wrote them; the export did not measure them "
                 "again.\n")
    else:
        L.append("The checkpoint records no figures: nothing is known about how well this model does.\n")
    L.append("### Limitations\n")
    if kind == "classifier":
        L.append("- The classifier always answers with one of its classes, also for a protein in a compartment it "
                 "does not know, a cell unlike its training cells, or a crop with several cells. napari-organelle "
                 "flags answers below 50 % confidence, or with a high autoencoder out-of-distribution score, as "
                 "uncertain.")
    else:
        L.append("- The reconstruction error is a warning sign (this image is unlike the training cells), not a "
                 "measurement of anything biological; images unlike the training cells are reconstructed poorly "
                 "by design.")
    L.append("- Figures measured on simulated cells say nothing definite about real micrographs.")
    L.append("")
    L.append("## Preparing an image (what a bioimage.io consumer must do)\n")
    norm = (f"Each plane is scaled to [0, 1] by its own percentiles {low:g} (to 0) and {high:g} (to 1)"
            + (" and clipped" if clip else "") + ": declared in rdf.yaml as `scale_range` (axes y, x; "
            f"min_percentile {low:g}, max_percentile {high:g}) followed by `clip` (0, 1), so consumers apply it.")
    L.append(f"- {norm}")
    if kind == "classifier":
        L.append(f"- napari-organelle then resizes the normalised cell so its longer side is {S} pixels (bilinear, "
                 "antialiased when shrinking, aspect ratio kept) and pads it with zeros to a centred square. The "
                 f"bioimage.io format cannot declare that step: give the package a {S}x{S} crop of one cell "
                 "(resize it yourself; a square crop resized as a whole, as in the test input, gives exactly what "
                 "napari-organelle computes).")
        L.append("- The softmax over the classes is declared post-processing (`softmax` over the channel axis); "
                 "the networks themselves return logits.")
    else:
        L.append("- napari-organelle reconstructs planes up to 2048 pixels a side whole (larger ones in 1024-pixel "
                 "tiles with context); it scales the reconstruction back to the input's intensities with the same "
                 "percentiles. The package returns the [0, 1] reconstruction.")
    L.append("")
    L.append("## Validation\n")
    if kind == "classifier":
        what = (f"one simulated `{test['test_class']}` cell (napari-organelle's simulator, seed {test['seed']}), "
                f"protein and DNA, resampled as a whole to {S}x{S} pixels, raw intensities")
    else:
        what = (f"the protein plane of one simulated `{test['test_class']}` cell (seed {test['seed']}), "
                f"{AE_TEST_SIDE}x{AE_TEST_SIDE} pixels, raw intensities")
    L.append(f"- **Test input** (`{TEST_INPUT_FILE}`): {what}.")
    L.append(f"- **Test output** (`{TEST_OUTPUT_FILE}`): what napari-organelle's own `{test['reference']}` returns "
             "for it" + (f" (top class `{test['label']}`, {100 * test['confidence']:.1f} %)" if kind == "classifier"
                         else f" (normalised to [0, 1]; PSNR {test['psnr']:.2f} dB, SSIM {test['ssim']:.4f})") + ".")
    L.append("- Before writing the package, both weight formats were run on the test input through the declared "
             "pre- and post-processing: largest difference from napari-organelle's output "
             + ", ".join(f"{k} {v:.2g}" for k, v in diffs.items())
             + f" (the export refuses anything above {CHECK_TOLERANCE:g}).")
    L.append(f"- rdf.yaml declares a reproducibility tolerance of {DECLARED_ABSOLUTE_TOLERANCE:g} absolute + "
             f"{DECLARED_RELATIVE_TOLERANCE:g} relative per output element (looser than the check above because "
             "GPUs convolve in reduced (TF32) precision by default).")
    L.append(f"- Check the package with bioimageio.core (`pip install bioimageio.core`): `bioimageio test {zip_name}` "
             "(it needs no network).")
    if kind == "classifier":
        L.append("- Validate the model on your own unseen, labelled cells (one folder per class) with napari-organelle: "
                 "`napari-organelle evaluate FOLDER --model THIS.zip` prints the accuracy per class and the confusion "
                 "matrix; held-out real micrographs are the only data that tell how it does on real cells.")
    else:
        L.append("- Validate it on your own images with `napari-organelle reconstruct IMAGE.tif --model THIS.zip "
                 "--out rec.tif`, which prints MSE, PSNR and SSIM.")
    for n in notes:
        L.append(f"- Note: {n}")
    L.append("")
    L.append("## Loading it back into napari-organelle\n")
    L.append(f"`{CHECKPOINT_FILE}` is the napari-organelle checkpoint itself (format {FORMAT}, version "
             f"{ckpt.get('format_version')}). napari-organelle loads the package as it loads a `.pt` file: "
             "`napari-organelle classify --model THIS.zip ...`, `load_model(\"THIS.zip\")`, or the docks' "
             "\"Load from file...\"; the unpacked folder works too.\n")
    L.append("## Files\n")
    for f, what in [("rdf.yaml", "the bioimage.io description"),
                    (TORCHSCRIPT_FILE, "TorchScript weights"),
                    (STATE_DICT_FILE, f"PyTorch state dict for the `{ARCH_CALLABLES[(kind, loaded.arch)]}` class of "
                                      f"`{ARCH_FILE}` (torch only)"),
                    (TEST_INPUT_FILE + ", " + TEST_OUTPUT_FILE, "test tensors"),
                    (COVER_FILE, "cover image"), (CHECKPOINT_FILE, "the napari-organelle checkpoint")]:
        L.append(f"- `{f}`: {what}")
    L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------------
# rdf.yaml
# --------------------------------------------------------------------------------------------------
def _file(name: str, files: dict[str, bytes]) -> dict:
    return {"source": name, "sha256": _sha256(files[name])}


def _torch_version() -> str:
    import torch

    return str(torch.__version__).split("+")[0]


def _is_bundled(src: Path | None) -> bool:
    from .checkpoints import BUNDLED_DIR

    try:
        return src is not None and Path(src).resolve().parent == BUNDLED_DIR.resolve()
    except OSError:
        return False


def _authors(authors, bundled: bool) -> list[dict]:
    if not authors:
        return [{"name": "napari-organelle developers" if bundled else "napari-organelle user"}]
    out = []
    for a in authors:
        if isinstance(a, dict):
            d = {k: str(v) for k, v in a.items() if v is not None}
        else:
            d = {"name": str(a)}
        if not d.get("name") or "/" in d["name"]:
            raise ExportError(f"Author {a!r} needs a name without '/'.")
        out.append(d)
    return out


def _description(loaded: LoadedModel, description: str | None) -> str:
    if description:
        return str(description).strip()[:512]
    data = loaded.training_info.get("data") or "data the checkpoint does not record"
    if loaded.kind == "classifier":
        s = (f"Which of {len(loaded.classes)} organelle classes a fluorescent protein labels, from a 2-channel (protein, "
             f"DNA) image of one cell ({loaded.input_size}x{loaded.input_size}). napari-organelle {loaded.arch} "
             f"classifier trained on {data}.")
    else:
        s = (f"Autoencoder reconstructing one fluorescence plane of any size (napari-organelle {loaded.arch}); "
             f"its reconstruction error flags images unlike its training data ({data}).")
    return s if len(s) <= 512 else s[:509] + "..."


def _training_details(t: dict, loaded: LoadedModel, low: float, high: float) -> dict:
    cfg = t.get("config") if isinstance(t.get("config"), dict) else {}
    if loaded.kind == "classifier":
        steps = (f"percentile normalisation per plane ({low:g} / {high:g}, clipped to [0, 1]), resize of the longer "
                 f"side to {loaded.input_size} px and zero padding to a square")
        if cfg.get("augment"):
            steps += ("; augmentation on the fly: flips, rotations, affine scale and shift, blur, gamma / contrast / "
                      "brightness jitter, noise")
        if isinstance(cfg.get("dna_dropout"), (int, float)) and cfg["dna_dropout"] > 0:
            steps += f"; DNA channel zeroed for a random {100 * cfg['dna_dropout']:.0f} % of the cells"
    else:
        steps = f"percentile normalisation per plane ({low:g} / {high:g}, clipped to [0, 1]); random crops"
        if isinstance(cfg.get("crop_size"), (int, float)):
            steps += f" of {int(cfg['crop_size'])} px"
        if cfg.get("augment"):
            steps += "; flips, 90-degree rotations, mild gamma"
    d: dict[str, Any] = {"training_preprocessing": steps}
    if isinstance(t.get("epochs_run", t.get("epochs")), (int, float)):
        d["training_epochs"] = float(t.get("epochs_run", t.get("epochs")))
    if isinstance(cfg.get("batch_size"), (int, float)):
        d["training_batch_size"] = float(cfg["batch_size"])
    if isinstance(cfg.get("lr"), (int, float)):
        d["initial_learning_rate"] = float(cfg["lr"])
    if isinstance(t.get("seconds"), (int, float)):
        d["training_duration"] = round(float(t["seconds"]) / 3600.0, 4)
    return d


def _rdf(loaded: LoadedModel, ckpt: dict, pkg_name: str, description, authors, license_id: str, test: dict,
         low: float, high: float, clip: bool, files: dict[str, bytes], callable_name: str, arch_kwargs: dict,
         bundled: bool) -> dict:
    kind = loaded.kind
    pre = [{"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": low, "max_percentile": high,
                                            "eps": SCALE_RANGE_EPS}}]
    if clip:
        pre.append({"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}})
    if kind == "classifier":
        S = int(loaded.input_size)
        inputs = [{
            "id": "cell",
            "description": "one cell, protein and DNA channels, raw intensities, resized to the model's input size",
            "axes": [{"type": "batch"},
                     {"type": "channel", "channel_names": ["protein", "dna"]},
                     {"type": "space", "id": "y", "size": S},
                     {"type": "space", "id": "x", "size": S}],
            "test_tensor": _file(TEST_INPUT_FILE, files),
            "sample_tensor": _file(SAMPLE_INPUT_FILE, files),
            "data": {"type": "float32"},
            "preprocessing": pre,
        }]
        post: list[dict] = []
        if test.get("gain") is not None:
            post.append({"id": "scale_linear", "kwargs": {"gain": float(test["gain"]), "offset": 0.0}})
        post.append({"id": "softmax", "kwargs": {"axis": "channel"}})
        outputs = [{
            "id": "probabilities",
            "description": "probability of each organelle class (softmax over the classes)",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": list(loaded.classes)}],
            "test_tensor": _file(TEST_OUTPUT_FILE, files),
            "sample_tensor": _file(SAMPLE_OUTPUT_FILE, files),
            "data": {"type": "float32", "range": [0.0, 1.0]},
            "postprocessing": post,
        }]
        tags = ["image-classification", "protein-localization", "subcellular-localization", "organelles"]
        task = "image classification: which organelle a fluorescent protein labels"
    else:
        from .preprocess import MIN_SIDE

        inputs = [{
            "id": "plane",
            "description": "one fluorescence plane (protein or DNA), raw intensities, any size",
            "axes": [{"type": "batch"},
                     {"type": "channel", "channel_names": ["fluorescence"]},
                     {"type": "space", "id": "y", "size": {"min": MIN_SIDE, "step": 1}},
                     {"type": "space", "id": "x", "size": {"min": MIN_SIDE, "step": 1}}],
            "test_tensor": _file(TEST_INPUT_FILE, files),
            "sample_tensor": _file(SAMPLE_INPUT_FILE, files),
            "data": {"type": "float32"},
            "preprocessing": pre,
        }]
        outputs = [{
            "id": "reconstruction",
            "description": "the reconstruction of the normalised plane, in [0, 1]",
            "axes": [{"type": "batch"},
                     {"type": "channel", "channel_names": ["fluorescence"]},
                     {"type": "space", "id": "y", "size": {"tensor_id": "plane", "axis_id": "y"}},
                     {"type": "space", "id": "x", "size": {"tensor_id": "plane", "axis_id": "x"}}],
            "test_tensor": _file(TEST_OUTPUT_FILE, files),
            "sample_tensor": _file(SAMPLE_OUTPUT_FILE, files),
            "data": {"type": "float32", "range": [0.0, 1.0]},
        }]
        tags = ["image-reconstruction", "autoencoder", "out-of-distribution-detection"]
        task = "image reconstruction (autoencoder; its error is an out-of-distribution score)"
    t = loaded.training_info
    simulated = "simulat" in str(t.get("data") or "").lower()
    tags = ["napari-organelle", "fluorescence-light-microscopy", "2d", "cells", "pytorch"] + tags
    if loaded.arch == "resnet18":
        tags.append("resnet")
    if simulated:
        tags.append("simulated-data")
    n_params = int(sum(p.numel() for p in loaded.model.parameters()))
    cfg_ours = {
        "format": FORMAT,
        "format_version": ckpt.get("format_version"),
        "checkpoint": CHECKPOINT_FILE,
        "kind": kind,
        "arch": loaded.arch,
        "input_size": loaded.input_size,
        "classes": list(loaded.classes) if loaded.classes else None,
        "normalization": {"method": "percentile", "low": low, "high": high, "clip": clip},
        "exported_by": f"napari-organelle {__version__}",
        "exported_from": loaded.name,
        "test_input": {"simulated_class": test["test_class"], "seed": test["seed"]},
    }
    known_biases = ("Trained on simulated cells (napari-organelle's simulator), not on microscope images: the cells' "
                    "shapes, textures and noise are what the simulator draws." if simulated else
                    f"Trained on: {t.get('data') or 'data not recorded in the checkpoint'}.")
    rdf = {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": pkg_name,
        "description": _description(loaded, description),
        "authors": _authors(authors, bundled),
        "cite": [dict(_CITE)],
        "license": license_id,
        "tags": tags,
        "documentation": _file(README_FILE, files),
        "covers": [_file(COVER_FILE, files)],
        "attachments": [_file(CHECKPOINT_FILE, files)],
        "timestamp": _dt.datetime.now().astimezone().replace(microsecond=0).isoformat(),
        "inputs": inputs,
        "outputs": outputs,
        "weights": {
            "pytorch_state_dict": {
                **_file(STATE_DICT_FILE, files),
                "architecture": {**_file(ARCH_FILE, files), "callable": callable_name, "kwargs": arch_kwargs},
                "pytorch_version": _torch_version(),
            },
            "torchscript": {
                **_file(TORCHSCRIPT_FILE, files),
                "pytorch_version": _torch_version(),
                "parent": "pytorch_state_dict",
            },
        },
        "config": {
            "bioimageio": {
                "reproducibility_tolerance": [{
                    "relative_tolerance": DECLARED_RELATIVE_TOLERANCE,
                    "absolute_tolerance": DECLARED_ABSOLUTE_TOLERANCE,
                    "mismatched_elements_per_million": 0,
                }],
                "architecture_type": "CNN classifier" if kind == "classifier" else "convolutional autoencoder",
                "modality": "2D fluorescence microscopy (widefield or confocal) of single cultured cells",
                "target_structure": list(loaded.classes) if loaded.classes else ["cells"],
                "task": task,
                "model_parameter_count": n_params,
                "training": _training_details(t, loaded, low, high),
                "bias_risks_limitations": {
                    "known_biases": known_biases,
                    "limitations": ("The classifier answers with one of its classes for any input, including proteins "
                                    "in compartments it does not know; crops must show one cell resized to the input "
                                    "size." if kind == "classifier" else
                                    "Reconstructions of images unlike the training cells are poor by design."),
                },
                "out_of_scope_use": "Diagnosis or any clinical use; images other than single fluorescent cells.",
            },
            PACKAGE_CONFIG_KEY: cfg_ours,
        },
    }
    return rdf


# --------------------------------------------------------------------------------------------------
# A small YAML writer (block style, double-quoted strings): no YAML library is needed to export
# --------------------------------------------------------------------------------------------------
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_ESCAPE_MORE = {c: f"\\u{ord(c):04x}" for c in ["\u2028", "\u2029", "\ufeff"] + [chr(i) for i in range(0x7f, 0xa0)]}


def _scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        if math.isnan(v):
            return ".nan"
        if math.isinf(v):
            return ".inf" if v > 0 else "-.inf"
        r = repr(float(v))
        if "e" in r and "." not in r.split("e")[0]:  # 1e-06 -> 1.0e-06: a float in YAML 1.1 too
            m, e = r.split("e")
            r = f"{m}.0e{e}"
        return r
    s = json.dumps(str(v), ensure_ascii=False)
    return "".join(_ESCAPE_MORE.get(c, c) for c in s)


def _key(k) -> str:
    k = str(k)
    return k if _PLAIN_KEY.match(k) and k.lower() not in ("null", "true", "false", "yes", "no", "on", "off", "y", "n") \
        else _scalar(k)


def _yaml_lines(obj, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{_key(k)}:")
                lines += _yaml_lines(v, indent + 2)
            elif isinstance(v, (list, tuple)) and v:
                lines.append(f"{pad}{_key(k)}:")
                lines += _yaml_lines(list(v), indent + 2)
            elif isinstance(v, dict):
                lines.append(f"{pad}{_key(k)}: {{}}")
            elif isinstance(v, (list, tuple)):
                lines.append(f"{pad}{_key(k)}: []")
            else:
                lines.append(f"{pad}{_key(k)}: {_scalar(v)}")
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list, tuple)) and v:
                sub = _yaml_lines(list(v) if isinstance(v, tuple) else v, indent + 2)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines += sub[1:]
            elif isinstance(v, dict):
                lines.append(f"{pad}- {{}}")
            elif isinstance(v, (list, tuple)):
                lines.append(f"{pad}- []")
            else:
                lines.append(f"{pad}- {_scalar(v)}")
    else:
        lines.append(f"{pad}{_scalar(obj)}")
    return lines


def to_yaml(obj) -> str:
    """``obj`` (dicts, lists, str, int, float, bool, None) as YAML 1.2 (also valid YAML 1.1)."""
    return "\n".join(_yaml_lines(obj, 0)) + "\n"
