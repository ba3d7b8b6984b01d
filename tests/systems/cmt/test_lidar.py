"""Voxeliser of cmt (arXiv 2301.01283, spec component 1) against hand values and a per-point Python loop."""

import math

import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.cmt.lidar import voxelize

PC = (-2.0, -2.0, -1.0, 2.0, 2.0, 1.0)
VS = (1.0, 1.0, 1.0)  # grid 4 x 4 x 2


def loop_voxelize(points, voxel_size, pc_range, max_points, max_voxels):
    """Obviously-correct reference: one point at a time, voxels in first-appearance order."""
    grid = [round((pc_range[3 + i] - pc_range[i]) / voxel_size[i]) for i in range(3)]
    voxels: dict[tuple, list] = {}
    for row in points.tolist():
        c = tuple(math.floor((row[i] - pc_range[i]) / voxel_size[i]) for i in range(3))
        if not all(0 <= c[i] < grid[i] for i in range(3)):
            continue
        if c not in voxels:
            if len(voxels) >= max_voxels:
                continue
            voxels[c] = []
        if len(voxels[c]) < max_points:
            voxels[c].append(row)
    feats = [[sum(col) / len(pts) for col in zip(*pts)] for pts in voxels.values()]
    coords = [[c[2], c[1], c[0]] for c in voxels]
    counts = torch.tensor([len(p) for p in voxels.values()])
    return torch.tensor(feats, dtype=points.dtype), torch.tensor(coords), counts


def test_hand_case() -> None:
    # Voxel (x0, y2, z1) gets the points 0, 2, 3 but keeps only the first two (max 2): mean x = (-1.5 - 1.1) / 2.
    # Point 1 is in voxel (x3, y0, z0); point 4 is outside (x = 2.0 is the open upper bound).
    pts = torch.tensor([[-1.5, 0.5, 0.5, 1.0], [1.5, -1.5, -0.5, 3.0], [-1.1, 0.9, 0.1, 5.0],
                        [-1.9, 0.2, 0.9, 7.0], [2.0, 0.0, 0.0, 9.0]], dtype=torch.float64)
    feats, coords, num = voxelize(pts, VS, PC, max_points=2, max_voxels=10)
    assert coords.tolist() == [[1, 2, 0], [0, 0, 3]] and num.tolist() == [2, 1]
    assert_close(feats[0], torch.tensor([-1.3, 0.7, 0.3, 3.0], dtype=torch.float64))
    # max_voxels = 1 keeps the voxel seen first.
    _, coords1, _ = voxelize(pts, VS, PC, max_points=2, max_voxels=1)
    assert coords1.tolist() == [[1, 2, 0]]


@pytest.mark.parametrize("seed,max_points,max_voxels", [(0, 3, 100), (1, 1, 7), (2, 5, 20)])
def test_matches_python_loop(seed: int, max_points: int, max_voxels: int) -> None:
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(300, 5, generator=g, dtype=torch.float64) * torch.tensor([5.0, 5.0, 2.6, 1.0, 0.5]) \
        - torch.tensor([2.5, 2.5, 1.3, 0.0, 0.0])
    ours = voxelize(pts, VS, PC, max_points, max_voxels)
    ref = loop_voxelize(pts, VS, PC, max_points, max_voxels)
    assert_close(ours[1], ref[1])
    assert_close(ours[2], ref[2])
    assert_close(ours[0], ref[0])


def test_zeroed_points_collapse_to_one_voxel() -> None:
    # ModalMask3D zeroes every point: all fall into the voxel containing the origin (spec pitfall 6).
    feats, coords, num = voxelize(torch.zeros(50, 5), VS, PC, 10, 100)
    assert coords.tolist() == [[1, 2, 2]] and num.tolist() == [10] and feats.abs().sum().item() == 0.0
