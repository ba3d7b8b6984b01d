"""completion_lm_loss of drumlm (arXiv 2301.01162, spec component 8) on hand-built logits."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from tenfold.systems.drumlm.loss import completion_lm_loss, nll_per_line


def _logits_with_nll(nlls: list[float]) -> torch.Tensor:
    """(1, T, 2) logits whose NLL of target 0 is nlls[t]: -log sigmoid(a) = x  <=>  a = -log(e^x - 1)."""
    a = torch.tensor([-math.log(math.exp(x) - 1) for x in nlls], dtype=torch.float64)
    return torch.stack([a, torch.zeros_like(a)], dim=-1)[None]


def test_completion_loss_hand() -> None:
    # tokens: 2 prompt (NLL 2.0 each), 3 completion (NLL 1.0 each), 1 padding (NLL 9.0, masked)
    logits = _logits_with_nll([2.0, 2.0, 1.0, 1.0, 1.0, 9.0])
    targets = torch.zeros(1, 6, dtype=torch.long)
    is_comp = torch.tensor([[False, False, True, True, True, True]])
    is_real = torch.tensor([[True, True, True, True, True, False]])
    t = completion_lm_loss(logits, targets, is_comp, is_real, weight_prompt=0.01)
    # completion mean 1.0, prompt mean 2.0 -> total 1.0 + 0.01 * 2.0 = 1.02
    assert_close(t["loss_completion"], torch.tensor(1.0), rtol=0, atol=1e-6)
    assert_close(t["loss_prompt"], torch.tensor(2.0), rtol=0, atol=1e-6)
    assert_close(t["loss"], torch.tensor(1.02), rtol=0, atol=1e-6)
    assert_close(t["nll_completion_sum"], torch.tensor(3.0), rtol=0, atol=1e-6)
    assert t["num_completion_tokens"].item() == 3


def test_nll_per_line_hand() -> None:
    assert nll_per_line(112.0, 224) == 0.5  # 112 nats over 224 drum lines
    assert math.isnan(nll_per_line(1.0, 0))
