"""Contract tests parametrized over the registry: every system has the same shape."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import pytest

from tenfold.core.config import PROFILE_NAMES, from_dict, make_config, to_dict
from tenfold.systems import SYSTEMS, get_system

KEYS = sorted(SYSTEMS)


def test_get_system_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_system("nope")
    for key in KEYS:
        assert key in str(err.value)


@pytest.mark.parametrize("key", KEYS)
def test_spec_shape(key):
    spec = SYSTEMS[key]
    assert spec.key == key
    assert set(spec.profiles) == set(PROFILE_NAMES)
    assert dataclasses.is_dataclass(spec.config_cls) and spec.config_cls.__dataclass_params__.frozen
    assert spec.reproduce_minutes > 0
    for name in ("seed", "device"):
        assert name in {f.name for f in dataclasses.fields(spec.config_cls)}


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_profiles_validate_and_round_trip(key, profile):
    spec = SYSTEMS[key]
    cfg = make_config(spec.config_cls, spec.profiles, profile)
    assert from_dict(spec.config_cls, json.loads(json.dumps(to_dict(cfg)))) == cfg


@pytest.mark.parametrize("key", KEYS)
def test_smoke_train_then_evaluate(key):
    spec = SYSTEMS[key]
    cfg = make_config(spec.config_cls, spec.profiles, "smoke")
    with tempfile.TemporaryDirectory() as tmp:
        metrics = spec.train(cfg, Path(tmp))
        for name in ("config.json", "metrics.jsonl", "summary.json", "checkpoints/last.pt"):
            assert (Path(tmp) / name).exists(), name
        summary = json.loads((Path(tmp) / "summary.json").read_text())
        assert "runtime" in summary and summary["runtime"]["wall_time_s"] >= 0
        assert all(v == v for v in metrics.values() if isinstance(v, float))  # no NaN metric
        evaluated = spec.evaluate(cfg, Path(tmp))
        assert evaluated
