"""Model registry: (kind, arch name) -> constructor; parameter and FLOP counts."""

from __future__ import annotations

import logging

from torch import nn

from ..preprocess import InputError
from .autoencoder import OrganelleAE
from .classifier import OrganelleCNN, ResNet18Classifier

ARCHITECTURES: dict[str, dict[str, type[nn.Module]]] = {
    "classifier": {"organelle-cnn": OrganelleCNN, "resnet18": ResNet18Classifier},
    "autoencoder": {"organelle-ae": OrganelleAE},
}
DEFAULT_ARCH: dict[str, str] = {"classifier": "organelle-cnn", "autoencoder": "organelle-ae"}
KINDS = tuple(ARCHITECTURES)


def check_kind(kind: str) -> str:
    if kind not in ARCHITECTURES:
        raise InputError(f"Unknown model kind {kind!r}; use one of {', '.join(KINDS)}.")
    return kind


def check_arch(kind: str, arch: str | None) -> str:
    check_kind(kind)
    arch = DEFAULT_ARCH[kind] if arch is None else arch
    if arch not in ARCHITECTURES[kind]:
        raise InputError(f"Unknown {kind} architecture {arch!r}; known: {', '.join(ARCHITECTURES[kind])}.")
    return arch


def build_model(kind: str, arch: str | None = None, **kwargs) -> nn.Module:
    """Build a fresh (randomly initialised) model. ``kwargs`` go to the constructor
    (e.g. ``num_classes=10`` for classifiers); ``model.arch_kwargs`` records all of them."""
    arch = check_arch(kind, arch)
    return ARCHITECTURES[kind][arch](**kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


def flops_per_cell(model: nn.Module, input_shape) -> int:
    """Forward FLOPs for ONE input of ``input_shape`` (without the batch axis, e.g. (2, 128, 128)).

    Counted with ``torch.utils.flop_counter.FlopCounterMode`` on a batch of 1, which counts a
    multiply-add as 2 FLOPs and only counts matmul/convolution-type ops (norms, activations and
    pooling are not included).
    """
    import torch

    from .._safe_imports import guard_triton

    if guard_triton():  # the flop counter imports triton: unsafe once a GL context is live
        # ... and without triton it warns that triton kernels will not be counted (there are none)
        logging.getLogger("torch.utils.flop_counter").setLevel(logging.ERROR)
    from torch.utils.flop_counter import FlopCounterMode

    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    try:
        p = next(model.parameters())
        device, dtype = p.device, p.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros((1,) + shape, device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
