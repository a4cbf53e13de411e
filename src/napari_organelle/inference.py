"""Inference: classify cells, reconstruct images, class-activation maps, out-of-distribution scores.

Plain numpy in, plain numpy / dataclasses out; no Qt. The widgets, the CLI and scripts all call
these functions.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np

if TYPE_CHECKING:
    import weakref

from .classes import NOT_CLASSIFIED
from .preprocess import (
    InputError,
    MAX_NATIVE_SIDE,
    _offset_float64,
    as_plane,
    block_reduce_to,
    channel_last_count,
    check_dtype,
    float32_faithful,
    fits_batched,
    normalize,
    prepare_batch,
    prepare_pair,
    stack_for_batch,
    validate_pair,
)

#: A cell is flagged "uncertain" below this top-class probability (calibrated, where the model has
#: a temperature) ...
CONFIDENCE_THRESHOLD = 0.5
#: ... or when its features are further from every class than 99 % of held-out training-like cells
#: (``novelty`` above this, see :mod:`napari_organelle.calibration`) ...
NOVELTY_THRESHOLD = 1.0
#: ... or when the image has no spatial structure, like noise: the share of its variance left
#: after a 3x3 box blur of the prepared input (iid noise keeps ~11 %, a micrograph most of it) ...
STRUCTURE_THRESHOLD = 0.3
#: ... or when its autoencoder reconstruction error is this many times the error measured on the
#: autoencoder's own validation cells (see :func:`ood_score`; only when an autoencoder is given).
OOD_THRESHOLD = 3.0
#: Reconstruction runs on tiles of this side (plus context) for planes larger than MAX_NATIVE_SIDE.
_TILE = 1024
_TILE_CONTEXT = 32


@dataclass
class Classification:
    """The classifier's answer for one image (or plane, or cell)."""

    label: str
    confidence: float
    probabilities: dict[str, float]
    classes: list[str]
    has_dna: bool
    ood_score: float | None = None
    uncertain: bool = False
    model_name: str = ""
    note: str = ""
    #: Distance of the cell's features from the training cells (1 = the edge of 99 % of held-out
    #: training-like cells; None when the model carries no feature statistics).
    novelty: float | None = None
    #: Why a classified result is flagged uncertain (empty when it is not).
    why_uncertain: str = ""
    #: set by :func:`classify` when the image seems to hold several cells (see :func:`several_cells_warning`)
    warning: str = ""

    @property
    def classified(self) -> bool:
        return self.label != NOT_CLASSIFIED

    @classmethod
    def not_classified(cls, reason: str, classes, has_dna: bool, model_name: str = "") -> "Classification":
        """The result for an image the model could not be given (e.g. a blank plane of a stack): label
        'not classified', NaN confidence and probabilities, and the reason in ``note``."""
        nan = float("nan")
        return cls(label=NOT_CLASSIFIED, confidence=nan, probabilities={c: nan for c in classes},
                   classes=list(classes), has_dna=has_dna, ood_score=None, uncertain=True,
                   model_name=model_name, note=reason)

    def as_row(self) -> dict:
        """A flat dict: label, confidence, one ``p_<class>`` column per class, novelty, ood_score,
        uncertain, why_uncertain, note (why an image was not classified; empty otherwise), warning (e.g.
        the image holds several cells; empty otherwise)."""
        row: dict = {"label": self.label, "confidence": round(self.confidence, 6)}
        for c in self.classes:
            row[f"p_{c}"] = round(self.probabilities[c], 6)
        row["has_dna"] = self.has_dna
        row["novelty"] = None if self.novelty is None else round(self.novelty, 4)
        row["ood_score"] = None if self.ood_score is None else round(self.ood_score, 4)
        row["uncertain"] = self.uncertain
        row["why_uncertain"] = self.why_uncertain
        row["note"] = self.note
        row["warning"] = self.warning
        return row


@dataclass
class Reconstruction:
    """An autoencoder reconstruction in the input's shape and intensity range, with its quality."""

    reconstruction: np.ndarray
    residual: np.ndarray
    mse: float
    psnr: float
    ssim: float
    downscale: float = 1.0
    per_plane: list[dict] = field(default_factory=list)

    def metrics(self) -> dict:
        return {"mse": self.mse, "psnr": self.psnr, "ssim": self.ssim}


# --------------------------------------------------------------------------------------------
# models


def load_model(name_or_path=None, kind: str | None = "classifier"):
    """Load a model by store name (``napari-organelle models`` lists them), by path, or the bundled one
    (None). ``kind=None``: whatever kind the named model is (None: the bundled classifier)."""
    from .checkpoints import resolve_model

    return resolve_model(name_or_path, kind=kind)


_ON_DEVICE: dict = {}  # (id of the CPU network, device) -> (source LoadedModel, copy on the device)
_ON_DEVICE_LOCK = threading.Lock()  # two docks' workers may ask at the same time


def release_device_copies() -> int:
    """Drop the cached device copies made by :func:`model_on` (frees their GPU memory once nothing
    else holds them). Returns how many were dropped."""
    with _ON_DEVICE_LOCK:
        n = len(_ON_DEVICE)
        _ON_DEVICE.clear()
    if n:
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # pragma: no cover
            pass
    return n


def model_on(model, device="auto", kind: str | None = None):
    """The LoadedModel ``model`` with its network on ``device`` ("auto" | "cpu" | "cuda[:N]" | "mps").

    On the CPU this is ``model`` itself. Elsewhere it is a copy (made once per model and device, then
    reused), so the original stays on the CPU for whoever else uses it: another dock, a fine-tune
    starting from it. InputError when the device does not exist here.

    ``model`` may also be a model name or a path (as :func:`load_model` takes them), or None (the
    bundled model); ``kind`` then defaults to the kind of the named model (None: "classifier").
    """
    import copy
    import dataclasses

    from .checkpoints import LoadedModel
    from .training import resolve_device

    if kind is not None:
        model = _as_loaded(model, kind)
    elif not isinstance(model, LoadedModel):
        model = load_model(model, kind=None)
    dev = resolve_device(device)
    if _device_of(model.model) == dev or dev.type == "cpu" and _device_of(model.model).type == "cpu":
        return model
    key = (id(model.model), str(dev))
    with _ON_DEVICE_LOCK:  # one copy per model and device, even when two workers ask at once
        hit = _ON_DEVICE.get(key)
        if hit is not None and hit[0] is model:
            return hit[1]
        moved = dataclasses.replace(model, model=copy.deepcopy(model.model).to(dev).eval())
        while len(_ON_DEVICE) >= 4:  # a handful of models at most; the oldest copies go
            _ON_DEVICE.pop(next(iter(_ON_DEVICE)), None)
        _ON_DEVICE[key] = (model, moved)
    return moved


def _input_size(clf) -> int:
    """The classifier's input size (checked when its checkpoint was loaded); 128 if not recorded."""
    return int(clf.input_size) if clf.input_size else 128


def _as_loaded(model, kind: str):
    from .checkpoints import LoadedModel

    if isinstance(model, LoadedModel):
        if model.kind != kind:
            raise InputError(
                f"The model {model.name!r} is a {model.kind}; a {kind} is needed here. "
                f"Pick a {kind} (napari-organelle models lists them)."
            )
        return model
    return load_model(model, kind=kind)


def _device_of(module):
    import torch

    try:
        return next(module.parameters()).device
    except StopIteration:  # pragma: no cover
        return torch.device("cpu")


# --------------------------------------------------------------------------------------------
# classification


def _stop_requested(should_stop) -> bool:
    if should_stop is None:
        return False
    if hasattr(should_stop, "is_set"):
        return bool(should_stop.is_set())
    return bool(should_stop())


#: The note of an image whose model output is not a number.
BROKEN_OUTPUT_NOTE = ("the model's output for this image is not a number (NaN or infinite): the model is "
                      "broken (NaN weights, negative batch-norm variances, or values out of range); no "
                      "answer is given. Choose another model, or retrain this one.")


def _make_result(probs: np.ndarray, classes: list[str], has_dna: bool, name: str,
                 ood: float | None, novelty: float | None = None,
                 structure: float | None = None) -> Classification:
    if not np.isfinite(probs).all():  # never a label with "nan %": no answer, and why
        return Classification.not_classified(BROKEN_OUTPUT_NOTE, classes, has_dna, name)
    k = int(np.argmax(probs))
    conf = float(probs[k])
    why = []
    if structure is not None and structure < STRUCTURE_THRESHOLD:
        why.append("the image has no cell-like structure (it looks like noise)")
    if novelty is not None and not novelty <= NOVELTY_THRESHOLD:
        why.append(f"unlike the cells the model was trained on (novelty {novelty:.1f})")
    if ood is not None and not ood <= OOD_THRESHOLD:
        why.append(f"the autoencoder does not recognise it (OOD score {ood:.1f})")
    if not conf >= CONFIDENCE_THRESHOLD:
        why.append(f"low confidence ({100 * conf:.0f} %)" if np.isfinite(conf) else "no confidence")
    return Classification(
        label=classes[k],
        confidence=conf,
        probabilities={c: float(p) for c, p in zip(classes, probs)},
        classes=list(classes),
        has_dna=has_dna,
        ood_score=ood,
        uncertain=bool(why),
        model_name=name,
        novelty=novelty,
        why_uncertain="; ".join(why),
    )


def _calibration(clf) -> tuple[float, dict | None]:
    """(temperature, feature statistics or None) stored with a classifier (calibration.py)."""
    extra = (clf.meta or {}).get("extra") or {}
    cal = extra.get("calibration") or {}
    t = cal.get("temperature", 1.0)
    t = float(t) if isinstance(t, (int, float)) and math.isfinite(t) and 0.01 <= t <= 100 else 1.0
    fo = extra.get("feature_ood")
    ok = (isinstance(fo, dict) and isinstance(fo.get("means"), _tensor_type())
          and isinstance(fo.get("precision"), _tensor_type()) and isinstance(fo.get("threshold"), (int, float))
          and fo["threshold"] > 0 and fo["means"].ndim == 2 and fo["precision"].ndim == 2
          and fo["means"].shape[0] == len(clf.classes or []) and fo["precision"].shape[0] == fo["means"].shape[1]
          and fo["precision"].shape[1] == fo["means"].shape[1])
    return t, (fo if ok else None)


def _tensor_type():
    import torch

    return torch.Tensor


class _FastNet:
    """A classifier's network as the CPU runs it fastest, with the same outputs (to float rounding):
    batch norms folded into the convolutions before them, weights and inputs channels-last (oneDNN's
    preferred layout, ~1.4x). Rebuilt when the network's weights change (their version counters)."""

    __slots__ = ("net", "stamp")

    def __init__(self, net, stamp):
        self.net, self.stamp = net, stamp


_FAST: weakref.WeakKeyDictionary = None  # type: ignore[assignment]  # network -> _FastNet
_FAST_LOCK = threading.Lock()


def _stamp(net) -> tuple:
    return tuple((id(t), t._version) for t in (*net.parameters(), *net.buffers()))


def _fold_batchnorms(net):
    """A copy of ``net`` (eval mode) with each BatchNorm2d that directly follows a Conv2d folded into
    it: consecutive (Conv2d, BatchNorm2d) in a Sequential, and convN / bnN attribute pairs (the
    basic blocks of organelle-cnn and torchvision's ResNet)."""
    import copy

    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = copy.deepcopy(net)
    for mod in list(net.modules()):
        if isinstance(mod, nn.Sequential):
            kids = list(mod._modules.items())
            for (ka, a), (kb, b) in zip(kids, kids[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d) and b.track_running_stats:
                    mod._modules[ka] = fuse_conv_bn_eval(a, b)
                    mod._modules[kb] = nn.Identity()
            continue
        for name, conv in list(mod._modules.items()):
            if not (name.startswith("conv") and isinstance(conv, nn.Conv2d)):
                continue
            bn_name = "bn" + name[4:]
            bn = mod._modules.get(bn_name)
            if isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                mod._modules[name] = fuse_conv_bn_eval(conv, bn)
                mod._modules[bn_name] = nn.Identity()
    return net


def _build_fast(net, size: int):
    """The folded, channels-last copy of ``net``, or None when it does not reproduce ``net`` (an
    architecture whose batch norms are not where the folding assumes)."""
    import torch

    try:
        fast = _fold_batchnorms(net).to(memory_format=torch.channels_last).eval()
        g = torch.Generator().manual_seed(0)
        x = torch.rand((2, 2, size, size), generator=g)
        with torch.inference_mode():
            want = net(x)
            got = fast(x.contiguous(memory_format=torch.channels_last))
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-4 * (1.0 + float(want.abs().max()))):
            return None
        return fast
    except Exception:  # noqa: BLE001 - any surprise: the network runs as it is
        return None


class _Bfloat16Features:
    """``features`` in bfloat16 (autocast) but for the first layers (``stem``), which see the image
    itself and stay float32: rounding the pixels to bfloat16's 8 bits is most of the error (on 300
    simulated cells, probabilities move by up to 0.012 with all layers in bfloat16, 0.008 with the
    stem in float32). ``head`` in float32."""

    def __init__(self, net):
        self.net = net
        self.head = net.head

    def features(self, x):
        import torch

        net = self.net
        if hasattr(net, "stem") and hasattr(net, "stages"):
            h = net.stem(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                f = net.stages(h)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                f = net.features(x)
        return f.float()


def _inference_net(clf, x, bfloat16: bool = False):
    """(network, input) to run a prepared batch through: on the CPU, in eval mode, the folded
    channels-last copy (:class:`_FastNet`, made once per model and weights) and the batch in
    channels-last (``bfloat16``: with most of its layers in bfloat16, :class:`_Bfloat16Features`);
    elsewhere the model's own network and the batch as given."""
    import weakref

    import torch

    global _FAST
    net = clf.model
    if x.device.type != "cpu" or net.training or x.dim() != 4:
        return net, x
    stamp = _stamp(net)
    with _FAST_LOCK:
        if _FAST is None:
            _FAST = weakref.WeakKeyDictionary()
        hit = _FAST.get(net)
    if hit is None or hit.stamp != stamp:
        hit = _FastNet(_build_fast(net, _input_size(clf)), stamp)
        with _FAST_LOCK:
            _FAST[net] = hit
    fast = hit.net if hit.net is not None else net
    if bfloat16 and hasattr(fast, "features") and hasattr(fast, "head"):
        fast = _Bfloat16Features(fast)
    if hit.net is None and fast is net:
        return net, x
    return fast, x.contiguous(memory_format=torch.channels_last)


def _scores(clf, x, bfloat16: bool = False):
    """Calibrated probabilities (N, K), novelty (N,) or None, and structure (N,) of a prepared batch
    (``bfloat16``: the network mostly in bfloat16 on the CPU, see :func:`_inference_net`)."""
    import torch
    import torch.nn.functional as F

    from .calibration import mahalanobis_min

    t, fo = _calibration(clf)
    # structure is measured on the batch as given (planes contiguous): on the channels-last copy
    # the network takes, the protein plane is strided and the blur 5 x slower
    p = torch.as_tensor(x)[:, :1].float().contiguous()
    net, x = _inference_net(clf, x, bfloat16)
    if hasattr(net, "features") and hasattr(net, "head"):
        f = torch.flatten(F.adaptive_avg_pool2d(net.features(x), 1), 1)
        logits = net.head(f)
    else:  # pragma: no cover - every registered classifier has features/head
        f, logits = None, net(x)
    probs = torch.softmax(logits.float() / t, dim=1).cpu().numpy()
    novelty = None
    if fo is not None and f is not None and f.shape[1] == fo["means"].shape[1]:
        d = mahalanobis_min(f.float().cpu(), fo["means"], fo["precision"])
        novelty = (d / float(fo["threshold"])).numpy()
    # structure: variance left after a 3x3 box blur of the protein channel
    blurred = F.avg_pool2d(p, 3, stride=1, padding=1, count_include_pad=False)
    v_raw = p.flatten(1).var(1)
    structure = (blurred.flatten(1).var(1) / v_raw.clamp_min(1e-12)).cpu().numpy()
    return probs, novelty, structure


@dataclass(frozen=True)
class PreparedCell:
    """A cell prepared for a classifier whose input is ``x.shape[-1]`` pixels: ``x`` is what
    :func:`~napari_organelle.preprocess.prepare_pair` gives (float32 (2, S, S) in [0, 1]).
    Made by :func:`prepare_cell`, e.g. in file-reading threads (the CLI), and taken by
    :func:`iter_classify` in place of a (protein, dna) pair. ``planes`` keeps the raw (protein,
    dna) planes when an autoencoder's score will be wanted (else None)."""

    x: np.ndarray
    has_dna: bool
    planes: tuple | None = None


def prepare_cell(protein, dna=None, *, size: int, keep_planes: bool = False) -> PreparedCell:
    """Check and prepare one cell (:func:`~napari_organelle.preprocess.validate_pair`, then
    :func:`~napari_organelle.preprocess.prepare_pair` at ``size``) on one torch thread: cheap to run
    in many threads at once. InputError when the cell cannot be classified."""
    from ._threads import torch_threads

    p, d = validate_pair(protein, dna)
    with torch_threads(1):
        x = prepare_pair(p, d, size=int(size), check_signal=False)
    return PreparedCell(x, d is not None, (p, d) if keep_planes else None)


def iter_classify(pairs: Iterable, model=None, *, batch_size: int = 64, autoencoder=None,
                  should_stop=None, skip_unusable: bool = False,
                  preprocess: str = "auto", threads: int | None = None,
                  precision: str = "float32") -> Iterator[Classification]:
    """Classify (protein, dna-or-None) pairs lazily, ``batch_size`` at a time, in order.

    Memory stays bounded by one batch whatever the number of images (the CLI streams 10,000s of
    files through this). Stops early, yielding nothing more, when ``should_stop`` is set.

    ``skip_unusable``: an image the model cannot be given (constant, too small, mismatched DNA)
    yields a :meth:`Classification.not_classified` result saying why, instead of raising InputError
    and ending the whole run (one blank plane must not cost the other planes of a stack).

    ``preprocess``: "host" prepares each image with :func:`~napari_organelle.preprocess.prepare_pair`
    on the CPU; "device" copies the raw pixels of same-shape images to the model's device and
    prepares them there as a batch (:func:`~napari_organelle.preprocess.prepare_batch`, the same
    result; images it cannot take exactly fall back to the host); "auto" (default) is "device" when
    the model is on a CUDA GPU and "host" otherwise (CPU, and Apple MPS, where torch lacks some of the
    operations prepare_batch needs in many versions).

    Items may also be :class:`PreparedCell` (made by :func:`prepare_cell` at the model's input size,
    e.g. in file-reading threads): they go to the model as they are.

    On the CPU the network runs with its batch norms folded into its convolutions, channels-last
    (the same outputs to float rounding, ~1.5x faster), on as many torch threads as the machine has
    cores free for it, decided batch by batch (:mod:`napari_organelle._threads`: one thread for a
    batch of a few cells; never more threads than cores that other processes leave idle, where
    threads waiting for each other would crawl); ``threads`` fixes the number instead. Images are
    prepared on one thread each.

    ``precision``: "float32" (default), or "bfloat16": the network but its first layers in bfloat16
    (autocast) on CPUs that compute it natively (Intel AMX / AVX512-BF16; elsewhere, and on GPUs, it
    stays float32): about 1.7x faster; on simulated cells the same labels, probabilities within
    0.01 (see docs/benchmarks.md), but not the same numbers: opt-in.
    """
    import torch

    from ._threads import threads_for, torch_threads

    if preprocess not in ("auto", "host", "device"):
        raise InputError(f"preprocess must be 'auto', 'host' or 'device', not {preprocess!r}.")
    if int(batch_size) < 1:
        raise InputError(f"The batch size must be at least 1 (got {batch_size}).")
    if precision not in ("float32", "bfloat16"):
        raise InputError(f"precision must be 'float32' or 'bfloat16', not {precision!r}.")
    if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
        raise InputError(f"threads must be a whole number >= 1 or None (automatic), not {threads!r}.")
    clf = _as_loaded(model, "classifier")
    ae = _as_loaded(autoencoder, "autoencoder") if autoencoder is not None else None
    size = _input_size(clf)
    dev = _device_of(clf.model)
    on_cpu = dev.type == "cpu"
    on_device = preprocess == "device" or (preprocess == "auto" and dev.type == "cuda")
    bf16 = False
    if precision == "bfloat16" and on_cpu:
        from .training import cpu_bf16_fast

        bf16 = cpu_bf16_fast()
    # One entry per input, in order: a not-classified result, a prepared (2, S, S) array, or the raw
    # (protein, dna) planes of a cell that will be prepared on the device with its batch. Only
    # planes small enough for prepare_batch are kept raw, so a batch's memory stays bounded.
    entries: list = []
    oods: list[float | None] = []
    has_dna: list[bool] = []

    def cpu_threads(n_cells: int | None):
        if not on_cpu:
            return contextlib.nullcontext()
        return torch_threads(int(threads) if threads is not None else threads_for(n_cells))

    def prepared(items: list) -> torch.Tensor:
        x = torch.empty((len(items), 2, size, size), dtype=torch.float32, device=dev)
        groups: dict[tuple, list[int]] = {}
        ready: list[int] = []
        for i, e in enumerate(items):
            if isinstance(e, np.ndarray):
                ready.append(i)
            else:
                groups.setdefault(e[0].shape, []).append(i)
        if ready:
            if len(ready) == len(items) and on_cpu:
                x = torch.from_numpy(np.stack(items))
            else:
                x[ready] = torch.from_numpy(np.stack([items[i] for i in ready])).to(dev)
        for idx in groups.values():
            x[idx] = prepare_batch(stack_for_batch([items[i] for i in idx]), size=size, device=dev)
        return x

    def prepare_host():
        """Prepare the batch's cells that wait for it (_HostCell), on the cores free for it."""
        idx = [k for k, e in enumerate(entries) if isinstance(e, _HostCell)]
        if not idx:
            return
        done = _prepare_many([entries[k] for k in idx], size, threads if threads is not None else
                             (threads_for(len(idx)) if on_cpu else 1))
        for k, got in zip(idx, done):
            if isinstance(got, BaseException):
                if not skip_unusable or not isinstance(got, Exception):
                    raise got
                entries[k] = Classification.not_classified(_unusable_note(got), clf.classes, has_dna[k], clf.name)
            else:
                entries[k] = got

    def flush():
        prepare_host()
        todo = [k for k, e in enumerate(entries) if not isinstance(e, Classification)]
        out: list = list(entries)
        if todo:
            x = prepared([entries[k] for k in todo])
            with cpu_threads(len(todo)), torch.inference_mode():
                probs, novelty, structure = _scores(clf, x, bf16)
            for j, (k, pr) in enumerate(zip(todo, probs)):
                out[k] = _make_result(pr, clf.classes, has_dna[k], clf.name, oods[k],
                                      None if novelty is None else float(novelty[j]), float(structure[j]))
        entries.clear()
        oods.clear()
        has_dna.clear()
        return out

    for item in pairs:
        if _stop_requested(should_stop):
            return
        cell = item if isinstance(item, PreparedCell) else None
        if cell is None:
            protein, dna = item
            dna_given = dna is not None
        else:
            dna_given = bool(cell.has_dna)
        try:
            if cell is not None:
                if cell.x.shape != (2, size, size):
                    raise InputError(f"this cell was prepared for a {cell.x.shape[-1]}-pixel model input; the model "
                                     f"{clf.name!r} takes {size} pixels. Prepare it with prepare_cell(..., size={size}).")
                entry, p = cell.x, None
                if ae is not None:
                    if cell.planes is None:
                        raise InputError("an autoencoder score needs the cell's planes: prepare it with "
                                         "prepare_cell(..., keep_planes=True).")
                    p = cell.planes[0]
            else:
                p, d = validate_pair(protein, dna)
                if on_device and fits_batched(p, size) and (d is None or fits_batched(d, size)):
                    entry = (p, d)
                else:  # prepared with the batch (prepare_host), several at a time when cores are free
                    entry = _HostCell(p, d)
            ood = None
            if ae is not None:
                with cpu_threads(None):  # one large plane through the autoencoder: large work
                    ood = ood_score(p, autoencoder=ae)
        except Exception as exc:  # noqa: BLE001 - one unusable image is a 'not classified' row
            if not skip_unusable:
                raise
            entries.append(Classification.not_classified(_unusable_note(exc), clf.classes, dna_given, clf.name))
            oods.append(None)
        else:
            entries.append(entry)
            oods.append(ood)
        has_dna.append(dna_given)
        if len(entries) >= batch_size:
            yield from flush()
    if entries:
        yield from flush()


class _HostCell:
    """A checked (protein, dna) pair that iter_classify prepares on the host with its batch."""

    __slots__ = ("p", "d")

    def __init__(self, p, d):
        self.p, self.d = p, d


def _unusable_note(exc: BaseException) -> str:
    if isinstance(exc, InputError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "not enough memory to prepare this image"
    return f"this image could not be prepared for the model ({type(exc).__name__}: {exc})"


_PREP_POOL = None
_PREP_POOL_LOCK = threading.Lock()


def _prepare_many(cells: list, size: int, n_threads: int) -> list:
    """prepare_pair of each _HostCell (an array, or the exception it raised), in order, on up to
    ``n_threads`` threads (the caller's and a shared pool's: numpy and torch release the GIL for
    most of the work). Each cell is prepared on one torch thread (see napari_organelle._threads)."""
    def one(c):
        try:
            return prepare_pair(c.p, c.d, size=size, check_signal=False)
        except BaseException as exc:  # noqa: BLE001 - handed back, raised or reported by the caller
            return exc

    n = max(1, min(int(n_threads), len(cells)))
    if n == 1:
        return [one(c) for c in cells]
    global _PREP_POOL
    with _PREP_POOL_LOCK:
        if _PREP_POOL is None:
            import concurrent.futures as cf

            from ._threads import cores

            _PREP_POOL = cf.ThreadPoolExecutor(max_workers=max(1, cores() - 1), thread_name_prefix="organelle-prep")
        pool = _PREP_POOL
    chunks = [cells[i::n] for i in range(n)]  # interleaved: cells of similar size spread evenly
    futures = [pool.submit(lambda ch=ch: [one(c) for c in ch]) for ch in chunks[1:]]
    parts = [[one(c) for c in chunks[0]]] + [f.result() for f in futures]
    out: list = [None] * len(cells)
    for i, part in enumerate(parts):
        out[i::n] = part
    return out


def classify(protein, dna=None, model=None, *, channel: int | None = None,
             dna_channel: int | None = None, autoencoder=None, check_cells: bool = True) -> Classification:
    """Which organelle does this protein label?

    ``protein``: a 2D image (or channel-first with ``channel``, or RGB); ``dna``: the DNA (DAPI) image
    of the same cell, optional. ``model``: a LoadedModel, a store name, a path, or None for the bundled
    classifier (trained on simulated cells). ``autoencoder``: when given (or "bundled"), adds an
    out-of-distribution score from its reconstruction error. ``check_cells``: when the image seems
    to hold several cells (a quick count of its nuclei), say so in the result's ``warning`` (one
    label for a field of cells means little; :func:`classify_field` classifies each cell).
    """
    if isinstance(autoencoder, str) and autoencoder == "bundled":
        autoencoder = load_model(None, kind="autoencoder")
    p = as_plane(protein, channel=channel, name="protein")
    d = as_plane(dna, channel=dna_channel, name="DNA") if dna is not None else None
    r = next(iter_classify([(p, d)], model, batch_size=1, autoencoder=autoencoder))
    if check_cells and r.classified:
        r.warning = several_cells_warning(p, d)
    return r


def several_cells_warning(protein, dna=None, *, command: str = "") -> str:
    """"" when the image looks like one cell; otherwise a sentence saying it seems to hold several
    cells and how to classify each one (``command``: the command line to suggest, if any).

    A cheap check (:func:`napari_organelle.segmentation.count_cells`: nuclei in the DNA image, or
    separate objects of the protein image, on a copy at most 64 pixels a side).
    """
    from .segmentation import count_cells

    try:
        n = count_cells(protein, dna)
    except InputError:
        return ""
    if n < 2:
        return ""
    what = f"{n} nuclei in the DNA image" if dna is not None else f"{n} separate objects in the protein image"
    how = command or "classify_field() in Python, napari-organelle classify FILE --cells auto"
    return (f"this image seems to hold several cells ({what}); the classifier expects one cell, so one "
            f"label for the whole image means little. Classify each cell instead ({how}, or the "
            "Classify dock's per-cell mode).")


def classify_batch(pairs: Iterable, model=None, *, batch_size: int = 64, autoencoder=None,
                   progress: Callable[[int, int], None] | None = None, should_stop=None,
                   skip_unusable: bool = False, preprocess: str = "auto", threads: int | None = None,
                   precision: str = "float32") -> list[Classification]:
    """Classify many (protein, dna-or-None) pairs; ``progress(done, total)`` after each batch.
    ``skip_unusable``, ``preprocess``, ``threads`` and ``precision``: see :func:`iter_classify`."""
    pairs = list(pairs)
    out: list[Classification] = []
    for r in iter_classify(pairs, model, batch_size=batch_size, autoencoder=autoencoder,
                           should_stop=should_stop, skip_unusable=skip_unusable, preprocess=preprocess,
                           threads=threads, precision=precision):
        out.append(r)
        if progress is not None and (len(out) % batch_size == 0 or len(out) == len(pairs)):
            progress(len(out), len(pairs))
    return out


def classify_stack(stack, dna_stack=None, model=None, **kwargs) -> list[Classification]:
    """Classify each plane of a (Z, Y, X) stack (with an optional DNA stack of the same shape)."""
    s = np.asarray(stack)
    if s.ndim < 3:
        raise InputError(f"Expected a stack of planes, got an image of shape {s.shape}. Use classify() for one image.")
    planes = s.reshape((-1,) + s.shape[-2:])
    if dna_stack is not None:
        d = np.asarray(dna_stack)
        if d.shape[-2:] != s.shape[-2:]:
            raise InputError(f"Protein planes are {s.shape[-2:]} but DNA planes are {d.shape[-2:]}; they must match.")
        dplanes = d.reshape((-1,) + d.shape[-2:]) if d.ndim >= 3 else np.broadcast_to(d, planes.shape)
        if len(dplanes) != len(planes):
            raise InputError(f"The protein stack has {len(planes)} planes but the DNA stack has {len(dplanes)}.")
    else:
        dplanes = [None] * len(planes)
    return classify_batch(list(zip(planes, dplanes)), model, **kwargs)


def cell_crops(protein, labels, dna=None, *, margin: float = 0.15) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield (label id, protein crop, dna crop) for each labelled cell.

    Each crop is the cell's bounding box grown by ``margin`` (and at least 4 pixels); pixels of other
    cells inside it are set to the crop's background (1st percentile), so each crop shows one cell.
    """
    from scipy import ndimage

    p = as_plane(protein, name="protein")
    lab = np.asarray(labels)
    if lab.shape != p.shape:
        raise InputError(f"The Labels layer is {lab.shape} but the protein image is {p.shape}; they must match.")
    if lab.dtype.kind not in "iub":
        raise InputError("The labels must be an integer image (a napari Labels layer).")
    d = as_plane(dna, name="DNA") if dna is not None else None
    if d is not None and d.shape != p.shape:
        raise InputError(f"The DNA image is {d.shape} but the protein image is {p.shape}; they must match.")
    if lab.dtype.kind == "i" and lab.size and int(lab.min()) < 0:
        raise InputError("The labels have negative values; a Labels layer holds 0 (background) and positive cell ids.")
    ids = lab.astype(np.int64, copy=False)
    if ids.size and int(ids.max()) > max(2 ** 20, ids.size):  # find_objects makes a list as long as the largest id
        uniq, inv = np.unique(ids, return_inverse=True)
        dense = inv.reshape(ids.shape).astype(np.int64) + (0 if uniq[0] == 0 else 1)
        objects = ndimage.find_objects(dense)
        ids_of = [int(u) for u in uniq if u != 0]
    else:
        dense, ids_of = ids, None
        objects = ndimage.find_objects(ids)
    if not any(o is not None for o in objects):
        raise InputError("The Labels layer has no labelled cells (all pixels are 0). Paint or segment cells first.")
    # float32 crops, as always, unless float32 would lose the cell (an offset, an extreme scale)
    def crop_dtype_of(a):
        return np.float32 if float32_faithful(a) else (a.dtype if a.dtype.kind in "iu" else np.float64)

    crop_dtype = crop_dtype_of(p)
    dna_dtype = crop_dtype_of(d) if d is not None else None
    for k, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        i = ids_of[k - 1] if ids_of is not None else k
        (y0, y1), (x0, x1) = (sl[0].start, sl[0].stop), (sl[1].start, sl[1].stop)
        pad_y = max(4, int((y1 - y0) * margin))
        pad_x = max(4, int((x1 - x0) * margin))
        y0, y1 = max(0, y0 - pad_y), min(p.shape[0], y1 + pad_y)
        x0, x1 = max(0, x0 - pad_x), min(p.shape[1], x1 + pad_x)
        if min(y1 - y0, x1 - x0) < 8:
            continue
        lab_c = lab[y0:y1, x0:x1]
        others = (lab_c != i) & (lab_c != 0)
        pc = np.array(p[y0:y1, x0:x1], dtype=crop_dtype)
        if others.any():
            pc[others] = np.percentile(pc, 1)
        dc = None
        if d is not None:
            dc = np.array(d[y0:y1, x0:x1], dtype=dna_dtype)
            if others.any():
                dc[others] = np.percentile(dc, 1)
        yield i, pc, dc


def classify_cells(protein, labels, dna=None, model=None, *, autoencoder=None, batch_size: int = 32,
                   progress=None, should_stop=None, skip_unusable: bool = True) -> dict[int, Classification]:
    """Classify each labelled cell of ``labels`` (0 = background) in a field of view. A cell whose crop
    carries no signal is reported 'not classified' (``skip_unusable``) rather than failing the rest."""
    crops = list(cell_crops(protein, labels, dna))
    results = classify_batch([(pc, dc) for _, pc, dc in crops], model, batch_size=batch_size,
                             autoencoder=autoencoder, progress=progress, should_stop=should_stop,
                             skip_unusable=skip_unusable)
    return {i: r for (i, _, _), r in zip(crops, results)}


# --------------------------------------------------------------------------------------------
# fields of view: find the cells, then classify each one


@dataclass
class FieldResult:
    """The cells of a field of view and the classifier's answer for each (:func:`classify_field`).

    ``labels``: the cell labels (0 = background) in the image's shape, found (int32; ``segmentation``
    says how) or as given; ``cells``: cell id -> Classification; ``geometry``: cell id ->
    (centroid y, centroid x, area in pixels); ``note``: what the caller should know (no cells
    found, cells left out at the border).
    """

    labels: np.ndarray
    cells: dict[int, Classification]
    classes: list[str]
    geometry: dict[int, tuple[float, float, int]]
    segmentation: object | None = None  # segmentation.CellSegmentation, None when labels were given
    model_name: str = ""
    note: str = ""

    @property
    def method(self) -> str:
        """How the cells were found, in words (for reports)."""
        if self.segmentation is None:
            return "cells as labelled by the user (Labels image given)"
        return self.segmentation.describe()

    def rows(self) -> list[dict]:
        """One dict per cell, in cell-id order: cell id, centroid y/x, area (pixels), then
        :meth:`Classification.as_row` (label, confidence, one ``p_<class>`` per class, has_dna,
        ood_score, uncertain, note, ...)."""
        out = []
        for i in sorted(self.cells):
            cy, cx, area = self.geometry.get(i, (float("nan"), float("nan"), 0))
            out.append({"cell": int(i), "centroid_y": round(cy, 1), "centroid_x": round(cx, 1),
                        "area": int(area), **self.cells[i].as_row()})
        return out

    def summary(self) -> dict:
        """Cells per class and the majority class: ``n_cells``, ``n_classified``, ``n_uncertain``,
        ``per_class`` (class -> number of cells given that label, every class listed),
        ``majority`` (the most frequent label among the classified cells; ties go to the higher
        summed confidence; "" when no cell was classified), ``majority_fraction``, ``method``."""
        per = {c: 0 for c in self.classes}
        conf = {c: 0.0 for c in self.classes}
        done = [r for r in self.cells.values() if r.classified]
        for r in done:
            per[r.label] = per.get(r.label, 0) + 1
            conf[r.label] = conf.get(r.label, 0.0) + float(r.confidence)
        majority = max(per, key=lambda c: (per[c], conf[c])) if done else ""
        return {"n_cells": len(self.cells), "n_classified": len(done),
                "n_uncertain": sum(bool(r.uncertain) for r in done), "per_class": per,
                "majority": majority,
                "majority_fraction": round(per[majority] / len(done), 4) if done else float("nan"),
                "method": self.method}


def _cell_geometry(labels: np.ndarray) -> dict[int, tuple[float, float, int]]:
    """Cell id -> (centroid y, centroid x, area), computed cell by cell inside its bounding box."""
    from scipy import ndimage

    lab = np.asarray(labels)
    out = {}
    for i, sl in enumerate(ndimage.find_objects(lab.astype(np.int64, copy=False)), start=1):
        if sl is None:
            continue
        m = lab[sl] == i
        ys, xs = np.nonzero(m)
        out[i] = (float(ys.mean() + sl[0].start), float(xs.mean() + sl[1].start), int(ys.size))
    return out


def classify_field(protein, dna=None, model=None, *, labels=None, diameter=None, autoencoder=None,
                   progress=None, should_stop=None, pixel_size_um=None, exclude_border: bool = True,
                   batch_size: int = 32) -> FieldResult:
    """Classify each cell of a field of view: find the cells (or take ``labels``), then classify them.

    ``protein``: the protein image of the field (2D); ``dna``: its DNA image, optional (nuclei are
    the seeds of the cell finder, so it helps a lot). ``labels``: int cell labels to use instead
    of finding cells (0 = background, e.g. a napari Labels layer, corrected by hand). ``diameter``
    (pixels) or ``pixel_size_um``: the expected cell size, by default measured from the nuclei;
    ``exclude_border``: leave out cells cut by the image border (see
    :func:`napari_organelle.segmentation.find_cells` for the method). ``model``/``autoencoder``
    as in :func:`classify`. ``progress(done, total)`` runs from 0 to 100 over both steps;
    ``should_stop`` (a callable or an Event) stops the work with InterruptedError.
    """
    from .segmentation import segment_cells

    if isinstance(autoencoder, str) and autoencoder == "bundled":
        autoencoder = load_model(None, kind="autoencoder")
    clf = _as_loaded(model, "classifier")
    seg = None
    share = 0 if labels is not None else 30  # percent of the progress bar the cell finder gets

    def seg_progress(done, total):
        if progress is not None:
            progress(int(share * done / max(1, total)), 100)

    def clf_progress(done, total):
        if progress is not None:
            progress(share + int((100 - share) * done / max(1, total)), 100)

    if labels is None:
        seg = segment_cells(protein, dna, diameter=diameter, pixel_size_um=pixel_size_um,
                            exclude_border=exclude_border, progress=seg_progress, should_stop=should_stop)
        lab = seg.labels
    else:
        lab = np.asarray(labels)
        p_shape = as_plane(protein, name="protein").shape
        if lab.shape != p_shape:
            raise InputError(f"The labels are {lab.shape} but the protein image is {p_shape}; they must match.")
        if lab.dtype.kind not in "iub":
            raise InputError("The labels must be an integer image (a napari Labels layer), 0 = background.")
    notes = []
    if seg is not None and seg.dropped_border:
        notes.append(f"{seg.dropped_border} cell(s) cut by the image border were left out")
    if not lab.any():
        why = ("no cells were found" + (f" ({'; '.join(seg.notes)})" if seg is not None and seg.notes else "")
               if seg is not None else "the labels hold no cell (all 0)")
        notes.insert(0, why)
        if progress is not None:
            progress(100, 100)
        return FieldResult(labels=lab, cells={}, classes=list(clf.classes),
                           geometry={}, segmentation=seg, model_name=clf.name, note="; ".join(notes))
    cells = classify_cells(protein, lab, dna, clf, autoencoder=autoencoder, batch_size=batch_size,
                           progress=clf_progress, should_stop=should_stop)
    if _stop_requested(should_stop):
        raise InterruptedError("Classifying the cells stopped by the user.")
    geometry = _cell_geometry(lab)
    if progress is not None:
        progress(100, 100)
    return FieldResult(labels=lab, cells=cells,
                       classes=list(clf.classes), geometry=geometry, segmentation=seg, model_name=clf.name,
                       note="; ".join(notes))


# --------------------------------------------------------------------------------------------
# class-activation map


def _otsu(values: np.ndarray) -> float:
    """The threshold between two populations of ``values`` (Otsu's method on a 256-bin histogram)."""
    hist, edges = np.histogram(values, bins=256)
    w = np.cumsum(hist).astype(np.float64)
    m = np.cumsum(hist * (edges[:-1] + edges[1:]) / 2)
    w0, w1 = w[:-1], w[-1] - w[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m[-1] * w0 - m[:-1] * w[-1]) ** 2 / (w0 * w1)
    return float(edges[1 + int(np.nanargmax(between))]) if np.isfinite(between).any() else float(np.median(values))


def cell_mask(protein, dna=None) -> np.ndarray:
    """Where the cell is: the smoothed protein (and DNA) signal above the threshold that splits it from
    the background, holes filled, grown by 3 % of the image side. All True when the image shows no
    clear background (a crop inside a cell, a flat field)."""
    from scipy import ndimage

    p = as_plane(protein, name="protein")
    mask = np.zeros(p.shape, bool)
    sigma = max(1.0, 0.01 * max(p.shape))
    for plane in (p, as_plane(dna, name="DNA") if dna is not None else None):
        if plane is None or _is_constant(plane):
            continue
        smooth = ndimage.gaussian_filter(normalize(plane), sigma)
        mask |= smooth > _otsu(smooth[:: max(1, smooth.size // 250_000)].ravel())
    grow = max(1, int(0.03 * max(p.shape)))
    mask = ndimage.binary_dilation(ndimage.binary_fill_holes(mask), iterations=grow)
    return mask if 0.01 < mask.mean() < 0.97 else np.ones(p.shape, bool)


def activation_map(protein, dna=None, model=None, *, target: str | int | None = None,
                   inside_cell: bool = False) -> np.ndarray:
    """Class-activation map (CAM) of ``target`` (default: the predicted class), in [0, 1], shaped like
    ``protein`` so it overlays the source layer directly. ``inside_cell``: zero outside
    :func:`cell_mask` (the network also looks at the background around a cell; a map for people
    shows the evidence inside it)."""
    import torch
    import torch.nn.functional as F

    from ._threads import torch_threads

    clf = _as_loaded(model, "classifier")
    p = as_plane(protein, name="protein")
    d = as_plane(dna, name="DNA") if dna is not None else None
    size = _input_size(clf)
    dev = _device_of(clf.model)
    # one cell: one thread (see napari_organelle._threads)
    with torch.inference_mode(), torch_threads(1):
        x = torch.from_numpy(prepare_pair(p, d, size=size))[None].to(dev)
        feats = clf.model.features(x)
        logits = clf.model.head(feats.mean(dim=(2, 3)))
        if target is None:
            k = int(logits.argmax(1))
        elif isinstance(target, str):
            if target not in clf.classes:
                raise InputError(f"{target!r} is not a class of this model ({', '.join(clf.classes)}).")
            k = clf.classes.index(target)
        else:
            k = int(target)
        w = clf.model.head.weight[k].float()
        cam = torch.einsum("c,chw->hw", w, feats[0].float()).relu()
        cam = F.interpolate(cam[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    cam = cam.cpu().numpy()
    # Undo resize_square: crop the padded square back to the image's aspect, then resize to its shape.
    h, w_ = p.shape
    scale = size / max(h, w_)
    nh, nw = max(1, round(h * scale)), max(1, round(w_ * scale))
    top, left = (size - nh) // 2, (size - nw) // 2
    cam = cam[top:top + nh, left:left + nw]
    t = torch.from_numpy(np.ascontiguousarray(cam))[None, None]
    cam = F.interpolate(t, size=(h, w_), mode="bilinear", align_corners=False)[0, 0].numpy()
    if inside_cell:
        cam = cam * cell_mask(p, d)
    m = float(cam.max())
    return (cam / m).astype(np.float32) if m > 0 else np.zeros_like(cam, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# autoencoder


def _run_ae(ae_model, planes01: np.ndarray) -> np.ndarray:
    """(N, H, W) in [0, 1] -> reconstructions (N, H, W), batched to keep memory modest."""
    import torch

    from ._threads import threads_for, torch_threads

    dev = _device_of(ae_model)
    out = np.empty_like(planes01, dtype=np.float32)
    n_per = max(1, int(2 ** 22 // max(1, planes01.shape[1] * planes01.shape[2])))  # ~4 Mpx per batch
    # a plane through the autoencoder is large work: the cores free for it (one when it is tiny)
    n_threads = threads_for(None if planes01[0].size >= 256 * 256 else 1) if dev.type == "cpu" else None
    with torch.inference_mode(), (torch_threads(n_threads) if n_threads else contextlib.nullcontext()):
        for i in range(0, len(planes01), n_per):
            x = torch.from_numpy(np.ascontiguousarray(planes01[i:i + n_per]))[:, None].to(dev)
            out[i:i + n_per] = ae_model(x)[:, 0].float().cpu().numpy()
    return out


def _reconstruct_plane01(ae_model, plane01: np.ndarray, out: np.ndarray | None = None,
                         should_stop=None) -> np.ndarray:
    """Reconstruct one [0, 1] plane; planes larger than MAX_NATIVE_SIDE go tile by tile.

    Extra memory beyond ``out`` (the float32 result, allocated unless given) is one tile with its
    context (about (1024 + 64)^2 pixels through the model), whatever the plane's size. A stop request
    is honoured between tiles (InterruptedError), so one huge plane never holds a stop up for long.
    """
    h, w = plane01.shape
    if max(h, w) <= MAX_NATIVE_SIDE:
        rec = _run_ae(ae_model, plane01[None])[0]
        if out is None:
            return rec
        out[...] = rec
        return out
    if out is None:
        out = np.empty((h, w), np.float32)
    c = _TILE_CONTEXT
    for y in range(0, h, _TILE):
        for x in range(0, w, _TILE):
            if _stop_requested(should_stop):
                raise InterruptedError("Reconstruction stopped by the user.")
            y0, x0 = max(0, y - c), max(0, x - c)
            y1, x1 = min(h, y + _TILE + c), min(w, x + _TILE + c)
            rec = _run_ae(ae_model, plane01[None, y0:y1, x0:x1])[0]
            ty1, tx1 = min(h, y + _TILE), min(w, x + _TILE)
            out[y:ty1, x:tx1] = rec[y - y0:ty1 - y0, x - x0:tx1 - x0]
    return out


#: Row blocks of this many pixels bound the float64 temporaries of the quality metrics.
_METRIC_BLOCK = 1 << 22


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference, accumulated in float64 over row blocks (bounded extra memory)."""
    h, w = a.shape
    rows = max(1, _METRIC_BLOCK // max(1, w))
    total = 0.0
    for y in range(0, h, rows):
        d = a[y:y + rows].astype(np.float64) - b[y:y + rows]
        total += float(np.einsum("ij,ij->", d, d))
    return total / max(1, a.size)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two [0, 1] images."""
    a, b = np.asarray(a), np.asarray(b)
    mse = _mse(a, b) if a.ndim == 2 and a.shape == b.shape else \
        float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _ssim_sum(a: np.ndarray, b: np.ndarray, sigma: float, crop=None) -> float:
    from scipy.ndimage import gaussian_filter

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_a, mu_b = gaussian_filter(a, sigma), gaussian_filter(b, sigma)
    saa = gaussian_filter(a * a, sigma) - mu_a ** 2
    sbb = gaussian_filter(b * b, sigma) - mu_b ** 2
    sab = gaussian_filter(a * b, sigma) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    if crop is not None:
        m = m[crop]
    return float(m.sum())


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> float:
    """Structural similarity of two [0, 1] images (Gaussian window, Wang et al. 2004 constants).

    Planes larger than MAX_NATIVE_SIDE are measured tile by tile, each tile with a margin wider
    than the Gaussian window, so the result equals the whole-plane SSIM while the float64
    temporaries stay at tile size (about 10 x 8 bytes x (1024 + 16)^2) instead of 80 bytes a pixel.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or max(a.shape) <= MAX_NATIVE_SIDE:
        return _ssim_sum(a, b, sigma) / max(1, a.size)
    h, w = a.shape
    m = int(4 * sigma + 0.5) + 2  # scipy truncates the Gaussian at 4 sigma
    total = 0.0
    for y in range(0, h, _TILE):
        for x in range(0, w, _TILE):
            y0, x0 = max(0, y - m), max(0, x - m)
            y1, x1 = min(h, y + _TILE + m), min(w, x + _TILE + m)
            ty1, tx1 = min(h, y + _TILE), min(w, x + _TILE)
            crop = (slice(y - y0, ty1 - y0), slice(x - x0, tx1 - x0))
            total += _ssim_sum(a[y0:y1, x0:x1], b[y0:y1, x0:x1], sigma, crop)
    return total / a.size


def _percentiles(plane: np.ndarray, base=None) -> tuple[float, float]:
    """1st / 99.8th percentiles of a strided sample of ``plane`` (of ``plane - base``, computed
    exactly in integers, when ``base`` is given)."""
    from .preprocess import HIGH_PERCENTILE, LOW_PERCENTILE

    flat = plane.reshape(-1)
    sample = flat[:: max(1, flat.size // 1_000_000)]  # a strided view: no copy of a large plane
    if base is not None:
        sample = _offset_float64(sample, base)
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(sample, [LOW_PERCENTILE, HIGH_PERCENTILE])
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        hi = lo + 1.0
        if not hi > lo:  # a huge value (1e20 + 1 == 1e20): one part in a million of it
            hi = lo + abs(lo) * 1e-6
    return lo, hi


def _scale01(p: np.ndarray, lo: float, hi: float, *, wide: bool = False, base=None) -> np.ndarray:
    """(p - lo) / (hi - lo) clipped to [0, 1] as float32, NaN/Inf -> 0; one output array, no full temporaries.

    ``wide``: computed in float64 (``p - base`` exactly in integers first, when ``base`` is given),
    for images float32 cannot hold (an offset such as 1e8 + cell, values such as 1e39 or 1e-46)."""
    out = np.empty(p.shape, np.float32)
    h, w = p.shape
    rows = max(1, _METRIC_BLOCK // max(1, w))
    scale = None if wide else np.float32(1.0 / (hi - lo))
    for y in range(0, h, rows):
        o = out[y:y + rows]
        if wide:
            block = _offset_float64(p[y:y + rows], base) if base is not None else \
                np.asarray(p[y:y + rows], np.float64)
            with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf -> clipped / zeroed below
                o[...] = (block - np.float64(lo)) / (np.float64(hi) - np.float64(lo))
        else:
            np.subtract(p[y:y + rows], np.float32(lo), out=o, casting="unsafe")
            o *= scale
        np.clip(o, 0.0, 1.0, out=o)
        if p.dtype.kind == "f":
            o[~np.isfinite(o)] = 0.0
    return out


def _reconstruct_refusals(a: np.ndarray) -> None:
    check_dtype(a, "input")
    if a.size == 0:
        raise InputError(f"The image is empty (shape {a.shape}); load an image with pixels in it.")
    if a.ndim >= 3 and a.shape[-1] in (3, 4) and a.shape[-3] > 4 and a.ndim == 3:
        raise InputError("This is an RGB image; convert it to a single channel (or split the channels) to reconstruct it.")
    if a.ndim >= 3:
        last3 = a[(0,) * (a.ndim - 3)]
        c = channel_last_count(last3)
        if c and (c not in (3, 4) or a.ndim >= 4) and last3.shape[0] > 16:
            n = int(np.prod(a.shape[:-2]))
            raise InputError(
                f"The image has shape {'x'.join(str(k) for k in a.shape)}: it looks like "
                f"{'one image' if a.ndim == 3 else 'images'} with {c} channels stored last (Y, X, C), not {n} "
                f"planes of {a.shape[-2]}x{c}, and would be reconstructed as such. Reconstruct one channel "
                "(image[..., c]), or move the channel axis first (np.moveaxis(image, -1, 0)) to reconstruct "
                "each channel as a plane.")
    if a.ndim < 2:
        raise InputError(f"Expected a 2D image or a stack of planes, got shape {a.shape}.")


def reconstruct(image, model=None, *, progress=None, should_stop=None) -> Reconstruction:
    """Reconstruct an image with the autoencoder, plane by plane.

    Returns the reconstruction in the input's shape and intensity range (each plane scaled back by
    its own 1st/99.8th percentiles), the residual (input - reconstruction), and MSE / PSNR / SSIM
    measured on the [0, 1]-scaled planes (mean over planes; constant planes of a stack are kept as they
    are, marked ``constant`` in ``per_plane`` and left out of the means; a constant image is refused).
    Planes larger than 2048 pixels a side
    are processed tile by tile at full resolution, so memory stays bounded by a tile.

    The reconstruction and residual are float32, or float64 for an image float32 cannot hold
    faithfully (an offset such as 1e8 + cell, values beyond float32's range such as 1e39 or 1e-46):
    the result is then computed and returned in float64. A (Y, X, C) array with its channels last is
    refused with a message, not reconstructed as Y planes; a model whose output is not finite is
    refused, never reported with a PSNR.
    """
    ae = _as_loaded(model, "autoencoder")
    a = np.asarray(image)
    shape = a.shape
    if a.ndim >= 3 and a.shape[-1] == 1:  # (Y, X, 1): one plane, its channel axis last
        a = a[..., 0]
    _reconstruct_refusals(a)
    planes = a.reshape((-1,) + a.shape[-2:])
    # Memory: the float32 reconstruction (4 bytes a pixel, returned) plus one float32 working plane
    # (4 bytes a pixel of the plane being processed) plus a model tile; the residual (4 bytes a
    # pixel, returned) is allocated after the working plane is freed. Metrics run in row blocks /
    # tiles. So a 20000 x 20000 uint8 plane needs about 8 bytes a pixel (3.2 GB) beyond its input.
    # (Twice that for the rare image that needs float64, see above.)
    wide = not float32_faithful(a)
    out_dtype = np.float64 if wide else np.float32
    out = np.empty(planes.shape, out_dtype)
    per_plane = []
    for i, pl in enumerate(planes):
        if _stop_requested(should_stop):
            raise InterruptedError("Reconstruction stopped by the user.")
        p = as_plane(pl, name=f"plane {i}" if len(planes) > 1 else "input")
        no_finite = p.dtype.kind == "f" and not np.isfinite(p[:: max(1, p.shape[0] // 64)]).any() \
            and not np.isfinite(p).any()
        if no_finite and len(planes) == 1:
            raise InputError("The image has no finite pixel (all NaN or Inf); there is nothing to reconstruct. "
                             "Check the layer's data.")
        if no_finite or _is_constant(p):  # nothing to reconstruct: kept as it is, left out of the averages
            if len(planes) == 1:
                raise InputError("The image is constant (every pixel has the same value); there is nothing to "
                                 "reconstruct. Check the layer's data or the plane shown.")
            out[i] = p
            per_plane.append({"plane": i, "mse": float("nan"), "psnr": float("nan"), "ssim": float("nan"),
                              "constant": True})
            if progress is not None:
                progress(i + 1, len(planes))
            continue
        base = p.min() if wide and p.dtype.kind in "iu" else None
        lo, hi = _percentiles(p, base)
        p01 = _scale01(p, lo, hi, wide=wide, base=base)
        r01 = _reconstruct_plane01(ae.model, p01, out=out[i], should_stop=should_stop)
        if _stop_requested(should_stop):
            raise InterruptedError("Reconstruction stopped by the user.")
        if not np.isfinite(r01).all():
            raise InputError(
                f"The autoencoder's output for {'plane %d' % i if len(planes) > 1 else 'this image'} is not a "
                "number (NaN or infinite): the model is broken (NaN weights or negative batch-norm "
                "variances); nothing is reported. Choose another autoencoder, or retrain this one.")
        mse = _mse(r01, p01)
        per_plane.append({"plane": i, "mse": mse, "psnr": float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse),
                          "ssim": ssim(p01, r01)})
        del p01
        t = out.dtype.type
        r01 *= t(hi - lo)  # back to the input's intensity range, in place
        r01 += t(lo)
        if base is not None:
            r01 += t(base)
        if not np.isfinite(r01).all():
            raise InputError(
                f"The reconstruction of {'plane %d' % i if len(planes) > 1 else 'this image'} overflows "
                f"{out.dtype} (the image's values reach {max(abs(lo), abs(hi)):.3g}); nothing is reported. "
                "Divide the image by a constant (e.g. 1e30) first.")
        if progress is not None:
            progress(i + 1, len(planes))
    used = [d for d in per_plane if not d.get("constant")]
    if not used:
        raise InputError(f"Every one of the {len(planes)} planes is constant; there is nothing to reconstruct.")
    rec = out.reshape(a.shape)
    residual = np.empty(a.shape, out_dtype)
    np.subtract(a, rec, out=residual, casting="unsafe")
    return Reconstruction(
        reconstruction=rec.reshape(shape),
        residual=residual.reshape(shape),
        mse=float(np.mean([d["mse"] for d in used])),
        psnr=float(np.mean([d["psnr"] for d in used])),
        ssim=float(np.mean([d["ssim"] for d in used])),
        per_plane=per_plane,
    )


def _is_constant(plane: np.ndarray) -> bool:
    if plane.dtype.kind == "f":
        return not (np.nanmax(plane) > np.nanmin(plane))
    return plane.min() == plane.max()


def _ae_reference_mse(ae) -> float:
    m = ae.meta.get("metrics", {}) or {}
    for key in ("ood_reference_mse", "test_mse", "val_mse"):
        if m.get(key):
            return float(m[key])
    return 1e-3  # PSNR 30 dB, the autoencoder's target on cells like its training data


def ood_score(protein, dna=None, autoencoder=None) -> float:
    """How unlike the autoencoder's training cells this image is.

    The protein plane's reconstruction MSE (at native resolution, percentile-scaled) divided by the
    MSE the autoencoder reached on its own validation cells: about 1 for familiar cells; above
    OOD_THRESHOLD (3) the classifier's answer should not be trusted.
    """
    ae = _as_loaded(autoencoder, "autoencoder")
    p = as_plane(protein, name="protein")
    if max(p.shape) > MAX_NATIVE_SIDE:
        p = block_reduce_to(p, MAX_NATIVE_SIDE)
    p01 = normalize(p)
    r = _reconstruct_plane01(ae.model, p01)
    return float(np.mean((r - p01) ** 2)) / _ae_reference_mse(ae)
