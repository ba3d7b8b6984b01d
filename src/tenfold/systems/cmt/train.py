"""Training of `cmt` (Cross Modal Transformer, arXiv 2301.01283), spec section 3.

Steps per update:
 1. draw `batch_size` training samples (seeded permutation, epoch by epoch);
 2. ModalMask3D (fusion, `train.use_modal_mask`): each sample drops its images (25 %) or points (25 %), never both;
 3. query denoising (component 11): noised GT anchors prepended with the DN attention mask;
 4. forward; loss = matching losses over every decoder layer + DN losses (components 11-12);
 5. AdamW, one-cycle lr (cosine rise to `lr_peak_ratio` x lr over `rise_fraction`, cosine fall to 1e-4 x lr),
    gradient clipping at `grad_clip`; a non-finite loss stops the run (RunFailed).
Checkpoints (model, optimiser, step, rng states) every `checkpoint_every` updates; `train` on the same run
directory resumes from the last one. The final summary holds the validation NDS (evaluate's metric) and, with
`train.eval_fraction` > 0, the validation NDS / mAP after that fraction of the schedule ("mid_eval").
Deviation: no global rotation / scale / flip, image resize / crop, GT-paste or CBGS (spec 3 steps 2, 4-9): the
voxel grids are computed once per scene.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tenfold.core.errors import RunFailed
from tenfold.core.runs import RunDir
from tenfold.core.runtime import progress_bar, seed_everything
from tenfold.systems.cmt import data
from tenfold.systems.cmt.augment import draw_dropped
from tenfold.systems.cmt.config import Config
from tenfold.systems.cmt.model import build, prepare_dn

log = logging.getLogger("tenfold.cmt")


def one_cycle_lr(step: int, total: int, base: float, peak_ratio: float, rise: float) -> float:
    """lr at `step` of `total`: cosine from base up to peak_ratio x base over the first `rise` fraction, then
    cosine down to base x 1e-4 (mmcv CyclicLrUpdater, target_ratio (peak, 1e-4))."""
    up = max(1, int(round(total * rise)))
    if step < up:
        t = step / up
        return base * (1 + (peak_ratio - 1) * (1 - math.cos(math.pi * t)) / 2)
    t = (step - up) / max(1, total - up)
    lo = base * 1e-4
    return lo + (base * peak_ratio - lo) * (1 + math.cos(math.pi * t)) / 2


def total_steps(cfg: Config, num_samples: int) -> int:
    t = cfg.train
    return t.steps if t.steps > 0 else t.epochs * math.ceil(num_samples / t.batch_size)


def eval_step(cfg: Config, total: int) -> int:
    """The update after which `train` scores the val scenes mid-schedule: round(eval_fraction x total) clipped to
    [1, total]; 0 when `train.eval_fraction` is 0."""
    if cfg.train.eval_fraction == 0:
        return 0
    return min(total, max(1, round(cfg.train.eval_fraction * total)))


def batch_indices(seed: int, num: int, batch: int, step: int) -> list[int]:
    """The samples of update `step`: epoch e uses permutation default_rng([seed, e]); batches wrap epochs."""
    start = step * batch
    out = []
    for pos in range(start, start + batch):
        epoch, k = divmod(pos, num)
        out.append(int(np.random.default_rng([seed, 7, epoch]).permutation(num)[k]))
    return out


def train(cfg: Config, run_dir: Path, samples: Sequence[dict] | None = None,
          val_samples: Sequence[dict] | None = None) -> dict[str, Any]:
    """Train one CMT variant (cfg.model.modality) in `run_dir`; resumes from its checkpoint. `samples` /
    `val_samples` let reproduce.py share generated scenes between arms (else generated from cfg)."""
    t0 = time.perf_counter()
    run = RunDir(run_dir)
    # Every input is read and checked before the first write to the run directory.
    samples = samples if samples is not None else data.training_samples(cfg, "train")
    val_samples = val_samples if val_samples is not None else data.training_samples(cfg, "val")
    run.write_config(cfg)
    generator = seed_everything(cfg.seed)
    num_classes = len(cfg.data.classes)
    model, criterion = build(cfg.model, num_classes, cfg.train.weight_cls, cfg.train.weight_bbox)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    total = total_steps(cfg, len(samples))
    start = 0
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        generator.set_state(ckpt["generator"])
        start = int(ckpt["step"])
        run.truncate_metrics(start)
        log.info("cmt: resuming from update %d of %d", start, total)
    rng_mask = np.random.default_rng([cfg.seed, 11])
    # The mask draws of the updates before a resume are replayed so a resumed run sees the same masks.
    mask_on = cfg.model.modality == "fusion" and cfg.train.use_modal_mask
    for _ in range(start * cfg.train.batch_size if mask_on else 0):
        draw_dropped(rng_mask)
    bar = progress_bar(total, f"cmt {cfg.model.modality}")
    bar.update(start)
    model.train()
    last: dict[str, float] = {}
    mid = eval_step(cfg, total)
    for step in range(start, total):
        idx = batch_indices(cfg.seed, len(samples), cfg.train.batch_size, step)
        chunk = [samples[i] for i in idx]
        drops = [draw_dropped(rng_mask) if mask_on else "" for _ in chunk]
        batch = data.collate(chunk, cfg.model, drops)
        gt_boxes, gt_labels = [s["gt_boxes"] for s in chunk], [s["gt_labels"] for s in chunk]
        dn = prepare_dn(cfg.model, gt_boxes, gt_labels, num_classes, cfg.train.dn_scalar, cfg.train.dn_noise_scale,
                        cfg.train.dn_split, generator)
        losses = criterion(model(batch, dn), gt_boxes, gt_labels, dn)
        if not torch.isfinite(losses["loss"]):
            raise RunFailed(f"cmt: non-finite loss at update {step}: { {k: float(v.detach()) for k, v in losses.items()} }")
        lr = one_cycle_lr(step, total, cfg.train.lr, cfg.train.lr_peak_ratio, cfg.train.rise_fraction)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        last = {k: float(v.detach()) for k, v in losses.items()}
        run.log_metrics({"step": step + 1, "lr": lr, **last})
        bar.update(1)
        bar.set_postfix(loss=f"{last['loss']:.3f}")
        if step + 1 == mid:
            # Logged before this update's checkpoint: a resume from an earlier checkpoint drops it and scores again.
            score = data.score(val_samples, data.predictions(model, val_samples, cfg), cfg)
            run.log_metrics({"step": mid, "val_NDS": score["NDS"], "val_mAP": score["mAP"]})
            model.train()
        if (step + 1) % cfg.train.checkpoint_every == 0 or step + 1 == total:
            run.save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step + 1,
                                 "generator": generator.get_state()})
    bar.close()
    result = data.score(val_samples, data.predictions(model, val_samples, cfg), cfg)
    metrics = {"NDS": result["NDS"], "mAP": result["mAP"], "steps": total, **{f"final_{k}": v for k, v in last.items()},
               "num_parameters": sum(p.numel() for p in model.parameters())}
    if mid:
        rec = [r for r in run.read_metrics() if r.get("step") == mid and "val_mAP" in r][-1]
        metrics["mid_eval"] = {"step": mid, "NDS": rec["val_NDS"], "mAP": rec["val_mAP"]}
    run.write_summary(metrics, time.perf_counter() - t0, "cpu")
    return metrics
