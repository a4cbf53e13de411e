"""The ten organelle classes of the Murphy-lab 2D HeLa set, their colours and aliases.

A model trained on a user's own classes carries its own class list in its checkpoint; this module
only knows the canonical ten and how the public releases spell them.
"""

from __future__ import annotations

import re

#: The canonical class names, in the order the bundled classifier outputs them.
CLASSES: tuple[str, ...] = (
    "ActinFilaments",
    "Endosome",
    "ER",
    "Golgi_gia",
    "Golgi_gpp",
    "Lysosome",
    "Microtubules",
    "Mitochondria",
    "Nucleolus",
    "Nucleus",
)

#: A display colour (hex RGB) per class, chosen to stay distinct on a dark canvas.
COLORS: dict[str, str] = {
    "ActinFilaments": "#e6194b",
    "Endosome": "#3cb44b",
    "ER": "#ffe119",
    "Golgi_gia": "#4363d8",
    "Golgi_gpp": "#f58231",
    "Lysosome": "#911eb4",
    "Microtubules": "#46f0f0",
    "Mitochondria": "#f032e6",
    "Nucleolus": "#bcf60c",
    "Nucleus": "#fabebe",
}

# Colours for user-defined classes beyond the canonical ten (cycled).
_EXTRA_COLORS = ("#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000",
                 "#ffd8b1", "#000075", "#808080")

#: Murphy 2D HeLa release: antibody folder -> class.
MURPHY_ANTIBODIES: dict[str, str] = {
    "dap": "Nucleus",
    "erdak": "ER",
    "giant": "Golgi_gia",
    "gpp130": "Golgi_gpp",
    "h4b4": "Lysosome",
    "mc151": "Mitochondria",
    "nucle": "Nucleolus",
    "phal": "ActinFilaments",
    "tfr": "Endosome",
    "tubul": "Microtubules",
}

#: IICBU-2008 "hela" folders -> class (its ``dna`` folder is the Nucleus class).
IICBU_FOLDERS: dict[str, str] = {
    "actin": "ActinFilaments",
    "dna": "Nucleus",
    "endosome": "Endosome",
    "er": "ER",
    "golgia": "Golgi_gia",
    "golgpp": "Golgi_gpp",
    "lysosome": "Lysosome",
    "microtubules": "Microtubules",
    "mitochondria": "Mitochondria",
    "nucleolus": "Nucleolus",
}

_SPELLED_OUT: dict[str, str] = {
    "actin": "ActinFilaments",
    "actinfilaments": "ActinFilaments",
    "actinfilament": "ActinFilaments",
    "factin": "ActinFilaments",
    "phalloidin": "ActinFilaments",
    "endosome": "Endosome",
    "endosomes": "Endosome",
    "earlyendosome": "Endosome",
    "transferrinreceptor": "Endosome",
    "er": "ER",
    "endoplasmicreticulum": "ER",
    "golgigia": "Golgi_gia",
    "golgigiantin": "Golgi_gia",
    "giantin": "Golgi_gia",
    "golgigpp": "Golgi_gpp",
    "golgigpp130": "Golgi_gpp",
    "gpp130": "Golgi_gpp",
    "lysosome": "Lysosome",
    "lysosomes": "Lysosome",
    "lamp2": "Lysosome",
    "microtubules": "Microtubules",
    "microtubule": "Microtubules",
    "tubulin": "Microtubules",
    "mitochondria": "Mitochondria",
    "mitochondrion": "Mitochondria",
    "mito": "Mitochondria",
    "mitotracker": "Mitochondria",
    "nucleolus": "Nucleolus",
    "nucleoli": "Nucleolus",
    "nucleolin": "Nucleolus",
    "nucleus": "Nucleus",
    "nuclei": "Nucleus",
    "dna": "Nucleus",
    "dapi": "Nucleus",
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_ALIASES: dict[str, str] = {}
for _table in (MURPHY_ANTIBODIES, IICBU_FOLDERS, _SPELLED_OUT):
    for _alias, _cls in _table.items():
        _ALIASES[_key(_alias)] = _cls
for _cls in CLASSES:
    _ALIASES[_key(_cls)] = _cls


def canonical_class(name: str) -> str | None:
    """Return the canonical class for ``name`` (any alias, any case), or None if it is not one.

    >>> canonical_class("Endoplasmic Reticulum")
    'ER'
    >>> canonical_class("gpp130")
    'Golgi_gpp'
    """
    return _ALIASES.get(_key(str(name)))


#: The label of an image that could not be classified (no signal); shown in grey.
NOT_CLASSIFIED = "not classified"
NOT_CLASSIFIED_COLOR = "#808080"


def class_color(name: str, index: int | None = None) -> str:
    """Display colour for a class; user classes get a stable colour from a fallback palette."""
    if name == NOT_CLASSIFIED:
        return NOT_CLASSIFIED_COLOR
    canon = canonical_class(name)
    if canon is not None and canon in COLORS:
        return COLORS[canon]
    if index is None:
        index = sum(ord(c) for c in name)
    return _EXTRA_COLORS[index % len(_EXTRA_COLORS)]


def hex_to_rgba(color: str, alpha: float = 1.0) -> tuple[float, float, float, float]:
    """'#rrggbb' -> (r, g, b, a) floats in [0, 1]."""
    c = color.lstrip("#")
    return (int(c[0:2], 16) / 255, int(c[2:4], 16) / 255, int(c[4:6], 16) / 255, float(alpha))


def normalise_class_list(names: list[str]) -> list[str]:
    """Map names to canonical classes where they are aliases; keep user classes as they are.

    Raises ValueError when two names map to the same class.
    """
    out: list[str] = []
    for n in names:
        c = canonical_class(n) or str(n)
        if c in out:
            raise ValueError(f"Class names {names!r} name {c!r} twice; give each class one folder.")
        out.append(c)
    return out
