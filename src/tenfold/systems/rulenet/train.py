"""Training of `rulenet` (arXiv 2211.04693): the staged procedure of specs/rulenet.md section 3.

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning".
Steps (every one a design choice of the spec; the paper body is unavailable):
 1. standardise every raw channel; keep mean / std so thresholds print in original units   -> `pipeline.prepare_run`
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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.errors import InputError, RunFailed
from tenfold.core.runs import RunDir
from tenfold.core.runtime import progress_bar, seed_everything, select_device
from tenfold.systems.rulenet.config import Config
from tenfold.systems.rulenet.linking import GradientLinkingSearch, graft, kl_link, straight_through
from tenfold.systems.rulenet.loss import anchor_loss, gate_loss, link_loss, rule_loss, total_loss
from tenfold.systems.rulenet.model import RuleNet, median_pool
from tenfold.systems.rulenet.pipeline import (Prepared, predictor_meta, f1_positive, init_seed, key_of, load_model_state, predict,
                                              prepare_run, run_metrics, take)

log = logging.getLogger("tenfold.rulenet")


# ------------------------------------------------------------------------------------------- data

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
    """Search linking (spec component 7): sum of KL(pi* || pi) over the wrongly classified items / batch size."""
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
    # Design choice: no target for items whose hard output no step size can fix (found_only)
    keep = found if searcher.found_only else torch.ones_like(found)
    return link_loss(kl, keep, len(wrong))  # len(wrong) = B: the batch mean (loss.link_loss)


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


# ---------------------------------------------------------------------------------------- training


def train(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Staged training; writes config.json, metrics.jsonl, checkpoints and summary.json into run_dir."""
    return train_model(cfg, run_dir)[0]


def train_model(cfg: Config, run_dir: Path) -> tuple[dict[str, Any], RuleNet, dict[str, Any]]:
    """`train`, also returning the trained model and the prepared data (used by reproduce and the estimator)."""
    t0 = time.perf_counter()
    device = select_device(cfg.device)  # validates the name
    if device.type != "cpu":
        # Deviation: this version trains on the CPU only (the GPU path of the full profile is not built yet).
        log.warning("rulenet runs on the CPU in this version; ignoring device %s", device)
    ctx = prepare_run(cfg)  # input errors surface here, before anything is written
    run = RunDir(run_dir)
    model, train_p, val_p = ctx["model"], ctx["prepared"]["train"], ctx["prepared"]["val"]
    if cfg.model.pooling == "gnn" and cfg.train.warmup_epochs:
        train_p.tensors["robust_pi"] = robust_target(train_p.tensors["obs"], train_p.tensors["mask"])
    opt = make_optimizer(model, cfg)
    gen = seed_everything(init_seed(cfg))
    state = {"epoch": 0, "best": None, "best_f1": -1.0}
    ckpt = run.load_checkpoint()  # a damaged checkpoint is refused here, still before the first write
    if ckpt is not None:
        _restore(ckpt, model, opt, gen, state, run.checkpoint_path)
    before = _listing(run.path)
    run.write_config(cfg)
    if ckpt is not None and ckpt.get("kind") != "final":
        run.truncate_metrics(state["epoch"])
        log.info("rulenet: resuming from epoch %d", state["epoch"])
    if ckpt is None or ckpt.get("kind") != "final":
        try:
            _fit(cfg, model, train_p, val_p, opt, gen, state, run)
        except FloatingPointError as err:
            raise TrainingDiverged(f"{run.path}: training diverged ({err}); {_undo(run, before)}; expected finite "
                                   f"losses: lower train.lr_gnn / lr_theta / lr_weights or rescale the input "
                                   f"channels") from None
        if state["best"] is not None:
            model.load_state_dict(state["best"])  # early stopping on validation hard F1
        run.save_checkpoint({"kind": "final", "model": model.state_dict(), "epoch": state["epoch"],
                             "predictor": predictor_meta(ctx["ruleset"], train_p.data, cfg.data.label_column)})
    metrics = run_metrics(cfg, ctx, model)
    run.write_summary(metrics, time.perf_counter() - t0, "cpu")
    log.info("rulenet: test F1 %.3f (expert rules %.3f)", metrics["f1"], metrics["expert_rules_f1"])
    return metrics, model, ctx


class TrainingDiverged(RunFailed):
    """The loss or the weights became NaN / inf: a failed run (exit 1, the message, no traceback), with nothing of
    the diverged state left in the run directory. The inputs were already checked finite before training."""


def _restore(ckpt: dict, model: RuleNet, opt, gen: torch.Generator, state: dict, path: Path) -> None:
    """Load a checkpoint into memory (model, and for an epoch checkpoint the optimizer, RNG and early stopping)."""
    load_model_state(model, ckpt.get("model"), path)
    if ckpt.get("kind") == "final":
        return
    try:
        opt.load_state_dict(ckpt["opt"])
        gen.set_state(ckpt["gen"])
        state.update(epoch=int(ckpt["epoch"]), best=ckpt["best"], best_f1=float(ckpt["best_f1"]))
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise InputError(f"{path}: not a rulenet epoch checkpoint ({type(err).__name__}: {err}); expected the "
                         f"checkpoint of this run, or start afresh in a new --out directory") from None


def _listing(folder: Path) -> set[str] | None:
    """Relative paths of everything under `folder` (None when absent): what existed before this run wrote."""
    folder = Path(folder)
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else None


def _undo(run: RunDir, before: set[str] | None) -> str:
    """Delete what this run created in its directory; files that existed before (a resumed run) stay, and they
    hold only finite epochs (`_fit` checks the weights before every checkpoint). Returns what was done."""
    made = [p for p in run.path.rglob("*") if before is None or str(p.relative_to(run.path)) not in before]
    for p in sorted(made, key=lambda q: len(q.parts), reverse=True):  # files and sub-folders, deepest first
        p.rmdir() if p.is_dir() else p.unlink()
    if before is None:
        run.path.rmdir()
        return "removed the run directory it had created, nothing of it is kept"
    if (run.path / "checkpoints").exists():
        return f"kept {run.checkpoint_path}, the last epoch with finite weights, and removed the files this run created"
    return "removed the files this run created"


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
        bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:  # never checkpoint a diverged state
            raise FloatingPointError(f"weight {bad[0]!r} is NaN / inf after epoch {t + 1} (phase {phase})")
        pred = predict(model, val_p, cfg, tau)
        hard = pred.get("hard_pred", pred["pred"]).numpy()
        val_f1 = f1_positive(pred["pred"].numpy(), val_labels)
        record = {"step": t + 1, "phase": phase, "tau": tau, **losses, "val_f1": val_f1,
                  "val_hard_soft_agreement": float(np.mean(hard == pred["soft_pred"].numpy()))}
        run.log_metrics(record)
        # Design choice: early stopping keeps the best joint-phase epoch by validation hard F1 (the rule-only phase
        # uses median features, which the final model does not).
        if cfg.train.select_best and phase == "joint" and val_f1 > state["best_f1"]:
            state["best_f1"], state["best"] = val_f1, copy.deepcopy(model.state_dict())
        state["epoch"] = t + 1
        run.save_checkpoint({"kind": "epoch", "epoch": t + 1, "model": model.state_dict(), "opt": opt.state_dict(),
                             "gen": gen.get_state(), "best": state["best"], "best_f1": state["best_f1"]})
        bar.update(1)
        bar.set_postfix(phase=phase, val_f1=f"{val_f1:.3f}")
    bar.close()

