"""`tenfold reproduce fctl`: the section-6 comparisons of FCtL (Liu et al., "Ultra-high Resolution Image
Segmentation via Locality-aware Context Fusion and Alternating Local Enhancement", IJCV 2024, arXiv 2109.02580)
on SynthLandcover, measured side by side (spec ../shared/specs/fctl.md section 6).

One staged run trains every variant: local (stage 0), local + one context (single0 = x2, single1 = x3), LCF
(all), LCF + ALE (reconstruction) and the global-only baseline. Equal budgets (issue 17): LCF's trunk trains
3 stages (local -> single0 -> all); every other arm is continued ("<stage>_long") until its trunk has trained the
same number of epochs (local-only +2 stages, local + x_k +1, global-only +2). All arms are scored on the test
split (mIoU over classes 1..6, class 0 dropped) beside the majority-class predictor (the trivial reference).
Rows (verdicts computed from the measured numbers):
  A  LCF mIoU > global-only; B  LCF urban IoU > global-only (thin roads vanish when down-sampled)
  C  LCF >= local-only + 5 mIoU points; D  LCF > texture-only oracle (the ceiling of context-free models)
  E  LCF > local + x2 and F  LCF > local + x3 (multi-context fusion beats a single context)
  G  LCF + ALE >= LCF (reconstruction, reported whatever the result)
  H  LCF > LCF with contexts from another image + 1 point; I  learned context gamma clearly non-zero
  J  patch-pipeline peak memory < whole-image at the largest S; K  patch memory grows less than whole-image
  check: the data's x3 window tells the regime of ambiguous pixels (`data.context_cue_accuracy`, issue 17)
C-F are "contexts help" rows: they count only where row H shows that the contexts are used (see `gated`).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.claims import Measurement, Relation
from tenfold.core.config import make_config, override
from tenfold.systems.fctl import data as D
from tenfold.systems.fctl.config import PROFILES, Config
from tenfold.systems.fctl.evaluate import PeakMemory
from tenfold.systems.fctl.stages import (evaluate_images, load_split, load_stage_model, predict_logits, stage_predict,
                                         trunk_epochs)
from tenfold.systems.fctl.train import train

log = logging.getLogger("tenfold.fctl")
SYSTEM = "fctl"
# Training order: the official stages, then the equal-budget continuations of the shorter arms.
STAGES = ("local", "single0", "single1", "all", "all_ale", "global", "local_long", "single0_long", "single1_long",
          "global_long")
# The arms compared in the rows, each with LCF's trunk epochs (stages.trunk_epochs).
ARMS = ("local_long", "single0_long", "single1_long", "all", "all_ale", "global_long")
NAMES = {"local_long": "local-only", "single0_long": "local + x2", "single1_long": "local + x3", "all": "LCF",
         "all_ale": "LCF + ALE", "global_long": "global-only"}
USED_MARGIN = 1.0  # mIoU points: row H's margin; below it a seed's contexts count as unused
AMBIGUOUS = (1, 2, 3, 6)  # the pairs {2, 1} and {3, 6} share texture (spec 4.1)


def reproduce(profile: str, seed: int, out_dir: Path) -> list[Measurement]:
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg: Config = make_config(Config, PROFILES, profile, {"seed": seed})
    stages = STAGES if cfg.reproduce.use_ale_variant else tuple(v for v in STAGES if v != "all_ale")
    arms = tuple(a for a in ARMS if a in stages)
    cfg = override(cfg, {"train.stages": stages})
    train(cfg, out_dir / "run")
    t_train = time.perf_counter() - t0
    res, models, test = score_variants(cfg, out_dir / "run", arms)
    mem = memory_table(cfg, models["all"], models["local_long"])
    plot_predictions(cfg, test, models, out_dir / "predictions.png")
    plot_memory(mem, out_dir / "memory_vs_size.png")
    wall = time.perf_counter() - t0
    log.info("fctl reproduce: training %.0f s, total %.0f s", t_train, wall)
    return claim_rows(cfg, res, mem, arms, seed, wall)


def score_variants(cfg: Config, run_dir: Path, stages: tuple[str, ...]) -> tuple[dict, dict, Any]:
    """Test-split scores of every variant, the shuffled-context ablation and the texture-only oracle."""
    test = load_split(cfg, "test")
    k = cfg.data.num_classes
    models = {s: load_stage_model(cfg, run_dir, s).eval() for s in stages}
    res: dict[str, Any] = {}
    for s in stages:
        res[s] = evaluate_images(lambda i: stage_predict(models[s], s, test.image(i), cfg), test.labels, k)
    n = len(test)  # contexts of image (i + 1) mod n for image i: same grid, unrelated content
    res["shuffled"] = evaluate_images(lambda i: predict_logits(models["all"], test.image(i), cfg,
                                                               context_image=test.image((i + 1) % n)),
                                      test.labels, k)
    samples = D.synth_split("test", cfg.data.num_test, cfg.data.image_size, cfg.data.patch_size, cfg.seed)
    oracle = D.texture_oracle(samples)
    res["oracle"] = evaluate_images(lambda i: torch.from_numpy(oracle[i].astype(np.int64)), test.labels, k)
    res["cue"] = {m: D.context_cue_accuracy(samples, cfg.data.patch_size, cfg.data.min_overlap, m) for m in (1, 2, 3)}
    majority = majority_class(load_split(cfg, "train").labels, k)  # the trivial reference, from the train labels
    res["majority"] = evaluate_images(lambda i: torch.full(test.labels[i].shape, majority, dtype=torch.int64),
                                      test.labels, k)
    res["majority"]["class"] = majority
    res["gammas"] = models["all"].gammas()
    res["fusion_weights"] = fusion_weight_stats(cfg, models["all"], test)
    return res, models, test


# Design choice: the trivial reference of every mIoU row is the majority class of the train labels, everywhere.
def majority_class(labels: list[np.ndarray], num_classes: int) -> int:
    """The most frequent class over every pixel of `labels` (class 0 included, as in the loss)."""
    return int(np.argmax(sum(np.bincount(np.asarray(l).ravel(), minlength=num_classes) for l in labels)))


@torch.no_grad()
def fusion_weight_stats(cfg: Config, model: Any, test: Any) -> list[float]:
    """Mean fusion weight per branch (self, context 0, context 1, ...) over every patch of every test image."""
    total, count = None, 0

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        nonlocal total, count
        w = output[1]  # (n, B, C, h, w) fusion weights of one patch batch
        per_branch = w.double().sum(dim=(1, 2, 3, 4))  # (n,)
        total = per_branch if total is None else total + per_branch
        count += w[0].numel()

    handle = model.lcf.fusion.register_forward_hook(hook)
    try:
        for i in range(len(test)):
            predict_logits(model, test.image(i), cfg, tta=False)
    finally:
        handle.remove()
    return [float(x) for x in total / count]


def context_gamma(gammas: dict[str, float]) -> float:
    """max |gamma| over the context branches of LCF: branches[1 + i] attend to context i; branches[0] is the self
    branch (X -> X), which is not a context and is left out."""
    ctx = [abs(v) for k, v in gammas.items() if k.startswith("lcf.branches.") and k.split(".")[2] != "0"]
    return max(ctx) if ctx else float("nan")


def memory_table(cfg: Config, lcf_model: Any, local_model: Any) -> dict[int, dict[str, float]]:
    """Peak inference memory (MB) of the LCF patch pipeline vs whole-image full-resolution segmentation."""
    out = {}
    g = torch.Generator().manual_seed(0)
    for size in cfg.reproduce.memory_sizes:
        image = torch.rand(3, size, size, generator=g)  # memory does not depend on the content
        with torch.no_grad(), PeakMemory() as patch_mem:
            predict_logits(lcf_model, image, cfg, tta=False)
        with torch.no_grad(), PeakMemory() as whole_mem:
            local_model.trunk(image[None])
        out[int(size)] = {"patch_mb": patch_mem.peak / 2**20, "whole_mb": whole_mem.peak / 2**20}
        log.info("memory at S = %d: patch %.1f MB, whole image %.1f MB", size, out[size]["patch_mb"],
                 out[size]["whole_mb"])
    return out


# Design choice (issue 17): the "contexts help" rows are conditional on row H. tenfold.core.claims has no way to
# make one row depend on another, so the condition is applied per seed here (`gated`) and stated in the row text.
def gated(method: float, baseline: float, rel: Relation, used: bool) -> float:
    """The method value of a "contexts help" row on one seed (issue 17; a documented conditional).

    LCF's value counts where the contexts are used (row H: shuffling them across images costs more than
    USED_MARGIN mIoU points) or where the row fails anyway (a loss is a loss whether the contexts are used or
    not). A win on a seed whose contexts are unused cannot be the contexts' doing: the value becomes NaN, and
    the noise rule (tenfold.core.claims) makes the row inconclusive ("a value is missing").
    """
    return method if used or not rel.holds(method, baseline) else float("nan")


def claim_rows(cfg: Config, res: dict, mem: dict, arms: tuple[str, ...], seed: int,
               wall: float) -> list[Measurement]:
    steps = math.ceil(cfg.data.num_train / cfg.train.images_per_step)
    maj = res["majority"]

    def budget_of(stage: str) -> dict:
        return {"trunk_epochs": trunk_epochs(cfg, stage), "optimizer_steps": trunk_epochs(cfg, stage) * steps,
                "validation": "none: fixed schedule, last epoch"}

    def row(claim: str, metric: str, method: str, mv: float, baseline: str, bv: float, rel: Relation,
            details: str = "", arms: tuple[str, str | None] | None = None, deterministic: bool = False,
            reference: str = "", rv: float = float("nan"), kind: str = "claim") -> Measurement:
        budget = {} if arms is None else {arm: budget_of(stage) for arm, stage in zip(("method", "baseline"), arms)
                                          if stage is not None}
        return Measurement(system=SYSTEM, claim=claim, metric=metric, method=method, method_value=mv,
                           baseline=baseline, baseline_value=bv, relation=rel, seed=seed, wall_time_s=wall,
                           details=details, budget=budget, deterministic=deterministic, reference=reference,
                           reference_value=rv, kind=kind)

    m = {k: res[k]["miou"] for k in (*arms, "shuffled", "oracle", "majority")}
    urban = {k: res[k]["iou_per_class"][1] or 0.0 for k in (*arms, "majority")}
    amb = {k: _mean_iou(res[k]["iou_per_class"], AMBIGUOUS) for k in (*arms, "oracle")}
    detail = "; ".join(f"{NAMES.get(k, k)} {v:.1f}" for k, v in m.items()) + " | ambiguous {1,2,3,6}: " + "; ".join(
        f"{NAMES.get(k, k)} {v:.1f}" for k, v in amb.items())
    ctx_gamma = context_gamma(res["gammas"])
    gap = m["all"] - m["shuffled"]
    used = gap > USED_MARGIN
    cond = f" (counted where shuffling the contexts costs > {USED_MARGIN:g} point)"
    note = f"contexts {'used' if used else 'UNUSED: a win is not counted'} (shuffle gap {gap:.2f}); "
    ref = {"reference": f"majority class ({maj['class']})", "rv": m["majority"]}

    def ctx_row(claim: str, baseline: str, bv: float, rel: Relation, arm: str | None) -> Measurement:
        return row(claim + cond, "test mIoU (%)", "LCF", gated(m["all"], bv, rel, used), baseline, bv, rel,
                   note + detail, ("all", arm), **ref)

    big, small = max(mem), min(mem)
    cue = res["cue"]
    rows = [
        row("SynthLandcover's x3 window tells an ambiguous pixel's regime (ideal reader of the window vs the "
            "constant regime, test split)", "accuracy on T0/T1 pixels", "ideal x3 reader", cue[3][0],
            "constant regime", cue[3][1], Relation(">", 0.1), "ideal reader of the patch / x2 / x3 window: "
            + " / ".join(f"{cue[m][0]:.3f}" for m in (1, 2, 3)) + f"; constant {cue[1][1]:.3f}",
            deterministic=True, kind="check"),
        row("LCF (self + x2 + x3 + fusion) beats global-only segmentation", "test mIoU (%)", "LCF", m["all"],
            "global-only", m["global_long"], Relation(">"), detail, ("all", "global_long"), **ref),
        row("global-only loses thin roads: LCF urban IoU higher", "test urban IoU (%)", "LCF", urban["all"],
            "global-only", urban["global_long"], Relation(">"), arms=("all", "global_long"),
            reference=ref["reference"], rv=urban["majority"]),
        ctx_row("contexts help: LCF >= local-only + 5 mIoU points", "local-only", m["local_long"],
                Relation(">=", 5.0), "local_long"),
        ctx_row("LCF clearly above the texture-only oracle (ceiling of context-free models)", "texture oracle",
                m["oracle"], Relation(">"), None),
        ctx_row("multi-context fusion beats local + x2 alone", "local+x2", m["single0_long"], Relation(">"),
                "single0_long"),
        ctx_row("multi-context fusion beats local + x3 alone", "local+x3", m["single1_long"], Relation(">"),
                "single1_long"),
    ]
    if "all_ale" in arms:
        rows.append(row("ALE (reconstruction) refines LCF", "test mIoU (%)", "LCF+ALE", m["all_ale"], "LCF",
                        m["all"], Relation(">="), arms=("all_ale", "all"), **ref))
    rows += [
        row("contexts are used: shuffling them across images hurts", "test mIoU (%)", "LCF", m["all"],
            "LCF shuffled ctx", m["shuffled"], Relation(">", USED_MARGIN),
            f"gammas {res['gammas']}; mean fusion weights (self, x2, x3) {res['fusion_weights']}", ("all", "all"),
            **ref),
        row("learned context gamma clearly non-zero", "max |gamma| of LCF context branches", "LCF", ctx_gamma,
            "zero (init)", 0.0, Relation(">", 0.01), f"gammas {res['gammas']}", ("all", None)),
        row(f"patch pipeline needs less peak memory than whole-image inference at S = {big}",
            "peak inference memory (MB)", "patch pipeline", mem[big]["patch_mb"], "whole image",
            mem[big]["whole_mb"], Relation("<"), _mem_detail(mem), deterministic=True),
        row(f"patch memory grows less than whole-image memory from S = {small} to {big}",
            f"peak memory ratio S={big} / S={small}", "patch pipeline", mem[big]["patch_mb"] / mem[small]["patch_mb"],
            "whole image", mem[big]["whole_mb"] / mem[small]["whole_mb"], Relation("<"), _mem_detail(mem),
            deterministic=True),
    ]
    return rows


def _mean_iou(iou: list, classes: tuple[int, ...]) -> float:
    vals = [iou[c] for c in classes if iou[c] is not None]
    return float(np.mean(vals)) if vals else float("nan")


def _mem_detail(mem: dict, num_classes: int = 7) -> str:
    """Per size: both peaks and the K x S x S float32 logit canvas that the patch pipeline must hold."""
    return "; ".join(f"S={s}: patch {v['patch_mb']:.1f} MB (canvas {num_classes * s * s * 4 / 2**20:.1f} MB), "
                     f"whole {v['whole_mb']:.1f} MB" for s, v in mem.items())


def plot_predictions(cfg: Config, test: Any, models: dict, path: Path) -> None:
    """An input, its ground truth and every variant's prediction side by side (DeepGlobe colours)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = test.image(0)
    panels = [("input", img.permute(1, 2, 0).numpy()), ("ground truth", D.ids_to_colour(test.labels[0]))]
    for s, model in models.items():
        pred = stage_predict(model, s, img, cfg).argmax(0).cpu().numpy()
        panels.append((NAMES.get(s, s), D.ids_to_colour(pred)))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    for ax, (title, arr) in zip(axes, panels):
        ax.imshow(arr)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_memory(mem: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(mem)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(sizes, [mem[s]["patch_mb"] for s in sizes], "o-", label="patch pipeline (LCF, batch 16)")
    ax.plot(sizes, [mem[s]["whole_mb"] for s in sizes], "s-", label="whole image, full resolution")
    ax.set_xlabel("image side S (px)")
    ax.set_ylabel("peak inference memory (MB)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
