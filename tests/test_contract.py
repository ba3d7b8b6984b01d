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


PREDICT_KEYS = [k for k in KEYS if SYSTEMS[k].predict is not None]


@pytest.mark.parametrize("key", KEYS)
def test_dev_seeds_are_listed(key):
    assert all(isinstance(s, int) for s in SYSTEMS[key].dev_seeds) and SYSTEMS[key].dev_seeds


def test_predict_is_refused_with_exit_2_by_systems_without_it(tmp_path, capsys):
    from tenfold.cli import main

    for key in [k for k in KEYS if SYSTEMS[k].predict is None]:
        assert main(["predict", key, "--run", str(tmp_path), "--input", "x", "--output", "y"]) == 2
        assert "does not offer predict" in capsys.readouterr().err


@pytest.mark.parametrize("key", PREDICT_KEYS)
def test_predict_bad_inputs_exit_2_naming_the_file(key, tmp_path, capsys):
    from tenfold.cli import main

    run = tmp_path / "run"
    assert main(["--quiet", "train", key, "--profile", "smoke", "--out", str(run)]) == 0
    capsys.readouterr()
    missing = tmp_path / "missing.bin"
    assert main(["predict", key, "--run", str(run), "--input", str(missing), "--output", str(tmp_path / "o")]) == 2
    assert "missing.bin" in capsys.readouterr().err
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00\xffnot a file of the field's format")
    out = tmp_path / "out.json"
    assert main(["predict", key, "--run", str(run), "--input", str(garbage), "--output", str(out)]) == 2
    assert "garbage.npz" in capsys.readouterr().err and not out.exists()  # nothing half-written
    other = next(k for k in KEYS if k != key)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "run.json").write_text(json.dumps({"system": other, "profile": "smoke"}))
    assert main(["predict", key, "--run", str(tmp_path / "other"), "--input", str(garbage), "--output",
                 str(out)]) == 2
    assert f"trained by {other!r}" in capsys.readouterr().err


@pytest.mark.parametrize("key", KEYS)
def test_every_system_has_a_bad_input_catalogue(key):
    """Issue 12: each system (new ones when they land) keeps a catalogue of malformed inputs run through the CLI."""
    path = Path(__file__).parent / "systems" / key / "test_bad_inputs.py"
    assert path.exists(), f"{path} missing"
    text = path.read_text()
    assert "assert_refused" in text and text.count("def test_") >= 3
