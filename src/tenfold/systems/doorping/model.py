"""Networks of `doorping` (Backdoor Attacks Against Dataset Distillation, arXiv 2301.01197), spec 2 component 6.

    ConvNet      BAADD's ConvNet: depth x [Conv3x3 width, ReLU, AvgPool2], no norm, Flatten -> FC-192 -> ReLU -> FC
    ConvNetMini  the CPU variant: ConvNet(width 32, depth 2, padding 1) on 16x16 -> 512 -> 192 -> 10
    AlexNet      DC side: 2 x [Conv5x5 64 pad 2, ReLU, MaxPool(3, 2, 1)] -> 384 -> 192 -> 10
The FC-192 layer is the one DOORPING's neuron selection picks (`layer = -2`). Flatten sizes come from a
dummy forward, not from the code's bookkeeping (spec 7, test 10).
"""

from __future__ import annotations

import torch
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


def build_network(arch: str, channels: int, num_classes: int, im_size: int, width: int = 128, depth: int = 3,
                  hidden: int = 192, generator: torch.Generator | None = None) -> nn.Module:
    """A freshly initialised network; with `generator`, its init is drawn from that stream (reproducible)."""
    def make() -> nn.Module:
        if arch == "convnet":
            return ConvNet(channels, num_classes, im_size, width, depth, hidden)
        if arch == "convnet_mini":
            return ConvNetMini(channels, num_classes, im_size, width, depth, hidden)
        if arch == "alexnet":
            return AlexNet(channels, num_classes, im_size, hidden)
        raise ValueError(f"unknown arch {arch!r}")

    if generator is None:
        return make()
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()
