"""napari-organelle network architectures, self-contained (torch only), for bioimage.io packages.

This file is copied as it is into every bioimage.io model package that napari-organelle exports
(``napari_organelle_arch.py``): a bioimage.io consumer rebuilds the network from it and the
``pytorch_state_dict`` weights, without napari-organelle installed. Each class builds the same
modules, under the same names, as its twin in ``napari_organelle.models`` (so a napari-organelle
``state_dict`` loads into it strictly), takes the same constructor arguments (the checkpoint's
``arch_kwargs``) and computes the same function; tests/test_bioimageio.py checks this for every
architecture in the registry. The classes are written so that ``torch.jit.script`` compiles them
(the package's TorchScript weights are scripted from them).

Classifiers: input (B, 2, S, S) float32 in [0, 1] (protein, DNA), output logits (B, num_classes).
Autoencoder: input (B, 1, H, W) float32 in [0, 1], any H and W, output (B, 1, H, W) in [0, 1].
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OrganelleCNN", "ResNet18Classifier", "OrganelleAE"]


# --------------------------------------------------------------------------------------------------
# Classifiers: features -> global average pool -> dropout -> linear head (logits)
# --------------------------------------------------------------------------------------------------
class _ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a shortcut (1x1 conv + BN when the shape changes), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        if stride != 1 or cin != cout:
            self.shortcut: nn.Module = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                     nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.shortcut(x))


class OrganelleCNN(nn.Module):
    """The "organelle-cnn" classifier: a stride-2 3x3 stem, then one stage per entry of ``widths``
    (a stride-2 residual block and ``blocks[i] - 1`` more), global average pooling, dropout (a no-op
    in eval mode) and a linear head."""

    def __init__(self, num_classes: int = 10, in_channels: int = 2, stem: int = 32,
                 widths: List[int] = (32, 64, 128, 256), blocks: List[int] = (1, 1, 2, 1),
                 dropout: float = 0.2):
        super().__init__()
        widths = [int(w) for w in widths]
        blocks = [int(b) for b in blocks]
        if len(widths) != len(blocks) or not widths or min(blocks) < 1:
            raise ValueError("widths and blocks must be non-empty lists of the same length, blocks >= 1")
        self.stem = nn.Sequential(nn.Conv2d(int(in_channels), int(stem), 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(int(stem)), nn.ReLU(inplace=True))
        stages = []
        cin = int(stem)
        for w, n in zip(widths, blocks):
            stages.append(nn.Sequential(*([_ResidualBlock(cin, w, 2)] + [_ResidualBlock(w, w, 1)
                                                                          for _ in range(n - 1)])))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(float(dropout))
        self.head = nn.Linear(cin, int(num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1)
        return self.head(self.dropout(pooled))


class _TorchvisionBasicBlock(nn.Module):
    """The basic block of a ResNet-18, with torchvision's module names (conv1, bn1, conv2, bn2,
    downsample) so that torchvision-layout weights load into it."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.downsample: nn.Module = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                       nn.BatchNorm2d(cout))
        else:
            self.downsample = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.downsample(x))


class _ResNet18Trunk(nn.Module):
    """ResNet-18 up to its last convolutional stage, laid out as torchvision lays it out (conv1, bn1,
    relu, maxpool, layer1..layer4), with an ``in_channels``-channel first convolution."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(_TorchvisionBasicBlock(64, 64, 1), _TorchvisionBasicBlock(64, 64, 1))
        self.layer2 = nn.Sequential(_TorchvisionBasicBlock(64, 128, 2), _TorchvisionBasicBlock(128, 128, 1))
        self.layer3 = nn.Sequential(_TorchvisionBasicBlock(128, 256, 2), _TorchvisionBasicBlock(256, 256, 1))
        self.layer4 = nn.Sequential(_TorchvisionBasicBlock(256, 512, 2), _TorchvisionBasicBlock(512, 512, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNet18Classifier(nn.Module):
    """The "resnet18" classifier: a ResNet-18 trunk (2-channel stem), global average pooling,
    dropout and a linear head on its 512 features."""

    def __init__(self, num_classes: int = 10, in_channels: int = 2, dropout: float = 0.2):
        super().__init__()
        self.net = _ResNet18Trunk(int(in_channels))
        self.dropout = nn.Dropout(float(dropout))
        self.head = nn.Linear(512, int(num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1)
        return self.head(self.dropout(pooled))


# --------------------------------------------------------------------------------------------------
# Autoencoder (one plane at a time, no skip connections: everything passes through the latent)
# --------------------------------------------------------------------------------------------------
def _norm(c: int, kind: str) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "group":
        return nn.GroupNorm(min(8, c), c)
    raise ValueError(f"unknown norm {kind!r}; use 'batch' or 'group'")


class _AEResBlock(nn.Module):
    def __init__(self, c: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), _norm(c, norm), nn.SiLU(inplace=True),
                                  nn.Conv2d(c, c, 3, 1, 1, bias=False), _norm(c, norm))
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class OrganelleAE(nn.Module):
    """The "organelle-ae" autoencoder. The input is padded at the bottom and right to a multiple of
    2 ** len(channels) (reflect, or replicate for inputs smaller than the padding), encoded by a stride-2
    convolution stack into a ``latent_channels``-channel latent, decoded by nearest upsampling and
    convolutions, passed through a sigmoid and cropped back to the input's size."""

    def __init__(self, channels: List[int] = (32, 64, 128), latent_channels: int = 3, in_channels: int = 1,
                 norm: str = "batch"):
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("channels must list at least one level")
        latent_channels, in_channels, norm = int(latent_channels), int(in_channels), str(norm)
        self.multiple = 2 ** len(channels)
        c0 = channels[0]
        enc: List[nn.Module] = [nn.Conv2d(in_channels, c0, 3, 1, 1, bias=False), _norm(c0, norm),
                                nn.SiLU(inplace=True)]
        cin = c0
        for c in channels:
            enc += [nn.Conv2d(cin, c, 3, 2, 1, bias=False), _norm(c, norm), nn.SiLU(inplace=True),
                    _AEResBlock(c, norm)]
            cin = c
        enc.append(nn.Conv2d(cin, latent_channels, 1))
        self.encoder = nn.Sequential(*enc)
        dec: List[nn.Module] = [nn.Conv2d(latent_channels, cin, 3, 1, 1, bias=False), _norm(cin, norm),
                                nn.SiLU(inplace=True), _AEResBlock(cin, norm)]
        for c in reversed(channels[:-1]):
            dec += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(cin, c, 3, 1, 1, bias=False),
                    _norm(c, norm), nn.SiLU(inplace=True), _AEResBlock(c, norm)]
            cin = c
        cf = max(8, c0 // 2)
        dec += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(cin, cf, 3, 1, 1, bias=False),
                _norm(cf, norm), nn.SiLU(inplace=True), nn.Conv2d(cf, in_channels, 3, 1, 1)]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-2]
        w = x.shape[-1]
        m = self.multiple
        ph = (m - h % m) % m
        pw = (m - w % m) % m
        if ph > 0 or pw > 0:
            if ph < h and pw < w:
                x = F.pad(x, [0, pw, 0, ph], mode="reflect")
            else:
                x = F.pad(x, [0, pw, 0, ph], mode="replicate")
        out = torch.sigmoid(self.decoder(self.encoder(x)))
        return out[:, :, :h, :w]
