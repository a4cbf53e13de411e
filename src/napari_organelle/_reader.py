"""npe2 reader: an image that holds or comes with its DNA image opens as two named layers.

A 2-channel TIFF (protein in channel 0, DNA in channel 1: ``io.read_pair``) or a protein file with a
DNA partner (``datasets.dna_partner``: the Murphy release's ``prot/`` + ``dna/`` folders, or
``<name>_dna.tif`` beside it) becomes "<name> protein" and "<name> DNA", so nobody splits channels by
hand and the Classify dock pairs them by name. Any other file is left to napari's own reader.
"""

from __future__ import annotations

from pathlib import Path


def _two_channels(path: Path) -> bool:
    """A TIFF whose only non-singleton axes are Y, X and one of length 2 that is not Z or T."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            dims = [(n, a) for n, a in zip(series.shape, series.axes) if n > 1]
    except Exception:  # noqa: BLE001 - not a TIFF we can read: napari's reader says why
        return False
    return len(dims) == 3 and any(n == 2 and a not in "ZT" for n, a in (dims[0], dims[-1]))


def get_reader(path):
    """The reader for ``path`` when it has a DNA image to go with it, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if not p.is_file():
        return None
    dna_file = None
    if not _two_channels(p):
        from .datasets import dna_partner

        try:
            dna_file = dna_partner(p)
        except OSError:
            return None
        if dna_file is None:
            return None
    return lambda _path: read_layers(p, dna_file)


def read_layers(path, dna_file=None) -> list[tuple]:
    """[(protein, kwargs, "image"), (dna, kwargs, "image")] for napari."""
    from .classes import canonical_class
    from .io import read_image, read_pair

    p = Path(path)
    protein, dna = read_pair(p) if dna_file is None else (read_image(p), read_image(dna_file))
    meta = {"source": str(p), **({"dna_source": str(dna_file)} if dna_file is not None else {})}
    folder = p.parent.parent if dna_file is not None and p.parent.name.lower().startswith("prot") else p.parent
    if (cls := canonical_class(folder.name)):
        meta["organelle_class"] = cls  # the class the release's folder names (the fine-tune dock uses it)
    layers = [(protein, {"name": f"{p.stem} protein", "metadata": dict(meta), "colormap": "green",
                         "blending": "additive"}, "image")]
    if dna is not None:
        layers.append((dna, {"name": f"{p.stem} DNA", "metadata": dict(meta), "colormap": "blue",
                             "blending": "additive"}, "image"))
    return layers
