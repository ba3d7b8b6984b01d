"""Coordinates encoding of `cmt` (Cross Modal Transformer, arXiv 2301.01283), spec components 5 and 6.

Image tokens (official `_rv_pe`): every feature cell (row i, column j) of an H_f x W_f map of a padded
H_p x W_p image sees the camera ray through the cell's top-left corner
    u = j * W_p / W_f,   v = i * H_p / H_f                                    (no +0.5)
sampled at D depths d_k = 1 + k (x_max - 1) / D, k = 0..D-1; each homogeneous (u d, v d, d, 1) is mapped
to the LiDAR frame by inverse(lidar2img) (`lift_frustum`), normalised per axis by the point-cloud range
with **no clamping** (`normalise_points`), flattened to 3D values and embedded by the MLP
Linear(3D -> 4 C) -> ReLU -> Linear(4 C -> C) (`rv_embedding`).

BEV tokens (official `pos2embed` + `bev_embedding`): centres (col + 0.5) / W, (row + 0.5) / H times 2 pi,
divided by a frequency vector, sin / cos interleaved, y part then x part, 2F dims; then
Linear(2F -> C) -> ReLU -> Linear(C -> C). The official divisor is 1 + 2 floor(i / 2) / F, in [1, 2): only low
frequencies (a quirk, kept behind `use_official_pos2embed`; the usual one is temperature^(2 floor(i / 2) / F)).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


def depth_bins(depth_num: int, x_max: float, depth_start: float = 1.0) -> torch.Tensor:
    """(D,) linear depths d_k = start + k (x_max - start) / D, k = 0..D-1 (the last bin stops short of x_max)."""
    return depth_start + torch.arange(depth_num, dtype=torch.float64) * (x_max - depth_start) / depth_num


def frustum_pixels(feat_hw: tuple[int, int], pad_hw: tuple[int, int]) -> torch.Tensor:
    """(H_f, W_f, 2) pixel coordinates (u, v) of each feature cell's top-left corner."""
    hf, wf = feat_hw
    hp, wp = pad_hw
    v = torch.arange(hf, dtype=torch.float64) * hp / hf
    u = torch.arange(wf, dtype=torch.float64) * wp / wf
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv], dim=-1)


def lift_frustum(lidar2img: torch.Tensor, pixels: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    """Back-project pixels at each depth into the LiDAR frame.

    Args:
        lidar2img: (..., 4, 4) per camera.
        pixels: (H, W, 2) (u, v); depths: (D,).
    Returns:
        (..., H, W, D, 3) LiDAR points: inverse(lidar2img) @ (u d, v d, d, 1).
    """
    h, w, _ = pixels.shape
    d = depths.to(pixels.dtype)[None, None, :, None]                       # (1, 1, D, 1)
    uv = pixels[:, :, None, :] * d                                         # (H, W, D, 2)
    hom = torch.cat([uv, d.expand(h, w, -1, 1), torch.ones_like(uv[..., :1])], dim=-1)  # (H, W, D, 4)
    inv = torch.linalg.inv(lidar2img.to(pixels.dtype))                     # (..., 4, 4)
    pts = torch.einsum("...ij,hwdj->...hwdi", inv, hom)
    return pts[..., :3]


def normalise_points(points: torch.Tensor, pc_range: Sequence[float]) -> torch.Tensor:
    """(p - r_min) / (r_max - r_min) per axis, no clamping (points outside the range leave [0, 1])."""
    lo = torch.as_tensor(pc_range[:3], dtype=points.dtype, device=points.device)
    hi = torch.as_tensor(pc_range[3:], dtype=points.dtype, device=points.device)
    return (points - lo) / (hi - lo)


class CoordinatesEncoding(nn.Module):
    """Ray PE of image tokens: one C-d embedding per token, a learned function of the 3D ray it sees.

    Args:
        hidden_dim: C (official 256).
        depth_num: D (official 64).
        pc_range: (x_min, y_min, z_min, x_max, y_max, z_max); x_max also ends the depth bins.
        depth_start: first depth bin (official 1.0 m).
    """

    def __init__(self, hidden_dim: int, depth_num: int, pc_range: Sequence[float], depth_start: float = 1.0):
        super().__init__()
        self.pc_range = tuple(float(v) for v in pc_range)
        self.register_buffer("depths", depth_bins(depth_num, self.pc_range[3], depth_start).float(), persistent=False)
        self.rv_embedding = nn.Sequential(nn.Linear(3 * depth_num, 4 * hidden_dim), nn.ReLU(inplace=True),
                                          nn.Linear(4 * hidden_dim, hidden_dim))

    def ray_points(self, lidar2img: torch.Tensor, feat_hw: tuple[int, int], pad_hw: tuple[int, int]) -> torch.Tensor:
        """(B, N, 4, 4) -> (B, N, H_f, W_f, 3 D) normalised, flattened ray samples (the MLP input)."""
        pts = lift_frustum(lidar2img.double(), frustum_pixels(feat_hw, pad_hw), self.depths.double())
        pts = normalise_points(pts, self.pc_range)                           # (B, N, H, W, D, 3)
        return pts.flatten(-2).to(self.depths.dtype)

    def forward(self, lidar2img: torch.Tensor, feat_hw: tuple[int, int], pad_hw: tuple[int, int]) -> torch.Tensor:
        """(B, N, 4, 4) -> (B, N, H_f, W_f, C) image-token position embeddings."""
        return self.rv_embedding(self.ray_points(lidar2img, feat_hw, pad_hw))

    def query_embedding(self, anchors: torch.Tensor, lidar2img: torch.Tensor, pad_hw: tuple[int, int]) -> torch.Tensor:
        """Image part of the position-guided query PE (official `_rv_query_embed`, spec component 7).

        Each anchor (normalised, in [0, 1]^3) is de-normalised to metres and projected into every view;
        (u, v) = projection / depth (depth detached, +-1e-6 as official); a view is valid if 0 <= u < W_p,
        0 <= v < H_p and depth > 0. For each view the D-sample ray through (u, v) is rebuilt with the same bins,
        back-projected, normalised and embedded by the same `rv_embedding`; invalid views are zeroed and the
        views are **summed**.

        Args:
            anchors: (B, Q, 3); lidar2img: (B, V, 4, 4); pad_hw: (H_p, W_p).
        Returns:
            (B, Q, C).
        """
        lo = anchors.new_tensor(self.pc_range[:3])
        hi = anchors.new_tensor(self.pc_range[3:])
        ref = anchors * (hi - lo) + lo                                              # (B, Q, 3) metres
        hom = torch.cat([ref, torch.ones_like(ref[..., :1])], dim=-1)
        l2i = lidar2img.to(anchors.dtype)
        proj = torch.einsum("bnd,bvcd->bvnc", hom, l2i)                              # (B, V, Q, 4)
        depth = proj[..., 2:3].detach()
        front = depth > 0
        uv1 = proj[..., :3] / (depth + front * 1e-6 - (~front) * 1e-6)               # (u, v, 1)
        h_p, w_p = pad_hw
        valid = ((uv1[..., 0] >= 0) & (uv1[..., 0] < w_p) & (uv1[..., 1] >= 0) & (uv1[..., 1] < h_p)
                 & front.squeeze(-1))                                               # (B, V, Q)
        d = self.depths.to(anchors.dtype)
        samples = uv1[..., None, :] * d[:, None]                                    # (B, V, Q, D, 3) = (u d, v d, d)
        samples = torch.cat([samples, torch.ones_like(samples[..., :1])], dim=-1)
        back = torch.einsum("bvco,bvndo->bvndc", torch.linalg.inv(l2i), samples)[..., :3]
        emb = self.rv_embedding(normalise_points(back, self.pc_range).flatten(-2))    # (B, V, Q, C)
        return (emb * valid[..., None]).sum(dim=1)


def pos2embed(pos: torch.Tensor, num_pos_feats: int = 128, temperature: float = 10000.0,
              use_official_pos2embed: bool = True) -> torch.Tensor:
    """(..., 2) positions in [0, 1] (x, y) -> (..., 2 F) sine embedding, y part then x part.

    divisor_i = 1 + 2 floor(i / 2) / F (official) or temperature^(2 floor(i / 2) / F) (standard).
    """
    pos = pos * (2 * math.pi)
    i = torch.arange(num_pos_feats, dtype=pos.dtype, device=pos.device)
    expo = 2 * torch.div(i, 2, rounding_mode="floor") / num_pos_feats
    dim_t = expo + 1 if use_official_pos2embed else temperature ** expo
    px, py = pos[..., 0, None] / dim_t, pos[..., 1, None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=-1).flatten(-2)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=-1).flatten(-2)
    return torch.cat((py, px), dim=-1)


def bev_cell_centres(bev_hw: tuple[int, int]) -> torch.Tensor:
    """(H * W, 2) normalised (x, y) cell centres ((col + 0.5) / W, (row + 0.5) / H), row-major."""
    h, w = bev_hw
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    return torch.stack([xs, ys], dim=-1).reshape(-1, 2)


class BEVPositionEncoding(nn.Module):
    """BEV PE: `pos2embed` (2F = 2 C dims) -> Linear(2C -> C) -> ReLU -> Linear(C -> C); z is not encoded."""

    def __init__(self, hidden_dim: int, use_official_pos2embed: bool = True):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.use_official_pos2embed = use_official_pos2embed
        self.bev_embedding = nn.Sequential(nn.Linear(2 * hidden_dim, hidden_dim), nn.ReLU(inplace=True),
                                           nn.Linear(hidden_dim, hidden_dim))

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        """(..., 2) normalised (x, y) -> (..., C)."""
        return self.bev_embedding(pos2embed(pos, self.hidden_dim, use_official_pos2embed=self.use_official_pos2embed))
