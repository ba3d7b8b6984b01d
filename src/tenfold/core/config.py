"""Frozen-dataclass configs: dotted overrides, type conversion and a JSON round trip.

Every system's `config.py` declares nested frozen dataclasses whose defaults are the paper's
values and a `PROFILES` dict of explicit dotted overrides. This module is the only code that
turns strings from `--set k=v` (or values from JSON) into typed config fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from tenfold.core.errors import InputError

PROFILE_NAMES: tuple[str, ...] = ("smoke", "quick", "full")

C = TypeVar("C")


class ConfigError(InputError):
    """A config key, value or file is wrong; the message names the field and the allowed form."""


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """`X | None` -> (X, True); anything else -> (tp, False)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def convert_value(value: Any, tp: Any, key: str) -> Any:
    """Convert `value` (a CLI string or a JSON value) to the declared type `tp` of field `key`."""
    inner, optional = _unwrap_optional(tp)
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
        return None
    tp = inner
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected a boolean (true/false), got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond float range
                number = math.inf
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str):
            parts = [p.strip() for p in value.strip("()[] ").split(",") if p.strip()]
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            raise ConfigError(f"{key}: expected a comma-separated list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert_value(p, args[0], key) for p in parts)
        if len(parts) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(parts)} in {value!r}")
        return tuple(convert_value(p, a, key) for p, a in zip(parts, args))
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value in allowed:
            return value
        if isinstance(value, str):  # `--set model.output_stride=2` arrives as "2" for Literal[2, 4]
            for a in allowed:
                if not isinstance(a, str) and value.strip() == str(a):
                    return a
        raise ConfigError(f"{key}: expected one of {list(allowed)}, got {value!r}")
    raise ConfigError(f"{key}: unsupported field type {tp!r}")


def override(cfg: C, overrides: Mapping[str, Any]) -> C:
    """Return a copy of `cfg` with dotted keys replaced, e.g. `{"train.lr": 3e-4}`.

    Unknown keys and values that do not convert to the declared type raise ConfigError. All overrides are
    applied first and the config is validated once after them (every `__post_init__` runs on the final
    values), so the order of `--set` flags never matters.
    """
    if not overrides:
        return cfg
    data = to_dict(cfg)
    for key, value in overrides.items():
        _set_one(type(cfg), data, key.split("."), value, key)
    return from_dict(type(cfg), data)


def _set_one(cls: type, data: dict[str, Any], parts: list[str], value: Any, full_key: str) -> None:
    """Convert `value` to the type of field `parts` of `cls` and store it in the plain dict `data`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    head = parts[0]
    if head not in fields:
        raise ConfigError(f"unknown config key {full_key!r}: {cls.__name__} has fields {list(fields)}")
    tp = _field_types(cls)[head]
    if len(parts) == 1:
        if _is_dataclass_type(tp):
            raise ConfigError(f"{full_key!r} is a section; set one of its fields, e.g. {full_key}.<field>")
        # JSON form, as to_dict would write it (tuples as lists)
        data[head] = json.loads(json.dumps(convert_value(value, tp, full_key)))
        return
    if not _is_dataclass_type(tp):
        raise ConfigError(f"unknown config key {full_key!r}: {head!r} is not a section")
    _set_one(tp, data[head], parts[1:], value, full_key)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples become lists), ready for JSON."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type[C], data: Mapping[str, Any], prefix: str = "") -> C:
    """Rebuild a config of type `cls` from `to_dict` output; unknown or missing keys are errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected an object, got {type(data).__name__}")
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown config keys {sorted(prefix + k for k in unknown)} for {cls.__name__}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if f.name not in data:
            raise ConfigError(f"missing config key {key!r}")
        tp = hints[f.name]
        if _is_dataclass_type(tp):
            kwargs[f.name] = from_dict(tp, data[f.name], key + ".")
        else:
            kwargs[f.name] = convert_value(data[f.name], tp, key)
    if not prefix and "seed" in names:
        _check_seed(kwargs["seed"])
    return cls(**kwargs)


# Design choice: seeds are integers in [0, 2^32): NumPy's legacy seeding takes no more, and systems derive
# sub-seeds as seed * 1000 + j, which stays far inside torch's 64-bit range.
SEED_LIMIT = 2**32


def _check_seed(seed: Any) -> None:
    if isinstance(seed, int) and not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"seed: expected an integer in [0, 2^32), got {seed}")


def save_config(cfg: Any, path: Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=False) + "\n")


def load_config(cls: type[C], path: Path) -> C:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ConfigError(f"{path}: not valid JSON, UTF-8 ({type(err).__name__}: {err})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err})") from None
    try:
        return from_dict(cls, data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def parse_set_args(items: list[str] | None) -> dict[str, str]:
    """`["a.b=1", "c=x"]` -> `{"a.b": "1", "c": "x"}`; a missing `=` is a ConfigError."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.lr=0.01")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def make_config(cls: type[C], profiles: Mapping[str, Mapping[str, Any]], profile: str,
                overrides: Mapping[str, Any] | None = None) -> C:
    """Defaults (the paper's values) -> profile overrides -> user overrides."""
    if profile not in profiles:
        raise ConfigError(f"unknown profile {profile!r}; valid profiles: {sorted(profiles)}")
    # One validation after the profile and the user's overrides together: order never matters.
    return override(cls(), {**profiles[profile], **(overrides or {})})
