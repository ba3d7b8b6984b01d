"""CMT per-branch latency on CPU and the voxeliser against a per-point Python loop.

Paper: Yan et al., "Cross Modal Transformer: Towards Fast and Robust 3D Object Detection", ICCV 2023, arXiv
2301.01283 (system `cmt`, specs/cmt.md sections 2 and 5).

Command:  flock /tmp/tenfold-train.lock .venv/bin/python benchmarks/cmt_bench.py [--repeats 5] [--profile quick]
Expected: ~1 min at the quick profile on the shared 2-core machine (one thread).

What is timed (batch 4, the profile's sizes, one torch thread; median of `--repeats` after one warm-up):
    image branch    ImageBackbone + neck on 6 cameras, and the ray coordinates encoding of the image tokens
    point branch    PointBEVEncoder on the dense voxel grid (+ the BEV PE)
    decoder         position-guided query PE + transformer decoder + per-layer heads (fusion memory)
    train step      fusion forward + matching / DN losses + backward + AdamW
    voxeliser       lidar.voxelize on one SynthDrive sweep set vs a per-point Python loop computing the same
                    hard voxelisation (first-appearance order, first max_points per voxel, mean features)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from timing import median_seconds

from tenfold.core.config import make_config
from tenfold.systems.cmt import data
from tenfold.systems.cmt.config import PROFILES, Config
from tenfold.systems.cmt.lidar import voxelize
from tenfold.systems.cmt.model import build, prepare_dn


def voxelize_loop(points: np.ndarray, voxel: tuple, pc_range: tuple, max_points: int, max_voxels: int):
    """The straightforward reference: one Python iteration per point."""
    lo, size = np.array(pc_range[:3], np.float32), np.array(voxel, np.float32)  # float32 like the torch path
    grid = np.round((np.array(pc_range[3:], np.float32) - lo) / size).astype(int)
    index: dict[tuple, int] = {}
    sums, counts, coords = [], [], []
    for p in points:
        c = tuple(int(v) for v in np.floor((p[:3] - lo) / size))
        if any(v < 0 or v >= g for v, g in zip(c, grid)):
            continue
        k = index.get(c)
        if k is None:
            if len(index) >= max_voxels:
                continue
            k = index[c] = len(index)
            sums.append(np.zeros(len(p)))
            counts.append(0)
            coords.append(c[::-1])
        if counts[k] < max_points:
            sums[k] += p
            counts[k] += 1
    return np.array(sums) / np.array(counts)[:, None], np.array(coords), np.array(counts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", default="quick", choices=("smoke", "quick"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = make_config(Config, PROFILES, args.profile, {"seed": 0})
    samples = data.synthdrive_samples(cfg, "train", 4)
    model, crit = build(cfg.model, len(cfg.data.classes))
    model.eval()
    batch = data.collate(samples, cfg.model)
    rows = []
    with torch.no_grad():
        rows.append(("image branch (backbone + ray PE)", median_seconds(
            lambda: model.image_tokens(batch["images"], batch["lidar2img"]), args.repeats)))
        rows.append(("point branch (BEV encoder + PE)", median_seconds(
            lambda: model.bev_tokens(batch["grid"]), args.repeats)))
        full = median_seconds(lambda: model(batch), args.repeats)
        rows.append(("decoder + heads (full forward - branches)", full - rows[0][1] - rows[1][1]))
        rows.append(("full fusion forward", full))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    gb, gl = [s["gt_boxes"] for s in samples], [s["gt_labels"] for s in samples]

    def step():
        dn = prepare_dn(cfg.model, gb, gl, len(cfg.data.classes), cfg.train.dn_scalar, 1.0, 0.75, None)
        loss = crit(model(batch, dn), gb, gl, dn)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    rows.append(("fusion train step (fwd + loss + bwd + AdamW)", median_seconds(step, args.repeats)))
    print(f"cmt {args.profile}, batch 4, 1 thread, median of {args.repeats}")
    for name, sec in rows:
        print(f"  {name:48s} {sec * 1e3:9.1f} ms")
    from tenfold.systems.cmt.synthdrive import generate_scene

    pts = generate_scene(0, 0, 0, data.synth_config(cfg))["points"].astype(np.float32)
    m = cfg.model
    fast = median_seconds(lambda: voxelize(torch.from_numpy(pts), m.voxel_size, m.pc_range, m.max_points_per_voxel,
                                           m.max_voxels), args.repeats)
    slow = median_seconds(lambda: voxelize_loop(pts, m.voxel_size, m.pc_range, m.max_points_per_voxel,
                                                m.max_voxels), max(1, args.repeats // 2))
    f, c, n = voxelize(torch.from_numpy(pts), m.voxel_size, m.pc_range, m.max_points_per_voxel, m.max_voxels)
    rf, rc, rn = voxelize_loop(pts, m.voxel_size, m.pc_range, m.max_points_per_voxel, m.max_voxels)
    assert np.array_equal(c.numpy(), rc) and np.array_equal(n.numpy(), rn) and np.allclose(f.numpy(), rf, atol=1e-5)
    print(f"  voxeliser on {len(pts)} points: torch {fast * 1e3:.2f} ms, per-point loop {slow * 1e3:.1f} ms, "
          f"ratio {slow / fast:.0f}x (same voxels, counts and means)")


if __name__ == "__main__":
    main()
