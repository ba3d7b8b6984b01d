"""Export and explanation of a trained `rulenet` (spec component 10).

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693
("better interpretability"). Design choice (specs/rulenet.md component 10, pitfall 1): the exported text IS the
model's decision function: thresholds de-standardised to original units and printed with `repr` (a float64
round trip), disabled rules (w_r < 0.5, or every atom gated off) commented out with the reason, disabled
atoms (g_a < 0.5) omitted; comments carry the
change from each expert threshold and per-rule support / precision on validation data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from tenfold.systems.rulenet.model import RuleNet
from tenfold.systems.rulenet.rules import Rule, RuleSet, atom_hard, compute_features


def learned_ruleset(model: RuleNet) -> tuple[RuleSet, list[dict[str, Any]]]:
    """The hard rules the model runs: (RuleSet of enabled rules and atoms, per-rule report dicts)."""
    rn = model.rules
    rs = rn.ruleset
    th = rn.thresholds_original().numpy()
    gates = rn.gates.detach().numpy()
    weights = rn.rule_weights.detach().numpy()
    rules, report = [], []
    a = 0
    for r, rule in enumerate(rs.rules):
        atoms, changes, dropped = [], [], []
        for atom in rule.atoms:
            new = atom
            if atom.kind != "cat":
                lo = float(th[a, 0])
                hi = float(th[a, 1]) if atom.kind == "interval" else 0.0
                new = replace(atom, lo=lo, hi=hi)
                changes.append(f"{atom.feature}: {atom.lo:g} -> {lo:.6g} ({lo - atom.lo:+.4g})")
            if gates[a] >= 0.5:
                atoms.append(new)
            else:
                dropped.append(new.text())
            a += 1
        learned = Rule(rule.label, tuple(atoms), 1.0, rule.line)
        enabled = weights[r] >= 0.5 and bool(atoms)
        # Issue 20: a rule with every atom gated off is disabled too, and says so (it is never silently dropped).
        why = "" if enabled else ("all atoms gated off (g < 0.5)" if not atoms else f"rule weight {weights[r]:.3f} < 0.5")
        report.append({"rule": learned, "enabled": enabled, "weight": float(weights[r]), "changes": changes,
                       "dropped_atoms": dropped, "expert": rule, "disabled_reason": why})
        if enabled:
            rules.append(learned)
    return RuleSet(tuple(rules), rs.derived, rs.default), report


def rule_stats(rule: Rule, rs: RuleSet, raw: dict[str, np.ndarray], labels: np.ndarray,
               classes: list[str]) -> tuple[int, float]:
    """Support (items where the rule fires) and precision (fraction of them in the rule's class)."""
    env = compute_features(rs, raw)
    fires = np.ones(len(labels), dtype=bool)
    for atom in rule.atoms:
        fires &= atom_hard(atom, env[atom.feature])
    n = int(fires.sum())
    prec = float(np.mean(labels[fires] == classes.index(rule.label))) if n else float("nan")
    return n, prec


def export_rules(model: RuleNet, raw_val: dict[str, np.ndarray] | None = None,
                 val_labels: np.ndarray | None = None) -> str:
    """The learned rule set as text in the rule grammar (re-parses to the same hard decision function)."""
    rs, report = learned_ruleset(model)
    lines = ["# rulenet learned rules (thresholds in original units; comments: change from the expert value,",
             "# support and precision on validation data)"]
    lines += [f"define {n} = {e.text()}" for n, e in rs.derived]
    lines.append(f"default : {rs.default}")
    full_rs = model.rules.ruleset
    for item in report:
        rule = item["rule"]
        stats = ""
        if raw_val is not None and val_labels is not None and rule.atoms:
            n, prec = rule_stats(rule, full_rs, raw_val, val_labels, full_rs.classes)
            stats = f"; support {n}, precision {prec:.3f}"
        note = "; ".join(item["changes"]) + stats
        if item["dropped_atoms"]:
            note += "; disabled atoms: " + ", ".join(item["dropped_atoms"])
        if item["enabled"]:
            lines.append(f"{rule.text()}  # {note}")
        else:
            lines.append(f"# disabled ({item['disabled_reason']}): "
                         f"{rule.text() if rule.atoms else item['expert'].text()}  # {note}")
    return "\n".join(lines) + "\n"


def raw_features(model: RuleNet, k_std: torch.Tensor, static: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Key features in original units (float64) plus the static attributes, as the rules' input columns."""
    raw = {k: v.numpy() for k, v in model.raw_from_k(k_std).items()}
    return {**raw, **{k: np.asarray(v) for k, v in static.items()}}


def explain_item(model: RuleNet, k_std: torch.Tensor, pi: torch.Tensor, static: dict[str, Any],
                 num_obs: int = 3) -> dict[str, Any]:
    """For one item (k_std (d,), pi (M,)): the rule that fired (or the default class), the most / least
    trusted observations by pi, and the disabled rules with the reason."""
    rs, report = learned_ruleset(model)
    raw = raw_features(model, k_std[None], {k: np.asarray([v]) for k, v in static.items()})
    env = compute_features(rs, raw)
    fired = None
    for rule in rs.rules:
        if all(bool(atom_hard(a, env[a.feature])[0]) for a in rule.atoms):
            fired = rule
            break
    order = np.argsort(-pi.numpy(), kind="stable") if pi.numel() else np.zeros(0, int)
    valid = [int(i) for i in order if pi[i] > 0] if pi.numel() else []
    return {"prediction": fired.label if fired else rs.default,
            "rule": fired.text() if fired else f"default : {rs.default} (no rule fired)",
            "key_features": {k: float(v[0]) for k, v in raw.items() if k in model.channels},
            "most_trusted": [(i, float(pi[i])) for i in valid[:num_obs]],
            "least_trusted": [(i, float(pi[i])) for i in valid[::-1][:num_obs]],
            # the expert rules the model does not run, and why (weight < 0.5, or every atom gated off)
            "disabled_rules": [{"rule": it["expert"].text(), "reason": it["disabled_reason"]}
                               for it in report if not it["enabled"]]}
