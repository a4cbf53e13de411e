"""npe2 sample data: simulated HeLa-like cells (no download, opens in well under a second).

The images come from :mod:`napari_organelle.phantoms`, the same simulator the bundled weights were
trained on, so the bundled classifier is expected to get them right. They are *simulated*: use them
to learn the plugin, not to judge how well it does on real microscopy.
"""

from __future__ import annotations

import numpy as np

from .classes import CLASSES

#: Side of the simulated single cells (the size of the 2D HeLa release images).
CELL_SIZE = 382
#: Fixed seed: every user (and every test) sees the same cells.
SEED = 2024

_PROTEIN_KW = {"colormap": "green", "blending": "additive"}
_DNA_KW = {"colormap": "blue", "blending": "additive", "opacity": 0.8}


def _limits(a: np.ndarray) -> tuple[float, float]:
    """Display contrast from the 0.5th and 99.9th percentiles (bright spots would dim the rest)."""
    lo, hi = np.percentile(a[..., ::2, ::2], [0.5, 99.9])
    return float(lo), float(max(hi, lo + 1))


def sample_cells():
    """One simulated cell per class: a 10-plane protein stack and the matching 10-plane DNA stack.

    Plane ``i`` shows ``metadata["classes"][i]`` (the canonical class order); move napari's slider to
    step through the classes.
    """
    from .phantoms import simulate_cell

    rng = np.random.default_rng(SEED)
    proteins, dnas = [], []
    for cls in CLASSES:
        p, d = simulate_cell(cls, rng, size=CELL_SIZE)
        proteins.append(p)
        dnas.append(d)
    protein = np.stack(proteins)
    dna = np.stack(dnas)
    meta = {"classes": list(CLASSES), "source": f"napari_organelle.phantoms seed {SEED}", "simulated": True}
    return [
        (protein, {"name": "Simulated protein (one cell per class)", "metadata": dict(meta),
                   "axis_labels": ("class", "y", "x"), "contrast_limits": _limits(protein), **_PROTEIN_KW}, "image"),
        (dna, {"name": "Simulated DNA (one cell per class)", "metadata": dict(meta),
               "axis_labels": ("class", "y", "x"), "contrast_limits": _limits(dna), **_DNA_KW}, "image"),
    ]


def sample_golgi_cell():
    """A single simulated Golgi (gpp130) cell: protein and DNA images."""
    from .phantoms import simulate_cell

    rng = np.random.default_rng(SEED)
    protein, dna = simulate_cell("Golgi_gpp", rng, size=CELL_SIZE)
    meta = {"classes": ["Golgi_gpp"], "source": f"napari_organelle.phantoms seed {SEED}", "simulated": True}
    return [
        (protein, {"name": "Golgi_gpp protein", "metadata": dict(meta), "contrast_limits": _limits(protein),
                   **_PROTEIN_KW}, "image"),
        (dna, {"name": "Golgi_gpp DNA", "metadata": dict(meta), "contrast_limits": _limits(dna), **_DNA_KW}, "image"),
    ]


def sample_field():
    """A simulated field of cells (protein, DNA and a Labels layer of the cells, true class per cell)."""
    from .phantoms import simulate_field

    protein, dna, labels, classes = simulate_field(n_cells=6, seed=0, size=768)
    labels = np.asarray(labels).astype(np.int32, copy=False)
    ids = [int(i) for i in np.unique(labels) if i > 0]
    true = [str(classes[i - 1]) if 0 < i <= len(classes) else "" for i in ids]
    meta = {"true_classes": [str(c) for c in classes], "simulated": True,
            "source": "napari_organelle.phantoms.simulate_field(n_cells=6, seed=0, size=768)"}
    return [
        (protein, {"name": "Field protein", "metadata": dict(meta), "contrast_limits": _limits(protein),
                   **_PROTEIN_KW}, "image"),
        (dna, {"name": "Field DNA", "metadata": dict(meta), "contrast_limits": _limits(dna), **_DNA_KW}, "image"),
        (labels, {"name": "Field cells", "metadata": dict(meta), "opacity": 0.35,
                  "features": {"index": ids, "true_class": true}}, "labels"),
    ]


__all__ = ["sample_cells", "sample_golgi_cell", "sample_field"]
