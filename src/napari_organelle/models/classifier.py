"""Classifier architectures: input (B, 2, S, S) float in [0, 1] (protein, DNA), output logits.

Every classifier exposes the same small interface, used by training, inference and CAMs:

* ``features(x) -> (B, C, h, w)`` the last convolutional map,
* ``head`` an ``nn.Linear`` on the globally average-pooled features, so the class activation map of
  class ``c`` is ``head.weight[c] @ features`` (plus ``head.bias[c]``),
* ``forward(x) -> logits``, ``replace_head(num_classes)``, ``backbone_parameters()``,
* ``arch_kwargs``: the JSON-able constructor arguments (a checkpoint rebuilds the model from them).
"""

from __future__ import annotations

import torch
from torch import nn


class _ClassifierMixin:
    head: nn.Linear
    dropout: nn.Module
    arch_kwargs: dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        pooled = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(f, 1), 1)
        return self.head(self.dropout(pooled))

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps (B, num_classes, h, w) at the resolution of ``features``."""
        f = self.features(x)
        return torch.einsum("kc,bchw->bkhw", self.head.weight, f) + self.head.bias[None, :, None, None]

    @property
    def num_classes(self) -> int:
        return int(self.head.out_features)

    @property
    def feature_channels(self) -> int:
        return int(self.head.in_features)

    def replace_head(self, num_classes: int) -> nn.Linear:
        """Put a freshly initialised linear head with ``num_classes`` outputs; returns the old head."""
        if int(num_classes) < 1:
            raise ValueError("num_classes must be at least 1")
        old = self.head
        new = nn.Linear(old.in_features, int(num_classes))
        new = new.to(device=old.weight.device, dtype=old.weight.dtype)
        self.head = new
        self.arch_kwargs["num_classes"] = int(num_classes)
        return old

    def backbone_parameters(self):
        """All parameters except the head's (frozen when fine-tuning with a frozen backbone)."""
        head_ids = {id(p) for p in self.head.parameters()}
        return [p for p in self.parameters() if id(p) not in head_ids]


class BasicBlock(nn.Module):
    """Pre-activation-free ResNet basic block: conv-BN-ReLU-conv-BN + shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()
        nn.init.zeros_(self.bn2.weight)  # each block starts as (almost) identity: stable, fast training

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class OrganelleCNN(_ClassifierMixin, nn.Module):
    """Small fast residual CNN ("organelle-cnn").

    Stem: 3x3 conv stride 2 (-> S/2). Then one stage per entry of ``widths``, each starting with a
    stride-2 residual block (so each stage halves the resolution) followed by ``blocks[i] - 1`` more
    blocks. For S = 128 and the defaults the last feature map is (256, 4, 4). Global average pooling,
    dropout and a linear head give the logits.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 2, stem: int = 32,
                 widths=(32, 64, 128, 256), blocks=(1, 1, 2, 1), dropout: float = 0.2):
        super().__init__()
        widths, blocks = [int(w) for w in widths], [int(b) for b in blocks]
        if len(widths) != len(blocks) or not widths or min(blocks) < 1:
            raise ValueError("widths and blocks must be non-empty lists of the same length, blocks >= 1")
        self.arch_kwargs = {"num_classes": int(num_classes), "in_channels": int(in_channels),
                            "stem": int(stem), "widths": widths, "blocks": blocks, "dropout": float(dropout)}
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        stages = []
        cin = stem
        for w, n in zip(widths, blocks):
            layers = [BasicBlock(cin, w, 2)] + [BasicBlock(w, w, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, int(num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.weight.device.type != "meta":
                # (skipped on the "meta" device, where checkpoints are checked shape by shape: a
                # normal_ there imports torch._dynamo, a second of start-up, for no values at all)
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class ResNet18Classifier(_ClassifierMixin, nn.Module):
    """torchvision ResNet-18 (random init, no downloaded weights) with a 2-channel stem."""

    def __init__(self, num_classes: int = 10, in_channels: int = 2, dropout: float = 0.2):
        super().__init__()
        from .._safe_imports import import_torchvision

        tv = import_torchvision()
        self.arch_kwargs = {"num_classes": int(num_classes), "in_channels": int(in_channels),
                            "dropout": float(dropout)}
        net = tv.models.resnet18(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if net.conv1.weight.device.type != "meta":  # see OrganelleCNN
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        net.fc = nn.Identity()
        self.net = net
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(512, int(num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))
