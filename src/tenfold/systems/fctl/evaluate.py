"""Evaluation of FCtL (Liu et al., "Ultra-high Resolution Image Segmentation via Locality-aware Context Fusion
and Alternating Local Enhancement", IJCV 2024, arXiv 2109.02580): spec ../shared/specs/fctl.md component 13.

  PeakMemory                                peak live tensor bytes of a block (CPU) or CUDA peak allocated
  evaluate(cfg, run_dir)                    the last stage of a run on the test split
  segment_file                              a PNG / JPEG / TIFF file of any size in, its mask out
The mIoU (confusion_matrix / iou_per_class / miou), predict_logits, evaluate_images and stage_predict live in
stages.py, shared with train.py.
"""

from __future__ import annotations

import json
import logging
import weakref
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.fctl.config import Config
from tenfold.systems.fctl.stages import evaluate_images, load_split, load_stage_model, load_stage_state, stage_predict

log = logging.getLogger("tenfold.fctl")


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


def evaluate(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Test-split mIoU of every stage the run trained (TTA per `eval.use_tta`), plus peak memory per image."""
    run = RunDir(run_dir)
    test = load_split(cfg, "test")  # every test file decoded and checked before the first stage runs
    for stage in cfg.train.stages:
        load_stage_state(cfg, run_dir, stage)  # a damaged stage file is refused before any evaluation
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


def segment_file(model: Callable, in_path: str | Path, out_path: str | Path, patch: int, min_overlap: float,
                 factors: Sequence[float] = (), tta: bool = False, batch: int = 16, colour: bool = False) -> Path:
    """Segment a PNG / JPEG / TIFF (GeoTIFF) file of any size and write the mask in the same format and size.

    Patches stream through `model` in batches of `batch`, so memory beyond the image and its K x H x W
    canvas stays bounded as the image grows.
    """
    from tenfold.core.images import check_min_size, to_unit
    from tenfold.systems.fctl.data import read_rgb, write_mask
    from tenfold.systems.fctl.patching import segment_large_image

    img = to_unit(read_rgb(in_path), str(in_path))  # (H, W, 3) float32 in [0, 1], 8- or 16-bit in
    check_min_size(img, patch, str(in_path))
    labels = segment_large_image(img, model, patch, min_overlap, (1, *factors), tta, batch=batch)
    return write_mask(out_path, labels, like=in_path, colour=colour)
