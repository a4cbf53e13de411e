"""Baselines: the models of the course project this package grew from (hw3 write-up), reimplemented.

Written from the write-up's description alone (/work/shared/origin/hw3-writeup.txt); no code was
copied. Two models and their training recipes:

* :class:`OriginCNN` -- "convolution layers with ReLU and max pooling, then three linear layers",
  Adam with its default learning rate 0.001, cross-entropy, the model kept is the one with the best
  validation loss. The write-up does not give the number or width of the convolution layers; we use
  three 3x3 convolutions (16, 32, 64 channels, padding 1), each followed by ReLU and 2x2 max pooling,
  then Linear(64*(S/8)^2, 128) ReLU Linear(128, 64) ReLU Linear(64, n_classes). No batch norm, no
  dropout, no augmentation (the write-up mentions none). Input: (B, 2, S, S) protein + DNA, as ours.

* :class:`OriginAE` -- the write-up's autoencoder exactly, with the channel count adapted:
  encoder Conv2d(C,6,k=2,s=1) ReLU Conv2d(6,12,k=2,s=1) ReLU Conv2d(12,24,k=2,s=1) ReLU;
  decoder ConvTranspose2d(24,12,k=2,s=1) ReLU ConvTranspose2d(12,6,k=2,s=1) ReLU
  ConvTranspose2d(6,C,k=2,s=1) ReLU Tanh; MSE loss; Adam lr 0.0001. The origin had C = 3 (RGB
  images); our autoencoder works on one plane at a time, so C = 1 (the first convolution takes 1
  channel instead of 3 and the last transposed convolution gives 1 instead of 3; nothing else
  changes). With ``final_relu=False`` the ReLU right before the Tanh is dropped (the "working"
  variant: a ReLU then a Tanh can only output [0, tanh(inf)) and a unit whose pre-activation goes
  negative gets no gradient at all). Its latent is (24, H-3, W-3): about 24x MORE elements than the
  1-channel input -- it does not compress.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class OriginCNN(nn.Module):
    """The origin's classifier: conv-ReLU-maxpool x3, then three linear layers (see module doc)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 2, size: int = 128,
                 widths=(16, 32, 64), hidden=(128, 64)):
        super().__init__()
        if size % (2 ** len(widths)):
            raise ValueError(f"size must be a multiple of {2 ** len(widths)}")
        layers: list[nn.Module] = []
        cin = in_channels
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers)
        side = size // 2 ** len(widths)
        dims = [cin * side * side, *hidden, num_classes]
        lin: list[nn.Module] = []
        for i in range(len(dims) - 1):
            lin.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                lin.append(nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(*lin)
        self.arch_kwargs = {"num_classes": num_classes, "in_channels": in_channels, "size": size,
                            "widths": list(widths), "hidden": list(hidden)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class OriginAE(nn.Module):
    """The origin's autoencoder (see module doc). Input (B, C, H, W); output (B, C, H, W) in [0, 1)
    with ``final_relu`` (ReLU then Tanh), in (-1, 1) without it."""

    def __init__(self, in_channels: int = 1, final_relu: bool = True):
        super().__init__()
        c = int(in_channels)
        self.in_channels = c
        self.final_relu = bool(final_relu)
        self.encoder = nn.Sequential(
            nn.Conv2d(c, 6, kernel_size=2, stride=1), nn.ReLU(True),
            nn.Conv2d(6, 12, kernel_size=2, stride=1), nn.ReLU(True),
            nn.Conv2d(12, 24, kernel_size=2, stride=1), nn.ReLU(True),
        )
        dec: list[nn.Module] = [
            nn.ConvTranspose2d(24, 12, kernel_size=2, stride=1), nn.ReLU(True),
            nn.ConvTranspose2d(12, 6, kernel_size=2, stride=1), nn.ReLU(True),
            nn.ConvTranspose2d(6, c, kernel_size=2, stride=1),
        ]
        if self.final_relu:
            dec.append(nn.ReLU(True))
        dec.append(nn.Tanh())
        self.decoder = nn.Sequential(*dec)

    def latent_shape(self, h: int, w: int) -> tuple[int, int, int]:
        return (24, h - 3, w - 3)

    def compression_ratio(self, h: int, w: int) -> float:
        """Input elements / latent elements (< 1: the latent is larger than the input)."""
        c, lh, lw = self.latent_shape(h, w)
        return (self.in_channels * h * w) / float(c * lh * lw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


# --------------------------------------------------------------------------------------------------
# Training recipes of the origin (plain loops; no augmentation, no schedule, Adam)
# --------------------------------------------------------------------------------------------------
def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_origin_classifier(model: nn.Module, train, val, *, epochs: int, lr: float = 1e-3,
                            batch_size: int = 32, seed: int = 0, log=None) -> dict:
    """Adam(lr), cross-entropy, shuffled mini-batches; keeps the weights with the lowest validation
    loss. ``train``/``val`` = (X float32 (N, 2, S, S), y int64). Returns a history dict."""
    Xtr, ytr = (torch.as_tensor(a) for a in train)
    Xva, yva = (torch.as_tensor(a) for a in val)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_loss, hist = _state(model), math.inf, []
    n = Xtr.shape[0]
    for ep in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=g)
        tl, tc = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            out = model(Xtr[idx])
            loss = F.cross_entropy(out, ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tl += loss.item() * len(idx)
            tc += int((out.argmax(1) == ytr[idx]).sum())
        model.eval()
        with torch.no_grad():
            vl, vc = 0.0, 0
            for i in range(0, Xva.shape[0], 128):
                out = model(Xva[i:i + 128])
                vl += float(F.cross_entropy(out, yva[i:i + 128], reduction="sum"))
                vc += int((out.argmax(1) == yva[i:i + 128]).sum())
        vl /= Xva.shape[0]
        sec = time.perf_counter() - t0
        if vl < best_loss:
            best_loss, best = vl, _state(model)
        hist.append({"epoch": ep, "train_loss": tl / n, "train_acc": tc / n, "val_loss": vl,
                     "val_acc": vc / Xva.shape[0], "seconds": sec})
        if log:
            log(f"  origin-cnn epoch {ep}: train loss {tl / n:.3f} acc {tc / n:.3f}  val loss {vl:.3f} "
                f"acc {vc / Xva.shape[0]:.3f}  {sec:.1f}s")
    model.load_state_dict(best)
    model.eval()
    return {"history": hist, "best_val_loss": best_loss}


def random_crops(planes: list[torch.Tensor], idx, crop: int, g: torch.Generator) -> torch.Tensor:
    out = []
    for i in idx:
        p = planes[i]
        h, w = p.shape
        t = int(torch.randint(0, h - crop + 1, (1,), generator=g))
        l = int(torch.randint(0, w - crop + 1, (1,), generator=g))
        out.append(p[t:t + crop, l:l + crop])
    return torch.stack(out)[:, None]


def centre_crops(planes: list[torch.Tensor], crop: int) -> torch.Tensor:
    out = []
    for p in planes:
        h, w = p.shape
        t, l = (h - crop) // 2, (w - crop) // 2
        out.append(p[t:t + crop, l:l + crop])
    return torch.stack(out)[:, None]


def train_origin_ae(model: nn.Module, train_planes, val_planes, *, epochs: int, lr: float = 1e-4,
                    batch_size: int = 32, crop: int = 96, seed: int = 0, log=None) -> dict:
    """Adam(lr), MSE; one random ``crop`` x ``crop`` crop per plane per epoch (the same crop scheme our
    engine uses); keeps the weights with the lowest validation MSE (centre crops)."""
    tr = [torch.as_tensor(p) for p in train_planes]
    va = centre_crops([torch.as_tensor(p) for p in val_planes], crop)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_loss, hist = _state(model), math.inf, []
    n = len(tr)
    for ep in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=g).tolist()
        tl = 0.0
        for i in range(0, n, batch_size):
            xb = random_crops(tr, perm[i:i + batch_size], crop, g)
            loss = F.mse_loss(model(xb), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tl += loss.item() * xb.shape[0]
        model.eval()
        with torch.no_grad():
            vl = float(sum(F.mse_loss(model(va[i:i + 64]), va[i:i + 64], reduction="sum")
                           for i in range(0, va.shape[0], 64))) / va.numel()
        sec = time.perf_counter() - t0
        if vl < best_loss:
            best_loss, best = vl, _state(model)
        hist.append({"epoch": ep, "train_loss": tl / n, "val_loss": vl, "seconds": sec})
        if log:
            log(f"  {'origin-ae' if getattr(model, 'final_relu', True) else 'origin-ae-noReLU'} epoch {ep}: "
                f"train MSE {tl / n:.5f}  val MSE {vl:.5f}  {sec:.1f}s")
    model.load_state_dict(best)
    model.eval()
    return {"history": hist, "best_val_loss": best_loss}


def output_stats(model: nn.Module, planes: list[np.ndarray]) -> dict:
    """How varied is the output? std over pixels of the reconstruction vs of the input (a model stuck
    at a near-constant output has an output std near 0) and the fraction of exactly-zero pixels."""
    with torch.no_grad():
        stds, in_stds, zeros = [], [], []
        for p in planes:
            x = torch.as_tensor(p)[None, None]
            y = model(x)
            stds.append(float(y.std()))
            in_stds.append(float(x.std()))
            zeros.append(float((y == 0).float().mean()))
    return {"out_std": float(np.mean(stds)), "in_std": float(np.mean(in_stds)),
            "zero_frac": float(np.mean(zeros))}


__all__ = ["OriginCNN", "OriginAE", "train_origin_classifier", "train_origin_ae", "output_stats",
           "random_crops", "centre_crops"]
