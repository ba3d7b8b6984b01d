"""Training of `rulenet` (arXiv 2211.04693): the staged procedure of specs/rulenet.md section 3.

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning".
Steps (every one a design choice of the spec; the paper body is unavailable):
 1. standardise every raw channel; keep mean / std so thresholds print in original units   -> `prepare_run`
 2. assessor warm-up: regress pi onto a robust-reconstruction target (mean-shift weights)  -> `robust_target`
 3. rule-only phase: GNN frozen, median-pooled key features; thresholds, weights, biases     -> phase "rule"
 4. joint phase: everything trainable, tau annealed 1.0 -> 0.05 geometrically (`anneal_tau`), w and g clipped
    to [0, 1] each step, early stopping on validation HARD F1, hard/soft agreement logged   -> phase "joint"
 5. export the rule set                                                                    -> export.export_rules
A re-run on the same directory resumes from the last epoch checkpoint (optimizer and RNG state included).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir
from tenfold.core.runtime import progress_bar, seed_everything, select_device
from tenfold.systems.rulenet import data as D
from tenfold.systems.rulenet.config import Config
from tenfold.systems.rulenet.graph import build_observation_graph, knn_rows_graph, row_normalise
from tenfold.systems.rulenet.linking import GradientLinkingSearch, graft, kl_link, straight_through
from tenfold.systems.rulenet.loss import anchor_loss, gate_loss, rule_loss, total_loss
from tenfold.systems.rulenet.model import RuleNet, feature_stats, mean_pool, median_pool
from tenfold.systems.rulenet.rules import RuleSet, compute_features, parse_rules

log = logging.getLogger("tenfold.rulenet")


@dataclass
class Prepared:
    """Model-ready tensors of one split: obs (N, M, d) standardised, quality (N, M, q), mask (N, M),
    adj (N, M, M) row-normalised, cat (N, A) category-atom values, labels (N,), pooled keys (N, d)."""

    data: D.ItemData
    tensors: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.data)


# ------------------------------------------------------------------------------------------- data

def load_rules(cfg: Config) -> RuleSet:
    if cfg.data.rules:
        path = Path(cfg.data.rules)
        if not path.exists():
            raise InputError(f"rules file {path}: not found")
        return parse_rules(path.read_text(), source=str(path))
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
        allowed = tuple(rs.classes)
        items = D.load_tables(Path(dc.observations), Path(dc.items), dc.label_column)
        bad = set(items.classes) - set(allowed)
        if bad:
            raise InputError(f"{dc.items}: labels {sorted(bad)} are not classes of the rules ({list(allowed)})")
        remap = torch.tensor([allowed.index(c) for c in items.classes])
        items.labels, items.classes = remap[items.labels], allowed
        n = len(items)
        n_val, n_test = int(round(dc.val_fraction * n)), int(round(dc.test_fraction * n))
        n_train = n - n_val - n_test
        if min(n_train, n_val, n_test) < 1:
            raise InputError(f"{dc.items}: {n} items are too few to split into train / val / test")
        idx = np.arange(n)
        splits = {"train": items.subset(idx[:n_train]), "val": items.subset(idx[n_train:n_train + n_val]),
                  "test": items.subset(idx[n_train + n_val:])}
    else:
        splits = {name: D.make_machining(n, split_seed(cfg.seed, part), dc.num_obs)
                  for part, (name, n) in enumerate((("train", dc.num_train), ("val", dc.num_val),
                                                   ("test", dc.num_test)), start=1)}
    first = splits["train"]
    categorical = {k: set(v.tolist()) for k, v in first.static.items()}
    rs.validate(set(first.channels), categorical, source=cfg.data.rules or "rules")
    return rs, splits


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


def robust_target(obs: torch.Tensor, mask: torch.Tensor, iters: int = 3) -> torch.Tensor:
    """Mean-shift weights from the median (the warm-up's robust-reconstruction target), (B, M).

    Design choice (spec section 3 step 2 allows "a robust-reconstruction target"): w_m ∝ exp(-||o_m - k||^2 / 2h^2)
    with h^2 the median squared distance to the current centre, re-centred `iters` times.
    """
    k = median_pool(obs, mask)
    w = mask.float() / mask.float().sum(-1, keepdim=True)
    for _ in range(iters):
        d2 = (obs - k[:, None]).pow(2).sum(-1).masked_fill(~mask, float("nan"))  # (B, M)
        h2 = torch.nanmedian(d2, dim=1).values.clamp_min(1e-6)  # (B,)
        w = torch.exp(-torch.nan_to_num(d2, nan=float("inf")) / (2 * h2[:, None])) * mask
        w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
        k = torch.einsum("bm,bmd->bd", w, obs)
    return w


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


# -------------------------------------------------------------------------------------- objective

def anneal_tau(epoch: int, num_epochs: int, tau_start: float, tau_end: float) -> float:
    """Geometric tau_start -> tau_end over the joint phase (spec component 9); epoch 0 .. num_epochs - 1."""
    if num_epochs <= 1:
        return tau_end if num_epochs == 1 and epoch > 0 else tau_start
    return tau_start * (tau_end / tau_start) ** (epoch / (num_epochs - 1))


def rule_terms(model: RuleNet, k_std: torch.Tensor, batch: dict, tau: float, mode: str, pos_weight: float):
    """Rule loss on key features k_std (B, d) under the linking `mode` (soft / ste / graft)."""
    rn = model.rules
    feats = rn.features(model.raw_from_k(k_std))
    soft = rn.soft_atoms(feats, batch["cat"], tau)
    if mode == "soft":
        _, P = rn.combine(soft, hard=False)
    elif mode == "ste":
        _, P = rn.combine(straight_through(rn.hard_atoms(feats, batch["cat"]), soft), hard=False)
    else:  # graft: the loss is computed on the hard output, its gradient grafted onto the soft one
        _, P_soft = rn.combine(soft, hard=False)
        _, P_hard = rn.combine(rn.hard_atoms(feats, batch["cat"]), hard=True)
        P = graft(P_hard, P_soft)
    return rule_loss(rn.logits(P), batch["labels"], pos_weight)


def link_term(model: RuleNet, searcher: GradientLinkingSearch, k_std, pi, batch, tau, pos_weight) -> torch.Tensor:
    """Search linking (spec component 7): KL(pi* || pi) averaged over the wrongly classified items."""
    rn = model.rules

    def hard_pred(k, cat):
        c, _ = rn.combine(rn.hard_atoms(rn.features(model.raw_from_k(k)), cat), hard=True)
        return rn.hard_decision(c)

    with torch.no_grad():
        wrong = hard_pred(k_std, batch["cat"]) != batch["labels"]
    if not bool(wrong.any()):
        return torch.zeros((), dtype=torch.float32)
    cat, labels = batch["cat"][wrong], batch["labels"][wrong]

    def soft_loss(k):
        _, P = rn.combine(rn.soft_atoms(rn.features(model.raw_from_k(k)), cat, tau), hard=False)
        return rule_loss(rn.logits(P), labels, pos_weight, reduction="none")

    pi_star, found = searcher.targets(k_std[wrong], soft_loss, lambda k: hard_pred(k, cat) == labels,
                                      batch["obs"][wrong], batch["mask"][wrong], pi[wrong])
    kl = kl_link(pi_star, pi[wrong], batch["mask"][wrong])  # (B_w,)
    if searcher.found_only:  # Design choice: no target for items whose hard output no step size can fix
        kl = kl[found] if bool(found.any()) else kl[:0]
    return kl.sum() / len(wrong)


def key_of(model: RuleNet, batch: dict, cfg: Config):
    """(pi, k_std) for the configured pooling; pi is None for the pooled baselines."""
    if cfg.model.pooling == "gnn":
        _, pi, k = model.assess(batch, cfg.model.use_hard_assessment, cfg.model.keep_fraction)
        return pi, k
    return None, batch["k_median" if cfg.model.pooling == "median" else "k_mean"]


def phase_terms(phase: str, model: RuleNet, batch: dict, cfg: Config, tau: float,
                searcher: GradientLinkingSearch) -> dict[str, torch.Tensor]:
    tc = cfg.train
    if phase == "warmup":
        _, pi, _ = model.assess(batch)
        return {"loss_warmup": kl_link(batch["robust_pi"], pi, batch["mask"]).mean()}
    mode = "soft" if tc.use_soft_inference else ("ste" if tc.link == "ste" else "graft")
    rn = model.rules
    is_num = (rn.atom_kind != 2).double()
    terms = {"loss_anchor": anchor_loss(rn.theta, rn.theta_expert, is_num)}
    if cfg.model.use_learned_gates:
        terms["loss_gate"] = gate_loss(rn.gates)
    if phase == "rule":
        terms["loss_rule"] = rule_terms(model, batch["k_median"], batch, tau, mode, tc.pos_weight)
        return terms
    pi, k = key_of(model, batch, cfg)
    linked = ("ste", "graft", "search") if tc.search_with_graft else ("ste", "graft")
    end_to_end = cfg.model.pooling == "gnn" and (tc.link in linked or (tc.use_soft_inference and tc.link != "none"))
    terms["loss_rule"] = rule_terms(model, k if end_to_end else k.detach(), batch, tau, mode, tc.pos_weight)
    if cfg.model.pooling == "gnn" and tc.link == "search":
        terms["loss_link"] = link_term(model, searcher, k, pi, batch, tau, tc.pos_weight)
    return terms


def loss_weights(cfg: Config) -> dict[str, float]:
    tc = cfg.train
    return {"weight_rule": tc.weight_rule, "weight_anchor": tc.weight_anchor, "weight_gate": tc.weight_gate,
            "weight_link": tc.weight_link, "weight_warmup": 1.0}  # Design choice: warm-up term weight 1


def make_optimizer(model: RuleNet, cfg: Config) -> torch.optim.Optimizer:
    """Adam with the spec's three learning rates (section 3 step 4)."""
    rn = model.rules
    return torch.optim.Adam([
        {"params": list(model.assessor.parameters()), "lr": cfg.train.lr_gnn},
        {"params": [rn.theta], "lr": cfg.train.lr_theta},
        {"params": [rn.gates, rn.rule_weights, rn.class_bias], "lr": cfg.train.lr_weights}])


def schedule(cfg: Config) -> list[tuple[str, int]]:
    """Flat epoch list [(phase, epoch within phase)]; pooled baselines skip the GNN warm-up."""
    tc = cfg.train
    warm = tc.warmup_epochs if cfg.model.pooling == "gnn" else 0
    return ([("warmup", e) for e in range(warm)] + [("rule", e) for e in range(tc.rule_epochs)]
            + [("joint", e) for e in range(tc.joint_epochs)])


def run_epoch(phase: str, model: RuleNet, train: Prepared, opt, cfg: Config, tau: float,
              gen: torch.Generator, searcher: GradientLinkingSearch) -> dict[str, float]:
    """One pass over the training items; returns the mean of each loss term."""
    model.train()
    sums: dict[str, float] = {}
    perm = torch.randperm(len(train), generator=gen)
    weights = loss_weights(cfg)
    nb = 0
    for s in range(0, len(perm), cfg.train.batch_size):
        batch = take(train, perm[s:s + cfg.train.batch_size])
        terms = phase_terms(phase, model, batch, cfg, tau, searcher)
        loss = total_loss(terms, weights)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss in phase {phase}: { {k: float(v) for k, v in terms.items()} }")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.rules.clip_()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        nb += 1
    return {k: v / max(nb, 1) for k, v in sums.items()}


# -------------------------------------------------------------------------------------- inference

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


def f1_positive(pred: np.ndarray, labels: np.ndarray, positive: int = 0) -> float:
    """F1 of the `positive` class (the failure class): 2 TP / (2 TP + FP + FN); 0 when undefined."""
    tp = float(np.sum((pred == positive) & (labels == positive)))
    fp = float(np.sum((pred == positive) & (labels != positive)))
    fn = float(np.sum((pred != positive) & (labels == positive)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


# ---------------------------------------------------------------------------------------- training

def prepare_run(cfg: Config) -> dict[str, Any]:
    """Data, tensors and an initialised model (deterministic given cfg; also used by evaluate)."""
    rs, splits = load_splits(cfg)
    chan_mean, chan_std = channel_stats(splits["train"])
    prepared = {name: prepare(d, chan_mean, chan_std, rs, cfg) for name, d in splits.items()}
    torch.manual_seed(init_seed(cfg))
    model = build_model(cfg, rs, prepared["train"], chan_mean, chan_std)
    return {"ruleset": rs, "prepared": prepared, "model": model, "chan": (chan_mean, chan_std)}


def init_seed(cfg: Config) -> int:
    """Seed of model initialisation and shuffling (retraining seeds for churn reuse the same data seed)."""
    return cfg.seed if cfg.train.init_seed is None else cfg.train.init_seed


def train(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Staged training; writes config.json, metrics.jsonl, checkpoints and summary.json into run_dir."""
    return train_model(cfg, run_dir)[0]


def train_model(cfg: Config, run_dir: Path) -> tuple[dict[str, Any], RuleNet, dict[str, Any]]:
    """`train`, also returning the trained model and the prepared data (used by reproduce and the estimator)."""
    from tenfold.systems.rulenet.evaluate import run_metrics

    t0 = time.perf_counter()
    device = select_device(cfg.device)  # validates the name
    if device.type != "cpu":
        # Deviation: this version trains on the CPU only (the GPU path of the full profile is not built yet).
        log.warning("rulenet runs on the CPU in this version; ignoring device %s", device)
    ctx = prepare_run(cfg)  # input errors surface here, before anything is written
    run = RunDir(run_dir)
    run.write_config(cfg)
    model, train_p, val_p = ctx["model"], ctx["prepared"]["train"], ctx["prepared"]["val"]
    if cfg.model.pooling == "gnn" and cfg.train.warmup_epochs:
        train_p.tensors["robust_pi"] = robust_target(train_p.tensors["obs"], train_p.tensors["mask"])
    opt = make_optimizer(model, cfg)
    gen = seed_everything(init_seed(cfg))
    state = {"epoch": 0, "best": None, "best_f1": -1.0}
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        if ckpt.get("kind") != "final":
            opt.load_state_dict(ckpt["opt"])
            gen.set_state(ckpt["gen"])
            state = {"epoch": ckpt["epoch"], "best": ckpt["best"], "best_f1": ckpt["best_f1"]}
            run.truncate_metrics(state["epoch"])
            log.info("rulenet: resuming from epoch %d", state["epoch"])
    if ckpt is None or ckpt.get("kind") != "final":
        _fit(cfg, model, train_p, val_p, opt, gen, state, run)
        if state["best"] is not None:
            model.load_state_dict(state["best"])  # early stopping on validation hard F1
        run.save_checkpoint({"kind": "final", "model": model.state_dict(), "epoch": state["epoch"]})
    metrics = run_metrics(cfg, ctx, model)
    run.write_summary(metrics, time.perf_counter() - t0, "cpu")
    log.info("rulenet: test F1 %.3f (expert rules %.3f)", metrics["f1"], metrics["expert_rules_f1"])
    return metrics, model, ctx


def _fit(cfg: Config, model: RuleNet, train_p: Prepared, val_p: Prepared, opt, gen, state: dict, run: RunDir) -> None:
    sched = schedule(cfg)
    searcher = GradientLinkingSearch(cfg.train.eta0, cfg.train.num_doublings, cfg.train.projection_steps,
                                     cfg.train.link_found_only)
    bar = progress_bar(len(sched), "rulenet")
    bar.update(state["epoch"])
    val_labels = val_p.tensors["labels"].numpy()
    for t in range(state["epoch"], len(sched)):
        phase, e = sched[t]
        tau = cfg.train.tau_start if phase != "joint" else anneal_tau(e, cfg.train.joint_epochs, cfg.train.tau_start,
                                                                      cfg.train.tau_end)
        losses = run_epoch(phase, model, train_p, opt, cfg, tau, gen, searcher)
        pred = predict(model, val_p, cfg, tau)
        hard = pred.get("hard_pred", pred["pred"]).numpy()
        val_f1 = f1_positive(pred["pred"].numpy(), val_labels)
        record = {"step": t + 1, "phase": phase, "tau": tau, **losses, "val_f1": val_f1,
                  "val_hard_soft_agreement": float(np.mean(hard == pred["soft_pred"].numpy()))}
        run.log_metrics(record)
        # Design choice: early stopping keeps the best joint-phase epoch by validation hard F1 (the rule-only phase
        # uses median features, which the final model does not).
        if phase == "joint" and val_f1 > state["best_f1"]:
            state["best_f1"], state["best"] = val_f1, copy.deepcopy(model.state_dict())
        state["epoch"] = t + 1
        run.save_checkpoint({"kind": "epoch", "epoch": t + 1, "model": model.state_dict(), "opt": opt.state_dict(),
                             "gen": gen.get_state(), "best": state["best"], "best_f1": state["best_f1"]})
        bar.update(1)
        bar.set_postfix(phase=phase, val_f1=f"{val_f1:.3f}")
    bar.close()

