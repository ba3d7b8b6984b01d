"""Learners of qae (arXiv 2005.11149) at equal evaluation budgets: bound respected, no eigen-oracle, budgets kept."""

import copy
import math

import numpy as np
import pytest
import torch

from tenfold.systems.qae import bound as bound_module
from tenfold.systems.qae import learning
from tenfold.systems.qae.bound import compression_bound
from tenfold.systems.qae.control import ControlSystem, default_control_system
from tenfold.systems.qae.data import build_ensemble
from tenfold.systems.qae.loss import trash_projector

BUDGET = 120  # tiny evaluation budget for gradient-free learners


def tiny_learners(system: ControlSystem, rho: torch.Tensor, p: torch.Tensor) -> dict[str, learning.LearnResult]:
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    return {
        "adam": learning.grape(system, rho, p, iters=5, generator=g()),
        "sgd": learning.grape(system, rho, p, optimizer="sgd", iters=5, lr=0.5, generator=g()),
        "lbfgs": learning.grape(system, rho, p, optimizer="lbfgs", iters=3, lr=1.0, generator=g()),
        "de": learning.differential_evolution(system, rho, p, max_evaluations=BUDGET, popsize_per_dim=1, seed=0),
        "nm": learning.nelder_mead(system, rho, p, max_evaluations=BUDGET, seed=0),
        "cobyla": learning.cobyla(system, rho, p, max_evaluations=BUDGET, seed=0),
        "spsa": learning.spsa(system, rho, p, shots=100, max_evaluations=BUDGET, seed=0),
        "uga": learning.unitary_group_ascent(rho, p, steps=20, generator=g()),
        "unitary_encoder": learning.train_unitary_encoder(rho, p, iters=5, generator=g()),
        "circuit_encoder": learning.train_circuit_encoder(rho, p, num_layers=2, iters=5, generator=g()),
    }


@pytest.fixture(scope="module")
def small_case() -> tuple[ControlSystem, torch.Tensor, torch.Tensor]:
    return default_control_system(2, num_slices=5), build_ensemble("three_random", 0).rho, trash_projector(2, 1)


def test_adam_grape_two_random() -> None:
    # Spec section 5 smoke: Adam-GRAPE 50 iterations (Q = 20) on two_random (seed 0) reaches >= 0.99 (B_1 = 1).
    ens = build_ensemble("two_random", 0)
    res = learning.grape(default_control_system(2), ens.rho, trash_projector(2, 1), iters=50,
                         generator=torch.Generator().manual_seed(0))
    assert res.fidelity >= 0.99
    assert res.history[-1] > res.history[0]  # loss drops
    assert res.params.shape == (20, 4) and np.abs(res.params).max() <= 2.0
    assert np.all(np.diff(res.evaluations) > 0) and res.evaluations[-2] == 50 * learning.GRADIENT_COST


def test_every_history_point_below_bound(small_case) -> None:
    # F_enc <= B_k + 1e-9 at every history point of every learner (Ky Fan bound), and histories are indexed by
    # strictly increasing evaluation counts.
    system, rho, p = small_case
    bound = float(compression_bound(rho, 1))
    for name, res in tiny_learners(system, rho, p).items():
        assert res.history.shape == res.evaluations.shape, name
        assert np.all(np.isfinite(res.history)), name
        assert res.history.max() <= bound + 1e-9, name
        assert res.fidelity <= bound + 1e-9, name
        assert np.all(np.diff(res.evaluations) > 0), name


def test_learners_never_read_eigenvectors(small_case, monkeypatch) -> None:
    # Pitfall 8: patch the eigen-solvers and the bound's oracle to raise; every learner must still run.
    def forbidden(*args, **kwargs):
        raise AssertionError("a learner called an eigen-solver or the bound oracle")

    for target, attr in [(torch.linalg, "eigh"), (torch.linalg, "eigvalsh"), (torch.linalg, "eig"),
                         (np.linalg, "eigh"), (np.linalg, "eigvalsh"),
                         (bound_module, "optimal_unitary"), (bound_module, "compression_bound")]:
        monkeypatch.setattr(target, attr, forbidden)
    system, rho, p = small_case
    results = tiny_learners(system, rho, p)
    assert len(results) == 10


@pytest.mark.parametrize("learner", ["de", "nm", "cobyla", "spsa"])
def test_gradient_free_budget(small_case, learner: str) -> None:
    # Histories are indexed by fitness evaluations and never exceed the budget; DE's best-so-far never decreases.
    system, rho, p = small_case
    budget = 97
    res = {
        "de": lambda: learning.differential_evolution(system, rho, p, max_evaluations=budget, popsize_per_dim=1),
        "nm": lambda: learning.nelder_mead(system, rho, p, max_evaluations=budget),
        "cobyla": lambda: learning.cobyla(system, rho, p, max_evaluations=budget),
        "spsa": lambda: learning.spsa(system, rho, p, max_evaluations=budget),
    }[learner]()
    assert res.evaluations[-1] <= budget
    if learner != "spsa":  # best-so-far histories
        assert np.all(np.diff(res.history) >= 0)
        assert res.fidelity == pytest.approx(res.history[-1])
        exact = float(system.fidelity(torch.from_numpy(res.params), rho, p))
        assert exact == pytest.approx(res.fidelity, abs=1e-12)


def test_de_population_batches(small_case) -> None:
    # Population S = popsize_per_dim * Q * M = 2 * 20 = 40; budget 130 => 130 // 40 - 1 = 2 generations after the
    # initial population: evaluations 40, 80, 120.
    system, rho, p = small_case
    res = learning.differential_evolution(system, rho, p, max_evaluations=130, popsize_per_dim=2, seed=3)
    assert res.evaluations.tolist() == [40, 80, 120]


def test_grape_resume_matches_straight_run(small_case) -> None:
    # Resuming from (u, optimizer state) captured by on_step at iteration 4 reproduces the straight 10-step run.
    system, rho, p = small_case
    saved = {}

    def on_step(it, u, opt, hist):
        if it == 4:  # what a checkpoint would store after iteration 4
            saved["u"], saved["state"] = u.detach().clone(), copy.deepcopy(opt.state_dict())

    straight = learning.grape(system, rho, p, iters=10, generator=torch.Generator().manual_seed(0), on_step=on_step)
    resumed = learning.grape(system, rho, p, iters=10, init_u=saved["u"], optimizer_state=saved["state"],
                             start_iter=5)
    np.testing.assert_allclose(resumed.params, straight.params, rtol=0, atol=1e-12)
    assert resumed.evaluations[0] == 6 * learning.GRADIENT_COST


def test_grape_stops_on_non_finite(small_case) -> None:
    system, rho, p = small_case
    bad = ControlSystem(system.H0 * math.nan, system.Hc, system.T, system.num_slices)
    res = learning.grape(bad, rho, p, iters=10, generator=torch.Generator().manual_seed(0))
    assert len(res.history) == 1  # only the final (non-finite) evaluation is recorded


def test_unitary_group_ascent_reaches_bound() -> None:
    # werner(0.6), 2 -> 1: B_1 = 0.8; the reference optimiser reaches it.
    rho, p = build_ensemble("werner", 0).rho, trash_projector(2, 1)
    res = learning.unitary_group_ascent(rho, p, steps=500)
    assert abs(res.fidelity - 0.8) < 1e-6
    assert res.params.shape == (4, 4)


def test_unitary_encoder_matches_unitary_group_ascent() -> None:
    # Spec section 6: the unconstrained UnitaryEncoder optimum equals the unitary-group-ascent optimum to 1e-3.
    rho, p = build_ensemble("three_random", 0).rho, trash_projector(2, 1)
    a = learning.train_unitary_encoder(rho, p, iters=200, generator=torch.Generator().manual_seed(1))
    b = learning.unitary_group_ascent(rho, p, steps=500, generator=torch.Generator().manual_seed(1))
    assert abs(a.fidelity - b.fidelity) < 1e-3
