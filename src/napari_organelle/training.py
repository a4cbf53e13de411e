"""The one training engine, for the classifier and the autoencoder.

The (small) data set is kept resident on the training device and batched with index permutations;
augmentation runs on the device in torch. Validation runs every epoch; the weights with the best
validation loss are kept (a CPU copy) and returned. When fine-tuning (``init`` given) the starting
model is validated first, as "epoch 0": an epoch must beat it to be kept, so a run that only makes
the model worse returns the starting weights unchanged (and says so).

Runs are cooperative: ``should_stop`` is polled every batch and ``callback`` receives
:class:`BatchEvent` and :class:`EpochEvent` objects. This module prints nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import LoadedModel, checkpoint_dict, now_iso, write_checkpoint_dict
from .classes import CLASSES
from .models.registry import DEFAULT_ARCH, build_model, check_arch, check_kind
from .preprocess import InputError

LABEL_SMOOTHING = 0.05
#: Largest autoencoder training crop (planes are reduced to 512 pixels a side and padded to the crop).
MAX_CROP_SIZE = 1024


# --------------------------------------------------------------------------------------------------
# Configuration, devices, events
# --------------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    device: str = "auto"          # auto|cpu|cuda|cuda:N|mps; auto picks CUDA, then MPS, then CPU
    amp: bool = True              # bf16 autocast on CUDA, and on CPUs with native bf16 (cpu_bf16_fast)
    channels_last: bool = False
    seed: int | None = 0
    patience: int | None = None   # early stopping on val loss
    augment: bool = True
    dna_dropout: float = 0.3      # classifier: probability of zeroing the DNA channel per sample
    intensity: str = "wide"       # classifier augmentation's intensity transfers: "wide" (gamma 0.4-2.5,
                                  # S-curves, log compression) or "mild" (gamma 0.7-1.43, rounds 1-5)
    freeze_backbone: bool = False
    crop_size: int = 96           # autoencoder: random crops of native planes
    num_threads: int | None = None  # CPU threads; None: chosen for the load, epoch by epoch (_threads)
    reserve_cores: int = 0        # with num_threads None: cores left to our other busy threads (a GUI)
    distributed: bool | None = None  # DDP over an initialised torch.distributed process group;
                                     # None: on when one with > 1 ranks is initialised (torchrun)
    compile: bool = False         # torch.compile the model for training (opt-in; first epoch compiles)

    def validate(self) -> None:
        def _int(name, lo):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise InputError(f"{name.replace('_', ' ').capitalize()} must be a whole number >= {lo} "
                                 f"(got {v!r}).")
        _int("epochs", 1)
        _int("batch_size", 1)
        _int("crop_size", 8)
        if self.crop_size > MAX_CROP_SIZE:
            raise InputError(f"Crop size {self.crop_size} is too large: autoencoder training crops are at most "
                             f"{MAX_CROP_SIZE} pixels (every plane is padded to it; the default is 96).")
        if self.seed is not None:
            if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) \
                    or not 0 <= int(self.seed) < 2 ** 32:
                raise InputError(f"The seed must be a whole number from 0 to {2 ** 32 - 1} (got {self.seed!r}).")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"The learning rate must be a positive number (got {self.lr!r}).")
        if self.lr > 1:
            raise InputError(f"A learning rate of {self.lr:g} is far too large (AdamW): use 1e-4 to fine-tune, "
                             "1e-3 from scratch, 1e-2 at most.")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay)
                and self.weight_decay >= 0):
            raise InputError(f"Weight decay must be >= 0 (got {self.weight_decay!r}).")
        if not 0.0 <= float(self.dna_dropout) <= 1.0:
            raise InputError(f"DNA dropout is a probability in [0, 1] (got {self.dna_dropout!r}).")
        if self.intensity not in INTENSITY_AUGMENTATIONS:
            raise InputError(f"Intensity augmentation must be one of {', '.join(INTENSITY_AUGMENTATIONS)} "
                             f"(got {self.intensity!r}).")
        if self.patience is not None:
            _int("patience", 1)
        if self.num_threads is not None:
            _int("num_threads", 1)
        _int("reserve_cores", 0)
        if self.distributed not in (None, True, False):
            raise InputError(f"distributed must be True, False or None (got {self.distributed!r}).")


def resolve_device(spec) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' (or a torch.device) -> torch.device; InputError if
    the device is unknown or not available here."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    s = str(spec if spec is not None else "auto").strip().lower()
    mps_ok = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if s in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if mps_ok:
            return torch.device("mps")
        return torch.device("cpu")
    if s == "cpu":
        return torch.device("cpu")
    if s == "mps":
        if not mps_ok:
            raise InputError("Apple MPS is not available on this machine; use cpu or auto.")
        return torch.device("mps")
    if s == "gpu":
        s = "cuda"
    if s == "cuda" or s.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError("CUDA is not available on this machine; use cpu or auto.")
        idx = 0
        if s.startswith("cuda:"):
            try:
                idx = int(s[5:])
            except ValueError:
                raise InputError(f"Unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps.") from None
        n = torch.cuda.device_count()
        if not 0 <= idx < n:
            raise InputError(f"cuda:{idx} does not exist: this machine has {n} CUDA device"
                             f"{'' if n == 1 else 's'} (cuda:0{'' if n == 1 else f' to cuda:{n - 1}'}).")
        return torch.device("cuda", idx)
    raise InputError(f"Unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps.")


def available_devices() -> list[tuple[str, str]]:
    """(spec, label) pairs for a device chooser, 'auto' first."""
    auto = resolve_device("auto")
    out = [("auto", f"auto (-> {auto})"), ("cpu", f"CPU ({torch.get_num_threads()} threads)")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            out.append((f"cuda:{i}", f"cuda:{i} {torch.cuda.get_device_name(i)}"))
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        out.append(("mps", "Apple MPS"))
    return out


@dataclass
class BatchEvent:
    epoch: int
    epochs: int
    batch: int          # 1-based
    batches: int
    loss: float
    phase: str = "train"


@dataclass
class EpochEvent:
    epoch: int
    epochs: int
    train_loss: float
    train_acc: float | None       # fraction in [0, 1] (classifier), None (autoencoder)
    val_loss: float
    val_acc: float | None
    seconds: float
    best_epoch: int
    is_best: bool
    lr: float
    val_psnr: float | None = None  # autoencoder: mean per-image PSNR (dB) on the validation crops
    train_psnr: float | None = None


def format_epoch(ev: EpochEvent) -> str:
    """'Epoch: 12  Train loss: 0.436  Train Acc: 77.58%  Val Loss: 0.956  Val Acc: 54.69%  Time: 12s'
    (autoencoder: 'Epoch: 3  Train loss: 0.00123  Val Loss: 0.00101  Val PSNR: 31.2 dB  Time: 9s')."""
    if ev.val_psnr is not None or ev.val_acc is None:
        psnr = f"  Val PSNR: {ev.val_psnr:.1f} dB" if ev.val_psnr is not None else ""
        return (f"Epoch: {ev.epoch}  Train loss: {ev.train_loss:.5f}  Val Loss: {ev.val_loss:.5f}{psnr}  "
                f"Time: {ev.seconds:.0f}s")
    tr = f"{100 * ev.train_acc:.2f}%" if ev.train_acc is not None else "n/a"
    return (f"Epoch: {ev.epoch}  Train loss: {ev.train_loss:.3f}  Train Acc: {tr}  "
            f"Val Loss: {ev.val_loss:.3f}  Val Acc: {100 * ev.val_acc:.2f}%  Time: {ev.seconds:.0f}s")


@dataclass
class TrainResult:
    model: nn.Module               # best weights, eval mode, on the CPU
    kind: str
    arch: str
    classes: list[str] | None
    history: list[EpochEvent]
    best_epoch: int                # 0: the initial weights were returned (no epoch finished, or, when
                                   # fine-tuning, no epoch improved on the starting model)
    best_val_loss: float           # validation loss of the returned weights (inf: none measured)
    stopped: bool                  # True: stopped by should_stop (or diverged)
    stop_reason: str
    device: str
    seconds: float
    input_size: int | None         # classifier: S; autoencoder: crop size
    config: TrainConfig
    n_train: int = 0
    n_val: int = 0
    training_meta: dict = field(default_factory=dict)
    #: Fine-tuning only: the starting model's validation before epoch 1 ({"val_loss", and
    #: "val_accuracy" (classifier) or "val_psnr" (autoencoder)}); None when trained from scratch.
    baseline: dict | None = None
    #: Set by recipes.train_model: the held-out (test, or validation when there is no test split)
    #: figures, so saving the result alone keeps them.
    held_out_metrics: dict | None = None
    #: Writes of ``checkpoint_path`` during training that failed (a full disk ...): "epoch N: why".
    #: Such a failure does not end the run (the file keeps its previous content).
    checkpoint_errors: list = field(default_factory=list)

    @property
    def improved(self) -> bool:
        """True when an epoch's weights were returned (they beat the starting model when fine-tuning);
        False when the model is unchanged."""
        return self.best_epoch > 0

    @property
    def best_event(self) -> EpochEvent | None:
        for ev in self.history:
            if ev.epoch == self.best_epoch:
                return ev
        return None

    def default_training_meta(self) -> dict:
        return {
            "n_train": self.n_train, "n_val": self.n_val, "epochs": self.config.epochs,
            "epochs_run": len(self.history), "best_epoch": self.best_epoch, "seed": self.config.seed,
            "device": self.device, "date": now_iso(), "seconds": round(self.seconds, 1),
            "stopped": self.stopped, "stop_reason": self.stop_reason,
            "config": dataclasses.asdict(self.config),
            **({"baseline": dict(self.baseline)} if self.baseline is not None else {}),
            **self.training_meta,
        }

    def default_metrics(self) -> dict:
        ev = self.best_event
        unit = "cells" if self.kind == "classifier" else "planes (centre crops)"
        if ev is None:
            if self.baseline is None:
                return {}
            return {**self.baseline, "measured_on": f"validation split ({self.n_val} {unit}) before "
                                                    "fine-tuning: no epoch improved on the starting model"}
        m: dict[str, Any] = {"val_loss": ev.val_loss, "train_loss": ev.train_loss,
                             "measured_on": f"validation split ({self.n_val} {unit}) at the best epoch "
                                            f"({ev.epoch})"}
        if ev.val_acc is not None:
            m["val_accuracy"] = ev.val_acc
        if ev.val_psnr is not None:
            m["val_psnr"] = ev.val_psnr
        return m

    def checkpoint(self, *, training: dict | None = None, metrics: dict | None = None) -> dict:
        """Checkpoint dict (see checkpoints.checkpoint_dict); ``training``/``metrics`` are merged over
        the defaults this result knows (counts, epochs, seed, device, date, validation metrics)."""
        return checkpoint_dict(self.model, kind=self.kind, arch=self.arch, classes=self.classes,
                               input_size=self.input_size,
                               training={**self.default_training_meta(), **(training or {})},
                               metrics={**self.default_metrics(), **(metrics or {})})


# --------------------------------------------------------------------------------------------------
# Augmentation (on the device, driven by one torch.Generator)
# --------------------------------------------------------------------------------------------------
def _rand(gen, *shape, device):
    return torch.rand(shape, generator=gen, device=device)


def _dihedral(x: torch.Tensor, gen) -> torch.Tensor:
    """Random flips / 90-degree rotations per sample (square images): exact, no interpolation."""
    b, dev = x.shape[0], x.device
    r = _rand(gen, 3, b, device=dev) < 0.5
    x = torch.where(r[0, :, None, None, None], x.flip(-1), x)
    x = torch.where(r[1, :, None, None, None], x.flip(-2), x)
    if x.shape[-1] == x.shape[-2]:
        x = torch.where(r[2, :, None, None, None], x.transpose(-1, -2), x)
    return x


def _affine(x: torch.Tensor, gen, *, scale=(0.8, 1.2), translate=0.1, p_exact: float = 0.0) -> torch.Tensor:
    """Random rotation (any angle), flip, isotropic scale and translation per sample (bilinear).

    A fraction ``p_exact`` of the samples gets only a flip and a multiple of 90 degrees (which maps
    pixel centres onto pixel centres of a square image, so no interpolation blur)."""
    b, dev = x.shape[0], x.device
    u = _rand(gen, 6, b, device=dev)
    exact = u[5] < p_exact
    ang = torch.where(exact, torch.floor(u[0] * 4) * (math.pi / 2), u[0] * (2 * math.pi))
    s = torch.exp(math.log(scale[0]) + u[1] * (math.log(scale[1]) - math.log(scale[0])))
    s = torch.where(exact, torch.ones_like(s), s)
    f = torch.where(u[2] < 0.5, -1.0, 1.0)
    tx = torch.where(exact, torch.zeros_like(u[3]), (u[3] * 2 - 1) * translate)
    ty = torch.where(exact, torch.zeros_like(u[4]), (u[4] * 2 - 1) * translate)
    cos, sin = torch.cos(ang), torch.sin(ang)
    cos = torch.where(exact, cos.round(), cos) / s
    sin = torch.where(exact, sin.round(), sin) / s
    theta = torch.stack([torch.stack([cos * f, -sin, tx], -1), torch.stack([sin * f, cos, ty], -1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _blur(x: torch.Tensor, sigma: torch.Tensor, max_sigma: float = 1.5) -> torch.Tensor:
    """Separable gaussian blur with one sigma per sample (sigma 0 = unchanged)."""
    b, c, h, w = x.shape
    r = int(math.ceil(3 * max_sigma))
    if min(h, w) <= r:
        return x
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    sig = sigma.clamp_min(1e-3)[:, None]
    k = torch.exp(-(t[None] ** 2) / (2 * sig ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (b*c, 2r+1)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), k[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


INTENSITY_AUGMENTATIONS = ("wide", "mild")


def random_transfer(x: torch.Tensor, gen: torch.Generator, *, wide: bool = True) -> torch.Tensor:
    """A random monotone intensity transfer of a (B, C, H, W) batch in [0, 1], per sample and channel.

    Microscopes, cameras and the software that saved an image map photons to grey levels by different
    curves (display gamma, a log or S-shaped lookup table, an auto-contrast); the product's percentile
    scaling removes offset and gain but not the curve. ``wide``: gamma log-uniform in 0.4-2.5 for 60 %
    of the samples, an S-curve (logistic, gain 3-10, midpoint 0.2-0.8) for 25 %, log compression
    (log(1 + a x) / log(1 + a), a 3-100) for 15 %. Not wide: gamma log-uniform in 0.7-1.43 (rounds 1-5).
    0 stays 0 and 1 stays 1 in every curve.
    """
    b, c = x.shape[:2]
    v = _rand(gen, 4, b, c, device=x.device)
    lo, hi = (0.4, 2.5) if wide else (0.7, 1.43)
    gamma = torch.exp(math.log(lo) + v[0] * (math.log(hi) - math.log(lo)))[..., None, None]
    x = x.clamp(0, 1)
    if not wide:
        return x.pow(gamma)
    y = x.pow(gamma)
    # S-curve, normalised so that 0 -> 0 and 1 -> 1
    k = (3 + 7 * v[1])[..., None, None]
    m = (0.2 + 0.6 * v[2])[..., None, None]
    s0, s1 = torch.sigmoid(-k * m), torch.sigmoid(k * (1 - m))
    s = (torch.sigmoid(k * (x - m)) - s0) / (s1 - s0)
    a = torch.exp(math.log(3) + v[2] * (math.log(100) - math.log(3)))[..., None, None]
    lg = torch.log1p(a * x) / torch.log1p(a)
    pick = v[3][..., None, None]
    y = torch.where(pick < 0.6, y, torch.where(pick < 0.85, s, lg))
    return y.clamp_(0, 1)


def augment_classifier(x: torch.Tensor, gen: torch.Generator, *, dna_dropout: float = 0.3,
                       intensity: str = "wide") -> torch.Tensor:
    """Strong augmentation of a (B, C, S, S) batch in [0, 1], on its device.

    Geometry: exact flips/90-degree rotations for 1/4 of the samples, otherwise a random affine
    (any rotation, flip, scale 0.8-1.2, translation +-5 % of the side). Then random gaussian blur
    (sigma 0-1.5 px, half of the samples), for 80 % of the samples a random intensity transfer per
    channel (``random_transfer``; ``intensity`` "wide" or "mild") with contrast / brightness jitter,
    additive gaussian + signal-dependent (poisson-like) noise, and DNA dropout (channel 1 zeroed).
    """
    b, c, h, w = x.shape
    dev = x.device
    u = _rand(gen, 6, b, device=dev)
    x = _affine(x, gen, p_exact=0.25)
    # blur
    sigma = torch.where(u[1] < 0.5, u[2] * 1.5, torch.zeros_like(u[2]))
    x = _blur(x, sigma)
    # intensity, per sample and channel
    v = _rand(gen, 5, b, c, device=dev)
    contrast = 0.8 + 0.45 * v[1]
    bright = (v[2] * 2 - 1) * 0.08
    on = (u[3] < 0.8)[:, None]
    contrast = torch.where(on, contrast, torch.ones_like(contrast))
    bright = torch.where(on, bright, torch.zeros_like(bright))
    x = x.clamp(0, 1)
    x = torch.where(on[..., None, None], random_transfer(x, gen, wide=intensity == "wide"), x)
    x = x * contrast[..., None, None] + bright[..., None, None]
    # noise
    noisy = (u[4] < 0.5)[:, None, None, None]
    g_sigma = (v[3] * 0.04)[..., None, None]
    p_scale = (v[4] * 0.03)[..., None, None]
    g_sigma = torch.where(noisy, g_sigma, torch.zeros_like(g_sigma))
    p_scale = torch.where(noisy, p_scale, torch.zeros_like(p_scale))
    std = torch.addcmul(g_sigma ** 2, p_scale, x.clamp_min(0)).sqrt_()
    x = torch.addcmul(x, torch.randn(x.shape, generator=gen, device=dev, dtype=x.dtype), std).clamp_(0, 1)
    if c >= 2 and dna_dropout > 0:
        drop = (u[5] < dna_dropout)[:, None, None, None]
        x = torch.cat([x[:, :1], torch.where(drop, torch.zeros_like(x[:, 1:2]), x[:, 1:2]), x[:, 2:]], 1)
    return x.contiguous()


def augment_planes(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Autoencoder crops (B, 1, c, c): flips/90-degree rotations and a mild gamma (half the samples).
    Input and target are the same augmented crop."""
    x = _dihedral(x, gen)
    b = x.shape[0]
    u = _rand(gen, 2, b, device=x.device)
    gamma = torch.where(u[0] < 0.5, torch.exp((u[1] * 2 - 1) * math.log(1.25)), torch.ones_like(u[1]))
    return x.clamp(0, 1).pow(gamma[:, None, None, None]).contiguous()


# --------------------------------------------------------------------------------------------------
# Data checks
# --------------------------------------------------------------------------------------------------
def _as_tensor(a, dtype, what: str) -> torch.Tensor:
    try:
        if isinstance(a, torch.Tensor):
            t = a.detach()
        else:
            t = torch.from_numpy(np.ascontiguousarray(np.asarray(a)))
    except Exception as exc:
        raise InputError(f"The {what} could not be converted to an array ({exc}).") from None
    if dtype.is_floating_point and not t.is_floating_point():
        t = t.float()
    return t.to(dtype)


def _check_range(t: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"The {what} contain NaN or infinite values; prepare them with preprocess.")
    lo, hi = float(t.min()), float(t.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise InputError(f"The {what} range from {lo:.3g} to {hi:.3g}; they must be normalised to [0, 1] "
                         "(use preprocess.prepare_pair / prepare_native).")


def _classifier_data(data, what: str, n_classes: int | None):
    if data is None:
        raise InputError(f"No {what} data was given; a validation split is required to choose the best "
                         "epoch (datasets.stratified_split makes one).")
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise InputError(f"The {what} data must be a pair (X, y) with X (N, 2, S, S) and y (N,).")
    raw = data[0]
    if isinstance(raw, (np.ndarray, torch.Tensor)) and str(raw.dtype) in ("uint8", "torch.uint8"):
        # uint8 images stand for [0, 1] in 255 steps: kept as bytes (4x less memory), made float
        # one batch at a time
        X = _as_tensor(raw, torch.uint8, f"{what} images")
    else:
        X = _as_tensor(raw, torch.float32, f"{what} images")
    y = _as_tensor(data[1], torch.int64, f"{what} labels")
    if X.ndim != 4 or X.shape[-1] != X.shape[-2]:
        raise InputError(f"The {what} images have shape {tuple(X.shape)}; expected (N, 2, S, S).")
    if X.shape[0] == 0:
        raise InputError(f"The {what} data are empty; give at least one image per class.")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise InputError(f"The {what} data have {X.shape[0]} images but {tuple(y.shape)} labels; "
                         "give one label per image.")
    if n_classes is not None and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise InputError(f"The {what} labels range from {int(y.min())} to {int(y.max())}, but there are "
                         f"{n_classes} classes (labels 0..{n_classes - 1}).")
    if X.is_floating_point():
        _check_range(X, f"{what} images")
    return X, y


def _planes(data, what: str) -> list[torch.Tensor]:
    if data is None:
        raise InputError(f"No {what} planes were given; a validation split is required to choose the "
                         "best epoch.")
    items = list(data) if not isinstance(data, (np.ndarray, torch.Tensor)) else [data[i] for i in range(len(data))]
    planes: list[torch.Tensor] = []
    for i, item in enumerate(items):
        t = _as_tensor(item, torch.float32, f"{what} plane {i}")
        if t.ndim == 2:
            cand = [t]
        elif t.ndim == 3:
            cand = list(t)
        else:
            raise InputError(f"The {what} item {i} has shape {tuple(t.shape)}; give 2D planes or (C, H, W).")
        for p in cand:
            if min(p.shape) < 8:
                raise InputError(f"The {what} item {i} is {p.shape[0]}x{p.shape[1]}; planes need >= 8x8 pixels.")
            if not bool(torch.isfinite(p).all()):
                raise InputError(f"The {what} item {i} contains NaN or infinite values.")
            if float(p.max()) == float(p.min()):
                continue  # constant plane, e.g. a missing DNA channel: nothing to learn
            planes.append(p)
    if not planes:
        raise InputError(f"The {what} data contain no non-constant planes.")
    for p in planes[:64]:
        _check_range(p, f"{what} planes")
    return planes


def _pad_to(p: torch.Tensor, size: int) -> torch.Tensor:
    h, w = p.shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if ph == 0 and pw == 0:
        return p
    mode = "reflect" if (ph < h and pw < w) else "replicate"
    return F.pad(p[None, None], (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode=mode)[0, 0]


def _centre_crop(p: torch.Tensor, size: int) -> torch.Tensor:
    p = _pad_to(p, size)
    h, w = p.shape
    t, l = (h - size) // 2, (w - size) // 2
    return p[t:t + size, l:l + size]


# --------------------------------------------------------------------------------------------------
# Model preparation
# --------------------------------------------------------------------------------------------------
def _prepare_model(kind, init, arch, arch_kwargs, classes):
    if init is not None:
        if not isinstance(init, LoadedModel):
            raise InputError("init must be a LoadedModel (checkpoints.load_checkpoint / resolve_model).")
        if init.kind != kind:
            raise InputError(f"The starting model is {'an' if init.kind[0] == 'a' else 'a'} {init.kind}; "
                             f"choose a {kind} to train a {kind}.")
        if arch is not None and arch != init.arch:
            raise InputError(f"The starting model is a {init.arch}; it cannot be trained as a {arch}.")
        if arch_kwargs:
            raise InputError("arch_kwargs cannot be changed when fine-tuning an existing model.")
        model = copy.deepcopy(init.model).cpu()  # never touch the model in use
        model.arch_kwargs = copy.deepcopy(init.model.arch_kwargs)
        arch = init.arch
        if kind == "classifier":
            old = list(init.classes or [])
            classes = list(classes) if classes is not None else old
            if classes != old:
                old_head = model.head
                model.replace_head(len(classes))
                with torch.no_grad():
                    for i, name in enumerate(classes):
                        if name in old:
                            j = old.index(name)
                            model.head.weight[i].copy_(old_head.weight[j])
                            model.head.bias[i].copy_(old_head.bias[j])
        return model, arch, classes
    arch = check_arch(kind, arch)
    kw = dict(arch_kwargs or {})
    if kind == "classifier":
        kw["num_classes"] = len(classes)
    try:
        model = build_model(kind, arch, **kw)
    except TypeError as exc:
        raise InputError(f"Invalid settings for the {arch} architecture: {exc}.") from None
    return model, arch, classes


def _stop_fn(should_stop) -> Callable[[], bool]:
    if should_stop is None:
        return lambda: False
    if hasattr(should_stop, "is_set"):
        return lambda: bool(should_stop.is_set())
    if callable(should_stop):
        return lambda: bool(should_stop())
    raise InputError("should_stop must be a callable or an object with is_set() (threading.Event).")


def _lr_lambda(total_steps: int, warmup_frac: float = 0.1):
    warm = max(1, int(round(warmup_frac * total_steps)))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        prog = (step - warm) / max(1, total_steps - warm)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, prog)))

    return f


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def _dist_info(config: TrainConfig) -> tuple[int, int]:
    """(rank, world size) of the data-parallel run this training belongs to; (0, 1) when not
    distributed. ``config.distributed`` None: distributed when a process group with > 1 ranks is
    initialised (e.g. under torchrun via :mod:`napari_organelle.distributed`)."""
    want = config.distributed
    dist = torch.distributed
    ready = bool(dist.is_available() and dist.is_initialized())
    if want is None:
        want = ready and dist.get_world_size() > 1
    if not want:
        return 0, 1
    if not ready:
        raise InputError("distributed=True needs an initialised torch.distributed process group; start "
                         "training with torchrun (python -m napari_organelle.distributed).")
    return int(dist.get_rank()), int(dist.get_world_size())


def _reduce_device(device: torch.device) -> torch.device:
    """Where collective tensors live: the GPU for NCCL, the CPU otherwise (gloo)."""
    return device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")


def _all_sum(values: list, device: torch.device) -> list[float]:
    """All-reduce (sum) a few numbers/0-d tensors across ranks; one collective, one sync."""
    t = torch.stack([torch.as_tensor(v, dtype=torch.float64).reshape(()).to(_reduce_device(device))
                     for v in values])
    torch.distributed.all_reduce(t)
    return [float(v) for v in t.cpu()]


def _average_buffers(net: nn.Module, world: int, device: torch.device) -> None:
    """Make floating-point buffers (BatchNorm running statistics) identical on every rank (the mean
    over ranks). DDP broadcasts rank 0's buffers at each forward, but the last forward of an epoch
    still updates each rank's copy with its own batch."""
    rd = _reduce_device(device)
    for b in net.buffers():
        if b.is_floating_point():
            t = b.detach().to(rd, copy=True)
            torch.distributed.all_reduce(t)
            b.copy_((t / world).to(b.device))


def _cl_safe_on_cpu(model: nn.Module, min_channels: int = 8) -> bool:
    """Whether every convolution of ``model`` has at least ``min_channels`` output channels (the
    channels-last layout is used for training on the CPU only then; see ``train``)."""
    return all(m.out_channels >= min_channels for m in model.modules() if isinstance(m, nn.Conv2d))


def _train_step(model: nn.Module, optimizer, loss_fn, xb: torch.Tensor, yb: torch.Tensor, autocast):
    """One optimisation step; returns (detached loss, detached output). Module-level so tests can
    simulate failures (e.g. CUDA out-of-memory)."""
    with autocast():
        out = model(xb)
    loss = loss_fn(out.float(), yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), out.detach()


# --------------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------------
def train(kind: str, train_data, val_data, config: TrainConfig | None = None, *, classes=None,
          init: LoadedModel | None = None, arch: str | None = None, arch_kwargs: dict | None = None,
          callback: Callable[[Any], None] | None = None, should_stop=None, checkpoint_path=None,
          training_meta: dict | None = None) -> TrainResult:
    """Train a classifier or an autoencoder; returns the best-validation-loss weights.

    Fine-tuning (``init`` given): the starting model is validated before epoch 1 and counts as
    "epoch 0"; if no epoch beats its validation loss, the starting weights are returned
    (``best_epoch`` 0, ``result.baseline`` holds its metrics, ``stop_reason`` says so).

    classifier: ``train_data``/``val_data`` = (X float32 (N, 2, S, S) in [0, 1], y int64 (N,)).
    autoencoder: lists of float32 planes (2D, or (C, H, W) whose non-constant channels are used).
    ``training_meta`` (e.g. {"data": "...", "command": "..."}) goes into every checkpoint written.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise InputError("config must be a TrainConfig.")
    config.validate()
    check_kind(kind)
    device = resolve_device(config.device)
    stop = _stop_fn(should_stop)

    # ---- data and model ----
    if kind == "classifier":
        if classes is not None:
            classes = [str(c) for c in classes]
            if len(set(classes)) != len(classes) or not classes:
                raise InputError(f"The class list {classes} is empty or names a class twice.")
        elif init is not None and init.classes:
            classes = list(init.classes)
        n_cls = len(classes) if classes is not None else None
        Xtr, ytr = _classifier_data(train_data, "training", n_cls)
        Xva, yva = _classifier_data(val_data, "validation", n_cls)
        if classes is None:
            hi = int(max(ytr.max(), yva.max()))
            if hi >= len(CLASSES):
                raise InputError(f"Labels go up to {hi}; pass the class list (classes=[...]).")
            classes = list(CLASSES)
        if Xva.shape[1:] != Xtr.shape[1:]:
            raise InputError(f"Training images are {tuple(Xtr.shape[1:])} but validation images are "
                             f"{tuple(Xva.shape[1:])}; prepare both at the same size.")
        n_train, n_val, input_size = int(Xtr.shape[0]), int(Xva.shape[0]), int(Xtr.shape[-1])
    else:
        tr_planes = _planes(train_data, "training")
        va_planes = _planes(val_data, "validation")
        n_train, n_val, input_size = len(tr_planes), len(va_planes), int(config.crop_size)

    seed = config.seed
    cuda_devs = [device.index or 0] if device.type == "cuda" else []
    old_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    try:
        with torch.random.fork_rng(devices=cuda_devs):  # leave the caller's global RNG state alone
            if seed is not None:
                torch.manual_seed(int(seed))
            model, arch, classes = _prepare_model(kind, init, arch, arch_kwargs, classes)
            if kind == "classifier":
                in_ch = int(model.arch_kwargs.get("in_channels", 2))
                if Xtr.shape[1] != in_ch:
                    raise InputError(f"The images have {Xtr.shape[1]} channels; the {arch} model takes {in_ch} "
                                     "(protein, DNA).")
            return _run(kind, model, arch, classes, config, device, stop, callback, checkpoint_path,
                        dict(training_meta or {}), n_train, n_val, input_size,
                        (Xtr, ytr, Xva, yva) if kind == "classifier" else (tr_planes, va_planes),
                        fine_tuning=init is not None)
    finally:
        if torch.get_num_threads() != old_threads:  # set above, or by the load-aware choice in _run
            torch.set_num_threads(old_threads)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """A batch as float32 in [0, 1] (uint8 batches are bytes standing for value / 255)."""
    return x.float().mul_(1.0 / 255.0) if x.dtype == torch.uint8 else x


#: Seconds between two choices of the CPU thread count during training.
_THREAD_RECHECK_S = 2.0


def cpu_bf16_fast() -> bool:
    """True where this CPU computes bfloat16 natively (Intel AMX or AVX512-BF16): autocast to bf16
    then trains the classifier ~2-5x faster than float32. Elsewhere bf16 is emulated (slower), so
    the CPU trains in float32."""
    try:
        if torch.cpu._is_amx_tile_supported():
            return True
    except Exception:  # pragma: no cover - private API missing in some versions
        pass
    try:
        with open("/proc/cpuinfo") as f:
            return "avx512_bf16" in f.read(200_000)
    except OSError:  # pragma: no cover - not Linux
        return False


def _new_generator(device):
    try:
        return torch.Generator(device=device)
    except Exception:  # pragma: no cover - devices without generator support
        return torch.Generator()


def _run(kind, model, arch, classes, config, device, stop, callback, checkpoint_path, training_meta,
         n_train, n_val, input_size, data, fine_tuning: bool = False) -> TrainResult:
    t_start = time.perf_counter()
    rank, world = _dist_info(config)
    distributed = world > 1
    is_main = rank == 0
    if distributed and not is_main:
        callback, checkpoint_path = None, None  # only rank 0 reports and writes checkpoints
    gen = _new_generator(device)
    seed = config.seed
    if distributed and seed is None:  # every rank must draw the same permutations
        seed = int(_all_sum([int(torch.randint(0, 2 ** 31 - 1, ()).item()) if is_main else 0], device)[0])
    if seed is not None:
        gen.manual_seed(int(seed) + 1)
    else:
        gen.seed()
    # Epoch permutations come from ``perm_gen`` (the same on every rank: each rank takes its shard);
    # crops/augmentation from ``gen`` (different per rank). One generator when not distributed.
    perm_gen = gen
    if distributed:
        gen = _new_generator(device)
        gen.manual_seed(int(seed) + 1 + 1_000_003 * rank)

    model = model.to(device)
    # Channels-last is much faster for the classifier's convolutions on the CPU (oneDNN): ~1.8x on a
    # training step of organelle-cnn at 128 px. It only changes the memory layout. Not on the CPU for
    # networks with convolutions narrower than 8 channels: there torch 2.14's oneDNN backward corrupts
    # the heap on AVX2 CPUs (an AMD EPYC: 5 of 5 runs aborted at widths 4, 0 of 5 at 8 or more).
    cpu_cl_safe = _cl_safe_on_cpu(model)
    use_cl = (bool(config.channels_last) and (device.type != "cpu" or cpu_cl_safe)) or (
        device.type == "cpu" and kind == "classifier" and cpu_cl_safe)
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    mf = torch.channels_last if use_cl else torch.contiguous_format

    # frozen backbone: no gradients, BatchNorm statistics frozen too
    frozen_bn: list[nn.Module] = []
    if config.freeze_backbone:
        frozen = {id(p) for p in model.backbone_parameters()}
        for p in model.parameters():
            if id(p) in frozen:
                p.requires_grad_(False)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                ps = list(m.parameters(recurse=False))
                if all(id(p) in frozen for p in ps):
                    frozen_bn.append(m)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InputError("Nothing to train: every parameter is frozen.")
    net = model  # the plain module: validation, state dicts, the returned model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None,
                    find_unused_parameters=False)
    if config.compile:
        model = torch.compile(model)
        fwd_eval = torch.compile(net) if distributed else model
    else:
        fwd_eval = net
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr,
                                  **({"fused": True} if device.type == "cuda" else {}))

    use_amp = bool(config.amp) and (device.type == "cuda" or (device.type == "cpu" and cpu_bf16_fast()))

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else nullcontext()

    def eval_autocast():
        # on the CPU, validation stays in float32: it picks the epoch kept, and the kept model runs
        # in float32 wherever it is used
        return autocast() if device.type == "cuda" else nullcontext()

    # ---- data on the device ----
    if kind == "classifier":
        Xtr, ytr, Xva, yva = data
        Xtr, ytr = Xtr.to(device), ytr.to(device)
        Xva, yva = Xva.to(device), yva.to(device)
        if distributed:  # each rank validates its share; sums are all-reduced
            Xva, yva = Xva[rank::world], yva[rank::world]
        n = Xtr.shape[0]
        train_loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    else:
        tr_planes, va_planes = data
        cs = int(config.crop_size)
        tr_planes = [_pad_to(p, cs).to(device) for p in tr_planes]
        va_crops = torch.stack([_centre_crop(p, cs) for p in va_planes])[:, None].to(device)
        if distributed:
            va_crops = va_crops[rank::world]
        n = len(tr_planes)
        train_loss_fn = nn.MSELoss()

    n_all = n
    if distributed:  # every rank gets the same number of samples per epoch (the rest wait a turn)
        n = n_all // world
        if n < 1:
            raise InputError(f"{n_all} training samples cannot be shared among {world} processes.")
    bs = min(int(config.batch_size), n)  # per process
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m not in frozen_bn for m in net.modules())
    if bs < 2 and has_bn:  # BatchNorm cannot learn from one image at a time
        raise InputError("Training needs batches of at least 2 images for this model (it uses batch "
                         "normalisation): " + ("set the batch size to 2 or more." if n >= 2 else
                                               f"add training images (there is {n})."))
    nb = math.ceil(n / bs)
    if nb > 1 and n % bs == 1:
        nb -= 1  # a last batch of one sample would upset BatchNorm; it is seen next epoch
    total_steps = config.epochs * nb
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total_steps))

    def set_train():
        net.train()
        for m in frozen_bn:
            m.eval()

    def train_batch(idx: torch.Tensor):
        if kind == "classifier":
            xb, yb = _as_float(Xtr[idx]), ytr[idx]
            if config.augment:
                xb = augment_classifier(xb, gen, dna_dropout=float(config.dna_dropout), intensity=config.intensity)
            elif config.dna_dropout > 0 and xb.shape[1] >= 2:
                drop = torch.rand(xb.shape[0], generator=gen, device=device) < config.dna_dropout
                xb = xb.clone()
                xb[:, 1] = torch.where(drop[:, None, None], torch.zeros_like(xb[:, 1]), xb[:, 1])
        else:
            hs = [tr_planes[i].shape for i in idx.tolist()]
            r = torch.rand((len(hs), 2), generator=gen, device=device).tolist()
            crops = []
            for (h, w), (a, b), i in zip(hs, r, idx.tolist()):
                t, l = int(a * (h - cs + 1)), int(b * (w - cs + 1))
                crops.append(tr_planes[i][t:t + cs, l:l + cs])
            xb = torch.stack(crops)[:, None]
            if config.augment:
                xb = augment_planes(xb, gen)
            yb = xb
        xb = xb.contiguous(memory_format=mf)
        loss, out = _train_step(model, optimizer, train_loss_fn, xb, yb, autocast)
        sched.step()
        correct = (out.argmax(1) == yb).sum() if kind == "classifier" else None
        return loss, correct

    @torch.no_grad()
    def validate():
        net.eval()
        vbs = max(bs, 64)
        if kind == "classifier":
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            for i in range(0, Xva.shape[0], vbs):
                xb = _as_float(Xva[i:i + vbs]).contiguous(memory_format=mf)
                with eval_autocast():
                    out = fwd_eval(xb)
                loss_sum += F.cross_entropy(out.float(), yva[i:i + vbs], reduction="sum")
                correct += (out.argmax(1) == yva[i:i + vbs]).sum()
            if distributed:
                ls, cs_, cnt = _all_sum([loss_sum, correct, Xva.shape[0]], device)
                return ls / cnt, cs_ / cnt, None
            return float(loss_sum) / Xva.shape[0], float(correct) / Xva.shape[0], None
        mses = [torch.zeros(0, device=device)]
        for i in range(0, va_crops.shape[0], vbs):
            xb = va_crops[i:i + vbs].contiguous(memory_format=mf)
            with eval_autocast():
                out = fwd_eval(xb)
            mses.append(((out.float() - xb) ** 2).mean(dim=(1, 2, 3)))
        mse = torch.cat(mses)
        psnrs = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
        if distributed:
            ms, ps, cnt = _all_sum([mse.sum(), psnrs.sum(), mse.numel()], device)
            return ms / cnt, None, ps / cnt
        return float(mse.mean()), None, float(psnrs.mean())

    def write_ckpt(epoch_events):
        res = _result(net, kind, arch, classes, epoch_events, best_epoch, best_loss, False, "in progress",
                      device, time.perf_counter() - t_start, input_size, config, n_train, n_val, training_meta,
                      baseline=baseline)
        ckpt = res.checkpoint(training={"in_progress": True})
        try:
            write_checkpoint_dict(checkpoint_path, ckpt)
        except OSError as exc:  # a full disk must not cost the run: the weights are still in memory
            checkpoint_errors.append(f"epoch {epoch_events[-1].epoch if epoch_events else 0}: "
                                     f"{exc.strerror or exc}")

    def out_of_memory() -> InputError:
        optimizer.zero_grad(set_to_none=True)
        optimizer.state.clear()  # the Adam moments: as large as the model
        net.cpu()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        where = "MPS" if device.type == "mps" else "CUDA"
        return InputError(f"{where} ran out of memory at batch size {bs}; try batch size "
                          f"{max(1, bs // 2)} or the CPU.")

    # CPU threads: unless fixed (num_threads), as many as the cores other processes leave free,
    # re-decided every few seconds: threads that wait for a paused sibling at the end of every
    # operation crawl on a busy machine (see napari_organelle._threads).
    auto_threads = device.type == "cpu" and not config.num_threads
    next_choice = 0.0

    def choose_threads():
        nonlocal next_choice
        if auto_threads and time.perf_counter() >= next_choice:
            from ._threads import threads_for

            n = threads_for(None, reserve=int(config.reserve_cores))
            if n != torch.get_num_threads():
                torch.set_num_threads(n)
            next_choice = time.perf_counter() + _THREAD_RECHECK_S

    choose_threads()

    initial_state = _cpu_state(net)
    checkpoint_errors: list[str] = []
    best_state: dict | None = None
    best_loss, best_epoch = math.inf, 0
    history: list[EpochEvent] = []
    stopped, reason = False, ""

    # Fine-tuning: the starting model is "epoch 0". Its validation loss is the one to beat; an epoch
    # that does not beat it is never kept. Every rank validates (validate() all-reduces).
    baseline: dict | None = None
    if fine_tuning:
        oom = None
        try:
            b_loss, b_acc, b_psnr = validate()
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is an out-of-memory error
            if not _is_oom(exc):
                raise
            oom = exc
        if oom is not None:
            raise out_of_memory()
        baseline = {"val_loss": float(b_loss)}
        if b_acc is not None:
            baseline["val_accuracy"] = float(b_acc)
        if b_psnr is not None:
            baseline["val_psnr"] = float(b_psnr)
        if math.isfinite(b_loss):
            best_loss = float(b_loss)

    def kept() -> str:
        """What the run returns, for the stop reason (lower case, no full stop)."""
        if best_state is not None:
            return f"kept the best weights (epoch {best_epoch})"
        if baseline is not None and history:
            return (f"no epoch improved on the starting model (val loss {baseline['val_loss']:.4g}); "
                    "the model is unchanged")
        if baseline is not None:
            return "no epoch had finished, so the model is unchanged (the starting weights)"
        return "no epoch had finished, so the model is unchanged (initial weights)"

    for epoch in range(1, config.epochs + 1):
        t_ep = time.perf_counter()
        oom: str | None = None
        interrupted = False
        try:
            set_train()
            perm = torch.randperm(n_all, generator=perm_gen, device=device)
            if distributed:  # strided shard: rank r takes positions r, r + world, ...
                perm = perm[:n * world].view(n, world)[:, rank]
            loss_sum = torch.zeros((), device=device)
            correct_sum = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            for b in range(nb):
                if not distributed and stop():  # distributed runs poll stop() between epochs only
                    interrupted = True
                    break
                choose_threads()
                idx = perm[b * bs:(b + 1) * bs]
                loss, correct = train_batch(idx)
                loss_sum += loss * idx.numel()
                if correct is not None:
                    correct_sum += correct
                seen += idx.numel()
                if callback is not None:
                    callback(BatchEvent(epoch, config.epochs, b + 1, nb, float(loss), "train"))
            if not interrupted:
                if distributed:
                    ls, cs_, seen = _all_sum([loss_sum, correct_sum, seen], device)
                    _average_buffers(net, world, device)
                else:
                    ls, cs_ = float(loss_sum), float(correct_sum)
                train_loss = ls / max(1, seen)
                train_acc = cs_ / max(1, seen) if kind == "classifier" else None
                val_loss, val_acc, val_psnr = validate()
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is an out-of-memory error
            if not _is_oom(exc):
                raise
            oom = str(exc)
        if oom is not None:
            raise out_of_memory()
        if interrupted:
            stopped = True
            reason = f"stopped by the user during epoch {epoch}; {kept()}"
            break
        if not math.isfinite(train_loss) or not math.isfinite(val_loss):
            stopped = True
            if best_state is not None:
                k = kept()
            elif baseline is not None:
                k = (f"no epoch improved on the starting model (val loss {baseline['val_loss']:.4g}); "
                     "the model is unchanged")
            else:
                k = "the model is unchanged (initial weights)"
            reason = (f"training diverged at epoch {epoch} (loss is not finite); lower the learning rate. "
                      f"{k[0].upper()}{k[1:]}.")
            break
        is_best = val_loss < best_loss
        if is_best:
            best_loss, best_epoch = val_loss, epoch
            best_state = _cpu_state(net)
        ev = EpochEvent(epoch=epoch, epochs=config.epochs, train_loss=train_loss, train_acc=train_acc,
                        val_loss=val_loss, val_acc=val_acc, seconds=time.perf_counter() - t_ep,
                        best_epoch=best_epoch, is_best=is_best, lr=float(optimizer.param_groups[0]["lr"]),
                        val_psnr=val_psnr)
        history.append(ev)
        if is_best and checkpoint_path is not None:
            write_ckpt(history)
        if callback is not None:
            callback(ev)
        if config.patience is not None and epoch - best_epoch >= config.patience and epoch < config.epochs:
            reason = (f"early stopping: validation loss did not improve for {config.patience} epochs"
                      + (f" (best epoch {best_epoch})" if best_state is not None else f"; {kept()}"))
            break
        stop_now = stop()
        if distributed:  # every rank must leave the loop together
            stop_now = _all_sum([float(stop_now)], device)[0] > 0
        if stop_now:
            if epoch < config.epochs:
                stopped = True
                reason = f"stopped by the user after epoch {epoch}; {kept()}"
            break
    if not reason:
        reason = (f"completed {len(history)} epochs (best epoch {best_epoch})" if best_state is not None
                  or baseline is None else f"completed {len(history)} epochs; {kept()}")

    model = net
    model.load_state_dict(best_state if best_state is not None else initial_state)
    model = model.to("cpu", memory_format=torch.contiguous_format)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    res = _result(model, kind, arch, classes, history, best_epoch, best_loss, stopped, reason, device,
                  time.perf_counter() - t_start, input_size, config, n_train, n_val, training_meta,
                  baseline=baseline)
    res.checkpoint_errors = list(checkpoint_errors)
    return res


def _result(model, kind, arch, classes, history, best_epoch, best_loss, stopped, reason, device, seconds,
            input_size, config, n_train, n_val, training_meta, baseline=None) -> TrainResult:
    return TrainResult(model=model, kind=kind, arch=arch, classes=list(classes) if classes else None,
                       history=list(history), best_epoch=best_epoch, best_val_loss=best_loss, stopped=stopped,
                       stop_reason=reason, device=str(device), seconds=seconds, input_size=input_size,
                       config=config, n_train=n_train, n_val=n_val, training_meta=dict(training_meta),
                       baseline=dict(baseline) if baseline is not None else None)


__all__ = ["TrainConfig", "TrainResult", "BatchEvent", "EpochEvent", "train", "format_epoch",
           "resolve_device", "available_devices", "augment_classifier", "augment_planes", "random_transfer", "DEFAULT_ARCH"]
