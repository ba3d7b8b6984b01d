"""doorping networks: flatten sizes and parameter counts (spec 7.10)."""

from __future__ import annotations

import pytest
import torch

from tenfold.core.config import make_config
from tenfold.systems.doorping.config import PROFILES, Config

from torch import nn

from tenfold.systems.doorping.model import (VGG11, AlexCifarNet, AlexNet, ConvNet, ConvNetMini, ResNet18,
                                            build_network, xavier_init)


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


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


def test_alexcifarnet_is_alexnet_with_two_lrn_layers():
    # LRN has no parameters: 3*25*64 + 64 = 4,864; 64*25*64 + 64 = 102,464; 4096*384 + 384 = 1,573,248;
    # 384*192 + 192 = 73,920; 192*10 + 10 = 1,930. Total 1,756,426 (as AlexNet).
    net = AlexCifarNet(3, 10, 32)
    assert _count(net) == 4864 + 102_464 + 1_573_248 + 73_920 + 1930 == _count(AlexNet(3, 10, 32))
    lrn = [m for m in net.features if isinstance(m, nn.LocalResponseNorm)]
    assert len(lrn) == 2 and lrn[0].size == 4 and lrn[0].alpha == pytest.approx(0.001 / 9) and lrn[0].beta == 0.75
    kinds = [type(m).__name__ for m in net.features]  # LRN after the first pool and after the second ReLU
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "LocalResponseNorm", "Conv2d", "ReLU", "LocalResponseNorm",
                     "MaxPool2d"]
    assert net.fc0.in_features == 4096 and net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_vgg11_parameter_count_and_shape():
    # Conv3x3 weights + biases, GroupNorm(c, c) 2c each: 3->64: 1,792 + 128; 64->128: 73,856 + 256;
    # 128->256: 295,168 + 512; 256->256: 590,080 + 512; 256->512: 1,180,160 + 1,024; 3 x 512->512:
    # 3 * (2,359,808 + 1,024); classifier 512*10 + 10 = 5,130. 32 -> 16 -> 8 -> 4 -> 2 -> 1: 512 features.
    net = VGG11(3, 10, 32)
    convs = 1792 + 73_856 + 295_168 + 590_080 + 1_180_160 + 3 * 2_359_808
    norms = 128 + 256 + 512 + 512 + 4 * 1024
    assert net.classifier.in_features == 512
    assert _count(net) == convs + norms + 5130 == 9_231_114
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.features) == 5
    assert sum(isinstance(m, nn.GroupNorm) and m.num_groups == m.num_channels for m in net.features) == 8


def test_resnet18_parameter_count_and_shape():
    # No conv biases; GroupNorm(c, c) 2c. Stem 3*9*64 + 128 = 1,856. Stage 64: 2 blocks x (2 * 36,864 + 256)
    # = 147,968. Stage 128: (73,728 + 147,456 + 512 + 8,192 + 256) + (2 * 147,456 + 512) = 525,568.
    # Stage 256: (294,912 + 589,824 + 1,024 + 32,768 + 512) + (2 * 589,824 + 1,024) = 2,099,712.
    # Stage 512: (1,179,648 + 2,359,296 + 2,048 + 131,072 + 1,024) + (2 * 2,359,296 + 2,048) = 8,393,728.
    # Classifier 512*512 + 512 = 262,656 and 512*10 + 10 = 5,130. Total 11,436,618.
    net = ResNet18(3, 10, 32)
    assert _count(net) == 1856 + 147_968 + 525_568 + 2_099_712 + 8_393_728 + 262_656 + 5130 == 11_436_618
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert ResNet18(1, 10, 16)(torch.zeros(2, 1, 16, 16)).shape == (2, 10)  # adaptive pool (Deviation)


def test_vgg11_too_small_is_refused_by_the_pre_write_check():
    # 16x16x3: 16 -> 8 -> 4 -> 2 -> 1, then instance norm over a 1 x 1 map (ValueError) -> InputError.
    from tenfold.core.errors import InputError
    from tenfold.systems.doorping.victims import check_network_fits

    from .conftest import tiny_data

    cfg = make_config(Config, PROFILES, "smoke", {"model.eval_arch": "vgg11"})
    with pytest.raises(InputError, match="model.arch=vgg11"):
        check_network_fits(cfg, tiny_data(channels=3))


@pytest.mark.parametrize("shape", [(192, 2048), (128, 3, 3, 3)])
def test_xavier_normal_std_and_zero_biases(shape):
    # xavier_normal_ with gain 1: std = sqrt(2 / (fan_in + fan_out)). Linear 2048 -> 192: sqrt(2 / 2240) = 0.02988;
    # Conv3x3 3 -> 128: fan_in 3*9 = 27, fan_out 128*9 = 1152, sqrt(2 / 1179) = 0.04119.
    torch.manual_seed(0)
    m = nn.Linear(shape[1], shape[0]) if len(shape) == 2 else nn.Conv2d(shape[1], shape[0], 3)
    xavier_init(m)
    expected = 0.02988 if len(shape) == 2 else 0.04119
    assert float(m.weight.std()) == pytest.approx(expected, rel=0.04)
    assert abs(float(m.weight.mean())) < 0.1 * expected
    assert torch.equal(m.bias, torch.zeros_like(m.bias))


def test_init_auto_is_xavier_for_dd_and_default_for_dc():
    from tenfold.systems.doorping.victims import network_builder

    from .conftest import tiny_data

    d = tiny_data()
    for method, xavier in (("dd", True), ("dc", False)):
        cfg = make_config(Config, PROFILES, "smoke", {"distill.method": method})
        net = network_builder(cfg, d, "convnet_mini")(torch.Generator().manual_seed(0))
        assert bool((net.fc1.bias == 0).all()) == xavier  # PyTorch's default draws nonzero biases
    forced = make_config(Config, PROFILES, "smoke", {"model.init": "xavier"})
    net = network_builder(forced, d, "convnet_mini")(torch.Generator().manual_seed(0))
    assert float(net.fc1.weight.std()) == pytest.approx((2 / (512 + 192)) ** 0.5, rel=0.05)


def test_eval_arch_list_is_validated():
    from tenfold.core.config import ConfigError

    assert make_config(Config, PROFILES, "full").model.eval_archs() == ("vgg11", "resnet18")
    with pytest.raises(ConfigError, match="model.eval_arch"):
        make_config(Config, PROFILES, "smoke", {"model.eval_arch": "vgg11,vgg19"})
    with pytest.raises(ConfigError, match="model.arch"):
        make_config(Config, PROFILES, "smoke", {"model.arch": "resnet18"})  # transfer victims only
