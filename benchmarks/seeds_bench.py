"""How to pay for claim seeds on 2 cores: one after another, stacked into one model (torch.func), or in processes.

Command:  python benchmarks/seeds_bench.py [--seeds 3] [--repeats 3]
Expected: about 2-4 minutes on 2 CPU cores at the defaults.

Each workload trains the SAME small model once per seed (paired: seed s fixes the initialisation and the batch
order), as `tenfold reproduce` does for every comparison. Three ways, timed side by side in one run:
    sequential  seeds one after another in this process, torch on all cores
    stacked     every seed's parameters stacked on a leading axis and trained together: torch.func.functional_call
                under torch.vmap, one Adam over the stacked tensors (Adam is elementwise, so each seed's slice
                follows exactly its own Adam); batches of shape (S, B, ...)
    processes   a pool of `cores` spawned processes with 1 torch thread each, one seed per task
Workloads (the sizes of the project's small models):
    mlp   a 40-64-64-2 MLP on 4000 tabular items, 10 epochs of batch 128 (rulenet's ensemble members)
    cnn   a 3-block ConvNet (width 32, instance norm, 28 x 28 x 1) for 150 steps of batch 64 (doorping's victims)
The printed ratios are sequential time / other time (> 1: the other way is faster). The stacked run also reports
its largest parameter difference from the sequential run after training: 0 for the MLP; for the ConvNet the
batched convolution sums in another order and 150 Adam steps amplify that to ~1e-2 (not bit-identical).

Measured 2026-12-05 on the 2-core development machine (median of 2):
    mlp: sequential 0.95 s | stacked 0.79 s (1.20x) | 2 processes 0.84 s (1.12x)
    cnn: sequential 12.72 s | stacked 19.38 s (0.66x) | 2 processes 16.58 s (0.77x)
So `tenfold reproduce` keeps the seeds sequential by default (`--jobs 1`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from timing import median_seconds


def make_model(kind: str) -> nn.Module:
    if kind == "mlp":
        return nn.Sequential(nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    layers, ch = [], 1
    for _ in range(3):
        layers += [nn.Conv2d(ch, 32, 3, padding=1), nn.GroupNorm(32, 32, affine=True), nn.ReLU(), nn.AvgPool2d(2)]
        ch = 32
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(32 * 3 * 3, 10))


def make_data(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(12345)  # one data set for every seed and every way
    if kind == "mlp":
        x = torch.randn(4000, 40, generator=g)
        return x, (x[:, :5].sum(1) > 0).long()
    x = torch.randn(2000, 1, 28, 28, generator=g)
    return x, torch.randint(0, 10, (2000,), generator=g)


def schedule(kind: str, n: int, seed: int) -> list[torch.Tensor]:
    """The batch indices of one seed (its own order)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "mlp":
        return [b for _ in range(10) for b in torch.randperm(n, generator=g).split(128) if len(b) == 128]
    return [torch.randint(0, n, (64,), generator=g) for _ in range(150)]


def init_model(kind: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return make_model(kind)


def train_one(kind: str, seed: int) -> dict[str, torch.Tensor]:
    x, y = make_data(kind)
    model = init_model(kind, seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for idx in schedule(kind, len(x), seed):
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_stacked(kind: str, seeds: list[int]) -> dict[str, torch.Tensor]:
    x, y = make_data(kind)
    models = [init_model(kind, s) for s in seeds]
    params, buffers = stack_module_state(models)  # each (S, ...) leaf tensors
    base = make_model(kind).to("meta")
    opt = torch.optim.Adam(params.values(), lr=1e-3)

    def loss_one(p, b, xb, yb):
        return nn.functional.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

    batched = torch.vmap(loss_one)
    orders = [schedule(kind, len(x), s) for s in seeds]
    for step in range(len(orders[0])):
        idx = torch.stack([o[step] for o in orders])  # (S, B)
        losses = batched(params, buffers, x[idx], y[idx])  # (S,)
        opt.zero_grad()
        losses.sum().backward()  # seeds' parameters are disjoint: each gets exactly its own gradient
        opt.step()
    return {k: v.detach().clone() for k, v in params.items()}


def _worker(args: tuple[str, int]) -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    return train_one(*args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    seeds = list(range(1000, 1000 + args.seeds))
    print(f"{cores} cores, torch {torch.__version__}, {args.seeds} seeds, median of {args.repeats} after a warm-up")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(cores) as pool:
        for kind in ("mlp", "cnn"):
            torch.set_num_threads(cores)
            seq = median_seconds(lambda: [train_one(kind, s) for s in seeds], args.repeats)
            stk = median_seconds(lambda: train_stacked(kind, seeds), args.repeats)
            proc = median_seconds(lambda: pool.map(_worker, [(kind, s) for s in seeds]), args.repeats)
            one = train_one(kind, seeds[-1])
            stacked = train_stacked(kind, seeds)
            diff = max(float((stacked[k][-1] - one[k]).abs().max()) for k in stacked)
            print(f"{kind}: sequential {seq:.2f} s | stacked {stk:.2f} s (ratio {seq / stk:.2f}x, max |param diff| "
                  f"{diff:.1e}) | {cores} processes {proc:.2f} s (ratio {seq / proc:.2f}x)")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f} s")
