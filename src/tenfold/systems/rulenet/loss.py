"""Losses of `rulenet` (spec component 8): named terms `loss_<term>` with matching `weight_<term>`.

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693
("trained end to end from the rule classification loss"). Terms (design choice, specs/rulenet.md component 8):
    loss_rule   = class-weighted BCE on z (binary: the one rule class vs the default) or CE over
                  [z_1..z_C, 0 (default class)] (multi-class)                        -> rule_loss
    loss_anchor = sum_a (theta_a - theta_a^expert)^2, theta in feature-std units      -> anchor_loss
    loss_gate   = sum_a (1 - g_a) (learned gates only)                              -> gate_loss
    loss_link   = (1 / B) sum over the wrong items i (with a found target) of KL(pi*_i || pi_i): the batch
                  mean with 0 for every other item                                  -> link_loss, linking.kl_link
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
    # Deviation (soft/hard mismatch, spec pitfall 1, issue 20): with several rule classes training uses per-class
    # noisy-OR scores + CE (an argmax over classes), while the hard decision is the first firing rule in file
    # order (model.RuleNetwork.hard_decision). The two agree unless rules of different classes fire together;
    # every reported metric uses the hard decision, and the per-epoch hard/soft agreement is logged.
    full = torch.cat([z, torch.zeros_like(z[:, :1])], dim=1)  # (B, C_r + 1): the default class has logit 0
    return F.cross_entropy(full, labels, reduction=reduction)


def anchor_loss(theta: Tensor, theta_expert: Tensor, is_numeric: Tensor) -> Tensor:
    """sum_a ((theta_a - theta_a^expert) / s_f)^2; theta is already in std units. (A, 2) -> scalar."""
    return ((theta - theta_expert).pow(2) * is_numeric[:, None]).sum()


def gate_loss(gates: Tensor) -> Tensor:
    """sum_a (1 - g_a): mild pressure to keep the expert's atoms."""
    return (1 - gates).sum()


# Design choice (issue 20): the link term is averaged over the whole batch (B items), counting 0 for the items
# that get no target (spec 7: "correctly classified items get no linking term"), like loss_rule, which is a batch
# mean too. mu = weight_link then weighs one item's KL as weight_rule weighs one item's BCE. The mean over the
# wrong items only would multiply the link's weight by B / (number of wrong items), about 20 at a 5 % error rate.
def link_loss(kl: Tensor, keep: Tensor, batch_size: int) -> Tensor:
    """kl (B_w,) KL(pi* || pi) of the wrongly classified items, keep (B_w,) bool (items with a target) ->
    sum of kl[keep] / batch_size, a scalar."""
    return kl[keep].sum() / batch_size


def total_loss(terms: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """sum_t weight_t * loss_t over the terms present; every term must have a weight."""
    return sum(weights[name.replace("loss_", "weight_")] * value for name, value in terms.items())
