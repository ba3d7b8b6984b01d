"""`tenfold reproduce qae`: the claims of arXiv 2005.11149 measured side by side (spec section 6).

Every learner sees only rho and P; the bound B_k(rho) is computed here, after learning, to judge.
Rows (each a `Claim`, verdict computed from the measured numbers):
  A  every learner's F_enc <= B_k + 1e-9 at every history point, over every ensemble it ran on
  B  Adam-GRAPE reaches B_k - 1e-3 on each controllable case (2- and 3-qubit ensembles)
  C  lossless exactly when rank rho <= 2^k (unitary-group ascent on every ensemble)
  D  Adam-GRAPE needs fewer fitness evaluations than DE to reach B_k - 1e-2
  E  Adam-GRAPE >= DE, Nelder-Mead, COBYLA in F_enc at (at most) the same evaluation budget
  F  fewer latent qubits => lower rate (four_random, k = 1 vs k = 2)
  G  F_enc^2 <= F_dec <= F_enc for every state of the learned encoders
  H  SPSA on shot-noise estimates vs the exact-gradient result
  I  controllable system = unconstrained optimum (Adam-GRAPE vs unitary-group ascent)
  J  unitary-group ascent reaches B_k to 1e-6 on random full-rank rho
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tenfold.core.claims import Claim, Relation
from tenfold.core.config import make_config
from tenfold.core.runtime import progress, seed_everything, torch_threads
from tenfold.systems.qae import learning
from tenfold.systems.qae.bound import compression_bound, is_lossless
from tenfold.systems.qae.config import PROFILES, Config
from tenfold.systems.qae.control import default_control_system
from tenfold.systems.qae.data import Ensemble, build_ensemble
from tenfold.systems.qae.evaluate import per_state_fidelities
from tenfold.systems.qae.loss import trash_projector

log = logging.getLogger("tenfold.qae")
SYSTEM = "qae"


@dataclass(frozen=True)
class Case:
    ensemble: Ensemble
    k: int
    seed: int | None = None  # set for the repeated random full-rank instances, to tell them apart

    @property
    def label(self) -> str:
        tag = "" if self.seed is None else f" #{self.seed}"
        return f"{self.ensemble.name}{tag} {self.ensemble.num_qubits}->{self.k}"

    @property
    def P(self) -> torch.Tensor:
        return trash_projector(self.ensemble.num_qubits, self.k)

    @property
    def bound(self) -> float:
        return float(compression_bound(self.ensemble.rho, self.k))


def ascent_cases(rc, seed: int) -> list[Case]:
    """Every ensemble of spec 4.1, plus `num_full_rank_seeds` random full-rank rho per (n, k)."""
    named = [("two_random", 1), ("three_random", 1), ("four_random", 2), ("four_random", 1), ("ghz_w", 1),
             ("basis3", 1), ("werner", 1), ("maximally_mixed3", 2), ("paddle_spectrum", 2), ("tfim_thermal", 1)]
    cases = [Case(build_ensemble(name, seed), k) for name, k in named]
    for j in range(rc.num_full_rank_seeds):
        cases += [Case(build_ensemble("random_full_rank2", seed + j), 1, seed + j),
                  Case(build_ensemble("random_full_rank3", seed + j), 1, seed + j),
                  Case(build_ensemble("random_full_rank3", seed + j), 2, seed + j)]
    return cases


def grape_cases(rc, seed: int) -> list[Case]:
    out = []
    for entry in rc.grape_cases:
        name, _, k = entry.partition(":")
        out.append(Case(build_ensemble(name, seed), int(k)))
    return out


def _evals_to_reach(result: learning.LearnResult, target: float) -> float | None:
    hit = np.nonzero(result.history >= target)[0]
    return float(result.evaluations[hit[0]]) if hit.size else None


def _best_within(result: learning.LearnResult, evaluations: float) -> float:
    """Best exact F_enc a learner had found within its first `evaluations` fitness evaluations."""
    seen = result.history[result.evaluations <= evaluations]
    return float(np.max(seen)) if seen.size else float("nan")


def _row(claim: str, metric: str, method: str, mv: float, baseline: str, bv: float, rel: Relation,
         seeds: tuple[int, ...], wall: float, details: str = "") -> Claim:
    return Claim(system=SYSTEM, claim=claim, metric=metric, method=method, method_value=mv, baseline=baseline,
                 baseline_value=bv, relation=rel, seeds=seeds, wall_time_s=wall, details=details)


def reproduce(profile: str, seed: int, out_dir: Path) -> list[Claim]:
    cfg: Config = make_config(Config, PROFILES, profile, {"seed": seed})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch_threads(1):  # 4x4..16x16 matrices: threading only adds overhead
        runs, wall = run_learners(cfg, seed)
    rc, seeds = cfg.reproduce, (seed,)
    rows = (_bound_rows(runs, wall, seeds) + _grape_rows(runs, wall, seeds) + _lossless_rows(runs, wall, seeds)
            + _comparison_rows(runs, wall, seeds, rc.spsa_shots) + _structure_rows(runs, wall, seeds))
    plot_training_curves(runs, out_dir / "training_curves.png")
    plot_bound_vs_learned(runs, out_dir / "bound_vs_learned.png")
    return rows


def run_learners(cfg: Config, seed: int) -> tuple[dict[str, list[tuple[Case, learning.LearnResult]]], dict]:
    """Every learner on its cases; returns ({learner: [(case, result)]}, {learner: wall seconds})."""
    rc, u_max, lr = cfg.reproduce, cfg.model.u_max, cfg.train.lr
    generator = seed_everything(seed)
    runs: dict[str, list[tuple[Case, learning.LearnResult]]] = {}
    wall: dict[str, float] = {}

    def timed(name: str, cases: list[Case], fit) -> None:
        t0 = time.perf_counter()
        for case in progress(cases, f"qae {name}"):
            runs.setdefault(name, []).append((case, fit(case, default_control_system(case.ensemble.num_qubits))))
        wall[name] = time.perf_counter() - t0

    # Reference optimiser on every ensemble (rows C, J and part of A, I).
    timed("unitary_ascent", ascent_cases(rc, seed), lambda c, s: learning.unitary_group_ascent(
        c.ensemble.rho, c.P, eta=cfg.train.ascent_eta, steps=rc.ascent_steps))
    # Exact-gradient learning control on every controllable case (rows B, E, F, G, I).
    timed("grape_adam", grape_cases(rc, seed), lambda c, s: learning.grape(
        s, c.ensemble.rho, c.P, optimizer="adam", iters=rc.grape_iters, lr=lr, u_max=u_max, generator=generator))
    # The same problems for every other learner: the two 2-qubit random ensembles (rows A, E, H).
    compared = [c for c, _ in runs["grape_adam"] if c.ensemble.name in ("two_random", "three_random")]
    budget = rc.budget_evaluations
    timed("grape_lbfgs", compared, lambda c, s: learning.grape(
        s, c.ensemble.rho, c.P, optimizer="lbfgs", iters=max(1, rc.grape_iters // learning.LBFGS_INNER_ITERS),
        lr=1.0, u_max=u_max, generator=generator))
    timed("de", compared, lambda c, s: learning.differential_evolution(
        s, c.ensemble.rho, c.P, max_evaluations=budget, popsize_per_dim=rc.de_popsize_per_dim, u_max=u_max,
        seed=seed))
    timed("nelder_mead", compared, lambda c, s: learning.nelder_mead(
        s, c.ensemble.rho, c.P, max_evaluations=budget, u_max=u_max, seed=seed))
    timed("cobyla", compared, lambda c, s: learning.cobyla(
        s, c.ensemble.rho, c.P, max_evaluations=min(budget, rc.cobyla_budget_evaluations), u_max=u_max, seed=seed))
    timed("spsa", compared, lambda c, s: learning.spsa(
        s, c.ensemble.rho, c.P, shots=rc.spsa_shots, max_evaluations=budget, u_max=u_max, seed=seed))
    return runs, wall


def _bound_rows(runs, wall, seeds) -> list[Claim]:
    rows = []
    for name, items in runs.items():
        excess = max(float(np.max(res.history)) - case.bound for case, res in items)
        rows.append(_row("F_enc never exceeds the eigenvalue bound (sum of the top 2^k eigenvalues)",
                         "max over ensembles and iterations of F_enc - B_k", name, excess, "bound", 0.0,
                         Relation("<=", 1e-9), seeds, wall[name], f"{len(items)} ensembles"))
    return rows


def _grape_rows(runs, wall, seeds) -> list[Claim]:
    rows = []
    per = wall["grape_adam"] / max(len(runs["grape_adam"]), 1)
    for case, res in runs["grape_adam"]:
        rows.append(_row("Exact-gradient learning control reaches the bound", f"F_enc ({case.label})",
                         "grape_adam", res.fidelity, "bound B_k", case.bound, Relation(">=", -1e-3), seeds, per,
                         f"{int(res.evaluations[-1])} fitness evaluations"))
    return rows


def _lossless_rows(runs, wall, seeds) -> list[Claim]:
    agree = 0
    items = runs["unitary_ascent"]
    wrong = []
    for case, res in items:
        lossless = is_lossless(case.ensemble.rho, case.k)
        reached_one = res.fidelity >= 0.999
        agree += int(lossless == reached_one)
        if lossless != reached_one:
            wrong.append(case.label)
    return [_row("Lossless compression exactly when rank(rho) <= 2^k",
                 "ensembles where (learned F_enc >= 0.999) == (rank rho <= 2^k)", "unitary_ascent", agree,
                 "all ensembles", len(items), Relation(">=", 0.0), seeds, wall["unitary_ascent"],
                 "disagree: " + ", ".join(wrong) if wrong else "all agree")]


def _comparison_rows(runs, wall, seeds, shots: int) -> list[Claim]:
    rows = []
    grape = {c.label: (c, r) for c, r in runs["grape_adam"]}
    for name in ("de", "nelder_mead", "cobyla"):
        for case, res in runs[name]:
            _, g = grape[case.label]
            n_grape = float(g.evaluations[-1])
            rows.append(_row("Exact-gradient control beats gradient-free learning at an equal evaluation budget",
                             f"F_enc within {int(n_grape)} evaluations ({case.label})", "grape_adam", g.fidelity,
                             name, _best_within(res, n_grape), Relation(">=", 0.0), seeds, wall[name],
                             f"{name} at its full budget of {int(res.evaluations[-1])} evaluations: "
                             f"F_enc {res.fidelity:.6f} in {res.wall_time_s:.2f} s; grape {g.wall_time_s:.2f} s"))
        for case, res in runs[name]:
            _, g = grape[case.label]
            target = case.bound - 1e-2
            ng, nl = _evals_to_reach(g, target), _evals_to_reach(res, target)
            budget = int(res.evaluations[-1])
            rows.append(_row(f"The gradient method needs fewer fitness evaluations than {name} to reach B_k - 1e-2",
                             f"fitness evaluations to reach B_k - 0.01 ({case.label})", "grape_adam",
                             float("nan") if ng is None else ng, name, budget + 1 if nl is None else nl,
                             Relation("<", 0.0), seeds, wall[name],
                             f"{name} did not reach the target within {budget} evaluations" if nl is None else ""))
    for case, res in runs["spsa"]:
        _, g = grape[case.label]
        sigma = float(np.sqrt(max(g.fidelity * (1 - g.fidelity), 0.0) / shots))
        # Design choice: SPSA's iterate is judged by its exact F_enc; the tolerance is 3 standard errors of
        # the shot estimate at the measured F (spec 6) plus 1/sqrt(S), the resolution of S shots near F = 1.
        tol = 3 * sigma + 1 / np.sqrt(shots)
        rows.append(_row(f"Experiment-like learning (SPSA, {shots} shots) approaches the exact-gradient result",
                         f"F_enc ({case.label})", "spsa", res.fidelity, "grape_adam", g.fidelity,
                         Relation(">=", -float(tol)), seeds, wall["spsa"],
                         f"tolerance {tol:.4f}; {int(res.evaluations[-1])} measured evaluations"))
    return rows


def _structure_rows(runs, wall, seeds) -> list[Claim]:
    rows = []
    grape = runs["grape_adam"]
    four = {c.k: r for c, r in grape if c.ensemble.name == "four_random"}
    if 1 in four and 2 in four:
        rows.append(_row("Fewer latent qubits give a lower compression rate", "F_enc (four_random 3->1 vs 3->2)",
                         "k=1", four[1].fidelity, "k=2", four[2].fidelity, Relation("<", 0.0), seeds,
                         wall["grape_adam"]))
    slack = np.inf
    system_cache = {}
    for case, res in grape:
        if case.ensemble.kets is None:  # mixed-state inputs (werner): F_dec is defined per pure state
            continue
        n = case.ensemble.num_qubits
        system = system_cache.setdefault(n, default_control_system(n))
        U = system.propagator(torch.as_tensor(res.params, dtype=torch.float64))
        f_enc, f_dec, _ = per_state_fidelities(U, case.ensemble, case.k, case.P)
        slack = min(slack, float(torch.min(torch.minimum(f_dec - f_enc**2, f_enc - f_dec))))
    rows.append(_row("Decoding fidelity is a different number: F_enc^2 <= F_dec <= F_enc per state",
                     "min over states of min(F_dec - F_enc^2, F_enc - F_dec)", "grape_adam encoders", slack,
                     "0", 0.0, Relation(">=", -1e-12), seeds, wall["grape_adam"]))
    asc = {c.label: r for c, r in runs["unitary_ascent"]}
    diffs = [abs(res.fidelity - asc[c.label].fidelity) for c, res in grape if c.label in asc]
    rows.append(_row("A controllable system reaches the unconstrained optimum",
                     "max |F_enc(control) - F_enc(unitary-group ascent)|", "grape_adam", max(diffs),
                     "unitary_ascent", 0.0, Relation("within", 1e-3), seeds, wall["grape_adam"],
                     f"{len(diffs)} ensembles"))
    full_rank = [(c, r) for c, r in runs["unitary_ascent"] if c.ensemble.name.startswith("random_full_rank")]
    gap = max(abs(c.bound - r.fidelity) for c, r in full_rank)
    rows.append(_row("Gradient ascent over the unitary group reaches the bound (no traps)",
                     "max |B_k - F_enc| over random full-rank rho", "unitary_ascent", gap, "0", 0.0,
                     Relation("<=", 1e-6), seeds, wall["unitary_ascent"], f"{len(full_rank)} instances"))
    return rows


LEARNER_TITLES = {"grape_adam": "Adam-GRAPE (exact gradient)", "grape_lbfgs": "L-BFGS-GRAPE (exact gradient)",
                  "de": "differential evolution", "nelder_mead": "Nelder-Mead", "cobyla": "COBYLA",
                  "spsa": "SPSA (shot noise)", "unitary_ascent": "unitary-group ascent (reference)"}


def plot_training_curves(runs, path: Path) -> None:
    """One panel per algorithm: F_enc vs fitness evaluations, the bound B_k drawn as a dashed line."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in LEARNER_TITLES if n in runs and n != "unitary_ascent"]
    fig, axes = plt.subplots(2, (len(names) + 1) // 2, figsize=(4.2 * ((len(names) + 1) // 2), 7), squeeze=False)
    colors = {}
    for ax, name in zip(axes.flat, names):
        for case, res in runs[name]:
            if case.ensemble.name not in ("two_random", "three_random"):
                continue
            color = colors.setdefault(case.label, f"C{len(colors)}")
            ax.plot(np.maximum(res.evaluations, 1), res.history, color=color, label=case.label)
            ax.axhline(case.bound, color=color, ls="--", lw=1)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(LEARNER_TITLES[name], fontsize=10)
        ax.set_xlabel("fitness evaluations")
        ax.set_ylabel("encoding fidelity F_enc")
        ax.set_ylim(0.3, 1.02)
        ax.legend(fontsize=8, loc="lower right")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("qae: training curves (dashed: eigenvalue bound B_k)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_bound_vs_learned(runs, path: Path) -> None:
    """Bound B_k vs learned F_enc for every ensemble (ascent) and every Adam-GRAPE case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = runs["unitary_ascent"]
    grape = {c.label: r.fidelity for c, r in runs.get("grape_adam", [])}
    labels = [c.label for c, _ in items]
    x = np.arange(len(items))
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(items)), 4.5))
    ax.bar(x - 0.27, [c.bound for c, _ in items], 0.27, label="bound B_k", color="0.6")
    ax.bar(x, [r.fidelity for _, r in items], 0.27, label="unitary-group ascent", color="C0")
    ax.bar(x + 0.27, [grape.get(lab, np.nan) for lab in labels], 0.27, label="Adam-GRAPE (control)", color="C1")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("encoding fidelity")
    ax.set_ylim(0, 1.22)  # room for the legend above the bars
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    ax.set_title("qae: learned F_enc vs the eigenvalue bound")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
