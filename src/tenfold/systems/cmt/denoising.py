"""Query denoising (DN) of `cmt` (Cross Modal Transformer, arXiv 2301.01283), spec component 11.

Official `CmtHead.prepare_for_dn` (defaults: scalar 10, noise_scale 1.0, noise_trans 0.0, split 0.75):
1. G = min(scalar, floor(num_queries / max #GT in the batch)) groups; single_pad = max #GT; pad = G * single_pad.
2. Each GT, repeated G times, gets a noised centre c~ = c + u * (dims / 2 + noise_trans) * noise_scale,
   u ~ U(-1, 1)^3, normalised to [0, 1] by the point-cloud range and clamped; its target label is the class if
   ||u||_2 <= split, else background (a "negative" DN query). Sizes, yaw and velocity are not noised.
3. DN queries are prepended; sample b's GT i of group g sits at slot g * single_pad + i; slots of samples with
   fewer GT keep the anchor (0, 0, 0) and are unsupervised.
4. Attention mask (True = blocked): matching queries cannot see DN queries; a DN group cannot see other groups;
   DN queries may see the matching queries.
DN losses (not built yet): focal over all DN queries / (N_dn * DN_CLS_FACTOR), L1 over all DN queries / N_dn.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

# Fraction of [-1, 1]^3 inside the radius-0.75 ball (official: 3.14159 / 6 * split^3).
DN_CLS_FACTOR = math.pi / 6 * 0.75 ** 3


def dn_groups(max_gt: int, num_queries: int, scalar: int = 10) -> int:
    """G = min(scalar, num_queries // max_gt); 0 when the batch has no GT."""
    # Design choice: the official code divides by max #GT (fails on a batch without GT); here DN is then off.
    return 0 if max_gt == 0 else min(scalar, num_queries // max_gt)


def dn_attention_mask(single_pad: int, groups: int, num_queries: int) -> torch.Tensor:
    """(T, T) boolean mask, T = groups * single_pad + num_queries, True where attention is blocked."""
    pad = single_pad * groups
    mask = torch.zeros(pad + num_queries, pad + num_queries, dtype=torch.bool)
    mask[pad:, :pad] = True                                     # matching queries cannot see DN queries
    for g in range(groups):
        rows = slice(g * single_pad, (g + 1) * single_pad)
        mask[rows, :g * single_pad] = True                      # earlier groups
        mask[rows, (g + 1) * single_pad:pad] = True             # later groups
    return mask


def make_dn_queries(gt_boxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor], num_classes: int,
                    pc_range: Sequence[float], num_queries: int, scalar: int = 10, noise_scale: float = 1.0,
                    noise_trans: float = 0.0, split: float = 0.75, generator: torch.Generator | None = None,
                    ) -> dict:
    """Noised DN anchors and their targets for a batch.

    Args:
        gt_boxes: per sample (G_b, 9) (x, y, z_gravity, dx, dy, dz, yaw, vx, vy); gt_labels: per sample (G_b,).
    Returns:
        {"reference" (B, pad, 3) normalised anchors, "labels" (B, pad) (num_classes = background),
         "boxes" (B, pad, 9) regression targets (the un-noised GT), "valid" (B, pad) supervised slots,
         "noise" (B, pad, 3) the u draws, "attn_mask" (pad + Q, pad + Q), "pad_size", "groups", "single_pad"}.
    """
    bsz = len(gt_boxes)
    single_pad = max((len(b) for b in gt_boxes), default=0)
    groups = dn_groups(single_pad, num_queries, scalar)
    pad = single_pad * groups
    dtype = gt_boxes[0].dtype if bsz else torch.float32
    ref = torch.zeros(bsz, pad, 3, dtype=dtype)
    labels = torch.full((bsz, pad), num_classes, dtype=torch.long)
    boxes = torch.zeros(bsz, pad, 9, dtype=dtype)
    valid = torch.zeros(bsz, pad, dtype=torch.bool)
    noise = torch.zeros(bsz, pad, 3, dtype=dtype)
    lo = torch.as_tensor(pc_range[:3], dtype=dtype)
    span = torch.as_tensor(pc_range[3:], dtype=dtype) - lo
    for b in range(bsz):
        n = len(gt_boxes[b])
        if n == 0 or groups == 0:
            continue
        slots = (torch.arange(groups)[:, None] * single_pad + torch.arange(n)[None, :]).flatten()   # (G * n,)
        rep = gt_boxes[b].repeat(groups, 1)
        u = torch.rand(len(slots), 3, generator=generator, dtype=dtype) * 2 - 1
        centre = rep[:, :3] + u * (rep[:, 3:6] / 2 + noise_trans) * noise_scale if noise_scale > 0 else rep[:, :3]
        ref[b, slots] = ((centre - lo) / span).clamp(0.0, 1.0)
        lab = gt_labels[b].repeat(groups).clone()
        lab[u.norm(dim=1) > split] = num_classes
        labels[b, slots], boxes[b, slots], valid[b, slots], noise[b, slots] = lab, rep, True, u
    return {"reference": ref, "labels": labels, "boxes": boxes, "valid": valid, "noise": noise,
            "attn_mask": dn_attention_mask(single_pad, groups, num_queries), "pad_size": pad, "groups": groups,
            "single_pad": single_pad}
