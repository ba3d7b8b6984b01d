"""The two references of RefT (Han et al., "Reference Twice", arXiv 2301.01156): the support set is referenced
once at the feature level (mask pooling -> dynamic class centres -> cross-attention from the query image's
pixels) and once at the query level (Top-K support object queries linked to the query image's object queries
by cross-attention).

Every form here is a reconstruction: the method section and the code are not available (spec "Status").
  area_resize, mask_pool, class_centres ............ spec component 2 (MaskPooling -> dynamic class centres)
  FeatureLevelReference ............................. spec component 3 ("mask-based dynamic weighting")
  select_topk_support_queries ....................... spec component 4 (TopKSupportQueries)
  QueryLevelReference ............................... spec component 5 ("link object queries")
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def area_resize(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize masks [M, H, W] to `size` by area averaging: each output cell = the fraction of its input pixels
    that are foreground (spec pitfall 6: nearest resizing makes small objects vanish).

    Design choice: `adaptive_avg_pool2d` is the exact area average when H, W are multiples of `size`
    (always true for the power-of-two strides here); otherwise it averages overlapping windows.
    """
    return F.adaptive_avg_pool2d(masks.float()[:, None], size)[:, 0]


def mask_pool(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Masked average of features [M, D, h, w] under soft masks [M, h, w] -> [M, D].

    Spec component 2: Σ_x F(x) M̃(x) / Σ_x M̃(x); an empty mask gives a zero vector (no division by zero).
    """
    num = torch.einsum("mdhw,mhw->md", features, masks)
    return num / masks.sum((1, 2)).clamp_min(1e-6)[:, None]


def class_centres(features: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor,
                  num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic class centres P = [p_1 ... p_C] of one level (spec component 2).

    Args:
        features: [M, D, h, w] the level's features of each support instance's image.
        masks: [M, H, W] support masks (any resolution that is a multiple of h, w), resized by area averaging.
        labels: [M] contiguous class indices y_k.
    Returns:
        centres [C, D] (the mean over a class's shots of the per-shot pooled vectors; zero for an absent class)
        and present [C] bool.
    """
    pooled = mask_pool(features, area_resize(masks, features.shape[-2:]))  # [M, D]
    sums = torch.zeros(num_classes, features.shape[1], dtype=pooled.dtype, device=pooled.device)
    sums.index_add_(0, labels, pooled)
    counts = torch.bincount(labels, minlength=num_classes).to(pooled.dtype)
    return sums / counts.clamp_min(1)[:, None], counts > 0


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocked: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) with blocked entries at -inf) v on [..., n, d] tensors (explicit, readable form).

    `blocked` is boolean, True = may not attend, broadcast to [..., nq, nk]; the caller unmasks full rows.
    """
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if blocked is not None:
        logits = logits.masked_fill(blocked, float("-inf"))
    return logits.softmax(-1) @ v


class MultiHeadAttention(nn.Module):
    """Multi-head attention with a boolean mask of shape [B, nq, nk] or [B, heads, nq, nk] (True = blocked)."""

    def __init__(self, dim: int, num_heads: int, zero_init_out: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        if zero_init_out:  # the block adds exactly zero until trained (a clean ablation switch, spec 3 and 5)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                blocked: torch.Tensor | None = None) -> torch.Tensor:
        b, nq, d = query.shape
        h = self.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:  # [B, n, D] -> [B, h, n, D / h]
            return x.view(b, x.shape[1], h, d // h).transpose(1, 2)

        if blocked is not None and blocked.dim() == 3:
            blocked = blocked[:, None]  # same mask for every head
        y = attention(split(self.q(query)), split(self.k(key)), split(self.v(value)), blocked)
        return self.out(y.transpose(1, 2).reshape(b, nq, d))


class FeatureLevelReference(nn.Module):
    """Reference 1, "mask-based dynamic weighting" (spec component 3) [design choice].

    cross_attention: F(x) <- F(x) + W_o Σ_c α_c(x) W_v p_c, α(x) = softmax_c(<W_q F(x), W_k p_c> / sqrt(D))
        (per-pixel dynamic class weights over the centres of every class at once; absent classes blocked).
    channel: F(x) <- F(x) ⊙ 2σ(W_o p̄), p̄ = mean of the present centres (Meta R-CNN style channel re-weighting).
    W_o is zero-initialised in both forms, so a fresh block returns F unchanged.
    """

    def __init__(self, dim: int, num_heads: int, mode: str = "cross_attention") -> None:
        super().__init__()
        self.mode = mode
        if mode == "cross_attention":
            self.attn = MultiHeadAttention(dim, num_heads, zero_init_out=True)
        else:
            self.gate = nn.Linear(dim, dim)
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)

    def forward(self, feat: torch.Tensor, centres: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """feat [B, D, h, w]; centres [C, D]; present [C] bool -> [B, D, h, w]."""
        b, d, h, w = feat.shape
        if not bool(present.any()):
            return feat
        if self.mode == "channel":
            mean = centres[present].mean(0)  # [D]
            return feat * (2 * torch.sigmoid(self.gate(mean)))[None, :, None, None]
        pixels = feat.flatten(2).transpose(1, 2)  # [B, h*w, D]
        keys = centres[None].expand(b, -1, -1)  # [B, C, D]
        blocked = ~present[None, None, :].expand(b, h * w, -1)  # [B, h*w, C]
        out = self.attn(pixels, keys, keys, blocked)  # [B, h*w, D]
        return feat + out.transpose(1, 2).reshape(b, d, h, w)


def dice_score(pred_masks: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice of every prediction against one target: pred [N, h, w] probabilities, target [h, w] -> [N]."""
    p = pred_masks.flatten(1)
    t = target.flatten()[None]
    return (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)


def select_topk_support_queries(queries: torch.Tensor, mask_logits: torch.Tensor, class_logits: torch.Tensor,
                                image_index: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor, k: int,
                                criterion: str = "mask_iou") -> tuple[torch.Tensor, torch.Tensor]:
    """Top-K support object queries (spec component 4) [design choice].

    Args:
        queries: [U, N, D] final decoder queries of the U support images.
        mask_logits: [U, N, h, w] their predicted masks; class_logits: [U, N, C + 1].
        image_index: [M] the image of each support instance; masks [M, H, W]; labels [M] class indices.
        k: K_q queries kept per support instance.
        criterion: "mask_iou" = soft Dice of the predicted mask with M_k (resized by area averaging);
            "class_prob" = softmax probability of y_k.
    Returns:
        S_q [M * k, D] and their labels [M * k].
    """
    picked, picked_labels = [], []
    for m in range(len(labels)):
        u = int(image_index[m])
        if criterion == "mask_iou":
            target = area_resize(masks[m:m + 1], mask_logits.shape[-2:])[0]
            score = dice_score(mask_logits[u].sigmoid(), target)  # [N]
        else:
            score = class_logits[u].softmax(-1)[:, labels[m]]
        top = score.topk(k).indices
        picked.append(queries[u, top])
        picked_labels.append(labels[m].expand(k))
    return torch.cat(picked), torch.cat(picked_labels)


class QueryLevelReference(nn.Module):
    """Reference 2, "link object queries" (spec component 5) [design choice].

    Q <- Q + W_o MHA(LN(Q), S, S); Q <- Q + W_2 FFN(LN(Q)), S = S_q (+ a class embedding of y_k).
    Deviation: the spec's post-norm form LN(Q + MHA(Q, S, S)) changes Q even with a zero output projection;
    the pre-norm residual form with zero-initialised W_o and W_2 makes a fresh block an exact identity.
    """

    def __init__(self, dim: int, num_heads: int, dim_feedforward: int, num_classes: int,
                 use_class_embedding: bool = True) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, zero_init_out=True)
        self.ffn = nn.Sequential(nn.Linear(dim, dim_feedforward), nn.ReLU(), nn.Linear(dim_feedforward, dim))
        nn.init.zeros_(self.ffn[2].weight)
        nn.init.zeros_(self.ffn[2].bias)
        self.class_embed = nn.Embedding(num_classes, dim) if use_class_embedding else None

    def support_keys(self, support_queries: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """S [M, D] = S_q (+ class embedding of y_k)."""
        if self.class_embed is None:
            return support_queries
        return support_queries + self.class_embed(labels)

    def forward(self, queries: torch.Tensor, support_queries: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """queries [B, N, D]; support_queries [M, D]; labels [M] -> [B, N, D]."""
        if support_queries.shape[0] == 0:
            return queries
        s = self.support_keys(support_queries, labels)[None].expand(queries.shape[0], -1, -1)  # [B, M, D]
        x = self.norm1(queries)
        queries = queries + self.attn(x, s, s)
        return queries + self.ffn(self.norm2(queries))
