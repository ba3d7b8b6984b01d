"""Evaluation of `ssdg` (Lin et al., "Semi-Supervised Domain Generalization with Evolving Intermediate Domain",
arXiv 2111.10221): spec component 15.

Top-1 accuracy of the run's final model (peer a for the cyclic method, eval mode so MixStyle is off) on the unseen
target domain, evaluated once per run after training; the model was chosen on the labeled domain's validation
split only. `acc_per_cycle`: each cycle's selected peer a on the target (for the per-cycle plot; never used to
select anything). Shares `load_task` / `predict_probs` (data.py) and `build_classifier` (model.py) with train.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.ssdg.config import Config
from tenfold.systems.ssdg.data import Task, accuracy, load_task, predict_probs
from tenfold.systems.ssdg.model import build_classifier


def load_final(cfg: Config, run_dir: Path) -> tuple[dict[str, Any], torch.nn.Module]:
    """The run's checkpoint and its final model (eval mode)."""
    state = RunDir(run_dir).load_checkpoint()
    if state is None or "final_model" not in state:
        raise InputError(f"{Path(run_dir) / 'checkpoints' / 'last.pt'}: not found or incomplete; run "
                         "`tenfold train ssdg` first")
    model = build_classifier(cfg, cfg.data.num_classes if cfg.data.source != "synth" else 10,
                             cfg.train.method != "erm")
    try:
        model.load_state_dict(state["final_model"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise InputError(f"{Path(run_dir) / 'checkpoints' / 'last.pt'}: does not match the run's config "
                         f"({type(err).__name__})") from None
    return state, model.eval()


def target_accuracy(cfg: Config, model_state: dict, task: Task, mixstyle: bool = True) -> float:
    model = build_classifier(cfg, task.num_classes, mixstyle)
    model.load_state_dict(model_state)
    return accuracy(predict_probs(model, task.target.images), task.target.labels)


def evaluate(cfg: Config, run_dir: Path) -> dict[str, Any]:
    task = load_task(cfg)
    state, model = load_final(cfg, run_dir)
    out: dict[str, Any] = {
        "method": cfg.train.method, "task": cfg.data.task,
        "target_acc": accuracy(predict_probs(model, task.target.images), task.target.labels),
        "val_acc": accuracy(predict_probs(model, task.val.images), task.val.labels),
        "chance_acc": 100.0 / task.num_classes,
    }
    if state.get("cycle_models"):
        out["acc_per_cycle"] = [target_accuracy(cfg, s, task) for s in state["cycle_models"]]
    atomic_write_text(Path(run_dir) / "eval.json", json.dumps(out, indent=2) + "\n")
    return out
