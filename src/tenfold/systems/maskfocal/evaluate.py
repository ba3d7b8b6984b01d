"""`evaluate(cfg, run_dir)` of `maskfocal`: rebuild the trained detector and write eval.json.

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with
canonical object detection networks", arXiv 2212.11542 (spec ../shared/specs/maskfocal.md, sections 2.7-2.8).

Decoding, counting and the metrics (tau on validation only, pitfall 2) live in scoring.py; the split readers in
data.py, so that this module and train.py share them without importing each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.maskfocal.data import load_data, restore
from tenfold.systems.maskfocal.scoring import evaluate_model, finite


def evaluate(cfg, run_dir: Path) -> dict[str, Any]:
    """Rebuild the detector from config.json + the final checkpoint; write eval.json; return the metrics."""
    from tenfold.systems.maskfocal.model import build_model

    run = RunDir(run_dir)
    ckpt = run.load_checkpoint()
    if ckpt is None or ckpt.get("finished") is not True:
        raise InputError(f"{run.checkpoint_path}: no final checkpoint (field 'finished' is not true); run "
                         "`tenfold train` to the end first")
    model = build_model(cfg.model)
    restore(run.checkpoint_path, ckpt, model)
    data = load_data(cfg, Path(run_dir), splits=("val", "test"))
    metrics = evaluate_model(model, cfg, data["val"], data["test"])
    metrics = finite(metrics)
    atomic_write_text(Path(run_dir) / "eval.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
