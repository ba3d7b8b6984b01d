"""Detectors of `maskfocal`: CenterNetLite and FCOSLite, small enough to train on a CPU.

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with
canonical object detection networks", arXiv 2212.11542 (spec ../shared/specs/maskfocal.md, section 2.6).

Both share one trunk [design choice, spec 2.6]: a stride-2 stem, four residual stages (widths 16/32/64/128 at
strides 2/4/8/16) and an FPN-style top-down path. CenterNetLite reads the stride-4 (or stride-2) map and predicts
a 1-channel heatmap, size (w, h) / R and sub-cell offset; FCOSLite reads strides 4 and 8 and predicts
classification, centre-ness and LTRB distances. Which classification loss trains the heads (native or MFL) is
a criterion switch (loss.py), never a model change.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PRIOR_PROB = 0.1  # CenterNet / FCOS initialise the classification bias to the prior -log((1 - pi) / pi)


def _norm(channels: int) -> nn.GroupNorm:
    # Design choice: GroupNorm instead of BatchNorm: no running buffers, so DDP ranks hold identical state and
    # batches of 4-8 images normalise stably (FCOS also uses GN in its heads).
    return nn.GroupNorm(min(8, channels // 4), channels)


class ConvNormAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), _norm(cout), nn.ReLU(inplace=True))


class ResidualStage(nn.Module):
    """conv (stride s) -> conv, plus a 1x1 projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(cin, cout, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), _norm(cout))
        self.short = (nn.Identity() if stride == 1 and cin == cout
                      else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.short(x))


class Trunk(nn.Module):
    """Stem + 4 stages + top-down FPN; returns {stride: (B, fpn_channels, H/stride, W/stride)}."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), fpn_channels: int = 64,
                 out_strides: tuple[int, ...] = (4,)) -> None:
        super().__init__()
        self.stem = ConvNormAct(3, widths[0], stride=2)  # stride 2
        strides = [2 * 2 ** i for i in range(len(widths))]  # 2, 4, 8, 16
        self.stages = nn.ModuleList(ResidualStage(cin, cout, 1 if i == 0 else 2)
                                    for i, (cin, cout) in enumerate(zip(widths[:1] + widths[:-1], widths)))
        self.strides = strides
        self.out_strides = tuple(out_strides)
        lowest = strides.index(min(out_strides))
        self.lateral = nn.ModuleDict({str(s): nn.Conv2d(w, fpn_channels, 1)
                                      for s, w in zip(strides[lowest:], widths[lowest:])})
        self.smooth = nn.ModuleDict({str(s): ConvNormAct(fpn_channels, fpn_channels) for s in self.out_strides})

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        # Design choice: the trunk always runs in NCHW (a no-op for the NCHW batches of data.HeadSet.batch). A
        # channels_last input sends every conv to oneDNN's NHWC kernels, and the backward-weights of the 1x1
        # stride-2 shortcut with fewer input channels than the AVX-512 block of 16 (second stage of the
        # half-width trunk, IC = 8) writes past its workspace: segfault or heap corruption at 128^2 images,
        # batch 1 included (oneDNN 3.12 in torch 2.14.1; uxlfoundation/oneDNN#6035; README "Benchmark").
        x = self.stem(images.contiguous())
        feats = {}
        for s, stage in zip(self.strides, self.stages):
            x = stage(x)
            feats[s] = x
        out: dict[int, torch.Tensor] = {}
        top = None
        for s in sorted((int(k) for k in self.lateral), reverse=True):  # top-down: 16 -> 8 -> 4 (-> 2)
            lat = self.lateral[str(s)](feats[s])
            top = lat if top is None else lat + F.interpolate(top, size=lat.shape[-2:], mode="nearest")
            if s in self.out_strides:
                out[s] = self.smooth[str(s)](top)
        return out


def _head(cin: int, cout: int, bias: float = 0.0) -> nn.Sequential:
    head = nn.Sequential(nn.Conv2d(cin, cin, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 1))
    nn.init.constant_(head[-1].bias, bias)
    return head


class CenterNetLite(nn.Module):
    """CenterNet-style point detector (spec 2.6): heatmap (1), size (2), offset (2) at output stride R."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), fpn_channels: int = 64,
                 output_stride: int = 4) -> None:
        super().__init__()
        self.output_stride = output_stride
        self.trunk = Trunk(widths, fpn_channels, (output_stride,))
        prior = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
        self.heatmap = _head(fpn_channels, 1, prior)
        self.size = _head(fpn_channels, 2)
        self.offset = _head(fpn_channels, 2)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, 3, H, W) -> heatmap logits (B, 1, H/R, W/R), size (B, 2, ...), offset (B, 2, ...)."""
        f = self.trunk(images)[self.output_stride]
        return {"heatmap": self.heatmap(f), "size": self.size(f), "offset": self.offset(f)}


class FCOSLite(nn.Module):
    """FCOS-style anchor-free detector (spec 2.6): FPN strides (4, 8), shared heads over levels.

    Outputs are flattened over levels in order of `strides` (row-major within a level):
    cls (B, L), ctr (B, L) logits; ltrb (B, L, 4) >= 0 distances in px; boxes (B, L, 4) xyxy px.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), fpn_channels: int = 64,
                 strides: tuple[int, ...] = (4, 8)) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.trunk = Trunk(widths, fpn_channels, self.strides)
        prior = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
        self.cls_tower = ConvNormAct(fpn_channels, fpn_channels)
        self.reg_tower = ConvNormAct(fpn_channels, fpn_channels)
        self.cls = nn.Conv2d(fpn_channels, 1, 3, 1, 1)
        nn.init.constant_(self.cls.bias, prior)
        self.ctr = nn.Conv2d(fpn_channels, 1, 3, 1, 1)
        self.ltrb = nn.Conv2d(fpn_channels, 4, 3, 1, 1)
        self.scales = nn.Parameter(torch.ones(len(self.strides)))  # FCOS's learnable per-level scale

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.trunk(images)
        cls, ctr, ltrb, pts = [], [], [], []
        for i, s in enumerate(self.strides):
            f = feats[s]
            c, r = self.cls_tower(f), self.reg_tower(f)
            cls.append(self.cls(c).flatten(1))  # (B, 1, h, w) -> (B, h*w)
            ctr.append(self.ctr(r).flatten(1))  # (B, h*w)
            # Design choice: exp(clamp(., max=8)) * stride keeps early-training distances finite.
            d = torch.exp(torch.clamp(self.scales[i] * self.ltrb(r), max=8.0)) * s  # (B, 4, h, w) px
            ltrb.append(d.flatten(2).transpose(1, 2))  # (B, 4, h*w) -> (B, h*w, 4)
            pts.append(location_points(f.shape[-2], f.shape[-1], s, f.device))
        points = torch.cat(pts)  # (L, 2)
        ltrb_all = torch.cat(ltrb, 1)  # (B, L, 4)
        boxes = torch.cat([points - ltrb_all[..., :2], points + ltrb_all[..., 2:]], dim=-1)  # (B, L, 4)
        return {"cls": torch.cat(cls, 1), "ctr": torch.cat(ctr, 1), "ltrb": ltrb_all, "boxes": boxes,
                "points": points}


def location_points(h: int, w: int, stride: int, device: torch.device | None = None) -> torch.Tensor:
    """Centres (x, y) px of the cells of an (h, w) grid of stride s: u * s + s / 2, row-major -> (h*w, 2)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], 1).float() * stride + stride / 2


def build_model(cfg_model) -> nn.Module:
    """The detector of `cfg.model` (CenterNetLite or FCOSLite), randomly initialised."""
    if cfg_model.detector == "centernet":
        return CenterNetLite(cfg_model.widths, cfg_model.fpn_channels, cfg_model.output_stride)
    return FCOSLite(cfg_model.widths, cfg_model.fpn_channels, cfg_model.fcos_strides)
