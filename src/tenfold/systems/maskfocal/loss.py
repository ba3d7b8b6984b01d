"""Losses of `maskfocal`: the two host classification losses, Mask Focal Loss, and the detector criteria.

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with
canonical object detection networks", arXiv 2212.11542 (spec ../shared/specs/maskfocal.md, section 2).

Equation -> function (p_u = sigmoid(z_u), logs computed with logsigmoid so logits of +-30 stay finite):
  L_A  = sum_u -alpha_t (1 - p_t)^gamma log p_t / N_pos               ... `binary_focal_loss` (spec 2.3)
  L_B  = -(1/N) sum_u [1{Y=1} (1-p)^a log p + 1{Y<1} (1-Y)^b p^a log(1-p)] ... `centernet_focal_loss` (2.4)
  L_MFL = -(1/N) sum_u [M Y^delta (1-p)^a log p + (1-M) (1-Y)^b p^a log(1-p)] ... `MaskFocalLoss` (2.5)
The MFL equation is a reconstruction from the abstract ([design choice], spec 2.5); it is parameterised
(mask_mode, variant, delta, a, b, norm) so the paper's exact variant can be selected when it is known.
Criteria return named terms "loss_<term>" matching the config's "weight_<term>".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VARIANTS = ("weighted", "unweighted", "soft")
NORMS = ("mask_weight", "heads", "native")


def binary_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
                      num_pos: float | torch.Tensor | None = None) -> torch.Tensor:
    """Baseline A (spec 2.3): sigmoid focal loss summed over locations, divided by max(N_pos, 1).

    Args:
        logits, targets: same shape; targets in {0, 1}.
        alpha: 0.25 (RetinaNet/FCOS); a negative alpha disables alpha-balancing (as in torchvision).
        gamma: 2.
        num_pos: the normaliser; default = the number of positive targets.
    """
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    n = targets.sum() if num_pos is None else torch.as_tensor(num_pos, dtype=logits.dtype)
    return loss.sum() / torch.clamp(n, min=1.0)


def centernet_focal_loss(logits: torch.Tensor, heatmap: torch.Tensor, a: float = 2.0, b: float = 4.0,
                         num_heads: float | torch.Tensor | None = None) -> torch.Tensor:
    """Baseline B (spec 2.4): CenterNet's penalty-reduced focal loss; N = #peaks (Y = 1), at least 1.

    # Deviation: CenterNet clamps p to [1e-4, 1 - 1e-4]; here log p and log(1 - p) come from logsigmoid,
    # exact and finite for any logit (the two agree wherever the clamp is inactive).
    """
    log_p, log_1mp = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos = heatmap.eq(1).to(logits.dtype)
    pos_term = pos * (1 - p) ** a * log_p
    neg_term = (1 - pos) * (1 - heatmap) ** b * p ** a * log_1mp
    n = pos.sum() if num_heads is None else torch.as_tensor(num_heads, dtype=logits.dtype)
    return -(pos_term.sum() + neg_term.sum()) / torch.clamp(n, min=1.0)


class MaskFocalLoss(nn.Module):
    """Mask Focal Loss (spec 2.5, [design choice] reconstruction from the abstract).

    L = -(1/N) sum_u [ M_u w_u (1 - p_u)^a log p_u + (1 - M_u) (1 - Y_u)^b p_u^a log(1 - p_u) ]
    Args:
        mask_mode: which mask M the targets provide: "box" (default; inside the GT box), "radius" (within r_k of
            c~_k) or "threshold" (Y >= e^{-1/2}). The criterion picks it; `forward` takes M itself.
        variant: "weighted" (default, w = Y^delta), "unweighted" (w = 1: CenterNet loss with positives = M), or
            "soft" (inside M: -|Y - p|^a [Y log p + (1 - Y) log(1 - p)], quality/varifocal style).
        delta: exponent of the in-situ heatmap weight (1).
        a, b: focal exponents (2, 4, as CenterNet).
        norm: "mask_weight" (N = sum_u M_u w_u, default), "heads" (N = number of heads) or "native" (N = the
            host detector's own normaliser, passed in by its criterion: #heads for CenterNet, #positive locations
            for FCOS, so that both losses of a comparison divide by the same N, pitfall 6); N >= 1 always, so
            with zero heads only the negative sum remains.
    Special cases (tested): M = 1{Y = 1}, norm="heads" -> L_B exactly; Y = M = binary box map -> L_A with
    alpha-balancing off, normalised by the number of positive locations.
    """

    def __init__(self, mask_mode: str = "box", variant: str = "weighted", delta: float = 1.0, a: float = 2.0,
                 b: float = 4.0, norm: str = "mask_weight") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"MaskFocalLoss variant must be one of {VARIANTS}, got {variant!r}")
        if norm not in NORMS:
            raise ValueError(f"MaskFocalLoss norm must be one of {NORMS}, got {norm!r}")
        self.mask_mode, self.variant, self.delta, self.a, self.b, self.norm = mask_mode, variant, delta, a, b, norm

    def positive_weight(self, heatmap: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """w_u = M_u Y_u^delta (weighted, soft) or M_u (unweighted): N of norm="mask_weight" is its sum."""
        return mask if self.variant == "unweighted" else mask * heatmap ** self.delta

    def forward(self, logits: torch.Tensor, heatmap: torch.Tensor, mask: torch.Tensor,
                num_heads: float | torch.Tensor | None = None,
                normaliser: float | torch.Tensor | None = None) -> torch.Tensor:
        """logits, heatmap Y, mask M: same shape (e.g. (B, 1, Ho, Wo)); returns a scalar.

        num_heads: N for norm="heads" / "native" (the criterion passes the host's own count for "native").
        normaliser: when given, N itself, whatever `norm` (train.py passes N summed over DDP ranks).
        """
        log_p, log_1mp = F.logsigmoid(logits), F.logsigmoid(-logits)
        p = torch.sigmoid(logits)
        neg = (1 - mask) * (1 - heatmap) ** self.b * p ** self.a * log_1mp
        # Design choice: every variant uses the same penalty-reduced negative term outside M.
        weight = self.positive_weight(heatmap, mask)
        if self.variant == "soft":
            pos = mask * (heatmap - p).abs() ** self.a * (heatmap * log_p + (1 - heatmap) * log_1mp)
        else:
            pos = weight * (1 - p) ** self.a * log_p
        if normaliser is not None:
            n = torch.as_tensor(normaliser, dtype=logits.dtype)
        elif self.norm in ("heads", "native"):
            n = torch.as_tensor(0.0 if num_heads is None else num_heads, dtype=logits.dtype)
        else:
            n = weight.sum()
        return -(pos.sum() + neg.sum()) / torch.clamp(n, min=1.0)


def build_cls_loss(cfg_loss) -> MaskFocalLoss | None:
    """The MFL module when `loss.cls_loss == "mfl"`, else None (the detector's native loss)."""
    if cfg_loss.cls_loss != "mfl":
        return None
    return MaskFocalLoss(cfg_loss.mask_mode, cfg_loss.variant, cfg_loss.delta, cfg_loss.a, cfg_loss.b,
                         cfg_loss.norm)


def centernet_criterion(out: dict, tgt: dict, cfg_loss, mfl: MaskFocalLoss | None) -> dict[str, torch.Tensor]:
    """CenterNet loss dict: loss_cls (L_B or MFL on the heatmap), loss_size and loss_offset (L1 at the peaks).

    out: "heatmap" (B, 1, Ho, Wo) logits, "size" (B, 2, Ho, Wo), "offset" (B, 2, Ho, Wo).
    tgt: "heatmap" (B, 1, Ho, Wo), "mask_<mode>" (B, 1, Ho, Wo), "index" (K, 3) (b, y, x) of the peaks,
         "size" (K, 2), "offset" (K, 2); the normalisers "num_heads" and (MFL) "mask_weight", summed over the
         DDP ranks, and "loss_scale" = the world size (train.collate), so that the gradients DDP averages over
         ranks equal one process's on the whole global batch. Without them: this batch's counts, scale 1.
    """
    b, y, x = tgt["index"].unbind(1)
    n = tgt.get("num_heads", float(len(b)))
    scale = tgt.get("loss_scale", 1.0)
    if mfl is None:
        cls = centernet_focal_loss(out["heatmap"], tgt["heatmap"], cfg_loss.a, cfg_loss.b, num_heads=n)
    else:
        cls = mfl(out["heatmap"], tgt["heatmap"], tgt[f"mask_{mfl.mask_mode}"], num_heads=n,
                  normaliser=tgt.get("mask_weight") if mfl.norm == "mask_weight" else None)
    size = out["size"].permute(0, 2, 3, 1)[b, y, x]  # (B, 2, Ho, Wo) -> (B, Ho, Wo, 2) -> (K, 2)
    offset = out["offset"].permute(0, 2, 3, 1)[b, y, x]  # (K, 2)
    denom = torch.clamp(torch.as_tensor(float(n)), min=1.0)
    # Paper (CenterNet): L1 on size and offset at the peaks, weights 0.1 and 1 (unverified recollection).
    return {"loss_cls": scale * cls, "loss_size": scale * F.l1_loss(size, tgt["size"], reduction="sum") / denom,
            "loss_offset": scale * F.l1_loss(offset, tgt["offset"], reduction="sum") / denom}


def fcos_criterion(out: dict, tgt: dict, cfg_loss, mfl: MaskFocalLoss | None) -> dict[str, torch.Tensor]:
    """FCOS loss dict over all FPN locations, flattened: loss_cls, loss_centerness (BCE), loss_box (GIoU).

    out: "cls" (B, L) logits, "ctr" (B, L) logits, "boxes" (B, L, 4) xyxy px (decoded from LTRB).
    tgt: "labels" (B, L) binary t, "heatmap" (B, L) Y, "mask_<mode>" (B, L), "boxes" (B, L, 4),
         "centerness" (B, L); normalisers "num_pos", "num_heads", (MFL) "mask_weight" and "loss_scale" as in
         `centernet_criterion`.
    Only loss_cls changes with the switch; centre-ness and GIoU stay FCOS's (spec 2.6). MFL with norm="native"
    divides by FCOS's own N_pos, as the native loss does.
    """
    from torchvision.ops import generalized_box_iou_loss

    scale = tgt.get("loss_scale", 1.0)
    if mfl is None:
        cls = binary_focal_loss(out["cls"], tgt["labels"], cfg_loss.alpha, cfg_loss.gamma, num_pos=tgt["num_pos"])
    else:
        n_mfl = tgt["num_pos"] if mfl.norm == "native" else tgt["num_heads"]
        cls = mfl(out["cls"], tgt["heatmap"], tgt[f"mask_{mfl.mask_mode}"], num_heads=n_mfl,
                  normaliser=tgt.get("mask_weight") if mfl.norm == "mask_weight" else None)
    pos = tgt["labels"] > 0
    n = torch.clamp(torch.as_tensor(tgt["num_pos"], dtype=out["cls"].dtype), min=1.0)
    ctr = F.binary_cross_entropy_with_logits(out["ctr"][pos], tgt["centerness"][pos], reduction="sum") / n
    giou = generalized_box_iou_loss(out["boxes"][pos], tgt["boxes"][pos], reduction="sum") / n
    return {"loss_cls": scale * cls, "loss_centerness": scale * ctr, "loss_box": scale * giou}
