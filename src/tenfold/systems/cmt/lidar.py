"""LiDAR input of `cmt` (Cross Modal Transformer, arXiv 2301.01283), spec component 1: hard voxelisation + MeanVFE.

Official: mmcv `Voxelization` / spconv `PointToVoxel` (CUDA) then `HardSimpleVFE` (mean of the point features).
Design choice (CPU, pure torch): floor -> linear index -> `torch.unique(return_inverse)`; voxels ordered by the
first point that falls in them (the mmcv hard-voxelisation order, which decides what `max_voxels` drops);
inside a voxel the first `max_points` points in input order are kept; features averaged with `index_add_`.
The sparse encoder, SECOND / SECONDFPN are not built yet.
"""

from __future__ import annotations

from typing import Sequence

import torch


def voxelize(points: torch.Tensor, voxel_size: Sequence[float], pc_range: Sequence[float], max_points: int,
             max_voxels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hard voxelisation with mean features.

    Args:
        points: (N, C) with x, y, z first.
        voxel_size: (vx, vy, vz) metres; pc_range: (x_min, y_min, z_min, x_max, y_max, z_max).
        max_points: points kept per voxel (official 10); max_voxels: voxels kept (official 120k train / 160k test).
    Returns:
        features (V, C) mean of the kept points, coords (V, 3) integer (z, y, x) as mmcv, num_points (V,).
    """
    lo = points.new_tensor(pc_range[:3])
    size = points.new_tensor(voxel_size)
    grid = torch.round((points.new_tensor(pc_range[3:]) - lo) / size).long()        # (gx, gy, gz)
    cell = torch.floor((points[:, :3] - lo) / size).long()
    inside = ((cell >= 0) & (cell < grid)).all(dim=1)
    pidx = torch.nonzero(inside).squeeze(1)                                            # input order
    cell = cell[pidx]
    lin = (cell[:, 2] * grid[1] + cell[:, 1]) * grid[0] + cell[:, 0]
    # Design choice: voxels ranked by first appearance (mmcv hard voxelisation), not by linear index.
    uniq, inv = torch.unique(lin, return_inverse=True)
    order_idx = torch.arange(len(pidx))
    first = torch.full((len(uniq),), len(pidx), dtype=torch.long).scatter_reduce(0, inv, order_idx, "amin")
    rank = torch.empty_like(first)
    rank[torch.argsort(first)] = torch.arange(len(uniq))
    vid = rank[inv]                                                                    # voxel id per point
    keep = vid < max_voxels
    # Position of each point inside its voxel (stable sort keeps input order).
    srt = torch.sort(vid, stable=True).indices
    starts = torch.searchsorted(vid[srt], vid[srt], right=False)
    pos = torch.empty_like(vid)
    pos[srt] = torch.arange(len(vid)) - starts
    keep &= pos < max_points
    num_vox = int(min(len(uniq), max_voxels))
    v, p = vid[keep], pidx[keep]
    counts = torch.bincount(v, minlength=num_vox)
    feats = torch.zeros(num_vox, points.shape[1], dtype=points.dtype).index_add_(0, v, points[p])
    feats = feats / counts.clamp(min=1)[:, None].to(points.dtype)
    coords = torch.zeros(num_vox, 3, dtype=torch.long)
    coords[v] = cell[keep].flip(1)
    return feats, coords, counts
