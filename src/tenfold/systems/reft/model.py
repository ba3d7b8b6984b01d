"""RefT's model (Han et al., "Reference Twice: A Simple and Unified Baseline for Few-Shot Instance
Segmentation", arXiv 2301.01156): a compact Mask2Former (spec component 1, the CPU variant TinyMask2Former)
with the two references of `reference.py` plugged in.

  TinyResNet ................ backbone, stage widths at strides 4, 8, 16, 32 (Deviation: not ResNet-50)
  FPNPixelDecoder ........... multi-scale maps at 1/32, 1/16, 1/8 + mask features at 1/4 (Deviation: FPN, not
                              MSDeformAttn)
  DecoderLayer .............. masked cross-attention -> self-attention -> FFN, post-norm [literature]
  RefT.predict .............. class head (C + 1) and mask head (3-layer MLP · mask features); the attention
                              mask of the next layer = predicted mask < 0.5 at that layer's scale
  RefT.build_references ..... supports -> dynamic class centres (per level) + Top-K support queries
  RefT.forward .............. feature-level reference on every level -> decoder -> query link -> heads
  CosineClassifier .......... iFSIS novel-class classifier (spec component 6)
  instance_inference ........ top-k over queries x classes, mask at logit 0, score x mean mask probability
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tenfold.systems.reft.config import ModelConfig
from tenfold.systems.reft.reference import (FeatureLevelReference, MultiHeadAttention, QueryLevelReference,
                                            class_centres, select_topk_support_queries)


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class BasicBlock(nn.Module):
    """Two 3x3 conv + GroupNorm with a (projected) shortcut. Design choice: GN, since batches are small."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n1, self.n2 = _gn(cout), _gn(cout)
        self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _gn(cout))
                      if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.n1(self.conv1(x)))
        return F.relu(self.n2(self.conv2(y)) + self.short(x))


class TinyResNet(nn.Module):
    """Stem (two stride-2 convs) then one BasicBlock per stage -> [c2 (1/4), c3 (1/8), c4 (1/16), c5 (1/32)]."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        w = widths
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 3, 2, 1, bias=False), _gn(w[0]), nn.ReLU(),
                                  nn.Conv2d(w[0], w[0], 3, 2, 1, bias=False), _gn(w[0]), nn.ReLU())
        self.stages = nn.ModuleList([BasicBlock(w[0], w[0], 1), BasicBlock(w[0], w[1], 2),
                                     BasicBlock(w[1], w[2], 2), BasicBlock(w[2], w[3], 2)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, x = [], self.stem(x)
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class FPNPixelDecoder(nn.Module):
    """Top-down FPN: lateral 1x1 + upsampled coarser map, 3x3 conv + GN + ReLU on each sum.

    Returns the decoder's memory [p5 (1/32), p4 (1/16), p3 (1/8)] and mask features (1/4), all D channels.
    """

    def __init__(self, widths: tuple[int, ...], dim: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(w, dim, 1) for w in widths)
        self.output = nn.ModuleList(nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, bias=False), _gn(dim), nn.ReLU())
                                    for _ in widths)
        self.mask_features = nn.Conv2d(dim, dim, 1)

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        maps: list[torch.Tensor] = []
        y = None
        for i in range(len(feats) - 1, -1, -1):  # 1/32 first
            lat = self.lateral[i](feats[i])
            y = lat if y is None else lat + F.interpolate(y, size=lat.shape[-2:], mode="nearest")
            maps.append(self.output[i](y))
        return maps[:3], self.mask_features(maps[3])


def sine_position_encoding(b: int, h: int, w: int, dim: int, device: torch.device) -> torch.Tensor:
    """DETR's normalised 2D sine encoding [literature], temperature 10000 -> [B, h*w, dim]."""
    n = dim // 2
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device)[:, None].expand(h, w) / h * 2 * math.pi
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device)[None, :].expand(h, w) / w * 2 * math.pi
    t = 10000 ** (2 * (torch.arange(n, device=device) // 2) / n)
    px, py = x[..., None] / t, y[..., None] / t  # [h, w, n]
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), -1).flatten(2)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), -1).flatten(2)
    return torch.cat((py, px), -1).flatten(0, 1)[None].expand(b, -1, -1)


class DecoderLayer(nn.Module):
    """Mask2Former decoder layer [literature]: masked cross-attention, self-attention, FFN; post-norm, no dropout."""

    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.cross, self.self_attn = MultiHeadAttention(dim, heads), MultiHeadAttention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Linear(ffn, dim))
        self.n1, self.n2, self.n3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, q: torch.Tensor, qpos: torch.Tensor, mem: torch.Tensor, mpos: torch.Tensor,
                blocked: torch.Tensor) -> torch.Tensor:
        """q [B, N, D], mem [B, hw, D], blocked [B, N, hw] (True = outside the previous predicted mask)."""
        q = self.n1(q + self.cross(q + qpos, mem + mpos, mem, blocked))
        x = q + qpos
        q = self.n2(q + self.self_attn(x, x, q))
        return self.n3(q + self.ffn(q))


class CosineClassifier(nn.Module):
    """logits_c = scale * cos(q, w_c) (spec component 6; iMTFA's scale 20 [literature, unverified])."""

    def __init__(self, dim: int, num_classes: int, scale: float = 20.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, dim) * 0.02)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).t()


@dataclass
class SupportSet:
    """K-shot supports: U unique images, M instances. images [U, 3, H, W]; image_index [M]; masks [M, H, W]
    (float, one instance each); labels [M] contiguous class indices."""

    images: torch.Tensor
    image_index: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor


@dataclass
class References:
    """What the supports give the query pass: centres [C, D] per level (or None), present [C], Top-K support
    queries [M * K_q, D] with their labels (or None)."""

    centres: list[torch.Tensor] | None
    present: torch.Tensor
    queries: torch.Tensor | None
    query_labels: torch.Tensor | None


class RefT(nn.Module):
    """TinyMask2Former + the feature-level reference + the query link. With both switched off (config or
    `refs=None`) it is exactly the Mask2Former + ft-full baseline."""

    def __init__(self, cfg: ModelConfig, num_classes: int) -> None:
        super().__init__()
        d, self.cfg, self.num_classes = cfg.hidden_dim, cfg, num_classes
        self.backbone = TinyResNet(cfg.backbone_widths)
        self.pixel_decoder = FPNPixelDecoder(cfg.backbone_widths, d)
        self.level_embed = nn.Embedding(3, d)
        self.query_feat, self.query_pos = nn.Embedding(cfg.num_queries, d), nn.Embedding(cfg.num_queries, d)
        self.layers = nn.ModuleList(DecoderLayer(d, cfg.num_heads, cfg.dim_feedforward)
                                    for _ in range(cfg.dec_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.class_embed = nn.Linear(d, num_classes + 1)  # last index = no-object
        self.mask_embed = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.feature_ref = (nn.ModuleList(FeatureLevelReference(d, cfg.num_heads, cfg.feature_reference)
                                          for _ in range(3)) if cfg.use_feature_reference else None)
        self.query_link = (QueryLevelReference(d, cfg.num_heads, cfg.dim_feedforward, num_classes,
                                               cfg.use_support_class_embedding) if cfg.use_query_link else None)
        self.cosine: CosineClassifier | None = None  # iFSIS only (enable_cosine)
        self.register_buffer("novel_index", torch.zeros(0, dtype=torch.long), persistent=True)

    def enable_cosine(self, novel_index: torch.Tensor) -> None:
        """iFSIS: the novel classes' logits come from a fresh cosine classifier; base logits from the frozen
        linear head (spec component 6)."""
        self.novel_index = novel_index.clone().long()
        self.cosine = CosineClassifier(self.cfg.hidden_dim, len(novel_index), self.cfg.cosine_scale)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.class_embed(x)  # [B, N, C + 1]
        if self.cosine is not None:
            logits = logits.index_copy(-1, self.novel_index, self.cosine(x))
        return logits

    def encode(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """images [B, 3, H, W] in [0, 1] -> ([B, D, H/32, W/32], [B, D, H/16, W/16], [B, D, H/8, W/8]), mask
        features [B, D, H/4, W/4]."""
        return self.pixel_decoder(self.backbone(images * 2 - 1))

    def predict(self, q: torch.Tensor, mask_features: torch.Tensor,
                attn_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Heads on queries q [B, N, D] -> class logits [B, N, C+1], mask logits [B, N, H/4, W/4], and the next
        layer's blocked attention [B, N, h*w] (predicted mask < 0.5 at that scale; full rows unmasked)."""
        x = self.decoder_norm(q)
        masks = torch.einsum("bnd,bdhw->bnhw", self.mask_embed(x), mask_features)
        small = F.interpolate(masks, size=attn_size, mode="bilinear", align_corners=False)
        blocked = (small.sigmoid() < 0.5).flatten(2).detach()
        blocked = blocked & ~blocked.all(-1, keepdim=True)  # a fully masked row attends everywhere
        return self.classify(x), masks, blocked

    def decode(self, feats: list[torch.Tensor], mask_features: torch.Tensor,
               link: Callable[[torch.Tensor], torch.Tensor] | None = None,
               link_every_layer: bool = False) -> dict[str, torch.Tensor | list]:
        """The masked-attention decoder: 1 prediction from the learnable queries + 1 per layer, round-robin over
        the scales 1/32, 1/16, 1/8 [literature]. `link` (the query-level reference) runs after the last layer
        (or after every layer) before the heads."""
        b = feats[0].shape[0]
        mem = [f.flatten(2).transpose(1, 2) + self.level_embed.weight[i] for i, f in enumerate(feats)]  # [B,hw,D]
        pos = [sine_position_encoding(b, *f.shape[-2:], f.shape[1], f.device) for f in feats]
        q = self.query_feat.weight[None].expand(b, -1, -1)
        qpos = self.query_pos.weight[None].expand(b, -1, -1)
        logits, masks, blocked = self.predict(q, mask_features, feats[0].shape[-2:])
        preds = [(logits, masks)]
        for i, layer in enumerate(self.layers):
            lvl = i % 3
            q = layer(q, qpos, mem[lvl], pos[lvl], blocked)
            if link is not None and (link_every_layer or i == len(self.layers) - 1):
                q = link(q)
            logits, masks, blocked = self.predict(q, mask_features, feats[(i + 1) % 3].shape[-2:])
            preds.append((logits, masks))
        aux = [{"pred_logits": lg, "pred_masks": mk} for lg, mk in preds[:-1]]
        return {"pred_logits": logits, "pred_masks": masks, "aux_outputs": aux, "queries": q}

    @torch.no_grad()
    def build_references(self, support: SupportSet) -> References:
        """Encode the supports once (spec 3 "Inference"; no gradient: Design choice, also in training) ->
        dynamic class centres per level and the Top-K support object queries. The support pass is the
        baseline path (no reference): Design choice, the paper's support pass is not described."""
        c = self.cfg
        feats, mask_features = self.encode(support.images)
        centres, present = None, torch.bincount(support.labels, minlength=self.num_classes) > 0
        if self.feature_ref is not None:
            centres = [class_centres(f[support.image_index], support.masks, support.labels, self.num_classes)[0]
                       for f in feats]
        queries = labels = None
        if self.query_link is not None:
            out = self.decode(feats, mask_features)
            queries, labels = select_topk_support_queries(
                out["queries"], out["pred_masks"], out["pred_logits"], support.image_index, support.masks,
                support.labels, c.topk_queries, c.topk_criterion)
        return References(centres, present, queries, labels)

    def forward(self, images: torch.Tensor, refs: References | None = None) -> dict[str, torch.Tensor | list]:
        """images [B, 3, H, W] -> {"pred_logits" [B, N, C+1], "pred_masks" [B, N, H/4, W/4], "aux_outputs"}."""
        feats, mask_features = self.encode(images)
        link = None
        if refs is not None and self.feature_ref is not None and refs.centres is not None:
            feats = [blk(f, p, refs.present) for blk, f, p in zip(self.feature_ref, feats, refs.centres)]
        if refs is not None and self.query_link is not None and refs.queries is not None:
            def link(q: torch.Tensor) -> torch.Tensor:
                return self.query_link(q, refs.queries, refs.query_labels)
        return self.decode(feats, mask_features, link, self.cfg.query_link_position == "every_layer")


def instance_inference(logits: torch.Tensor, mask_logits: torch.Tensor, image_size: tuple[int, int],
                       category_ids: torch.Tensor, top_k: int = 100) -> dict[str, torch.Tensor]:
    """Mask2Former instance inference [literature] for one image.

    Args:
        logits: [N, C + 1]; mask_logits: [N, h, w]; image_size: (H, W) of the output masks.
        category_ids: [C] the COCO id of each contiguous class index.
        top_k: detections kept (100 = COCO maxDets).
    Returns:
        {"masks": Bool [M, H, W], "category_ids": Long [M] (COCO ids), "scores": Float [M]}, score = class
        probability (softmax without no-object) x mean mask probability inside the binary mask.
    """
    n, c1 = logits.shape
    probs = logits.softmax(-1)[:, :-1]  # [N, C]
    score, flat = probs.flatten().topk(min(top_k, probs.numel()))
    query, cls = flat // (c1 - 1), flat % (c1 - 1)
    m = F.interpolate(mask_logits[query][None], size=image_size, mode="bilinear", align_corners=False)[0]
    binary = m > 0
    mask_score = (m.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return {"masks": binary, "category_ids": category_ids[cls], "scores": score * mask_score}
