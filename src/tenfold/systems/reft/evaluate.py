"""Evaluation of `reft` (Han et al., "Reference Twice", arXiv 2301.01156): spec component 10.

The run's fine-tuned model segments the test images in one pass each, ranking every class at once (no oracle
class restriction, spec pitfall 2); references come from the run's K-shot set, encoded once. pycocotools COCOeval
(segm and bbox) restricted to the novel ids (nAP, nAP50), the base ids (bAP) and all ids (AP) via
`metrics.nap_bap`. Shares `load_data` / `kshot_set` (data.py) and `predict_samples` (train.py) with training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.reft.config import Config
from tenfold.systems.reft.data import FSISData, kshot_set, load_data
from tenfold.systems.reft.model import RefT
from tenfold.systems.reft.train import build_model, predict_samples, references_for


def load_final(cfg: Config, run_dir: Path, num_classes: int, novel_index=None) -> RefT:
    """The run's fine-tuned model (eval mode); InputError naming the checkpoint when it is missing or foreign."""
    path = Path(run_dir) / "checkpoints" / "last.pt"
    state = RunDir(run_dir).load_checkpoint()
    if not state or "model" not in state:
        raise InputError(f"{path}: not found or incomplete; run `tenfold train reft` first")
    model = build_model(cfg, num_classes, cfg.train.method)
    if cfg.data.protocol == "ifsis":
        model.enable_cosine(novel_index)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise InputError(f"{path}: does not match the run's config ({type(err).__name__})") from None
    return model.eval()


def evaluate_model(model: RefT, data: FSISData, kshot: list) -> dict[str, Any]:
    """nAP / bAP / AP (segm and bbox) of `model` on the test split with references from `kshot`."""
    from tenfold.systems.reft.metrics import nap_bap

    preds = predict_samples(model, references_for(model, data, kshot), data.test, data.class_ids)
    return nap_bap(data.test_json, preds, data.split)


def evaluate(cfg: Config, run_dir: Path) -> dict[str, Any]:
    data = load_data(cfg, Path(run_dir))
    model = load_final(cfg, run_dir, len(data.split.all_ids), data.index_of(data.split.novel_ids))
    kshot = kshot_set(data, cfg.data.protocol, cfg.data.num_shots, cfg.data.kshot_seed)
    out = {"method": cfg.train.method, "protocol": cfg.data.protocol, "num_shots": cfg.data.num_shots,
           **evaluate_model(model, data, kshot)}
    atomic_write_text(Path(run_dir) / "eval.json", json.dumps(out, indent=2) + "\n")
    return out
