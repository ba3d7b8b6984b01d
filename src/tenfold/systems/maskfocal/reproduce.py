"""`tenfold reproduce maskfocal`: Mask Focal Loss vs each detector's native loss, side by side (spec section 6).

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with
canonical object detection networks", arXiv 2212.11542. Headline [paper]: swapping MFL into the same detector
lowers MAE by up to 47.03 % and RMSE by up to 61.99 %.

Protocol (pitfall 7: lock everything but the loss): one SynthCrowd data set (generated once, read back through
the COCO / points reader), the same seed, initialisation, schedule, decoding and tau-selection rule (tau chosen
on validation, never on test) for every run; only `loss.cls_loss` (and, for the point row, the GT type) changes.
Rows (one seed's `Measurement`s; the CLI aggregates the claim seeds and judges them):
  per detector (CenterNetLite, FCOSLite): MAE, RMSE lower with MFL; AP@0.5 higher; MAE per density bucket;
      the MAE gain of the dense bucket exceeds that of the sparse bucket ("gain grows with density")
  point-GT variant (CenterNetLite on knn pseudo-boxes): MAE lower, point-F1 higher with MFL
  CenterNetLite: MFL(radius), MFL(soft) vs native (MAE)
  FCOSLite decomposition (issue 19): native alpha off vs native; MFL unweighted vs native alpha off; MFL vs MFL
      unweighted (MAE), so that the rows say which part of the change helps
  check: at this scale MFL(box) puts < 50 % of its positive weight on the peak cells (heatmap.target_stats)
A unit folder (<out>/maskfocal/seed-<n>) resumes a killed unit of the same code, profile and seed; anything else,
a forced re-run included, starts clean (start_unit).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from tenfold.core.claims import Measurement, Relation
from tenfold.core.config import make_config, override
from tenfold.core.runs import load_tensors
from tenfold.systems.maskfocal.config import PROFILES, Config
from tenfold.systems.maskfocal.data import prepare_synth

log = logging.getLogger("tenfold.maskfocal")
SYSTEM = "maskfocal"
DETECTOR_NAMES = {"centernet": "CenterNetLite", "fcos": "FCOSLite"}


def plan_runs(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    """(run name, config overrides) for every run of the comparison."""
    runs = []
    for det in cfg.reproduce.detectors:
        runs += [(f"{det}-native", {"model.detector": det, "loss.cls_loss": "native"}),
                 (f"{det}-mfl", {"model.detector": det, "loss.cls_loss": "mfl"})]
        if cfg.reproduce.use_mask_variants and det == "centernet":
            # Design choice (time budget): the mask variants run on CenterNetLite only, whose native loss is
            # MFL's closest relative (M = 1{Y = 1}); FCOSLite gets the decomposition rows below instead.
            runs += [(f"{det}-mfl_radius", {"model.detector": det, "loss.cls_loss": "mfl", "loss.mask_mode": "radius"}),
                     (f"{det}-mfl_soft", {"model.detector": det, "loss.cls_loss": "mfl", "loss.variant": "soft"})]
        if cfg.reproduce.use_fcos_ablations and det == "fcos":
            # issue 19: MFL on FCOS changes alpha-balancing, the assignment / negative penalty and the Gaussian
            # weights at once; these two runs switch one part each (alpha < 0 disables alpha, as in torchvision).
            runs += [(f"{det}-native_noalpha", {"model.detector": det, "loss.cls_loss": "native", "loss.alpha": -1.0}),
                     (f"{det}-mfl_unweighted", {"model.detector": det, "loss.cls_loss": "mfl",
                                                "loss.variant": "unweighted"})]
    if cfg.reproduce.use_point_variant:
        for loss in ("native", "mfl"):
            runs.append((f"points-centernet-{loss}", {"model.detector": "centernet", "loss.cls_loss": loss,
                                                      "data.annotation_type": "points"}))
    return runs


def scale_stats(cfg: Config, out_dir: Path) -> dict[str, dict]:
    """Radius distribution and MFL(box) weight statistics of the training split (heatmap.target_stats) on the
    CenterNetLite grid and on each FCOSLite level; written to <out>/target_stats.json."""
    import json

    from tenfold.systems.maskfocal.data import load_split
    from tenfold.systems.maskfocal.heatmap import target_stats

    train = load_split(out_dir / "data" / "train.json")
    hw, m = train.padded_hw(range(len(train))), cfg.model
    stats = {f"centernet stride {m.output_stride}": target_stats(train.boxes, hw, m.output_stride, m.min_overlap,
                                                                 m.min_radius)}
    for li, s in enumerate(m.fcos_strides):  # FCOSLite: each level sees the heads assigned to it
        big = [(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) > m.fcos_size_split) for b in train.boxes]
        level = [b[np.minimum(g.astype(int), len(m.fcos_strides) - 1) == li] for b, g in zip(train.boxes, big)]
        stats[f"fcos stride {s}"] = target_stats(level, hw, s, m.min_overlap, m.min_radius)
    (out_dir / "target_stats.json").write_text(json.dumps(stats, indent=2, default=float) + "\n")
    return stats


def run_all(cfg: Config, out_dir: Path) -> tuple[dict[str, dict], dict[str, float]]:
    """Train + evaluate every planned run on one shared data set; returns ({name: metrics}, {name: seconds})."""
    from tenfold.systems.maskfocal.train import train

    paths = prepare_synth(cfg.data, cfg.seed, out_dir / "data")
    results, wall = {}, {}
    for name, ov in plan_runs(cfg):
        kind = "points" if ov.get("data.annotation_type") == "points" else "boxes"
        files = {**{f"data.{s}_file": str(paths[s][kind]) for s in ("train", "val", "test")}, "data.source": "files"}
        t0 = time.perf_counter()
        results[name] = train(override(cfg, {**files, **ov}), out_dir / "runs" / name)
        wall[name] = time.perf_counter() - t0
        log.info("maskfocal reproduce: %s done in %.1f s (test MAE %.2f)", name, wall[name], results[name]["mae"])
    return results, wall


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _budget(cfg: Config, method: str, baseline: str) -> dict[str, dict[str, Any]]:
    """Each arm's budget: the same epochs, optimiser steps, lr and tau search; the cls normaliser it used."""
    steps = cfg.train.epochs * (cfg.data.num_train_images // cfg.train.batch_size)

    def arm(name: str) -> dict[str, Any]:
        det = "fcos" if "fcos" in name else "centernet"
        norm = {"centernet": "#heads", "fcos": "#positive locations"}[det]
        if "mfl" in name and cfg.loss.norm != "native":
            norm = {"heads": "#heads", "mask_weight": "sum M*Y"}[cfg.loss.norm]
        return {"epochs": cfg.train.epochs, "steps": steps, "lr": cfg.train.lr, "lr_search": "none (fixed)",
                "tau_search": "val grid 0.01", "cls_normaliser": norm}

    return {"method": arm(method), "baseline": arm(baseline)}


def claim_rows(cfg: Config, results: dict[str, dict], wall: dict[str, float], seed: int,
               stats: dict[str, dict] | None = None) -> list[Measurement]:
    rows: list[Measurement] = []
    edges = cfg.eval.bucket_edges

    def row(claim, metric, method, baseline, key, op, details=""):
        m, b = results[method], results[baseline]
        # The trivial predictor of each metric: the validation-median count for every image (MAE / RMSE rows, the
        # same for both arms: one data set), no detections for AP and point-F1. Neither arm beating it makes the
        # row inconclusive (degenerate). The reference name is the same on every seed (core.claims.aggregate).
        if key.startswith(("mae", "rmse")):
            reference, ref_value = "constant count (validation median)", m.get(f"const_{key}")
            details = f"{details}; val median {_num(m.get('const_count')):.0f}".lstrip("; ")
        else:
            reference, ref_value = "no detections", 0.0
        rows.append(Measurement(system=SYSTEM, claim=claim, metric=metric, method=method, method_value=_num(m[key]),
                                baseline=baseline, baseline_value=_num(b[key]), relation=Relation(op), seed=seed,
                                wall_time_s=wall[method] + wall[baseline], details=details, reference=reference,
                                reference_value=_num(ref_value), budget=_budget(cfg, method, baseline)))

    for det in cfg.reproduce.detectors:
        name, mfl, nat = DETECTOR_NAMES[det], f"{det}-mfl", f"{det}-native"
        tau = f"tau (val) {results[mfl]['tau']:.2f} vs {results[nat]['tau']:.2f}"
        row(f"{name}: MFL lowers the counting MAE vs the native loss", "MAE (test)", mfl, nat, "mae", "<", tau)
        row(f"{name}: MFL lowers the counting RMSE vs the native loss", "RMSE (test)", mfl, nat, "rmse", "<", tau)
        row(f"{name}: MFL improves detection (AP@0.5, pycocotools)", "AP@0.5 (test)", mfl, nat, "ap50", ">")
        for bucket, label in (("sparse", f"N < {edges[0]:g}"), ("medium", f"{edges[0]:g}-{edges[1]:g}"),
                              ("dense", f"N > {edges[1]:g}")):
            row(f"{name}: MFL lowers MAE in the {bucket} bucket ({label})", f"MAE {bucket} (test)", mfl, nat,
                f"mae_{bucket}", "<")
        gains = {b: _num(results[nat][f"mae_{b}"]) - _num(results[mfl][f"mae_{b}"]) for b in ("sparse", "dense")}
        rows.append(Measurement(system=SYSTEM,
                                claim=f"{name}: the MFL gain grows with density (dense vs sparse bucket)",
                                metric="MAE gain native - MFL", method="dense bucket", method_value=gains["dense"],
                                baseline="sparse bucket", baseline_value=gains["sparse"], relation=Relation(">"),
                                seed=seed, wall_time_s=wall[mfl] + wall[nat], budget=_budget(cfg, mfl, nat)))
        for variant in ("mfl_radius", "mfl_soft"):
            if f"{det}-{variant}" in results:
                row(f"{name}: MFL({variant[4:]}) lowers MAE vs the native loss", "MAE (test)", f"{det}-{variant}",
                    nat, "mae", "<")
        if f"{det}-native_noalpha" in results:
            # One switch per row: alpha-balancing; then the mask M, the penalty-reduced negatives and the
            # normaliser (unweighted MFL vs native without alpha); then the Gaussian weights Y^delta.
            row(f"{name}: switching off alpha-balancing alone lowers MAE (native, alpha off vs alpha 0.25)",
                "MAE (test)", f"{det}-native_noalpha", nat, "mae", "<")
            row(f"{name}: MFL's mask and penalty-reduced negatives lower MAE (MFL unweighted vs native, alpha off)",
                "MAE (test)", f"{det}-mfl_unweighted", f"{det}-native_noalpha", "mae", "<")
            row(f"{name}: MFL's Gaussian weights lower MAE (MFL vs MFL unweighted)", "MAE (test)", mfl,
                f"{det}-mfl_unweighted", "mae", "<")
    if "points-centernet-mfl" in results:
        mfl, nat = "points-centernet-mfl", "points-centernet-native"
        row("Point GT (knn pseudo-boxes): MFL lowers MAE vs the native loss", "MAE (test)", mfl, nat, "mae", "<")
        row("Point GT (knn pseudo-boxes): MFL raises point-F1", "point-F1 (test)", mfl, nat, "point_f1", ">",
            "AP is not reported on pseudo-boxes (pitfall 10)")
    if stats is not None and "centernet" in cfg.reproduce.detectors:
        st = stats[f"centernet stride {cfg.model.output_stride}"]
        # A check of the set-up (issue 19): MFL(box) puts less than half its positive weight on the peak cells,
        # where CenterNet's loss puts all of it; otherwise the CenterNet rows compare the loss with itself.
        rows.append(Measurement(
            system=SYSTEM, claim="Scale: MFL(box) spreads its positive weight beyond CenterNet's peak cells",
            metric="share of sum M*Y on peak cells (train GT)", method="MFL(box)",
            method_value=float(st["peak_weight_share"]), baseline="half", baseline_value=0.5,
            relation=Relation("<"), seed=seed, wall_time_s=0.0, kind="check",
            details=(f"radius counts {st['radius_counts']}; sum M*Y per head {st['mask_weight_per_head']:.2f}; "
                     f"mask cells per head {st['mask_cells_per_head']:.1f}")))
    return rows


# Design choice (issue 19: --force did not clear a killed unit's runs): a unit folder records what made it and
# resumes only a killed unit of the same code, profile and seed.
UNIT_MARKER = "unit.json"  # {profile, seed, code}: what the runs/ and data/ of a unit folder were made by
UNIT_OUTPUTS = ("runs", "data", "target_stats.json", "count_scatter.png", "detections_dense.png")


def start_unit(profile: str, seed: int, out_dir: Path) -> bool:
    """Clear the unit folder's runs and data unless they may be resumed; returns True when it was cleared.

    A killed unit is resumed (each run from its last checkpoint: bitwise the uninterrupted run) only when the
    folder's marker names the same profile, seed and code digest (core.reproduction.code_digest). Otherwise it
    starts clean: after a code or profile change (stale checkpoints must not be reused), for a folder without a
    marker, and for a forced re-run (`tenfold reproduce --force`), recognised by a cached rows.json that is
    still valid for this profile, seed and code (without --force the core returns that cache and never calls
    this). Core does not pass --force down: a forced re-run of a unit that was killed before it first finished
    (no rows.json) with unchanged code resumes, which gives the clean run's numbers.
    """
    import json
    import shutil

    from tenfold.core.reproduction import CACHE_NAME, code_digest

    me = {"profile": profile, "seed": seed, "code": code_digest(SYSTEM)}

    def read(name: str) -> dict | None:
        try:
            d = json.loads((out_dir / name).read_text(encoding="utf-8"))
            return d if isinstance(d, dict) else None
        except (OSError, ValueError):
            return None

    cached = read(CACHE_NAME)
    forced = cached is not None and {k: cached.get(k) for k in me} == me
    clean = forced or read(UNIT_MARKER) != me
    if clean:
        for name in UNIT_OUTPUTS:
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        log.info("maskfocal reproduce: %s starts clean (%s)", out_dir,
                 "forced re-run" if forced else "no matching unit.json")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / UNIT_MARKER).write_text(json.dumps(me) + "\n")
    return clean


def reproduce(profile: str, seed: int, out_dir: Path) -> list[Measurement]:
    cfg: Config = make_config(Config, PROFILES, profile, {"seed": seed})
    out_dir = Path(out_dir)
    start_unit(profile, seed, out_dir)
    results, wall = run_all(cfg, out_dir)
    rows = claim_rows(cfg, results, wall, seed, scale_stats(cfg, out_dir))
    plot_count_scatter(results, out_dir / "count_scatter.png")
    plot_dense_detections(cfg, out_dir, results, out_dir / "detections_dense.png")
    return rows


def plot_count_scatter(results: dict[str, dict], path: Path) -> None:
    """Predicted vs true count per test image for every run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    top = 1.0
    for i, (name, m) in enumerate(results.items()):
        g, p = np.asarray(m["gt_counts"]), np.asarray(m["pred_counts"])
        top = max(top, g.max(initial=0), p.max(initial=0))
        ax.scatter(g, p, s=8, alpha=0.6, color=f"C{i}", marker="o" if "mfl" in name else "x",
                   label=f"{name} (MAE {m['mae']:.1f})")
    ax.plot([0, top], [0, top], "k--", lw=1)
    ax.set_xlabel("true count")
    ax.set_ylabel("predicted count (score >= tau from validation)")
    ax.set_title("maskfocal: counts on the SynthCrowd test split")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_dense_detections(cfg: Config, out_dir: Path, results: dict[str, dict], path: Path) -> None:
    """Detections (score >= tau) of each box-GT run drawn on the densest test image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from tenfold.core.config import load_config
    from tenfold.systems.maskfocal.data import load_split
    from tenfold.systems.maskfocal.scoring import predict
    from tenfold.systems.maskfocal.model import build_model

    names = [n for n in results if not n.startswith("points-")]
    test = load_split(out_dir / "data" / "test.json")
    i = int(np.argmax(test.counts))
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        run = out_dir / "runs" / name
        rcfg = load_config(Config, run / "config.json")
        model = build_model(rcfg.model)
        model.load_state_dict(load_tensors(run / "checkpoints" / "last.pt")["model"])
        det = predict(model, test.batch([i]), rcfg)[0]
        keep = det["scores"] >= results[name]["tau"]
        ax.imshow(test.image(i).permute(1, 2, 0).numpy())  # (3, H, W) -> (H, W, 3)
        ax.scatter(test.points[i][:, 0], test.points[i][:, 1], s=6, c="cyan", label="GT heads")
        ax.scatter(det["points"][keep, 0], det["points"][keep, 1], s=10, c="red", marker="x", label="detections")
        ax.set_title(f"{name}: {int(keep.sum())} / {int(test.counts[i])}", fontsize=9)
        ax.axis("off")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle("maskfocal: detections on the densest test image (count = detections / true)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
