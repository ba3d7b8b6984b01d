"""DC outer step and DM iteration: vectorised (vmap over classes) vs the official per-class loop.

Paper: Liu, Li, Backes, Shen, Zhang, "Backdoor Attacks Against Dataset Distillation", NDSS 2023, arXiv 2301.01197
(system `doorping`, specs/doorping.md sections 2.8 and 5).

Command:  flock /tmp/tenfold-cpu.lock python benchmarks/doorping_bench.py [--repeats 3] [--scales quick,paper]
Expected: ~1 min for the quick scale; the paper scale adds ~2-4 min on 2 CPU cores (1 repeat is enough there).

What is compared (same net, same real and synthetic batches, same result to 1e-5; tests/systems/doorping):
    DC outer step   the matching loss sum_c D(g_syn_c, g_real_c) and its backward to S (the synthetic images):
                    `dc_match_loss` (torch.func.vmap over classes, one graph) vs `dc_match_loss_loop`
                    (the code's structure: per class, autograd.grad on the real batch, then create_graph on S_c).
    DM iteration    `dm_loss` (one forward over every class) vs `dm_loss_loop` (two forwards per class), + backward.
Scales:
    quick  ConvNetMini (32 wide, 2 deep), 1 x 16 x 16, 10 classes, ipc 10, batch_real 32 (the quick profile)
    paper  ConvNet (128 wide, 3 deep), 3 x 32 x 32, 10 classes, ipc 10, batch_real 256 (the full profile)
Each timing is the median of `--repeats` runs after one untimed warm-up.
"""

from __future__ import annotations

import argparse

import torch
from timing import median_seconds

from tenfold.systems.doorping import distill_dc
from tenfold.systems.doorping.model import build_network

SCALES = {"quick": dict(arch="convnet_mini", channels=1, size=16, width=32, depth=2, batch_real=32),
          "paper": dict(arch="convnet", channels=3, size=32, width=128, depth=3, batch_real=256)}




def bench(scale: str, repeats: int, ipc: int = 10) -> list[tuple[str, float, float]]:
    s = SCALES[scale]
    g = torch.Generator().manual_seed(0)
    net = build_network(s["arch"], s["channels"], 10, s["size"], s["width"], s["depth"], generator=g)
    shape = (s["channels"], s["size"], s["size"])
    rx, sx = torch.randn(10, s["batch_real"], *shape, generator=g), torch.randn(10, ipc, *shape, generator=g)
    ry = torch.arange(10)[:, None].expand(10, s["batch_real"])
    sy = torch.arange(10)[:, None].expand(10, ipc)
    syn = sx.clone().requires_grad_(True)

    def dc(fn):
        return lambda: fn(net, rx, ry, syn, sy).backward()

    def dm(fn):
        return lambda: fn(net, rx, syn).backward()

    return [("DC outer step", median_seconds(dc(distill_dc.dc_match_loss), repeats),
             median_seconds(dc(distill_dc.dc_match_loss_loop), repeats)),
            ("DM iteration", median_seconds(dm(distill_dc.dm_loss), repeats),
             median_seconds(dm(distill_dc.dm_loss_loop), repeats))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scales", default="quick,paper")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'scale':6s} {'step':14s} {'vectorised_s':>12s} {'per-class loop_s':>16s} {'loop / vectorised':>18s}")
    for scale in args.scales.split(","):
        reps = args.repeats if scale == "quick" else 1
        for name, vec, loop in bench(scale, reps):
            print(f"{scale:6s} {name:14s} {vec:12.4f} {loop:16.4f} {loop / vec:18.2f}", flush=True)


if __name__ == "__main__":
    main()
