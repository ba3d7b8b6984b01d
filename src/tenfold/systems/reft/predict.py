"""`tenfold predict reft --run DIR --support SUPPORT_COCO_JSON --input IMAGES --output results.json` (Han et al.,
"Reference Twice", arXiv 2301.01156): segment a user's images given K support images with their masks.

The support file is COCO JSON (polygon or RLE masks, the run's category ids); its images are looked up in the
file's folder, or in its `images/` subfolder (the ShapesFSIS layout). Supports are encoded once (class centres +
Top-K support queries); every input image gets one forward pass ranking every class. The output is the COCO
results format: [{image_id, file_name, category_id, segmentation (RLE), bbox, score}], image ids 1.. in the sorted
order of the input files. Every input is checked before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.reft.coco import Sample, load_split, read_coco
from tenfold.systems.reft.config import Config
from tenfold.systems.reft.data import all_instances, support_set
from tenfold.systems.reft.train import build_model, predict_samples


class _Classes:
    """The class index of a run: `index_of` as FSISData's, from the checkpoint's class ids."""

    def __init__(self, class_ids: torch.Tensor) -> None:
        self.lookup = {int(c): i for i, c in enumerate(class_ids.tolist())}

    def index_of(self, ids) -> torch.Tensor:
        return torch.tensor([self.lookup[int(c)] for c in ids], dtype=torch.long)


def _load_run(run_dir: Path) -> tuple[Config, dict[str, Any]]:
    run = RunDir(run_dir)
    if not run.config_path.is_file():
        raise InputError(f"{run.config_path}: not found; --run must be a directory written by `tenfold train reft`")
    cfg = run.read_config(Config)
    state = run.load_checkpoint()
    if not state or "model" not in state or "class_ids" not in state:
        raise InputError(f"{run.checkpoint_path}: not found or incomplete; run `tenfold train reft` to the end")
    return cfg, state


def _supports(path: Path, class_ids: torch.Tensor) -> list[Sample]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: --support not found; expected a COCO JSON file of the support images")
    _, images, anns = read_coco(path)
    known = set(class_ids.tolist())
    for a in anns:
        if int(a["category_id"]) not in known:
            raise InputError(f"{path}: annotation id {a['id']}: category_id {a['category_id']} is not a class of "
                             f"the run; expected one of {sorted(known)}")
    if not anns:
        raise InputError(f"{path}: annotations: empty; expected at least one support mask")
    sub = path.parent / "images"
    first = next(iter(images.values()))
    image_dir = sub if (sub / first["file_name"]).is_file() else path.parent
    return [s for s in load_split(path, image_dir) if len(s.category_ids)]


def _inputs(path: Path) -> list[Sample]:
    from tenfold.core.images import image_files, read_pixels, to_rgb, to_unit

    path = Path(path)
    files = [path] if path.is_file() else image_files(path) if path.is_dir() else []
    if not files:
        raise InputError(f"{path}: --input must be an image file or a folder holding image files")
    out = []
    for i, f in enumerate(files, 1):
        arr = to_unit(to_rgb(read_pixels(f), str(f)), str(f))  # (H, W, 3)
        if min(arr.shape[:2]) < 32:
            raise InputError(f"{f}: {arr.shape[1]} x {arr.shape[0]} px; expected at least 32 x 32")
        img = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float()
        out.append(Sample(i, img, torch.zeros(0, *arr.shape[:2], dtype=torch.bool), torch.zeros(0, dtype=torch.long),
                          f.name))
    return out


def predict(run_dir: Path, input_path: Path, output_path: Path, support: Path | None = None) -> dict[str, Any]:
    from tenfold.systems.reft.metrics import to_coco_results

    inputs = _inputs(Path(input_path))
    if support is None:
        raise InputError("reft predict needs --support SUPPORT_COCO_JSON (the K support images with their masks)")
    cfg, state = _load_run(Path(run_dir))
    class_ids = state["class_ids"]
    supports = _supports(Path(support), class_ids)
    model = build_model(cfg, len(class_ids), cfg.train.method)
    if cfg.data.protocol == "ifsis":
        model.enable_cosine(_Classes(class_ids).index_of(state["novel_ids"]))
    model.load_state_dict(state["model"])
    model.eval()
    refs = None
    if model.feature_ref is not None or model.query_link is not None:
        refs = model.build_references(support_set(all_instances(supports), _Classes(class_ids)))
    preds = predict_samples(model, refs, inputs, class_ids)
    results = to_coco_results(preds)
    names = {s.image_id: s.file_name for s in inputs}
    for r in results:
        r["file_name"] = names[r["image_id"]]
    atomic_write_text(Path(output_path), json.dumps(results) + "\n")
    return {"images": len(inputs), "detections": len(results), "supports": sum(len(s.category_ids) for s in supports)}
