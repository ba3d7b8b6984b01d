"""Shared fixtures for the fctl tests (FCtL, arXiv 2109.02580)."""

import pytest
import torch

from tenfold.core.config import make_config
from tenfold.systems.fctl.config import PROFILES, Config


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def smoke_cfg() -> Config:
    return make_config(Config, PROFILES, "smoke")
