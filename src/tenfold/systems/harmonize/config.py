"""Configs of `harmonize` (Harmonizing output imbalance for semantic segmentation on extremely-imbalanced input
data, arXiv 2211.05295).

The paper body is not available (spec "Status"): every default is tagged with its source; most are the
spec's [design choice] values (spec sections 2, 3, 4.1, 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tenfold.core.config import ConfigError

Arch = Literal["tiny_unet", "smp_unet", "smp_unetplusplus", "smp_fpn", "smp_deeplabv3plus", "smp_pspnet"]
LossName = Literal["ce", "wce", "wce_inverse", "focal", "dice", "tversky", "focal_tversky", "combo",
                   "unified_focal", "harmonize"]


def _unit(name: str, value: float, closed: bool = False) -> None:
    ok = 0 <= value <= 1 if closed else 0 < value < 1
    if not ok:
        raise ConfigError(f"{name} must be in {'[0, 1]' if closed else '(0, 1)'}, got {value}")


@dataclass(frozen=True)
class DataConfig:
    # Real data (spec 4.2): a folder with train/, val/, test/ subfolders of images/ + masks/ pairs; replaces the
    # generator when given. Design choice: the split layout (the spec does not fix one).
    root: str | None = None
    scale: str = "S2"  # spec 4.1 item 8: the main scale; label only, the sizes below are what is generated
    image_size: int = 128  # S2 canvas (spec 4.1)
    crack_len_min: int = 8  # S2 crack length L (spec 4.1)
    crack_len_max: int = 16
    p_defect: float = 0.6  # spec 4.1 item 6
    contrast_min: float = 0.04  # crack intensity drop U(0.04, 0.12) (spec 4.1 item 6)
    contrast_max: float = 0.12
    noise_std: float = 0.03  # spec 4.1 item 1
    num_train: int = 400  # spec 4.1 item 9: 400 / 100 / 200
    num_val: int = 100
    num_test: int = 200
    train_crop: int = 0  # 0 = whole canvas; > 0: uniformly placed crops (never crack-centred, pitfall 7)

    def __post_init__(self) -> None:
        if self.image_size < 24:
            raise ConfigError(f"data.image_size must be >= 24, got {self.image_size}")
        if not 1 <= self.crack_len_min <= self.crack_len_max:
            raise ConfigError("data.crack_len_min must be >= 1 and <= data.crack_len_max")
        _unit("data.p_defect", self.p_defect, closed=True)
        if not 0 <= self.contrast_min <= self.contrast_max or self.noise_std < 0:
            raise ConfigError("data.contrast_min must be in [0, data.contrast_max] and data.noise_std >= 0")
        if min(self.num_train, self.num_val, self.num_test) < 1 or self.train_crop < 0:
            raise ConfigError("data.num_train / num_val / num_test must be >= 1 and data.train_crop >= 0")


@dataclass(frozen=True)
class ModelConfig:
    arch: Arch = "tiny_unet"  # spec component 7 (quick); smp architectures for the full profile (component 8)
    widths: tuple[int, ...] = (8, 16, 32, 64)  # spec component 7
    encoder: str = "resnet18"  # spec component 8
    weights_file: str | None = None  # local weights only (no downloads, pitfall 10)

    def __post_init__(self) -> None:
        if not self.widths or min(self.widths) < 2:
            raise ConfigError(f"model.widths must be non-empty with every width >= 2, got {self.widths}")


@dataclass(frozen=True)
class LossConfig:
    name: LossName = "harmonize"
    wce_weight: float = 0.5  # plain wCE(w)
    tversky_fp: float = 0.3  # Salehi et al. 2017 recall-oriented setting (spec 3)
    tversky_fn: float = 0.7
    ft_exponent: float = 0.75  # Abraham & Khan 2019: 1/gamma, gamma = 4/3
    combo_c: float = 0.5  # Taghanaki et al. 2019 (spec 6 grid)
    combo_beta: float = 0.5
    uf_lambda: float = 0.5  # Yeung et al. 2022 defaults (spec 3)
    uf_delta: float = 0.6
    uf_gamma: float = 0.5
    focal_alpha: float = 0.25  # Lin et al. 2017
    focal_gamma: float = 2.0
    harmonize_lambda: float = 0.5  # spec component 5: lam = 0.5
    # Spec component 5: ablation of the compound loss. Issue 18: the same switch modulates the pixel-wise CE term
    # of every loss that has one (loss.FOCAL_CE_LOSSES); `reproduce` searches it on validation for each of them.
    use_focal_ce: bool = False
    smooth: float = 1.0  # spec component 3: s = 1

    def __post_init__(self) -> None:
        for name in ("wce_weight", "tversky_fp", "tversky_fn", "combo_beta", "uf_delta", "focal_alpha"):
            _unit(f"loss.{name}", getattr(self, name))
        for name in ("combo_c", "uf_lambda", "harmonize_lambda"):
            _unit(f"loss.{name}", getattr(self, name), closed=True)
        if not self.ft_exponent > 0 or self.focal_gamma < 0 or not 0 <= self.uf_gamma < 1 or self.smooth < 0:
            raise ConfigError("loss.ft_exponent must be > 0, loss.focal_gamma >= 0, loss.uf_gamma in [0, 1), "
                              "loss.smooth >= 0")


@dataclass(frozen=True)
class SelectorConfig:
    """Adaptive selection of b (spec component 6); used when loss.name == "harmonize"."""

    selector: Literal["bisection", "online", "fixed"] = "bisection"  # spec: default bisection
    measure: Literal["oi", "area_ratio"] = "oi"  # spec component 2: the explicit measure by default
    lo: float = 0.05  # spec 6 A.1
    hi: float = 0.95
    init: float = 0.5  # b = 0.5 (Dice-like) first
    tolerance: float = 0.05  # eps
    max_rounds: int = 6  # K <= 6
    warmup_epochs: int = 25  # round 1: ~25 % of the 100-epoch schedule (spec 6 A.1)
    round_epochs: int = 25  # later rounds, warm-started
    final: Literal["continue", "retrain"] = "retrain"  # spec 6 A.6: retrain from scratch with b* by default
    final_epochs: int = 100  # "continue": epochs after selection; "retrain": ignored (train.epochs)
    step_size: float = 0.1  # Variant B: eta
    momentum: float = 0.8  # Variant B: EMA of OI
    freeze_fraction: float = 0.2  # Variant B: b frozen for the last 20 % of epochs
    fixed_fn_weight: float = 0.5  # selector == "fixed": train the compound loss at this b (ablation)

    def __post_init__(self) -> None:
        if not 0 < self.lo < self.init < self.hi < 1:
            raise ConfigError(f"selector.lo < selector.init < selector.hi must lie in (0, 1), got "
                              f"{self.lo}, {self.init}, {self.hi}")
        if self.max_rounds < 1 or self.warmup_epochs < 1 or self.round_epochs < 1 or self.final_epochs < 1:
            raise ConfigError("selector.max_rounds, warmup_epochs, round_epochs, final_epochs must be >= 1")
        if not self.tolerance > 0 or not self.step_size > 0:
            raise ConfigError("selector.tolerance and selector.step_size must be > 0")
        _unit("selector.momentum", self.momentum, closed=True)
        _unit("selector.freeze_fraction", self.freeze_fraction, closed=True)
        _unit("selector.fixed_fn_weight", self.fixed_fn_weight)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100  # spec 3 (GPU)
    batch_size: int = 8  # spec 3: 8-16
    lr: float = 1e-3  # spec 3: Adam 1e-3 from scratch
    weight_decay: float = 1e-5  # spec 3
    use_augment: bool = True  # spec 3: flips and 90-degree rotations
    val_every: int = 1  # epochs between validation OI logs of fixed-loss runs (selection always validates)
    threshold: float = 0.5  # spec 3: inference threshold, always 0.5
    num_threads: int = 0  # 0 = torch default

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.val_every < 1 or self.num_threads < 0:
            raise ConfigError("train.epochs, train.batch_size, train.val_every must be >= 1; num_threads >= 0")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError("train.lr must be > 0 and train.weight_decay >= 0")
        _unit("train.threshold", self.threshold)


@dataclass(frozen=True)
class ReproduceConfig:
    """Scale of `tenfold reproduce harmonize` (spec 5-6)."""

    # Main-scale loss grid (spec 6 table).
    losses: tuple[str, ...] = ("ce", "wce_inverse", "focal", "dice", "tversky", "focal_tversky", "combo",
                               "unified_focal", "harmonize")
    # Scales S1, S2, S3: canvas and crack length range (spec 4.1 item 8).
    scale_sizes: tuple[int, ...] = (96, 128, 192)
    scale_crack_min: tuple[int, ...] = (6, 8, 8)
    scale_crack_max: tuple[int, ...] = (9, 16, 16)
    scale_losses: tuple[str, ...] = ("ce", "wce_inverse", "tversky", "unified_focal", "harmonize")
    architectures: tuple[str, ...] = ()  # extra smp architectures for the architecture row (full profile)
    # Issue 18, fair tuning. Design choice: every loss with a pixel-wise CE term (loss.FOCAL_CE_LOSSES) is trained
    # with and without its focal modulation and the option with the higher validation IoU at t = 0.5 is kept
    # (ties: the plain form); the other losses have no such option (one run). False: no search for anyone.
    search_focal_ce: bool = True
    # Issue 18: the compound loss at fixed b (0.5 and the b* ours ended with) isolates the adaptive selection.
    fixed_fn_weight: float = 0.5
    use_fixed_b_rows: bool = True

    def __post_init__(self) -> None:
        n = len(self.scale_sizes)
        if n != 3 or len(self.scale_crack_min) != n or len(self.scale_crack_max) != n:
            raise ConfigError("reproduce.scale_sizes / scale_crack_min / scale_crack_max need 3 entries (S1-S3)")
        known = LossName.__args__  # type: ignore[attr-defined]
        for name in self.losses + self.scale_losses:
            if name not in known:
                raise ConfigError(f"reproduce.losses: unknown loss {name!r}; allowed: {known}")
        _unit("reproduce.fixed_fn_weight", self.fixed_fn_weight)
        if "harmonize" not in self.losses or "ce" not in self.losses:
            raise ConfigError("reproduce.losses must include 'harmonize' and 'ce'")


@dataclass(frozen=True)
class Config:
    seed: int = 0
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    selector: SelectorConfig = field(default_factory=SelectorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    reproduce: ReproduceConfig = field(default_factory=ReproduceConfig)

    def __post_init__(self) -> None:
        if self.data.train_crop and self.data.train_crop > self.data.image_size:
            raise ConfigError(f"data.train_crop ({self.data.train_crop}) must be <= data.image_size")


# Every seed looked at while developing (seeds 0-2 while building (validation diagnostics on 1 and 2), 7 and 11
# reported before issue 11). The default claim seeds of `tenfold reproduce` (1000, 1001, 1002) are disjoint from
# them; a run on one of these is flagged in the report.
DEV_SEEDS: tuple[int, ...] = (0, 1, 2, 7, 11)

# Each profile: the command, expected time on 2 CPU cores, expected result.
PROFILES: dict[str, dict[str, object]] = {
    # tenfold train harmonize --profile smoke    (~1 s; tenfold reproduce harmonize --profile smoke ~5 s;
    # finite losses, OI measured, bisection brackets shrink; numbers meaningless at this size)
    "smoke": {
        "device": "cpu",
        "data.image_size": 32, "data.crack_len_min": 3, "data.crack_len_max": 4,
        "data.num_train": 8, "data.num_val": 4, "data.num_test": 4,
        "model.widths": (4, 8),
        "train.epochs": 1, "train.batch_size": 8,
        "selector.warmup_epochs": 1, "selector.round_epochs": 1, "selector.max_rounds": 2,
        "selector.final": "continue", "selector.final_epochs": 1,
        "reproduce.losses": ("ce", "wce_inverse", "tversky", "harmonize"),
        "reproduce.scale_sizes": (24, 32, 48), "reproduce.scale_crack_min": (3, 3, 3),
        "reproduce.scale_crack_max": (4, 4, 4), "reproduce.scale_losses": ("ce", "harmonize"),
    },
    # tenfold reproduce harmonize    (quick: 3 claim seeds, ~10-15 min on 2 cores; S2 rows of spec 6, issue 18 rows)
    # Deviation (budget: 15 min for 3 seeds on 2 cores, 15 training runs per seed): S2 only (S1/S3 rows opt-in via
    # reproduce.scale_losses), 64/48/64 images, 10 epochs, a 3-level TinyUNet, lr 5e-3, crack contrast U(0.2, 0.4)
    # instead of U(0.04, 0.12) (at the spec's contrast no loss learned the cracks within this budget; measured
    # with 64x64 crops only), and the online selector (one run, the same epochs as every baseline) instead of
    # bisection rounds. Focal (alpha 0.25) is left out: CE's focal-modulated search option covers it.
    # Design choice: whole-canvas training (train_crop 0, the spec's setting). Uniform 64x64 crops make ~17 % of
    # batches foreground-free (computed: 0.8^8); on those the batch-pooled region losses (FP term kept, pitfall 1)
    # drive every logit to about -12, the sigmoid saturates and nothing learns.
    # Issue 18 (fair tuning): no loss gets the focal-modulated CE term by default; reproduce.search_focal_ce tries
    # it for every loss with a pixel-wise CE term (CE, wCE, Combo, Unified Focal, ours) and keeps the better
    # validation IoU. Development seed 1, validation: plain CE, Combo, Unified Focal and ours val IoU 0.00; with the
    # option CE 0.74, Combo 0.63, ours 0.54 (Unified Focal 0.00 both ways); Dice 0.61.
    "quick": {
        "device": "cpu",
        "data.num_train": 64, "data.num_val": 48, "data.num_test": 64, "data.train_crop": 0,
        "data.contrast_max": 0.4, "data.contrast_min": 0.2,
        "model.widths": (8, 16, 32),
        "train.epochs": 10, "train.batch_size": 8, "train.lr": 5e-3, "train.val_every": 100,
        "selector.selector": "online",
        "reproduce.losses": ("ce", "wce_inverse", "dice", "tversky", "focal_tversky", "combo", "unified_focal",
                             "harmonize"),
        "reproduce.scale_losses": (),
    },
    # tenfold reproduce harmonize --profile full    (GPU: S2 at spec size, smp architectures; 3 claim seeds by
    # default, run by the CLI)
    "full": {
        "device": "auto",
        "train.epochs": 100, "train.batch_size": 8, "selector.max_rounds": 5,
        # Issue 18: the spec's GPU sizes (spec 4.1): S1 512^2 with L 48-64 (~1:4-5k), S2 512^2 with L 16-24
        # (~1:11-16k), S3 1024^2 with L 16-24 (~1:44-65k) (design choice within the spec's L = 16-64). Bisection
        # (the default selector): warm-up 25 + up to 4 rounds of 25 + a 100-epoch retrain = up to 225 epochs for
        # ours against 100 per baseline; each row's budget records the epochs actually trained.
        "data.image_size": 512, "data.crack_len_min": 16, "data.crack_len_max": 24,
        "reproduce.scale_sizes": (512, 512, 1024), "reproduce.scale_crack_min": (48, 16, 16),
        "reproduce.scale_crack_max": (64, 24, 24),
        "reproduce.architectures": ("smp_unet", "smp_unetplusplus", "smp_fpn", "smp_deeplabv3plus"),
    },
}
