"""Decoding, counting and metrics of `maskfocal`: what training and `evaluate` both score a detector with.

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with
canonical object detection networks", arXiv 2212.11542 (spec ../shared/specs/maskfocal.md, sections 2.7-2.8).

  decode_centernet       3x3 max-pool peak extraction + top-K (CenterNet decoding)
  decode_fcos            score = sqrt(cls * centre-ness), top-K, NMS (torchvision.ops.nms)
  count_from_detections  C^ = #{detections with score >= tau}; tau chosen on VALIDATION only (pitfall 2)
  mae_rmse               MAE = mean |C^ - C|, RMSE = sqrt(mean (C^ - C)^2) (crowd papers' "MSE" is this RMSE)
  bucket_mae             MAE per density bucket (N < e1, e1-e2, > e2)
  ap50                   AP@0.5 on boxes through pycocotools (invisible heads are iscrowd ignore regions)
  point_f1               one-to-one matching (Hungarian) of predicted to GT head centres within 0.5 s
  predict_set            a split's detections, images read per batch of equal padded size (data.HeadSet)
  evaluate_model         tau on validation, then every metric on test; `finite` turns NaN / inf into None
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tenfold.systems.maskfocal.data import normalise

Detections = dict[str, np.ndarray]  # {"boxes": (D, 4) xyxy px, "scores": (D,), "points": (D, 2)}


def decode_centernet(out: dict[str, torch.Tensor], stride: int, top_k: int, min_score: float) -> list[Detections]:
    """Peaks of sigmoid(heatmap) that equal their 3x3 max-pool, top-K, score >= min_score."""
    heat = torch.sigmoid(out["heatmap"])  # (B, 1, Ho, Wo)
    peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
    B, _, Ho, Wo = heat.shape
    flat = peaks.flatten(1)  # (B, Ho*Wo)
    scores, idx = flat.topk(min(top_k, flat.shape[1]), dim=1)
    ys, xs = idx // Wo, idx % Wo
    dets = []
    for b in range(B):
        keep = scores[b] >= min_score
        y, x = ys[b][keep], xs[b][keep]
        off = out["offset"][b, :, y, x].T  # (D, 2)
        size = out["size"][b, :, y, x].T.clamp(min=0)  # (D, 2)
        c = (torch.stack([x, y], 1).float() + off) * stride  # (D, 2) px
        half = size * stride / 2
        dets.append({"boxes": torch.cat([c - half, c + half], 1).numpy(), "scores": scores[b][keep].numpy(),
                     "points": c.numpy()})
    return dets


def decode_fcos(out: dict[str, torch.Tensor], top_k: int, min_score: float, nms_iou: float) -> list[Detections]:
    from torchvision.ops import nms

    score = torch.sqrt(torch.sigmoid(out["cls"]) * torch.sigmoid(out["ctr"]))  # (B, L), as torchvision's FCOS
    dets = []
    for b in range(score.shape[0]):
        s, idx = score[b].topk(min(top_k, score.shape[1]))
        keep = s >= min_score
        s, boxes = s[keep], out["boxes"][b][idx[keep]]
        k = nms(boxes, s, nms_iou)
        boxes, s = boxes[k], s[k]
        dets.append({"boxes": boxes.numpy(), "scores": s.numpy(),
                     "points": ((boxes[:, :2] + boxes[:, 2:]) / 2).numpy()})
    return dets


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, cfg, batch_size: int = 16) -> list[Detections]:
    """Run the detector over uint8 images (N, 3, H, W) and decode."""
    model.eval()
    device = next(model.parameters()).device
    out: list[Detections] = []
    for i in range(0, len(images), batch_size):
        o = model(normalise(images[i:i + batch_size].to(device)))
        o = {k: v.float().cpu() for k, v in o.items()}
        if cfg.model.detector == "centernet":
            out += decode_centernet(o, cfg.model.output_stride, cfg.eval.top_k, cfg.eval.min_score)
        else:
            out += decode_fcos(o, cfg.eval.top_k, cfg.eval.min_score, cfg.eval.nms_iou)
    model.train()
    return out


def predict_set(model: torch.nn.Module, ds, cfg, batch_size: int = 16) -> list[Detections]:
    """Detections of every image of a HeadSet, read per batch (data.HeadSet.batch).

    # Design choice (issue 19, large images): a batch is a run of consecutive images with the same padded size,
    # at most `batch_size` and MAX_BATCH_PIXELS, so an image's detections never depend on another image's size
    # (SynthCrowd: batches of 16 in order, as before streaming).
    """
    from tenfold.systems.maskfocal.data import MAX_BATCH_PIXELS

    chunks: list[list[int]] = []
    for i in range(len(ds)):
        hw = ds.padded_hw([i])
        last = chunks[-1] if chunks else None
        if (last and len(last) < batch_size and ds.padded_hw([last[0]]) == hw
                and (len(last) + 1) * hw[0] * hw[1] <= MAX_BATCH_PIXELS):
            last.append(i)
        else:
            chunks.append([i])
    return [d for c in chunks for d in predict(model, ds.batch(c), cfg, batch_size=len(c))]


def count_from_detections(scores: np.ndarray, thr: float) -> int:
    """C^ = number of detections with score >= thr (spec 2.7)."""
    return int(np.sum(np.asarray(scores) >= thr))


def mae_rmse(pred_counts: np.ndarray, gt_counts: np.ndarray) -> tuple[float, float]:
    d = np.asarray(pred_counts, dtype=np.float64) - np.asarray(gt_counts, dtype=np.float64)
    return float(np.mean(np.abs(d))), float(np.sqrt(np.mean(d * d)))


def bucket_mae(pred_counts: np.ndarray, gt_counts: np.ndarray, edges: tuple[float, float]) -> dict[str, float]:
    """MAE per density bucket: "sparse" N < e1, "medium" e1 <= N <= e2, "dense" N > e2 (nan when empty)."""
    p, g = np.asarray(pred_counts, dtype=np.float64), np.asarray(gt_counts, dtype=np.float64)
    sel = {"sparse": g < edges[0], "medium": (g >= edges[0]) & (g <= edges[1]), "dense": g > edges[1]}
    return {k: float(np.mean(np.abs(p[m] - g[m]))) if m.any() else float("nan") for k, m in sel.items()}


def constant_count_metrics(val_counts: np.ndarray, test_counts: np.ndarray,
                           edges: tuple[float, float]) -> dict[str, float]:
    """The trivial counter: the validation median count for every test image -> its MAE, RMSE and bucket MAEs
    (keys `const_mae`, `const_rmse`, `const_mae_<bucket>`, `const_count`). A detector must beat it to count."""
    const = float(np.median(np.asarray(val_counts, dtype=np.float64)))
    pred = np.full(len(test_counts), const)
    mae, rmse = mae_rmse(pred, test_counts)
    out = {"const_count": const, "const_mae": mae, "const_rmse": rmse}
    out.update({f"const_mae_{k}": v for k, v in bucket_mae(pred, test_counts, edges).items()})
    return out


def choose_threshold(dets: list[Detections], gt_counts: np.ndarray, min_score: float) -> float:
    """tau minimising MAE over a grid (step 0.01 from min_score); the smallest tau wins ties."""
    grid = np.round(np.arange(max(min_score, 0.01), 1.0, 0.01), 4)
    maes = [mae_rmse([count_from_detections(d["scores"], t) for d in dets], gt_counts)[0] for t in grid]
    return float(grid[int(np.argmin(maes))])


def ap50(dets: list[Detections], boxes: list[np.ndarray], ignore: list[np.ndarray], max_dets: int) -> float:
    """AP at IoU 0.5 (all areas, one class) through pycocotools' COCOeval; iscrowd GT = ignore regions."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, res = [], [], []
    for i, (b, ig, d) in enumerate(zip(boxes, ignore, dets)):
        images.append({"id": i + 1})
        for crowd, arr in ((0, b), (1, ig)):
            for x1, y1, x2, y2 in np.asarray(arr).reshape(-1, 4):
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": crowd,
                             "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
        for (x1, y1, x2, y2), s in zip(d["boxes"], d["scores"]):
            res.append({"image_id": i + 1, "category_id": 1, "bbox": [float(x1), float(y1), float(x2 - x1),
                        float(y2 - y1)], "score": float(s)})
    if not any(a["iscrowd"] == 0 for a in anns):
        return float("nan")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "head"}]}
        gt.createIndex()
        if not res:
            return 0.0
        dt = gt.loadRes(res)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.params.maxDets = [max_dets]
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][0, :, 0, 0, 0]  # (recall thresholds,) at IoU 0.5, class 0, all areas
    return float(np.mean(prec[prec > -1])) if np.any(prec > -1) else 0.0


def point_f1(pred_points: list[np.ndarray], gt_points: list[np.ndarray], gt_sizes: list[np.ndarray],
             factor: float = 0.5) -> float:
    """F1 of a one-to-one (Hungarian) matching: prediction j matches head k when |p_j - c_k| <= factor * s_k."""
    from scipy.optimize import linear_sum_assignment

    tp = n_pred = n_gt = 0
    for p, g, s in zip(pred_points, gt_points, gt_sizes):
        p, g = np.asarray(p).reshape(-1, 2), np.asarray(g).reshape(-1, 2)
        n_pred, n_gt = n_pred + len(p), n_gt + len(g)
        if not len(p) or not len(g):
            continue
        d = np.sqrt(((p[:, None] - g[None]) ** 2).sum(-1))  # (D, K)
        ok = d <= factor * np.asarray(s)[None]
        rows, cols = linear_sum_assignment(np.where(ok, d, 1e9))
        tp += int(ok[rows, cols].sum())
    return 0.0 if tp == 0 else 2 * tp / (n_pred + n_gt)


def evaluate_model(model: torch.nn.Module, cfg, val, test) -> dict[str, Any]:
    """Choose tau on `val`, then report MAE, RMSE, buckets, AP@0.5 (box GT only) and point-F1 on `test`."""
    val_dets = predict_set(model, val, cfg)
    tau = choose_threshold(val_dets, val.counts, cfg.eval.min_score)
    dets = predict_set(model, test, cfg)
    pred = np.array([count_from_detections(d["scores"], tau) for d in dets])
    mae, rmse = mae_rmse(pred, test.counts)
    kept = [{k: v[d["scores"] >= tau] for k, v in d.items()} for d in dets]
    metrics: dict[str, Any] = {"mae": mae, "rmse": rmse, "tau": tau, "val_mae": mae_rmse(
        [count_from_detections(d["scores"], tau) for d in val_dets], val.counts)[0],
        "point_f1": point_f1([d["points"] for d in kept], test.points, test.sizes),
        "ap50": ap50(dets, test.boxes, test.ignore, cfg.eval.max_dets) if test.has_boxes else float("nan"),
        "pred_counts": pred.tolist(), "gt_counts": test.counts.tolist()}
    metrics.update({f"mae_{k}": v for k, v in bucket_mae(pred, test.counts, cfg.eval.bucket_edges).items()})
    metrics.update(constant_count_metrics(val.counts, test.counts, cfg.eval.bucket_edges))
    return metrics



def finite(d: dict[str, Any]) -> dict[str, Any]:
    """NaN / inf metrics (an empty density bucket, AP without box GT) become None (JSON null)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
