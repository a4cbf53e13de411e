"""napari-organelle: which organelle does this protein label?

Public API (imported lazily, so ``import napari_organelle`` stays light and never imports Qt)::

    from napari_organelle import classify, reconstruct, load_model, CLASSES
    result = classify(protein, dna)          # -> Classification(label, confidence, probabilities)
    rec = reconstruct(image)                 # -> Reconstruction(reconstruction, residual, mse, psnr, ssim)
    field = classify_field(protein, dna)     # a field of many cells: find them, classify each
    field.rows(), field.summary()            # one row per cell; cells per class, majority
    clf = model_on(load_model("my model"), "cuda")   # a store name or path; then classify_batch /
                                                     # iter_classify (lazy, batched) over many images

The bundled models were trained on simulated cells (napari_organelle.phantoms), not on real
micrographs: see docs/model_card.md for what they were measured on.
"""

from __future__ import annotations

from .classes import CLASSES, COLORS, canonical_class
from .preprocess import InputError, OrganelleError

__version__ = "0.1.0"

_LAZY = {
    "classify": ("inference", "classify"),
    "classify_batch": ("inference", "classify_batch"),
    "iter_classify": ("inference", "iter_classify"),
    "classify_stack": ("inference", "classify_stack"),
    "classify_cells": ("inference", "classify_cells"),
    "classify_field": ("inference", "classify_field"),
    "FieldResult": ("inference", "FieldResult"),
    "find_cells": ("segmentation", "find_cells"),
    "segment_cells": ("segmentation", "segment_cells"),
    "reconstruct": ("inference", "reconstruct"),
    "activation_map": ("inference", "activation_map"),
    "ood_score": ("inference", "ood_score"),
    "load_model": ("inference", "load_model"),
    "model_on": ("inference", "model_on"),
    "Classification": ("inference", "Classification"),
    "Reconstruction": ("inference", "Reconstruction"),
    "train": ("training", "train"),
    "TrainConfig": ("training", "TrainConfig"),
    "train_model": ("recipes", "train_model"),
    "evaluate": ("recipes", "evaluate"),
    "load_labelled": ("datasets", "load_labelled"),
    "simulate_cell": ("phantoms", "simulate_cell"),
    "simulate_dataset": ("phantoms", "simulate_dataset"),
    "list_models": ("checkpoints", "list_models"),
    "save_user_model": ("checkpoints", "save_user_model"),
    "export_bioimageio": ("export", "export_bioimageio"),
}

__all__ = ["CLASSES", "COLORS", "canonical_class", "InputError", "OrganelleError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{mod}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
