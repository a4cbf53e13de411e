"""Inference: classify cells, reconstruct images, class-activation maps, out-of-distribution scores.

Plain numpy in, plain numpy / dataclasses out; no Qt. The widgets, the CLI and scripts all call
these functions.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from .classes import NOT_CLASSIFIED
from .preprocess import (
    InputError,
    MAX_NATIVE_SIDE,
    as_plane,
    block_reduce_to,
    fits_batched,
    normalize,
    prepare_batch,
    prepare_pair,
    stack_for_batch,
    validate_pair,
)

#: A cell is flagged "uncertain" below this top-class probability ...
CONFIDENCE_THRESHOLD = 0.5
#: ... or when its autoencoder reconstruction error is this many times the error measured on the
#: autoencoder's own validation cells (see :func:`ood_score`).
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
        """A flat dict: label, confidence, one ``p_<class>`` column per class, ood_score, uncertain,
        note (why an image was not classified; empty otherwise)."""
        row: dict = {"label": self.label, "confidence": round(self.confidence, 6)}
        for c in self.classes:
            row[f"p_{c}"] = round(self.probabilities[c], 6)
        row["has_dna"] = self.has_dna
        row["ood_score"] = None if self.ood_score is None else round(self.ood_score, 4)
        row["uncertain"] = self.uncertain
        row["note"] = self.note
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


def _softmax_rows(logits) -> np.ndarray:
    import torch

    return torch.softmax(logits.float(), dim=1).cpu().numpy()


def _make_result(probs: np.ndarray, classes: list[str], has_dna: bool, name: str,
                 ood: float | None) -> Classification:
    k = int(np.argmax(probs))
    conf = float(probs[k])
    uncertain = conf < CONFIDENCE_THRESHOLD or (ood is not None and ood > OOD_THRESHOLD)
    return Classification(
        label=classes[k],
        confidence=conf,
        probabilities={c: float(p) for c, p in zip(classes, probs)},
        classes=list(classes),
        has_dna=has_dna,
        ood_score=ood,
        uncertain=bool(uncertain),
        model_name=name,
    )


def iter_classify(pairs: Iterable, model=None, *, batch_size: int = 64, autoencoder=None,
                  should_stop=None, skip_unusable: bool = False,
                  preprocess: str = "auto") -> Iterator[Classification]:
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
    """
    import torch

    if preprocess not in ("auto", "host", "device"):
        raise InputError(f"preprocess must be 'auto', 'host' or 'device', not {preprocess!r}.")
    if int(batch_size) < 1:
        raise InputError(f"The batch size must be at least 1 (got {batch_size}).")
    clf = _as_loaded(model, "classifier")
    ae = _as_loaded(autoencoder, "autoencoder") if autoencoder is not None else None
    size = int(clf.input_size)
    dev = _device_of(clf.model)
    on_device = preprocess == "device" or (preprocess == "auto" and dev.type == "cuda")
    # One entry per input, in order: a not-classified result, a prepared (2, S, S) array, or the raw
    # (protein, dna) planes of a cell that will be prepared on the device with its batch. Only
    # planes small enough for prepare_batch are kept raw, so a batch's memory stays bounded.
    entries: list = []
    oods: list[float | None] = []
    has_dna: list[bool] = []

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
            x[ready] = torch.from_numpy(np.stack([items[i] for i in ready])).to(dev)
        for idx in groups.values():
            x[idx] = prepare_batch(stack_for_batch([items[i] for i in idx]), size=size, device=dev)
        return x

    def flush():
        todo = [k for k, e in enumerate(entries) if not isinstance(e, Classification)]
        out: list = list(entries)
        if todo:
            x = prepared([entries[k] for k in todo])
            with torch.inference_mode():
                probs = _softmax_rows(clf.model(x))
            for k, pr in zip(todo, probs):
                out[k] = _make_result(pr, clf.classes, has_dna[k], clf.name, oods[k])
        entries.clear()
        oods.clear()
        has_dna.clear()
        return out

    for protein, dna in pairs:
        if _stop_requested(should_stop):
            return
        try:
            p, d = validate_pair(protein, dna)
        except InputError as exc:
            if not skip_unusable:
                raise
            entries.append(Classification.not_classified(str(exc), clf.classes, dna is not None, clf.name))
            oods.append(None)
        else:
            if on_device and fits_batched(p, size) and (d is None or fits_batched(d, size)):
                entries.append((p, d))
            else:
                entries.append(prepare_pair(p, d, size=size, check_signal=False))
            oods.append(ood_score(p, autoencoder=ae) if ae is not None else None)
        has_dna.append(dna is not None)
        if len(entries) >= batch_size:
            yield from flush()
    if entries:
        yield from flush()


def classify(protein, dna=None, model=None, *, channel: int | None = None,
             dna_channel: int | None = None, autoencoder=None) -> Classification:
    """Which organelle does this protein label?

    ``protein``: a 2D image (or channel-first with ``channel``, or RGB); ``dna``: the DNA (DAPI) image
    of the same cell, optional. ``model``: a LoadedModel, a store name, a path, or None for the bundled
    classifier (trained on simulated cells). ``autoencoder``: when given (or "bundled"), adds an
    out-of-distribution score from its reconstruction error.
    """
    if isinstance(autoencoder, str) and autoencoder == "bundled":
        autoencoder = load_model(None, kind="autoencoder")
    p = as_plane(protein, channel=channel, name="protein")
    d = as_plane(dna, channel=dna_channel, name="DNA") if dna is not None else None
    return next(iter_classify([(p, d)], model, batch_size=1, autoencoder=autoencoder))


def classify_batch(pairs: Iterable, model=None, *, batch_size: int = 64, autoencoder=None,
                   progress: Callable[[int, int], None] | None = None, should_stop=None,
                   skip_unusable: bool = False, preprocess: str = "auto") -> list[Classification]:
    """Classify many (protein, dna-or-None) pairs; ``progress(done, total)`` after each batch.
    ``skip_unusable`` and ``preprocess``: see :func:`iter_classify`."""
    pairs = list(pairs)
    out: list[Classification] = []
    for r in iter_classify(pairs, model, batch_size=batch_size, autoencoder=autoencoder,
                           should_stop=should_stop, skip_unusable=skip_unusable, preprocess=preprocess):
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
    objects = ndimage.find_objects(lab.astype(np.int64, copy=False))
    if not any(o is not None for o in objects):
        raise InputError("The Labels layer has no labelled cells (all pixels are 0). Paint or segment cells first.")
    for i, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        (y0, y1), (x0, x1) = (sl[0].start, sl[0].stop), (sl[1].start, sl[1].stop)
        pad_y = max(4, int((y1 - y0) * margin))
        pad_x = max(4, int((x1 - x0) * margin))
        y0, y1 = max(0, y0 - pad_y), min(p.shape[0], y1 + pad_y)
        x0, x1 = max(0, x0 - pad_x), min(p.shape[1], x1 + pad_x)
        if min(y1 - y0, x1 - x0) < 8:
            continue
        lab_c = lab[y0:y1, x0:x1]
        others = (lab_c != i) & (lab_c != 0)
        pc = np.array(p[y0:y1, x0:x1], dtype=np.float32)
        if others.any():
            pc[others] = np.percentile(pc, 1)
        dc = None
        if d is not None:
            dc = np.array(d[y0:y1, x0:x1], dtype=np.float32)
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

    clf = _as_loaded(model, "classifier")
    p = as_plane(protein, name="protein")
    d = as_plane(dna, name="DNA") if dna is not None else None
    size = int(clf.input_size)
    x = torch.from_numpy(prepare_pair(p, d, size=size))[None].to(_device_of(clf.model))
    with torch.inference_mode():
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

    dev = _device_of(ae_model)
    out = np.empty_like(planes01, dtype=np.float32)
    n_per = max(1, int(2 ** 22 // max(1, planes01.shape[1] * planes01.shape[2])))  # ~4 Mpx per batch
    with torch.inference_mode():
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


def _percentiles(plane: np.ndarray) -> tuple[float, float]:
    from .preprocess import HIGH_PERCENTILE, LOW_PERCENTILE

    flat = plane.reshape(-1)
    sample = flat[:: max(1, flat.size // 1_000_000)]  # a strided view: no copy of a large plane
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(sample, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def _scale01(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(p - lo) / (hi - lo) clipped to [0, 1] as float32, NaN/Inf -> 0; one output array, no full temporaries."""
    out = np.empty(p.shape, np.float32)
    h, w = p.shape
    rows = max(1, _METRIC_BLOCK // max(1, w))
    scale = np.float32(1.0 / (hi - lo))
    for y in range(0, h, rows):
        o = out[y:y + rows]
        np.subtract(p[y:y + rows], np.float32(lo), out=o, casting="unsafe")
        o *= scale
        np.clip(o, 0.0, 1.0, out=o)
        if p.dtype.kind == "f":
            o[~np.isfinite(o)] = 0.0
    return out


def reconstruct(image, model=None, *, progress=None, should_stop=None) -> Reconstruction:
    """Reconstruct an image with the autoencoder, plane by plane.

    Returns the reconstruction in the input's shape and intensity range (each plane scaled back by
    its own 1st/99.8th percentiles), the residual (input - reconstruction), and MSE / PSNR / SSIM
    measured on the [0, 1]-scaled planes (mean over planes; constant planes of a stack are kept as they
    are, marked ``constant`` in ``per_plane`` and left out of the means; a constant image is refused).
    Planes larger than 2048 pixels a side
    are processed tile by tile at full resolution, so memory stays bounded by a tile.
    """
    ae = _as_loaded(model, "autoencoder")
    a = np.asarray(image)
    if a.dtype == object or np.iscomplexobj(a) or a.dtype.kind in "USV":
        raise InputError(f"The image has dtype {a.dtype}; give a numeric (integer, float or bool) image.")
    if a.size == 0:
        raise InputError(f"The image is empty (shape {a.shape}); load an image with pixels in it.")
    if a.ndim >= 3 and a.shape[-1] in (3, 4) and a.shape[-3] > 4 and a.ndim == 3:
        raise InputError("This is an RGB image; convert it to a single channel (or split the channels) to reconstruct it.")
    if a.ndim < 2:
        raise InputError(f"Expected a 2D image or a stack of planes, got shape {a.shape}.")
    planes = a.reshape((-1,) + a.shape[-2:])
    # Memory: the float32 reconstruction (4 bytes a pixel, returned) plus one float32 working plane
    # (4 bytes a pixel of the plane being processed) plus a model tile; the residual (4 bytes a
    # pixel, returned) is allocated after the working plane is freed. Metrics run in row blocks /
    # tiles. So a 20000 x 20000 uint8 plane needs about 8 bytes a pixel (3.2 GB) beyond its input.
    out = np.empty(planes.shape, np.float32)
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
        lo, hi = _percentiles(p)
        p01 = _scale01(p, lo, hi)
        r01 = _reconstruct_plane01(ae.model, p01, out=out[i], should_stop=should_stop)
        if _stop_requested(should_stop):
            raise InterruptedError("Reconstruction stopped by the user.")
        mse = _mse(r01, p01)
        per_plane.append({"plane": i, "mse": mse, "psnr": float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse),
                          "ssim": ssim(p01, r01)})
        del p01
        r01 *= np.float32(hi - lo)  # back to the input's intensity range, in place
        r01 += np.float32(lo)
        if progress is not None:
            progress(i + 1, len(planes))
    used = [d for d in per_plane if not d.get("constant")]
    if not used:
        raise InputError(f"Every one of the {len(planes)} planes is constant; there is nothing to reconstruct.")
    rec = out.reshape(a.shape)
    residual = np.empty(a.shape, np.float32)
    np.subtract(a, rec, out=residual, casting="unsafe")
    return Reconstruction(
        reconstruction=rec,
        residual=residual,
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
