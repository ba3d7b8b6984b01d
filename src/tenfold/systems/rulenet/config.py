"""Configs of `rulenet` (Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning, arXiv 2211.04693).

The paper body is unavailable (spec "Status"): every default is a [design choice] of specs/rulenet.md, cited
by section, unless tagged otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tenfold.core.config import ConfigError

GraphMode = Literal["intra", "knn_rows"]
Link = Literal["none", "ste", "graft", "search"]
Pooling = Literal["gnn", "median", "mean"]
ExpertRules = Literal["noisy", "noisy_spurious", "true"]


@dataclass(frozen=True)
class DataConfig:
    num_train: int = 20_000  # spec 4.1 quick splits: train 20k / val 5k / test 10k, separately seeded
    num_val: int = 5_000
    num_test: int = 10_000
    num_shift_test: int = 10_000  # spec 4.1: shifted test sets of 10k items each
    num_obs: int = 16  # spec 4.1: M = 16 observations per item
    expert_rules: ExpertRules = "noisy"  # spec 4.1: correct structure, wrong constants
    # Real data (spec 4.3): long observation table + item table (CSV / Parquet) + a rules file.
    observations: str | None = None
    items: str | None = None
    rules: str | None = None
    label_column: str = "label"
    # Design choice: real data is split into contiguous blocks of the item table (AR-correlated neighbours,
    # spec pitfall 10): the first part trains, then validation, then test.
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    # Issue 20: explicit validation tables (same formats as observations / items); when given, val_fraction is not
    # used and the user's tables split into train and test only (test_fraction = 0: all of them train).
    val_observations: str | None = None
    val_items: str | None = None

    def __post_init__(self) -> None:
        for name in ("num_train", "num_val", "num_test", "num_shift_test", "num_obs"):
            if getattr(self, name) < 2:
                raise ConfigError(f"data.{name} must be >= 2, got {getattr(self, name)}")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1):
            raise ConfigError("data.val_fraction and data.test_fraction must be in [0, 1) with a sum below 1")
        if (self.val_observations is None) != (self.val_items is None):
            raise ConfigError("data.val_observations and data.val_items must be given together")


@dataclass(frozen=True)
class ModelConfig:
    graph_mode: GraphMode = "intra"  # spec component 1: intra-item graph by default
    num_neighbours: int = 6  # spec component 1: k = min(6, M - 1)
    hidden: int = 32  # spec component 2: hidden 32 on the CPU (128 on the GPU)
    # Deviation: GraphSAGE-mean on every profile (the spec's GAT with 4 heads for the GPU path is not built).
    num_layers: int = 2  # spec component 2: 2-3 message-passing layers
    pooling: Pooling = "gnn"  # "median" / "mean": the no-GNN ablations of spec section 6 (ablation 2)
    use_hard_assessment: bool = False  # spec section 3 "Inference": hard assessment weights are optional
    keep_fraction: float = 0.5  # spec component 2: rho = 0.5 in hard mode
    use_learned_gates: bool = False  # spec component 6: optional learned gates (structure stays fixed)

    def __post_init__(self) -> None:
        if self.num_neighbours < 1 or self.hidden < 1 or self.num_layers < 1:
            raise ConfigError("model.num_neighbours, model.hidden and model.num_layers must be >= 1")
        if not 0 < self.keep_fraction <= 1:
            raise ConfigError(f"model.keep_fraction must be in (0, 1], got {self.keep_fraction}")
        if self.graph_mode not in ("intra", "knn_rows"):
            raise ConfigError(f"model.graph_mode must be 'intra' or 'knn_rows', got {self.graph_mode!r}")
        if self.pooling not in ("gnn", "median", "mean"):
            raise ConfigError(f"model.pooling must be one of gnn, median, mean; got {self.pooling!r}")


@dataclass(frozen=True)
class TrainConfig:
    link: Link = "search"  # spec component 7: `search` is the default link
    warmup_epochs: int = 5  # spec section 3 step 2
    rule_epochs: int = 5  # spec section 3 step 3
    joint_epochs: int = 40  # spec section 5 quick: 40 joint epochs
    batch_size: int = 256  # spec section 3 step 4
    lr_gnn: float = 1e-3  # spec section 3 step 4
    lr_theta: float = 1e-2  # spec section 3 step 4 (std units)
    lr_weights: float = 1e-2  # spec section 3 step 4 (rule weights, gates, class biases)
    tau_start: float = 1.0  # spec component 9: geometric 1.0 -> 0.05
    tau_end: float = 0.05
    # Deviation: the spec trains with class-weighted BCE; a positive weight w moves the BCE-optimal threshold
    # to where P(fail | k) = 1 / (1 + w), away from the generator's boundary (P = 1/2), so the default is 1
    # (unweighted); set e.g. 25 for the spec's n_neg / n_pos weighting.
    pos_weight: float = 1.0
    weight_rule: float = 1.0  # spec component 8
    weight_anchor: float = 1e-3  # spec component 8
    weight_gate: float = 1.0  # spec component 8 (learned gates only)
    weight_link: float = 1.0  # spec component 8: mu = 1
    eta0: float = 0.05  # spec component 7: eta0 = 0.05 feature-std units
    num_doublings: int = 6  # spec component 7: J = 6
    projection_steps: int = 50  # design choice: projected-gradient steps of the simplex projection
    # Design choice: the search link regresses pi only for items where a step size fixed the hard output.
    link_found_only: bool = True
    # Design choice: with link=search the rule loss also reaches the GNN by gradient grafting (search adds the
    # KL(pi* || pi) term on top); false = the GNN learns from the search targets only.
    search_with_graft: bool = True
    use_soft_inference: bool = False  # ablation 5 (soft-only model): soft training and soft decisions
    init_seed: int | None = None  # model init / shuffling seed; None = the top-level seed (data seed)
    # Design choice: early stopping keeps the best joint-phase epoch by validation hard F1; false = a fixed epoch
    # count (the last epoch is kept), the way to fit on all data (data.val_fraction = 0, no validation tables).
    select_best: bool = True

    def __post_init__(self) -> None:
        if self.link not in ("none", "ste", "graft", "search"):
            raise ConfigError(f"train.link must be one of none, ste, graft, search; got {self.link!r}")
        for name in ("warmup_epochs", "rule_epochs", "joint_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1 or self.num_doublings < 0 or self.projection_steps < 1:
            raise ConfigError("train.batch_size and train.projection_steps must be >= 1, train.num_doublings >= 0")
        for name in ("lr_gnn", "lr_theta", "lr_weights", "tau_start", "tau_end", "pos_weight", "eta0"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"train.{name} must be > 0, got {getattr(self, name)}")
        if self.tau_end > self.tau_start:
            raise ConfigError("train.tau_end must be <= train.tau_start (annealing goes soft -> hard)")


@dataclass(frozen=True)
class ReproduceConfig:
    """Scale of `tenfold reproduce rulenet` (spec section 6)."""

    ensemble_members: int = 5  # spec component 11: 5 members
    # Design choice (issue 20, equal budgets): each member's epoch budget is rulenet's (warm-up + rule-only + joint
    # epochs, `train.schedule`) when 0; a member early-stops on validation BCE after `ensemble_patience` epochs
    # without a new best and keeps its best-validation epoch (rulenet keeps its best-validation joint epoch).
    ensemble_epochs: int = 0
    ensemble_patience: int = 3
    ensemble_hidden: int = 64  # spec component 11: MLP 64-64 head
    run_peers: bool = True  # GBDT (scikit-learn) and imodels / interpret peers when installed
    churn_seed_offset: int = 100  # the second retraining seed = seed + offset (churn between seeds)

    def __post_init__(self) -> None:
        if self.ensemble_members < 1 or self.ensemble_hidden < 1 or self.ensemble_patience < 1:
            raise ConfigError("reproduce.ensemble_members, ensemble_hidden and ensemble_patience must be >= 1")
        if self.ensemble_epochs < 0:
            raise ConfigError(f"reproduce.ensemble_epochs must be >= 0 (0 = rulenet's epoch budget), "
                              f"got {self.ensemble_epochs}")


@dataclass(frozen=True)
class Config:
    seed: int = 0
    # Design choice: (256, 16, 6) batches are faster on the CPU than a GPU's launch overhead at quick scale.
    device: str = "cpu"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    reproduce: ReproduceConfig = field(default_factory=ReproduceConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(f"device must be 'cpu', 'cuda[:N]' or 'auto', got {self.device!r}")
        no_val = self.data.observations is not None and self.data.val_fraction == 0 and self.data.val_items is None
        if no_val and self.train.select_best:
            raise ConfigError("data.val_fraction = 0 without data.val_observations / val_items leaves no validation "
                              "data to select an epoch on: set train.select_best=false (fixed epoch count)")


# Every seed looked at while developing (seed 0 while building (search_with_graft chosen on it), 7 reported; 100
# and 107 are their retraining seeds). The default claim seeds of `tenfold reproduce` (1000, 1001, 1002) are
# disjoint from them; a run on one of these is flagged in the report.
DEV_SEEDS: tuple[int, ...] = (0, 7, 100, 107)

# Each profile: the command, expected time on 2 CPU cores, expected result.
PROFILES: dict[str, dict[str, object]] = {
    # tenfold train rulenet --profile smoke   (~10 s; finite losses, export re-parses)
    "smoke": {
        "data.num_train": 1000, "data.num_val": 500, "data.num_test": 500, "data.num_shift_test": 300,
        "train.warmup_epochs": 1, "train.rule_epochs": 1, "train.joint_epochs": 1,
        "reproduce.ensemble_members": 2,
    },
    # tenfold reproduce rulenet   (quick; budget 10 min on 2 cores for 8 rulenet variants + 2 x 5-member
    # ensembles + peers; section 6 rows; measured numbers in the README)
    # Deviation (issue budget wins over spec 5): train 10k / val 2.5k (spec 20k / 5k), shifted sets 5k (spec 10k),
    # 3 warm-up + 5 rule-only + 15 joint epochs (spec 5 + 5 + 40), 20 projection steps (design choice 50); the
    # ensemble members get the same 23-epoch budget with early stopping on validation.
    "quick": {
        "data.num_train": 10_000, "data.num_val": 2_500, "data.num_shift_test": 5_000,
        "train.warmup_epochs": 3, "train.joint_epochs": 15, "train.projection_steps": 20,
    },
    # tenfold reproduce rulenet --profile full   (GPU: 1M items, 3 layers x 128, batch 2048, 30 joint epochs)
    "full": {
        "data.num_train": 1_000_000, "data.num_val": 50_000, "data.num_test": 100_000,
        "data.num_shift_test": 100_000, "model.hidden": 128, "model.num_layers": 3,
        "train.batch_size": 2048, "train.joint_epochs": 30, "device": "auto",
        "reproduce.ensemble_hidden": 256,
    },
}
