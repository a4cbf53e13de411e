import sys

import pytest
import torch

from napari_organelle import _safe_imports
from napari_organelle.models import (ARCHITECTURES, DEFAULT_ARCH, build_model, count_parameters,
                                     flops_per_cell)
from napari_organelle.preprocess import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def test_registry_defaults():
    assert DEFAULT_ARCH == {"classifier": "organelle-cnn", "autoencoder": "organelle-ae"}
    assert set(ARCHITECTURES) == {"classifier", "autoencoder"}
    assert "resnet18" in ARCHITECTURES["classifier"]
    with pytest.raises(InputError, match="Unknown"):
        build_model("classifier", "nope")
    with pytest.raises(InputError, match="kind"):
        build_model("segmenter")


@pytest.mark.parametrize("arch", ["organelle-cnn", "resnet18"])
def test_classifier_shapes_and_cam(arch):
    torch.manual_seed(0)
    m = build_model("classifier", arch, num_classes=7).eval()
    x = torch.rand(3, 2, 64, 64)
    with torch.no_grad():
        logits = m(x)
        f = m.features(x)
        cam = m.cam(x)
    assert logits.shape == (3, 7)
    assert f.ndim == 4 and f.shape[:2] == (3, m.head.in_features)
    assert cam.shape == (3, 7) + tuple(f.shape[-2:])
    # CAM averaged over space = logits (head on globally pooled features, dropout off in eval)
    assert torch.allclose(cam.mean((2, 3)), logits, atol=1e-4)
    assert m.arch_kwargs["num_classes"] == 7
    old = m.replace_head(3)
    assert old.out_features == 7 and m.head.out_features == 3 and m.arch_kwargs["num_classes"] == 3
    backbone = {id(p) for p in m.backbone_parameters()}
    assert all(id(p) not in backbone for p in m.head.parameters())
    assert len(backbone) == len(list(m.parameters())) - 2


def test_default_classifier_sizes():
    m = build_model("classifier")
    assert m(torch.rand(2, 2, 128, 128)).shape == (2, 10)
    assert m.features(torch.rand(1, 2, 128, 128)).shape == (1, 256, 4, 4)
    n = count_parameters(m)
    assert 3e5 < n < 5e6
    flops = flops_per_cell(m, (2, 128, 128))
    assert 5e7 < flops < 1e9  # ~0.17 GFLOP (multiply-add = 2 FLOPs)
    assert m.training  # flops_per_cell restores the mode


@pytest.mark.parametrize("hw", [(32, 32), (37, 53), (8, 9), (64, 40)])
def test_autoencoder_any_size(hw):
    torch.manual_seed(0)
    ae = build_model("autoencoder").eval()
    x = torch.rand(2, 1, *hw)
    with torch.no_grad():
        z = ae.encode(x)
        y = ae(x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert tuple(z.shape[1:]) == ae.latent_shape(*hw)
    assert ae.decode(z, hw).shape == x.shape


def test_autoencoder_bottleneck():
    ae = build_model("autoencoder")
    assert ae.compression_ratio(96, 96) >= 16
    assert ae.compression_ratio(382, 382) >= 16  # also after padding 382 -> 384
    c, h, w = ae.latent_shape(96, 96)
    assert c * h * w * 16 <= 96 * 96
    # no skip connection: the output depends on the input only through the latent
    x = torch.rand(1, 1, 32, 32)
    ae.eval()
    with torch.no_grad():
        assert torch.equal(ae.decode(ae.encode(x), (32, 32)), ae(x))
    assert count_parameters(ae) > 1e4
    assert flops_per_cell(ae, (1, 96, 96)) > 1e7


def test_safe_imports_guard(monkeypatch):
    # a plain script never blocks triton
    for name in _safe_imports.GL_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    had = "triton" in sys.modules
    if not had:
        assert _safe_imports.guard_triton() is False
        assert "triton" not in sys.modules
        # with a GL/Qt module loaded and triton not imported, triton gets blocked
        monkeypatch.setitem(sys.modules, "vispy", object())
        monkeypatch.setitem(sys.modules, "triton", None)  # restored by monkeypatch afterwards
        monkeypatch.delitem(sys.modules, "triton")
        assert _safe_imports.guard_triton() is True
        assert sys.modules["triton"] is None
        monkeypatch.delitem(sys.modules, "triton")
    tv = _safe_imports.import_torchvision()
    assert hasattr(tv, "models")
