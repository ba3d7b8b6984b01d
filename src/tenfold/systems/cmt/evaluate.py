"""Evaluation of a trained `cmt` run (Cross Modal Transformer, arXiv 2301.01283): NDS as nuscenes-devkit computes
it (metrics.py) on the validation scenes of the run's config, with the masked-modal variants (spec 13: the
test-mode modal mask zeroes "points" or "image" for every sample) where the model uses both modalities.
The loading code is data.py (shared with train.py, which this file does not import).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.cmt import data
from tenfold.systems.cmt.config import Config
from tenfold.systems.cmt.model import CrossModalTransformer


def load_model(cfg: Config, run_dir: Path) -> CrossModalTransformer:
    """The run's final weights (read with weights_only=True: a crafted file is refused, never unpickled)."""
    run = RunDir(run_dir)
    ckpt = run.load_checkpoint()
    if ckpt is None or "model" not in ckpt:
        raise InputError(f"{run.checkpoint_path}: no checkpoint; train the run first (tenfold train cmt)")
    model = CrossModalTransformer(cfg.model, len(cfg.data.classes))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise InputError(f"{run.checkpoint_path}: weights do not fit the run's config.json "
                         f"({str(err).splitlines()[0][:200]})") from None
    return model.eval()


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    return {"NDS": result["NDS"], "mAP": result["mAP"], "tp_errors": result["tp_errors"],
            "class_AP": result["mean_dist_aps"]}


def evaluate_model(model: CrossModalTransformer, cfg: Config, samples: Sequence[dict],
                   mask_modal: str = "") -> dict[str, Any]:
    return summarise(data.score(samples, data.predictions(model, samples, cfg, mask_modal), cfg))


def evaluate(cfg: Config, run_dir: Path, samples: Sequence[dict] | None = None) -> dict[str, Any]:
    """{"NDS", "mAP", "tp_errors", "class_AP"} on the val split; fusion runs add "points_zeroed" / "image_zeroed"."""
    model = load_model(cfg, run_dir)
    samples = samples if samples is not None else data.training_samples(cfg, "val")
    with torch.no_grad():
        metrics = evaluate_model(model, cfg, samples)
        if cfg.model.modality == "fusion":
            metrics["points_zeroed"] = evaluate_model(model, cfg, samples, "points")
            metrics["image_zeroed"] = evaluate_model(model, cfg, samples, "image")
    atomic_write_text(Path(run_dir) / "eval.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
