"""Benchmark of the FCtL patch pipeline (Liu et al., IJCV 2024, arXiv 2109.02580): inference patches/s and
peak memory at three image sizes, tenfold's streaming float32 canvas vs the official code's merge strategy
(logits copied to full-resolution float64 host canvases), reimplemented here as the baseline.

    flock /tmp/tenfold-cpu.lock python benchmarks/fctl_bench.py [--sizes 384,768,1536] [--repeats 2]

Both runs use the same LCF model (quick-profile TinyFCN, random init: speed and memory do not depend on the
weights), the same grid, contexts and test sub-batch (16 patches, the official test script's value).
Peak memory = peak live tensor bytes created during the call (tenfold.systems.fctl.evaluate.PeakMemory).
"""

from __future__ import annotations

import argparse
import time

import torch

from tenfold.core.config import make_config
from tenfold.systems.fctl.config import PROFILES, Config
from tenfold.systems.fctl.evaluate import PeakMemory
from tenfold.systems.fctl.patching import iter_patches, patch_boxes
from tenfold.systems.fctl.stages import build_stage_model, predict_logits


@torch.no_grad()
def official_merge(model, image: torch.Tensor, cfg: Config) -> torch.Tensor:
    """The official test loop's merge: each batch's logits go to the host as float64 and are summed into an
    n_cls x H x W float64 canvas (spec component 11, pitfall 8)."""
    d = cfg.data
    canvas = torch.zeros(d.num_classes, *image.shape[-2:], dtype=torch.float64)
    for boxes, local, ctx in iter_patches(image, d.patch_size, d.min_overlap, model.factors, cfg.eval.test_batch):
        logits = model(local, ctx).double().cpu()
        p = d.patch_size
        for (y, x), lg in zip(boxes, logits):
            canvas[:, y:y + p, x:x + p] += lg
    return canvas


def measure(fn, repeats: int) -> tuple[float, float]:
    """(best seconds over `repeats`, peak MB of one call)."""
    with PeakMemory() as mem:
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best, mem.peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="384,768,1536")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    cfg = make_config(Config, PROFILES, "quick", {"eval.use_tta": False})
    torch.manual_seed(0)
    model = build_stage_model(cfg, "all", {}).eval()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, p = {cfg.data.patch_size}, "
          f"contexts {cfg.model.context_factors}, sub-batch {cfg.eval.test_batch}, {cfg.data.num_classes} classes")
    print(f"{'S':>6} {'patches':>8} | {'tenfold patch/s':>15} {'peak MB':>8} | {'official patch/s':>16} "
          f"{'peak MB':>8} | {'max |diff|':>10}")
    for size in [int(s) for s in args.sizes.split(",")]:
        image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(size))
        n = len(patch_boxes(size, size, cfg.data.patch_size, cfg.data.min_overlap))
        t_ours, m_ours = measure(lambda: predict_logits(model, image, cfg, tta=False), args.repeats)
        t_off, m_off = measure(lambda: official_merge(model, image, cfg), args.repeats)
        diff = (predict_logits(model, image, cfg, tta=False).double() - official_merge(model, image, cfg)).abs().max()
        print(f"{size:>6} {n:>8} | {n / t_ours:>15.1f} {m_ours:>8.1f} | {n / t_off:>16.1f} {m_off:>8.1f} | "
              f"{float(diff):>10.2e}")


if __name__ == "__main__":
    main()
