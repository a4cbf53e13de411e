"""The interface every cell renderer implements, and checks that hold for all of them.

A renderer is a module ``napari_organelle.simulator.<name>`` with

    NAME: str                                   # its registry name, the module's name
    def render(cls: str, rng: numpy.random.Generator, *, size: int, diameter: float) -> RenderedCell

``render`` draws ONE cell of class ``cls`` (one of ``napari_organelle.classes.CLASSES``) as a
*specimen*: noise-free fluorophore density at the resolution of a ``size`` x ``size`` pixel grid.
No point-spread function beyond what drawing a sub-pixel line or dot needs, no camera noise, no
background offset, no bit depth: the shared imaging model (``simulator.imaging``) adds all of those
afterwards, randomised, the same way for every renderer.

Contract (``check_rendered`` enforces it; ``python -m napari_organelle.simulator.preview NAME``
draws a contact sheet and runs the checks):

* ``diameter`` is the wanted longest extent of an interphase cell in pixels (80-400 in practice);
  the renderer picks the cell's physical size (its cell line, docs/biology.md) and so its pixel size
  (``pixel_size_um`` = physical extent / pixels), and draws every structure at its physical size.
  The cell's longest extent is 0.8-1.1 x ``diameter`` for interphase cells; rounded and mitotic
  cells are physically smaller and may be 0.45-0.8 x ``diameter``.
* ``size`` >= 1.25 x ``diameter``; the whole cell lies inside the frame (the scene composer cuts
  cells at borders, places neighbours and crops, not the renderer).
* ``protein`` and ``dna``: float32 (size, size), finite, >= 0. Scale: the brightest structures of the
  cell are around 1 (the imaging model rescales anyway; keep the *relative* brightness of structures,
  haze and background within the cell as the biology says). Zero outside the cell, apart from what
  the biology puts there (e.g. filopodia are part of the cell mask).
* ``cell`` and ``nucleus``: bool (size, size); ``nucleus`` within ``cell`` (for mitotic cells, where
  there is no nuclear envelope, ``nucleus`` is the chromosome region). ``cell`` is what a good
  segmentation of this cell would give.
* ``state``: "interphase", "mitotic" or "rounded"; ``info``: free-form JSON-able details (variant
  names and so on) for debugging.
* All randomness comes from ``rng``: the same generator state gives the same cell.
* numpy and scipy only (no torch, no scikit-image): the simulator must run on any machine the core
  runs on. Aim for <= 50 ms per cell at size=384, diameter=300 on one CPU core.
* Never encode the class in anything but the biology: the cell body, nucleus and DNA statistics and
  the protein's overall brightness range must not depend on ``cls``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np

from ..classes import CLASSES

STATES = ("interphase", "mitotic", "rounded")


@dataclass
class RenderedCell:
    protein: np.ndarray
    dna: np.ndarray
    cell: np.ndarray
    nucleus: np.ndarray
    pixel_size_um: float
    state: str = "interphase"
    info: dict = field(default_factory=dict)


def load_renderer(name: str):
    """The renderer module ``napari_organelle.simulator.<name>`` (it must define NAME and render)."""
    mod = importlib.import_module(f"napari_organelle.simulator.{name}")
    if getattr(mod, "NAME", None) != name or not callable(getattr(mod, "render", None)):
        raise ValueError(f"napari_organelle.simulator.{name} is not a renderer (needs NAME == {name!r} and render)")
    return mod


def extent(mask: np.ndarray) -> float:
    """Longest extent of a mask in pixels (over 8 directions, cheap)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 0.0
    best = 0.0
    for a in np.linspace(0, np.pi, 8, endpoint=False):
        p = ys * np.sin(a) + xs * np.cos(a)
        best = max(best, float(p.max() - p.min() + 1))
    return best


def check_rendered(r: RenderedCell, cls: str, size: int, diameter: float) -> list[str]:
    """Problems with a rendered cell (empty list: it meets the contract)."""
    bad = []
    for name in ("protein", "dna"):
        a = getattr(r, name)
        if not isinstance(a, np.ndarray) or a.shape != (size, size) or a.dtype != np.float32:
            bad.append(f"{name}: expected float32 {(size, size)}, got {getattr(a, 'dtype', type(a))} "
                       f"{getattr(a, 'shape', None)}")
            continue
        if not np.isfinite(a).all():
            bad.append(f"{name}: non-finite values")
        elif a.min() < 0:
            bad.append(f"{name}: negative values ({a.min():.3g})")
        elif a.max() <= 0:
            bad.append(f"{name}: all zero")
        elif not 0.05 <= float(a.max()) <= 20:
            bad.append(f"{name}: maximum {a.max():.3g}, expected around 1")
    for name in ("cell", "nucleus"):
        m = getattr(r, name)
        if not isinstance(m, np.ndarray) or m.shape != (size, size) or m.dtype != bool:
            bad.append(f"{name}: expected a bool {(size, size)} mask")
    if bad:
        return bad
    if not r.cell.any():
        bad.append("cell mask empty")
    if not r.nucleus.any():
        bad.append("nucleus mask empty")
    if (r.nucleus & ~r.cell).sum() > 0.02 * r.nucleus.sum():
        bad.append("nucleus not inside the cell")
    edge = np.zeros((size, size), bool)
    edge[:2], edge[-2:], edge[:, :2], edge[:, -2:] = True, True, True, True
    if (r.cell & edge).any():
        bad.append("the cell touches the frame border")
    e = extent(r.cell)
    lo, hi = (0.45, 1.1) if r.state in ("mitotic", "rounded") else (0.8, 1.1)
    if not lo * diameter <= e <= hi * diameter:
        bad.append(f"cell extent {e:.0f} px outside {lo}-{hi} x diameter ({diameter:.0f}) for a {r.state} cell")
    if r.state not in STATES:
        bad.append(f"state {r.state!r} not one of {STATES}")
    if not (isinstance(r.pixel_size_um, float) and 0.01 < r.pixel_size_um < 2):
        bad.append(f"pixel_size_um {r.pixel_size_um!r} should be a float in (0.01, 2)")
    if cls not in CLASSES:
        bad.append(f"unknown class {cls}")
    return bad
