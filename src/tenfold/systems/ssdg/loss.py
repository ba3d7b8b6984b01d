"""Losses of `ssdg` (Lin et al., "Semi-Supervised Domain Generalization with Evolving Intermediate Domain",
arXiv 2111.10221), as released in MetaVisionLab/SSDG (spec components 3, 4, 6, 7, 8).

  input_mixup, mixup_cross_entropy      x~ = lam x + (1 - lam) x[pi]; lam CE(z, y) + (1 - lam) CE(z, y[pi])
  classifier_discrepancy                d = (1/(B C)) sum |p1 - p2| ("mean", released) or (1/B) sum ("sum_classes", MCD)
  forget_rate_schedule                  tau_e = linspace(0, tau, ramp)[e], then tau
  co_teaching_select                    the floor((1 - tau) |Q|) smallest losses of the OTHER peer
  information_maximization_loss         IM = mean H(p(x)) - H(mean p(x))
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def input_mixup(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0, generator: torch.Generator | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """One lam ~ Beta(alpha, alpha) per batch, pi a random permutation -> (x~, y, y[pi], lam) [code]."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample().item())
    perm = torch.randperm(x.size(0), generator=generator)
    return lam * x + (1 - lam) * x[perm], y, y[perm], lam


def mixup_cross_entropy(logits: torch.Tensor, y: torch.Tensor, y_perm: torch.Tensor, lam: float) -> torch.Tensor:
    """CE_mix(z) = lam CE(z, y) + (1 - lam) CE(z, y[pi]) (spec component 3)."""
    return lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y_perm)


def classifier_discrepancy(p1: torch.Tensor, p2: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Two-classifier discrepancy on softmax outputs [B, C] (spec component 4).

    "mean" [code]: (1/(B C)) sum_b sum_c |p1 - p2|, the released normalisation (1/C of the MCD paper's);
    "sum_classes" [MCD, Saito et al. CVPR 2018]: (1/B) sum_b sum_c |p1 - p2|.
    """
    diff = (p1 - p2).abs()
    if reduction == "mean":
        return diff.mean()
    if reduction == "sum_classes":
        return diff.sum(dim=1).mean()
    raise ValueError(f"reduction must be 'mean' or 'sum_classes', got {reduction!r}")


def forget_rate_schedule(epoch: int, forget_rate: float = 0.5, ramp_epochs: int = 10) -> float:
    """tau_e: linspace(0, tau, ramp)[e] for e < ramp, tau after (co-teaching reference discretisation, spec 6)."""
    if epoch >= ramp_epochs:
        return forget_rate
    return float(np.linspace(0.0, forget_rate, ramp_epochs)[epoch])


def co_teaching_select(ce_other: torch.Tensor, forget_rate: float) -> torch.Tensor:
    """Indices of the floor((1 - tau) |Q|) samples with the smallest per-sample CE under the other peer (spec 7)."""
    n_keep = int(math.floor((1.0 - forget_rate) * ce_other.numel() + 1e-9))
    return torch.argsort(ce_other.detach(), stable=True)[:n_keep]


def entropy(p: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """H(p) = -sum_c p_c log(p_c + eps) over the last axis."""
    return -(p * torch.log(p + eps)).sum(dim=-1)


def information_maximization_loss(logits_q: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """IM = mean_{x in Q} H(p(x)) - H(mean_{x in Q} p(x)) (spec 8; SHOT): confident and diverse."""
    if logits_q.numel() == 0:
        return logits_q.sum() * 0.0
    p = torch.softmax(logits_q, dim=1)
    return entropy(p, eps).mean() - entropy(p.mean(dim=0), eps)
