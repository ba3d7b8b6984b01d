"""Losses of RefT (Han et al., "Reference Twice", arXiv 2301.01156): the Mask2Former set loss [literature] and
the iFSIS base-class distillation term (v3's "class-enhanced base knowledge distillation", form not available).

  loss_ce    cross-entropy over C + 1 classes, no-object weight 0.1, every query          weight_ce   2
  loss_mask  sigmoid BCE, mean over points, sum over matched masks / #masks              weight_mask 5
  loss_dice  1 - (2 Σ p t + 1) / (Σ p + Σ t + 1), sum over matched masks / #masks        weight_dice 5
  loss_kd    KL(teacher || student) over base classes + no-object, per query (iFSIS)      weight_kd   1
Deep supervision: each term is summed over the final and every auxiliary prediction [literature].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tenfold.systems.reft.config import LossConfig
from tenfold.systems.reft.matcher import HungarianMatcher, point_sample, target_points


def sigmoid_ce_loss(inputs: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """inputs [K, P] logits, targets [K, P] -> Σ_k mean_p BCE / num_masks."""
    return F.binary_cross_entropy_with_logits(inputs, targets, reduction="none").mean(1).sum() / num_masks


def dice_loss(inputs: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """inputs [K, P] logits, targets [K, P] -> Σ_k (1 - (2 Σ p t + 1) / (Σ p + Σ t + 1)) / num_masks."""
    p = inputs.sigmoid()
    num = 2 * (p * targets).sum(1)
    den = p.sum(1) + targets.sum(1)
    return (1 - (num + 1) / (den + 1)).sum() / num_masks


def importance_points(mask_logits: torch.Tensor, num_points: int, oversample: float, importance: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Uncertainty-based point sampling [literature: PointRend / Mask2Former]: draw oversample * P uniform points,
    keep the importance * P with the smallest |logit|, add (1 - importance) * P uniform ones -> [K, P, 2]."""
    k = mask_logits.shape[0]
    dev = mask_logits.device
    cand = torch.rand(k, int(num_points * oversample), 2, generator=generator, device=dev)
    uncertainty = -point_sample(mask_logits.detach(), cand).abs()
    n_unc = int(importance * num_points)
    idx = uncertainty.topk(n_unc, dim=1).indices
    picked = torch.gather(cand, 1, idx[..., None].expand(-1, -1, 2))
    rand = torch.rand(k, num_points - n_unc, 2, generator=generator, device=dev)
    return torch.cat((picked, rand), 1)


class SetCriterion:
    """Mask2Former's set loss with deep supervision (Args: num_classes C, LossConfig)."""

    def __init__(self, num_classes: int, cfg: LossConfig) -> None:
        self.cfg, self.num_classes = cfg, num_classes
        self.matcher = HungarianMatcher(cfg.weight_ce, cfg.weight_mask, cfg.weight_dice, cfg.num_points)
        self.weights = {"loss_ce": cfg.weight_ce, "loss_mask": cfg.weight_mask, "loss_dice": cfg.weight_dice,
                        "loss_kd": cfg.weight_kd}

    def class_weight(self, device: torch.device) -> torch.Tensor:
        w = torch.ones(self.num_classes + 1, device=device)
        w[-1] = self.cfg.weight_no_object
        return w

    def single(self, out: dict, targets: list[dict[str, torch.Tensor]], num_masks: float,
               generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """The three terms on one prediction {"pred_logits" [B, N, C+1], "pred_masks" [B, N, h, w]}."""
        logits, masks = out["pred_logits"], out["pred_masks"]
        indices = self.matcher(out, targets, generator)
        target_cls = torch.full(logits.shape[:2], self.num_classes, dtype=torch.long, device=logits.device)
        pred_m, tgt_m = [], []
        for b, (rows, cols) in enumerate(indices):
            target_cls[b, rows] = targets[b]["labels"][cols]
            pred_m.append(masks[b, rows])
            tgt_m.append(targets[b]["masks"][cols].float())
        loss_ce = F.cross_entropy(logits.transpose(1, 2), target_cls, self.class_weight(logits.device))
        pred, tgt = torch.cat(pred_m), torch.cat(tgt_m)
        if len(pred) == 0:
            zero = masks.sum() * 0
            return {"loss_ce": loss_ce, "loss_mask": zero, "loss_dice": zero}
        coords = None
        if self.cfg.num_points:
            coords = importance_points(pred, self.cfg.num_points, self.cfg.oversample_ratio,
                                       self.cfg.importance_sample_ratio, generator)
            pred_p, tgt_p = point_sample(pred, coords), point_sample(tgt, coords)
        else:
            pred_p, tgt_p = target_points(pred, tgt, 0)
        return {"loss_ce": loss_ce, "loss_mask": sigmoid_ce_loss(pred_p, tgt_p, num_masks),
                "loss_dice": dice_loss(pred_p, tgt_p, num_masks)}

    def __call__(self, outputs: dict, targets: list[dict[str, torch.Tensor]],
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Targets per image {"labels" [M] contiguous indices, "masks" [M, H, W]} -> {"loss_ce", "loss_mask",
        "loss_dice"}, each summed over the final prediction and (deep supervision) every auxiliary one."""
        num_masks = max(float(sum(len(t["labels"]) for t in targets)), 1.0)
        preds = [outputs] + (list(outputs["aux_outputs"]) if self.cfg.use_deep_supervision else [])
        total: dict[str, torch.Tensor] = {}
        for p in preds:
            for k, v in self.single(p, targets, num_masks, generator).items():
                total[k] = total[k] + v if k in total else v
        return total

    def total(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ weight_t * loss_t."""
        return sum(self.weights[k] * v for k, v in losses.items())


def base_distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                           base_index: torch.Tensor) -> torch.Tensor:
    """loss_kd (spec component 7) [design choice: the "class-enhanced" form is not available].

    Over the base classes + no-object (index C), per query: KL(softmax(teacher) || softmax(student)), weighted
    by the teacher's top base-class probability (queries the frozen base model reads as a base object count
    most: the "class-enhanced" weighting), normalised by the weights' sum.
    Args: student_logits, teacher_logits [B, N, C+1]; base_index [C_b] contiguous base class indices.
    """
    keep = torch.cat((base_index, torch.tensor([student_logits.shape[-1] - 1], device=base_index.device)))
    t = teacher_logits[..., keep].detach().log_softmax(-1)
    s = student_logits[..., keep].log_softmax(-1)
    kl = (t.exp() * (t - s)).sum(-1)  # [B, N]
    w = t.exp()[..., :-1].max(-1).values
    return (w * kl).sum() / w.sum().clamp_min(1e-6)
