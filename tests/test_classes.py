from napari_organelle.classes import (
    CLASSES, COLORS, IICBU_FOLDERS, MURPHY_ANTIBODIES, canonical_class, class_color, normalise_class_list,
)
import pytest


def test_ten_canonical_classes_with_distinct_colours():
    assert len(CLASSES) == 10 and len(set(CLASSES)) == 10
    assert set(COLORS) == set(CLASSES)
    assert len(set(COLORS.values())) == 10


@pytest.mark.parametrize("alias,expected", [
    ("dap", "Nucleus"), ("erdak", "ER"), ("giant", "Golgi_gia"), ("gpp130", "Golgi_gpp"),
    ("h4b4", "Lysosome"), ("mc151", "Mitochondria"), ("nucle", "Nucleolus"), ("phal", "ActinFilaments"),
    ("tfr", "Endosome"), ("tubul", "Microtubules"), ("actin", "ActinFilaments"), ("dna", "Nucleus"),
    ("golgia", "Golgi_gia"), ("golgpp", "Golgi_gpp"), ("Endoplasmic Reticulum", "ER"),
    ("endoplasmic_reticulum", "ER"), ("MICROTUBULES", "Microtubules"), ("Golgi_gpp", "Golgi_gpp"),
])
def test_aliases(alias, expected):
    assert canonical_class(alias) == expected


def test_release_tables_cover_all_classes():
    assert set(MURPHY_ANTIBODIES.values()) == set(CLASSES)
    assert set(IICBU_FOLDERS.values()) == set(CLASSES)


def test_user_classes_kept_and_coloured():
    assert canonical_class("Peroxisome") is None
    assert normalise_class_list(["er", "Peroxisome"]) == ["ER", "Peroxisome"]
    assert class_color("Peroxisome").startswith("#")
    with pytest.raises(ValueError, match="twice"):
        normalise_class_list(["er", "ER"])
