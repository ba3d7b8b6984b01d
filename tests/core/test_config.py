"""Config overrides, type conversion and the JSON round trip (core/config.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import pytest

from tenfold.core.config import (ConfigError, from_dict, load_config, make_config, override, parse_set_args,
                                 save_config, to_dict)


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    steps: int = 10
    use_ema: bool = False
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)
    path: str | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"inner.steps must be >= 1, got {self.steps}")


@dataclass(frozen=True)
class Outer:
    seed: int = 0
    inner: Inner = field(default_factory=Inner)


def test_override_converts_cli_strings_to_declared_types():
    cfg = override(Outer(), {"inner.lr": "3e-4", "inner.steps": "7", "inner.use_ema": "true",
                             "inner.mode": "b", "inner.sizes": "4,5,6", "inner.path": "x.npz", "seed": 3})
    assert cfg.inner == Inner(lr=3e-4, steps=7, use_ema=True, mode="b", sizes=(4, 5, 6), path="x.npz")
    assert cfg.seed == 3
    assert Outer().inner.lr == 0.1  # the original is untouched (frozen copy)


@dataclass(frozen=True)
class Strided:
    stride: Literal[2, 4] = 4


def test_numeric_literal_accepts_its_cli_string():
    # `--set model.output_stride=2` reaches override as the string "2" (maskfocal's Literal[2, 4] was refused)
    assert override(Strided(), {"stride": "2"}).stride == 2 and isinstance(override(Strided(), {"stride": "2"}).stride, int)
    assert override(Strided(), {"stride": 2}).stride == 2
    with pytest.raises(ConfigError, match=r"stride: expected one of \[2, 4\], got '3'"):
        override(Strided(), {"stride": "3"})


def test_optional_accepts_none():
    cfg = override(Outer(), {"inner.path": "x"})
    assert override(cfg, {"inner.path": "none"}).inner.path is None


@pytest.mark.parametrize("key,value,needle", [
    ("inner.lrr", 1.0, "unknown config key 'inner.lrr'"),
    ("nope", 1, "unknown config key 'nope'"),
    ("inner.steps", "ten", "inner.steps: expected an integer"),
    ("inner.steps", 2.5, "inner.steps: expected an integer"),
    ("inner.use_ema", "maybe", "inner.use_ema: expected a boolean"),
    ("inner.mode", "c", "inner.mode: expected one of ['a', 'b']"),
    ("inner", 1, "'inner' is a section"),
    ("seed.x", 1, "'seed' is not a section"),
    ("inner.steps", 0, "inner.steps must be >= 1"),
])
def test_override_errors_name_the_field(key, value, needle):
    with pytest.raises(ConfigError) as err:
        override(Outer(), {key: value})
    assert needle in str(err.value)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Outer().seed = 1  # type: ignore[misc]


def test_json_round_trip(tmp_path):
    cfg = override(Outer(), {"inner.sizes": "3", "inner.mode": "b", "seed": 9})
    save_config(cfg, tmp_path / "c.json")
    assert load_config(Outer, tmp_path / "c.json") == cfg
    assert from_dict(Outer, to_dict(cfg)) == cfg


def test_from_dict_rejects_unknown_and_missing_keys():
    d = to_dict(Outer())
    d["inner"]["extra"] = 1
    with pytest.raises(ConfigError, match="inner.extra"):
        from_dict(Outer, d)
    d = to_dict(Outer())
    del d["inner"]["lr"]
    with pytest.raises(ConfigError, match="missing config key 'inner.lr'"):
        from_dict(Outer, d)


def test_load_config_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        load_config(Outer, bad)
    with pytest.raises(ConfigError, match="missing.json: config file not found"):
        load_config(Outer, tmp_path / "missing.json")


def test_profiles_and_set_args():
    profiles = {"smoke": {"inner.steps": 2}, "quick": {}, "full": {"inner.steps": 1000}}
    assert make_config(Outer, profiles, "smoke").inner.steps == 2
    assert make_config(Outer, profiles, "smoke", {"inner.steps": "5"}).inner.steps == 5
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        make_config(Outer, profiles, "fast")
    assert parse_set_args(["a.b=1", "c = x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set_args(["oops"])
