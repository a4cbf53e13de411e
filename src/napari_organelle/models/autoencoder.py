"""Convolutional autoencoder ("organelle-ae") applied to one plane at a time.

Input (B, 1, H, W) float in [0, 1], any H and W: the input is reflect-padded (bottom/right) to a
multiple of ``2 ** depth`` and the output cropped back. The encoder is a plain strided-conv stack
down to a latent with ``latent_channels`` channels at 1 / 2**depth resolution; the decoder mirrors it
with nearest upsampling + convolutions. There are NO skip connections between encoder and decoder,
so everything the decoder sees passes through the latent (a real bottleneck): with the defaults
(depth 3, 3 latent channels) the latent has 21x fewer elements than the input (at least 16x for any
input of 64 pixels a side or more, padding included).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _norm(c: int, kind: str) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "group":
        return nn.GroupNorm(min(8, c), c)
    raise ValueError(f"unknown norm {kind!r}; use 'batch' or 'group'")


class _ResBlock(nn.Module):
    """Local residual block (inside the encoder or decoder at one resolution; not a U-Net skip)."""

    def __init__(self, c: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), _norm(c, norm), nn.SiLU(inplace=True),
                                  nn.Conv2d(c, c, 3, 1, 1, bias=False), _norm(c, norm))
        self.act = nn.SiLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.body(x))


class OrganelleAE(nn.Module):
    def __init__(self, channels=(32, 64, 128), latent_channels: int = 3, in_channels: int = 1,
                 norm: str = "batch"):
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("channels must list at least one level")
        self.arch_kwargs = {"channels": channels, "latent_channels": int(latent_channels),
                            "in_channels": int(in_channels), "norm": str(norm)}
        self.depth = len(channels)
        self.in_channels = int(in_channels)
        self.latent_channels = int(latent_channels)

        c0 = channels[0]
        # Encoder: full-resolution stem, then per level a stride-2 conv and a local residual block.
        enc: list[nn.Module] = [nn.Conv2d(in_channels, c0, 3, 1, 1, bias=False), _norm(c0, norm),
                                nn.SiLU(inplace=True)]
        cin = c0
        for c in channels:
            enc += [nn.Conv2d(cin, c, 3, 2, 1, bias=False), _norm(c, norm), nn.SiLU(inplace=True),
                    _ResBlock(c, norm)]
            cin = c
        enc.append(nn.Conv2d(cin, latent_channels, 1))
        self.encoder = nn.Sequential(*enc)

        # Decoder: mirror image (nearest upsampling + convs), no connection from the encoder.
        dec: list[nn.Module] = [nn.Conv2d(latent_channels, cin, 3, 1, 1, bias=False), _norm(cin, norm),
                                nn.SiLU(inplace=True), _ResBlock(cin, norm)]
        for c in reversed(channels[:-1]):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, c, 3, 1, 1, bias=False),
                    _norm(c, norm), nn.SiLU(inplace=True), _ResBlock(c, norm)]
            cin = c
        cf = max(8, c0 // 2)  # last (full-resolution) level is kept light: it dominates the cost
        dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cf, 3, 1, 1, bias=False),
                _norm(cf, norm), nn.SiLU(inplace=True), nn.Conv2d(cf, in_channels, 3, 1, 1)]
        self.decoder = nn.Sequential(*dec)
        with torch.no_grad():  # start near the dark background of fluorescence images (sigmoid(-2) = 0.12)
            self.decoder[-1].bias.fill_(-2.0)

    # -- geometry ---------------------------------------------------------------------------------
    @property
    def multiple(self) -> int:
        return 2 ** self.depth

    def latent_shape(self, h: int, w: int) -> tuple[int, int, int]:
        """(C, h', w') of the latent for an (h, w) plane (after internal padding)."""
        m = self.multiple
        return (self.latent_channels, math.ceil(h / m), math.ceil(w / m))

    def compression_ratio(self, h: int, w: int) -> float:
        """Input elements / latent elements for an (h, w) plane."""
        c, lh, lw = self.latent_shape(h, w)
        return (self.in_channels * h * w) / float(c * lh * lw)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        m = self.multiple
        h, w = x.shape[-2:]
        ph, pw = (-h) % m, (-w) % m
        if ph == 0 and pw == 0:
            return x
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")

    # -- model ------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> latent (B, C, ceil(H/2**d), ceil(W/2**d))."""
        self._check(x)
        return self.encoder(self._pad(x))

    def decode(self, z: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Latent -> (B, 1, H, W) in [0, 1]; ``size`` crops to the original (H, W)."""
        out = torch.sigmoid(self.decoder(z))
        if size is not None:
            out = out[..., : size[0], : size[1]]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self.decode(self.encode(x), (h, w))

    def backbone_parameters(self):
        """The encoder's parameters (frozen when fine-tuning only the decoder)."""
        return list(self.encoder.parameters())
