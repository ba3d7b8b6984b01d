"""Shared scoring of `harmonize` (Harmonizing output imbalance for semantic segmentation on extremely-imbalanced
input data, arXiv 2211.05295), used by both training and evaluation (spec section 2 component 9, section 4).

  load_splits            train / val / test sets: the user's folder (spec 4.2) or the generator (spec 4.1)
  predict_logits         batched eval-mode logits on the CPU
  segmentation_metrics   all component-9 metrics of a set (prf, threshold_sweep, SWEEP_LOGITS)
  checked_checkpoint     a run's checkpoint, its structure checked (InputError otherwise); load_state
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import math

import torch
from torch import nn

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir
from tenfold.systems.harmonize.config import Config
from tenfold.systems.harmonize.data import SegmentationSet, load_pairs_folder, make_split
from tenfold.systems.harmonize.imbalance import area_ratio, confusion_counts, output_imbalance

SWEEP_LOGITS = torch.linspace(-16.0, 16.0, 641)  # threshold sweep in logit space (resolves tiny CE posteriors)


def prf(tp: float, fp: float, fn: float) -> dict[str, float]:
    """Precision, recall, F1, IoU from counts; 0 where a denominator is 0 (no prediction / no target)."""
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0
    iou = tp / (tp + fp + fn) if tp + fp + fn > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "iou": iou}


def threshold_sweep(logits: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Hard counts at every threshold of `SWEEP_LOGITS` with one histogram per class: O(N + bins)."""
    z = logits.flatten()
    g = masks.flatten() > 0.5
    # idx = number of grid values <= z, in [0, bins]: a pixel is predicted at threshold SWEEP[j] iff idx >= j + 1.
    idx = torch.bucketize(z, SWEEP_LOGITS, right=True)  # (N,)
    bins = len(SWEEP_LOGITS)
    fg_hist = torch.bincount(idx[g], minlength=bins + 1).double()  # (bins + 1,)
    bg_hist = torch.bincount(idx[~g], minlength=bins + 1).double()
    tp = fg_hist.flip(0).cumsum(0).flip(0)[1:]  # (bins,) true fg with z >= SWEEP[j]
    fp = bg_hist.flip(0).cumsum(0).flip(0)[1:]
    fn = float(g.sum()) - tp
    return {"logit_threshold": SWEEP_LOGITS.clone(), "tp": tp, "fp": fp, "fn": fn}


def validation_threshold(logits: torch.Tensor, masks: torch.Tensor) -> float:
    """The logit threshold of `SWEEP_LOGITS` with the highest F1 on the given (validation) set.

    Issue 18 baseline "CE + threshold tuned on validation": chosen on validation only, then applied to test
    (`metrics_at_logit`). Design choice: ties go to the highest threshold, as for the oracle F1; a set where no
    threshold finds a foreground pixel (F1 0 everywhere) gets the top of the grid (predicts nothing).
    """
    sweep = threshold_sweep(logits, masks)
    denom = 2 * sweep["tp"] + sweep["fp"] + sweep["fn"]
    f1 = torch.where(denom > 0, 2 * sweep["tp"] / denom.clamp_min(1), torch.zeros_like(denom))
    return float(SWEEP_LOGITS[int(torch.nonzero(f1 == f1.max()).max())])


def metrics_at_logit(logits: torch.Tensor, masks: torch.Tensor, logit_threshold: float) -> dict[str, float]:
    """Precision, recall, F1, IoU, OI of the hard prediction z >= logit_threshold (dataset-level counts)."""
    pred = logits.flatten() >= logit_threshold
    g = masks.flatten() > 0.5
    tp, fp, fn = float((pred & g).sum()), float((pred & ~g).sum()), float((~pred & g).sum())
    return {**prf(tp, fp, fn), "oi": output_imbalance(fp, fn), "logit_threshold": float(logit_threshold)}


def segmentation_metrics(logits: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5) -> dict[str, Any]:
    """All component-9 metrics of a set: logits and masks (N, 1, H, W)."""
    tp, fp, fn, _ = (float(c) for c in confusion_counts(logits, masks, threshold))
    out: dict[str, Any] = prf(tp, fp, fn)
    out.update({"oi": output_imbalance(fp, fn), "area_ratio": area_ratio(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn})
    pred_any = (torch.sigmoid(logits) >= threshold).flatten(1).any(1)  # (N,)
    has_fg = (masks > 0.5).flatten(1).any(1)  # (N,)
    out["detection_rate"] = float(pred_any[has_fg].float().mean()) if has_fg.any() else float("nan")
    out["empty_false_alarm_rate"] = float(pred_any[~has_fg].float().mean()) if (~has_fg).any() else float("nan")
    sweep = threshold_sweep(logits, masks)
    denom = 2 * sweep["tp"] + sweep["fp"] + sweep["fn"]
    f1 = torch.where(denom > 0, 2 * sweep["tp"] / denom.clamp_min(1), torch.zeros_like(denom))
    # Design choice: ties go to the highest threshold (the most conservative operating point on a plateau).
    j = int(torch.nonzero(f1 == f1.max()).max())
    out["oracle_f1"] = max(float(f1[j]), out["f1"])  # the sweep grid may miss t = 0.5 itself
    out["oracle_threshold"] = float(torch.sigmoid(sweep["logit_threshold"][j]))
    out["f1_gap"] = out["oracle_f1"] - out["f1"]
    pred = sweep["tp"] + sweep["fp"]
    out["pr_curve"] = {"precision": torch.where(pred > 0, sweep["tp"] / pred.clamp_min(1), torch.ones_like(pred)),
                       "recall": sweep["tp"] / max(tp + fn, 1.0)}
    return out


def load_splits(cfg: Config, multiple: int = 1) -> dict[str, SegmentationSet]:
    """train / val / test: the user's folder (spec 4.2) or the generator with disjoint seeds (spec 4.1).

    Every split is read (and every file decoded) before anything is returned, so a caller that validates with
    this before its first write leaves no half-written run. `multiple`: the model's down-sampling factor
    (`model.input_multiple`); image sides and the training crop must be multiples of it.
    """
    d = cfg.data
    if d.train_crop and d.train_crop % multiple:
        raise InputError(f"data.train_crop {d.train_crop} must be a multiple of {multiple} (the model's "
                         "down-sampling factor)")
    if d.root:
        import dataclasses

        root = Path(d.root)
        splits = {s: dataclasses.replace(load_pairs_folder(root / s, multiple, d.train_crop if s == "train" else 0),
                                         split=s) for s in ("train", "val", "test")}
        if splits["train"].sizes and not d.train_crop:
            raise InputError(f"{root / 'train' / 'images'}: images of different sizes; set data.train_crop (a "
                             f"multiple of {multiple}, at most the smallest side) to train on crops")
        return splits
    if d.image_size % multiple:
        raise InputError(f"data.image_size {d.image_size} must be a multiple of {multiple} (the model's "
                         "down-sampling factor)")
    nums = {"train": d.num_train, "val": d.num_val, "test": d.num_test}
    return {s: make_split(s, n, d.image_size, (d.crack_len_min, d.crack_len_max), d.p_defect, cfg.seed,
                         (d.contrast_min, d.contrast_max), d.noise_std) for s, n in nums.items()}


_PLAN_KEYS = {"kind", "phase", "phase_start", "phase_epochs", "fn_weight", "finished"}  # train.EpochPlan
_CHECKPOINT_KEYS = {"epoch": int, "model": dict, "optimizer": dict, "generator": torch.Tensor, "plan": dict}


def checked_checkpoint(run: RunDir) -> dict[str, Any] | None:
    """The run's checkpoint (None when there is none), refused with InputError unless it has the training state
    `fit` writes: {epoch, model, optimizer, generator, plan}. Read with weights_only (core.runs.load_tensors)."""
    ckpt = run.load_checkpoint()
    if ckpt is None:
        return None
    for key, kind in _CHECKPOINT_KEYS.items():
        if not isinstance(ckpt.get(key), kind):
            raise InputError(f"{run.checkpoint_path}: field {key!r} missing or not a {kind.__name__}; expected a "
                             "checkpoint written by `tenfold train harmonize`")
    if not _PLAN_KEYS <= set(ckpt["plan"]) or not all(isinstance(k, str) for k in ckpt["plan"]):
        raise InputError(f"{run.checkpoint_path}: field 'plan' is not a harmonize epoch plan (keys "
                         f"{[str(k) for k in ckpt['plan']][:8]}); expected a checkpoint written by `tenfold train harmonize`")
    return ckpt


def load_state(module: Any, state: Any, where: str) -> None:
    """`module.load_state_dict(state)`, with a mismatch (another model, a damaged file) as InputError."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        text = str(err).strip()
        raise InputError(f"{where} does not fit the model of config.json ({type(err).__name__}: "
                         f"{text.splitlines()[-1][:300] if text else ''}); use a new --out directory") from None


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 16,
                   sizes: tuple[tuple[int, int], ...] = ()) -> torch.Tensor:
    """(N, 1, H, W) logits on the CPU, in eval mode.

    `sizes` (mixed-size folders, `SegmentationSet.sizes`): each image runs alone at its own (h, w) and the padding
    gets logit -inf, so it is never predicted foreground and adds nothing to TP / FP / FN (masks are 0 there).
    """
    was_training = model.training
    model.eval()
    if sizes:
        out = torch.full(images.shape, -math.inf)
        for i, (h, w) in enumerate(sizes):
            out[i:i + 1, :, :h, :w] = model(images[i:i + 1, :, :h, :w].to(device)).float().cpu()
    else:
        out = torch.cat([model(images[i:i + batch_size].to(device)).float().cpu()
                         for i in range(0, len(images), batch_size)])
    model.train(was_training)
    return out
