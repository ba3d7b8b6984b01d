"""Shared fixtures for the ssdg tests (arXiv 2111.10221)."""

import pytest

from tenfold.core.runtime import torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, as the CPU profiles (steady on the shared 2-core machine)."""
    with torch_threads(1):
        yield
