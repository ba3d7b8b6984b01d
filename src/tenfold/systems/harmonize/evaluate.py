"""Evaluation of `harmonize` (Harmonizing output imbalance for semantic segmentation on extremely-imbalanced input
data, arXiv 2211.05295), spec section 2 component 9.

Dataset-level (micro) hard counts at t = 0.5 -> precision, recall, F1, foreground IoU, OI, area ratio R;
image-level detection rate (a defect image with >= 1 predicted pixel) and empty-image false-alarm rate;
the oracle-best-threshold F1 over a sweep of thresholds on the evaluated set, reported ONLY to measure the
training-inference consistency gap F1(oracle) - F1(0.5) (never used to pick a threshold: pitfall 3).
The measures live in scoring.py (`segmentation_metrics`), shared with train.py; this module reads a finished
run and writes eval.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.harmonize.config import Config
from tenfold.systems.harmonize.scoring import (checked_checkpoint, load_splits, load_state, predict_logits,
                                               segmentation_metrics)


def evaluate(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Rebuild the model from config.json + the last checkpoint and report the test metrics (eval.json)."""
    from tenfold.core.errors import InputError
    from tenfold.core.runtime import select_device
    from tenfold.systems.harmonize.model import build_model, input_multiple

    run = RunDir(run_dir)
    ckpt = checked_checkpoint(run)  # weights_only load: a crafted pickle is refused, never run
    if ckpt is None or not ckpt["plan"]["finished"]:
        raise InputError(f"{run.checkpoint_path}: no finished training run; run `tenfold train harmonize` first")
    device = select_device(cfg.device)
    model = build_model(cfg.model.arch, cfg.model.widths, cfg.model.encoder).to(device)
    load_state(model, ckpt["model"], f"{run.checkpoint_path}: field 'model'")
    test = load_splits(cfg, input_multiple(model))["test"]
    metrics = segmentation_metrics(predict_logits(model, test.images, device, sizes=test.sizes), test.masks, cfg.train.threshold)
    metrics.pop("pr_curve")
    metrics["fn_weight"] = ckpt["plan"]["fn_weight"]
    atomic_write_text(Path(run_dir) / "eval.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
