"""Shared fixtures for the qae tests (arXiv 2005.11149)."""

import pytest
import torch

from tenfold.core.runtime import torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    """The qae matrices are 4x4 to 16x16: intra-op threading only adds overhead (as in train/reproduce)."""
    with torch_threads(1):
        yield


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
