"""Training of `maskfocal` (arXiv 2212.11542): one detector, one classification loss, one run directory.

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with
canonical object detection networks", arXiv 2212.11542 (spec ../shared/specs/maskfocal.md, section 3).

Steps:
 1. join the torchrun process group if launched by torchrun (gloo on CPU, nccl on CUDA), else one process;
 2. data: SynthCrowd generated into <run>/data once (rank 0; the others wait), or the user's files; every split
    is read back through the same COCO / points reader (data.load_split), which checks every image; images are
    decoded and targets built per batch, on the batch's padded grid (memory: one batch plus bounded caches);
 3. the detector (CenterNetLite / FCOSLite) and its criterion with `loss.cls_loss` = native | mfl;
 4. Adam, cosine decay to 0 per step (spec 3 CPU schedule); global batch `train.batch_size` split over ranks;
    every `train.checkpoint_every` steps and at each epoch end rank 0 writes an atomic checkpoint; a re-run on
    the same directory resumes from it (same sample order, so the trajectory is the uninterrupted one);
 5. rank 0 evaluates (tau chosen on validation) and writes summary.json; every rank logs its weights' sha256.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir
from tenfold.core.runtime import progress_bar, seed_everything
from tenfold.core import distributed as D
from tenfold.systems.maskfocal.config import Config
from tenfold.systems.maskfocal.data import BoundedCache, HeadSet, check_batch_pixels, load_data, normalise, restore
from tenfold.systems.maskfocal.heatmap import centernet_targets, fcos_targets
from tenfold.systems.maskfocal.loss import build_cls_loss, centernet_criterion, fcos_criterion
from tenfold.systems.maskfocal.model import build_model
from tenfold.systems.maskfocal.scoring import evaluate_model, finite

log = logging.getLogger("tenfold.maskfocal")
SPLITS = ("train", "val", "test")


# Design choice (issue 19, large images): targets are built when a batch first needs them, on that batch's
# padded grid, and kept while they fit in TARGET_CACHE_BYTES (the quick profile's fit whole); memory no longer
# scales with the split size.
TARGET_CACHE_BYTES = 2**28


def build_targets(cfg: Config, boxes: np.ndarray, hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """One image's targets on the padded grid hw. # Design choice: only counted (visible) heads are targets;
    heads below the visibility policy are ignore regions for AP but plain background in training. # Design
    choice: no data augmentation (the generator supplies fresh scenes); the schedule is locked across losses."""
    m = cfg.model
    if m.detector == "centernet":
        return centernet_targets(boxes, hw, m.output_stride, m.min_overlap, m.min_radius)
    return fcos_targets(boxes, hw, m.fcos_strides, m.fcos_size_split, m.center_sampling_radius, m.min_overlap,
                        m.min_radius)


def batch_targets(cfg: Config, ds: HeadSet, idx: list[int], hw: tuple[int, int],
                  cache: BoundedCache | None = None) -> list[dict[str, np.ndarray]]:
    """The targets of images idx on the batch's padded grid hw (built lazily; kept in `cache` while it has room)."""
    cache = cache if cache is not None else BoundedCache(0)
    return [cache.get((i, tuple(hw)), lambda i=i: build_targets(cfg, ds.boxes[i], tuple(hw))) for i in idx]


def collate(cfg: Config, targets: list[dict[str, np.ndarray]], device: torch.device,
            ctx: D.DistContext | None = None, mfl=None) -> dict:
    """Stack a batch's per-image targets (batch order); CenterNet peaks become an index (K, 3) of (b, y, x).

    The loss normalisers (num_heads, num_pos and, for MFL, mask_weight = sum_u w_u) are summed over the DDP
    ranks and every loss term is scaled by the world size ("loss_scale"): DDP averages the ranks' gradients, so
    N ranks then take exactly the step of one process on the whole global batch (up to float rounding).
    """
    dense = [k for k in targets[0] if k not in ("centers", "size", "offset", "num_heads")]
    out: dict[str, Any] = {k: torch.from_numpy(np.stack([t[k] for t in targets])).to(device) for k in dense}
    if cfg.model.detector == "centernet":
        cen = [t["centers"] for t in targets]
        b = np.concatenate([np.full(len(c), j) for j, c in enumerate(cen)]).astype(np.int64)
        c = np.concatenate(cen).reshape(-1, 2)
        out["index"] = torch.from_numpy(np.stack([b, c[:, 1], c[:, 0]], 1)).to(device)  # (K, 3) (b, y, x)
        for k in ("size", "offset"):
            out[k] = torch.from_numpy(np.concatenate([t[k] for t in targets]).reshape(-1, 2)).to(device)
        num_heads = float(len(b))
    else:
        num_heads = float(sum(t["num_heads"] for t in targets))
    counts = [num_heads, float(out["labels"].sum()) if "labels" in out else 0.0]
    if mfl is not None:
        counts.append(float(mfl.positive_weight(out["heatmap"], out[f"mask_{mfl.mask_mode}"]).double().sum()))
    if ctx is not None and ctx.distributed:
        import torch.distributed as dist

        t = torch.tensor(counts, dtype=torch.float64, device=ctx.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        counts = t.tolist()
        out["loss_scale"] = float(ctx.world_size)
    out["num_heads"], out["num_pos"] = counts[0], counts[1]
    if mfl is not None:
        out["mask_weight"] = counts[2]
    return out


def loss_terms(cfg: Config, model: torch.nn.Module, images: torch.Tensor, tgt: dict, mfl) -> dict[str, torch.Tensor]:
    out = model(normalise(images))
    crit = centernet_criterion if cfg.model.detector == "centernet" else fcos_criterion
    return crit(out, tgt, cfg.loss, mfl)


def total_loss(cfg: Config, terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_term weight_<term> * loss_<term>."""
    return sum(getattr(cfg.loss, "weight_" + k.removeprefix("loss_")) * v for k, v in terms.items())


def epoch_batches(cfg: Config, n: int, epoch: int, ctx: D.DistContext) -> list[list[int]]:
    """This rank's share of every global batch of `epoch`; the order depends only on (seed, epoch)."""
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    return D.shard_indices(torch.randperm(n, generator=g).tolist(), cfg.train.batch_size, ctx)


def train(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Train one detector; write config.json, metrics.jsonl, checkpoints, summary.json (rank 0 only)."""
    t0 = time.perf_counter()
    ctx = D.setup(cfg.device)
    try:
        return _train(cfg, Path(run_dir), ctx, t0)
    finally:
        D.teardown(ctx)


def _train(cfg: Config, run_dir: Path, ctx: D.DistContext, t0: float) -> dict[str, Any]:
    run = RunDir(run_dir)
    # Every input is validated before the first write (config.json): the user's train, val and test files with
    # all their images (on every rank, so that all refuse together), and a checkpoint left by an earlier run.
    user_data = load_data(cfg, run_dir, SPLITS, ctx) if cfg.data.source == "files" else None
    n_train = len(user_data["train"]) if user_data else cfg.data.num_train_images
    if n_train < cfg.train.batch_size:
        where = user_data["train"].source if user_data else "data.num_train_images"
        raise InputError(f"train.batch_size={cfg.train.batch_size} exceeds the {n_train} training images of "
                         f"{where}; expected a batch size of at most the number of training images")
    if user_data:  # the worst batch: batch_size images padded to the split's largest height and width
        tr = user_data["train"]
        check_batch_pixels(tr.source, cfg.train.batch_size, *tr.padded_hw(range(len(tr))))
    if user_data and not ctx.is_main:
        user_data = {"train": user_data["train"]}  # only rank 0 evaluates
    ckpt = run.load_checkpoint()
    seed_everything(cfg.seed)
    model = build_model(cfg.model).to(ctx.device)
    if ckpt is not None:
        restore(run.checkpoint_path, ckpt, model)
    if ctx.is_main:
        run.write_config(cfg)
    data = user_data or load_data(cfg, run_dir, ("train",), ctx)  # SynthCrowd: generated after config.json
    train_set = data["train"]
    targets = BoundedCache(TARGET_CACHE_BYTES)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    steps_per_epoch = len(train_set) // cfg.train.batch_size  # >= 1, checked above
    total = steps_per_epoch * cfg.train.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    step = 0
    if ckpt is not None:
        step = restore(run.checkpoint_path, ckpt, model, opt, sched)
        if ctx.is_main:
            run.truncate_metrics(step)
        log.info("resuming maskfocal from step %d / %d", step, total)
    ddp = D.wrap(model, ctx)
    mfl = build_cls_loss(cfg.loss)
    bar = progress_bar(total, f"maskfocal {cfg.model.detector}+{cfg.loss.cls_loss}") if ctx.is_main else None
    if bar is not None:
        bar.update(step)
    while step < total:
        epoch, i = divmod(step, steps_per_epoch)
        idx = epoch_batches(cfg, len(train_set), epoch, ctx)[i]
        images = train_set.batch(idx)  # decoded now (or cached), padded to this batch's largest image
        tgt = collate(cfg, batch_targets(cfg, train_set, idx, tuple(images.shape[-2:]), targets), ctx.device, ctx,
                      mfl)
        terms = loss_terms(cfg, ddp, images.to(ctx.device), tgt, mfl)
        loss = total_loss(cfg, terms)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}: {({k: float(v) for k, v in terms.items()})}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        _log_step(cfg, run, ctx, bar, step, loss, terms, sched)
        if ctx.is_main and (step % cfg.train.checkpoint_every == 0 or step % steps_per_epoch == 0):
            run.save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                 "scheduler": sched.state_dict(), "step": step, "finished": step == total})
    if bar is not None:
        bar.close()
    digest = D.state_hash(model)
    log.info("rank %d/%d final weights sha256 %s", ctx.rank, ctx.world_size, digest)
    D.barrier(ctx)
    if not ctx.is_main:
        return {"weights_sha256": digest, "rank": ctx.rank}
    return _finish(cfg, run, model, digest, step, run_dir, t0, ctx, data)


def _log_step(cfg, run, ctx, bar, step, loss, terms, sched) -> None:
    if step % cfg.train.log_every and step != 1:
        return
    record = {"step": step, "loss": float(D.all_reduce_mean(loss.detach(), ctx)), "lr": sched.get_last_lr()[0]}
    record.update({k: float(D.all_reduce_mean(v.detach(), ctx)) for k, v in terms.items()})
    if ctx.is_main:
        run.log_metrics(record)
        if bar is not None:
            bar.set_postfix(loss=f"{record['loss']:.4f}")
    if bar is not None:
        bar.update(step - bar.n)


def _finish(cfg, run, model, digest, step, run_dir, t0, ctx, data) -> dict[str, Any]:
    if "val" not in data:
        data = load_data(cfg, run_dir, ("val", "test"))
    model.eval()
    metrics = evaluate_model(model, cfg, data["val"], data["test"])
    logged = run.read_metrics()
    metrics.update({"weights_sha256": digest, "world_size": ctx.world_size, "steps": step,
                    "first_loss": logged[0]["loss"] if logged else None,
                    "final_loss": logged[-1]["loss"] if logged else None})
    metrics = finite(metrics)
    run.write_summary(metrics, time.perf_counter() - t0, str(ctx.device))
    log.info("maskfocal %s+%s: test MAE %.2f RMSE %.2f AP50 %s (tau %.2f)", cfg.model.detector, cfg.loss.cls_loss,
             metrics["mae"], metrics["rmse"], metrics["ap50"], metrics["tau"])
    return metrics
