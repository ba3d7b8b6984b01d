"""Shared fixtures for the harmonize tests (arXiv 2211.05295)."""

import pytest
import torch

HARD = 30.0  # |logit| that gives p = sigmoid(30) = 1 - 9.4e-14, i.e. hard 0/1 soft counts


@pytest.fixture
def counts_8_2_4() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits/mask with hard counts TP 8, FP 2, FN 4 (and 6 TN): spec section 7's hand example."""
    g = torch.tensor([1.0] * 12 + [0.0] * 8)
    z = torch.tensor([HARD] * 8 + [-HARD] * 4 + [HARD] * 2 + [-HARD] * 6)
    return z.view(1, 1, 4, 5), g.view(1, 1, 4, 5)
