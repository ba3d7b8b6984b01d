"""Shared fixtures for the reft tests (arXiv 2301.01156)."""

import pytest

from tenfold.core.runtime import torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, as the CPU profiles."""
    with torch_threads(1):
        yield
