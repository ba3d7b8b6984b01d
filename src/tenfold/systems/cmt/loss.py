"""Matching costs and the Hungarian matcher of `cmt` (Cross Modal Transformer, arXiv 2301.01283), spec component 12.

Official `HungarianAssigner3D` with `FocalLossCost(weight=2.0)` and `BBox3DL1Cost(weight=0.25)`, IoU cost 0:

    C(i, j) = 2.0 * FocalCost(p_i, y_j) + 0.25 * sum_{k=0..7} |w_k b_hat_{i,k} - w_k b_{j,k}|
    FocalCost = alpha (1 - p)^gamma (-log p) - (1 - alpha) p^gamma (-log(1 - p))   at the GT class (alpha 0.25, gamma 2)

with code weights w = (2, 2, 1, 1, 1, 1, 1, 1, [0.2, 0.2]) applied to both sides before the L1 distance;
velocity (positions 8, 9) is excluded from the cost. Assignment by `scipy.optimize.linear_sum_assignment`.
`SetCriterion`: focal + L1 with the official weights and normalisers; the DN terms are not built yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from tenfold.systems.cmt.box_coder import CODE_WEIGHTS, normalize_bbox


def focal_cost(cls_logits: torch.Tensor, gt_labels: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
               weight: float = 2.0, eps: float = 1e-12) -> torch.Tensor:
    """(Q, C) logits, (G,) labels -> (Q, G) weighted focal classification cost (mmdet `FocalLossCost`)."""
    p = cls_logits.sigmoid()
    neg = -(1 - p + eps).log() * (1 - alpha) * p.pow(gamma)
    pos = -(p + eps).log() * alpha * (1 - p).pow(gamma)
    return (pos[:, gt_labels] - neg[:, gt_labels]) * weight


def l1_box_cost(pred_code: torch.Tensor, gt_code: torch.Tensor, code_weights: Sequence[float] = CODE_WEIGHTS,
                weight: float = 0.25) -> torch.Tensor:
    """(Q, 10) predicted code, (G, 10) target code -> (Q, G) weighted L1 over the first 8 positions."""
    w = torch.as_tensor(code_weights, dtype=pred_code.dtype, device=pred_code.device)
    n = w.shape[0]
    return torch.cdist((pred_code[:, :n] * w)[:, :8], (gt_code[:, :n] * w)[:, :8], p=1) * weight


def hungarian_match(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost one-to-one assignment of a (Q, G) cost matrix: (query indices, GT indices), int64."""
    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)


@dataclass(frozen=True)
class HungarianMatcher:
    """Per sample and decoder layer: cost matrix of the official costs, then `linear_sum_assignment`.

    Args:
        weight_cls: FocalCost weight (official 2.0).
        weight_bbox: L1 cost weight (official 0.25).
        focal_alpha, focal_gamma: 0.25, 2.0.
        code_weights: the 10 code weights (official (2, 2, 1, 1, 1, 1, 1, 1, 0.2, 0.2)).
    """
    weight_cls: float = 2.0
    weight_bbox: float = 0.25
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    code_weights: tuple[float, ...] = CODE_WEIGHTS

    def cost(self, cls_logits: torch.Tensor, pred_code: torch.Tensor, gt_boxes: torch.Tensor,
             gt_labels: torch.Tensor) -> torch.Tensor:
        """(Q, C) logits, (Q, 10) predicted code, (G, 9) GT boxes (gravity centre), (G,) labels -> (Q, G)."""
        return (focal_cost(cls_logits, gt_labels, self.focal_alpha, self.focal_gamma, self.weight_cls)
                + l1_box_cost(pred_code, normalize_bbox(gt_boxes), self.code_weights, self.weight_bbox))

    def __call__(self, cls_logits: torch.Tensor, pred_code: torch.Tensor, gt_boxes: torch.Tensor,
                 gt_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Matched (query indices, GT indices); empty when there is no GT."""
        if gt_boxes.shape[0] == 0 or cls_logits.shape[0] == 0:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty.clone()
        with torch.no_grad():
            return hungarian_match(self.cost(cls_logits, pred_code, gt_boxes, gt_labels))



def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Element-wise sigmoid focal loss (mmdet `sigmoid_focal_loss`, no reduction):
    BCE(logit, t) * (alpha t + (1 - alpha)(1 - t)) * ((1 - p) t + p (1 - t))^gamma."""
    p = logits.sigmoid()
    pt = (1 - p) * targets + p * (1 - targets)
    weight = (alpha * targets + (1 - alpha) * (1 - targets)) * pt.pow(gamma)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weight


@dataclass(frozen=True)
class SetCriterion:
    """Matching loss of one decoder layer, summed over layers (spec component 12; DN terms not built yet).

    loss_cls  = sum focal(all Q x C, one-hot targets, background all-zero) / max(N_pos + 0.1 N_neg, 1)
    loss_bbox = sum_{matched} sum_k w_k |b_hat_k - b_k| / max(N_pos, 1)     (non-finite targets dropped)
    Weighted total = weight_cls * loss_cls + weight_bbox * loss_bbox (2.0, 0.25). N counted over the batch.
    [code: `CmtHead._loss_single_task`: max(N_pos + 0.1 N_neg, 1); the official L1 divides by N_pos and
    `nan_to_num`s 0 / 0 to 0, which max(N_pos, 1) reproduces since the sum is then 0.]
    """
    num_classes: int
    matcher: HungarianMatcher = HungarianMatcher()
    weight_cls: float = 2.0
    weight_bbox: float = 0.25
    bg_cls_weight: float = 0.1
    code_weights: tuple[float, ...] = CODE_WEIGHTS

    def layer_losses(self, cls_logits: torch.Tensor, pred_code: torch.Tensor, gt_boxes: list[torch.Tensor],
                     gt_labels: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """(B, Q, C) logits, (B, Q, 10) codes, per-sample (G_b, 9) boxes and (G_b,) labels -> unweighted terms."""
        b, q, c = cls_logits.shape
        targets = torch.zeros_like(cls_logits)
        box_t = torch.zeros_like(pred_code)
        box_w = torch.zeros_like(pred_code)
        w = pred_code.new_tensor(self.code_weights)
        n_pos = 0
        for i in range(b):
            rows, cols = self.matcher(cls_logits[i], pred_code[i], gt_boxes[i], gt_labels[i])
            targets[i, rows, gt_labels[i][cols]] = 1.0
            box_t[i, rows] = normalize_bbox(gt_boxes[i][cols]).to(pred_code.dtype)
            box_w[i, rows] = w
            n_pos += len(rows)
        n_neg = b * q - n_pos
        cls_norm = max(n_pos + self.bg_cls_weight * n_neg, 1.0)
        loss_cls = sigmoid_focal_loss(cls_logits, targets).sum() / cls_norm
        finite = torch.isfinite(box_t).all(dim=-1)
        l1 = (pred_code[finite] - box_t[finite]).abs() * box_w[finite]
        return {"loss_cls": loss_cls, "loss_bbox": l1.sum() / max(n_pos, 1)}

    def __call__(self, cls_logits: torch.Tensor, pred_code: torch.Tensor, gt_boxes: list[torch.Tensor],
                 gt_labels: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """(L, B, Q, C), (L, B, Q, 10) over decoder layers -> {"loss_cls", "loss_bbox", "loss"} summed over L."""
        terms = [self.layer_losses(cls_logits[k], pred_code[k], gt_boxes, gt_labels)
                 for k in range(cls_logits.shape[0])]
        out = {k: torch.stack([t[k] for t in terms]).sum() for k in ("loss_cls", "loss_bbox")}
        out["loss"] = self.weight_cls * out["loss_cls"] + self.weight_bbox * out["loss_bbox"]
        return out
