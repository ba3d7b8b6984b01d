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


# ------------------------------------------------------------------ budgets at simulation and hardware cost

def test_hardware_gradient_cost_hand() -> None:
    # Central differences (or a two-term shift rule): 2 evaluations per control. Q = 20 slices x M = 4 controls
    # (2 qubits, X/Y on each) = 80 controls -> 160; 3 qubits: Q = 30 x M = 6 = 180 controls -> 360.
    assert learning.hardware_gradient_cost(20, 4) == 160
    assert learning.hardware_gradient_cost(30, 6) == 360


def test_grape_hardware_evaluations_hand() -> None:
    # A GRAPE step = GRADIENT_COST = 2 simulation evaluations = 160 (gradient) + 1 (J at the iterate) = 161 on
    # hardware; the final objective evaluation (+1 in simulation) is 1 hardware evaluation.
    # simulation counts [2, 4, 6, 7] -> hardware [161, 322, 483, 484].
    out = learning.grape_hardware_evaluations(np.array([2, 4, 6, 7]), 20, 4)
    assert out.tolist() == [161, 322, 483, 484]


def test_grape_counts_both_costs() -> None:
    # 5 Adam steps on the default 2-qubit system (Q = 20, M = 4): simulation 2, 4, ..., 10 then 11;
    # hardware 161, ..., 805 then 806.
    ens = build_ensemble("two_random", 0)
    res = learning.grape(default_control_system(2), ens.rho, trash_projector(2, 1), iters=5,
                         generator=torch.Generator().manual_seed(0))
    assert res.evaluations.tolist() == [2, 4, 6, 8, 10, 11]
    assert res.hardware_evaluations.tolist() == [161, 322, 483, 644, 805, 806]
    assert res.times.shape == res.history.shape and np.all(np.diff(res.times) >= 0)


def test_lbfgs_history_indexed_when_known(small_case) -> None:
    # J of the step's starting point is known after the step's first closure call: the first history point sits at
    # GRADIENT_COST simulation evaluations whatever the line search spends afterwards.
    system, rho, p = small_case
    res = learning.grape(system, rho, p, optimizer="lbfgs", iters=3, lr=1.0, generator=torch.Generator().manual_seed(0))
    assert res.evaluations[0] == learning.GRADIENT_COST
    assert np.all(np.diff(res.evaluations) > 0)


def test_gradient_free_and_ascent_hardware_counts(small_case) -> None:
    # One fitness evaluation of a gradient-free learner is one measured expectation value; the unitary-group ascent
    # needs rho itself and has no hardware count.
    system, rho, p = small_case
    for res in tiny_learners(system, rho, p).values():
        assert res.times is not None and res.times.shape == res.history.shape
        if res.learner in ("differential_evolution", "nelder_mead", "cobyla", "spsa_100"):
            assert res.hardware_evaluations.tolist() == res.evaluations.tolist()
    uga = learning.unitary_group_ascent(rho, p, steps=10)
    assert uga.hardware_evaluations is None


def test_best_within_and_used_within_hand() -> None:
    # history 0.2, 0.5, 0.4, 0.9 at hardware 100, 200, 300, 400 and times 1, 2, 3, 4 s:
    # within 250 hardware -> best of (0.2, 0.5) = 0.5, spent 200; within 3.5 s -> best of the first three = 0.5;
    # within 50 hardware -> nothing yet -> NaN.
    res = learning.LearnResult("x", np.zeros(1), 0.9, np.array([1, 2, 3, 4]), np.array([0.2, 0.5, 0.4, 0.9]), 4.0,
                               hardware_evaluations=np.array([100, 200, 300, 400]), times=np.array([1.0, 2, 3, 4]))
    assert res.best_within(250) == 0.5
    assert res.used_within(250) == {"simulation_evaluations": 2, "wall_s": 2.0, "hardware_evaluations": 200}
    assert res.best_within(3.5, "wall") == 0.5
    assert res.best_within(3, "simulation") == 0.5
    assert math.isnan(res.best_within(50))
    assert res.used_within(50) == {"simulation_evaluations": 0, "wall_s": 0.0, "hardware_evaluations": 0}


def test_shared_initial_pulse(small_case) -> None:
    # Paired comparisons: Nelder-Mead's and COBYLA's first evaluation is x0 itself; DE's first population holds x0.
    system, rho, p = small_case
    x0 = learning.init_controls(system, torch.Generator().manual_seed(7))
    f0 = float(system.fidelity(x0, rho, p))
    for fit in (learning.nelder_mead, learning.cobyla):
        res = fit(system, rho, p, max_evaluations=30, x0=x0)
        assert res.history[0] == pytest.approx(f0, abs=1e-12)
    de = learning.differential_evolution(system, rho, p, max_evaluations=40, popsize_per_dim=1, x0=x0)
    assert de.history[0] >= f0 - 1e-12
    g = learning.grape(system, rho, p, iters=1, init_u=x0)
    assert g.history[0] == pytest.approx(f0, abs=1e-12)


def test_unitary_group_ascent_multistart_and_stop() -> None:
    # Best of 3 Haar starts is at least the first start alone (same generator: start 1 is the same unitary);
    # evaluations count steps x starts; the gradient-norm stop ends well before 2000 steps on werner.
    rho, p = build_ensemble("werner", 0).rho, trash_projector(2, 1)
    one = learning.unitary_group_ascent(rho, p, steps=30, grad_tol=0.0, generator=torch.Generator().manual_seed(4))
    three = learning.unitary_group_ascent(rho, p, steps=30, grad_tol=0.0, num_starts=3,
                                          generator=torch.Generator().manual_seed(4))
    assert three.fidelity >= one.fidelity - 1e-12
    assert three.evaluations.tolist() == [3 * t for t in range(1, 32)]
    stopped = learning.unitary_group_ascent(rho, p, steps=2000, num_starts=2)
    assert len(stopped.history) < 2000 and abs(stopped.fidelity - 0.8) < 1e-10
