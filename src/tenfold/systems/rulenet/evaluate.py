"""Metrics and evaluation of `rulenet` (spec component 12).

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693
(claims: comparable accuracy to a deep ensemble, higher generalisation stability, better interpretability).
Metric definitions are design choices of specs/rulenet.md section 6 / component 12:
    F1 and PR-AUC (average precision) of the failure class                -> f1_positive, average_precision
    stability: std and worst case of F1 over the shifted test sets        -> stability
    churn: fraction of items whose prediction differs between two seeds   -> churn
    rule-set size (#rules, #atoms); threshold error against the generator -> rule_report
Every reported metric uses the hard rules that are printed (pitfall 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.rulenet.config import Config
from tenfold.systems.rulenet.export import export_rules, learned_ruleset, raw_features
from tenfold.systems.rulenet.model import RuleNet
from tenfold.systems.rulenet.rules import RuleSet, predict_hard
from tenfold.systems.rulenet.train import Prepared, f1_positive, predict

# Which exported atom corresponds to which true generator threshold (noisy expert rules of spec 4.1), by
# (rule index, atom index within the rule).
TRUE_BY_ATOM = {(0, 0): 8.6, (0, 1): 1380.0, (1, 0): 3500.0, (2, 0): 9000.0, (3, 0): 11000.0, (4, 0): 12000.0,
                (5, 0): 13000.0}


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """PR-AUC as average precision: sum_n (R_n - R_{n-1}) P_n over descending score thresholds (ties grouped)."""
    positive = positive.astype(bool)
    if positive.sum() == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], positive[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    precision = tp[last] / (tp[last] + fp[last])
    recall = tp[last] / positive.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def churn(pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    """Fraction of items whose predicted class differs between two retrained models."""
    return float(np.mean(np.asarray(pred_a) != np.asarray(pred_b)))


def stability(f1_iid: float, f1_shifted: list[float]) -> dict[str, float]:
    """std of F1 over the shifted sets and the (iid - worst shifted) drop."""
    return {"f1_shift_std": float(np.std(f1_shifted)), "f1_worst_drop": float(f1_iid - min(f1_shifted))}


def expert_rules_f1(rs: RuleSet, p: Prepared, chan: tuple[torch.Tensor, torch.Tensor], pooling: str = "k_mean") -> float:
    """F1 of the given rules, unlearned, on naive pooled features (mean by default) of the split."""
    mean, std = chan
    k = (mean + std * p.tensors[pooling].double()).numpy()
    raw = {c: k[:, i] for i, c in enumerate(p.data.channels)} | {k2: v for k2, v in p.data.static.items()}
    pred = predict_hard(rs, raw)
    return f1_positive(pred, p.tensors["labels"].numpy())


def rule_report(model: RuleNet, generated: bool) -> dict[str, Any]:
    """Rule / atom counts, learned vs expert thresholds (original units), and the error vs the true ones."""
    rs, report = learned_ruleset(model)
    out: dict[str, Any] = {"num_rules": len(rs.rules), "num_atoms": sum(len(r.atoms) for r in rs.rules),
                           "num_expert_rules": len(model.rules.ruleset.rules),
                           "num_expert_atoms": len(model.rules.ruleset.atoms),
                           "disabled_rules": [it["expert"].text() for it in report if not it["enabled"]]}
    th = model.rules.thresholds_original().numpy()
    rows, a = [], 0
    for r, rule in enumerate(model.rules.ruleset.rules):
        for j, atom in enumerate(rule.atoms):
            if atom.kind != "cat":
                row = {"rule": r, "feature": atom.feature, "expert": atom.lo, "learned": float(th[a, 0])}
                if generated and (r, j) in TRUE_BY_ATOM:
                    true = TRUE_BY_ATOM[(r, j)]
                    row["true"] = true
                    row["rel_error"] = abs(row["learned"] - true) / abs(true)
                    row["expert_rel_error"] = abs(atom.lo - true) / abs(true)
                rows.append(row)
            a += 1
    out["thresholds"] = rows
    if generated and len(model.rules.ruleset.rules) >= 6:
        errs = [r["rel_error"] for r in rows if "rel_error" in r]
        out["max_threshold_rel_error"] = float(max(errs))
        out["num_thresholds_within_5pct"] = int(sum(e <= 0.05 for e in errs))
        out["num_true_thresholds"] = len(errs)
    return out


def split_metrics(model: RuleNet, p: Prepared, cfg: Config) -> dict[str, Any]:
    pred = predict(model, p, cfg)
    labels = p.tensors["labels"].numpy()
    y_hat = pred["pred"].numpy()
    hard = pred.get("hard_pred", pred["pred"]).numpy()
    return {"f1": f1_positive(y_hat, labels), "pr_auc": average_precision(pred["score"].numpy(), labels == 0),
            "accuracy": float(np.mean(y_hat == labels)),
            "hard_soft_agreement": float(np.mean(hard == pred["soft_pred"].numpy())), "_pred": y_hat}


def run_metrics(cfg: Config, ctx: dict, model: RuleNet) -> dict[str, Any]:
    """summary.json content: test F1 of the learned hard rules, the given rules' F1, the exported rules."""
    prepared = ctx["prepared"]
    test = split_metrics(model, prepared["test"], cfg)
    test.pop("_pred")
    val_pred = predict(model, prepared["val"], cfg)
    raw_val = raw_features(model, val_pred["k"], prepared["val"].data.static)
    generated = cfg.data.observations is None
    out = {**test,
           "expert_rules_f1": expert_rules_f1(ctx["ruleset"], prepared["test"], ctx["chan"], "k_mean"),
           "expert_rules_median_f1": expert_rules_f1(ctx["ruleset"], prepared["test"], ctx["chan"], "k_median"),
           "val_f1": f1_positive(val_pred["pred"].numpy(), prepared["val"].tensors["labels"].numpy()),
           "learned_rules": export_rules(model, raw_val, prepared["val"].tensors["labels"].numpy()),
           **rule_report(model, generated)}
    return out


def evaluate(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Rebuild data and model from config.json and the final checkpoint; report test metrics (and, for generated
    data, F1 on each shifted test set)."""
    from tenfold.systems.rulenet.train import prepare, prepare_run, shifted_sets

    run = RunDir(run_dir)
    ckpt = run.load_checkpoint()
    if ckpt is None or ckpt.get("kind") != "final":
        raise FileNotFoundError(f"{run.checkpoint_path}: no final checkpoint; run `tenfold train` to the end first")
    ctx = prepare_run(cfg)
    model = ctx["model"]
    model.load_state_dict(ckpt["model"])
    metrics = run_metrics(cfg, ctx, model)
    if cfg.data.observations is None:
        for name, data in shifted_sets(cfg).items():
            p = prepare(data, *ctx["chan"], ctx["ruleset"], cfg)
            metrics[f"f1[{name}]"] = split_metrics(model, p, cfg)["f1"]
    atomic_write_text(Path(run_dir) / "eval.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(Path(run_dir) / "learned_rules.txt", metrics["learned_rules"])
    return metrics

