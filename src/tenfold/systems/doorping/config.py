"""Configs of `doorping` (Backdoor Attacks Against Dataset Distillation, Liu et al., NDSS 2023, arXiv 2301.01197).

Defaults are the official code's values (liuyugeng/baadd, DC/main.py and DD/base_options.py, tagged
[code]) unless tagged otherwise; the spec is ../shared/specs/doorping.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tenfold.core.config import ConfigError

Dataset = Literal["digits", "shapes10", "fashionmnist", "cifar10", "cifar100", "svhn", "stl10", "imagefolder", "npz"]
# Distillation architectures (DOORPING selects a unit of their FC-192 layer); AlexCifarNet is DD's [code].
Arch = Literal["convnet", "convnet_mini", "alexnet", "alexcifarnet"]
# Transfer victims (eval_mode M [code]): any distillation architecture, or DC's VGG11 / ResNet18 (instance norm).
EvalArch = Literal["convnet", "convnet_mini", "alexnet", "alexcifarnet", "vgg11", "resnet18"]
Method = Literal["dc", "dsa", "dm", "dd"]
Attack = Literal["clean", "naive", "doorping", "invisible"]
# (outer_loop, inner_loop) by ipc, DC/utils.py get_loops [code]
DC_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def _positive(section: str, obj: object, names: tuple[str, ...], allow_zero: bool = False) -> None:
    for name in names:
        v = getattr(obj, name)
        if v < 0 or (v == 0 and not allow_zero):
            raise ConfigError(f"{section}.{name} must be {'>= 0' if allow_zero else '> 0'}, got {v}")


@dataclass(frozen=True)
class DataConfig:
    dataset: Dataset = "cifar10"  # [code] DC/main.py --dataset CIFAR10
    root: str = ""  # local folder of a torchvision data set, an ImageFolder tree or an .npz file
    ori: float = 1.0  # [code] fraction of the training set the attacker holds
    num_train: int = 0  # 0 = all; otherwise a stratified subset (smoke profile)
    image_size: int = 32  # [code] all official sets are 32x32; digits use 16 (spec 4.1)

    def __post_init__(self) -> None:
        if self.dataset not in Dataset.__args__:  # type: ignore[attr-defined]
            raise ConfigError(f"data.dataset must be one of {list(Dataset.__args__)}, got {self.dataset!r}")  # type: ignore[attr-defined]
        if not 0 < self.ori <= 1:
            raise ConfigError(f"data.ori must be in (0, 1], got {self.ori}")
        _positive("data", self, ("num_train",), allow_zero=True)
        _positive("data", self, ("image_size",))


@dataclass(frozen=True)
class ModelConfig:
    arch: Arch = "convnet"  # [code] --model ConvNet (BAADD's: 128 wide, 3 deep, no norm, FC-192)
    # transfer architectures (eval_mode M), comma-separated, e.g. "vgg11,resnet18"; "" = none
    eval_arch: str = ""
    width: int = 128  # [code] net_width
    depth: int = 3  # [code] net_depth
    hidden: int = 192  # [code] the FC-192 layer whose unit DOORPING selects
    # "auto" = the code's choice per back-end: Xavier for DD (`init = xavier`, DD/base_options.py), PyTorch's
    # default for DC / DSA / DM; "default" / "xavier" force one for every network (distillation and victims).
    init: Literal["auto", "default", "xavier"] = "auto"

    def __post_init__(self) -> None:
        archs, eval_archs = list(Arch.__args__), list(EvalArch.__args__)  # type: ignore[attr-defined]
        if self.arch not in archs:
            raise ConfigError(f"model.arch must be one of {archs}, got {self.arch!r}")
        for name in self.eval_archs():
            if name not in eval_archs:
                raise ConfigError(f"model.eval_arch must be a comma-separated list of {eval_archs}, "
                                  f"got {self.eval_arch!r}")
        if self.init not in ("auto", "default", "xavier"):
            raise ConfigError(f"model.init must be one of ['auto', 'default', 'xavier'], got {self.init!r}")
        _positive("model", self, ("width", "depth", "hidden"))

    def eval_archs(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.eval_arch.split(",")) if self.eval_arch.strip() else ()

    def init_for(self, method: str) -> str:
        """The init every network of a run gets: "auto" resolves to the code's choice for the back-end."""
        return ("xavier" if method == "dd" else "default") if self.init == "auto" else self.init


@dataclass(frozen=True)
class DistillConfig:
    method: Method = "dc"  # [code] --method DC (DSA = DC + augmentation); "dm" is tenfold's addition; "dd" = DD/
    ipc: int = 10  # [code] --ipc
    outer_loop: int = 0  # 0 = the code's table DC_LOOPS by ipc
    inner_loop: int = 0  # 0 = the code's table DC_LOOPS by ipc
    iterations: int = 1000  # [code] --Iteration
    batch_real: int = 256  # [code] --batch_real (per class)
    batch_train: int = 256  # [code] --batch_train (net training on S)
    lr_img: float = 0.1  # [code] --lr_img (DM's own default is 1.0 [literature])
    lr_net: float = 0.01  # [code] --lr_net
    momentum_img: float = 0.5  # [code] SGD(image_syn, momentum=0.5)
    init: Literal["noise", "real"] = "noise"  # [code] --init noise
    dis_metric: Literal["ours", "mse", "cos"] = "ours"  # [code] --dis_metric ours
    weight_match: float = 1.0  # Design choice: the single loss term's weight (house style)
    # DD (DD/base_options.py [code])
    dd_steps: int = 10  # distill_steps
    dd_images_per_step: int = 10  # distilled_images_per_class_per_step
    dd_epochs: int = 3  # distill_epochs -> T = 30
    dd_lr_init: float = 0.001  # distill_lr
    dd_outer_lr: float = 0.01  # Adam lr of the outer step, betas (0.5, 0.999)
    dd_batch_real: int = 1024  # batch_size of the real data
    checkpoint_every: int = 1  # iterations (DC/DM) or real batches (DD) between checkpoints

    def __post_init__(self) -> None:
        if self.method not in Method.__args__:  # type: ignore[attr-defined]
            raise ConfigError(f"distill.method must be one of {list(Method.__args__)}, got {self.method!r}")  # type: ignore[attr-defined]
        _positive("distill", self, ("ipc", "iterations", "batch_real", "batch_train", "lr_img", "lr_net",
                                    "dd_steps", "dd_images_per_step", "dd_epochs", "dd_lr_init", "dd_outer_lr",
                                    "dd_batch_real", "checkpoint_every"))
        _positive("distill", self, ("outer_loop", "inner_loop", "momentum_img"), allow_zero=True)

    def loops(self) -> tuple[int, int]:
        """(outer_loop, inner_loop): explicit overrides, else the code's table by ipc.

        Checked here rather than in __post_init__ because dotted overrides apply one key at a time.
        """
        outer, inner = DC_LOOPS.get(self.ipc, (0, 0))
        if not (self.outer_loop or outer) or not (self.inner_loop or inner):
            raise ConfigError(f"distill.ipc={self.ipc} has no (outer, inner) loop in the code's table "
                              f"{sorted(DC_LOOPS)}; set distill.outer_loop and distill.inner_loop explicitly")
        return self.outer_loop or outer, self.inner_loop or inner


@dataclass(frozen=True)
class AttackConfig:
    attack: Attack = "doorping"  # the package key's method; "clean" and "naive" are its baselines
    portion: float = 0.01  # [code] --portion
    backdoor_size: int = 2  # [code] --backdoor_size
    trigger_label: int = 0  # [code] --trigger_label
    alpha: float = 10.0  # [code] --alpha
    topk: int = 1  # [code] --topk
    layer: int = -2  # [code] --layer
    trigger_lr: float = 0.08  # [code] Adam(lr=0.08, betas=(0.9, 0.99)) in update_trigger
    trigger_steps: int = 1000  # [code] up to 1000 Adam steps per update
    stop_loss: float = 0.5  # [code] early stop when the MSE < 0.5 (absolute)
    # Faithful = post-ReLU (the in-place ReLU overwrites the hooked output [code]); "pre_relu" is a deviation.
    activation: Literal["post_relu", "pre_relu"] = "post_relu"
    # "unclamped" = code-faithful; "clamp" / "uint8" keep tau a realisable image (spec 6.1, pitfall 3).
    trigger_range: Literal["unclamped", "clamp", "uint8"] = "unclamped"
    # "top_weight" = the code's rule (top-k rows of |W| over all units); "active_top_weight" = Deviation (issue 21):
    # the same ranking among units active enough on tau that the early stop cannot fire at step 0 (pitfall 12).
    neuron_rule: Literal["top_weight", "active_top_weight"] = "top_weight"
    # True = the official code's quirks (SVHN stripe trigger, INVISIBLE accumulation, DD mask > 1, DD same-init
    # victims); False = the library default. Every quirk is listed in the README.
    faithful: bool = False
    # Deviation switch (pitfall 2): DC at ipc 1 never updates the trigger; True adds one update per iteration.
    update_at_ipc1: bool = False
    invisible_steps: int = 100  # [code] DC INVISIBLE: 100 Adam steps at lr 0.08

    def __post_init__(self) -> None:
        if self.attack not in Attack.__args__:  # type: ignore[attr-defined]
            raise ConfigError(f"attack.attack must be one of {list(Attack.__args__)}, got {self.attack!r}")  # type: ignore[attr-defined]
        if not 0 <= self.portion <= 1:
            raise ConfigError(f"attack.portion must be in [0, 1], got {self.portion}")
        _positive("attack", self, ("backdoor_size", "topk", "trigger_lr", "alpha", "stop_loss"))
        _positive("attack", self, ("trigger_steps", "trigger_label", "invisible_steps"), allow_zero=True)
        if self.neuron_rule not in ("top_weight", "active_top_weight"):
            raise ConfigError(f"attack.neuron_rule must be one of ['top_weight', 'active_top_weight'], got "
                              f"{self.neuron_rule!r}")
        if self.layer >= 0:
            raise ConfigError(f"attack.layer counts weight tensors from the end and must be < 0, got {self.layer}")


@dataclass(frozen=True)
class VictimConfig:
    num_victims: int = 10  # [code] --num_eval
    epochs: int = 300  # [code] --epoch_eval_train (passes 0..300 = 301)
    dsa_epochs: int = 1000  # [code] victims of a DSA set: 1000 DSA-augmented passes (0..1000)
    lr: float = 0.01  # [code] evaluate_synset: SGD lr 0.01, momentum 0.9, wd 5e-4, lr x0.1 at epochs // 2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch: int = 256  # [code] batch_train

    def __post_init__(self) -> None:
        _positive("victim", self, ("num_victims", "epochs", "dsa_epochs", "lr", "batch"))


@dataclass(frozen=True)
class DefenseConfig:
    use_defenses: bool = True  # Design choice: Neural Cleanse, STRIP, fine-pruning on the victims (README)
    nc_steps: int = 300  # Design choice: Neural Cleanse optimisation steps per class
    nc_lambda: float = 0.01  # Neural Cleanse L1 weight on the mask (Wang et al. S&P'19 init 1e-2 [literature])
    strip_overlays: int = 16  # STRIP superimpositions per input (Gao et al. ACSAC'19 use N = 100 [literature])
    # fine-pruning: the fractions of last-conv channels pruned (by mean clean activation), each run separately
    prune_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    finetune_epochs: int = 20  # fine-pruning: epochs of fine-tuning on the defender's clean data
    num_clean: int = 200  # defender's clean images (from the attacker-unused training split)

    def __post_init__(self) -> None:
        _positive("defense", self, ("nc_steps", "nc_lambda", "strip_overlays", "num_clean"))
        _positive("defense", self, ("finetune_epochs",), allow_zero=True)
        if not self.prune_fractions or not all(0 <= f < 1 for f in self.prune_fractions):
            raise ConfigError(f"defense.prune_fractions must be a non-empty list of fractions in [0, 1), got "
                              f"{self.prune_fractions}")


@dataclass(frozen=True)
class Config:
    seed: int = 0  # Design choice: one seeded generator per stream (the code seeds 42, then the wall clock)
    device: str = "auto"
    # torch intra-op threads for `reproduce` (0 = leave torch's setting). Design choice: the quick profile uses 1;
    # on the shared 2-core machine 2 threads made a DC matching step 3-4x slower (0.58 s vs 0.17 s, README).
    num_threads: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    victim: VictimConfig = field(default_factory=VictimConfig)
    defense: DefenseConfig = field(default_factory=DefenseConfig)

    def __post_init__(self) -> None:
        _positive("config", self, ("num_threads",), allow_zero=True)
        classes = 100 if self.data.dataset == "cifar100" else 10
        if self.attack.trigger_label >= classes and self.data.dataset not in ("imagefolder", "npz"):
            raise ConfigError(f"attack.trigger_label={self.attack.trigger_label} is not a class of "
                              f"{self.data.dataset} ({classes} classes: 0..{classes - 1})")


_DIGITS_MINI = {"data.dataset": "digits", "data.image_size": 16, "model.arch": "convnet_mini",
                "model.width": 32, "model.depth": 2}


# Every seed looked at while developing (the quick schedule was chosen on seeds 0 and 1; 7 reported as held-out
# before issue 11). The default claim seeds of `tenfold reproduce` (1000, 1001, 1002) are disjoint from them; a
# run on one of these is flagged in the report.
DEV_SEEDS: tuple[int, ...] = (0, 1, 7)

# Each profile: the command, expected time on 2 CPU cores, expected result.
PROFILES: dict[str, dict[str, object]] = {
    # tenfold train doorping --profile smoke    (seconds; finite losses, tau changes only inside M)
    "smoke": {**_DIGITS_MINI, "data.num_train": 200, "distill.ipc": 2, "distill.outer_loop": 2,
              "distill.inner_loop": 2, "distill.iterations": 2, "distill.batch_real": 16,
              "attack.portion": 0.05, "attack.trigger_steps": 5, "victim.num_victims": 1, "victim.epochs": 20,
              "device": "cpu", "num_threads": 1, "defense.nc_steps": 10, "distill.dd_steps": 1,
              "distill.dd_images_per_step": 1, "distill.dd_epochs": 1, "distill.dd_batch_real": 100,
              "defense.finetune_epochs": 2, "defense.num_clean": 50, "victim.dsa_epochs": 20},
    # tenfold reproduce doorping    (quick: digits 16x16, DC ipc 10, 5 % poison, four synthetic sets per seed and
    # every defense on the victims of DOORPING, realisable DOORPING and clean; 3 claim seeds in <= 15 min on 2
    # cores; README "Claim table" has the numbers)
    # Deviation (spec 5 allows cutting the loops): inner_loop 50 -> 10, batch_real 64 -> 16, victims trained for
    # 150 epochs (code: 300); 10 iterations as the spec's quick profile. Issue 11 used 20 iterations / inner 25 /
    # batch_real 32 (chosen on dev seeds 0 and 1); issue 21 adds a fourth set, three claim seeds and the defenses to
    # 15 minutes, so the schedule was cut from timings of dev seed 0 only (README, "Tuning"), not from results.
    # Design choice: Neural Cleanse at 30 steps per class on 48 clean images (it runs on 9 victims per seed).
    # Deviation: quick distils with DC (the paper's back-end) on ConvNetMini, so DSA's augmentation and the
    # VGG11 / ResNet18 transfer victims are not run; were `distill.method=dsa` set, its victims would train for
    # 150 DSA passes (code: 1000), as the plain victims' 150 (code: 300).
    # Deviation (issue 21): neuron_rule active_top_weight. With the code's rule the trigger stopped at step 0 on
    # every update of dev seeds 0 and 7 (2-iteration diagnostic, README "Trigger movement"); among active units it
    # moves on every update (chosen on DEV_SEEDS only). Deviation (time): the trigger's Adam cap 100 -> 50 (spec
    # quick: 100; code: 1000): with the active rule nearly every update runs to the cap, and a one-seed dev run
    # (seed 0) at 100 took 404 s, the DOORPING arms 123 s and 93 s against 45-50 s for clean / NAIVE (README).
    "quick": {**_DIGITS_MINI, "attack.neuron_rule": "active_top_weight", "distill.iterations": 10,
              "distill.outer_loop": 10, "distill.inner_loop": 10,
              "distill.batch_real": 16, "attack.portion": 0.05, "attack.trigger_steps": 50,
              "victim.num_victims": 3, "victim.epochs": 150, "device": "cpu", "num_threads": 1,
              "defense.nc_steps": 30, "defense.num_clean": 48, "victim.dsa_epochs": 150},
    # tenfold train doorping --profile full --set data.root=/data/cifar10    (GPU, hours)
    # The paper's choices: CIFAR-10, DC on ConvNet, cross-architecture victims VGG11 and ResNet18 (eval_mode M,
    # DC's instance-norm versions); `model.init = auto` gives Xavier under `--set distill.method=dd` (then also
    # `model.arch=alexcifarnet`), PyTorch's default under DC; `distill.method=dsa` augments the inner loop and
    # trains its victims for 1000 DSA passes [code].
    "full": {"data.dataset": "cifar10", "model.eval_arch": "vgg11,resnet18"},
}
