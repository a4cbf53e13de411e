"""The model kinds and architectures by name, and their constructor settings with defaults, without
importing torch (for reading checkpoint metadata: ``napari-organelle models``).

``napari_organelle.models.registry`` holds the classes; tests/test_speed_paths.py checks that this
table says what the classes' signatures say, and :mod:`napari_organelle.checkpoints` asks the
registry itself whenever it is already imported.
"""

from __future__ import annotations

KINDS = ("classifier", "autoencoder")
ARCH_NAMES = {"classifier": ("organelle-cnn", "resnet18"), "autoencoder": ("organelle-ae",)}
#: architecture -> {constructor setting: default}
ARCH_PARAMS = {
    "organelle-cnn": {"num_classes": 10, "in_channels": 2, "stem": 32, "widths": (32, 64, 128, 256),
                      "blocks": (1, 1, 2, 1), "dropout": 0.2},
    "resnet18": {"num_classes": 10, "in_channels": 2, "dropout": 0.2},
    "organelle-ae": {"channels": (32, 64, 128), "latent_channels": 3, "in_channels": 1, "norm": "batch"},
}
