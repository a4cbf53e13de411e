"""One preprocessing path for every image that reaches a model.

Any array (2D, channel-first with a chosen channel, RGB/RGBA, any integer, float or bool dtype, any
size) becomes a float32 plane; each plane is scaled to [0, 1] by its own 1st and 99.8th percentiles
(values outside are clipped; NaN and Inf are ignored when computing them and then set to 0).

Classifier inputs are resized so the longer side equals the model's input size (area-style
antialiased bilinear resampling, aspect ratio kept) and zero-padded to a centred square. Very large
images are first reduced by an integer block mean so memory stays bounded.

Every problem the user can fix raises :class:`InputError` with a message that says what to do.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

#: Percentiles that map an image to [0, 1].
LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.8
#: Images smaller than this (either side) are refused.
MIN_SIDE = 8
#: Images are reduced (block mean) to at most this side before anything else (autoencoder input).
MAX_NATIVE_SIDE = 2048
#: Before percentiles are computed, planes larger than this many pixels are subsampled.
_PERCENTILE_SAMPLE = 1_000_000
#: Images more than this many times longer than wide (or the other way round) are refused: resized
#: to a model's input the cell would be a line a pixel or two wide.
MAX_ASPECT = 50
#: dtypes whose every value float32 holds exactly: these are prepared in float32 as they always
#: were. Wider ones (int32/64, uint32/64, float64) are prepared in float64, with integer offsets
#: removed exactly first, so an offset or an extreme scale (1e39, 1e-46) never hides the cell.
_FLOAT32_EXACT = frozenset(np.dtype(t) for t in (np.bool_, np.uint8, np.int8, np.uint16, np.int16,
                                                 np.float16, np.float32))

CHANNELS = ("protein", "dna")


class OrganelleError(Exception):
    """Base class for errors whose message is meant for the user (shown in napari / the CLI)."""


class InputError(OrganelleError, ValueError):
    """The input cannot be used as given; the message says what is wrong and what to do."""


def describe(array) -> str:
    a = np.asarray(array)
    return f"shape {tuple(a.shape)}, dtype {a.dtype}"


def is_wide(dtype) -> bool:
    """True for dtypes float32 cannot hold exactly (int32/64, uint32/64, float64, ...)."""
    return np.dtype(dtype) not in _FLOAT32_EXACT


def float32_faithful(a: np.ndarray) -> bool:
    """True if casting ``a`` to float32 keeps what normalising needs: for the dtypes float32 holds
    exactly (float32 itself unless its values pass +-1e37, where differences overflow); for wider
    ones when integers stay within +-2**24, and floats are within float32's normal range with their
    spread not drowned by an offset (float32's spacing at the largest magnitude is at most 2**-16 of
    the min-max range). NaN and Inf are ignored."""
    if a.size == 0 or a.dtype == np.float32 and not _float32_huge(a):
        return True
    if not is_wide(a.dtype):
        return a.dtype != np.float32
    k = a.dtype.kind
    if k in "iu":
        return -(2 ** 24) <= int(a.min()) and int(a.max()) <= 2 ** 24
    if k != "f":
        return False
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(a), np.nanmax(a)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        fin = a[np.isfinite(a)]
        if fin.size == 0:
            return True
        lo, hi = fin.min(), fin.max()
    lo, hi = float(lo), float(hi)
    m, span = max(abs(lo), abs(hi)), hi - lo
    if m > 1e37:
        return False
    if span == 0:
        return m == 0 or m >= 1e-37
    if span < 1e-30:
        return False
    return float(np.spacing(np.float32(m))) <= span * 2.0 ** -16


def _float32_huge(a: np.ndarray) -> bool:
    """A float32 image with values beyond +-1e37, where differences of values overflow float32."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m = max(abs(float(np.nanmin(a))), abs(float(np.nanmax(a))))
    if not math.isfinite(m):
        fin = a[np.isfinite(a)]
        m = max(abs(float(fin.min())), abs(float(fin.max()))) if fin.size else 0.0
    return m > 1e37


def check_dtype(a: np.ndarray, name: str = "image") -> None:
    """InputError unless ``a`` holds numbers a fluorescence image can be made of (integer, float or
    bool): not text, objects, complex numbers, dates or time spans, nor structured records."""
    k = a.dtype.kind
    if a.dtype == object or k in "cUSVmMO":
        what = {"c": "complex numbers", "U": "text", "S": "bytes", "V": "records or raw bytes",
                "m": "time spans (timedelta64)", "M": "dates (datetime64)", "O": "Python objects"}.get(k, str(a.dtype))
        raise InputError(f"The {name} image holds {what} (dtype {a.dtype}); give a numeric (integer, float or "
                         "bool) image of pixel intensities.")


def channel_last_count(a: np.ndarray) -> int | None:
    """C when ``a`` looks like a (Y, X, C) image with a few channels stored last (2 <= C <= 16,
    both other sides at least 4 C and 8 pixels), else None. RGB(A) (C = 3 or 4) counts too."""
    if a.ndim != 3:
        return None
    y, x, c = a.shape
    if 2 <= c <= 16 and y >= max(MIN_SIDE, 4 * c) and x >= max(MIN_SIDE, 4 * c):
        return int(c)
    return None


def _channel_last_error(a: np.ndarray, name: str, what: str = "") -> InputError:
    c = a.shape[-1]
    return InputError(
        f"The {name} image has shape {'x'.join(str(n) for n in a.shape)} ({a.dtype}): it looks like one "
        f"image with {c} channels stored last (Y, X, C), not {a.shape[0]} planes of {a.shape[1]}x{c}. "
        f"{what or 'Pick one channel'} (image[..., c], e.g. in napari: split the channels or load it "
        "with channel_axis=-1); for protein + DNA give channel 0 and channel 1 as two images."
    )


def as_plane(image, *, channel: int | None = None, name: str = "protein") -> np.ndarray:
    """Return one float32 (Y, X) plane from ``image``.

    Accepts (Y, X); (C, Y, X) with ``channel`` chosen (or C == 1); RGB/RGBA (Y, X, 3|4), reduced to
    the maximum over colour channels (a fluorescence image saved as RGB keeps its signal in one or
    more colours); any integer, float or bool dtype.
    """
    if image is None:
        raise InputError(f"No {name} image was given. Select an image layer or pass an array.")
    try:
        a = np.asarray(image)
    except Exception as exc:  # pragma: no cover - exotic array-likes
        raise InputError(f"The {name} image could not be read as an array ({exc}).") from exc
    check_dtype(a, name)
    if a.size == 0:
        raise InputError(f"The {name} image is empty ({describe(a)}). Load an image with pixels in it.")
    # Drop singleton axes (napari often gives (1, Y, X); some readers (Y, X, 1)).
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    while a.ndim > 2 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and channel is not None:
        if not -a.shape[0] <= channel < a.shape[0]:
            raise InputError(f"The {name} image has {a.shape[0]} channels; channel {channel} does not exist.")
        a = a[channel]
    elif a.ndim == 3 and a.shape[-1] in (3, 4) and a.shape[0] > 4:
        rgb = a[..., :3]
        a = rgb.max(axis=-1)
    elif a.ndim == 3 and a.shape[0] == 2 and channel is None:
        raise InputError(
            f"The {name} image has two channels ({describe(a)}). Pick the protein channel "
            "(channel 0 in 2-channel files) and pass the other one as the DNA image."
        )
    elif a.ndim == 3 and channel_last_count(a) and a.shape[0] > 16:
        raise _channel_last_error(a, name)
    if a.ndim == 1:
        raise InputError(f"The {name} image is one-dimensional ({describe(a)}); give a 2D (Y, X) image.")
    if a.ndim > 2:
        raise InputError(
            f"The {name} image is a stack ({describe(a)}), where one 2D image is expected. "
            "Choose a single plane (napari's slider), or use 'each plane of a stack' mode."
        )
    if min(a.shape) < MIN_SIDE:
        raise InputError(
            f"The {name} image is {a.shape[0]}x{a.shape[1]} pixels; at least {MIN_SIDE}x{MIN_SIDE} are "
            "needed. Is this a single-cell crop or a thumbnail?"
        )
    if max(a.shape) > MAX_ASPECT * min(a.shape):
        raise InputError(
            f"The {name} image is {a.shape[0]}x{a.shape[1]} pixels, {max(a.shape) // min(a.shape)} times "
            f"longer than wide (at most {MAX_ASPECT} is accepted); a cell image is expected, and resized to "
            "a model's input this one would be a line about a pixel wide. Crop the cell (or the region) "
            "you want classified."
        )
    if a.dtype == bool:
        a = a.astype(np.float32)
    return a


def _offset_float64(a: np.ndarray, base) -> np.ndarray:
    """(a - base) as float64, the subtraction done exactly in integers (no overflow: uint64)."""
    if a.dtype.kind == "u":
        return (np.asarray(a, np.uint64) - np.uint64(base)).astype(np.float64)
    if a.dtype.kind == "i":
        # two's complement: the uint64 difference is exact whenever a >= base
        return (np.asarray(a, np.int64).astype(np.uint64) - np.uint64(np.int64(base))).astype(np.float64)
    return np.asarray(a, np.float64) - np.float64(base)


def block_reduce_to(plane: np.ndarray, max_side: int) -> np.ndarray:
    """Integer block-mean reduction so that neither side exceeds ``max_side`` (keeps memory bounded).

    NaN and Inf pixels are left out of their block's mean (a block with no finite pixel is NaN), so a
    few missing pixels do not spread. A side shorter than the factor keeps one pixel (block = side).
    float32 result, or float64 for images float32 cannot hold faithfully (:func:`float32_faithful`;
    integer images then have their minimum subtracted first, exactly: the result is offset, which
    normalising ignores).
    """
    f = math.ceil(max(plane.shape) / max_side)
    if f <= 1:
        return plane
    fy, fx = min(f, plane.shape[0]), min(f, plane.shape[1])
    h, w = (plane.shape[0] // fy) * fy, (plane.shape[1] // fx) * fx
    wide = not float32_faithful(plane)
    base = plane.min() if wide and plane.dtype.kind in "iu" else None
    check_finite = plane.dtype.kind == "f"
    out = np.zeros((h // fy, w // fx), np.float64)
    # Row blocks one at a time: never materialises a float copy of the whole image.
    for i in range(h // fy):
        sl = plane[i * fy:(i + 1) * fy, :w]
        rows = _offset_float64(sl, base) if base is not None else np.asarray(sl, dtype=np.float64)
        blocks = rows.reshape(fy, w // fx, fx)
        if check_finite:
            good = np.isfinite(blocks)
            if not good.all():
                n = good.sum(axis=(0, 2))
                total = np.where(good, blocks, 0.0).sum(axis=(0, 2))
                out[i] = np.where(n > 0, total / np.maximum(n, 1), np.nan)
                continue
        out[i] = blocks.mean(axis=(0, 2))
    return out if wide else out.astype(np.float32)


def normalize(plane: np.ndarray, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE) -> np.ndarray:
    """Scale a plane to [0, 1] by its ``low`` and ``high`` percentiles, clipping outside values.

    NaN and Inf are ignored for the percentiles and become 0. A constant plane becomes all zeros.
    Computed in float32 for dtypes float32 holds exactly (uint8, uint16, float32, ...); in float64,
    with an integer offset removed exactly first, for wider ones (int64, uint64, float64, ...), so
    that ``1e8 + cell``, ``2**40 + cell``, ``cell * 1e39`` or ``cell * 1e-46`` keep the cell.
    """
    a = np.asarray(plane)
    if a.dtype == bool:
        a = a.astype(np.float32)
    if not float32_faithful(a):
        if a.dtype.kind in "iu":
            p = _offset_float64(a, a.min()) if a.size else a.astype(np.float64)
        else:
            p = np.asarray(a, dtype=np.float64)
        work = np.float64
    else:
        p = np.asarray(a, dtype=np.float32)
        work = np.float32
    finite = np.isfinite(p)
    all_finite = bool(finite.all())
    values = p if all_finite else p[finite]
    if values.size == 0:
        return np.zeros(p.shape, np.float32)
    flat = values.ravel()
    if flat.size > _PERCENTILE_SAMPLE:
        flat = flat[:: flat.size // _PERCENTILE_SAMPLE + 1]
    lo, hi = np.percentile(flat, [low, high])
    if not hi > lo:
        hi = float(flat.max())
        if not hi > lo:
            return np.zeros(p.shape, np.float32)
    if work is np.float32:
        out = (p - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float64: inf, clipped below
            out = ((p - np.float64(lo)) / (np.float64(hi) - np.float64(lo))).astype(np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    if not all_finite:
        out[~finite] = 0.0
    return out


def check_not_constant(plane: np.ndarray, name: str = "protein") -> None:
    """Raise InputError for an image that carries no signal (constant, or no finite pixel)."""
    p = np.asarray(plane)
    finite = p[np.isfinite(p)] if p.dtype.kind == "f" else p
    if finite.size == 0:
        raise InputError(f"The {name} image has no finite pixel (all NaN or Inf).")
    if finite.min() == finite.max():
        raise InputError(
            f"The {name} image is constant (every pixel is {finite.flat[0].item()!r}); there is nothing to "
            "classify. Check the layer's contrast or whether the right channel was chosen."
        )


def resize_square(plane: np.ndarray, size: int) -> np.ndarray:
    """Resize so the longer side is ``size`` (aspect kept) and zero-pad to a centred square."""
    import torch
    import torch.nn.functional as F

    p = np.asarray(plane, dtype=np.float32)
    if max(p.shape) > 4 * size:
        p = block_reduce_to(p, 2 * size)
    h, w = p.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    t = torch.from_numpy(np.ascontiguousarray(p))[None, None]
    if (nh, nw) != (h, w):
        t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h)
    out = torch.zeros((size, size), dtype=torch.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = t[0, 0]
    return out.numpy()


def _pair_planes(protein, dna, channel, dna_channel):
    p = as_plane(protein, channel=channel, name="protein")
    d = None
    if dna is not None:
        d = as_plane(dna, channel=dna_channel, name="DNA")
        if d.shape != p.shape:
            raise InputError(
                f"The protein image is {p.shape[0]}x{p.shape[1]} but the DNA image is "
                f"{d.shape[0]}x{d.shape[1]}; they must show the same cell at the same size. "
                "Choose the DNA layer of the same cell, or classify without DNA."
            )
    return p, d


def validate_pair(protein, dna=None, *, channel: int | None = None,
                  dna_channel: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Check a protein (+ optional DNA) image the way :func:`prepare_pair` does, without preparing it:
    returns the 2D planes (views, no copy of integer images) or raises InputError. Cheap enough to run
    in file-reading threads, so one bad image can be reported and skipped before a batch is formed."""
    p, d = _pair_planes(protein, dna, channel, dna_channel)
    check_not_constant(p, "protein")
    return p, d


def prepare_pair(protein, dna=None, *, size: int = 128, channel: int | None = None,
                 dna_channel: int | None = None, check_signal: bool = True) -> np.ndarray:
    """Protein (+ optional DNA) -> float32 array (2, size, size) in [0, 1].

    Channel 0 is the protein, channel 1 the DNA (all zeros when no DNA image is given; the bundled
    classifier was trained for both cases).
    """
    p, d = _pair_planes(protein, dna, channel, dna_channel)
    if check_signal:
        check_not_constant(p, "protein")
    out = np.zeros((2, size, size), np.float32)
    out[0] = resize_square(normalize(_reduce_if_huge(p, size)), size)
    if d is not None:
        out[1] = resize_square(normalize(_reduce_if_huge(d, size)), size)
    np.clip(out, 0.0, 1.0, out=out)  # antialiased resampling may overshoot by a hair
    return out


# --------------------------------------------------------------------------------------------------
# The same preparation for a batch of same-shape cells, on any torch device (GPU-side preprocessing)
# --------------------------------------------------------------------------------------------------
#: Integer dtypes sent to the device as they are (4x less to copy than float32).
_BATCH_INT_DTYPES = (np.uint8, np.int8, np.int16, np.uint16, np.int32)


def fits_batched(plane: np.ndarray, size: int) -> bool:
    """True if :func:`prepare_batch` prepares ``plane`` exactly as :func:`prepare_pair` does: a 2D
    integer or finite float image that needs neither the huge-image reduction nor percentile
    subsampling. Other planes take the one-at-a-time path."""
    if plane.ndim != 2 or plane.size > _PERCENTILE_SAMPLE or max(plane.shape) > 4 * size:
        return False
    if plane.dtype.kind not in "uif" or not float32_faithful(plane):  # int64 offsets, float64 1e8 + cell ...
        return False
    if plane.dtype.kind in "ui":
        return True
    return bool(np.isfinite(plane).all())


def _batch_dtype(planes) -> np.dtype:
    dts = {np.dtype(a.dtype) for a in planes}
    if len(dts) == 1:
        (dt_,) = dts
        if any(dt_ == np.dtype(t) for t in _BATCH_INT_DTYPES):
            return dt_
    return np.dtype(np.float32)


def stack_for_batch(pairs) -> np.ndarray:
    """[(protein, dna or None), ...] of one shape (each accepted by :func:`fits_batched`) -> raw
    (B, 2, H, W) array in a compact dtype (uint16 stays uint16: 2 bytes a pixel to copy). A missing
    DNA plane is zeros, which prepare_batch turns into zeros as prepare_pair does."""
    planes = [x for pd in pairs for x in pd if x is not None]
    dt_ = _batch_dtype(planes)
    h, w = pairs[0][0].shape
    raw = np.zeros((len(pairs), 2, h, w), dt_)
    for i, (p, d) in enumerate(pairs):
        raw[i, 0] = p
        if d is not None:
            raw[i, 1] = d
    return raw


def prepare_batch(raw, *, size: int = 128, device=None):
    """Batched, device-side :func:`prepare_pair`: raw (B, 2, H, W) numpy array (as made by
    :func:`stack_for_batch`) or tensor -> float32 tensor (B, 2, size, size) in [0, 1] on ``device``.

    The same computation as prepare_pair per plane (percentiles by 'linear' interpolation between
    order statistics, found by a sort of each plane; clip; antialiased bilinear resize of the longer
    side; centred zero padding); constant planes (a missing DNA image) become zeros. On a GPU the raw integer
    pixels are copied (2 bytes each for uint16) and everything else happens there. Planes must pass
    :func:`fits_batched`; constant protein planes must have been refused (:func:`validate_pair`).
    """
    import torch
    import torch.nn.functional as F

    dev = torch.device(device) if device is not None else None
    if isinstance(raw, np.ndarray):
        u16 = raw.dtype == np.uint16  # torch has no general uint16 arithmetic: ship as int16, fix there
        t = torch.from_numpy(raw.view(np.int16) if u16 else np.ascontiguousarray(raw))
        if dev is not None and dev.type == "cuda":
            t = t.pin_memory()  # lets the copy below run asynchronously
        t = t.to(dev if dev is not None else "cpu", non_blocking=True)
        x = (t.to(torch.int32) & 0xFFFF).to(torch.float32) if u16 else t.to(torch.float32)
    else:
        x = (raw.to(dev) if dev is not None else raw).to(torch.float32)
    b, c, h, w = x.shape
    n = h * w
    flat = x.reshape(b * c, n)
    # np.percentile(..., method="linear"): position q * (n - 1) between order statistics k0 and k0+1
    qs = [LOW_PERCENTILE / 100.0, HIGH_PERCENTILE / 100.0]
    pos = [q * (n - 1) for q in qs]
    k0 = [int(math.floor(p_)) for p_ in pos]
    k1 = [min(k + 1, n - 1) for k in k0]
    srt = torch.sort(flat, dim=1).values
    lo = srt[:, k0[0]] + (srt[:, k1[0]] - srt[:, k0[0]]) * float(pos[0] - k0[0])
    hi = srt[:, k0[1]] + (srt[:, k1[1]] - srt[:, k0[1]]) * float(pos[1] - k0[1])
    del srt
    mx = flat.max(1).values
    hi = torch.where(hi > lo, hi, mx)
    scale = torch.where(hi > lo, 1.0 / (hi - lo).clamp_min(1e-30), torch.zeros_like(hi))
    y = ((flat - lo[:, None]) * scale[:, None]).clamp_(0, 1).view(b, c, h, w)
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    if (nh, nw) != (h, w):
        if nh < h and y.device.type == "mps":  # antialiased resize is missing on MPS in many torch versions
            y = F.interpolate(y.cpu(), size=(nh, nw), mode="bilinear", align_corners=False, antialias=True).to(y.device)
        else:
            y = F.interpolate(y, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h)
    if (nh, nw) != (size, size):
        out = y.new_zeros((b, c, size, size))
        top, left = (size - nh) // 2, (size - nw) // 2
        out[:, :, top:top + nh, left:left + nw] = y
        y = out
    return y.clamp_(0, 1)


def prepare_native(protein, dna=None, *, channel: int | None = None, dna_channel: int | None = None,
                   max_side: int = MAX_NATIVE_SIDE) -> tuple[np.ndarray, float]:
    """Protein (+ optional DNA) -> (float32 array (2, H, W) in [0, 1], downscale factor).

    Keeps the native resolution (for the autoencoder) unless a side exceeds ``max_side``, in which
    case the image is block-mean reduced and the factor (> 1) is returned so callers can say so.
    """
    p, d = _pair_planes(protein, dna, channel, dna_channel)
    f = max(1, math.ceil(max(p.shape) / max_side))
    if f > 1:
        p = block_reduce_to(p, max_side)
        d = block_reduce_to(d, max_side) if d is not None else None
    out = np.zeros((2,) + p.shape, np.float32)
    out[0] = normalize(p)
    if d is not None:
        out[1] = normalize(d)
    return out, float(f)


def _reduce_if_huge(plane: np.ndarray, size: int) -> np.ndarray:
    # Percentiles of a 20000x20000 image would need GBs; reduce first (the model sees `size` anyway).
    if max(plane.shape) > 8 * size:
        return block_reduce_to(plane, 4 * size)
    return plane


#: tifffile axis codes -> what the axis is, for messages (C and S are channel axes; Q and I say
#: nothing about what the planes are).
_AXIS_WORDS = {
    "Z": "z-slices", "T": "time points", "A": "angles", "P": "phases", "R": "tiles", "M": "mosaic tiles",
    "H": "lifetime bins", "E": "wavelengths", "L": "exposures", "V": "events",
}


def _shape_text(a: np.ndarray, axes: str | None = None) -> str:
    shape = "x".join(str(n) for n in a.shape)
    return f"shape {shape}" + (f", axes {axes}" if axes else "") + f", {a.dtype}"


def _not_channels(a: np.ndarray, axes: str, name: str) -> InputError:
    """The error for a file whose axes include one (or more) that is not a channel axis."""
    sizes = dict(zip(axes, a.shape))
    z, t = sizes.get("Z"), sizes.get("T")
    chans = sizes.get("C", sizes.get("S"))
    kind = "2-channel " if chans == 2 else (f"{chans}-channel " if chans else "")
    parts = [f"{c}={n}" for c, n in zip(axes, a.shape) if c not in "YX"]
    if z and t:
        what, todo = (f"a time series of {kind}z-stacks", "save one time point, max-projected "
                      "(Fiji: Image > Stacks > Z Project..., Max Intensity)")
    elif z:
        what, todo = (f"a {kind}z-stack", "max-project it (Fiji: Image > Stacks > Z Project..., Max "
                      "Intensity) or save one plane")
    elif t:
        what, todo = (f"a {kind}time series", "save one time point (Fiji: Image > Duplicate..., one "
                      "frame)")
    else:
        other = next(c for c in axes if c not in "YXCS")
        what = f"a stack of {sizes[other]} {_AXIS_WORDS.get(other, other + ' planes')}"
        todo = "save one plane"
    if chans == 2:
        todo += ", keeping both channels"
    elif chans:
        todo += f"; it also has {chans} channels: keep the protein channel (and the DNA channel)"
    return InputError(
        f"{name} is {what} ({', '.join(parts)}; {_shape_text(a, axes)}); one 2D image per cell is "
        f"expected: {todo}, then load it again."
    )


def _too_many_channels(a: np.ndarray, n: int, axes: str | None, name: str) -> InputError:
    return InputError(
        f"{name} has {n} channels ({_shape_text(a, axes)}); expected 1 channel (protein) or 2 "
        "(channel 0 protein, channel 1 DNA). Save the protein channel (and the DNA channel) as "
        "separate files (e.g. cell1.tif and cell1_dna.tif) or as a 2-channel file with the protein "
        "channel first."
    )


def _split_by_axes(a: np.ndarray, axes: str, name: str):
    """Split using the axes the file declares; None when they do not settle it (then the shape
    decides, as for arrays without axes)."""
    keep = [i for i, (c, n) in enumerate(zip(axes, a.shape)) if n != 1 or c in "YX"]
    a = a.reshape([a.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if axes.count("Y") != 1 or axes.count("X") != 1 or len(set(axes)) != len(axes):
        return None
    a = np.moveaxis(a, [axes.index("Y"), axes.index("X")], [-2, -1])
    axes = "".join(c for c in axes if c not in "YX") + "YX"
    other = axes[:-2]
    if not other:
        return a, None
    if any(c not in "CS" for c in other):
        raise _not_channels(a, axes, name)
    if len(other) > 1:  # e.g. an ImageJ composite of RGB images (C and S)
        raise _too_many_channels(a, int(np.prod(a.shape[:-2])), axes, name)
    n = a.shape[0]
    if n == 2:
        return a[0], a[1]
    if other == "S" and n in (3, 4):  # RGB(A), also stored planar (3, Y, X)
        return np.moveaxis(a, 0, -1), None
    raise _too_many_channels(a, n, axes, name)


def split_channels(array, *, name: str = "image",
                   axes: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Split an image read from a file into (protein, DNA or None).

    2-channel files, (2, Y, X) or (Y, X, 2), hold protein in channel 0 and DNA in channel 1. A 2D
    image or an RGB/RGBA image is protein only. Anything else raises InputError.

    ``axes`` is what the file says its axes are (tifffile's codes, as given by
    :func:`napari_organelle.io.read_image_axes`, e.g. ``"ZYX"``, ``"CYX"``, ``"SYX"``, ``"YXS"``):
    a Z or T axis is then never taken for channels (a 2-slice z-stack is refused, not read as
    protein + DNA), a C axis of 2 is protein + DNA, an S (samples) axis of 3 or 4 is RGB(A), also
    when stored planar. Without axes (or with tifffile's unknown Q / I axes) the shape decides.
    """
    a = np.asarray(array)
    if axes and len(axes) == a.ndim and not set(axes) & set("QI"):
        got = _split_by_axes(a, axes.upper(), name)
        if got is not None:
            return got
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        return a, None
    if a.ndim == 3 and a.shape[0] == 2:
        return a[0], a[1]
    if a.ndim == 3 and a.shape[-1] == 2:
        return a[..., 0], a[..., 1]
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        return a, None
    if a.ndim < 2:
        raise InputError(f"{name} is not a 2D image ({_shape_text(a)}).")
    if a.ndim == 3 and channel_last_count(a) and a.shape[0] > 16:
        c = a.shape[-1]
        raise InputError(
            f"{name} looks like one image with {c} channels stored last ({_shape_text(a)}: Y, X, C), not "
            f"{a.shape[0]} planes of {a.shape[1]}x{c}; expected 1 channel (protein) or 2 (channel 0 protein, "
            "channel 1 DNA). Save the protein channel (and the DNA channel) as separate files or as a "
            "2-channel file with the protein channel first."
        )
    if a.ndim == 3:
        n = a.shape[0]
        raise InputError(
            f"{name} holds {n} planes of {a.shape[1]}x{a.shape[2]} ({_shape_text(a)}) and the file "
            "does not say whether they are channels, z-slices or time points; one 2D image per cell "
            "(protein, or protein + DNA as 2 channels) is expected. If they are channels, save the "
            "protein channel (and the DNA channel) as separate files or as a 2-channel file"
            + ("; if it is a colour image, save it as ordinary (interleaved) RGB" if n in (3, 4) else "")
            + "; if it is a z-stack or time series, max-project it or save one plane."
        )
    raise InputError(
        f"{name} has {a.ndim} dimensions ({_shape_text(a)}); one 2D image per cell (protein, or "
        "protein + DNA as 2 channels) is expected. Save one plane per cell (max-project a z-stack, "
        "pick one time point), keeping at most the protein and DNA channels."
    )
