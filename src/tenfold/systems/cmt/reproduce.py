"""`tenfold reproduce cmt`: one seed's measurements of the claims of arXiv 2301.01283 (spec section 6).

Per seed (paired: the seed fixes the SynthDrive train / val scenes, every arm's initialisation and batch order):
four CMT variants are trained for the same number of updates on the same scenes and scored with NDS on the same
validation scenes:
  fusion    camera + LiDAR, ModalMask3D in training (the paper's setting)
  lidar     LiDAR-only head (BEV tokens, BEV query PE)
  camera    camera-only head with the 3D coordinates (ray) encoding
  camera2d  camera-only head with a plain 2D sine PE of (u, v, camera id) instead (spec 6 ablation)
Claims (kind "claim"; reference: the untrained fusion model's NDS, the trivial predictor of the task):
  C1  NDS(fusion) > NDS(lidar)                        C2  NDS(lidar) > NDS(camera)
  C3  mean AP over the colour-only pair (traffic_cone, bollard): fusion > lidar
  C4  fusion with points zeroed at test time: |NDS - NDS(camera)| <= 0.03
  C5  fusion with images zeroed at test time: |NDS - NDS(lidar)| <= 0.02
  C6  camera-only NDS: ray PE > plain 2D PE
Design choice: the "within" margins are the spec's expectation (2 and 1 NDS points) widened by one point each for
the small scale. Plots: a BEV view of fusion predictions vs GT and a camera image with projected boxes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.claims import Measurement, Relation
from tenfold.core.config import make_config, override
from tenfold.core.runs import RunDir
from tenfold.systems.cmt import data
from tenfold.systems.cmt.config import PROFILES, Config
from tenfold.systems.cmt.evaluate import evaluate_model, load_model
from tenfold.systems.cmt.model import CrossModalTransformer
from tenfold.systems.cmt.train import total_steps, train

log = logging.getLogger("tenfold.cmt")
SYSTEM = "cmt"
REFERENCE = "untrained fusion model (initial weights)"
PAIR = ("traffic_cone", "bollard")
ARMS = {"fusion": {"model.modality": "fusion"}, "lidar": {"model.modality": "lidar"},
        "camera": {"model.modality": "camera"}, "camera2d": {"model.modality": "camera", "model.camera_pe": "2d"},
        "fusion_nomask": {"model.modality": "fusion", "train.use_modal_mask": False}}


def pair_ap(result: dict[str, Any]) -> float:
    aps = [result["class_AP"][c] for c in PAIR if c in result["class_AP"]]
    return float(np.mean(aps)) if aps else float("nan")


def reproduce(profile: str, seed: int, out_dir: Path) -> list[Measurement]:
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    base = make_config(Config, PROFILES, profile, {"seed": seed})
    train_set = data.synthdrive_samples(base, "train")
    val_set = data.synthdrive_samples(base, "val")
    arms = {k: v for k, v in ARMS.items() if (k != "camera2d" or base.reproduce.include_2d_pe)
            and (k != "fusion_nomask" or base.reproduce.include_no_modal_mask)}
    res: dict[str, dict[str, Any]] = {}
    walls: dict[str, float] = {}
    for name, overrides in arms.items():
        cfg = override(base, overrides)
        t = time.perf_counter()
        run_dir = out_dir / name
        if not RunDir(run_dir).summary_path.exists():
            train(cfg, run_dir, train_set, val_set)
        model = load_model(cfg, run_dir)
        with torch.no_grad():
            res[name] = evaluate_model(model, cfg, val_set)
            if name == "fusion_nomask":
                res["fusion_nomask_points_zeroed"] = evaluate_model(model, cfg, val_set, "points")
            if name == "fusion":
                res["fusion_points_zeroed"] = evaluate_model(model, cfg, val_set, "points")
                res["fusion_image_zeroed"] = evaluate_model(model, cfg, val_set, "image")
                if base.reproduce.plots:
                    plot(model, cfg, val_set[0], out_dir)
        walls[name] = round(time.perf_counter() - t, 1)
        log.info("cmt seed %d %s: NDS %.4f mAP %.4f (%.0f s)", seed, name, res[name]["NDS"], res[name]["mAP"],
                 walls[name])
    torch.manual_seed(seed)
    untrained = CrossModalTransformer(base.model, len(base.data.classes)).eval()
    with torch.no_grad():
        ref = evaluate_model(untrained, base, val_set)
    steps = total_steps(base, len(train_set))
    budget = {name: {"updates": steps, "batch": base.train.batch_size, "train_scenes": len(train_set),
                     "val_scenes": len(val_set), "wall_s": walls.get(name, 0.0)} for name in arms}
    wall = time.perf_counter() - t0

    def row(claim: str, metric: str, m: str, mv: float, b: str, bv: float, rel: Relation, rv: float,
            budget_keys: tuple[str, str], details: str = "") -> Measurement:
        return Measurement(system=SYSTEM, claim=claim, metric=metric, method=m, method_value=mv, baseline=b,
                           baseline_value=bv, relation=rel, seed=seed, wall_time_s=wall, details=details,
                           reference=REFERENCE, reference_value=rv,
                           budget={"method": budget[budget_keys[0]], "baseline": budget[budget_keys[1]]})

    rows = [
        row("C1 fusion beats LiDAR-only (NDS)", "NDS", "fusion", res["fusion"]["NDS"], "lidar",
            res["lidar"]["NDS"], Relation(">"), ref["NDS"], ("fusion", "lidar")),
        row("C2 LiDAR-only beats camera-only (NDS)", "NDS", "lidar", res["lidar"]["NDS"], "camera",
            res["camera"]["NDS"], Relation(">"), ref["NDS"], ("lidar", "camera")),
        row("C3 fusion beats LiDAR-only on the colour-only pair (cone, bollard)", "mean AP cone+bollard", "fusion",
            pair_ap(res["fusion"]), "lidar", pair_ap(res["lidar"]), Relation(">"), pair_ap(ref), ("fusion", "lidar")),
        row("C4 masked-modal fusion, points zeroed, is within 0.03 NDS of camera-only", "NDS",
            "fusion (points zeroed)", res["fusion_points_zeroed"]["NDS"], "camera", res["camera"]["NDS"],
            Relation("within", 0.03), ref["NDS"], ("fusion", "camera")),
        row("C5 masked-modal fusion, images zeroed, is within 0.02 NDS of LiDAR-only", "NDS",
            "fusion (images zeroed)", res["fusion_image_zeroed"]["NDS"], "lidar", res["lidar"]["NDS"],
            Relation("within", 0.02), ref["NDS"], ("fusion", "lidar")),
    ]
    if "camera2d" in res:
        rows.append(row("C6 camera-only: 3D coordinates (ray) encoding beats a plain 2D PE (NDS)", "NDS",
                        "camera (ray PE)", res["camera"]["NDS"], "camera (2D PE)", res["camera2d"]["NDS"],
                        Relation(">"), ref["NDS"], ("camera", "camera2d")))
    if "fusion_nomask" in res:
        # spec 6: without ModalMask3D the fusion model is expected to collapse when the points are missing; with it,
        # it should stay near camera-only. The row isolates the masked-modal training (same model, data, updates).
        rows.append(row("C7 ModalMask3D keeps fusion working without LiDAR: points zeroed, fusion trained with it "
                        "beats fusion trained without it (NDS)", "NDS", "fusion (points zeroed)",
                        res["fusion_points_zeroed"]["NDS"], "fusion without ModalMask3D (points zeroed)",
                        res["fusion_nomask_points_zeroed"]["NDS"], Relation(">"), ref["NDS"],
                        ("fusion", "fusion_nomask")))
        # Design choice (a diagnostic, not a paper row): what ModalMask3D costs with both sensors present at this
        # budget (the paper trains its headline fusion model with it).
        rows.append(row("C8 ModalMask3D costs at most 0.02 NDS with both sensors present (fusion with vs without "
                        "it)", "NDS", "fusion", res["fusion"]["NDS"], "fusion without ModalMask3D",
                        res["fusion_nomask"]["NDS"], Relation("within", 0.02), ref["NDS"],
                        ("fusion", "fusion_nomask")))
    summary = {k: {"NDS": v["NDS"], "mAP": v["mAP"], "pair_AP": pair_ap(v)} for k, v in res.items()}
    log.info("cmt seed %d summary: %s; reference NDS %.4f", seed, summary, ref["NDS"])
    return rows


def plot(model: CrossModalTransformer, cfg: Config, sample: dict, out_dir: Path) -> None:
    """bev_predictions.png (BEV: GT green, the top 2 x #GT fusion predictions red) and camera_boxes.png (CAM_FRONT
    with the projected GT / predicted boxes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tenfold.systems.cmt.synthdrive import bev_corners, project

    pred = data.predictions(model, [sample], cfg)[0]
    top = max(1, 2 * len(sample["gt_boxes"]))  # scores are sorted (top-k)
    pboxes = pred["boxes"][:top].numpy().copy()
    pboxes[:, 2] += pboxes[:, 5] / 2  # bottom -> gravity centre
    gboxes = sample["gt_boxes"].numpy()
    fig, ax = plt.subplots(figsize=(5, 5))
    for boxes, colour, label in ((gboxes, "tab:green", "GT"), (pboxes, "tab:red", "fusion")):
        for i, b in enumerate(boxes):
            c = bev_corners(b)
            ax.fill(c[:, 0], c[:, 1], fill=False, ec=colour, label=label if i == 0 else None)
    r = cfg.model.pc_range
    ax.set(xlim=(r[0], r[3]), ylim=(r[1], r[4]), aspect="equal", xlabel="x (m)", ylabel="y (m)",
           title=f"BEV, sample {sample['token']} (top {top} predictions)")
    ax.legend(loc="upper right")
    fig.savefig(out_dir / "bev_predictions.png", dpi=100)
    plt.close(fig)
    img = sample["images"][0].permute(1, 2, 0).numpy()
    l2i = sample["lidar2img"][0].double().numpy()
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.imshow(img)
    for boxes, colour in ((gboxes, "lime"), (pboxes, "red")):
        for b in boxes:
            c2 = bev_corners(b)
            zs = (b[2] - b[5] / 2, b[2] + b[5] / 2)
            corners = np.array([[x, y, z] for z in zs for x, y in c2])
            uv, depth = project(l2i, corners)
            if (depth > 0.5).all():
                for a, bb in ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5),
                              (2, 6), (3, 7)):
                    ax.plot(uv[[a, bb], 0], uv[[a, bb], 1], color=colour, lw=0.8)
    ax.set(xlim=(0, img.shape[1]), ylim=(img.shape[0], 0), title="CAM_FRONT: GT (green), fusion (red)")
    fig.savefig(out_dir / "camera_boxes.png", dpi=120)
    plt.close(fig)
