"""Configs of `fctl`: Ultra-high Resolution Image Segmentation via Locality-aware Context Fusion and
Alternating Local Enhancement (Liu, Li, Lin, Yang, He, Yu; IJCV 2024; arXiv 2109.02580).

Defaults are the official code's values (github.com/liqiokkk/FCtL, tagged [code]) where it has them,
else the spec's [design choice] values (../shared/specs/fctl.md). PROFILES override them explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tenfold.core.config import ConfigError

Backbone = Literal["tiny", "vgg16"]
Variant = Literal["inria", "deepglobe"]
Source = Literal["synth", "deepglobe", "inria"]
AleMode = Literal["cross", "spatial_channel"]


@dataclass(frozen=True)
class DataConfig:
    source: Source = "synth"
    root: str = ""  # DeepGlobe / Inria folder (spec 4.2); unused for synth
    image_size: int = 2448  # S; DeepGlobe tiles are 2448^2 (spec 6)
    patch_size: int = 508  # p [code]
    min_overlap: float = 50.0  # px at p = 508 [code]; synth scales it by p / 508 (spec 4.1)
    num_classes: int = 7  # DeepGlobe: 0 unknown + 6 [code]
    num_train: int = 454  # GLNet's split (spec 6; issue #6 of the official code: 454, not 455)
    num_val: int = 207
    num_test: int = 142

    def __post_init__(self) -> None:
        if self.patch_size < 8 or self.image_size < 8:
            raise ConfigError(f"data.patch_size and data.image_size must be >= 8, got "
                              f"{self.patch_size} / {self.image_size}")
        if self.min_overlap < 0:
            raise ConfigError(f"data.min_overlap must be >= 0, got {self.min_overlap}")
        if self.num_classes < 2:
            raise ConfigError(f"data.num_classes must be >= 2, got {self.num_classes}")
        if min(self.num_train, self.num_val, self.num_test) < 1:
            raise ConfigError("data.num_train, data.num_val and data.num_test must be >= 1")


@dataclass(frozen=True)
class ModelConfig:
    backbone: Backbone = "vgg16"  # FCN-8s VGG-16 [code]; "tiny" = TinyFCN for the CPU profiles
    weights_file: str = ""  # local ImageNet VGG-16 state dict; empty = random init (logged) [spec 3]
    variant: Variant = "inria"  # Inria `main` branch: contexts x2, x3 + self [code]
    context_factors: tuple[float, ...] = (2.0, 3.0)  # [code]; 0 = the DeepGlobe global context
    tiny_widths: tuple[int, ...] = (16, 32, 64, 128)  # TinyFCN stage widths (spec component 4)
    use_centered_qk: bool = False  # DeepGlobe branch mean-centres Q and K (spec component 8)
    use_imagenet_norm: bool = False  # [code]: inputs in [0, 1], no mean/std (pitfall 5)
    use_ale: bool = False  # ALE is a reconstruction (spec component 9); off in the faithful-to-code model
    ale_mode: AleMode = "cross"
    ale_rounds: int = 2  # T = 2 (spec component 9, design choice)
    attention_init_std: float = 0.01  # N(0, 0.01^2) 1x1 weights [code]

    def __post_init__(self) -> None:
        if not self.context_factors or any(f != 0 and f < 1 for f in self.context_factors):
            raise ConfigError(f"model.context_factors must be factors >= 1 (or 0 = global), got "
                              f"{self.context_factors}")
        if len(self.tiny_widths) != 4 or min(self.tiny_widths) < 1:
            raise ConfigError(f"model.tiny_widths must be 4 positive widths, got {self.tiny_widths}")
        if self.ale_rounds < 1:
            raise ConfigError(f"model.ale_rounds must be >= 1, got {self.ale_rounds}")


LONG = "_long"  # suffix of an equal-budget continuation stage


@dataclass(frozen=True)
class TrainConfig:
    epochs_per_stage: int = 50  # [code] 50 epochs per stage
    lr: float = 5e-5  # Adam [code]
    weight_decay: float = 5e-4  # [code] on the trunk
    # Deviation (issue 17): no decay on the context path (attention, gamma, fusion, context encoders), which gets
    # no gradient while gamma = 0; the code decays everything (5e-4). See train.build_optimizer.
    context_weight_decay: float = 0.0
    # Learning-rate multiplier of the context path (attention, gamma, fusion, context encoders); 1 = the code's
    # single learning rate. The code carries lr_mult scaffolding from the Disentangled Non-Local code (spec 8).
    context_lr_mult: float = 1.0
    poly_power: float = 0.9  # [code]
    val_every: int = 5  # validation mIoU (no TTA) every 5 epochs and after the last [code]; 0 = only at the end
    start_epoch: int = 50  # `main` runs epochs 50..99 of a 100-epoch poly schedule [code, pitfall 6]
    images_per_step: int = 6  # one Adam step per 6 images, gradients accumulated over their patches [code]
    sub_batch: int = 4  # patches per forward at training [code]
    focal_gamma: float = 3.0  # [code]
    weight_focal: float = 1.0
    use_augment: bool = True  # h-flip p 0.5, rot 90/180/270 p 0.5 [code]
    # Inria `main` stages 0..3 [code]: local, local + context i (one per context factor), all (LCF).
    # Also "all_ale" (LCF + ALE, reconstruction) and "global" (whole-image model: the baseline of component 14,
    # and the DeepGlobe global context, trained separately before "all"; see DEEPGLOBE_STAGES).
    # "<stage>_long" continues a finished stage until its trunk has trained as many epochs as LCF's trunk
    # (local -> single0 -> all = 3 stages): the equal-budget arms of `reproduce` (issue 17).
    stages: tuple[str, ...] = ("local", "single0", "single1", "all")

    def __post_init__(self) -> None:
        for name in ("epochs_per_stage", "images_per_step", "sub_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or min(self.weight_decay, self.context_weight_decay, self.focal_gamma) < 0:
            raise ConfigError("train.lr must be > 0, train.weight_decay, train.context_weight_decay and "
                              "train.focal_gamma >= 0")
        if not self.context_lr_mult > 0:
            raise ConfigError(f"train.context_lr_mult must be > 0, got {self.context_lr_mult}")
        if self.val_every < 0:
            raise ConfigError(f"train.val_every must be >= 0 (0: validate only after the last epoch), got "
                              f"{self.val_every}")
        if self.start_epoch < 0:
            raise ConfigError(f"train.start_epoch must be >= 0, got {self.start_epoch}")
        allowed = ("local", "all", "all_ale", "global")

        def known(s: str) -> bool:
            return s in allowed or (s.startswith("single") and s[6:].isdigit())

        ok = all(known(s) or (s.endswith(LONG) and known(s[:-len(LONG)]) and s[:-len(LONG)] not in ("all", "all_ale"))
                 for s in self.stages)
        if not self.stages or not ok or len(set(self.stages)) != len(self.stages):
            raise ConfigError(f"train.stages must be a list of distinct stages from {allowed}, single<i> or "
                              f"<local|single<i>|global>{LONG}, got {self.stages}")
        for s in self.stages:
            if s.endswith(LONG) and (s[:-len(LONG)] not in self.stages
                                     or self.stages.index(s[:-len(LONG)]) > self.stages.index(s)):
                raise ConfigError(f"train.stages: {s!r} continues {s[:-len(LONG)]!r}, which must come before it, "
                                  f"got {self.stages}")


@dataclass(frozen=True)
class EvalConfig:
    use_tta: bool = True  # 8x rotate/flip TTA at test [code]
    test_batch: int = 16  # patches per forward at test [code] (pitfall 11)

    def __post_init__(self) -> None:
        if self.test_batch < 1:
            raise ConfigError(f"eval.test_batch must be >= 1, got {self.test_batch}")


@dataclass(frozen=True)
class ReproduceConfig:
    """Scale of `tenfold reproduce fctl` (spec section 6)."""

    memory_sizes: tuple[int, ...] = (384, 768, 1536)  # spec 6: S = 384, 768, 1536
    use_ale_variant: bool = True  # train LCF + ALE as an extra stage-3 run

    def __post_init__(self) -> None:
        if len(self.memory_sizes) < 2 or min(self.memory_sizes) < 1:
            raise ConfigError(f"reproduce.memory_sizes needs >= 2 positive sizes, got {self.memory_sizes}")


@dataclass(frozen=True)
class Config:
    seed: int = 0
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    reproduce: ReproduceConfig = field(default_factory=ReproduceConfig)

    def __post_init__(self) -> None:
        # Cross-field checks live here: profiles set sizes one field at a time.
        if self.data.image_size < self.data.patch_size:
            raise ConfigError(f"data.patch_size ({self.data.patch_size}) must be <= data.image_size "
                              f"({self.data.image_size})")
        if self.data.min_overlap >= self.data.patch_size:
            raise ConfigError(f"data.min_overlap must be < data.patch_size, got {self.data.min_overlap}")
        factors, stages = self.model.context_factors, self.train.stages
        if self.model.variant == "deepglobe" and 0 not in factors:
            raise ConfigError("model.variant='deepglobe' needs the global context: add 0 to model.context_factors")
        for s in stages:
            base = s[:-len(LONG)] if s.endswith(LONG) else s
            if base.startswith("single") and (int(base[6:]) >= len(factors) or factors[int(base[6:])] == 0):
                raise ConfigError(f"train.stages: {s!r} needs a context factor >= 1 at model.context_factors"
                                  f"[{base[6:]}], got {factors}; the global context (0) comes from stage 'global'")
        for s in ("all", "all_ale"):  # spec 3, DeepGlobe branch: pre -> medium -> global -> all [code]
            if 0 in factors and s in stages and ("global" not in stages or stages.index("global") > stages.index(s)):
                raise ConfigError(f"train.stages: the global context (0 in model.context_factors) is the encoder "
                                  f"of the separately trained whole-image model, so 'global' must come before "
                                  f"{s!r}, got {stages}; e.g. {DEEPGLOBE_STAGES}")


# DeepGlobe branch [code] (spec 3 and component 8): contexts x1 (self), x3 ("medium") and the global context, the
# pool5 of a whole-image model trained separately; stages pre -> medium -> global -> all, context nets frozen.
DEEPGLOBE_STAGES: tuple[str, ...] = ("local", "single0", "global", "all")
# On the command line: `tenfold train fctl --profile full
# --set train.stages=local,single0,global,all --set model.context_factors=3,0 --set model.use_centered_qk=true
# --set model.variant=deepglobe --set data.source=deepglobe --set data.root=... --set data.num_classes=7 ...`.
DEEPGLOBE = {"train.stages": DEEPGLOBE_STAGES, "model.context_factors": (3.0, 0.0), "model.use_centered_qk": True,
             "model.variant": "deepglobe"}

_CPU_SYNTH = {
    "data.source": "synth",
    "model.backbone": "tiny",
    "data.num_classes": 7,
    # Deviation (spec 3 CPU port): Adam 5e-4 for a from-scratch tiny model, poly from epoch 0.
    "train.lr": 5e-4,
    "train.start_epoch": 0,
}


# Every seed looked at while developing (seeds 0 and 1 while building, 7 reported as held-out before issue 11).
# The default claim seeds of `tenfold reproduce` (1000, 1001, 1002) are disjoint from them; a run on one of
# these is flagged in the report.
DEV_SEEDS: tuple[int, ...] = (0, 1, 7)

# Each profile: the command, expected time on 2 CPU cores, expected result. Sizes are set smallest-field
# first (overlap, patch, image) because every dotted override re-validates the whole config.
PROFILES: dict[str, dict[str, object]] = {
    # tenfold train fctl --profile smoke   (~10 s; finite focal loss, gamma leaves 0, canvas H x W)
    "smoke": {
        **_CPU_SYNTH,
        "device": "cpu",
        "data.min_overlap": 50 * 32 / 508, "data.patch_size": 32, "data.image_size": 96,
        "data.num_train": 2, "data.num_val": 1, "data.num_test": 1,
        "model.tiny_widths": (4, 8, 8, 16),
        "train.epochs_per_stage": 1, "train.images_per_step": 1, "train.sub_batch": 16,
        "eval.use_tta": False,
        "reproduce.memory_sizes": (96, 192),
    },
    # tenfold reproduce fctl   (quick; 10 stages, equal trunk budgets; README "The claim" for the measured time
    # and rows)
    "quick": {
        **_CPU_SYNTH,
        "device": "cpu",
        # Deviation: S = 256, p = 64 (spec quick 384 / 96; the same p / S = 1/4, so the same 5 x 5 grid and the
        # same cells per patch): at p = 96 a training step costs ~2.25x more, and the equal-budget arms (issue 17)
        # already need 15 stage-epochs of trunk-equivalent work, which must fit 15 minutes for 3 seeds.
        "data.min_overlap": 50 * 64 / 508, "data.patch_size": 64, "data.image_size": 256,
        # Deviation: 32 / 8 / 16 images (spec 4.1: 64 / 16 / 16), chosen on DEV_SEEDS for the time budget.
        "data.num_train": 32, "data.num_val": 8, "data.num_test": 16,
        # Deviation: 12 epochs per stage (spec 6: 3) and one Adam step per image (code: per 6 images, which would
        # give 16 steps per stage): every arm's trunk gets 36 epochs = 1152 steps. With fewer epochs the context
        # branches had not picked up the farmstead cue (issue 17, dev seeds only: local + x3 shuffled-context gap
        # 0.00 points at 3 epochs per stage and 7.7 at 10 on seed 0; 13.3 at 8 on seed 1; the full reproduction on
        # seed 7: LCF's gap 0.6 at 8 epochs per stage, 14.8 at 12; README).
        "train.epochs_per_stage": 12, "train.images_per_step": 1, "train.sub_batch": 25,
        "eval.use_tta": False,  # Deviation: no 8x TTA in the quick evaluation (same for every variant)
    },
    # tenfold train fctl --profile full --set data.root=/data/inria --set model.weights_file=vgg16.pth
    # (GPU; Inria 126/27/27, 5000^2 tiles, p = 508, x2/x3 contexts, 50 epochs per stage: days)
    "full": {
        "data.source": "inria", "data.image_size": 5000, "data.num_classes": 2,
        "data.num_train": 126, "data.num_val": 27, "data.num_test": 27,
    },
}
