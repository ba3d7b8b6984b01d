"""Evaluation of `harmonize` (Harmonizing output imbalance for semantic segmentation on extremely-imbalanced input
data, arXiv 2211.05295), spec section 2 component 9.

Dataset-level (micro) hard counts at t = 0.5 -> precision, recall, F1, foreground IoU, OI, area ratio R;
image-level detection rate (a defect image with >= 1 predicted pixel) and empty-image false-alarm rate;
the oracle-best-threshold F1 over a sweep of thresholds on the evaluated set, reported ONLY to measure the
training-inference consistency gap F1(oracle) - F1(0.5) (never used to pick a threshold: pitfall 3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.harmonize.config import Config
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
    z = logits.flatten().clamp(SWEEP_LOGITS[0], SWEEP_LOGITS[-1])
    g = masks.flatten() > 0.5
    # bucket j holds SWEEP[j-1] < z <= SWEEP[j]; a pixel is predicted at threshold SWEEP[j] when z >= SWEEP[j].
    idx = torch.bucketize(z, SWEEP_LOGITS, right=False)  # (N,) in [0, bins-1]
    bins = len(SWEEP_LOGITS)
    fg_hist = torch.bincount(idx[g], minlength=bins).double()
    bg_hist = torch.bincount(idx[~g], minlength=bins).double()
    # pixels with z >= SWEEP[j]: bucket index >= j for z > SWEEP[j-1]... plus exact equality handled by bucketize
    tp = fg_hist.flip(0).cumsum(0).flip(0)  # (bins,) predicted fg among true fg at threshold j
    fp = bg_hist.flip(0).cumsum(0).flip(0)
    fn = float(g.sum()) - tp
    return {"logit_threshold": SWEEP_LOGITS.clone(), "tp": tp, "fp": fp, "fn": fn}


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
    j = int(torch.argmax(f1))
    out["oracle_f1"] = max(float(f1[j]), out["f1"])  # the sweep grid may miss t = 0.5 itself
    out["oracle_threshold"] = float(torch.sigmoid(sweep["logit_threshold"][j]))
    out["f1_gap"] = out["oracle_f1"] - out["f1"]
    pred = sweep["tp"] + sweep["fp"]
    out["pr_curve"] = {"precision": torch.where(pred > 0, sweep["tp"] / pred.clamp_min(1), torch.ones_like(pred)),
                       "recall": sweep["tp"] / max(tp + fn, 1.0)}
    return out


def evaluate(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Rebuild the model from config.json + the last checkpoint and report the test metrics (eval.json)."""
    from tenfold.core.errors import InputError
    from tenfold.core.runtime import select_device
    from tenfold.systems.harmonize.model import build_model
    from tenfold.systems.harmonize.train import load_splits, predict_logits

    run = RunDir(run_dir)
    ckpt = run.load_checkpoint()
    if ckpt is None or not ckpt["plan"]["finished"]:
        raise InputError(f"{run.checkpoint_path}: no finished training run; run `tenfold train harmonize` first")
    device = select_device(cfg.device)
    model = build_model(cfg.model.arch, cfg.model.widths, cfg.model.encoder).to(device)
    model.load_state_dict(ckpt["model"])
    test = load_splits(cfg)["test"]
    metrics = segmentation_metrics(predict_logits(model, test.images, device), test.masks, cfg.train.threshold)
    metrics.pop("pr_curve")
    metrics["fn_weight"] = ckpt["plan"]["fn_weight"]
    atomic_write_text(Path(run_dir) / "eval.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
