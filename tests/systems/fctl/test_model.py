"""TinyFCN, FCN-8s shape trace, FCtLNet stages and freezing (spec components 3, 4, 7; section 3)."""

import socket

import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.systems.fctl.model import FCN8s, FCtLNet, GlobalOnly, TinyFCN, build_encoder, build_trunk


def test_tiny_fcn_size_and_shapes(gen):
    net = TinyFCN(7)
    n = sum(p.numel() for p in net.parameters())
    assert 0.25e6 < n < 0.35e6  # spec component 4: ~0.3 M parameters
    taps = net.encoder(torch.rand(2, 3, 96, 96, generator=gen))
    assert taps["x"].shape == (2, 128, 6, 6)  # output stride 16: 96 / 16 = 6 -> 36 attention tokens
    assert taps["skip8"].shape[-1] == 12 and taps["skip4"].shape[-1] == 24
    assert net(torch.rand(1, 3, 64, 48, generator=gen)).shape == (1, 7, 64, 48)


def test_fcn8s_shape_trace_on_meta_device():
    with torch.device("meta"):
        net = FCN8s(7)
    x = torch.empty(1, 3, 508, 508, device="meta")
    taps = net.encoder(x)
    assert net.encoder.to_pool3[0](x).shape[-1] == 706  # 508 + 2*100 - 2
    assert taps["pool3"].shape[1:] == (256, 89, 89)
    assert taps["pool4"].shape[1:] == (512, 45, 45)
    assert taps["x"].shape[1:] == (512, 23, 23)
    assert net.classifier[0](taps["x"]).shape[-1] == 17  # conv6 7x7, no pad
    assert net.upscore2(net.classifier(taps["x"])).shape[-1] == 36
    assert net(x).shape == (1, 7, 508, 508)
    assert not net.upscore8.weight.requires_grad  # frozen bilinear kernels


def test_fcn8s_parameter_count_on_meta():
    with torch.device("meta"):
        net = FCN8s(7)
    total = sum(p.numel() for p in net.parameters())
    enc = sum(p.numel() for p in net.encoder.parameters())
    assert 133e6 < total < 136e6 and 14.6e6 < enc < 14.8e6  # ~134 M; VGG-16 conv trunk ~14.7 M


def test_building_vgg_makes_no_network_call(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    with torch.device("meta"):
        build_trunk("vgg16", 2)


def test_missing_or_corrupt_weights_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        build_trunk("vgg16", 2, weights_file=str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="bad.pth"):
        build_trunk("vgg16", 2, weights_file=str(bad))


def _stage3(widths=(4, 8, 8, 16)):
    return FCtLNet(build_trunk("tiny", 3, widths), [build_encoder("tiny", widths) for _ in range(2)], "all",
                   freeze_contexts=True)


def test_frozen_context_trunks_get_no_gradient_and_stay_in_eval(gen):
    model = _stage3().train()
    assert all(not m.training for m in model.context_encoders.modules())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.3)
    x = torch.rand(2, 3, 32, 32, generator=gen)
    model(x, [x.flip(-1), x.flip(-2)]).sum().backward()
    for name, p in model.named_parameters():
        if name.startswith("context_encoders"):
            assert p.grad is None and not p.requires_grad, name
        else:
            assert p.grad is not None, name  # gamma, Q/K/V, fusion, trunk all receive gradient


def test_global_only_output_size(gen):
    net = GlobalOnly(TinyFCN(3, (4, 8, 8, 16)), 32)
    assert net(torch.rand(1, 3, 96, 80, generator=gen)).shape == (1, 3, 96, 80)


def test_gammas_listed():
    assert set(_stage3().gammas()) == {f"lcf.branches.{i}.gamma" for i in range(3)}
