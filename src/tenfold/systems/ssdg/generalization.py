"""Phase 2 of `ssdg` (Lin et al., "Semi-Supervised Domain Generalization with Evolving Intermediate Domain",
arXiv 2111.10221): co-teaching domain generalization with MixStyle and information maximisation (spec 9).

Peers a and b (backbone with MixStyle after blocks 1-3 + Linear), separate optimizers, persisting across
cycles. A shuffled batch of D_L (true labels) u P_1 u P_2 (Phase-1 pseudo labels) splits into T and Q by the
per-sample flag `is_labeled` (never by path). For peer j with the other peer -j:
  L_j = CE_T(j) + CE_{R_-j}(j) + weight_im * IM_j(Q),   R_-j = co_teaching_select(CE of -j on Q, tau_e)
Only peer a is used at test time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tenfold.systems.ssdg.data import DomainSet, augment, make_optimizer, set_lr, shuffled_batches, to_input
from tenfold.systems.ssdg.loss import co_teaching_select, forget_rate_schedule, information_maximization_loss
from tenfold.systems.ssdg.model import Classifier


def split_by_flag(is_labeled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, Q) index tensors from the explicit flag (spec component 11; fixes the path-substring bug)."""
    return torch.nonzero(is_labeled, as_tuple=True)[0], torch.nonzero(~is_labeled, as_tuple=True)[0]


def _mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean() if x.numel() else x.sum() * 0.0


def peer_losses(logits_j: torch.Tensor, logits_other: torch.Tensor, y: torch.Tensor, t_idx: torch.Tensor,
                q_idx: torch.Tensor, tau: float, weight_im: float) -> dict[str, torch.Tensor]:
    """Loss terms of peer j: CE over T, CE over the other peer's small-loss set R of Q, IM over Q."""
    ce_other = F.cross_entropy(logits_other[q_idx].detach(), y[q_idx], reduction="none")
    keep = q_idx[co_teaching_select(ce_other, tau)]
    terms = {"loss_ce_labeled": _mean(F.cross_entropy(logits_j[t_idx], y[t_idx], reduction="none")),
             "loss_ce_pseudo": _mean(F.cross_entropy(logits_j[keep], y[keep], reduction="none")),
             "loss_im": information_maximization_loss(logits_j[q_idx])}
    terms["loss"] = terms["loss_ce_labeled"] + terms["loss_ce_pseudo"] + weight_im * terms["loss_im"]
    return terms


class CoTeachingDG:
    """Args: peer_a, peer_b (Classifier with MixStyle), t (TrainConfig: forget_rate 0.5, ramp_epochs 10,
    weight_im 1, batch_size), aug (data config), device."""

    def __init__(self, peer_a: Classifier, peer_b: Classifier, t: Any, aug: Any,
                 device: torch.device | str = "cpu") -> None:
        self.a, self.b, self.t, self.aug, self.device = peer_a.to(device), peer_b.to(device), t, aug, device
        self.opt_a = make_optimizer(peer_a.parameters(), t)
        self.opt_b = make_optimizer(peer_b.parameters(), t)
        self.image_passes = 0

    def fit_epoch(self, data: DomainSet, epoch: int, lr: float, rng: np.random.Generator) -> dict[str, float]:
        """One epoch over the shuffled union (mixed-domain batches, so MixStyle mixes styles across domains)."""
        set_lr([self.opt_a, self.opt_b], lr)
        self.a.train()
        self.b.train()
        tau = forget_rate_schedule(epoch, self.t.forget_rate, self.t.ramp_epochs)
        logs: dict[str, list[float]] = {}
        for idx in shuffled_batches(len(data), self.t.batch_size, rng):
            x = to_input(augment(data.images[idx], rng, self.aug.use_invert_aug, self.aug.use_gray_aug))
            x = x.to(self.device)
            y = torch.as_tensor(data.labels[idx]).to(self.device)
            t_idx, q_idx = split_by_flag(torch.as_tensor(data.is_labeled[idx]).to(self.device))
            la, lb = self.a(x), self.b(x)
            ta = peer_losses(la, lb, y, t_idx, q_idx, tau, self.t.weight_im)
            tb = peer_losses(lb, la, y, t_idx, q_idx, tau, self.t.weight_im)
            if not torch.isfinite(ta["loss"] + tb["loss"]):
                raise FloatingPointError("non-finite co-teaching loss")
            self.opt_a.zero_grad(set_to_none=True)
            self.opt_b.zero_grad(set_to_none=True)
            (ta["loss"] + tb["loss"]).backward()  # the two graphs are disjoint: each peer gets its own L_j
            self.opt_a.step()
            self.opt_b.step()
            self.image_passes += 2 * len(idx)
            for k, v in ta.items():
                logs.setdefault(k, []).append(float(v.item()))
        out = {k: float(np.mean(v)) for k, v in logs.items()}
        out["forget_rate"] = tau
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"a": self.a.state_dict(), "b": self.b.state_dict(), "opt_a": self.opt_a.state_dict(),
                "opt_b": self.opt_b.state_dict()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.a.load_state_dict(s["a"])
        self.b.load_state_dict(s["b"])
        self.opt_a.load_state_dict(s["opt_a"])
        self.opt_b.load_state_dict(s["opt_b"])
