"""Shared fixtures for the doorping tests (Backdoor Attacks Against Dataset Distillation, arXiv 2301.01197)."""

import pytest
import torch

from tenfold.systems.doorping.data import ImageData


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def tiny_data(channels: int = 1, size: int = 16, n_per_class: int = 6, num_classes: int = 10,
              seed: int = 0) -> ImageData:
    """A random normalised ImageData with every class present (train and test)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_classes).repeat(n_per_class)
    x = torch.randn(len(y), channels, size, size, generator=g)
    mean, std = torch.full((channels,), 0.3), torch.full((channels,), 0.3)
    return ImageData("tiny", x, y, x.clone(), y.clone(), mean, std, num_classes)


@pytest.fixture
def data() -> ImageData:
    return tiny_data()
