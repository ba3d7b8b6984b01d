"""Models of harmonize (arXiv 2211.05295): TinyUNet and the smp builders (offline)."""

import socket

import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.systems.harmonize.model import TinyUNet, build_model


def test_tiny_unet_shape_params_and_gradients():
    model = TinyUNet()
    x = torch.rand(2, 1, 32, 32)
    out = model(x)
    assert out.shape == (2, 1, 32, 32)
    # spec component 7 estimates ~0.12 M parameters for widths 8-16-32-64
    assert 100_000 < sum(p.numel() for p in model.parameters()) < 140_000
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    # prior-probability bias: p = 0.01 at the output before training
    assert float(torch.sigmoid(model.head.bias.detach())) == pytest.approx(0.01, rel=1e-4)
    with pytest.raises(InputError, match="divisible by 8"):
        model(torch.rand(1, 1, 30, 30))


def test_batch_of_one_equals_batched():
    model = TinyUNet(1, (4, 8)).eval()
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(model(x)[1:2], model(x[1:2]))  # GroupNorm: no cross-sample statistics


def test_smp_unet_builds_offline(monkeypatch, tmp_path):
    pytest.importorskip("segmentation_models_pytorch")

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    model = build_model("smp_unet")
    assert model(torch.rand(1, 1, 64, 64)).shape == (1, 1, 64, 64)
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    again = build_model("smp_unet", weights_file=str(path))
    torch.testing.assert_close(again.state_dict()["segmentation_head.0.weight"],
                               model.state_dict()["segmentation_head.0.weight"])
    with pytest.raises(InputError, match="model.weights_file"):
        build_model("smp_unet", weights_file=str(tmp_path / "missing.pt"))
    with pytest.raises(InputError, match="model.arch"):
        build_model("smp_nope")
