"""Networks of `doorping` (Backdoor Attacks Against Dataset Distillation, arXiv 2301.01197), spec 2 component 6.

    ConvNet      BAADD's ConvNet: depth x [Conv3x3 width, ReLU, AvgPool2], no norm, Flatten -> FC-192 -> ReLU -> FC
    ConvNetMini  the CPU variant: ConvNet(width 32, depth 2, padding 1) on 16x16 -> 512 -> 192 -> 10
    AlexNet      DC side: 2 x [Conv5x5 64 pad 2, ReLU, MaxPool(3, 2, 1)] -> 384 -> 192 -> 10
    AlexCifarNet DD side: AlexNet with LocalResponseNorm(4) after the first pool and after the second ReLU
    VGG11        DC's VGG11 with instance norm (GroupNorm(c, c)), transfer victim only (eval_mode M)
    ResNet18     DC's ResNet18 with instance norm, FC 512 -> 512 -> classes, transfer victim only
    xavier_init  DD's `init = xavier`: xavier_normal_(W, gain 1) on every conv / linear weight, biases 0
The FC-192 layer is the one DOORPING's neuron selection picks (`layer = -2`). Flatten sizes come from a
dummy forward, not from the code's bookkeeping (spec 7, test 10).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _flat_size(features: nn.Module, channels: int, im_size: int) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, channels, im_size, im_size)).flatten(1).shape[1])


class ConvNet(nn.Module):
    """BAADD's norm-free ConvNet (not DC's instance-norm one; pitfall 4).

    Args:
        channels: input channels (1 or 3).
        num_classes: outputs.
        im_size: input height = width.
        width: conv channels (default 128 [code]).
        depth: conv blocks (default 3 [code]).
        hidden: FC width (default 192 [code]).
        first_padding: padding of the first conv; None = the code's rule (3 for 1-channel input, else 1).
    """

    def __init__(self, channels: int, num_classes: int, im_size: int, width: int = 128, depth: int = 3,
                 hidden: int = 192, first_padding: int | None = None) -> None:
        super().__init__()
        pad0 = (3 if channels == 1 else 1) if first_padding is None else first_padding
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Conv2d(channels if i == 0 else width, width, 3, padding=pad0 if i == 0 else 1),
                       nn.ReLU(), nn.AvgPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.fc1 = nn.Linear(_flat_size(self.features, channels, im_size), hidden)
        self.relu = nn.ReLU()  # Design choice: not in-place, so a hook on fc1 sees the pre-ReLU value
        self.fc2 = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened features (N, D), DM's embedding."""
        return self.features(x).flatten(1)  # (N, width, h, w) -> (N, width * h * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(self.embed(x))))


def ConvNetMini(channels: int, num_classes: int, im_size: int, width: int = 32, depth: int = 2,
                hidden: int = 192) -> ConvNet:
    """Design choice (spec 2.6): the CPU ConvNet, padding 1 everywhere, FC-192 head kept for DOORPING."""
    return ConvNet(channels, num_classes, im_size, width=width, depth=depth, hidden=hidden, first_padding=1)


class AlexNet(nn.Module):
    """DC's AlexNet: Conv5x5 64 -> ReLU -> MaxPool(3,2,1), twice; FC 384 -> 192 -> classes."""

    def __init__(self, channels: int, num_classes: int, im_size: int, hidden: int = 192) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.fc0 = nn.Linear(_flat_size(self.features, channels, im_size), 384)
        self.fc1 = nn.Linear(384, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)  # (N, 64, h, w) -> (N, 64 * h * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(self.relu(self.fc0(self.embed(x))))))


class AlexCifarNet(AlexNet):
    """DD's AlexCifarNet [code]: AlexNet with LocalResponseNorm(4, alpha 0.001 / 9, beta 0.75, k 1) after the first
    max-pool and after the second ReLU (LRN has no parameters, so the parameter count equals AlexNet's)."""

    def __init__(self, channels: int, num_classes: int, im_size: int, hidden: int = 192) -> None:
        super().__init__(channels, num_classes, im_size, hidden)
        lrn = dict(size=4, alpha=0.001 / 9.0, beta=0.75, k=1.0)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.LocalResponseNorm(**lrn),
            nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(), nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2, 1))


def _instance_norm(c: int) -> nn.Module:
    return nn.GroupNorm(c, c, affine=True)  # DC's "instancenorm"


VGG11_LAYERS = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """DC's VGG11 (instance norm) [code, DC/networks.py]: [Conv3x3, GroupNorm(c, c), ReLU] / MaxPool2 per entry of
    VGG11_LAYERS (first conv padding 3 on 1-channel input, else 1) -> Linear(512 * h * w, classes).
    At 32x32 the features are 512 x 1 x 1; the input size comes from a dummy forward."""

    def __init__(self, channels: int, num_classes: int, im_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = channels
        for i, v in enumerate(VGG11_LAYERS):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers += [nn.Conv2d(c_in, v, 3, padding=3 if channels == 1 and i == 0 else 1), _instance_norm(v),
                       nn.ReLU()]
            c_in = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(_flat_size(self.features, channels, im_size), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))  # (N, 512, h, w) -> (N, 512 h w)


class BasicBlock(nn.Module):
    """ResNet basic block with instance norm and a 1x1-conv + norm shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = _instance_norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = _instance_norm(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _instance_norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """DC's ResNet18 (instance norm) [code, DC/networks.py]: Conv3x3 64 -> 4 stages of 2 basic blocks (64, 128,
    256, 512; strides 1, 2, 2, 2) -> average pool -> Linear(512, 512) -> Linear(512, classes) (no ReLU between,
    as the code). Deviation: adaptive average pooling to 1 x 1; the code's avg_pool2d(4) is the same at 32 x 32
    (a 4 x 4 map) and fails on smaller inputs."""

    def __init__(self, channels: int, num_classes: int, im_size: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
        self.bn1 = _instance_norm(64)
        blocks, c_in = [], 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Linear(512, 512), nn.Linear(512, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(torch.relu(self.bn1(self.conv1(x))))  # (N, 512, H/8, W/8)
        return self.classifier(F.adaptive_avg_pool2d(out, 1).flatten(1))  # (N, 512, 1, 1) -> (N, 512)


def xavier_init(net: nn.Module) -> nn.Module:
    """DD's `init = xavier`, `init_param = 1` [code, DD/networks/utils.py init_weights]: every Conv / Linear weight
    ~ N(0, 2 / (fan_in + fan_out)) (xavier_normal_, gain 1), biases 0; norm layers weight 1, bias 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=1.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.GroupNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return net


ARCHS = ("convnet", "convnet_mini", "alexnet", "alexcifarnet", "vgg11", "resnet18")


def build_network(arch: str, channels: int, num_classes: int, im_size: int, width: int = 128, depth: int = 3,
                  hidden: int = 192, generator: torch.Generator | None = None, init: str = "default") -> nn.Module:
    """A freshly initialised network; with `generator`, its init is drawn from that stream (reproducible).

    init: "default" (PyTorch's, as DC) | "xavier" (DD's, `xavier_init`).
    """
    def make() -> nn.Module:
        if arch == "convnet":
            net: nn.Module = ConvNet(channels, num_classes, im_size, width, depth, hidden)
        elif arch == "convnet_mini":
            net = ConvNetMini(channels, num_classes, im_size, width, depth, hidden)
        elif arch == "alexnet":
            net = AlexNet(channels, num_classes, im_size, hidden)
        elif arch == "alexcifarnet":
            net = AlexCifarNet(channels, num_classes, im_size, hidden)
        elif arch == "vgg11":
            net = VGG11(channels, num_classes, im_size)
        elif arch == "resnet18":
            net = ResNet18(channels, num_classes, im_size)
        else:
            raise ValueError(f"unknown arch {arch!r}")
        return xavier_init(net) if init == "xavier" else net

    if generator is None:
        return make()
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()
