"""doorping networks: flatten sizes and parameter counts (spec 7.10)."""

from __future__ import annotations

import pytest
import torch

from tenfold.systems.doorping.model import AlexNet, ConvNet, ConvNetMini, build_network


@pytest.mark.parametrize("channels", [1, 3])
def test_convnet_32_flattens_to_2048(channels):
    # 3x32x32: 32 -> 16 -> 8 -> 4, 128 * 4 * 4 = 2048; 1x32x32 with padding 3: 36 -> 18 -> 9 -> 4 -> 2048.
    net = ConvNet(channels, 10, 32)
    assert net.fc1.in_features == 2048 and net.fc1.out_features == 192
    assert net(torch.zeros(2, channels, 32, 32)).shape == (2, 10)


def test_convnet_parameter_count():
    # 3 -> 128: 3*9*128 + 128 = 3,584; 128 -> 128 twice: 2 * (128*9*128 + 128) = 295,168;
    # FC 2048 -> 192: 393,408; FC 192 -> 10: 1,930. Total 694,090.
    net = ConvNet(3, 10, 32)
    assert sum(p.numel() for p in net.parameters()) == 3584 + 295_168 + 393_408 + 1930


def test_convnet_mini_and_the_padding_rule():
    # ConvNetMini 1x16x16 padding 1: 16 -> 8 -> 4, 32 * 16 = 512. The code's padding-3 rule at 16x16, depth 2
    # gives 20 -> 10 -> 5: 32 * 25 = 800 != 512, which the dummy forward handles.
    assert ConvNetMini(1, 10, 16).fc1.in_features == 512
    assert ConvNet(1, 10, 16, width=32, depth=2).fc1.in_features == 800


def test_alexnet_4096():
    # 32 -> pool(3, 2, 1) -> 16 -> 8: 64 * 8 * 8 = 4096.
    net = AlexNet(3, 10, 32)
    assert net.fc0.in_features == 4096 and net.fc1.in_features == 384 and net.fc1.out_features == 192
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_build_network_is_reproducible_from_the_generator():
    a = build_network("convnet_mini", 1, 10, 16, 32, 2, generator=torch.Generator().manual_seed(3))
    b = build_network("convnet_mini", 1, 10, 16, 32, 2, generator=torch.Generator().manual_seed(3))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
