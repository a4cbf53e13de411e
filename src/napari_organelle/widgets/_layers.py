"""Layer helpers shared by the docks: shapes, the plane on screen, and placing results over a source."""

from __future__ import annotations

import numpy as np

DNA_WORDS = ("dna", "dapi", "hoechst")


def is_dna_name(name: str) -> bool:
    return any(w in name.lower() for w in DNA_WORDS)


def unwrap(obj):
    """The napari object behind a PublicOnlyProxy (napari hands plugins proxies)."""
    return getattr(obj, "__wrapped__", obj)


def in_viewer(viewer, layer) -> bool:
    """Whether this very layer (not merely one with its name) is still in the viewer."""
    return layer is not None and any(unwrap(x) is unwrap(layer) for x in viewer.layers)


def find_layer(viewer, name: str):
    return next((x for x in viewer.layers if x.name == name), None)


def lead_shape(layer) -> tuple[int, ...]:
    """The shape of a layer's non-(Y, X) axes (RGB layers: without the colour axis)."""
    shape = tuple(layer.data.shape)[:-1] if getattr(layer, "rgb", False) else tuple(layer.data.shape)
    return shape[:-2]


def yx_shape(layer) -> tuple[int, int]:
    shape = tuple(layer.data.shape)[:-1] if getattr(layer, "rgb", False) else tuple(layer.data.shape)
    return shape[-2:]


def current_plane_index(viewer, layer) -> tuple[int, ...]:
    """Index over the layer's leading data axes of the plane the dims slider shows."""
    lead = lead_shape(layer)
    if not lead:
        return ()
    coords = list(layer.world_to_data(viewer.dims.point))[: len(lead)]
    return tuple(int(min(max(round(float(c)), 0), n - 1)) for c, n in zip(coords, lead))


def goto_plane(viewer, layer, index: tuple[int, ...]) -> None:
    """Move the dims slider to plane ``index`` of ``layer``."""
    data_pt = list(layer.world_to_data(viewer.dims.point))
    data_pt[: len(index)] = list(index)
    world = layer.data_to_world(data_pt)
    step = list(viewer.dims.point)
    for k in range(len(index)):
        step[len(step) - layer.ndim + k] = world[k]
    viewer.dims.point = step


def transform_kwargs(layer) -> dict:
    """Keyword arguments that place a new layer exactly over ``layer`` (same world transform)."""
    kw = {"scale": tuple(layer.scale), "translate": tuple(layer.translate), "rotate": np.asarray(layer.rotate),
          "shear": np.asarray(layer.shear), "affine": np.asarray(layer.affine.affine_matrix)}
    for attr in ("units", "axis_labels"):
        if (val := getattr(layer, attr, None)) is not None:
            kw[attr] = tuple(str(v) for v in val)
    return kw


def transform_kwargs_2d(layer, index: tuple = ()) -> dict:
    """Transform keywords placing a 2D (Y, X) result over plane ``index`` of an nD ``layer``.

    The (Y, X) block of the layer's whole data-to-world transform, plus where plane ``index`` sits when
    that transform mixes the leading axes into Y and X. Without rotation or shear, plain scale and
    translate are kept (what napari shows in the layer controls)."""
    from napari.utils.transforms import Affine

    kw = transform_kwargs(layer)
    n = len(kw["scale"])
    if n == 2:
        return kw
    extra = {k: kw[k][-2:] for k in ("units", "axis_labels") if k in kw}
    full = layer.affine.compose(Affine(scale=layer.scale, translate=layer.translate, rotate=layer.rotate,
                                       shear=layer.shear, ndim=n)).affine_matrix
    lead = np.asarray(index if len(index) == n - 2 else [0] * (n - 2), dtype=float)
    aff = np.eye(3)
    simple = (np.allclose(layer.rotate, np.eye(n)) and np.allclose(full[n - 2:n, :n - 2], 0)
              and np.allclose(layer.shear, np.eye(n) if np.ndim(layer.shear) == 2 else 0))
    if simple:
        plain = np.asarray(layer.affine.affine_matrix)
        aff[:2, :2], aff[:2, 2] = plain[n - 2:n, n - 2:n], plain[n - 2:n, n]
        return {"scale": kw["scale"][-2:], "translate": kw["translate"][-2:], "affine": aff, **extra}
    aff[:2, :2] = full[n - 2:n, n - 2:n]
    aff[:2, 2] = full[n - 2:n, n] + full[n - 2:n, :n - 2] @ lead
    return {"scale": (1.0, 1.0), "translate": (0.0, 0.0), "affine": aff, **extra}


def upsert_image(viewer, name: str, data, **kwargs):
    """Update the Image layer ``name`` in place when it has the same shape, else (re)add it."""
    from napari.layers import Image

    existing = find_layer(viewer, name)
    if isinstance(existing, Image) and existing.data.shape == data.shape:
        existing.data = data
        for key in ("contrast_limits", "colormap", "scale", "translate", "rotate", "shear", "affine"):
            if key in kwargs:
                setattr(existing, key, kwargs[key])
        existing.metadata.update(kwargs.get("metadata", {}))
        return existing
    if existing is not None:
        viewer.layers.remove(existing)
    return viewer.add_image(data, name=name, **kwargs)


def upsert_labels(viewer, name: str, data, **kwargs):
    """Update the Labels layer ``name`` in place when it has the same shape (data, colormap, features and
    placement: its source may have moved), else (re)add it."""
    from napari.layers import Labels

    existing = find_layer(viewer, name)
    if isinstance(existing, Labels) and existing.data.shape == data.shape:
        existing.data = data
        for key in ("colormap", "features", "scale", "translate", "affine"):
            if key in kwargs:
                setattr(existing, key, kwargs[key])
        return existing
    if existing is not None:
        viewer.layers.remove(existing)
    return viewer.add_labels(data, name=name, **kwargs)


def merge_features(labels, new) -> str:
    """Put the per-cell results ``new`` (a DataFrame with an 'index' column of label ids) into the Labels
    layer's features without ever dropping or overwriting the user's own columns: merged by 'index' when
    that is unambiguous. Returns why they were not merged ("" when they were)."""
    feats = labels.features
    ours = set(labels.metadata.get("organelle_columns", []) or [])
    user_cols = [c for c in feats.columns if c != "index" and c not in ours]
    clash = [c for c in user_cols if c in new.columns]
    if not len(feats) or not user_cols:
        labels.features = new
    elif "index" in feats.columns and not clash:
        labels.features = feats[["index"] + user_cols].merge(new, on="index", how="outer").reset_index(drop=True)
    else:
        return (f"it has columns named like the results ({', '.join(map(str, clash))})" if clash else
                "it has no 'index' column giving each row's label id")
    labels.metadata["organelle_columns"] = [c for c in new.columns if c != "index"]
    return ""
