"""Learning-control algorithms compared at equal budgets of fitness evaluations.

Paper: Ma et al., "On compression rate of quantum autoencoders: control design, numerical and experimental
realization", Automatica 147 (2023) 110659, arXiv 2005.11149. The paper compares "training performance using
different machine learning algorithms"; its list is not available, so this set is a design choice (spec component 11):

    exact-gradient GRAPE (autograd through matrix_exp; Adam / SGD / L-BFGS)    -> grape
    differential evolution (scipy, vectorised over the population)             -> differential_evolution
    Nelder-Mead / COBYLA (scipy.optimize.minimize)                              -> nelder_mead, cobyla
    SPSA on shot-noise fidelities F_hat = Binomial(S, F)/S                      -> spsa
    Riemannian ascent on U(d): U <- exp(eta [P U rho U^+ - U rho U^+ P]) U      -> unitary_group_ascent
    Adam on UnitaryEncoder / CircuitEncoder                                     -> train_unitary_encoder,
                                                                                   train_circuit_encoder
Every learner maximises J = Tr[P U rho U^+] (loss_enc = 1 - J) and returns a LearnResult whose history holds the
EXACT F_enc indexed by the cumulative number of fitness evaluations (pitfall 6), counted twice:
  evaluations           at SIMULATION cost: one exact gradient (forward + autograd backward) = GRADIENT_COST = 2
  hardware_evaluations  at HARDWARE cost: each fitness evaluation is one measured expectation value, and a gradient
                        over Q*M controls is estimated from 2 Q M of them (hardware_gradient_cost)
and the wall-clock seconds of each history point (`times`). No learner reads eigenvalues or eigenvectors of rho,
nor the bound (pitfall 8): only matrix_exp, matrix products and traces are used.

# Design choice: all control learners share the amplitude box |u| <= u_max (u_max = 2) and the init u ~ U[-1, 1];
# every control learner accepts the same initial controls x0 (paired comparisons start from one point).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.optimize
import torch
from torch import Tensor

from tenfold.core.errors import InputError
from tenfold.systems.qae.control import ControlSystem
from tenfold.systems.qae.data import haar_unitary
from tenfold.systems.qae.loss import encoding_fidelity
from tenfold.systems.qae.model import CircuitEncoder, UnitaryEncoder

log = logging.getLogger(__name__)

CDTYPE = torch.complex128
RDTYPE = torch.float64
# Design choice: at simulation cost one exact-gradient evaluation (forward + autograd backward) costs 2
# forward-equivalent fitness evaluations; an L-BFGS closure call costs the same 2.
GRADIENT_COST = 2
LBFGS_INNER_ITERS = 5


def hardware_gradient_cost(num_slices: int, num_controls: int) -> int:
    """Measured fitness evaluations of one gradient over Q*M piecewise-constant controls on hardware: 2 Q M.

    # Design choice: a central finite-difference estimate, (J(u + h e_mj) - J(u - h e_mj)) / 2h for each of the
    # Q*M controls: 2 evaluations per control. A two-term parameter-shift rule has the same count; for pulse
    # controls under a drift that does not commute with H_m it is not exact, and the stochastic parameter-shift
    # rule costs at least as many evaluations. Q = 20, M = 4 -> 160.
    """
    return 2 * num_slices * num_controls


def grape_hardware_evaluations(evaluations: np.ndarray, num_slices: int, num_controls: int) -> np.ndarray:
    """Convert GRAPE's simulation-cost counts to hardware cost.

    # Design choice: each gradient step (an L-BFGS closure call likewise) measures J at the iterate (its learning curve; the line
    search needs it) and the gradient: GRADIENT_COST simulation evaluations = 2 Q M + 1 hardware evaluations. The
    final objective evaluation (+1 in simulation) is one hardware evaluation. Q = 20, M = 4: 161 per step.
    """
    ev = np.asarray(evaluations, dtype=np.int64)
    steps, rest = np.divmod(ev, GRADIENT_COST)
    return steps * (hardware_gradient_cost(num_slices, num_controls) + 1) + rest


@dataclass(frozen=True)
class LearnResult:
    """Outcome of one learner. history[t] is the exact F_enc after evaluations[t] fitness evaluations."""

    learner: str
    params: np.ndarray  # final controls (Q, M), encoder parameters, or the unitary (d, d) for unitary ascent
    fidelity: float  # exact F_enc of the final params
    evaluations: np.ndarray  # (T,) cumulative fitness-evaluation count
    history: np.ndarray  # (T,) exact F_enc of the current iterate / best point
    wall_time_s: float
    optimizer_state: dict | None = None  # torch optimizer state_dict for resuming gradient learners
    hardware_evaluations: np.ndarray | None = None  # (T,) the same count at hardware cost; None: not a hardware
    #                                                 learner (unitary-group ascent needs rho itself)
    times: np.ndarray | None = None  # (T,) wall seconds since the learner started, at each history point

    def best_within(self, budget: float, axis: str = "hardware") -> float:
        """Best exact F_enc found within `budget` hardware evaluations ("hardware"), simulation evaluations
        ("simulation") or wall seconds ("wall"); NaN when the first history point lies beyond the budget."""
        index = {"hardware": self.hardware_evaluations, "simulation": self.evaluations, "wall": self.times}[axis]
        seen = self.history[index <= budget]
        return float(np.max(seen)) if seen.size else float("nan")

    def used_within(self, budget: float, axis: str = "hardware") -> dict[str, float]:
        """What the learner had spent at its last history point within `budget` (on `axis`): every count (zeros when
        no point lies within the budget)."""
        index = {"hardware": self.hardware_evaluations, "simulation": self.evaluations, "wall": self.times}[axis]
        i = int(np.searchsorted(index, budget, side="right")) - 1  # -1: nothing within the budget (value NaN)
        out = {"simulation_evaluations": int(self.evaluations[i]) if i >= 0 else 0,
               "wall_s": round(float(self.times[i]), 4) if i >= 0 else 0.0}
        if self.hardware_evaluations is not None:
            out["hardware_evaluations"] = int(self.hardware_evaluations[i]) if i >= 0 else 0
        return out


def init_controls(system: ControlSystem, generator: torch.Generator | None = None) -> Tensor:
    """u ~ U[-1, 1] of shape (Q, M), float64."""
    return 2.0 * torch.rand(system.control_shape, generator=generator, dtype=RDTYPE) - 1.0


def _make_optimizer(name: str, params: list[Tensor], lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "lbfgs":
        # Design choice: one outer iteration = up to LBFGS_INNER_ITERS inner L-BFGS iterations (then the box clip).
        # With max_iter=1 torch's LBFGS stalls (measured on four_random 3->1, seed 0: F 0.382 vs bound 0.712
        # after 200 steps; 0.712036 with 5 inner iterations).
        return torch.optim.LBFGS(params, lr=lr, max_iter=LBFGS_INNER_ITERS, history_size=20,
                                 line_search_fn="strong_wolfe")
    raise InputError(f"train.optimizer must be one of 'adam', 'sgd', 'lbfgs', got {name!r}")


def _lbfgs_step(opt: torch.optim.Optimizer, u: Tensor, objective: Callable[[Tensor], Tensor]) -> tuple[float, int]:
    """One L-BFGS step; returns (J at the start of the step, number of closure calls)."""
    values: list[float] = []

    def closure() -> Tensor:
        opt.zero_grad()
        j = objective(u)
        values.append(float(j.detach()))
        loss = 1.0 - j
        loss.backward()
        return loss

    opt.step(closure)
    return values[0], len(values)


def grape(system: ControlSystem, rho: Tensor, P: Tensor, *, optimizer: str = "adam", iters: int = 200,
          lr: float = 0.05, u_max: float = 2.0, generator: torch.Generator | None = None,
          init_u: Tensor | None = None, optimizer_state: dict | None = None, start_iter: int = 0,
          on_step: Callable[[int, Tensor, torch.optim.Optimizer, dict], None] | None = None) -> LearnResult:
    """Exact-gradient ascent of J(u) = Tr[P U(T) rho U(T)^+] over piecewise-constant controls (spec 3, step 4).

    Args:
        optimizer: "adam" (default), "sgd" or "lbfgs". iters: TOTAL iteration budget; a resumed run
            (start_iter > 0, init_u and optimizer_state from a checkpoint) performs iters - start_iter steps.
        lr: learning rate (# Design choice: 0.05). u_max: box |u| <= u_max, enforced by clipping after each step.
        on_step: called as on_step(iteration, u, optimizer, {"evaluations": [...], "history": [...]}).
    history[t] is J of the iterate at which step t started, indexed by the evaluations spent when it was known (Adam:
    after gradient t; L-BFGS: after the step's first closure call); evaluations count GRADIENT_COST per gradient
    (L-BFGS: per closure call); a resumed run's count starts at GRADIENT_COST * start_iter; hardware_evaluations
    are the same counts at hardware cost (grape_hardware_evaluations). Stops early on a non-finite J, keeping the
    last finite controls.
    """
    t0 = time.perf_counter()
    u0 = init_u.detach().clone().to(RDTYPE) if init_u is not None else init_controls(system, generator)
    u = u0.clamp(-u_max, u_max).requires_grad_(True)
    opt = _make_optimizer(optimizer, [u], lr)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    objective = lambda x: system.fidelity(x, rho, P)  # noqa: E731
    evals, hist, times = [], [], []
    count = GRADIENT_COST * start_iter
    last_good = u.detach().clone()
    for it in range(start_iter, iters):
        if optimizer == "lbfgs":
            # J of the step's starting iterate is known after the step's first closure call: index it there.
            j, calls = _lbfgs_step(opt, u, objective)
            known_at = count + GRADIENT_COST
            count += GRADIENT_COST * calls
        else:
            opt.zero_grad()
            jt = objective(u)
            j = float(jt.detach())
            if np.isfinite(j):
                (1.0 - jt).backward()
                opt.step()
            count += GRADIENT_COST
            known_at = count
        if not np.isfinite(j):
            log.warning("grape: non-finite J at iteration %d; stopping", it)
            break
        evals.append(known_at)
        hist.append(j)
        times.append(time.perf_counter() - t0)
        with torch.no_grad():
            u.clamp_(-u_max, u_max)
            if not torch.isfinite(u).all():
                log.warning("grape: non-finite controls at iteration %d; stopping", it)
                break
            last_good = u.detach().clone()
        if on_step is not None:
            on_step(it, u, opt, {"evaluations": evals, "history": hist})
    with torch.no_grad():
        final = float(objective(last_good))
    evals.append(count + 1)
    hist.append(final)
    times.append(time.perf_counter() - t0)
    hardware = grape_hardware_evaluations(np.asarray(evals), system.num_slices, system.num_controls)
    return LearnResult(f"grape_{optimizer}", last_good.numpy(), final, np.asarray(evals), np.asarray(hist),
                       times[-1], opt.state_dict(), hardware, np.asarray(times))


class _BudgetExhausted(Exception):
    pass


class _Budget:
    """Counts fitness evaluations of a gradient-free learner, tracks the best point and its history.

    One fitness evaluation is one measured expectation value on hardware, so the hardware count is the same.
    """

    def __init__(self, system: ControlSystem, rho: Tensor, P: Tensor, max_evaluations: int, u_max: float) -> None:
        self.system, self.rho, self.P = system, rho, P
        self.max_evaluations, self.u_max = max_evaluations, u_max
        self.count, self.best_f, self.best_x = 0, -np.inf, None
        self.evals: list[int] = []
        self.hist: list[float] = []
        self.times: list[float] = []
        self.t0 = time.perf_counter()

    def exact(self, x: np.ndarray) -> np.ndarray:
        """x (S, Q*M) -> exact F_enc (S,) of the box-clipped controls (no counting)."""
        xc = np.clip(x, -self.u_max, self.u_max)
        u = torch.from_numpy(np.ascontiguousarray(xc)).reshape(x.shape[0], *self.system.control_shape)  # (S, Q, M)
        with torch.no_grad():
            return self.system.fidelity(u, self.rho, self.P).numpy()

    def fidelity(self, x: np.ndarray) -> np.ndarray:
        """x (S, Q*M) -> exact F_enc (S,), counted; raises _BudgetExhausted past the budget."""
        s = x.shape[0]
        if self.count + s > self.max_evaluations:
            raise _BudgetExhausted
        f = self.exact(x)
        f = np.where(np.isfinite(f), f, -np.inf)
        self.count += s
        i = int(np.argmax(f))
        if f[i] > self.best_f:
            self.best_f, self.best_x = float(f[i]), np.clip(x[i], -self.u_max, self.u_max).copy()
        self.evals.append(self.count)
        self.hist.append(self.best_f)
        self.times.append(time.perf_counter() - self.t0)
        return f

    def result(self, learner: str) -> LearnResult:
        params = self.best_x.reshape(self.system.control_shape)
        evals = np.asarray(self.evals)
        return LearnResult(learner, params, self.best_f, evals, np.asarray(self.hist), time.perf_counter() - self.t0,
                           hardware_evaluations=evals.copy(), times=np.asarray(self.times))


def _start(system: ControlSystem, x0: np.ndarray | Tensor | None, rng: np.random.Generator) -> np.ndarray:
    """The initial controls as a flat (Q*M,) vector: x0 when given, else u ~ U[-1, 1] from rng."""
    if x0 is None:
        return rng.uniform(-1.0, 1.0, size=system.num_slices * system.num_controls)
    x = np.asarray(x0, dtype=np.float64).reshape(-1)
    if x.size != system.num_slices * system.num_controls:
        raise InputError(f"x0 must hold Q*M = {system.num_slices * system.num_controls} controls, got {x.size}")
    return x.copy()


def differential_evolution(system: ControlSystem, rho: Tensor, P: Tensor, *, max_evaluations: int,
                           popsize_per_dim: int = 8, u_max: float = 2.0, seed: int = 0,
                           x0: np.ndarray | Tensor | None = None) -> LearnResult:
    """scipy.optimize.differential_evolution on 1 - J, vectorised over the population (batched propagator).

    Population S = popsize_per_dim * Q * M, capped at max_evaluations (at least 5); maxiter =
    max_evaluations // S - 1 generations, polish=False, so the total never exceeds max_evaluations (also
    enforced by the evaluation counter). History = best F_enc so far after each population evaluation.
    # Design choice: initial population ~ U[-1, 1] (the shared init) with x0 as its first member when given,
    # search box [-u_max, u_max]; tol = 0 so only the budget stops the run.
    """
    n_dim = system.num_slices * system.num_controls
    pop = max(5, min(popsize_per_dim * n_dim, max_evaluations))
    if max_evaluations < pop:
        raise InputError(f"train.max_evaluations = {max_evaluations} is smaller than the minimum population 5")
    budget = _Budget(system, rho, P, max_evaluations, u_max)
    rng = np.random.default_rng(seed)
    init = rng.uniform(-1.0, 1.0, size=(pop, n_dim))
    if x0 is not None:
        init[0] = _start(system, x0, rng)
    try:
        scipy.optimize.differential_evolution(
            lambda x: 1.0 - budget.fidelity(np.atleast_2d(x.T)),  # scipy passes x as (N, S)
            [(-u_max, u_max)] * n_dim, maxiter=max_evaluations // pop - 1, init=init, rng=rng, polish=False,
            tol=0.0, atol=0.0, vectorized=True, updating="deferred")
    except _BudgetExhausted:
        pass
    return budget.result("differential_evolution")


def _minimize(method: str, system: ControlSystem, rho: Tensor, P: Tensor, max_evaluations: int, u_max: float,
              seed: int, options: dict[str, Any], x0: np.ndarray | Tensor | None) -> LearnResult:
    budget = _Budget(system, rho, P, max_evaluations, u_max)
    start = _start(system, x0, np.random.default_rng(seed))
    try:
        scipy.optimize.minimize(lambda x: 1.0 - float(budget.fidelity(x[None, :])[0]), start, method=method,
                                options=options)
    except _BudgetExhausted:
        pass
    return budget.result(method.lower().replace("-", "_"))


def nelder_mead(system: ControlSystem, rho: Tensor, P: Tensor, *, max_evaluations: int, u_max: float = 2.0,
                seed: int = 0, x0: np.ndarray | Tensor | None = None) -> LearnResult:
    """Adaptive Nelder-Mead on 1 - J from x0 (default u ~ U[-1, 1]); the box is enforced by clipping.

    # Design choice: adaptive=True (dimension-dependent coefficients, better for 80-180 parameters); history =
    # best F_enc so far after every evaluation.
    """
    options = {"maxfev": max_evaluations, "maxiter": max_evaluations, "xatol": 0.0, "fatol": 0.0,
               "adaptive": True}
    return _minimize("Nelder-Mead", system, rho, P, max_evaluations, u_max, seed, options, x0)


def cobyla(system: ControlSystem, rho: Tensor, P: Tensor, *, max_evaluations: int, u_max: float = 2.0,
           seed: int = 0, rhobeg: float = 0.5, x0: np.ndarray | Tensor | None = None) -> LearnResult:
    """COBYLA on 1 - J from x0; the box is enforced by clipping inside the objective (like nelder_mead).

    # Design choice: clipping rather than scipy bounds: PRIMA's COBYLA with 160 bound constraints (80 controls)
    # was ~1.5x slower per evaluation, and clipping keeps one box treatment for all gradient-free learners.
    # COBYLA's own linear algebra costs ~3-10 ms per evaluation at 80 parameters (measured, 2 CPU cores).
    """
    options = {"maxiter": max_evaluations, "rhobeg": rhobeg, "tol": 1e-12}
    return _minimize("COBYLA", system, rho, P, max_evaluations, u_max, seed, options, x0)


def spsa(system: ControlSystem, rho: Tensor, P: Tensor, *, shots: int = 1000, max_evaluations: int,
         a: float = 0.5, c: float = 0.15, alpha: float = 0.602, gamma: float = 0.101, u_max: float = 2.0,
         seed: int = 0, x0: np.ndarray | Tensor | None = None) -> LearnResult:
    """SPSA ascent on measured fidelities F_hat = Binomial(shots, F)/shots (experiment-like learning).

    Each iteration measures J at u +- c_k Delta (2 measured evaluations), Delta_i = +-1; gain sequences
    a_k = a / (k + 1 + A)^alpha, c_k = c / (k + 1)^gamma, A = 10 % of the iterations (Spall's defaults for
    alpha, gamma; # Design choice: a, c). The history records the EXACT F_enc of each iterate (for honest plots;
    not counted as a measurement) against the number of measured evaluations. Standard error of one
    measurement: sqrt(F (1 - F) / shots) (pitfall 7). One batched propagator call per iteration computes the
    exact F of [u, u + c Delta, u - c Delta] (the first for the history only).
    """
    rng = np.random.default_rng(seed)
    n_dim = system.num_slices * system.num_controls
    u = _start(system, x0, rng)
    num_iters = max_evaluations // 2
    big_a = 0.1 * num_iters
    exact = _Budget(system, rho, P, np.iinfo(np.int64).max, u_max)  # exact evaluation, not part of the budget
    evals, hist, times = [], [], []
    for k in range(num_iters):
        ak, ck = a / (k + 1 + big_a) ** alpha, c / (k + 1) ** gamma
        delta = rng.choice([-1.0, 1.0], size=n_dim)
        f = np.clip(exact.exact(np.stack([u, u + ck * delta, u - ck * delta])), 0.0, 1.0)  # (3,): clipped inside
        if k > 0:  # the iterate after update k - 1
            evals.append(2 * k)
            hist.append(float(f[0]))
            times.append(time.perf_counter() - exact.t0)
        g = rng.binomial(shots, f[1]) / shots - rng.binomial(shots, f[2]) / shots
        u = np.clip(u + ak * g / (2 * ck) * delta, -u_max, u_max)
    final = float(exact.exact(u[None, :])[0])
    evals.append(2 * num_iters)
    hist.append(final)
    times.append(time.perf_counter() - exact.t0)
    ev = np.asarray(evals)
    return LearnResult(f"spsa_{shots}", u.reshape(system.control_shape), final, ev, np.asarray(hist),
                       times[-1], hardware_evaluations=ev.copy(), times=np.asarray(times))


def unitary_group_ascent(rho: Tensor, P: Tensor, *, eta: float = 1.0, steps: int = 2000,
                         generator: torch.Generator | None = None, num_starts: int = 1,
                         grad_tol: float = 1e-10) -> LearnResult:
    """Riemannian gradient ascent on U(d): U <- exp(eta [P M - M P]) U with M = U rho U^+ (reference optimiser).

    Along U -> e^{eps X} U, dF/deps = Tr(X [M, P]); X = [P, M] is anti-Hermitian and gives dF/deps = ||[P, M]||^2.
    Runs `num_starts` Haar-random unitaries from `generator` at once (batched) and keeps the best final one
    (# Design choice: generator None -> a fixed torch.Generator seeded 0; not U = I, because U = I is a critical
    point (a saddle, not the maximum in general) whenever [rho, P] = 0, e.g. for a diagonal rho; several starts
    because one start can linger near a saddle when the eigengap at the cut is small). One step of one start = one
    fitness evaluation; history = the best F_enc over the starts at each step. params = the best final unitary
    (d, d). Not a hardware learner (it needs U rho U^+ itself): hardware_evaluations is None.
    # Design choice: stops before `steps` once every start's Riemannian gradient ||[P, M]||_F < grad_tol (all at
    # critical points; near the maximum the remaining gap is ~ ||[P, M]||^2 / eigengap, below 1e-15 at 1e-10);
    # grad_tol = 0 always runs `steps` steps.
    """
    t0 = time.perf_counter()
    d = rho.shape[-1]
    rho = rho.to(CDTYPE)
    P = P.to(CDTYPE)
    g = torch.Generator().manual_seed(0) if generator is None else generator
    U = torch.stack([haar_unitary(d, g) for _ in range(num_starts)])  # (R, d, d)
    Pt = P.transpose(-1, -2)
    hist, times = [], []
    for _ in range(steps):
        m = U @ rho @ U.mH  # (R, d, d)
        hist.append(float((Pt * m).sum(dim=(-2, -1)).real.max()))  # max_r Tr[P M_r]
        times.append(time.perf_counter() - t0)
        grad = P @ m - m @ P  # (R, d, d) anti-Hermitian: the Riemannian gradient direction
        if float(torch.linalg.matrix_norm(grad).max()) < grad_tol:
            break
        U = torch.linalg.matrix_exp(eta * grad) @ U
    final = encoding_fidelity(U, rho, P)  # (R,)
    best = int(torch.argmax(final))
    hist.append(float(final[best]))
    times.append(time.perf_counter() - t0)
    evals = np.arange(1, len(hist) + 1) * num_starts
    return LearnResult("unitary_group_ascent", U[best].numpy(), float(final[best]), evals, np.asarray(hist),
                       time.perf_counter() - t0, times=np.asarray(times))


def _adam_module(name: str, module: torch.nn.Module, rho: Tensor, P: Tensor, iters: int, lr: float,
                 hardware_per_step: int | None) -> LearnResult:
    t0 = time.perf_counter()
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    evals, hist, times = [], [], []
    for it in range(iters):
        opt.zero_grad()
        loss = module(rho, P)["loss_enc"]
        if not torch.isfinite(loss):
            log.warning("%s: non-finite loss at iteration %d; stopping", name, it)
            break
        loss.backward()
        opt.step()
        evals.append(GRADIENT_COST * (it + 1))
        hist.append(1.0 - float(loss.detach()))
        times.append(time.perf_counter() - t0)
    with torch.no_grad():
        final = 1.0 - float(module(rho, P)["loss_enc"])
    evals.append((evals[-1] if evals else 0) + 1)
    hist.append(final)
    times.append(time.perf_counter() - t0)
    ev = np.asarray(evals)
    hardware = None
    if hardware_per_step is not None:
        steps, rest = np.divmod(ev, GRADIENT_COST)
        hardware = steps * hardware_per_step + rest
    params = torch.cat([p.detach().reshape(-1) for p in module.parameters()]).numpy()
    return LearnResult(name, params, final, ev, np.asarray(hist), times[-1], opt.state_dict(), hardware,
                       np.asarray(times))


def _num_qubits(rho: Tensor, num_qubits: int | None) -> int:
    n = int(round(np.log2(rho.shape[-1])))
    if num_qubits is not None and num_qubits != n:
        raise InputError(f"num_qubits = {num_qubits} does not match rho of shape {tuple(rho.shape)}")
    return n


def train_unitary_encoder(rho: Tensor, P: Tensor, num_qubits: int | None = None, *, iters: int = 200,
                          lr: float = 0.05, init_scale: float = 0.1,
                          generator: torch.Generator | None = None) -> LearnResult:
    """Adam on the unconstrained UnitaryEncoder (U = exp(iH)); GRADIENT_COST simulation evaluations per step.

    num_qubits is optional (inferred from rho; checked when given).
    """
    n = _num_qubits(rho, num_qubits)
    # Not a hardware learner: exp(iH) of an arbitrary H has no pulse or gate sequence here.
    return _adam_module("unitary_encoder", UnitaryEncoder(n, init_scale, generator), rho, P, iters, lr, None)


def train_circuit_encoder(rho: Tensor, P: Tensor, num_qubits: int | None = None, *, num_layers: int = 6,
                          iters: int = 200, lr: float = 0.2, generator: torch.Generator | None = None) -> LearnResult:
    """Adam on the RY/RZ + CNOT-ring CircuitEncoder (# Design choice: lr 0.2 as in the Paddle Quantum tutorial).

    num_qubits is optional (inferred from rho; checked when given).
    """
    n = _num_qubits(rho, num_qubits)
    # Hardware cost: the RY / RZ angles obey the exact two-term parameter-shift rule, 2 evaluations per angle,
    # plus the measured J at the iterate.
    return _adam_module("circuit_encoder", CircuitEncoder(n, num_layers, generator), rho, P, iters, lr,
                        2 * num_layers * n * 2 + 1)
