"""Configs of `drumlm` ("Language Models are Drummers", Zhang, Callison-Burch; arXiv 2301.01162).

Foundation only: the data, encoding, from-scratch model (C) and evaluation fields that exist in code today. The
pretrained LM (A / B), training and sampling fields come with train.py / evaluate.py (README "Not done"), so the
profiles below fix only these parts of spec section 5.
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

    def __post_init__(self) -> None:
        for name in ("num_layers", "d_model", "num_heads", "d_ff", "context_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model_c.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ConfigError(f"model_c.d_model ({self.d_model}) must be a multiple of model_c.num_heads "
                              f"({self.num_heads})")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model_c.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class EvalConfig:
    # the paper's released outputs (output_midi_{davinci,ada}/{dev,test}); None = the parity rows are skipped
    paper_outputs_root: str | None = None
    kmeans: Literal["exact", "sklearn"] = "exact"  # Design choice (spec 2.10): exact 1-D 2-means by default
    novelty_pool: Literal["train", "test"] = "train"  # Design choice (spec 2.13): the original used "test"

    def __post_init__(self) -> None:
        if self.kmeans not in ("exact", "sklearn"):
            raise ConfigError(f"eval.kmeans must be 'exact' or 'sklearn', got {self.kmeans!r}")
        if self.novelty_pool not in ("train", "test"):
            raise ConfigError(f"eval.novelty_pool must be 'train' or 'test', got {self.novelty_pool!r}")


@dataclass(frozen=True)
class Config:
    seed: int = 0
    device: str = "cpu"
    data: DataConfig = field(default_factory=DataConfig)
    model_c: ScratchConfig = field(default_factory=ScratchConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if self.data.source == "gmd" and not self.data.gmd_root:
            raise ConfigError("data.gmd_root must name a Groove MIDI Dataset folder when data.source = 'gmd'")


# Every seed looked at while developing drumlm (first session: generator, encoder and test seeds 0-5, 7, 8, 11;
# no model was trained). The claim seeds 1000-1002 were never run.
DEV_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 7, 8, 11)

# Each profile: the command, expected time, expected result (spec section 5). Only the data / C / eval parts exist.
PROFILES: dict[str, dict[str, object]] = {
    # smoke: 8 generated grooves in 4-bar windows; tiny C (1 layer, d 32)
    "smoke": {"data.num_train": 8, "data.num_dev": 2, "data.num_test": 2, "data.window_bars": 4,
              "data.window_offsets": (0,), "model_c.num_layers": 1, "model_c.d_model": 32, "model_c.num_heads": 2,
              "model_c.d_ff": 64, "model_c.context_length": 512},
    # quick: generator 400 / 50 / 50, 6-bar windows at bar offsets 0, 4, 8 (Deviation: 2 + 4 bars instead of
    # 2 + ~14); C at d_model 128, context 768 (Deviation)
    "quick": {"data.window_bars": 6, "model_c.d_model": 128, "model_c.d_ff": 512, "model_c.context_length": 768},
    # full (GPU): whole pieces; GMD when data.gmd_root is set (--set data.source=gmd data.gmd_root=DIR)
    "full": {},
}
