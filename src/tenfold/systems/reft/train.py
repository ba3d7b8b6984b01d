"""Training of `reft` (Han et al., "Reference Twice: A Simple and Unified Baseline for Few-Shot Instance
Segmentation", arXiv 2301.01156): spec section 3.

  1. base_train: the Mask2Former set loss on base-class annotations; episodic supports of base classes drawn
     from other base images (EpisodicSupportSampler), re-encoded every `support_refresh_steps`.
  2. finetune (FSIS / gFSIS): the K-shot set of every class, all parameters ("ft-full"; backbone frozen for
     K <= freeze_backbone_max_shots). method "reft" keeps the references (the switches of model config);
     method "finetune" is the Mask2Former + ft-full baseline (both references off, same base checkpoint).
  3. finetune (iFSIS): the novel K-shot set only; a cosine classifier for the novel classes appended to the
     frozen base classifier; only the cosine weights and the reference modules train; + loss_kd to the frozen
     base model (spec component 7).
A plain loop: a loss dict per step, stop on a non-finite loss.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from tenfold.core.errors import RunFailed
from tenfold.core.runs import RunDir
from tenfold.core.runtime import seed_everything, torch_threads
from tenfold.systems.reft.coco import Sample
from tenfold.systems.reft.config import Config
from tenfold.systems.reft.data import (EpisodicSupportSampler, FSISData, all_instances, batch_images,
                                       batch_targets, kshot_set, load_data, support_set)
from tenfold.systems.reft.loss import SetCriterion, base_distillation_loss
from tenfold.systems.reft.model import References, RefT

log = logging.getLogger("tenfold.reft")


def model_config(cfg: Config, method: str, switches: dict[str, bool] | None = None):
    """The model config of an arm: "finetune" = both references off; `switches` overrides single modules."""
    m = cfg.model
    if method == "finetune":
        m = dataclasses.replace(m, use_feature_reference=False, use_query_link=False)
    return dataclasses.replace(m, **(switches or {}))


def build_model(cfg: Config, num_classes: int, method: str = "reft",
                switches: dict[str, bool] | None = None) -> RefT:
    return RefT(model_config(cfg, method, switches), num_classes)


def make_optimizer(model: torch.nn.Module, lr: float, cfg: Config,
                   backbone_prefix: str = "backbone.") -> torch.optim.Optimizer:
    """AdamW, parameters under `backbone_prefix` at lr x backbone_lr_mult [literature: Mask2Former]; shared with
    the Mask R-CNN baseline (baselines.py, prefix "backbone.body.": its TinyResNet) so every arm has one recipe."""
    back = [p for n, p in model.named_parameters() if n.startswith(backbone_prefix) and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if not n.startswith(backbone_prefix) and p.requires_grad]
    groups = [{"params": rest, "lr": lr}]
    if back:
        groups.append({"params": back, "lr": lr * cfg.train.backbone_lr_mult})
    for g in groups:
        g["initial_lr"] = g["lr"]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.train.weight_decay)


def optimizer_step(opt: torch.optim.Optimizer, params: list[torch.Tensor], losses: dict[str, torch.Tensor],
                   total: torch.Tensor, step: int, steps: int, cosine_schedule: bool, grad_clip: float,
                   who: str = "reft") -> dict[str, float]:
    """One update of `fit` (and of the Mask R-CNN baseline's loop) -> the step's log record: a non-finite `total`
    stops the run (RunFailed naming `who`), cosine lr from each group's initial_lr when `cosine_schedule`,
    backward, gradient clipping at `grad_clip` (> 0), AdamW step."""
    if not torch.isfinite(total):
        raise RunFailed(f"{who}: non-finite loss at step {step}: {({k: float(v) for k, v in losses.items()})}")
    if cosine_schedule:
        for g in opt.param_groups:
            g["lr"] = g["initial_lr"] * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))
    opt.zero_grad(set_to_none=True)
    total.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    return {"step": step, "loss": float(total.detach()), **{k: float(v.detach()) for k, v in losses.items()}}


def _drop(refs: References, feature: bool, link: bool) -> References:
    return References(refs.centres if feature else None, refs.present, refs.queries if link else None,
                      refs.query_labels if link else None)


def fit(model: RefT, cfg: Config, data: FSISData, samples: list[Sample], steps: int, lr: float, batch_size: int,
        rng: np.random.Generator, *, reference_dropout: float = 0.0, cosine_schedule: bool = False,
        teacher: RefT | None = None, base_index: torch.Tensor | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, float]]:
    """`steps` AdamW steps of the set loss (+ loss_kd with a teacher) on `samples`, episodic supports."""
    t = cfg.train
    crit = SetCriterion(len(data.split.all_ids), cfg.loss)
    opt = make_optimizer(model, lr, cfg)
    sampler = EpisodicSupportSampler(samples, t.support_shots, rng)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    use_refs = model.feature_ref is not None or model.query_link is not None
    history, refs, rest = [], None, list(range(len(samples)))
    params = [p for p in model.parameters() if p.requires_grad]
    for step in range(steps):
        if use_refs and step % t.support_refresh_steps == 0:
            entries, rest = sampler.episode()
            model.eval()
            refs = model.build_references(support_set(entries, data))
        model.train()
        pick = rng.choice(rest, size=batch_size, replace=len(rest) < batch_size)
        batch = [samples[int(i)] for i in pick]
        images = batch_images(batch)
        step_refs = refs
        if refs is not None and reference_dropout > 0:
            step_refs = _drop(refs, rng.random() >= reference_dropout, rng.random() >= reference_dropout)
        out = model(images, step_refs)
        losses = crit(out, batch_targets(batch, data, images.shape[-2:]), gen)
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = teacher(images)["pred_logits"]
            losses["loss_kd"] = base_distillation_loss(out["pred_logits"], teacher_logits, base_index)
        total = crit.total(losses)
        rec = optimizer_step(opt, params, losses, total, step, steps, cosine_schedule, t.grad_clip)
        history.append(rec)
        if on_log is not None and (step % t.log_every == 0 or step == steps - 1):
            on_log(rec)
    return history


def base_train(cfg: Config, data: FSISData, seed: int,
               on_log: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, torch.Tensor], list]:
    """Stage 1: base classes only (base_train annotates base classes only; checked here, spec pitfall 2)."""
    base = set(data.split.base_ids)
    for s in data.base_train:
        if any(int(c) not in base for c in s.category_ids):
            raise RunFailed(f"reft: base training image {s.image_id} holds a novel annotation (leak)")
    seed_everything(seed)
    model = build_model(cfg, len(data.split.all_ids), "reft")
    rng = np.random.default_rng([seed, 1])
    hist = fit(model, cfg, data, data.base_train, cfg.train.base_steps, cfg.train.lr, cfg.train.batch_size, rng,
               reference_dropout=cfg.train.reference_dropout, cosine_schedule=True, on_log=on_log)
    return model.state_dict(), hist


def _load(model: RefT, state: dict[str, torch.Tensor]) -> None:
    """Load a base state; parameters of switched-off modules are left out, new ones (cosine) keep their init."""
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own and v.shape == own[k].shape}, strict=False)


def finetune(cfg: Config, base_state: dict[str, torch.Tensor], data: FSISData, kshot: list[Sample], seed: int,
             method: str = "reft", switches: dict[str, bool] | None = None, protocol: str = "fsis",
             on_log: Callable[[dict[str, Any]], None] | None = None) -> tuple[RefT, list]:
    """Stage 2 (FSIS / gFSIS) or 3 (iFSIS) from the base state; returns the fine-tuned model."""
    seed_everything(seed)
    model = build_model(cfg, len(data.split.all_ids), method, switches)
    _load(model, base_state)
    teacher = base_index = None
    if protocol == "ifsis":
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        model.enable_cosine(data.index_of(data.split.novel_ids))
        for n, p in model.named_parameters():
            p.requires_grad_(n.startswith(("cosine.", "feature_ref.", "query_link.")))
        base_index = data.index_of(data.split.base_ids)
    elif cfg.data.num_shots <= cfg.train.freeze_backbone_max_shots:
        for p in model.backbone.parameters():
            p.requires_grad_(False)
    rng = np.random.default_rng([seed, 2])
    hist = fit(model, cfg, data, kshot, cfg.train.ft_steps, cfg.train.ft_lr, cfg.train.ft_batch_size, rng,
               teacher=teacher, base_index=base_index, on_log=on_log)
    return model, hist


@torch.no_grad()
def predict_samples(model: RefT, refs: References | None, samples: list[Sample], class_ids: torch.Tensor,
                    batch_size: int = 16) -> list[dict[str, Any]]:
    """The prediction dicts of `metrics.evaluate_segm`: {"image_id", "masks", "category_ids", "scores"}."""
    from tenfold.systems.reft.model import instance_inference

    model.eval()
    out = []
    for i in range(0, len(samples), batch_size):
        chunk = samples[i:i + batch_size]
        images = batch_images(chunk)
        pred = model(images, refs)
        for b, s in enumerate(chunk):
            h, w = s.image.shape[-2:]
            r = instance_inference(pred["pred_logits"][b], pred["pred_masks"][b], tuple(images.shape[-2:]),
                                   class_ids)
            out.append({"image_id": s.image_id, "masks": r["masks"][:, :h, :w], "category_ids": r["category_ids"],
                        "scores": r["scores"]})
    return out


def references_for(model: RefT, data: FSISData, kshot: list[Sample]) -> References | None:
    """Test-time references: every instance of the K-shot set, encoded once (None for the baseline)."""
    if model.feature_ref is None and model.query_link is None:
        return None
    return model.build_references(support_set(all_instances(kshot), data))


def train(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Base training (resumed from the checkpoint when present), then K-shot fine-tuning of `train.method`
    under `data.protocol`. Writes config.json, metrics.jsonl, checkpoints/last.pt and summary.json."""
    t0 = time.perf_counter()
    run = RunDir(run_dir)
    data = load_data(cfg, Path(run_dir))
    run.write_config(cfg)
    with torch_threads(cfg.train.num_threads or torch.get_num_threads()):
        state = run.load_checkpoint() or {}
        if "base" not in state:
            base, hist = base_train(cfg, data, cfg.seed, lambda r: run.log_metrics({"stage": "base", **r}))
            state = {"base": base}
            run.save_checkpoint(state)
        kshot = kshot_set(data, cfg.data.protocol, cfg.data.num_shots, cfg.data.kshot_seed)
        model, hist = finetune(cfg, state["base"], data, kshot, cfg.seed + 1, cfg.train.method,
                               protocol=cfg.data.protocol,
                               on_log=lambda r: run.log_metrics({"stage": "finetune", **r}))
        state.update(model=model.state_dict(), class_ids=data.class_ids,
                     novel_ids=torch.tensor(data.split.novel_ids, dtype=torch.long))
        run.save_checkpoint(state)
    metrics = {"method": cfg.train.method, "protocol": cfg.data.protocol, "num_shots": cfg.data.num_shots,
               "final_loss": hist[-1]["loss"] if hist else float("nan"), "kshot_images": len(kshot)}
    run.write_summary(metrics, time.perf_counter() - t0, "cpu")
    return metrics
