"""Metrics and evaluation of `rulenet` (spec component 12).

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693
(claims: comparable accuracy to a deep ensemble, higher generalisation stability, better interpretability).
Metric definitions are design choices of specs/rulenet.md section 6 / component 12:
    F1 and PR-AUC (average precision) of the failure class                -> pipeline: f1_positive, average_precision
    stability: std and worst case of F1 over the shifted test sets        -> stability
    churn: fraction of items whose prediction differs between two seeds   -> churn
    rule-set size (#rules, #atoms); threshold error against the generator -> pipeline: rule_report
Every reported metric uses the hard rules that are printed (pitfall 1). What train.py also needs (data
preparation, `predict`, the per-split and summary metrics) lives in pipeline.py; train.py and evaluate.py never
import each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.rulenet.config import Config
from tenfold.systems.rulenet.pipeline import (load_model_state, prepare, prepare_run, run_metrics, shifted_sets,
                                              split_metrics)


def churn(pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    """Fraction of items whose predicted class differs between two retrained models."""
    return float(np.mean(np.asarray(pred_a) != np.asarray(pred_b)))


def stability(f1_iid: float, f1_shifted: list[float]) -> dict[str, float]:
    """std of F1 over the shifted sets and the (iid - worst shifted) drop."""
    return {"f1_shift_std": float(np.std(f1_shifted)), "f1_worst_drop": float(f1_iid - min(f1_shifted))}


def evaluate(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Rebuild data and model from config.json and the final checkpoint; report test metrics (and, for generated
    data, F1 on each shifted test set)."""
    run = RunDir(run_dir)
    ckpt = run.load_checkpoint()
    if ckpt is None:
        raise InputError(f"{run.checkpoint_path}: not found; expected the final checkpoint of a run trained to the end "
                         f"by `tenfold train`")
    if ckpt.get("kind") != "final":
        raise InputError(f"{run.checkpoint_path}: no final checkpoint (field 'kind' is not 'final'); expected a run "
                         f"trained to the end by `tenfold train`")
    ctx = prepare_run(cfg)
    model = ctx["model"]
    load_model_state(model, ckpt.get("model"), run.checkpoint_path)
    metrics = run_metrics(cfg, ctx, model)
    if cfg.data.observations is None:
        for name, data in shifted_sets(cfg).items():
            p = prepare(data, *ctx["chan"], ctx["ruleset"], cfg)
            metrics[f"f1[{name}]"] = split_metrics(model, p, cfg)["f1"]
    atomic_write_text(Path(run_dir) / "eval.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(Path(run_dir) / "learned_rules.txt", metrics["learned_rules"])
    return metrics

