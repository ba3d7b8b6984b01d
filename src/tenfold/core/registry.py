"""`SystemSpec`: what the CLI, the contract tests and `reproduce` need to know about a system.

The only name-to-object lookup is the literal `SYSTEMS` dict in `tenfold.systems`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import importlib
from typing import Any, Callable, Mapping

from tenfold.core.claims import Measurement


@dataclass(frozen=True)
class SystemSpec:
    """A system: metadata plus plain functions.

    Args:
        key: package name, the paper's method acronym (e.g. "qae").
        title: the paper's title.
        arxiv: arXiv id of the paper.
        config_cls: the top-level frozen config dataclass (defaults = paper values).
        profiles: {"smoke": {...}, "quick": {...}, "full": {...}} dotted overrides.
        train: `train(cfg, run_dir) -> metrics`; resumes from `run_dir`'s last checkpoint.
        evaluate: `evaluate(cfg, run_dir) -> metrics`; reads what `train` wrote.
        reproduce: `reproduce(profile, seed, out_dir) -> list[Measurement]`: ONE seed's measurements (the
            CLI runs it per claim seed and aggregates); writes plots into `out_dir`.
        reproduce_minutes: the budget of the quick reproduction on 2 CPU cores (from the issue).
        dev_seeds: every seed looked at while developing; the default claim seeds are disjoint from them.
        predict: optional `predict(run_dir, input_path, output_path) -> dict`: applies a trained run to a
            user's own inputs in the field's format (`tenfold predict <key>`); None when not offered.
        predict_options: the extra `tenfold predict` flags the system takes (names in `PREDICT_OPTIONS`); the CLI
            passes each one given as a keyword argument of `predict` and refuses (exit 2) one not offered here.
    """

    key: str
    title: str
    arxiv: str
    config_cls: type
    profiles: Mapping[str, Mapping[str, Any]]
    train: Callable[[Any, Path], dict]
    evaluate: Callable[[Any, Path], dict]
    reproduce: Callable[[str, int, Path], list[Measurement]]
    reproduce_minutes: float
    dev_seeds: tuple[int, ...] = ()
    predict: Callable[..., dict] | None = None
    predict_options: tuple[str, ...] = ()


def deferred(module: str, name: str) -> Callable[..., Any]:
    """`module.name`, imported on the first call: keeps importing a system (and so `tenfold list`) cheap, since
    train / evaluate / reproduce pull in heavy dependencies (spec registry rule: importing a system is cheap)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = f"{module}.{name}"
    return call
