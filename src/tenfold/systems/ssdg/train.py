"""Training of `ssdg` (Lin et al., "Semi-Supervised Domain Generalization with Evolving Intermediate Domain",
arXiv 2111.10221): the cyclic schedule of spec section 3 (component 12) and the baselines through one harness.

CyclicSSDG, for cycle r = 0 .. num_cycles - 1, lr_r = lr / (r + 1)^2 on every optimizer (models and optimizers
persist across cycles: warm start):
  a. Phase 1, per unlabeled domain k: MCD_k on S_k^r = D_L u I_k^r against D_Uk; P_k = argmax C_k1(F_k(x)), all x.
  b. Phase 2: peers a, b on D_L (true labels) u P_1 u P_2, co-teaching + IM; peer a's best epoch on the D_L
     validation split is the cycle's model (the target is never read during training).
  c. Phase 3, per k: I_k^{r+1} = select_intermediate_domain (re-selected from scratch, not accumulated).
The trainer never holds the unlabeled domains' ground truth: `train` computes pseudo-label accuracy and
intermediate-domain precision from `Task.hidden_truth` for the log only (spec component 12).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.runs import RunDir
from tenfold.core.runtime import seed_everything, select_device, torch_threads
from tenfold.systems.ssdg import baselines as B
from tenfold.systems.ssdg.config import Config
from tenfold.systems.ssdg.data import DomainSet, Task, load_task, union
from tenfold.systems.ssdg.generalization import CoTeachingDG
from tenfold.systems.ssdg.intermediate_domain import select_intermediate_domain
from tenfold.systems.ssdg.model import build_classifier, build_mcd, pretrained_backbone
from tenfold.systems.ssdg.pseudo_labeling import MCDPseudoLabeler

log = logging.getLogger("tenfold.ssdg")


def cycle_lr(lr: float, r: int, decay: str = "inverse_square") -> float:
    """lr / (r + 1)^2 [code]: 1e-3, 2.5e-4, 1.111e-4."""
    return lr / (r + 1) ** 2 if decay == "inverse_square" else lr


class CyclicSSDG:
    """The cyclic framework. Args: cfg, labeled (D_L train), unlabeled (D_U1, D_U2 without labels), val (D_L
    validation), num_classes, device. `oracle_labels` (per unlabeled domain) only for criterion "oracle"."""

    def __init__(self, cfg: Config, labeled: DomainSet, unlabeled: list[DomainSet], val: DomainSet,
                 num_classes: int, device: torch.device | str = "cpu",
                 web_labels: list[np.ndarray] | None = None) -> None:
        t = cfg.train
        # Web variant (spec 14): crawl labels of each unlabeled (web) domain; None = the close-set method.
        self.web_labels = web_labels
        self.treatment = t.web_treatment if web_labels is not None else "ignored"
        self.cfg, self.t, self.labeled, self.unlabeled, self.val, self.device = cfg, t, labeled, unlabeled, val, device
        init = pretrained_backbone(cfg)  # every network starts from the same backbone (None = random init)
        self.mcd = [MCDPseudoLabeler(build_mcd(cfg, num_classes, init), t, cfg.data, device) for _ in unlabeled]
        self.dg = CoTeachingDG(build_classifier(cfg, num_classes, True, init),
                               build_classifier(cfg, num_classes, True, init), t, cfg.data, device)
        self.inter = [(np.zeros(0, np.int64), np.zeros(0, np.int64)) for _ in unlabeled]  # I_k^0 = empty
        self.rng = np.random.default_rng([cfg.seed, 11])
        self.criterion = t.selection_criterion
        self.oracle_labels: list[np.ndarray] | None = None
        self.cycle = 0  # cycles completed
        self.pseudo: list[np.ndarray] = []

    def labeled_pool(self, k: int) -> DomainSet:
        """S_k^r = D_L u I_k^r (the intermediate samples carry peer a's labels, flag False)."""
        idx, labels = self.inter[k]
        u = self.unlabeled[k]
        inter = DomainSet(u.name, u.images[idx], labels, np.zeros(len(idx), bool), u.domain_id)
        return union([self.labeled, inter])

    def phase1(self, r: int) -> dict[str, Any]:
        lr = cycle_lr(self.t.lr, r, self.t.lr_cycle_decay)
        if self.treatment == "retained" or (self.treatment == "refined" and r == 0):
            self.pseudo = [w.copy() for w in self.web_labels]  # the crawl labels stand in for MCD's
            return {"mcd_losses": []}
        self.pseudo, losses = [], []
        for k, (mcd, u) in enumerate(zip(self.mcd, self.unlabeled)):
            losses.append(mcd.fit(self.labeled_pool(k), u, self.t.mcd_epochs, lr, self.rng))
            self.pseudo.append(mcd.pseudo_label(u)[0])  # every sample of D_Uk, no threshold
        return {"mcd_losses": losses}

    def phase2(self, r: int) -> dict[str, Any]:
        lr = cycle_lr(self.t.lr, r, self.t.lr_cycle_decay)
        parts = [self.labeled] + [DomainSet(u.name, u.images, pl, np.zeros(len(u), bool), u.domain_id)
                                  for u, pl in zip(self.unlabeled, self.pseudo)]  # P_k, not the I_k labels
        data = union(parts)
        sel, losses = B.Selector(self.val, self.device), []
        for e in range(self.t.dg_epochs):
            losses.append(self.dg.fit_epoch(data, e, lr, self.rng))
            sel.update(self.dg.a)  # peer a only
        return {"dg_losses": losses[-1], "val_curve": sel.curve, "best_val": sel.best, "state": sel.state}

    def phase3(self, r: int) -> None:
        for k, u in enumerate(self.unlabeled):
            oracle = self.oracle_labels[k] if self.oracle_labels is not None else None
            self.inter[k] = select_intermediate_domain((self.dg.a, self.dg.b), u, self.t.selection_ratio,
                                                       self.criterion, oracle, self.pseudo[k],
                                                       device=self.device)

    def train_cycle(self) -> dict[str, Any]:
        """Phases 1 and 2 of the next cycle."""
        r = self.cycle
        out = {"cycle": r, "lr": cycle_lr(self.t.lr, r, self.t.lr_cycle_decay), **self.phase1(r), **self.phase2(r)}
        out["pseudo_labels"] = [p.copy() for p in self.pseudo]
        return out

    def select(self) -> dict[str, Any]:
        """Phase 3 of the current cycle; ends it."""
        self.phase3(self.cycle)
        self.cycle += 1
        return {"inter_idx": [i.copy() for i, _ in self.inter], "inter_labels": [y.copy() for _, y in self.inter]}

    @property
    def image_passes(self) -> int:
        return sum(m.image_passes for m in self.mcd) + self.dg.image_passes

    def state_dict(self) -> dict[str, Any]:
        return {"mcd": [m.state_dict() for m in self.mcd], "dg": self.dg.state_dict(), "cycle": self.cycle,
                "inter": [[i, y] for i, y in self.inter], "rng": self.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "passes": [m.image_passes for m in self.mcd] + [self.dg.image_passes]}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        for m, ms in zip(self.mcd, s["mcd"]):
            m.load_state_dict(ms)
        self.dg.load_state_dict(s["dg"])
        self.cycle = int(s["cycle"])
        self.inter = [(np.asarray(i), np.asarray(y)) for i, y in s["inter"]]
        self.rng.bit_generator.state = s["rng"]
        torch.set_rng_state(s["torch_rng"])
        for m, p in zip(self.mcd, s["passes"]):
            m.image_passes = int(p)
        self.dg.image_passes = int(s["passes"][-1])


def web_labels_of(task: Task) -> list[np.ndarray] | None:
    """The crawl labels per unlabeled domain in the web variant, else None (close-set)."""
    return [task.web_labels[n] for n in task.unlabeled_names] if task.web_labels else None


def report_cycle(task: Task, rec: dict[str, Any], sel: dict[str, Any]) -> dict[str, Any]:
    """Pseudo-label accuracy and intermediate-domain size / precision per unlabeled domain, from the hidden truth
    (reporting only: nothing here is fed back)."""
    out: dict[str, Any] = {"cycle": rec["cycle"], "lr": rec["lr"], "best_val": rec["best_val"],
                           "val_curve": rec["val_curve"], **{k: v for k, v in rec["dg_losses"].items()}}
    for k, name in enumerate(task.unlabeled_names):
        truth = task.hidden_truth[name]
        out[f"pl_acc_{name}"] = float((rec["pseudo_labels"][k] == truth).mean() * 100)
        idx, y = sel["inter_idx"][k], sel["inter_labels"][k]
        out[f"inter_size_{name}"] = int(len(idx))
        out[f"inter_precision_{name}"] = float((y == truth[idx]).mean() * 100) if len(idx) else float("nan")
    out["pl_acc"] = float(np.mean([out[f"pl_acc_{n}"] for n in task.unlabeled_names]))
    precs = [out[f"inter_precision_{n}"] for n in task.unlabeled_names]
    out["inter_precision"] = float(np.nanmean(precs)) if not all(np.isnan(precs)) else float("nan")
    out["inter_size"] = int(sum(out[f"inter_size_{n}"] for n in task.unlabeled_names))
    return out


def run_cyclic(cfg: Config, task: Task, run: RunDir | None, device: torch.device, state: dict | None = None,
               trainer: CyclicSSDG | None = None, start_history: list | None = None) -> dict[str, Any]:
    """Run (or resume) the cycles; checkpoint after each. Returns final model, per-cycle models and history."""
    if trainer is None:
        trainer = CyclicSSDG(cfg, task.train, task.unlabeled, task.val, task.num_classes, device, web_labels_of(task))
    history, cycle_models = list(start_history or []), []
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        history, cycle_models = list(state["history"]), list(state["cycle_models"])
    while trainer.cycle < cfg.train.num_cycles:
        t0 = time.perf_counter()
        rec = trainer.train_cycle()
        sel = trainer.select()
        h = report_cycle(task, rec, sel)
        h["wall_s"] = time.perf_counter() - t0
        history.append(h)
        cycle_models.append(rec["state"])
        log.info("ssdg cycle %d: val %.1f, PL acc %.1f, intermediate %d (precision %.1f)", h["cycle"],
                 h["best_val"], h["pl_acc"], h["inter_size"], h["inter_precision"])
        if run is not None:
            run.log_metrics({"step": h["cycle"] + 1, **{k: v for k, v in h.items() if k != "val_curve"}})
            run.save_checkpoint({"method": "cyclic", "trainer": trainer.state_dict(), "history": history,
                                 "cycle_models": cycle_models, "final_model": cycle_models[-1], "done": False})
    return {"final_model": cycle_models[-1], "cycle_models": cycle_models, "history": history,
            "image_passes": trainer.image_passes, "trainer": trainer}


def run_baseline(cfg: Config, task: Task, device: torch.device, erm: dict[str, Any] | None = None) -> dict[str, Any]:
    """ERM / ERM+MixStyle / NaivePL / FixMatch with the same backbone init, data, optimizer, step budget and
    validation schedule as the cyclic method's peer a (`baselines.matched_budget`). NaivePL labels with `erm`
    (an ERM run's result) when given, else trains that ERM first; its cost is counted either way."""
    t, method = cfg.train, cfg.train.method
    rng = np.random.default_rng([cfg.seed, 12])
    init = pretrained_backbone(cfg)
    steps, evals = B.matched_budget(t, task)
    if method == "fixmatch":
        res = B.train_fixmatch(build_classifier(cfg, task.num_classes, False, init), task.train, task.unlabeled,
                               task.val, steps, evals, t, cfg.data, rng, device)
        return {**res, "history": []}
    if method == "naive_pl" and erm is not None:
        res = erm
    else:
        res = B.train_network(build_classifier(cfg, task.num_classes, method == "erm_mixstyle", init), task.train,
                              task.val, steps, evals, t, cfg.data, rng, device)
    if method != "naive_pl":
        return {**res, "history": []}
    labeler = build_classifier(cfg, task.num_classes, False)
    labeler.load_state_dict(res["state"])
    data, pls = B.naive_pl_data(labeler.to(device), task.train, task.unlabeled, device)
    out = B.train_network(build_classifier(cfg, task.num_classes, True, init), data, task.val, steps, evals, t,
                          cfg.data, rng, device)
    out["image_passes"] += res["image_passes"]
    out["history"] = [{"pl_acc_" + n: float((p == task.hidden_truth[n]).mean() * 100)
                       for n, p in zip(task.unlabeled_names, pls)}]
    return out


def train(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Train `cfg.train.method` into `run_dir` (config.json, metrics.jsonl, checkpoints/last.pt, summary.json).

    A cyclic run resumes from its last finished cycle; a finished run is not retrained.
    """
    if cfg.train.num_threads:
        with torch_threads(cfg.train.num_threads):
            return _train(cfg, run_dir)
    return _train(cfg, run_dir)


def _train(cfg: Config, run_dir: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    device = select_device(cfg.device)
    run = RunDir(run_dir)
    task = load_task(cfg)  # every input read and checked before the first write
    state = run.load_checkpoint() if run.config_path.exists() else None
    run.write_config(cfg)
    seed_everything(cfg.seed)
    if state is not None and state.get("done"):
        return _summary_of(state)
    if cfg.train.method == "cyclic":
        res = run_cyclic(cfg, task, run, device, state)
    else:
        res = run_baseline(cfg, task, device)
    summary = {"method": cfg.train.method, "task": cfg.data.task, "image_passes": int(res["image_passes"]),
               "final_epochs": cfg.train.final_epochs if cfg.train.method != "cyclic"
               else cfg.train.num_cycles * cfg.train.dg_epochs,
               "best_val": float(max(res["history"][-1]["best_val"], 0) if cfg.train.method == "cyclic"
                                 else res["best_val"]),
               "history": [{k: v for k, v in h.items() if k != "val_curve"} for h in res["history"]]}
    run.save_checkpoint({"method": cfg.train.method, "final_model": res["final_model"] if "final_model" in res
                         else res["state"], "cycle_models": res.get("cycle_models", []), "done": True,
                         "summary": summary})
    if cfg.train.method != "cyclic":
        run.log_metrics({"step": 1, "best_val": summary["best_val"], "image_passes": summary["image_passes"]})
    run.write_summary(summary, time.perf_counter() - t0, str(device))
    return {k: v for k, v in summary.items() if k != "history"}


def _summary_of(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state["summary"].items() if k != "history"}
