"""The indep_b renderer: the base.py contract, determinism, and a few biology checks per class."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_organelle.classes import CLASSES
from napari_organelle.preprocess import InputError
from napari_organelle.simulator import indep_b
from napari_organelle.simulator._indep_b_draw import lines, stamp
from napari_organelle.simulator.base import check_rendered, load_renderer


def _draw(cls, seed, size=128, diameter=100, state=None):
    return indep_b._render(cls, np.random.default_rng(seed), size=size, diameter=diameter, state=state)


def test_registered_as_a_renderer():
    mod = load_renderer("indep_b")
    assert mod.NAME == "indep_b" and mod.render is indep_b.render


@pytest.mark.parametrize("cls", CLASSES)
def test_every_class_meets_the_contract_at_several_sizes(cls):
    for i, (size, diameter) in enumerate(((100, 80), (128, 100), (256, 200), (384, 300))):
        r = indep_b.render(cls, np.random.default_rng([1, i]), size=size, diameter=diameter)
        assert check_rendered(r, cls, size, diameter) == [], (size, r.state, r.info)
    for state in ("mitotic", "rounded"):
        r = _draw(cls, 3, state=state)
        assert r.state == state
        assert check_rendered(r, cls, 128, 100) == [], (state, r.info)


def test_info_is_json_and_names_the_variant():
    for cls in CLASSES:
        for state in ("interphase", "mitotic"):
            r = _draw(cls, 19, state=state)
            info = json.loads(json.dumps(r.info))
            assert info["cls"] == cls and info["line"] and info["pixel_size_um"] > 0


def test_same_seed_same_cell_other_seed_other_cell():
    for cls in ("Microtubules", "ER", "Golgi_gpp"):
        a, b, c = _draw(cls, 5), _draw(cls, 5), _draw(cls, 6)
        for name in ("protein", "dna", "cell", "nucleus"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), (cls, name)
        assert a.pixel_size_um == b.pixel_size_um
        assert not np.array_equal(a.protein, c.protein) and not np.array_equal(a.dna, c.dna)


def test_cell_and_dna_do_not_depend_on_the_class():
    """One generator state is one cell whatever protein is drawn in it (no class cue in the cell)."""
    ref = _draw(CLASSES[0], 9)
    for cls in CLASSES[1:]:
        r = _draw(cls, 9)
        assert np.array_equal(r.dna, ref.dna) and np.array_equal(r.cell, ref.cell)
        assert np.array_equal(r.nucleus, ref.nucleus) and r.pixel_size_um == ref.pixel_size_um
        assert not np.array_equal(r.protein, ref.protein)


def test_protein_brightness_range_is_the_same_for_every_class():
    tops = {}
    for cls in CLASSES:
        q = []
        for i in range(8):
            r = _draw(cls, [2, i])
            q.append(np.quantile(r.protein[r.cell], 0.995))
        tops[cls] = np.median(q)
    vals = np.array(list(tops.values()))
    assert vals.max() / vals.min() < 3, tops


def test_rounded_and_mitotic_cells_are_a_few_percent():
    n = 300
    states = [indep_b.render("Nucleus", np.random.default_rng([4, i]), size=64, diameter=50).state
              for i in range(n)]
    mit, rnd = states.count("mitotic") / n, states.count("rounded") / n
    assert 0.01 <= mit <= 0.08 and 0.004 <= rnd <= 0.07, (mit, rnd)


def test_structures_have_physical_sizes():
    """Nuclei are 7-20 um long and cells of the documented sizes, whatever the pixel size."""
    for i in range(30):
        d = (80, 160, 300)[i % 3]
        r = indep_b.render("Nucleus", np.random.default_rng([8, i]), size=int(1.3 * d), diameter=d)
        if r.state != "interphase":
            continue
        lab, n = ndi.label(r.nucleus)
        sizes = ndi.sum(np.ones_like(lab), lab, range(1, n + 1))
        main = lab == 1 + int(np.argmax(sizes))
        ys, xs = np.nonzero(main)
        length = max(np.ptp(ys), np.ptp(xs)) * r.pixel_size_um
        assert 5 <= length <= 22, (length, r.info)
        ys, xs = np.nonzero(r.cell)
        cell_len = max(np.ptp(ys), np.ptp(xs)) * r.pixel_size_um
        assert 8 <= cell_len <= 85, (cell_len, r.info)


def _corr(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _inner(mask, r, um=1.0):
    return ndi.binary_erosion(mask, iterations=max(int(um / r.pixel_size_um), 1))


def test_nucleus_protein_follows_the_dna():
    cs = []
    for i in range(8):
        r = _draw("Nucleus", [10, i], state="interphase")
        m = _inner(r.nucleus, r, 0.5)
        cs.append(_corr(r.protein[m], r.dna[m]))
        assert r.protein[r.nucleus].mean() > 5 * r.protein[r.cell & ~r.nucleus].mean()
    assert min(cs) > 0.1 and np.median(cs) > 0.4, cs


def test_nucleolus_signal_is_in_bright_bodies_inside_the_nucleus():
    for i in range(6):
        r = _draw("Nucleolus", [11, i], size=256, diameter=200, state="interphase")
        p = r.protein
        assert p[r.nucleus].mean() > 8 * p[r.cell & ~r.nucleus].mean()
        bright = p > 0.5 * np.quantile(p[r.nucleus], 0.99)
        assert (bright & r.nucleus).sum() > 0.95 * bright.sum()
        assert bright.sum() < 0.6 * r.nucleus.sum()     # bodies, not the whole nucleus
        # the bodies sit where the DNA is dim (nucleoli are holes in the DNA stain)
        assert r.dna[bright & r.nucleus].mean() < r.dna[r.nucleus & ~bright].mean()


@pytest.mark.parametrize("cls", ["Golgi_gia", "Golgi_gpp"])
def test_golgi_is_a_compact_structure_on_one_side_of_the_nucleus(cls):
    one_sided = []
    for i in range(8):
        r = _draw(cls, [12, i], size=256, diameter=200, state="interphase")
        dist = ndi.distance_transform_edt(~r.nucleus) * r.pixel_size_um
        cyto = r.cell & ~r.nucleus
        bright = cyto & (r.protein > np.quantile(r.protein[cyto], 0.97))
        assert np.median(dist[bright]) < 4.5, r.info              # um from the nuclear envelope
        assert r.protein[r.nucleus].mean() < 0.3 * r.protein[bright].mean()
        cy, cx = ndi.center_of_mass(r.nucleus)
        ys, xs = np.nonzero(bright)
        one_sided.append(abs(np.exp(1j * np.arctan2(ys - cy, xs - cx)).mean()))
    assert min(one_sided) > 0.45 and np.median(one_sided) > 0.7, one_sided


def test_er_is_dimmer_over_the_nucleus_than_around_it():
    for i in range(6):
        r = _draw("ER", [13, i], size=256, diameter=200, state="interphase")
        inner = _inner(r.nucleus, r, 1.0)
        ring = ndi.binary_dilation(r.nucleus, iterations=max(int(2.0 / r.pixel_size_um), 1)) & r.cell & ~r.nucleus
        assert r.protein[inner].mean() < 0.7 * r.protein[ring].mean(), r.info


def test_cytoplasmic_puncta_and_tubules_avoid_the_nucleus():
    for cls in ("Endosome", "Lysosome", "Mitochondria"):
        for i in range(4):
            r = _draw(cls, [14, i], size=256, diameter=200, state="interphase")
            inner = _inner(r.nucleus, r, 1.0)
            cyto = r.cell & ~ndi.binary_dilation(r.nucleus, iterations=2)
            assert r.protein[inner].mean() < 0.5 * r.protein[cyto].mean(), (cls, r.info)


def test_lysosomes_are_bigger_dots_than_endosomes():
    def dot_size_um(r):
        """Half-width of the autocorrelation of the cytoplasmic signal (a typical puncta size)."""
        p = ndi.gaussian_filter(r.protein.astype(float), 0.1 / r.pixel_size_um)
        p = (p - ndi.gaussian_filter(p, 1.5 / r.pixel_size_um)) * (r.cell & ~r.nucleus)
        ac = np.fft.irfft2(np.abs(np.fft.rfft2(p)) ** 2, s=p.shape)[0, :60]
        ac = ac / ac[0]
        k = int(np.argmax(ac < 0.5))
        return (k - 1 + (ac[k - 1] - 0.5) / (ac[k - 1] - ac[k])) * r.pixel_size_um

    size = {cls: np.median([dot_size_um(_draw(cls, [15, i], size=256, diameter=200, state="interphase"))
                            for i in range(8)]) for cls in ("Lysosome", "Endosome")}
    assert size["Lysosome"] > 1.15 * size["Endosome"], size
    assert 0.15 < size["Endosome"] < 0.6 and 0.3 < size["Lysosome"] < 1.0, size


def test_actin_outline_and_microtubule_lines():
    # actin is enriched at the cell edge (cortex, adhesions) in compact cells
    edge_ratio = []
    for i in range(6):
        r = _draw("ActinFilaments", [16, i], size=256, diameter=200, state="interphase")
        rim = r.cell & ~ndi.binary_erosion(r.cell, iterations=max(int(1.0 / r.pixel_size_um), 1))
        inner = ndi.binary_erosion(r.cell, iterations=max(int(3.0 / r.pixel_size_um), 1)) & ~r.nucleus
        edge_ratio.append(r.protein[rim].mean() / r.protein[inner].mean())
    assert np.median(edge_ratio) > 1.0, edge_ratio
    # microtubules are thin lines: strong pixel-to-pixel contrast in the thin periphery
    r = _draw("Microtubules", 17, size=384, diameter=300, state="interphase")
    cyto = r.cell & ~ndi.binary_dilation(r.nucleus, iterations=10)
    v = r.protein[cyto]
    assert np.quantile(v, 0.95) > 3 * np.quantile(v, 0.5)


def test_mitotic_cells_are_round_with_condensed_bright_chromosomes():
    mit, inter = [], []
    for i in range(6):
        r = _draw("Nucleus", [18, i], state="mitotic")
        assert r.nucleus.sum() < 0.5 * r.cell.sum()
        assert r.info["stage"] in ("prometaphase", "metaphase", "anaphase", "telophase")
        mit.append(r.dna[r.nucleus].mean())
        q = _draw("Nucleus", [18, i], state="interphase")
        inter.append(q.dna[q.nucleus].mean())
    assert np.median(mit) > 1.5 * np.median(inter), (mit, inter)


def test_lines_have_the_right_brightness_per_length_at_any_angle():
    for ang in (0.0, 0.3, np.pi / 4, 1.2):
        L = 40.0
        y0, x0 = 30.2, 30.7
        img = lines(100, y0, x0, y0 + L * np.sin(ang), x0 + L * np.cos(ang), 0.4, 0.2)
        assert img.sum() == pytest.approx(0.4 * L, rel=1e-6)
    # a sub-pixel horizontal line between two pixel rows is shared by both rows
    img = lines(40, 10.5, 5, 10.5, 30, 1.0, 0.1)
    assert img[10, 10:25].mean() == pytest.approx(0.5) and img[11, 10:25].mean() == pytest.approx(0.5)
    # a wide line keeps its total and spreads over its width
    img = lines(100, 50, 10, 50, 90, 1.0, 6.0)
    assert img.sum() == pytest.approx(80, rel=1e-3)
    prof = img[:, 50]
    assert 4 < (prof > prof.max() / 2).sum() < 9


def test_stamps_keep_their_amount():
    img = stamp(64, [20.3, 40.8], [20.1, 30.5], [2.0, 3.0], [1.5, 3.0], kind="ring", ring_w=0.6, fill=0.2)
    assert img.sum() == pytest.approx(5.0)
    ring = stamp(64, 32.0, 32.0, 1.0, 6.0, kind="ring", ring_w=0.6)
    assert ring[32, 32] < 0.2 * ring.max()                                  # dark centre


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(InputError, match="class"):
        indep_b.render("Peroxisome", np.random.default_rng(0), size=128, diameter=100)
    with pytest.raises(InputError, match="1.25"):
        indep_b.render("ER", np.random.default_rng(0), size=100, diameter=100)
    with pytest.raises(InputError, match="diameter"):
        indep_b.render("ER", np.random.default_rng(0), size=40, diameter=10)
