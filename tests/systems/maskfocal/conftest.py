"""Shared fixtures for the maskfocal tests (Mask Focal Loss, arXiv 2212.11542)."""

import pytest
import torch


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
