"""Training of `harmonize` (Harmonizing output imbalance for semantic segmentation on extremely-imbalanced input
data, arXiv 2211.05295), spec section 3.

One run = one model, one loss. Fixed losses train `train.epochs` epochs (Adam, cosine decay). The harmonised
loss adds the adaptive selection of b (spec component 6), driven by an `EpochPlan`:
  bisection  rounds of L(b) warm-started from each other; after each round the validation OI updates the
             selector; then the final phase at b* (retrain from scratch, or continue from the best candidate)
  online     one run; b follows the validation OI each epoch and freezes for the last 20 %
  fixed      the compound loss at selector.fixed_fn_weight (ablation)
Every epoch writes metrics.jsonl and an atomic checkpoint (model, optimizer, plan, RNG); re-running on the same
directory resumes after the last finished epoch.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir
from tenfold.core.runtime import progress_bar, seed_everything, select_device
from tenfold.systems.harmonize.config import Config
from tenfold.systems.harmonize.data import SegmentationSet, augment, random_crops
from tenfold.systems.harmonize.imbalance import confusion_counts, signed_imbalance
from tenfold.systems.harmonize.loss import HarmonizedCompoundLoss, build_criterion
from tenfold.systems.harmonize.model import build_model, input_multiple
from tenfold.systems.harmonize.scoring import (checked_checkpoint, load_splits, load_state, predict_logits,
                                                 segmentation_metrics, validation_threshold)
from tenfold.systems.harmonize.selector import AdaptiveImbalanceSelector, OnlineImbalanceController, require_validation

log = logging.getLogger("tenfold.harmonize")


def validation_imbalance(model: nn.Module, val: SegmentationSet, device: torch.device, measure: str = "oi",
                         threshold: float = 0.5) -> dict[str, float]:
    """Hard counts at the inference threshold on validation -> signed imbalance, precision, recall (step 3)."""
    require_validation(val.split)
    logits = predict_logits(model, val.images, device, sizes=val.sizes)
    tp, fp, fn, _ = (float(c) for c in confusion_counts(logits, val.masks, threshold))
    return {"val_oi": signed_imbalance(tp, fp, fn, measure), "val_precision": tp / max(tp + fp, 1.0),
            "val_recall": tp / max(tp + fn, 1.0), "val_fp": fp, "val_fn": fn}


@dataclass
class EpochPlan:
    """Which b to train with, when a phase ends, what happens next. Plain state (checkpointable)."""

    kind: str  # "fixed" | "bisection" | "online"
    phase: str = "final"  # "select" (bisection rounds) | "final"
    phase_start: int = 0
    phase_epochs: int = 1
    fn_weight: float | None = None
    selector: dict[str, Any] | None = None
    online: dict[str, Any] | None = None
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    best_abs_oi: float = float("inf")
    finished: bool = False

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def make_plan(cfg: Config) -> EpochPlan:
    s, epochs = cfg.selector, cfg.train.epochs
    if cfg.loss.name != "harmonize":
        return EpochPlan("fixed", phase_epochs=epochs)
    if s.selector == "fixed":
        return EpochPlan("fixed", phase_epochs=epochs, fn_weight=s.fixed_fn_weight)
    if s.selector == "online":
        ctrl = OnlineImbalanceController(epochs, s.init, s.step_size, s.momentum, s.freeze_fraction, s.lo, s.hi)
        return EpochPlan("online", phase_epochs=epochs, fn_weight=ctrl.b, online=ctrl.state_dict())
    sel = AdaptiveImbalanceSelector(s.lo, s.hi, s.init, s.tolerance, s.max_rounds)
    return EpochPlan("bisection", phase="select", phase_epochs=s.warmup_epochs, fn_weight=sel.propose(),
                     selector=sel.state_dict())


def end_of_epoch(plan: EpochPlan, epoch: int, cfg: Config, model: nn.Module, val_metrics) -> str:
    """Advance the plan after epoch `epoch` (0-based). Returns "train", "reset" (retrain from scratch) or
    "load_best" (continue from the best candidate); `val_metrics()` computes the validation OI on demand."""
    done_in_phase = epoch + 1 - plan.phase_start
    record: dict[str, Any] = {}
    action = "train"
    if plan.kind == "online" and epoch + 1 < cfg.train.epochs:
        record = val_metrics()
        ctrl = OnlineImbalanceController.from_state(plan.online)
        plan.fn_weight = ctrl.update(epoch, record["val_oi"])
        plan.online = ctrl.state_dict()
    if plan.phase == "select" and done_in_phase >= plan.phase_epochs:
        record = val_metrics()
        sel = AdaptiveImbalanceSelector.from_state(plan.selector)
        sel.update(plan.fn_weight, record["val_oi"])
        if abs(record["val_oi"]) < plan.best_abs_oi:
            plan.best_abs_oi = abs(record["val_oi"])
            plan.best_state = copy.deepcopy(model.state_dict())
        plan.selector = sel.state_dict()
        log.info("selection round %d: b = %.4f, val OI = %+.3f", len(sel.history), plan.fn_weight, record["val_oi"])
        plan.phase_start = epoch + 1
        if sel.done:
            plan.phase, plan.fn_weight = "final", sel.best()[0]
            retrain = cfg.selector.final == "retrain"
            plan.phase_epochs = cfg.train.epochs if retrain else cfg.selector.final_epochs
            action = "reset" if retrain else "load_best"
        else:
            plan.fn_weight, plan.phase_epochs = sel.propose(), cfg.selector.round_epochs
    elif plan.phase == "final" and done_in_phase >= plan.phase_epochs:
        plan.finished = True
    return action


def learning_rate(cfg: Config, plan: EpochPlan, epoch: int) -> float:
    """Constant during selection rounds; cosine decay over the final phase (spec 3)."""
    if plan.phase == "select":
        return cfg.train.lr
    frac = (epoch - plan.phase_start) / max(plan.phase_epochs, 1)
    return cfg.train.lr * 0.5 * (1 + math.cos(math.pi * frac))


def build_training(cfg: Config, train_set: SegmentationSet, device: torch.device):
    """Model, criterion and optimizer of the config (model initialised from cfg.seed)."""
    torch.manual_seed(cfg.seed)
    m = cfg.model
    model = build_model(m.arch, m.widths, m.encoder, m.weights_file).to(device)
    lc = cfg.loss
    criterion = build_criterion(lc.name, train_set.foreground_ratio(), lc.wce_weight, lc.tversky_fp, lc.tversky_fn,
                                lc.ft_exponent, lc.combo_c, lc.combo_beta, lc.uf_lambda, lc.uf_delta, lc.uf_gamma,
                                lc.focal_alpha, lc.focal_gamma, lc.harmonize_lambda, lc.use_focal_ce, lc.smooth)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    return model, criterion, optimizer


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer, data: SegmentationSet,
                    cfg: Config, generator: torch.Generator, device: torch.device) -> dict[str, float]:
    """One pass over shuffled training batches; returns mean loss terms and the effective fg ratio seen."""
    model.train()
    order = torch.randperm(len(data), generator=generator)
    sums: dict[str, float] = {}
    fg = total = 0.0
    for i in range(0, len(data), cfg.train.batch_size):
        idx = order[i:i + cfg.train.batch_size]
        x, y = data.images[idx], data.masks[idx]  # (b, 1, H, W)
        ext = torch.tensor(data.sizes)[idx] if data.sizes else None  # (b, 2) each image's own (h, w)
        x, y = random_crops(x, y, cfg.data.train_crop, generator, ext)
        if cfg.train.use_augment:
            x, y = augment(x, y, generator)
        terms = criterion(model(x.to(device)), y.to(device))
        if not math.isfinite(float(terms["loss"].detach())):
            raise FloatingPointError(f"non-finite loss {float(terms['loss'])} at batch {i // cfg.train.batch_size}")
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
        fg, total = fg + float(y.sum()), total + y.numel()
    out = {k: v / len(data) for k, v in sums.items()}
    out["effective_fg_ratio"] = fg / max(total - fg, 1.0)  # pitfall 7: the ratio the loss actually saw
    return out


def _resume(run: RunDir, ckpt: dict[str, Any] | None, model, optimizer, generator) -> tuple[int, EpochPlan | None]:
    if ckpt is None:
        return 0, None
    where = f"{run.checkpoint_path}: field"
    load_state(model, ckpt["model"], f"{where} 'model'")
    load_state(optimizer, ckpt["optimizer"], f"{where} 'optimizer'")
    try:
        generator.set_state(ckpt["generator"])
    except (RuntimeError, TypeError) as err:
        raise InputError(f"{where} 'generator' is not a torch RNG state ({err})") from None
    try:
        plan = EpochPlan(**ckpt["plan"])
    except TypeError as err:  # a key EpochPlan does not have
        raise InputError(f"{where} 'plan' is not a harmonize epoch plan ({err})") from None
    run.truncate_metrics(ckpt["epoch"])
    log.info("resuming from epoch %d", ckpt["epoch"])
    return ckpt["epoch"], plan


def fit(cfg: Config, run: RunDir, splits: dict[str, SegmentationSet], device: torch.device,
        ckpt: dict[str, Any] | None = None) -> tuple[nn.Module, EpochPlan]:
    """The epoch loop: train, log, checkpoint, advance the plan; resumes from `ckpt` (`checked_checkpoint`)."""
    generator = seed_everything(cfg.seed)
    model, criterion, optimizer = build_training(cfg, splits["train"], device)
    start, plan = _resume(run, ckpt, model, optimizer, generator)
    plan = plan or make_plan(cfg)
    val_cache: dict[str, Any] = {}

    def val_metrics() -> dict[str, float]:
        if "m" not in val_cache:
            val_cache["m"] = validation_imbalance(model, splits["val"], device, cfg.selector.measure,
                                                  cfg.train.threshold)
        return val_cache["m"]

    bar = progress_bar(plan.phase_epochs, f"harmonize {cfg.loss.name}")
    bar.update(start)
    epoch = start
    while not plan.finished:
        val_cache.clear()
        if isinstance(criterion, HarmonizedCompoundLoss):
            criterion.set_fn_weight(plan.fn_weight)
        lr = learning_rate(cfg, plan, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        b = plan.fn_weight
        record = {"step": epoch + 1, "phase": plan.phase, "lr": lr, "fn_weight": b,
                  **train_one_epoch(model, criterion, optimizer, splits["train"], cfg, generator, device)}
        action = end_of_epoch(plan, epoch, cfg, model, val_metrics)
        if plan.kind == "fixed" and ((epoch + 1) % cfg.train.val_every == 0 or plan.finished):
            val_metrics()
        record.update(val_cache.get("m", {}))
        if action == "reset":
            model, criterion, optimizer = build_training(cfg, splits["train"], device)
        elif action == "load_best":
            model.load_state_dict(plan.best_state)
        if action != "train":
            bar.reset(plan.phase_epochs)
        run.log_metrics(record)
        epoch += 1
        run.save_checkpoint({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "generator": generator.get_state(), "plan": plan.state_dict()})
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.4f}", b=f"{b:.3f}" if b is not None else "-")
    bar.close()
    return model, plan


def train(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Train one model with one loss; write config.json, metrics.jsonl, checkpoints and summary.json."""
    t0 = time.perf_counter()
    run = RunDir(run_dir)
    device = select_device(cfg.device)
    old_threads = torch.get_num_threads()
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    try:
        # Issue 12: every input is validated before the first write (config.json): the weights file, all three
        # splits (each file decoded whole, sizes checked against the model), the checkpoint to resume from.
        m = cfg.model
        splits = load_splits(cfg, input_multiple(build_model(m.arch, m.widths, m.encoder, m.weights_file)))
        ckpt = checked_checkpoint(run)
        run.write_config(cfg)
        model, plan = fit(cfg, run, splits, device, ckpt)
        metrics = segmentation_metrics(predict_logits(model, splits["test"].images, device, sizes=splits["test"].sizes),
                                       splits["test"].masks,
                                       cfg.train.threshold)
        # Issue 18: the validation-chosen threshold, which `tenfold predict harmonize` applies (reported beside
        # the paper's fixed t = 0.5; never chosen on test).
        val_t = validation_threshold(predict_logits(model, splits["val"].images, device, sizes=splits["val"].sizes),
                                     splits["val"].masks)
    finally:
        torch.set_num_threads(old_threads)
    metrics.pop("pr_curve", None)
    metrics.update({"loss": cfg.loss.name, "fn_weight": plan.fn_weight,
                    "epochs_trained": len(run.read_metrics()),
                    "train_fg_ratio": splits["train"].foreground_ratio(),
                    "test_fg_ratio": splits["test"].foreground_ratio(), "val_logit_threshold": val_t})
    if plan.selector is not None:
        metrics["selection_history"] = [list(h) for h in plan.selector["history"]]
    run.write_summary(metrics, time.perf_counter() - t0, str(device))
    log.info("harmonize %s: IoU %.4f F1 %.4f OI %+.3f (b = %s)", cfg.loss.name, metrics["iou"], metrics["f1"],
             metrics["oi"], plan.fn_weight)
    return metrics
