"""Staged training of FCtL (Liu et al., "Ultra-high Resolution Image Segmentation via Locality-aware Context
Fusion and Alternating Local Enhancement", IJCV 2024, arXiv 2109.02580): spec ../shared/specs/fctl.md section 3.

Steps (Inria `main` branch [code]):
 0. "local": the plain trunk on local patches;
 1. "single<i>": trunk + a context encoder for factor i, one attention block (X + O(X, S)), end to end,
    initialised from stage 0;
 2. "all": trunk + LCF (self + every context, fused); trunk and the first context branch from single0, context
    encoders from the single stages, frozen (no grad, eval mode); the other branches fresh.
 Extra stages: "all_ale" (as "all" plus the reconstructed ALE) and "global" (the whole-image model: the
 baseline, and the DeepGlobe global context, trained before "all": local -> single0 (x3) -> global -> all);
 "<stage>_long" continues a finished stage with a fresh poly schedule until its trunk has trained as many
 epochs as LCF's (equal budgets, issue 17).
Per stage: Adam (one group), poly lr per iteration, gradients accumulated over every patch (in sub-batches)
of `train.images_per_step` images before one step [code]. Every epoch writes an atomic checkpoint; a re-run on
the same directory skips finished stages (stages/<name>.pt) and resumes the current one from its last epoch.
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
from tenfold.core.runs import RunDir, atomic_write_bytes
from tenfold.core.runtime import progress_bar, seed_everything, select_device
from tenfold.systems.fctl.config import Config
from tenfold.systems.fctl.loss import loss_terms
from tenfold.systems.fctl.model import FCtLNet, check_weights_file
from tenfold.systems.fctl.patching import crops_for, patch_boxes
from tenfold.systems.fctl.stages import (SegImages, base_stage, build_stage_model, check_state, evaluate_images,
                                         load_split, load_stage_model, load_stage_state, stage_epochs, stage_path,
                                         stage_predict)

log = logging.getLogger("tenfold.fctl")


def poly_lr(base_lr: float, iteration: int, max_iterations: int, power: float = 0.9) -> float:
    """Poly schedule [code]: lr = lr0 (1 - T / T_max)^power, per iteration."""
    return base_lr * max(0.0, 1.0 - iteration / max_iterations) ** power


def _augment(rng: np.random.Generator, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """h-flip with p 0.5, rotation by 90/180/270 with p 0.5 [code]; the same for patch, contexts, label."""
    flip, k = rng.random() < 0.5, int(rng.integers(1, 4)) if rng.random() < 0.5 else 0
    return [torch.rot90(t.flip(-1) if flip else t, k, dims=(-2, -1)) for t in tensors]


def image_samples(cfg: Config, stage: str, images: SegImages, i: int, factors: tuple[float, ...]):
    """Yield (local, contexts, label) sub-batches of image i; the global stage yields the whole image."""
    img, lbl = images.image(i), torch.from_numpy(np.asarray(images.pair(i)[1]).astype(np.int64))
    if base_stage(stage) == "global":
        yield img[None], [], lbl[None]
        return
    p = cfg.data.patch_size
    boxes = patch_boxes(img.shape[-2], img.shape[-1], p, cfg.data.min_overlap)
    for j in range(0, len(boxes), cfg.train.sub_batch):
        chunk = boxes[j:j + cfg.train.sub_batch]
        local, ctx = crops_for(img, chunk, p, factors)
        yield local, ctx, torch.stack([lbl[y:y + p, x:x + p] for y, x in chunk])


def train_step(cfg: Config, model: torch.nn.Module, stage: str, images: SegImages, chunk: list[int],
               rng: np.random.Generator, device: torch.device) -> float:
    """Accumulate gradients over every sub-batch of the images in `chunk` (one optimiser step follows)."""
    total = 0.0
    for i in chunk:
        for local, ctx, lbl in image_samples(cfg, stage, images, i, model.factors):
            if cfg.train.use_augment:
                local, lbl, *ctx = _augment(rng, [local, lbl, *ctx])
            local, lbl, ctx = local.to(device), lbl.to(device), [c.to(device) for c in ctx]
            logits = model(local) if base_stage(stage) == "global" else model(local, ctx)
            loss = loss_terms(logits, lbl, cfg.train.focal_gamma, cfg.train.weight_focal)["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite focal loss in stage {stage}")
            loss.backward()  # sum of sub-batch means, as the official accumulation
            total += loss.item()
    return total


def build_optimizer(model: torch.nn.Module, t: Any) -> torch.optim.Adam:
    """Adam with weight decay `t.weight_decay` on the trunk and `t.context_weight_decay` on the context path.

    Deviation: the official code uses one Adam group with weight decay 5e-4 everywhere. At initialisation gamma = 0,
    so W_q, W_k, W_v, the fusion convolutions and a trainable context encoder get no loss gradient; Adam's
    normalised step then shrinks them by about lr per step under any weight decay and they collapse in ~20 steps,
    after which gamma's own gradient (which scales with V) vanishes and the context path never starts (issue 17,
    measured on `single0`). The context path (everything outside `trunk.`) therefore gets `context_weight_decay`
    (default 0, the official Q/K "no weight decay" tag honoured and extended to V, gamma, fusion and the context
    encoders). Set `train.context_weight_decay=5e-4` for the official single group. The context group's learning
    rate is `t.lr * t.context_lr_mult` (default 1: the code's single rate).
    """
    trunk = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("trunk.")]
    context = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("trunk.")]
    groups = [{"params": trunk, "weight_decay": t.weight_decay, "lr_mult": 1.0}]
    if context:
        groups.append({"params": context, "weight_decay": t.context_weight_decay,
                       "lr_mult": getattr(t, "context_lr_mult", 1.0)})
    opt = torch.optim.Adam(groups, lr=t.lr)
    for g in opt.param_groups:
        g["lr"] = t.lr * g["lr_mult"]
    return opt


def run_stage(cfg: Config, stage: str, stage_index: int, model: torch.nn.Module, images: SegImages, run: RunDir,
              device: torch.device, budget: list[int], val: SegImages | None = None) -> bool:
    """Train one stage from its checkpoint (if any); False when `budget` (epochs left in this call) ran out.

    Every `train.val_every` epochs (and after the last) the stage is scored on `val` without TTA and the
    validation mIoU is logged with the epoch's record (spec section 3: validation every 5 epochs) [code].
    """
    t = cfg.train
    epochs = stage_epochs(cfg, stage)  # epochs_per_stage; a "<stage>_long" continuation more (equal budgets)
    offset = sum(stage_epochs(cfg, s) for s in t.stages[:stage_index])  # metrics steps of the earlier stages
    opt = build_optimizer(model, t)
    ckpt = run.load_checkpoint()
    start = 0
    if ckpt is not None and ckpt.get("stage") == stage:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start = ckpt["epoch"]
        run.truncate_metrics(offset + start)
        log.info("resuming stage %s from epoch %d", stage, start)
    steps = math.ceil(len(images) / t.images_per_step)
    max_it = (t.start_epoch + epochs) * steps
    bar = progress_bar(epochs * steps, f"fctl {stage}")
    bar.update(start * steps)
    try:
        for epoch in range(start, epochs):
            if budget[0] == 0:
                return False
            model.train()
            rng = np.random.default_rng([cfg.seed, stage_index, epoch])  # same order after a resume
            order = rng.permutation(len(images)).tolist()
            losses = []
            for s in range(steps):
                lr = poly_lr(t.lr, (t.start_epoch + epoch) * steps + s, max_it, t.poly_power)
                for g in opt.param_groups:
                    g["lr"] = lr * g.get("lr_mult", 1.0)  # train.context_lr_mult on the context path
                opt.zero_grad(set_to_none=True)
                losses.append(train_step(cfg, model, stage, images, order[s * t.images_per_step:
                                                                           (s + 1) * t.images_per_step], rng, device))
                opt.step()
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            run.save_checkpoint({"stage": stage, "epoch": epoch + 1, "model": model.state_dict(),
                                 "optimizer": opt.state_dict()})
            gam = model.gammas() if isinstance(model, FCtLNet) else {}
            record = {"step": offset + epoch + 1, "stage": stage, "epoch": epoch + 1,
                      "loss_focal": float(np.mean(losses)), "lr": lr, "gammas": gam}
            due = (t.val_every and (epoch + 1) % t.val_every == 0) or epoch + 1 == epochs
            if val is not None and due:
                model.eval()
                record["val_miou"] = evaluate_images(lambda i: stage_predict(model, stage, val.image(i), cfg,
                                                                             tta=False),
                                                     val.labels, cfg.data.num_classes)["miou"]
            run.log_metrics(record)
            budget[0] -= 1
    finally:
        bar.close()
    return True


def train(cfg: Config, run_dir: Path, stop_after_epochs: int | None = None) -> dict[str, Any]:
    """Train every stage of `cfg.train.stages` into `run_dir`; resumes; writes summary.json.

    `stop_after_epochs` ends the call after that many epochs (a kill-equivalent for the resume test).
    """
    t0 = time.perf_counter()
    device = select_device(cfg.device)
    run = RunDir(run_dir)
    # Every input is read and checked before the first write (config.json): data, weights, a resumed run.
    train_set, val_set = load_split(cfg, "train"), load_split(cfg, "val")
    if cfg.data.source != "synth":
        load_split(cfg, "test")  # `tenfold eval` reads it: a bad test file is refused now, not after training
    check_weights_file(cfg.model.backbone, cfg.model.weights_file)
    done = {s: load_stage_state(cfg, run_dir, s) for s in cfg.train.stages if stage_path(run_dir, s).exists()}
    _check_resume_checkpoint(cfg, run)
    run.write_config(cfg)
    seed_everything(cfg.seed)
    budget = [stop_after_epochs if stop_after_epochs is not None else -1]
    summary: dict[str, Any] = {}
    for idx, stage in enumerate(cfg.train.stages):
        path = stage_path(run_dir, stage)
        if stage in done:
            continue
        torch.manual_seed(cfg.seed * 100 + idx)  # fresh weights of a stage do not depend on a resume
        model = build_stage_model(cfg, stage, done).to(device)
        if not run_stage(cfg, stage, idx, model, train_set, run, device, budget, val_set):
            return {"stopped": True, "stage": stage}
        done[stage] = {k: v.cpu() for k, v in model.state_dict().items()}
        import io

        buf = io.BytesIO()
        torch.save(done[stage], buf)
        atomic_write_bytes(path, buf.getvalue())
        if isinstance(model, FCtLNet):
            summary[f"{stage}_gammas"] = model.gammas()
    summary.update(_val_scores(cfg, run_dir, val_set))
    summary["stages"] = list(cfg.train.stages)
    run.write_summary(summary, time.perf_counter() - t0, str(device))
    return summary


def _check_resume_checkpoint(cfg: Config, run: RunDir) -> None:
    """checkpoints/last.pt of a resumed run: a dict of stage, epoch, model and optimizer state that fits."""
    ckpt = run.load_checkpoint()  # weights_only; None when absent
    if ckpt is None:
        return
    path = run.checkpoint_path
    stage, epoch = ckpt.get("stage"), ckpt.get("epoch")
    most = stage_epochs(cfg, stage) if stage in cfg.train.stages else cfg.train.epochs_per_stage
    if stage not in cfg.train.stages or not isinstance(epoch, int) or not 0 <= epoch <= most:
        raise InputError(f"{path}: field 'stage' {stage!r} / 'epoch' {epoch!r} do not fit this run; expected a "
                         f"stage of {list(cfg.train.stages)} and an epoch in 0..{most}. "
                         "Delete it to restart the stage.")
    if not isinstance(ckpt.get("optimizer"), dict):
        raise InputError(f"{path}: field 'optimizer' missing; expected a checkpoint written by `tenfold train`")
    check_state(cfg, stage, ckpt.get("model"), path)


def _val_scores(cfg: Config, run_dir: Path, val: SegImages) -> dict[str, float]:
    """Validation mIoU of every stage (no TTA, as the code's periodic validation)."""
    out = {}
    for stage in cfg.train.stages:
        model = load_stage_model(cfg, run_dir, stage).eval()
        res = evaluate_images(lambda i: stage_predict(model, stage, val.image(i), cfg, tta=False), val.labels,
                              cfg.data.num_classes)
        out[f"val_miou_{stage}"] = res["miou"]
    return out
