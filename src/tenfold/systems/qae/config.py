"""Configs of `qae` (On compression rate of quantum autoencoders, arXiv 2005.11149).

The paper body is not available (spec section "Status"): every default below is tagged with
its source, and most are [design choice] values of the spec, calibrated there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from tenfold.core.config import ConfigError

Encoder = Literal["control", "unitary", "circuit"]
Learner = Literal["grape_adam", "grape_lbfgs", "grape_sgd", "de", "nelder_mead", "cobyla", "spsa",
                  "unitary_ascent"]
GRADIENT_LEARNERS = ("grape_adam", "grape_lbfgs", "grape_sgd")


@dataclass(frozen=True)
class DataConfig:
    # Design choice (spec 4.1): a named generated ensemble; `states_file` (an .npz with `states`
    # (N, 2^n) complex + optional `weights` (N,), or `rho` (2^n, 2^n)) replaces it when given.
    ensemble: str = "two_random"
    states_file: str | None = None
    # Design choice (spec 2): empty = the last n - k qubits in big-endian (kron) order.
    trash_wires: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if any(w < 0 for w in self.trash_wires):
            raise ConfigError(f"data.trash_wires must be non-negative qubit indices, got {self.trash_wires}")


@dataclass(frozen=True)
class ModelConfig:
    num_latent_qubits: int = 1  # k; the paper's 2 -> 1 case
    encoder: Encoder = "control"  # Paper: a controlled quantum system realises the encoder
    evolution_time: float = math.pi  # Design choice (spec 2.8): T = pi
    num_slices: int = 0  # Design choice (spec 2.8): 0 = Q 20 for 2 qubits, 30 for 3, 10 n beyond
    u_max: float = 2.0  # Design choice (spec 2.11): amplitude box |u| <= 2 for every learner
    num_layers: int = 6  # CircuitEncoder depth (Paddle Quantum tutorial: 6 layers)

    def __post_init__(self) -> None:
        if self.num_latent_qubits < 0:
            raise ConfigError(f"model.num_latent_qubits must be >= 0, got {self.num_latent_qubits}")
        if self.encoder not in ("control", "unitary", "circuit"):
            raise ConfigError(f"model.encoder must be one of control, unitary, circuit; got {self.encoder!r}")
        if not self.evolution_time > 0:
            raise ConfigError(f"model.evolution_time must be > 0, got {self.evolution_time}")
        if self.num_slices < 0 or self.num_layers < 1 or not self.u_max > 0:
            raise ConfigError("model.num_slices must be >= 0, model.num_layers >= 1, model.u_max > 0")


@dataclass(frozen=True)
class TrainConfig:
    learner: Learner = "grape_adam"  # Design choice (spec 2.11): Adam-GRAPE is the default learner
    iters: int = 200  # gradient learners' iterations (spec 5: 200)
    # Design choice: Adam lr 0.1, not the spec's 0.05: at 0.05 the 3->2 gap after 200 iterations was
    # 1.7e-3..6e-3 on development seeds 0-2; at 0.1 <= 6e-4. Verified on held-out seeds (README).
    lr: float = 0.1
    max_evaluations: int = 10_000  # budget of the gradient-free learners, in fitness evaluations
    de_popsize_per_dim: int = 8  # spec 2.11 calibration: popsize 8 per dimension
    shots: int = 1000  # SPSA: measurement shots per fitness estimate (spec 5: 10^3)
    ascent_steps: int = 2000  # unitary-group ascent steps (spec 5)
    # Design choice: eta = 1/L, L = the Lipschitz constant of the Riemannian gradient <= lambda_max - lambda_min <= 1
    # (first 0.5: too slow on a held-out seed whose eigengap is 0.0038; see README).
    ascent_eta: float = 1.0
    checkpoint_every: int = 20  # iterations between checkpoints of the gradient learners

    def __post_init__(self) -> None:
        for name in ("iters", "max_evaluations", "de_popsize_per_dim", "shots", "ascent_steps",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or not self.ascent_eta > 0:
            raise ConfigError("train.lr and train.ascent_eta must be > 0")


@dataclass(frozen=True)
class ReproduceConfig:
    """Scale of `tenfold reproduce qae` (section 6 of the spec)."""

    # Deviation: 500 Adam-GRAPE iterations, not the spec's 200: on held-out seed 13, four_random 3->2 was
    # still 1.45e-3 below its bound after 200 (the spec's own prototype: 0.99927 at 200, 0.990 at 100);
    # 500 is re-checked on fresh seeds (README). ~6 ms per 3-qubit iteration, so it costs ~15 s.
    grape_iters: int = 500
    ascent_steps: int = 2000  # spec 5 quick: unitary-group ascent 2000 steps
    # Deviation (spec 5 allows it): 10k evaluations instead of the calibrated 39k so that the
    # quick profile fits its 3-minute budget; the same budget for every gradient-free learner.
    budget_evaluations: int = 10_000
    # Deviation: COBYLA's own linear algebra costs ~8 ms per evaluation at 80 parameters, so it gets
    # a smaller budget; the equal-budget rows compare at Adam-GRAPE's count (~400), well inside it.
    cobyla_budget_evaluations: int = 1500
    de_popsize_per_dim: int = 1  # Design choice: popsize 8/dim (640) leaves only ~15 generations at 10k
    num_full_rank_seeds: int = 3  # spec 5: 3 seeds of random_full_rank per (n, k)
    spsa_shots: int = 1000  # spec 5: SPSA with 10^3 shots
    # spec 5: Adam-GRAPE cases as "ensemble:k"; the gradient-free learners run on the 2-qubit random ones.
    grape_cases: tuple[str, ...] = ("two_random:1", "three_random:1", "werner:1", "four_random:2",
                                    "four_random:1", "ghz_w:1")

    def __post_init__(self) -> None:
        if min(self.grape_iters, self.ascent_steps, self.budget_evaluations, self.num_full_rank_seeds,
               self.spsa_shots, self.de_popsize_per_dim) < 1:
            raise ConfigError("reproduce.* counts must be >= 1")
        for case in self.grape_cases:
            name, _, k = case.partition(":")
            if not name or not k.isdigit():
                raise ConfigError(f"reproduce.grape_cases: expected 'ensemble:k' entries, got {case!r}")


@dataclass(frozen=True)
class Config:
    seed: int = 0
    # Design choice: 4x4..16x16 complex matrices are faster on the CPU than a GPU's launch overhead.
    device: str = "cpu"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    reproduce: ReproduceConfig = field(default_factory=ReproduceConfig)

    def __post_init__(self) -> None:
        if self.model.encoder != "control" and self.train.learner not in ("grape_adam", "unitary_ascent"):
            raise ConfigError(f"train.learner={self.train.learner!r} needs model.encoder='control'; "
                              "the unitary and circuit encoders train with grape_adam (Adam on autograd) "
                              "or unitary_ascent")


# Each profile: the command, expected time on 2 CPU cores, expected result.
PROFILES: dict[str, dict[str, object]] = {
    # tenfold train qae --profile smoke    (~2 s; Adam-GRAPE on two_random reaches F_enc >= 0.99)
    # tenfold reproduce qae --profile smoke   (~15 s; every F_enc <= bound + 1e-9)
    "smoke": {
        "train.iters": 50,
        "train.max_evaluations": 500,
        "train.ascent_steps": 200,
        "train.checkpoint_every": 10,
        "reproduce.grape_iters": 50,
        "reproduce.ascent_steps": 200,
        "reproduce.budget_evaluations": 500,
        "reproduce.num_full_rank_seeds": 1,
        "reproduce.grape_cases": ("two_random:1", "werner:1"),
    },
    # tenfold reproduce qae    (quick, target <= 3 min on 2 cores; section 6 rows)
    "quick": {},
    # tenfold reproduce qae --profile full    (paper-scale budgets: 39k DE evaluations, popsize 8/dim;
    # minutes to an hour on CPU; no GPU needed)
    "full": {
        "train.max_evaluations": 39_000,
        "reproduce.budget_evaluations": 39_000,
        "reproduce.cobyla_budget_evaluations": 39_000,
        "reproduce.de_popsize_per_dim": 8,
        "reproduce.grape_iters": 1000,
        "reproduce.num_full_rank_seeds": 5,
    },
}
