"""Loss of FCtL (Liu et al., "Ultra-high Resolution Image Segmentation via Locality-aware Context Fusion and
Alternating Local Enhancement", IJCV 2024, arXiv 2109.02580): spec ../shared/specs/fctl.md component 12.

softmax_focal_loss: FL = mean over pixels of -(1 - p_t)^gamma log p_t, gamma = 3, no alpha, class 0 included
[code]. loss_terms returns {"loss_focal": ...} matching the config's `train.weight_focal`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softmax_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 3.0) -> torch.Tensor:
    """Multi-class softmax focal loss averaged over every pixel.

    Args:
        logits: (B, K, H, W) raw scores.
        target: (B, H, W) int64 class ids in [0, K).
        gamma: focusing exponent (3 [code]); 0 gives cross-entropy.
    """
    logp = F.log_softmax(logits, dim=1)
    logp_t = logp.gather(1, target[:, None]).squeeze(1)  # (B, 1, H, W) -> (B, H, W)
    p_t = logp_t.exp()
    return (-((1 - p_t) ** gamma) * logp_t).mean()


def loss_terms(logits: torch.Tensor, target: torch.Tensor, gamma: float = 3.0,
               weight_focal: float = 1.0) -> dict[str, torch.Tensor]:
    """Named loss dict plus the weighted total under "loss"."""
    focal = softmax_focal_loss(logits, target, gamma)
    return {"loss_focal": focal, "loss": weight_focal * focal}
