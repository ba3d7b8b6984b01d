"""Losses of `rulenet` (spec component 8): named terms `loss_<term>` with matching `weight_<term>`.

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693
("trained end to end from the rule classification loss"). Terms (design choice, specs/rulenet.md component 8):
    loss_rule   = class-weighted BCE on z (binary: the one rule class vs the default) or CE over
                  [z_1..z_C, 0 (default class)] (multi-class)                        -> rule_loss
    loss_anchor = sum_a (theta_a - theta_a^expert)^2, theta in feature-std units      -> anchor_loss
    loss_gate   = sum_a (1 - g_a) (learned gates only)                              -> gate_loss
    loss_link   = mean over wrong items of KL(pi* || pi)                            -> linking.kl_link
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def rule_loss(z: Tensor, labels: Tensor, pos_weight: float = 1.0, reduction: str = "mean") -> Tensor:
    """z (B, C_r) class logits of the rule classes, labels (B,) class index (C_r = default class).

    Binary (C_r = 1): BCE with target 1[label == 0] and positive weight `pos_weight`.
    """
    if z.shape[1] == 1:
        target = (labels == 0).to(z.dtype)
        pw = torch.tensor(pos_weight, dtype=z.dtype)
        return F.binary_cross_entropy_with_logits(z[:, 0], target, pos_weight=pw, reduction=reduction)
    full = torch.cat([z, torch.zeros_like(z[:, :1])], dim=1)  # (B, C_r + 1): the default class has logit 0
    return F.cross_entropy(full, labels, reduction=reduction)


def anchor_loss(theta: Tensor, theta_expert: Tensor, is_numeric: Tensor) -> Tensor:
    """sum_a ((theta_a - theta_a^expert) / s_f)^2; theta is already in std units. (A, 2) -> scalar."""
    return ((theta - theta_expert).pow(2) * is_numeric[:, None]).sum()


def gate_loss(gates: Tensor) -> Tensor:
    """sum_a (1 - g_a): mild pressure to keep the expert's atoms."""
    return (1 - gates).sum()


def total_loss(terms: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """sum_t weight_t * loss_t over the terms present; every term must have a weight."""
    return sum(weights[name.replace("loss_", "weight_")] * value for name, value in terms.items())
