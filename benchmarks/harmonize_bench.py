"""Throughput benchmark of `harmonize` (Harmonizing output imbalance for semantic segmentation on
extremely-imbalanced input data, arXiv 2211.05295; specs/harmonize.md sections 2 and 5).

Command:  python benchmarks/harmonize_bench.py [--steps 20] [--size 128] [--batch 8] [--widths 8,16,32]
Expected: ~30 s on 2 CPU cores at the defaults (the quick profile's model and S2 canvas).

Side by side in one run, same model, same random batch, same initial weights:
    train step with CE                       images/s of forward + loss + backward + Adam step
    train step with HarmonizedCompoundLoss   the same with ours (wCE + focal Tversky at b = 0.8)
    loss only (forward of the loss + its backward to the logits), CE vs ours: the loss overhead in ms
Design choice: the median of `--steps` timed steps after 3 untimed warm-up steps; torch's default threads.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tenfold.systems.harmonize.data import make_el_cells
from tenfold.systems.harmonize.loss import build_criterion
from tenfold.systems.harmonize.model import TinyUNet


def time_train_steps(loss_name: str, images, masks, widths, steps: int) -> float:
    torch.manual_seed(0)
    model = TinyUNet(1, widths)
    crit = build_criterion(loss_name)
    if loss_name == "harmonize":
        crit.set_fn_weight(0.8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        loss = crit(model(images), masks)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_loss_only(loss_name: str, logits, masks, steps: int) -> float:
    crit = build_criterion(loss_name)
    times = []
    for i in range(steps + 3):
        z = logits.detach().requires_grad_(True)
        t0 = time.perf_counter()
        crit(z, masks)["loss"].backward()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--widths", default="8,16,32")
    a = p.parse_args()
    widths = tuple(int(w) for w in a.widths.split(","))
    data = make_el_cells(a.batch, a.size, (8, 16), 0.6, seed=0)
    print(f"harmonize benchmark: TinyUNet{widths}, batch {a.batch} x 1 x {a.size} x {a.size}, "
          f"{torch.get_num_threads()} threads, median of {a.steps} steps")
    print(f"{'loss':12s} {'step ms':>9s} {'images/s':>9s} {'loss-only ms':>13s}")
    logits = torch.randn(a.batch, 1, a.size, a.size)
    rows = {}
    for name in ("ce", "harmonize"):
        step = time_train_steps(name, data.images, data.masks, widths, a.steps)
        loss_only = time_loss_only(name, logits, data.masks, a.steps)
        rows[name] = (step, loss_only)
        print(f"{name:12s} {step * 1e3:9.1f} {a.batch / step:9.1f} {loss_only * 1e3:13.3f}")
    overhead = (rows["harmonize"][1] - rows["ce"][1]) * 1e3
    print(f"loss overhead of ours vs CE: {overhead:+.3f} ms per step "
          f"({overhead / (rows['ce'][0] * 1e3) * 100:+.1f} % of a CE training step)")


if __name__ == "__main__":
    main()
