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
    # Design choice: a user's own control system, an .npz (arrays `drift` (d, d), `controls` (M, d, d)) or a .json
    # of the same arrays (control.load_control_file); None = the default Ising ZZ + {X_q, Y_q} system.
    control_file: str | None = None

    def __post_init__(self) -> None:
        if self.num_latent_qubits < 0:
            raise ConfigError(f"model.num_latent_qubits must be >= 0, got {self.num_latent_qubits}")
        if self.encoder not in ("control", "unitary", "circuit"):
            raise ConfigError(f"model.encoder must be one of control, unitary, circuit; got {self.encoder!r}")
        if not self.evolution_time > 0:
            raise ConfigError(f"model.evolution_time must be > 0, got {self.evolution_time}")
        if self.num_slices < 0 or self.num_layers < 1 or not self.u_max > 0:
            raise ConfigError("model.num_slices must be >= 0, model.num_layers >= 1, model.u_max > 0")
        if self.control_file is not None and not self.control_file.endswith((".npz", ".json")):
            raise ConfigError(f"model.control_file must name an .npz or .json file, got {self.control_file!r}")


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
    # Design choice: unitary-group ascent runs from this many Haar-random unitaries at once (batched) and keeps the
    # best; one start can sit near a saddle for many steps when the eigengap at the cut is small.
    ascent_starts: int = 4
    checkpoint_every: int = 20  # iterations between checkpoints of the gradient learners

    def __post_init__(self) -> None:
        for name in ("iters", "max_evaluations", "de_popsize_per_dim", "shots", "ascent_steps", "ascent_starts",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or not self.ascent_eta > 0:
            raise ConfigError("train.lr and train.ascent_eta must be > 0")


@dataclass(frozen=True)
class ReproduceConfig:
    """Scale of `tenfold reproduce qae` (sections 5 and 6 of the spec); one call = one seed."""

    # Deviation: 500 Adam-GRAPE iterations, not the spec's 200: on held-out seed 13, four_random 3->2 was
    # still 1.45e-3 below its bound after 200 (the spec's own prototype: 0.99927 at 200, 0.990 at 100);
    # 500 is re-checked on fresh seeds (README). ~3 ms per 3-qubit iteration, so it costs ~9 s.
    grape_iters: int = 500
    ascent_steps: int = 2000  # spec 5 quick: unitary-group ascent 2000 steps
    ascent_starts: int = 4  # Design choice: best of 4 Haar-random starts (batched; README)
    # Deviation (spec 5 allows it): 10k evaluations instead of the calibrated 39k so that the
    # quick profile fits its budget; the same budget for DE, Nelder-Mead and SPSA.
    budget_evaluations: int = 10_000
    # Deviation: COBYLA's own linear algebra costs ~3-8 ms per evaluation at 80 parameters, so it gets
    # a smaller budget; its equal-budget rows compare at this budget, the same for both arms.
    cobyla_budget_evaluations: int = 1500
    de_popsize_per_dim: int = 1  # Design choice: popsize 8/dim (640) leaves only ~15 generations at 10k
    num_full_rank_seeds: int = 3  # spec 5: 3 random_full_rank instances per (n, k)
    spsa_shots: int = 1000  # spec 5: SPSA with 10^3 shots
    # spec 5: Adam-GRAPE cases as "ensemble:k"; every learner runs on `compared_cases` (Adam-GRAPE on both lists).
    grape_cases: tuple[str, ...] = ("two_random:1", "three_random:1", "werner:1", "four_random:2",
                                    "four_random:1", "ghz_w:1")
    compared_cases: tuple[str, ...] = ("two_random:1", "three_random:1")  # spec 5: the 2-qubit random ones
    # Design choice: two F_enc values closer than this are a tie (never a win): optimisers that reached the bound
    # stop 1e-8..1e-7 below it, and wall-clock-limited values differ by round-off.
    fidelity_tie: float = 1e-6
    # Full profile sweeps (spec 5), empty in smoke / quick: qubit counts x slice counts for "Adam-GRAPE reaches the
    # bound" (runs when both are set); evolution times T for the minimal-T curve; SPSA shot counts.
    sweep_num_qubits: tuple[int, ...] = ()
    sweep_num_slices: tuple[int, ...] = ()
    sweep_evolution_times: tuple[float, ...] = ()
    sweep_shots: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        counts = {"grape_iters": self.grape_iters, "ascent_steps": self.ascent_steps,
                  "ascent_starts": self.ascent_starts, "budget_evaluations": self.budget_evaluations,
                  "cobyla_budget_evaluations": self.cobyla_budget_evaluations,
                  "num_full_rank_seeds": self.num_full_rank_seeds, "spsa_shots": self.spsa_shots,
                  "de_popsize_per_dim": self.de_popsize_per_dim}
        for name, value in counts.items():
            if value < 1:
                raise ConfigError(f"reproduce.{name} must be >= 1, got {value}")
        if self.num_full_rank_seeds > 25:  # reproduce.sub_seed: every case needs a slot below 100
            raise ConfigError(f"reproduce.num_full_rank_seeds must be <= 25, got {self.num_full_rank_seeds}")
        for field_name in ("grape_cases", "compared_cases"):
            for case in getattr(self, field_name):
                name, _, k = case.partition(":")
                if not name or not k.isdigit():
                    raise ConfigError(f"reproduce.{field_name}: expected 'ensemble:k' entries, got {case!r}")
        if not 0 <= self.fidelity_tie < 1e-2:
            raise ConfigError(f"reproduce.fidelity_tie must be in [0, 1e-2), got {self.fidelity_tie}")
        if any(not 2 <= n <= 6 for n in self.sweep_num_qubits):
            raise ConfigError(f"reproduce.sweep_num_qubits: entries in 2..6, got {self.sweep_num_qubits}")
        if any(q < 1 for q in self.sweep_num_slices):
            raise ConfigError(f"reproduce.sweep_num_slices: slice counts >= 1, got {self.sweep_num_slices}")
        if any(not t > 0 for t in self.sweep_evolution_times) or list(self.sweep_evolution_times) != sorted(
                set(self.sweep_evolution_times)):
            raise ConfigError("reproduce.sweep_evolution_times: distinct times > 0 in increasing order, "
                              f"got {self.sweep_evolution_times}")
        if any(s < 1 for s in self.sweep_shots):
            raise ConfigError(f"reproduce.sweep_shots: shot counts >= 1, got {self.sweep_shots}")


@dataclass(frozen=True)
class Config:
    seed: int = 0
    # Design choice: 4x4..32x32 complex matrices are faster on the CPU than a GPU's launch overhead.
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


# Every seed looked at while developing qae: 0 (development), 1 and 2 (learning-rate choice, issue 11 second pass),
# 7, 13, 21, 42 (held-out checks of the first pass), 3 and 4 (the CLI's smoke reproduction in tests/test_cli.py).
# The claim seeds of `tenfold reproduce` (1000, 1001, 1002) are disjoint from them and were never run during
# development.
DEV_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4, 7, 13, 21, 42)

# Each profile: the command, expected time on 2 CPU cores, expected result.
PROFILES: dict[str, dict[str, object]] = {
    # tenfold train qae --profile smoke    (~2 s; Adam-GRAPE on two_random reaches F_enc >= 0.99)
    # tenfold reproduce qae --profile smoke   (~10 s per seed; every check holds, budgets tiny)
    "smoke": {
        "train.iters": 50,
        "train.max_evaluations": 500,
        "train.ascent_steps": 200,
        "train.checkpoint_every": 10,
        "reproduce.grape_iters": 50,
        "reproduce.ascent_steps": 200,
        "reproduce.budget_evaluations": 500,
        "reproduce.cobyla_budget_evaluations": 300,
        "reproduce.num_full_rank_seeds": 1,
        "reproduce.grape_cases": ("two_random:1", "werner:1"),
        "reproduce.compared_cases": ("two_random:1",),
    },
    # tenfold reproduce qae    (quick: 3 claim seeds, <= 5 min on 2 cores in all; section 6 rows)
    "quick": {},
    # tenfold reproduce qae --profile full    (paper-scale budgets: 39k evaluations, DE popsize 8/dim, 1000 GRAPE
    # iterations; spec 5 sweeps: 3-5 qubits x Q in {20, 50, 100}, a T sweep for the minimal-T curve, SPSA with
    # 10^3-10^5 shots. CPU, ~20-40 min per seed on 2 cores (estimate from measured per-iteration times: the n x Q
    # sweep alone ~9 min, 5 qubits at Q = 100 ~0.11 s per Adam iteration; not run end to end); no GPU needed)
    "full": {
        "train.max_evaluations": 39_000,
        "reproduce.budget_evaluations": 39_000,
        "reproduce.cobyla_budget_evaluations": 39_000,
        "reproduce.de_popsize_per_dim": 8,
        "reproduce.grape_iters": 1000,
        "reproduce.num_full_rank_seeds": 5,
        "reproduce.sweep_num_qubits": (3, 4, 5),
        "reproduce.sweep_num_slices": (20, 50, 100),
        # Design choice: T from well below to the default T = pi (the spec fixes no grid).
        "reproduce.sweep_evolution_times": (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.141592653589793),
        "reproduce.sweep_shots": (1000, 10_000, 100_000),
    },
}
