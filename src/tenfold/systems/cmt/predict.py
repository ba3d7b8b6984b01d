"""`tenfold predict cmt --run DIR --input SCENE_DIR --output detections.json` (arXiv 2301.01283).

SCENE_DIR: a SynthDrive folder (infos_<split>.json, points/, cams/; what synthdrive.write_split writes) or a
nuScenes root (<version>/ tables, samples/, sweeps/). Output: the nuScenes submission format
({"meta": {...}, "results": {sample_token: [{translation, size (w, l, h), rotation (w, x, y, z), velocity,
detection_name, detection_score, attribute_name}]}}), global frame. A sample without LiDAR or without images runs
the masked-modal path (that modality zeroed), and the file's meta says which sensors were used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tenfold.core.config import load_config
from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.cmt import data
from tenfold.systems.cmt.config import Config
from tenfold.systems.cmt.evaluate import load_model


def predict(run_dir: Path, input_path: Path, output_path: Path) -> dict[str, Any]:
    run = RunDir(run_dir)
    if not run.config_path.is_file():
        raise InputError(f"{run.config_path}: not found; expected a run directory written by `tenfold train cmt`")
    cfg = load_config(Config, run.config_path)
    model = load_model(cfg, run_dir)
    samples = data.load_input(Path(input_path), cfg)  # every file is checked before anything is written
    with torch.no_grad():
        preds = data.predictions(model, samples, cfg)
    sub = data.submission(samples, preds, cfg)
    atomic_write_text(Path(output_path), json.dumps(sub, indent=1) + "\n")
    masked = sorted({s["missing"] for s in samples} - {""})
    return {"samples": len(samples), "boxes": sum(len(v) for v in sub["results"].values()),
            "masked_modalities": masked, "output": str(output_path)}
