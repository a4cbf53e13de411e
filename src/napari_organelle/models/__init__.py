"""Architectures only (no training, no I/O): see :mod:`.registry` for ``build_model``."""

from .autoencoder import OrganelleAE
from .classifier import OrganelleCNN, ResNet18Classifier
from .registry import (ARCHITECTURES, DEFAULT_ARCH, KINDS, build_model, check_arch, count_parameters,
                       flops_per_cell)

__all__ = ["ARCHITECTURES", "DEFAULT_ARCH", "KINDS", "OrganelleAE", "OrganelleCNN", "ResNet18Classifier",
           "build_model", "check_arch", "count_parameters", "flops_per_cell"]
