"""Stage models, splits and stage scoring of FCtL (Liu et al., "Ultra-high Resolution Image Segmentation via
Locality-aware Context Fusion and Alternating Local Enhancement", IJCV 2024, arXiv 2109.02580): what training
(spec ../shared/specs/fctl.md section 3) and evaluation (component 13) both use.

  SegImages / load_split                    a split: synthetic arrays in memory or real files read on demand
  build_stage_model / load_stage_model      the model of a stage, initialised from the finished stages [code]
  load_stage_state / check_state            a stage file, checked against the stage model before use
  confusion_matrix / iou_per_class / miou   component 13 [code]: mIoU over classes 1..K-1 (class 0 dropped)
  predict_logits / stage_predict            patch pipeline (optionally contexts from another image), per stage
  evaluate_images                           confusion + scores over a split
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.core.images import to_unit
from tenfold.core.runs import load_tensors
from tenfold.core.runtime import select_device
from tenfold.systems.fctl import data as D
from tenfold.systems.fctl.config import LONG, Config
from tenfold.systems.fctl.model import FCtLNet, GlobalOnly, build_encoder, build_trunk
from tenfold.systems.fctl.patching import GLOBAL, iter_patches, merge_logits, model_device, tta_logits


@dataclass
class SegImages:
    """A split: synthetic arrays in memory, or real files read on demand (bounded memory)."""

    arrays: list[tuple[np.ndarray, np.ndarray]] | None = None
    files: list[Path] | None = None
    source: str = "synth"

    def __len__(self) -> int:
        return len(self.arrays) if self.arrays is not None else len(self.files)

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.arrays[i] if self.arrays is not None else D.read_pair(self.source, self.files[i])

    def image(self, i: int) -> torch.Tensor:
        """(3, H, W) float32 in [0, 1]: 8-bit / 255, 16-bit / 65535 (tenfold.core.images.to_unit)."""
        img = to_unit(self.pair(i)[0], f"image {i}" if self.files is None else str(self.files[i]))
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)

    @property
    def labels(self) -> list[np.ndarray]:
        return [self.pair(i)[1] for i in range(len(self))]


def load_split(cfg: Config, split: str) -> SegImages:
    d = cfg.data
    count = {"train": d.num_train, "val": d.num_val, "test": d.num_test}[split]
    if d.source == "synth":
        samples = D.synth_split(split, count, d.image_size, d.patch_size, cfg.seed)
        return SegImages(arrays=[(s.image, s.label) for s in samples])
    if not d.root:
        raise InputError(f"data.root: required for data.source={d.source!r} (the dataset folder)")
    files = D.list_split(d.source, d.root, split)[:count]
    D.check_split_files(d.source, files, min_image_side(cfg), d.num_classes)  # every file decoded once, now
    return SegImages(files=files, source=d.source)


def min_image_side(cfg: Config) -> int:
    """Smallest image side the pipeline takes: one whole patch (component 1: patches lie inside the image)."""
    return cfg.data.patch_size


def base_stage(stage: str) -> str:
    """The stage a "<stage>_long" continuation extends (its architecture and mode); other stages unchanged."""
    return stage[:-len(LONG)] if stage.endswith(LONG) else stage


# Trunk stages behind each stage: a stage starts from the trunk of the stage before it (local -> single<i> ->
# all [code]); "global" is a whole-image model trained from scratch.
TRUNK_STAGES = {"local": 1, "global": 1, "single": 2, "all": 3, "all_ale": 3}


def trunk_stages(stage: str) -> int:
    base = base_stage(stage)
    return TRUNK_STAGES["single" if base.startswith("single") else base]


# Design choice (issue 17, equal budgets): a continuation restarts the poly schedule, as each official stage does.
def stage_epochs(cfg: Config, stage: str) -> int:
    """Epochs `stage` trains: `train.epochs_per_stage`, except "<stage>_long", which continues its base stage
    until its trunk has trained as many epochs as LCF's (3 stages): local/global + 2 stages, single<i> + 1."""
    e = cfg.train.epochs_per_stage
    if stage.endswith(LONG):
        return (TRUNK_STAGES["all"] - trunk_stages(stage)) * e
    return e


def trunk_epochs(cfg: Config, stage: str) -> int:
    """Epochs the trunk of a finished `stage` has trained over all the stages it was initialised from."""
    e = cfg.train.epochs_per_stage
    return trunk_stages(stage) * e + (stage_epochs(cfg, stage) if stage.endswith(LONG) else 0)


def stage_factors(cfg: Config, stage: str) -> tuple[float, ...]:
    stage = base_stage(stage)
    if stage.startswith("single"):
        return (cfg.model.context_factors[int(stage[6:])],)
    return tuple(cfg.model.context_factors) if stage in ("all", "all_ale") else ()


def build_stage_model(cfg: Config, stage: str, done: dict[str, dict], pretrained: bool = True) -> torch.nn.Module:
    """The model of `stage`, initialised from the finished stages `done` ({stage: state_dict}) [code].

    `pretrained=False` skips `model.weights_file` (the weights will come from a stage file).
    """
    m, k = cfg.model, cfg.data.num_classes
    if stage.endswith(LONG):  # a continuation: the base stage's model with its finished weights
        model = build_stage_model(cfg, base_stage(stage), {}, pretrained=False)
        if base_stage(stage) in done:
            model.load_state_dict(done[base_stage(stage)])
        return model
    trunk = build_trunk(m.backbone, k, m.tiny_widths, m.weights_file if pretrained else None)
    if stage == "global":
        model: torch.nn.Module = GlobalOnly(trunk, cfg.data.patch_size)
    elif stage == "local":
        model = FCtLNet(trunk, [], "local")
    elif stage.startswith("single"):
        model = FCtLNet(trunk, [build_encoder(m.backbone, m.tiny_widths)], "single_context", m.use_centered_qk,
                        init_std=m.attention_init_std)
        if "local" in done:
            model.trunk.load_state_dict(_sub(done["local"], "trunk."))
            # Design choice: the context encoder starts from stage 0's encoder (ImageNet VGG in the code).
            model.context_encoders[0].load_state_dict(_sub(done["local"], "trunk.encoder."))
    else:
        n = len(m.context_factors)
        encs = [build_encoder(m.backbone, m.tiny_widths) for _ in range(n)]
        model = FCtLNet(trunk, encs, "all", m.use_centered_qk, use_ale=m.use_ale or stage == "all_ale",
                        ale_rounds=m.ale_rounds, ale_mode=m.ale_mode, init_std=m.attention_init_std,
                        freeze_contexts=True)
        for i, factor in enumerate(m.context_factors):
            if factor == GLOBAL and "global" in done:
                # DeepGlobe [code, maintainer in issue #2]: the global context is the pool5 of the separately
                # trained whole-image model (stage "global"), frozen.
                model.context_encoders[i].load_state_dict(_sub(done["global"], "trunk.encoder."))
            elif f"single{i}" in done:
                model.context_encoders[i].load_state_dict(_sub(done[f"single{i}"], "context_encoders.0."))
        first = next((i for i in range(n) if f"single{i}" in done), None)
        if first is not None:  # local network and that context's branch from the first single stage [code]
            model.trunk.load_state_dict(_sub(done[f"single{first}"], "trunk."))
            model.lcf.branches[1 + first].load_state_dict(_sub(done[f"single{first}"], "lcf.branches.0."))
    model.factors = stage_factors(cfg, stage)
    return model


def _sub(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def stage_path(run_dir: Path, stage: str) -> Path:
    return Path(run_dir) / "stages" / f"{stage}.pt"


def load_stage_state(cfg: Config, run_dir: Path, stage: str) -> dict[str, torch.Tensor]:
    """stages/<stage>.pt, read with weights_only and checked against the stage model (see `check_state`)."""
    path = stage_path(run_dir, stage)
    if not path.exists():
        raise InputError(f"{path}: stage {stage!r} not trained; run `tenfold train` on this directory first")
    state = load_tensors(path)
    check_state(cfg, stage, state, path)
    return state


def check_state(cfg: Config, stage: str, state: Any, path: Path) -> None:
    """Refuse (InputError naming `path`) anything but the stage model's own {name: tensor}: same names and
    shapes, finite floats. A file from another config or a damaged one fails here, not in load_state_dict."""
    form = f"expected the state dict of stage {stage!r} written by `tenfold train` with this run's config.json"
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: holds a {type(state).__name__}, not a {{name: tensor}} dict; {form}")
    with torch.device("meta"):  # shapes only
        want = build_stage_model(cfg, stage, {}, pretrained=False).state_dict()
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing or extra:
        raise InputError(f"{path}: tensor names differ (missing {missing[:3]}, unexpected {extra[:3]}); {form}")
    for name, value in state.items():
        if value.shape != want[name].shape:
            raise InputError(f"{path}: tensor {name!r} has shape {tuple(value.shape)}, the model's is "
                             f"{tuple(want[name].shape)}; {form}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise InputError(f"{path}: tensor {name!r} has NaN or inf values; {form}")


def load_stage_model(cfg: Config, run_dir: Path, stage: str) -> torch.nn.Module:
    model = build_stage_model(cfg, stage, {}, pretrained=False)
    model.load_state_dict(load_stage_state(cfg, run_dir, stage))
    return model.to(select_device(cfg.device))


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


@torch.no_grad()
def predict_logits(model: Callable, image: torch.Tensor, cfg: Config, context_image: torch.Tensor | None = None,
                   tta: bool | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """(K, H, W) summed patch logits of `model(local, contexts)`; contexts come from `context_image` if given.

    Inputs and the canvas live on `device`, by default the model's (a model loaded onto CUDA gets CUDA inputs).

    Shuffled-context ablation (spec 6): `context_image` = another image of the same size.
    """
    d = cfg.data
    factors = model_factors(model, cfg)
    tta = cfg.eval.use_tta if tta is None else tta
    device = model_device(model) if device is None else device
    canvas = torch.zeros(d.num_classes, *image.shape[-2:], device=device)
    src = image if context_image is None else context_image
    ctx_iter = iter_patches(src, d.patch_size, d.min_overlap, factors, cfg.eval.test_batch)
    for (boxes, local, _), (_, _, ctx) in zip(iter_patches(image, d.patch_size, d.min_overlap, (),
                                                           cfg.eval.test_batch), ctx_iter):
        local, ctx = local.to(device), [c.to(device) for c in ctx]
        merge_logits(canvas, tta_logits(model, local, ctx) if tta else model(local, ctx), boxes)
    return canvas


def model_factors(model: Any, cfg: Config) -> tuple[float, ...]:
    """Context factors a stage model consumes (stored on it by build_stage_model)."""
    return tuple(getattr(model, "factors", cfg.model.context_factors))


def scores(confs: np.ndarray) -> dict[str, Any]:
    iou = iou_per_class(confs)
    return {"miou": miou(confs), "iou_per_class": [None if np.isnan(v) else float(v * 100) for v in iou]}


def evaluate_images(predict: Callable[[int], torch.Tensor], labels: Sequence[np.ndarray],
                    num_classes: int) -> dict[str, Any]:
    """Confusion over every image: `predict(i)` returns (K, H, W) logits or (H, W) labels of image i."""
    if len(labels) == 0:  # an mIoU over nothing would be NaN
        raise InputError("no images to evaluate: the split is empty; expected at least one image")
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


@torch.no_grad()
def stage_predict(model: Any, stage: str, image: torch.Tensor, cfg: Config,
                  context_image: torch.Tensor | None = None, tta: bool | None = None) -> torch.Tensor:
    """(K, H, W) logits of one stage model on a (3, H, W) image (the global baseline runs whole-image)."""
    if base_stage(stage) == "global":
        return model(image[None].to(model_device(model)))[0]
    return predict_logits(model, image, cfg, context_image, tta)
