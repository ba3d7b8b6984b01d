"""`reproduce` of qae (arXiv 2005.11149): seeds, row keys across seeds, claims vs checks, budgets, the full profile.

Only development seeds (config.DEV_SEEDS) are used here; the claim seeds are never run in tests.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from tenfold.core.claims import Measurement, aggregate
from tenfold.core.config import make_config
from tenfold.systems.qae import reproduce as rep
from tenfold.systems.qae.config import DEV_SEEDS, PROFILES, Config

QAE = Path(rep.__file__).parent
TINY = {"reproduce.grape_iters": 5, "reproduce.ascent_steps": 400, "reproduce.budget_evaluations": 200,
        "reproduce.cobyla_budget_evaluations": 100, "reproduce.num_full_rank_seeds": 1, "reproduce.spsa_shots": 100}


def _rows(seed: int, **overrides) -> list[Measurement]:
    cfg = make_config(Config, PROFILES, "smoke", {**TINY, **overrides, "seed": seed})
    runs, grape_cases, compared = rep.run_learners(cfg, seed)
    return (rep.check_rows(runs, seed, cfg.reproduce) + rep.grape_rows(runs, grape_cases, seed)
            + rep.comparison_rows(runs, compared, seed, cfg.reproduce))


def test_sub_seeds_never_overlap_between_consecutive_seeds() -> None:
    # seed * 1000 + j: seed 1000 uses 1_000_000..1_000_999, seed 1001 uses 1_001_000..; with seed + j, seed 1000's
    # j = 1 would equal seed 1001's j = 0.
    assert rep.sub_seed(1000, 1) == 1_000_001 and rep.sub_seed(1001, 0) == 1_001_000
    for seed in (0, 1, 1000):
        assert not {rep.sub_seed(seed, j) for j in range(1000)} & {rep.sub_seed(seed + 1, j) for j in range(1000)}
    with pytest.raises(ValueError):
        rep.sub_seed(0, 1000)


def test_each_seed_builds_its_own_instances_with_seed_free_labels() -> None:
    rc = make_config(Config, PROFILES, "quick").reproduce
    a, b, again = rep.build_cases(rc, 0), rep.build_cases(rc, 1), rep.build_cases(rc, 0)
    assert [c.label for c in a] == [c.label for c in b]  # row strings do not depend on the seed
    assert len(a) == 10 + 3 * rc.num_full_rank_seeds
    for x, y, z in zip(a, b, again):
        assert (x.ensemble.rho - z.ensemble.rho).abs().max() == 0  # reproducible
        if x.ensemble.name.startswith(("two_random", "three_random", "four_random", "random_full_rank",
                                       "paddle_spectrum")):
            assert (x.ensemble.rho - y.ensemble.rho).abs().max() > 1e-3  # a new instance per seed
    # two_random and three_random are independent draws (not the first kets of one generator)
    two, three = a[0].ensemble.kets, a[1].ensemble.kets
    assert (two - three[:2]).abs().max() > 1e-3


def test_rows_have_identical_keys_across_seeds_and_aggregate() -> None:
    first, second = _rows(0), _rows(1)
    assert [m.key for m in first] == [m.key for m in second]
    assert len(set(m.key for m in first)) == len(first)  # no row measured twice
    claims = aggregate(first + second)
    assert len(claims) == len(first) and all(c.seeds == (0, 1) for c in claims)
    kinds = {m.kind for m in first}
    assert kinds == {"claim", "check"}
    checks = [m for m in first if m.kind == "check"]
    assert all(m.verdict == "holds" for m in checks), [(m.claim, m.method, m.method_value) for m in checks
                                                        if m.verdict != "holds"]
    for m in first:
        if m.kind == "claim":
            assert m.reference == rep.REFERENCE and math.isfinite(m.reference_value)
            assert m.budget.get("method"), m.key
    for m in first:  # every gradient-free comparison states both arms at both costs
        if m.claim.startswith("At an equal number of hardware"):
            for arm in ("method", "baseline"):
                assert {"simulation_evaluations", "hardware_evaluations", "wall_s"} <= set(m.budget[arm])
            budget = 100 if m.baseline == "cobyla" else 200
            assert m.budget["method"]["hardware_evaluations"] <= budget
            assert m.budget["baseline"]["hardware_evaluations"] <= budget


def test_full_profile_validates_and_enumerates_the_spec_sweeps() -> None:
    # Spec 5, full: 3-5 qubits; Q in {20, 50, 100}; a T sweep for the minimal-T curve; shots 10^3-10^5.
    rc = make_config(Config, PROFILES, "full").reproduce
    assert rep.sweep_grid(rc) == [(3, 20), (3, 50), (3, 100), (4, 20), (4, 50), (4, 100), (5, 20), (5, 50), (5, 100)]
    assert rc.sweep_shots == (1000, 10_000, 100_000)
    times = rc.sweep_evolution_times
    assert list(times) == sorted(times) and times[-1] == pytest.approx(math.pi) and times[0] < 1.0
    assert rc.budget_evaluations == 39_000 and rc.de_popsize_per_dim == 8  # the calibrated DE set-up
    for profile in ("smoke", "quick"):
        quick = make_config(Config, PROFILES, profile).reproduce
        assert rep.sweep_grid(quick) == [] and not quick.sweep_evolution_times and not quick.sweep_shots


def test_full_profile_sweep_runs_at_tiny_scale(tmp_path) -> None:
    # The full profile's sweep code on a tiny grid: 3 qubits x Q = 4, two T values, one extra shot count.
    seed = 0
    cfg = make_config(Config, PROFILES, "smoke", {
        **TINY, "seed": seed, "reproduce.grape_cases": ("two_random:1",), "reproduce.sweep_num_qubits": (3,),
        "reproduce.sweep_num_slices": (4,), "reproduce.sweep_evolution_times": (0.1, 3.0),
        "reproduce.sweep_shots": (100, 50)})
    runs, grape_cases, compared = rep.run_learners(cfg, seed)
    cases = [c for c, _ in runs.results["unitary_ascent"]]
    rows = rep.sweep_rows(cfg, seed, runs, cases, compared, tmp_path)
    metrics = [m.metric for m in rows]
    assert "Lie-algebra rank (3 qubits)" in metrics
    assert "F_enc (2_random3 3->1, Q = 4)" in metrics and "F_enc (random_full_rank3 3->1, Q = 4)" in metrics
    assert "F_enc at T = 0.1 (two_random 2->1)" in metrics
    spsa = [m for m in rows if m.claim.startswith("Experiment-like")]
    assert [m.claim for m in spsa] == ["Experiment-like learning (SPSA, 50 shots) approaches the exact-gradient "
                                       "result"]  # 100 shots = reproduce.spsa_shots, measured by the main rows
    assert (tmp_path / "minimal_time.png").exists()


def test_dev_seeds_listed() -> None:
    assert {0, 1, 2, 7, 13, 21, 42} <= set(DEV_SEEDS)
    assert not set(DEV_SEEDS) & {1000, 1001, 1002}


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at top level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{alias.name}" for alias in node.names}
    return out


def test_train_and_evaluate_do_not_import_each_other() -> None:
    train, evaluate = _imports(QAE / "train.py"), _imports(QAE / "evaluate.py")
    assert not any(m.endswith("qae.evaluate") or m.startswith("tenfold.systems.qae.evaluate") for m in train)
    assert not any(m.endswith("qae.train") or m.startswith("tenfold.systems.qae.train") for m in evaluate)
    assert "tenfold.systems.qae.encoder" in train and "tenfold.systems.qae.encoder" in evaluate
    for name in ("reproduce.py", "predict.py"):
        assert not any(m.startswith(("tenfold.systems.qae.train", "tenfold.systems.qae.evaluate"))
                       for m in _imports(QAE / name)), name
