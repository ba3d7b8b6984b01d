"""COCO instance-segmentation metrics of `reft` through pycocotools COCOeval (spec 2.10, pitfall 5).

Paper: Han, Zhang, Wang, Wang, Liu, Qi, Li, Yang, "Reference Twice: A Simple and Unified Baseline for Few-Shot
Instance Segmentation", arXiv 2301.01156 (spec ../shared/specs/reft.md, sections 2.10 and 6).

  to_coco_results   our predictions (per image: masks, category ids, scores) -> COCO results
                    [{image_id, category_id, segmentation (RLE, counts str), bbox (tight xywh of the mask), score}]
  evaluate_segm     COCOeval "segm" and "bbox" restricted to `category_ids` (params.catIds set before evaluate):
                    {"AP": stats[0], "AP50": stats[1], "bbox_AP": stats[0], "bbox_AP50": stats[1]}
  nap_bap           the few-shot metrics [literature]: nAP, nAP50 (novel ids), bAP (base ids), AP (all ids),
                    and the box versions

Values are fractions in [0, 1] (the paper prints percent). A category set with no ground truth in the file gives
NaN (COCOeval's -1). No predictions at all gives 0.0. maxDets is COCO's 100, as Mask2Former's top-100 inference.
A prediction = {"image_id": int, "masks": BoolTensor [M, H, W], "category_ids": LongTensor [M] (COCO ids),
"scores": FloatTensor [M]}; H, W must be the image's size in the ground-truth file.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def to_coco_results(predictions: list[dict]) -> list[dict]:
    """Predictions -> COCO results format (RLE from a Fortran-ordered uint8 mask, counts decoded to str)."""
    from pycocotools import mask as mask_utils

    results = []
    for p in predictions:
        masks, cats, scores = p["masks"], p["category_ids"], p["scores"]
        if not (len(masks) == len(cats) == len(scores)):
            raise ValueError(f"image {p['image_id']}: {len(masks)} masks, {len(cats)} category ids and "
                             f"{len(scores)} scores; expected one of each per instance")
        if len(masks) == 0:
            continue
        arr = np.asfortranarray(masks.detach().cpu().numpy().astype(np.uint8).transpose(1, 2, 0))  # (H, W, M)
        rles = mask_utils.encode(arr)
        boxes = mask_utils.toBbox(rles)  # (M, 4) xywh
        for rle, box, c, s in zip(rles, boxes, cats.tolist(), scores.tolist()):
            results.append({"image_id": int(p["image_id"]), "category_id": int(c),
                            "segmentation": {"size": [int(v) for v in rle["size"]],
                                             "counts": rle["counts"].decode("ascii")},
                            "bbox": [float(v) for v in box], "score": float(s)})
    return results


def _ground_truth(gt: Path | dict):
    """A pycocotools COCO index of a ground-truth file (or an already-read dict), without its progress prints."""
    from pycocotools.coco import COCO

    data = json.loads(Path(gt).read_text()) if not isinstance(gt, dict) else copy.deepcopy(gt)
    data.setdefault("info", {})  # COCO.loadRes copies dataset["info"] in pycocotools >= 2.0.8
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    from pycocotools import mask as mask_utils

    for ann in data.get("annotations", []):  # COCOeval reads area, bbox and iscrowd: fill them from the mask
        if "area" not in ann or "bbox" not in ann:
            rle = coco.annToRLE(ann)
            ann.setdefault("area", float(mask_utils.area(rle)))
            ann.setdefault("bbox", [float(v) for v in mask_utils.toBbox(rle)])
        ann.setdefault("iscrowd", 0)
    return coco


def _check_sizes(coco, predictions: list[dict]) -> None:
    for p in predictions:
        img = coco.imgs.get(int(p["image_id"]))
        if img is None:
            raise ValueError(f"prediction for image id {p['image_id']}, which the ground truth does not hold")
        if len(p["masks"]) and tuple(p["masks"].shape[1:]) != (img["height"], img["width"]):
            raise ValueError(f"image id {p['image_id']}: masks of size {tuple(p['masks'].shape[1:])}, expected "
                             f"(height, width) = ({img['height']}, {img['width']})")


def _stats(coco_gt, results: list[dict], iou_type: str, category_ids) -> tuple[float, float]:
    """(AP@[.5:.95], AP@.5) over `category_ids`; NaN where no category has ground truth (COCOeval's -1)."""
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))  # loadRes edits the dicts (adds area, id)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.catIds = sorted(int(c) for c in category_ids)  # pitfall 5: set before evaluate()
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # Design choice: NaN, not COCOeval's -1, so that an absent class set cannot pass for a (bad) score
    return tuple(float(v) if v >= 0 else math.nan for v in ev.stats[:2])


def evaluate_segm(gt_json_path: Path | dict, predictions: list[dict], category_ids) -> dict[str, float]:
    """COCO mask and box AP of `predictions` against the ground-truth file, restricted to `category_ids`.

    -> {"AP", "AP50", "bbox_AP", "bbox_AP50"}; boxes are the tight boxes of the predicted masks.
    """
    coco_gt = _ground_truth(gt_json_path)
    _check_sizes(coco_gt, predictions)
    results = to_coco_results(predictions)
    has_gt = any(coco_gt.getAnnIds(catIds=[int(c)]) for c in category_ids)
    if not results:
        value = 0.0 if has_gt else math.nan
        return {"AP": value, "AP50": value, "bbox_AP": value, "bbox_AP50": value}
    ap, ap50 = _stats(coco_gt, results, "segm", category_ids)
    box_ap, box_ap50 = _stats(coco_gt, results, "bbox", category_ids)
    return {"AP": ap, "AP50": ap50, "bbox_AP": box_ap, "bbox_AP50": box_ap50}


def nap_bap(gt_json_path: Path | dict, predictions: list[dict], split) -> dict[str, Any]:
    """The few-shot metrics for a coco.CategorySplit: nAP, nAP50, bAP, bAP50, AP (all ids) and their box
    versions bbox_nAP, bbox_nAP50, bbox_bAP, bbox_AP (spec 2.10: params.catIds = novel / base / all ids)."""
    gt = _ground_truth(gt_json_path).dataset  # read once
    novel = evaluate_segm(gt, predictions, split.novel_ids)
    base = evaluate_segm(gt, predictions, split.base_ids)
    every = evaluate_segm(gt, predictions, split.all_ids)
    return {"nAP": novel["AP"], "nAP50": novel["AP50"], "bAP": base["AP"], "bAP50": base["AP50"],
            "AP": every["AP"], "bbox_nAP": novel["bbox_AP"], "bbox_nAP50": novel["bbox_AP50"],
            "bbox_bAP": base["bbox_AP"], "bbox_AP": every["bbox_AP"]}
