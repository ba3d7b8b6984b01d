"""Hungarian matching of Mask2Former [literature: official config], used by RefT's base model (Han et al.,
"Reference Twice", arXiv 2301.01156).

cost(i, j) = weight_ce * (-p_i(y_j)) + weight_mask * BCE(m_i, M_j) + weight_dice * Dice(m_i, M_j)
  p_i = softmax of query i's class logits; BCE and Dice on the same points of the predicted and the target mask
  (12,544 uniform points [literature]; 0 = every pixel of the mask map, the CPU variant's Deviation).
The assignment is `scipy.optimize.linear_sum_assignment` on each image's [N, M] cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from tenfold.systems.reft.reference import area_resize


def point_sample(masks: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear values of masks [K, h, w] at coords [K, P, 2] ((x, y) in [0, 1], pixel centres at (i + 0.5) / w)
    -> [K, P] (detectron2's `point_sample`, align_corners=False)."""
    grid = (2 * coords - 1)[:, :, None]  # [K, P, 1, 2]
    return F.grid_sample(masks[:, None].float(), grid, align_corners=False)[:, 0, :, 0]


def batch_sigmoid_ce_cost(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean sigmoid BCE of every prediction against every target: inputs [N, P] logits, targets [M, P] -> [N, M]."""
    pos = F.binary_cross_entropy_with_logits(inputs, torch.ones_like(inputs), reduction="none")
    neg = F.binary_cross_entropy_with_logits(inputs, torch.zeros_like(inputs), reduction="none")
    return (pos @ targets.t() + neg @ (1 - targets).t()) / inputs.shape[1]


def batch_dice_cost(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - (2 Σ p t + 1) / (Σ p + Σ t + 1), p = sigmoid(inputs) [N, P], targets [M, P] -> [N, M]."""
    p = inputs.sigmoid()
    num = 2 * p @ targets.t()
    den = p.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (num + 1) / (den + 1)


def target_points(pred_masks: torch.Tensor, tgt_masks: torch.Tensor, num_points: int,
                  coords: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The matcher's and loss's view of masks: pred [N, h, w] logits, tgt [M, H, W] -> ([N, P], [M, P]).

    num_points = 0: every pixel of the prediction's grid, targets area-resized to it (soft targets).
    Otherwise the same `coords` [P, 2] for both (uniform points when called by the matcher).
    """
    if num_points == 0:
        return pred_masks.flatten(1), area_resize(tgt_masks, pred_masks.shape[-2:]).flatten(1)
    assert coords is not None
    pred = point_sample(pred_masks, coords[None].expand(len(pred_masks), -1, -1))
    tgt = point_sample(tgt_masks, coords[None].expand(len(tgt_masks), -1, -1))
    return pred, tgt


class HungarianMatcher:
    """One-to-one assignment of N queries to M targets per image (Args: the cost weights, num_points)."""

    def __init__(self, weight_ce: float = 2.0, weight_mask: float = 5.0, weight_dice: float = 5.0,
                 num_points: int = 12544) -> None:
        self.weight_ce, self.weight_mask, self.weight_dice = weight_ce, weight_mask, weight_dice
        self.num_points = num_points

    def cost(self, logits: torch.Tensor, pred_masks: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """logits [N, C+1], pred_masks [N, h, w], labels [M], masks [M, H, W] -> cost [N, M]."""
        coords = None
        if self.num_points:
            coords = torch.rand(self.num_points, 2, generator=generator, device=pred_masks.device)
        pred, tgt = target_points(pred_masks, masks, self.num_points, coords)
        cost_class = -logits.softmax(-1)[:, labels]
        return (self.weight_ce * cost_class + self.weight_mask * batch_sigmoid_ce_cost(pred, tgt)
                + self.weight_dice * batch_dice_cost(pred, tgt))

    @torch.no_grad()
    def __call__(self, outputs: dict, targets: list[dict[str, torch.Tensor]],
                 generator: torch.Generator | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """outputs {"pred_logits" [B, N, C+1], "pred_masks" [B, N, h, w]}; targets per image {"labels" [M],
        "masks" [M, H, W]} -> per image (query indices, target indices), both [min(N, M)]."""
        out = []
        for b, t in enumerate(targets):
            if len(t["labels"]) == 0:
                empty = torch.zeros(0, dtype=torch.long)
                out.append((empty, empty))
                continue
            c = self.cost(outputs["pred_logits"][b].float(), outputs["pred_masks"][b].float(), t["labels"],
                          t["masks"].float(), generator)
            rows, cols = linear_sum_assignment(c.cpu().numpy())
            out.append((torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)))
        return out
