"""benchmarks/real_cells.py: the intensity-transfer robustness check (no real images needed)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "real_cells.py"


@pytest.fixture(scope="module")
def rc():
    spec = importlib.util.spec_from_file_location("real_cells_bench", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_transfer_keeps_the_range_and_order_and_bends_the_middle(rc):
    img = np.linspace(100, 4000, 64 * 64, dtype=np.float32).reshape(64, 64)
    assert rc.transfer(img, 1.0) is img
    for g in (0.5, 2.0):
        out = rc.transfer(img, g)
        assert out.min() == pytest.approx(100) and out.max() == pytest.approx(4000)
        assert np.all(np.diff(out.ravel()) >= 0)  # monotonic: the same pixels stay brightest
    mid = img.ravel()[img.size // 2]
    assert rc.transfer(img, 0.5).ravel()[img.size // 2] > mid > rc.transfer(img, 2.0).ravel()[img.size // 2]
    flat = np.full((8, 8), 7, np.uint16)
    assert rc.transfer(flat, 0.5) is flat  # a constant image is left to the product to refuse


def test_a_non_positive_gamma_is_refused_with_a_message(rc, capsys):
    with pytest.raises(SystemExit):
        rc.main(["--protein-gamma", "0", "--root", "/nonexistent"])
    assert "--protein-gamma must be a positive number" in capsys.readouterr().err
