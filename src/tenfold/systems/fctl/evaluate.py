"""Evaluation of FCtL (Liu et al., "Ultra-high Resolution Image Segmentation via Locality-aware Context Fusion
and Alternating Local Enhancement", IJCV 2024, arXiv 2109.02580): spec ../shared/specs/fctl.md component 13.

  confusion_matrix / iou_per_class / miou   component 13 [code]: mIoU over classes 1..K-1 (class 0 dropped)
  PeakMemory                                peak live tensor bytes of a block (CPU) or CUDA peak allocated
  predict_logits / evaluate_images          patch pipeline (optionally contexts from another image) + metrics
  evaluate(cfg, run_dir)                    the last stage of a run on the test split
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.fctl.config import Config
from tenfold.systems.fctl.patching import iter_patches, merge_logits, tta_logits

log = logging.getLogger("tenfold.fctl")


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows = ground truth, columns = prediction."""
    idx = target.astype(np.int64).ravel() * num_classes + pred.astype(np.int64).ravel()
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """IoU_k = TP / (TP + FP + FN); NaN for a class absent from both prediction and ground truth."""
    tp = np.diag(conf).astype(np.float64)
    denom = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


def miou(conf: np.ndarray, classes: Sequence[int] | None = None) -> float:
    """Mean IoU (in %) over `classes` (default 1..K-1: class 0 is dropped [code], pitfall 2)."""
    iou = iou_per_class(conf)
    classes = list(range(1, conf.shape[0])) if classes is None else list(classes)
    return float(np.nanmean(iou[classes]) * 100)


class PeakMemory(TorchDispatchMode):
    """Peak bytes of live tensor storage created inside the block (CPU), or CUDA's peak allocated.

    # Design choice: torch has no CPU allocator statistics, so every op's outputs are tracked by storage
    until their last tensor is freed. A tensor created before the block counts once, in full, from the
    first op that returns a view of it (e.g. the input image when patches are sliced from it), so both the
    patch pipeline and whole-image inference include the input image exactly once.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.device = torch.device(device)
        self.current = self.peak = 0
        self._live: dict[int, list[int]] = {}

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
            return None
        return super().__exit__(*exc)

    def _release(self, key: int) -> None:
        entry = self._live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self._live[key]

    def __torch_dispatch__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                st = t.untyped_storage()
                key = st.data_ptr()
                if key in self._live:
                    self._live[key][1] += 1
                else:
                    self._live[key] = [st.nbytes(), 1]
                    self.current += st.nbytes()
                    self.peak = max(self.peak, self.current)
                weakref.finalize(t, self._release, key)
        return out


@torch.no_grad()
def predict_logits(model: Callable, image: torch.Tensor, cfg: Config, context_image: torch.Tensor | None = None,
                   tta: bool | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """(K, H, W) summed patch logits of `model(local, contexts)`; contexts come from `context_image` if given.

    Shuffled-context ablation (spec 6): `context_image` = another image of the same size.
    """
    d = cfg.data
    factors = model_factors(model, cfg)
    tta = cfg.eval.use_tta if tta is None else tta
    canvas = torch.zeros(d.num_classes, *image.shape[-2:], device=device)
    src = image if context_image is None else context_image
    ctx_iter = iter_patches(src, d.patch_size, d.min_overlap, factors, cfg.eval.test_batch)
    for (boxes, local, _), (_, _, ctx) in zip(iter_patches(image, d.patch_size, d.min_overlap, (),
                                                           cfg.eval.test_batch), ctx_iter):
        local, ctx = local.to(device), [c.to(device) for c in ctx]
        merge_logits(canvas, tta_logits(model, local, ctx) if tta else model(local, ctx), boxes)
    return canvas


def model_factors(model: Any, cfg: Config) -> tuple[float, ...]:
    """Context factors a stage model consumes (stored on it by train.build_stage_model)."""
    return tuple(getattr(model, "factors", cfg.model.context_factors))


def scores(confs: np.ndarray) -> dict[str, Any]:
    iou = iou_per_class(confs)
    return {"miou": miou(confs), "iou_per_class": [None if np.isnan(v) else float(v * 100) for v in iou]}


def evaluate_images(predict: Callable[[int], torch.Tensor], labels: Sequence[np.ndarray],
                    num_classes: int) -> dict[str, Any]:
    """Confusion over every image: `predict(i)` returns (K, H, W) logits or (H, W) labels of image i."""
    conf = np.zeros((num_classes, num_classes), np.int64)
    t0 = time.perf_counter()
    for i, lbl in enumerate(labels):
        out = predict(i)
        pred = out.argmax(0) if out.ndim == 3 else out
        conf += confusion_matrix(pred.cpu().numpy(), np.asarray(lbl), num_classes)
    res = scores(conf)
    res["seconds_per_image"] = (time.perf_counter() - t0) / max(len(labels), 1)
    res["confusion"] = conf.tolist()
    return res


def evaluate(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Test-split mIoU of every stage the run trained (TTA per `eval.use_tta`), plus peak memory per image."""
    from tenfold.systems.fctl.train import load_split, load_stage_model

    run = RunDir(run_dir)
    test = load_split(cfg, "test")
    out: dict[str, Any] = {}
    for stage in cfg.train.stages:
        model = load_stage_model(cfg, run_dir, stage).eval()
        with PeakMemory() as mem:
            res = evaluate_images(lambda i: stage_predict(model, stage, test.image(i), cfg), test.labels,
                                  cfg.data.num_classes)
        out[stage] = {"miou": res["miou"], "iou_per_class": res["iou_per_class"],
                      "peak_memory_mb": mem.peak / 2**20,  # max over images (each is freed before the next)
                      "seconds_per_image": res["seconds_per_image"]}
    out["miou"] = out[cfg.train.stages[-1]]["miou"]
    atomic_write_text(Path(run.path) / "eval.json", json.dumps(out, indent=2) + "\n")
    return out


@torch.no_grad()
def stage_predict(model: Any, stage: str, image: torch.Tensor, cfg: Config,
                  context_image: torch.Tensor | None = None, tta: bool | None = None) -> torch.Tensor:
    """(K, H, W) logits of one stage model on a (3, H, W) image (the global baseline runs whole-image)."""
    if stage == "global":
        return model(image[None])[0]
    return predict_logits(model, image, cfg, context_image, tta)


def segment_file(model: Callable, in_path: str | Path, out_path: str | Path, patch: int, min_overlap: float,
                 factors: Sequence[float] = (), tta: bool = False, batch: int = 16, colour: bool = False) -> Path:
    """Segment a PNG / JPEG / TIFF (GeoTIFF) file of any size and write the mask in the same format and size.

    Patches stream through `model` in batches of `batch`, so memory beyond the image and its K x H x W
    canvas stays bounded as the image grows.
    """
    from tenfold.systems.fctl.data import read_image, write_mask
    from tenfold.systems.fctl.patching import segment_large_image

    img = read_image(in_path)
    labels = segment_large_image(img, model, patch, min_overlap, (1, *factors), tta, batch=batch)
    return write_mask(out_path, labels, like=in_path, colour=colour)
