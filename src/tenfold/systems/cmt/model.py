"""The model of `cmt` (Cross Modal Transformer: Towards Fast and Robust 3D Object Detection, arXiv 2301.01283).

Component -> class (spec section 2):
  2-3  SparseEncoder + SECOND + SECONDFPN + shared conv ..... PointBEVEncoder (dense voxel columns, labelled)
  4    VoVNet-99 + CPFPN ..................................... ImageBackbone (small CNN + 1x1 neck, labelled)
  5    image-token coordinates encoding ...................... position_encoding.CoordinatesEncoding
       plain 2D PE of (u, v, camera id) (ablation) ........... PlainImagePE
  6    BEV PE ................................................ position_encoding.BEVPositionEncoding
  7    position-guided queries from 3D anchors ............... CrossModalTransformer.query_pos
  8    transformer decoder (post-norm, DN mask) .............. DecoderLayer, CrossModalTransformer.decode
  9    SeparateTaskHead, per-layer unshared weights .......... SeparateTaskHead
  10   box coder ............................................. box_coder.decode_head_outputs
  11-12 DN + Hungarian losses ................................ CmtLoss
  14   post-processing ....................................... CrossModalTransformer.predict
  16   head variants ......................................... ModelConfig.modality in {fusion, lidar, camera}
Tokens: memory = concat(BEV tokens, image tokens) (fusion), keys = memory + PE, values = memory; queries =
content (zero) + q_pos. A missing modality is the masked-modal path: its input is zeroed (ModalMask3D semantics),
never dropped.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tenfold.systems.cmt.box_coder import decode_head_outputs, decode_predictions
from tenfold.systems.cmt.config import ModelConfig
from tenfold.systems.cmt.denoising import DN_CLS_FACTOR, make_dn_queries
from tenfold.systems.cmt.lidar import voxelize
from tenfold.systems.cmt.loss import CODE_WEIGHTS, HungarianMatcher, SetCriterion, sigmoid_focal_loss
from tenfold.systems.cmt.position_encoding import BEVPositionEncoding, CoordinatesEncoding, bev_cell_centres, pos2embed

POINT_FEATURES = 5  # x, y, z, intensity, time-lag
IMAGE_MEAN, IMAGE_STD = 0.5, 0.25  # Design choice: fixed RGB normalisation in [0, 1] units (official caffe BGR stats)


def grid_shape(cfg: ModelConfig) -> tuple[int, int, int]:
    """(Z, Y, X) voxel counts of the point-cloud range."""
    r, v = cfg.pc_range, cfg.voxel_size
    return tuple(int(round((r[i + 3] - r[i]) / v[i])) for i in (2, 1, 0))  # type: ignore[return-value]


def points_to_grid(points: np.ndarray | torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """Hard voxelisation + mean VFE (component 1), scattered into a dense (5 Z, Y, X) grid.

    Deviation: a dense grid instead of spconv's sparse tensor; the z slices become BEV channels (channel
    f * Z + z holds feature f of slice z), so empty voxels are zeros.
    """
    pts = torch.as_tensor(np.asarray(points, dtype=np.float32) if not torch.is_tensor(points) else points).float()
    nz, ny, nx = grid_shape(cfg)
    grid = torch.zeros(POINT_FEATURES, nz, ny, nx)
    if len(pts):
        feats, coords, _ = voxelize(pts[:, :POINT_FEATURES], cfg.voxel_size, cfg.pc_range,
                                    cfg.max_points_per_voxel, cfg.max_voxels)
        grid[:, coords[:, 0], coords[:, 1], coords[:, 2]] = feats.T
    return grid.reshape(POINT_FEATURES * nz, ny, nx)


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PointBEVEncoder(nn.Module):
    """Dense voxel grid (B, 5 Z, Y, X) -> BEV tokens (B, C, Y / s, X / s).

    Deviation: in place of SparseEncoder (spconv, 3 stride-2 stages) + SECOND + SECONDFPN, log2(s) stride-2
    conv stages (widths `point_channels`, the last repeated) each followed by a stride-1 conv, then the head's
    "shared_conv" 3x3 conv + BN + ReLU to C.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], stride: int, hidden_dim: int):
        super().__init__()
        layers, cin = [], in_channels
        for i in range(max(1, int(math.log2(stride)))):
            cout = channels[min(i, len(channels) - 1)]
            layers += [conv_bn_relu(cin, cout, 2 if stride > 1 else 1), conv_bn_relu(cout, cout)]
            cin = cout
        self.stages = nn.Sequential(*layers)
        self.shared_conv = conv_bn_relu(cin, hidden_dim)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.shared_conv(self.stages(grid))


class ImageBackbone(nn.Module):
    """(B N, 3, H, W) normalised images -> (B N, C, H / 2^S, W / 2^S).

    Deviation: S stride-2 conv stages (widths `image_channels`, random init) + a 1x1 conv neck to C replace
    VoVNet-99 (FCOS3D init) + CPFPN; the official head uses only the stride-16 level (spec 2.4).
    """

    def __init__(self, channels: tuple[int, ...], hidden_dim: int):
        super().__init__()
        layers, cin = [], 3
        for cout in channels:
            layers += [conv_bn_relu(cin, cout, 2), conv_bn_relu(cout, cout)]
            cin = cout
        self.stages = nn.Sequential(*layers)
        self.neck = nn.Conv2d(cin, hidden_dim, 1)
        self.stride = 2 ** len(channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.neck(self.stages(images))


class PlainImagePE(nn.Module):
    """Ablation (spec 6): a plain sine PE of (u / W_p, v / H_p, camera id / N) -> MLP, no 3D information.

    Tokens use their cell corners; a query uses each view it projects into (same validity rule and
    sum over views as the ray PE), so the two variants differ only in what the encoding knows."""

    def __init__(self, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.mlp = nn.Sequential(nn.Linear(3 * (hidden_dim // 2), hidden_dim), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_dim, hidden_dim))

    def embed(self, uvc: torch.Tensor) -> torch.Tensor:
        """(..., 3) normalised (u, v, cam) -> (..., C)."""
        f = self.hidden_dim // 2
        xy = pos2embed(uvc[..., :2], f, use_official_pos2embed=False)                  # (..., 2 f)
        c = pos2embed(torch.stack([uvc[..., 2], uvc[..., 2]], -1), f, use_official_pos2embed=False)[..., :f]
        return self.mlp(torch.cat([xy, c], dim=-1))

    def forward(self, num_views: int, feat_hw: tuple[int, int], batch: int) -> torch.Tensor:
        h, w = feat_hw
        vs, us = torch.meshgrid(torch.arange(h) / h, torch.arange(w) / w, indexing="ij")
        cam = torch.arange(num_views, dtype=torch.float32)[:, None, None].expand(num_views, h, w) / num_views
        uvc = torch.stack([us.expand(num_views, h, w), vs.expand(num_views, h, w), cam], dim=-1)
        return self.embed(uvc).unsqueeze(0).expand(batch, -1, -1, -1, -1)            # (B, N, h, w, C)

    def query_embedding(self, anchors: torch.Tensor, lidar2img: torch.Tensor, pad_hw: tuple[int, int],
                        pc_range: tuple[float, ...]) -> torch.Tensor:
        lo, hi = anchors.new_tensor(pc_range[:3]), anchors.new_tensor(pc_range[3:])
        hom = torch.cat([anchors * (hi - lo) + lo, torch.ones_like(anchors[..., :1])], dim=-1)
        proj = torch.einsum("bnd,bvcd->bvnc", hom, lidar2img.to(anchors.dtype))
        depth = proj[..., 2:3].detach()
        uv = proj[..., :2] / depth.clamp(min=1e-6)
        h_p, w_p = pad_hw
        valid = (uv[..., 0] >= 0) & (uv[..., 0] < w_p) & (uv[..., 1] >= 0) & (uv[..., 1] < h_p) & (depth[..., 0] > 0)
        v = lidar2img.shape[1]
        cam = (torch.arange(v, dtype=anchors.dtype) / v)[None, :, None, None].expand_as(uv[..., :1])
        uvc = torch.cat([uv[..., :1] / w_p, uv[..., 1:2] / h_p, cam], dim=-1)
        return (self.embed(uvc) * valid[..., None]).sum(dim=1)


class DecoderLayer(nn.Module):
    """DETR post-norm layer (spec 2.8): self-attn (DN mask) -> LN -> cross-attn -> LN -> FFN -> LN."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(ffn, d))
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(3))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, q_pos: torch.Tensor, memory: torch.Tensor, mem_pos: torch.Tensor,
                attn_mask: torch.Tensor | None) -> torch.Tensor:
        q = x + q_pos
        x = self.norms[0](x + self.drop(self.self_attn(q, q, x, attn_mask=attn_mask, need_weights=False)[0]))
        x = self.norms[1](x + self.drop(self.cross_attn(x + q_pos, memory + mem_pos, memory,
                                                        need_weights=False)[0]))
        return self.norms[2](x + self.drop(self.ffn(x)))


class SeparateTaskHead(nn.Module):
    """Per-layer (unshared) heads: center 2, height 1, dim 3, rot 2, vel 2, cls C (spec 2.9).

    Official: the L layer outputs stacked on channels and grouped 1-D convs (groups = L); here one head per
    layer, which is the same computation. Conv1d(C -> C/4, k) -> LayerNorm -> ReLU -> Conv1d(C/4 -> out).
    """

    SLOTS = (("center", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))

    def __init__(self, d: int, num_classes: int, kernel: int):
        super().__init__()
        mid = max(d // 4, 8)  # official head_conv 64 for C = 256
        outs = dict(self.SLOTS, cls_logits=num_classes)
        self.branches = nn.ModuleDict({k: nn.ModuleList([nn.Conv1d(d, mid, kernel, padding=kernel // 2, bias=False),
                                                         nn.LayerNorm(mid), nn.Conv1d(mid, n, 1)])
                                       for k, n in outs.items()})
        nn.init.constant_(self.branches["cls_logits"][2].bias, -2.19)  # prior 0.1 [code]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T, C) -> {slot: (B, T, out)}."""
        out = {}
        for k, (c1, ln, c2) in self.branches.items():
            h = F.relu(ln(c1(x.transpose(1, 2)).transpose(1, 2)))
            out[k] = c2(h.transpose(1, 2)).transpose(1, 2)
        return out


class CrossModalTransformer(nn.Module):
    """CMT with `modality` in {"fusion", "lidar", "camera"}.

    forward(batch) with batch = {"grid": (B, 5 Z, Y, X) or None, "images": (B, N, 3, H, W) uint8 or None,
    "lidar2img": (B, N, 4, 4)}; `dn` (from `make_dn_queries`) prepends the denoising queries.
    Returns {"cls_logits": (L, B, T, K), "code": (L, B, T, 10), "reference": (B, T, 3)}, T = pad + Q.
    """

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        self.cfg, self.num_classes = cfg, num_classes
        d = cfg.hidden_dim
        self.use_points = cfg.modality in ("fusion", "lidar")
        self.use_images = cfg.modality in ("fusion", "camera")
        if self.use_points:
            self.point_encoder = PointBEVEncoder(POINT_FEATURES * grid_shape(cfg)[0], cfg.point_channels,
                                                 cfg.bev_stride, d)
        if self.use_images:
            self.image_backbone = ImageBackbone(cfg.image_channels, d)
            self.image_pe = (CoordinatesEncoding(d, cfg.depth_num, cfg.pc_range, cfg.depth_start)
                             if cfg.camera_pe == "ray" else PlainImagePE(d))
        self.bev_pe = BEVPositionEncoding(d, cfg.use_official_pos2embed)
        self.anchors = nn.Embedding(cfg.num_queries, 3)
        self.layers = nn.ModuleList(DecoderLayer(d, cfg.num_heads, cfg.ffn_dim, cfg.dropout)
                                    for _ in range(cfg.num_layers))
        self.post_norm = nn.LayerNorm(d)
        self.heads = nn.ModuleList(SeparateTaskHead(d, num_classes, cfg.head_kernel) for _ in range(cfg.num_layers))
        for name, p in self.named_parameters():  # Xavier for the transformer's >= 2-D weights [code]
            if p.dim() > 1 and name.startswith("layers."):
                nn.init.xavier_uniform_(p)
        nn.init.uniform_(self.anchors.weight, 0.0, 1.0)

    # ----------------------------------------------------------------------------------------- tokens
    def bev_tokens(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.point_encoder(grid)                                              # (B, C, h, w)
        b, c, h, w = feat.shape
        pos = self.bev_pe(bev_cell_centres((h, w)).to(feat))                         # (h w, C)
        return feat.flatten(2).transpose(1, 2), pos.unsqueeze(0).expand(b, -1, -1)

    def image_tokens(self, images: torch.Tensor, lidar2img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _, hp, wp = images.shape
        x = (images.float() / 255.0 - IMAGE_MEAN) / IMAGE_STD                       # zeroed image -> constant
        feat = self.image_backbone(x.flatten(0, 1))                                   # (B N, C, h, w)
        h, w = feat.shape[-2:]
        feat = feat.reshape(b, n, -1, h, w).permute(0, 1, 3, 4, 2).reshape(b, n * h * w, -1)
        if isinstance(self.image_pe, CoordinatesEncoding):
            pos = self.image_pe(lidar2img.float(), (h, w), (hp, wp))                  # (B, N, h, w, C)
        else:
            pos = self.image_pe(n, (h, w), b)
        return feat, pos.reshape(b, n * h * w, -1)

    def query_pos(self, anchors: torch.Tensor, lidar2img: torch.Tensor | None, pad_hw: tuple[int, int]
                  ) -> torch.Tensor:
        """Position-guided query PE (spec 2.7): BEV PE of (a_x, a_y) + (camera / fusion) image PE summed over views."""
        pos = self.bev_pe(anchors[..., :2])
        if self.use_images:
            if isinstance(self.image_pe, CoordinatesEncoding):
                pos = pos + self.image_pe.query_embedding(anchors, lidar2img.float(), pad_hw)
            else:
                pos = pos + self.image_pe.query_embedding(anchors, lidar2img.float(), pad_hw, self.cfg.pc_range)
        return pos

    # ----------------------------------------------------------------------------------------- forward
    def forward(self, batch: dict[str, Any], dn: dict | None = None) -> dict[str, torch.Tensor]:
        grid, images, l2i = batch.get("grid"), batch.get("images"), batch.get("lidar2img")
        if not self.use_points and grid is not None:
            raise ValueError("camera-only CMT was given LiDAR input (batch['grid']); it must never see points")
        if not self.use_images and images is not None:
            raise ValueError("LiDAR-only CMT was given images (batch['images'])")
        mem, pos = [], []
        if self.use_points:
            t, p = self.bev_tokens(grid)
            mem.append(t), pos.append(p)
        if self.use_images:
            t, p = self.image_tokens(images, l2i)
            mem.append(t), pos.append(p)
        memory, mem_pos = torch.cat(mem, dim=1), torch.cat(pos, dim=1)               # (B, M, C)
        bsz = memory.shape[0]
        ref = self.anchors.weight.unsqueeze(0).expand(bsz, -1, -1)                    # (B, Q, 3)
        mask = None
        if dn is not None and dn["pad_size"] > 0:
            ref = torch.cat([dn["reference"].to(ref), ref], dim=1)
            mask = dn["attn_mask"]
        pad_hw = tuple(images.shape[-2:]) if self.use_images else (1, 1)
        q_pos = self.query_pos(ref, l2i, pad_hw)
        x = torch.zeros_like(q_pos)                                                   # query content is zero
        cls_all, code_all = [], []
        for layer, head in zip(self.layers, self.heads):
            x = layer(x, q_pos, memory, mem_pos, mask)
            out = head(self.post_norm(x))
            # Every layer predicts offsets from the same initial anchors (no refinement) [code].
            code_all.append(decode_head_outputs(out["center"], out["height"], out["dim"], out["rot"], out["vel"],
                                                ref, self.cfg.pc_range, self.cfg.slot_order))
            cls_all.append(out["cls_logits"])
        return {"cls_logits": torch.stack(cls_all), "code": torch.stack(code_all), "reference": ref}

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
        """Post-processing (spec 2.14) of the last layer, per sample: top-`max_num`, no NMS, bottom-centre z."""
        out = self.forward(batch)
        return [decode_predictions(out["cls_logits"][-1, b], out["code"][-1, b], self.cfg.max_num,
                                   self.cfg.post_center_range) for b in range(out["code"].shape[1])]


class CmtLoss:
    """Matching + DN losses summed over decoder layers (spec 2.11-2.12):
    loss = 2 loss_cls + 0.25 loss_bbox + 2 loss_dn_cls + 0.25 loss_dn_bbox, with
    loss_dn_cls = focal over all DN slots / (N_dn (pi/6) 0.75^3), loss_dn_bbox = L1 over all DN slots
    (negatives included) / N_dn."""

    def __init__(self, num_classes: int, weight_cls: float = 2.0, weight_bbox: float = 0.25):
        self.num_classes = num_classes
        self.criterion = SetCriterion(num_classes, HungarianMatcher(weight_cls, weight_bbox), weight_cls, weight_bbox)
        self.weight_cls, self.weight_bbox = weight_cls, weight_bbox

    def __call__(self, out: dict[str, torch.Tensor], gt_boxes: list[torch.Tensor], gt_labels: list[torch.Tensor],
                 dn: dict | None) -> dict[str, torch.Tensor]:
        from tenfold.systems.cmt.box_coder import normalize_bbox

        pad = dn["pad_size"] if dn is not None else 0
        match = self.criterion(out["cls_logits"][:, :, pad:], out["code"][:, :, pad:], gt_boxes, gt_labels)
        losses = {"loss_cls": match["loss_cls"], "loss_bbox": match["loss_bbox"]}
        zero = match["loss"].new_zeros(())
        losses["loss_dn_cls"], losses["loss_dn_bbox"] = zero, zero
        if pad > 0:
            valid = dn["valid"]                                                      # (B, pad)
            n_dn = max(int(valid.sum()), 1)
            onehot = F.one_hot(dn["labels"], self.num_classes + 1)[..., :self.num_classes].float()
            target = normalize_bbox(dn["boxes"]).to(out["code"])
            target = torch.where(valid[..., None], target, torch.zeros_like(target))  # padded slots: log(0)
            w = out["code"].new_tensor(CODE_WEIGHTS)
            cls = out["cls_logits"][:, :, :pad]
            code = out["code"][:, :, :pad]
            fl = sigmoid_focal_loss(cls, onehot.expand_as(cls)).masked_fill(~valid[None, ..., None], 0.0)
            l1 = ((code - target).abs() * w).masked_fill(~valid[None, ..., None], 0.0)
            losses["loss_dn_cls"] = fl.sum() / (n_dn * DN_CLS_FACTOR)
            losses["loss_dn_bbox"] = l1.sum() / n_dn
        losses["loss"] = (self.weight_cls * (losses["loss_cls"] + losses["loss_dn_cls"])
                          + self.weight_bbox * (losses["loss_bbox"] + losses["loss_dn_bbox"]))
        return losses


def build(cfg: ModelConfig, num_classes: int, weight_cls: float = 2.0, weight_bbox: float = 0.25
          ) -> tuple[CrossModalTransformer, CmtLoss]:
    """(model, criterion), DETR style."""
    return CrossModalTransformer(cfg, num_classes), CmtLoss(num_classes, weight_cls, weight_bbox)


def prepare_dn(cfg: ModelConfig, gt_boxes: list[torch.Tensor], gt_labels: list[torch.Tensor], num_classes: int,
               scalar: int, noise_scale: float, split: float, generator: torch.Generator | None) -> dict | None:
    """DN queries for a training batch (None when DN is off or the batch has no GT)."""
    if scalar == 0:
        return None
    dn = make_dn_queries(gt_boxes, gt_labels, num_classes, cfg.pc_range, cfg.num_queries, scalar, noise_scale,
                         0.0, split, generator)
    return dn if dn["pad_size"] > 0 else None
