"""Data pipeline, inference and metrics of `rulenet` (arXiv 2211.04693), shared by train.py and evaluate.py.

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning".
train.py and evaluate.py never import each other; what both need lives here:
    rules, splits, shifted test sets, standardisation, graph tensors       -> load_splits, shifted_sets, prepare
    deterministic data + initialised model of a run                        -> prepare_run, build_model, init_seed
    hard-rule inference (pitfall 1: reported metrics use the printed rules) -> predict
    F1 and PR-AUC of the failure class, per-split and summary.json metrics -> f1_positive, average_precision,
                                                                              split_metrics, run_metrics
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.systems.rulenet import data as D
from tenfold.systems.rulenet.config import Config
from tenfold.systems.rulenet.export import export_rules, learned_ruleset, raw_features
from tenfold.systems.rulenet.graph import build_observation_graph, knn_rows_graph, row_normalise
from tenfold.systems.rulenet.model import RuleNet, feature_stats, mean_pool, median_pool
from tenfold.systems.rulenet.rules import (RuleSet, atom_hard, compute_features, parse_rules, predict_hard,
                                          read_rules)


# ---------------------------------------------------------------------------------------------- data

@dataclass
class Prepared:
    """Model-ready tensors of one split: obs (N, M, d) standardised, quality (N, M, q), mask (N, M),
    adj (N, M, M) row-normalised, cat (N, A) category-atom values, labels (N,), pooled keys (N, d)."""

    data: D.ItemData
    tensors: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.data)


def load_rules(cfg: Config) -> RuleSet:
    if cfg.data.rules:
        return read_rules(cfg.data.rules)
    # Design choice: "noisy_spurious" adds the spec's optional spurious atom `& torque > 30` to the HDF rule
    # (exercises learned gates).
    text = {"noisy": D.NOISY_EXPERT_RULES, "true": D.TRUE_RULES,
            "noisy_spurious": D.NOISY_EXPERT_RULES.replace("rpm < 1300", "rpm < 1300 & torque > 30")}
    return parse_rules(text[cfg.data.expert_rules], source=f"expert_rules={cfg.data.expert_rules}")


def split_seed(seed: int, part: int) -> int:
    """Separately seeded splits (spec 4.1: AR(1) correlates neighbours; never split rows at random)."""
    return 10_000 * seed + part


def load_splits(cfg: Config) -> tuple[RuleSet, dict[str, D.ItemData]]:
    """The rule set and the train / val / test splits (generated, or the user's tables in contiguous blocks)."""
    rs = load_rules(cfg)
    dc = cfg.data
    if (dc.observations is None) != (dc.items is None):
        raise InputError("data.observations and data.items must be given together (long observation table and "
                         "item table)")
    if dc.observations:
        items = D.load_tables(Path(dc.observations), Path(dc.items), dc.label_column)
        rs = negative_class(rs, items.classes)
        allowed = tuple(rs.classes)
        bad = set(items.classes) - set(allowed)
        if bad:
            raise InputError(f"{dc.items}: column {dc.label_column!r} has labels {sorted(bad)} that are not classes "
                             f"of the rules {dc.rules}; expected one of {list(allowed)}")
        remap = torch.tensor([allowed.index(c) for c in items.classes])
        items.labels, items.classes = remap[items.labels], allowed
        val = _val_tables(dc, rs, allowed, items)
        names = numeric_static_names(rs, items)
        items = promote_numeric_static(items, names, str(dc.items))
        val = None if val is None else promote_numeric_static(val, names, str(dc.val_items))
        splits = user_splits(items, val, dc)
    else:
        splits = {name: D.make_machining(n, split_seed(cfg.seed, part), dc.num_obs)
                  for part, (name, n) in enumerate((("train", dc.num_train), ("val", dc.num_val),
                                                   ("test", dc.num_test)), start=1)}
    first = splits["train"]
    categorical = {k: set(v.tolist()) for k, v in first.static.items()}
    rs.validate(set(first.channels), categorical, source=cfg.data.rules or "rules")
    for name, split in splits.items():
        check_features(rs, split, cfg.data.rules or "rules", f"{dc.observations or 'the generated data'} ({name})")
    return rs, splits


def _val_tables(dc, rs: RuleSet, allowed: tuple[str, ...], items: D.ItemData) -> D.ItemData | None:
    """The explicit validation tables (issue 20), labels mapped to the rules' classes; None when not given."""
    if dc.val_observations is None:
        return None
    val = D.load_tables(Path(dc.val_observations), Path(dc.val_items), dc.label_column)
    if val.channels != items.channels or val.quality.shape[-1] != items.quality.shape[-1]:
        raise InputError(f"{dc.val_observations}: channel columns {list(val.channels)} with "
                         f"{val.quality.shape[-1]} quality column(s); expected those of {dc.observations}: "
                         f"{list(items.channels)} with {items.quality.shape[-1]}, in the same order")
    bad = set(val.classes) - set(allowed)
    if bad:
        raise InputError(f"{dc.val_items}: column {dc.label_column!r} has labels {sorted(bad)} that are not classes "
                         f"of the rules {dc.rules}; expected one of {list(allowed)}")
    val.labels, val.classes = torch.tensor([allowed.index(c) for c in val.classes])[val.labels], allowed
    return val


def numeric_static_names(rs: RuleSet, data: D.ItemData) -> list[str]:
    """Static attributes (item-table columns) that the rules use as numbers, not as categories (sorted)."""
    return sorted(n for n in rs.raw_names() - set(rs.categorical_features)
                  if n not in data.channels and n in data.static)


def promote_numeric_static(data: D.ItemData, names: list[str], source: str) -> D.ItemData:
    """Each named static attribute becomes one more channel holding the item's value at every observation.

    Design choice (issue 20, numeric static attributes such as `age > 5`): any weighted pooling of a constant gives
    the constant back, so the rules see the value exactly through the same key-feature path, and the linking
    (which moves pi) cannot change it; the assessor sees the value as one more input. (N, M, d) -> (N, M, d + s).
    """
    if not names:
        return data
    cols = []
    for name in names:
        raw = np.asarray(data.static[name])
        try:
            v = raw.astype(np.float64)
        except ValueError:
            bad = str(next(x for x in raw if not _is_number(x)))
            raise InputError(f"{source}: static attribute {name!r} has the value {bad!r}; expected a number on every "
                             f"row (the rules compare {name} with a number)") from None
        if not np.isfinite(v).all():
            row = int(np.flatnonzero(~np.isfinite(v))[0])
            raise InputError(f"{source}: static attribute {name!r} is {v[row]} at data row {row + 1}; expected a "
                             f"finite number")
        cols.append(v)
    m = data.obs.shape[1]
    extra = torch.as_tensor(np.stack(cols, 1), dtype=torch.float32)[:, None, :].expand(-1, m, -1)  # (N, M, s)
    obs = torch.cat([data.obs, extra * data.mask[..., None]], -1)  # (N, M, d + s), zero on padding
    static = {k: v for k, v in data.static.items() if k not in names}
    return replace(data, obs=obs, channels=data.channels + tuple(names), static=static)


def _is_number(x: Any) -> bool:
    try:
        float(x)
    except ValueError:
        return False
    return True


def user_splits(items: D.ItemData, val: D.ItemData | None, dc) -> dict[str, D.ItemData]:
    """Contiguous blocks of the user's items (train, then validation, then test).

    Design choice (issue 20): explicit validation tables replace the validation block; a fraction of 0 means no
    such block: without validation data the validation split is the training split (only with a fixed epoch count,
    config.Config) and without a test block the test split is the validation split; summary.json says which.
    """
    n = len(items)
    n_val = 0 if val is not None else int(round(dc.val_fraction * n))
    n_test = int(round(dc.test_fraction * n))
    n_train = n - n_val - n_test
    if n_train < 1 or (dc.val_fraction > 0 and val is None and n_val < 1) or (dc.test_fraction > 0 and n_test < 1):
        raise InputError(f"{dc.items}: {n} items are too few to split into train / val / test")
    idx = np.arange(n)
    train = items.subset(idx[:n_train])
    val = val if val is not None else (items.subset(idx[n_train:n_train + n_val]) if n_val else train)
    test = items.subset(idx[n_train + n_val:]) if n_test else val
    return {"train": train, "val": val, "test": test}


def negative_class(rs: RuleSet, labels: tuple[str, ...] | list[str]) -> RuleSet:
    """Design choice (issue 20): in a binary task (rules for one class) whose items name their negative class
    (`fault` / `normal` with rules only for `fault`), the one item label that no rule names is the default
    class, whatever the rules file called it (or the `not_<class>` it implies without a `default` line)."""
    rule_classes = {r.label for r in rs.rules}
    others = [c for c in dict.fromkeys(labels) if c not in rule_classes]
    if len(rule_classes) == 1 and len(others) == 1 and rs.default not in labels:
        return replace(rs, default=others[0])
    return rs


def check_features(rs: RuleSet, data: D.ItemData, rules_name: str, data_name: str) -> None:
    """Every derived feature g must be finite on every valid observation and on each item's mean observation
    (a define such as `torque / rpm` with rpm = 0 is refused here, before anything is written)."""
    x = data.obs[data.mask].double().numpy()  # (n_obs, d) valid observations, original units
    mean = (data.obs.double() * data.mask[..., None]).sum(1) / data.mask.sum(1, keepdim=True).clamp_min(1)  # (N, d)
    for rows, what in ((x, "observation"), (mean.numpy(), "item mean of")):
        with np.errstate(all="ignore"):
            env = compute_features(rs, {c: rows[:, i] for i, c in enumerate(data.channels)})
        for name, _ in rs.derived:
            v = np.broadcast_to(np.asarray(env[name], dtype=np.float64), (len(rows),))
            bad = ~np.isfinite(v)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise InputError(f"{rules_name}: define {name!r} is {float(v[row])} on {what} row {row + 1} of {data_name}; "
                                 f"expected a formula that stays finite on the data (no division by zero, no overflow)")


def shifted_sets(cfg: Config) -> dict[str, D.ItemData]:
    """The five shifted test sets of spec 4.1, each with its own seed."""
    return {name: D.make_machining(cfg.data.num_shift_test, split_seed(cfg.seed, 10 + j), cfg.data.num_obs, name)
            for j, name in enumerate(D.SHIFTS[1:])}


def channel_stats(data: D.ItemData) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of every raw channel over the valid training observations, (d,) each."""
    x = data.obs[data.mask]  # (n_obs, d)
    return x.double().mean(0), x.double().std(0).clamp_min(1e-9)


def category_atoms(rs: RuleSet, static: dict[str, np.ndarray], n: int) -> torch.Tensor:
    """(N, A) 1.0 where a category atom's test holds (before negation); 0 for numeric atoms."""
    cols = [np.asarray(static[a.feature]).astype(str) == a.label if a.kind == "cat" else np.zeros(n, bool)
            for _, a in rs.atoms]
    return torch.as_tensor(np.stack(cols, 1), dtype=torch.float64)


# Design choice: in knn_rows mode the "rows" are the items' mean-pooled observations, and each item's node set is its
# row plus its k nearest rows of the same split (transductive smoothing); the same GNN then weighs them.
def knn_rows_view(obs: torch.Tensor, quality: torch.Tensor, mask: torch.Tensor, k: int):
    """graph_mode = knn_rows: each item's mean-pooled row is one observation; its node set is the row and its
    k nearest rows in the same split. (N, M, d) -> (N, 1 + k, d); the mask is all True."""
    rows = mean_pool(obs, mask)  # (N, d)
    qrows = mean_pool(quality, mask) if quality.shape[-1] else quality[:, 0]  # (N, q)
    idx, _ = knn_rows_graph(rows, k)  # (N, k)
    nodes = torch.cat([torch.arange(len(rows))[:, None], idx], 1)  # (N, 1 + k)
    return rows[nodes], qrows[nodes], torch.ones(nodes.shape, dtype=torch.bool)


def prepare(data: D.ItemData, chan_mean: torch.Tensor, chan_std: torch.Tensor, rs: RuleSet, cfg: Config) -> Prepared:
    obs = ((data.obs.double() - chan_mean) / chan_std).float() * data.mask[..., None]  # (N, M, d) std units
    quality, mask = data.quality, data.mask
    if cfg.model.graph_mode == "knn_rows":
        obs, quality, mask = knn_rows_view(obs, quality, mask, cfg.model.num_neighbours)
    adj = torch.cat([row_normalise(build_observation_graph(obs[s:s + 4096], mask[s:s + 4096], cfg.model.num_neighbours,
                                                           time_ordered=cfg.model.graph_mode == "intra"))
                     for s in range(0, len(obs), 4096)])
    t = {"obs": obs, "quality": quality, "mask": mask, "adj": adj, "labels": data.labels.long(),
         "cat": category_atoms(rs, data.static, len(data)), "k_median": median_pool(obs, mask),
         "k_mean": mean_pool(obs, mask)}
    return Prepared(data, t)


def take(p: Prepared, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[idx] for k, v in p.tensors.items()}


def pooled_features(rs: RuleSet, k_std: torch.Tensor, chan_mean: torch.Tensor, chan_std: torch.Tensor,
                    channels: tuple[str, ...]) -> np.ndarray:
    """Rule features (N, F) in original units from standardised key features (N, d)."""
    k = (chan_mean + chan_std * k_std.double()).numpy()
    env = compute_features(rs, {c: k[:, i] for i, c in enumerate(channels)})
    return np.stack([np.asarray(env[f], dtype=np.float64) for f in rs.numeric_features], 1)


def build_model(cfg: Config, rs: RuleSet, train: Prepared, chan_mean, chan_std) -> RuleNet:
    feats = pooled_features(rs, train.tensors["k_median"], chan_mean, chan_std, train.data.channels)
    fmean, fstd = feature_stats(feats, rs.numeric_features)
    model = RuleNet(rs, train.data.channels, chan_mean, chan_std, fmean, fstd, train.data.quality.shape[-1],
                    cfg.model.hidden, cfg.model.num_layers)
    model.rules.gates.requires_grad_(cfg.model.use_learned_gates)
    return model


def prepare_run(cfg: Config) -> dict[str, Any]:
    """Data, tensors and an initialised model (deterministic given cfg; also used by evaluate)."""
    rs, splits = load_splits(cfg)
    chan_mean, chan_std = channel_stats(splits["train"])
    prepared = {name: prepare(d, chan_mean, chan_std, rs, cfg) for name, d in splits.items()}
    torch.manual_seed(init_seed(cfg))
    model = build_model(cfg, rs, prepared["train"], chan_mean, chan_std)
    return {"ruleset": rs, "prepared": prepared, "model": model, "chan": (chan_mean, chan_std)}


def load_model_state(model: RuleNet, state: Any, path: Path) -> None:
    """Load a checkpoint's model weights; a missing, mismatched or non-finite state is an InputError naming `path`."""
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise InputError(f"{path}: field 'model' missing or not a dict of tensors; expected a rulenet checkpoint")
    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise InputError(f"{path}: model weight {bad[0]!r} holds NaN / inf (a diverged run); expected finite "
                         f"weights: train again into a new --out directory")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(f"{path}: field 'model' does not fit the model of config.json "
                         f"({' '.join(str(err).split())[:300]}); expected a checkpoint of this run") from None


PREDICTOR_FIELDS = ("rules", "channels", "classes", "num_quality", "label_column")


def predictor_meta(rs: RuleSet, data: D.ItemData, label_column: str) -> dict[str, Any]:
    """What predict needs to rebuild the model without the training data (stored in the final checkpoint)."""
    return {"rules": rs.text(), "channels": list(data.channels), "classes": list(rs.classes),
            "num_quality": int(data.quality.shape[-1]), "label_column": label_column}


def init_seed(cfg: Config) -> int:
    """Seed of model initialisation and shuffling (retraining seeds for churn reuse the same data seed)."""
    return cfg.seed if cfg.train.init_seed is None else cfg.train.init_seed


# ----------------------------------------------------------------------------------------- inference

def key_of(model: RuleNet, batch: dict, cfg: Config):
    """(pi, k_std) for the configured pooling; pi is None for the pooled baselines."""
    if cfg.model.pooling == "gnn":
        _, pi, k = model.assess(batch, cfg.model.use_hard_assessment, cfg.model.keep_fraction)
        return pi, k
    return None, batch["k_median" if cfg.model.pooling == "median" else "k_mean"]


@torch.no_grad()
def predict(model: RuleNet, p: Prepared, cfg: Config, tau: float | None = None, batch_size: int = 4096) -> dict:
    """Hard-rule decisions (always; soft decisions only for the soft-only ablation), scores, pi, features."""
    model.eval()
    out: dict[str, list] = {"pred": [], "soft_pred": [], "score": [], "pi": [], "k": [], "feats": []}
    rn = model.rules
    tau = cfg.train.tau_end if tau is None else tau
    for s in range(0, len(p), batch_size):
        batch = take(p, torch.arange(s, min(s + batch_size, len(p))))
        pi, k = key_of(model, batch, cfg)
        feats = rn.features(model.raw_from_k(k))
        c_hard, _ = rn.combine(rn.hard_atoms(feats, batch["cat"]), hard=True)
        _, P = rn.combine(rn.soft_atoms(feats, batch["cat"], tau), hard=False)
        z = rn.logits(P)  # (B, C_r)
        full = torch.cat([z, torch.zeros_like(z[:, :1])], 1) if z.shape[1] > 1 else None
        soft_pred = (full.argmax(1) if full is not None else torch.where(z[:, 0] > 0, 0, 1))
        out["pred"].append(rn.hard_decision(c_hard))
        out["soft_pred"].append(soft_pred)
        out["score"].append(torch.sigmoid(z[:, 0]) if full is None else torch.softmax(full, 1)[:, 0])
        out["pi"].append(pi if pi is not None else torch.zeros(len(k), 0))
        out["k"].append(k)
        out["feats"].append(feats)
    res = {key: torch.cat(v) for key, v in out.items()}
    if cfg.train.use_soft_inference:
        res["hard_pred"], res["pred"] = res["pred"], res["soft_pred"]
    return res


# ------------------------------------------------------------------------------------------- metrics

def f1_positive(pred: np.ndarray, labels: np.ndarray, positive: int = 0) -> float:
    """F1 of the `positive` class (the failure class): 2 TP / (2 TP + FP + FN); 0 when undefined."""
    tp = float(np.sum((pred == positive) & (labels == positive)))
    fp = float(np.sum((pred == positive) & (labels != positive)))
    fn = float(np.sum((pred != positive) & (labels == positive)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


# Which exported atom corresponds to which true generator threshold (noisy expert rules of spec 4.1), by
# (rule index, atom index within the rule).
TRUE_BY_ATOM = {(0, 0): 8.6, (0, 1): 1380.0, (1, 0): 3500.0, (2, 0): 9000.0, (3, 0): 11000.0, (4, 0): 12000.0,
                (5, 0): 13000.0}


def true_rule_support(data: D.ItemData) -> list[int]:
    """Per rule of the generator's TRUE rules (same order as the noisy expert rules): how many items of `data`
    it fires on, evaluated on the latent state. A threshold whose rule fires on no validation item has no data to
    be learned from (e.g. `power > 9000`), so the threshold-recovery row leaves it out (issue 20)."""
    rs = parse_rules(D.TRUE_RULES, source="TRUE_RULES")
    env = compute_features(rs, {**{k: np.asarray(v, dtype=np.float64) for k, v in data.latent.items()},
                                **{k: np.asarray(v) for k, v in data.static.items()}})
    return [int(np.logical_and.reduce([atom_hard(a, env[a.feature]) for a in r.atoms]).sum()) for r in rs.rules]


def supported_threshold_error(thresholds: list[dict[str, Any]], support: list[int], key: str = "rel_error",
                              min_support: int = 1) -> tuple[float, list[str]]:
    """Max of `key` over the thresholds with a true counterpart whose rule has >= min_support items; also the
    features left out. thresholds: `rule_report(...)["thresholds"]` rows."""
    kept = [t for t in thresholds if "true" in t and support[t["rule"]] >= min_support]
    left = [f"{t['feature']} (rule {t['rule']}, support {support[t['rule']]})" for t in thresholds
            if "true" in t and support[t["rule"]] < min_support]
    return (max(t[key] for t in kept) if kept else float("nan")), left


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
                           "disabled_rules": [f"{it['expert'].text()} ({it['disabled_reason']})" for it in report
                                              if not it["enabled"]]}
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
    dc = cfg.data
    if dc.observations is not None:  # which data the val and test numbers are on (issue 20)
        out["split_sources"] = {
            "val": "data.val_observations" if dc.val_items else ("the training split (data.val_fraction = 0)"
                                                                  if dc.val_fraction == 0 else "contiguous block"),
            "test": "the validation split (data.test_fraction = 0)" if dc.test_fraction == 0 else "contiguous block"}
    return out
