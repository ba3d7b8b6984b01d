"""Parity of cmt's NDS (arXiv 2301.01283, spec component 15) with nuscenes-devkit 1.2.0's own functions.

Skipped when `nuscenes` (nuscenes-devkit) cannot be imported. nuscenes-devkit 1.2.0 pins numpy < 2, which
conflicts with the project's numpy, so it is not an extra; see the cmt README for how to run this file.
"""

import math

import numpy as np
import pytest

algo = pytest.importorskip("nuscenes.eval.detection.algo", reason="nuscenes-devkit not installed")
from nuscenes.eval.common.data_classes import EvalBoxes  # noqa: E402
from nuscenes.eval.common.utils import center_distance as dk_center_distance  # noqa: E402
from nuscenes.eval.detection.config import config_factory  # noqa: E402
from nuscenes.eval.detection.constants import TP_METRICS as DK_TP  # noqa: E402
from nuscenes.eval.detection.data_classes import DetectionBox, DetectionMetrics  # noqa: E402

from tenfold.systems.cmt.metrics import NUSCENES_CLASSES, DetBox, evaluate_detection  # noqa: E402

ATTRS = {"car": ["vehicle.moving", "vehicle.parked", "vehicle.stopped"], "truck": ["vehicle.moving", "vehicle.parked"],
         "bus": ["vehicle.moving", "vehicle.stopped"], "trailer": ["vehicle.parked"],
         "construction_vehicle": ["vehicle.parked", "vehicle.moving"],
         "pedestrian": ["pedestrian.moving", "pedestrian.standing"], "motorcycle": ["cycle.with_rider", ""],
         "bicycle": ["cycle.with_rider", "cycle.without_rider"], "traffic_cone": [""], "barrier": [""]}


def random_sets(seed: int) -> tuple[list[DetBox], list[DetBox]]:
    """GT in 4 samples (some beyond range, some with 0 points); predictions = jittered GT subset + false positives."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for s in range(4):
        tok = f"s{s}"
        for _ in range(int(rng.integers(5, 25))):
            name = str(rng.choice(NUSCENES_CLASSES))
            xy = rng.uniform(-55, 55, 2)
            size = tuple(float(v) for v in rng.uniform(0.3, 5.0, 3))
            yaw = float(rng.uniform(-math.pi, math.pi))
            vel = tuple(float(v) for v in rng.normal(0, 2, 2))
            attr = str(rng.choice(ATTRS[name]))
            gts.append(DetBox(tok, (float(xy[0]), float(xy[1]), 0.5), size, yaw, vel, name, -1.0, attr,
                              int(rng.choice([0, 3, 10, 50], p=[0.1, 0.3, 0.3, 0.3]))))
            if rng.random() < 0.8:  # a (noisy) detection of this GT, sometimes with the wrong class
                pname = name if rng.random() < 0.9 else str(rng.choice(NUSCENES_CLASSES))
                pxy = xy + rng.normal(0, 1.0, 2)
                psize = tuple(float(v * rng.uniform(0.7, 1.3)) for v in size)
                preds.append(DetBox(tok, (float(pxy[0]), float(pxy[1]), 0.5), psize,
                                    float(yaw + rng.normal(0, 0.5)),
                                    tuple(float(v) for v in np.array(vel) + rng.normal(0, 1, 2)),
                                    pname, float(rng.uniform(0.05, 1.0)), str(rng.choice(ATTRS[pname]))))
        for _ in range(int(rng.integers(0, 10))):  # false positives
            name = str(rng.choice(NUSCENES_CLASSES))
            xy = rng.uniform(-45, 45, 2)
            preds.append(DetBox(tok, (float(xy[0]), float(xy[1]), 0.5), (1.0, 2.0, 1.5), 0.3, (0.0, 0.0), name,
                                float(rng.uniform(0.05, 1.0)), str(rng.choice(ATTRS[name]))))
    return gts, preds


def to_devkit(boxes: list[DetBox], cfg) -> EvalBoxes:
    """DetBox -> devkit EvalBoxes with a yaw-only quaternion (w, 0, 0, z); range and zero-point filters applied as
    `filter_eval_boxes` does (that function needs a NuScenes db for the bike-rack step)."""
    eb = EvalBoxes()
    by: dict[str, list] = {}
    for b in boxes:
        q = (math.cos(b.yaw / 2), 0.0, 0.0, math.sin(b.yaw / 2))
        d = DetectionBox(b.sample_token, b.translation, b.size, q, b.velocity, b.translation, b.num_pts, b.name,
                         b.score, b.attribute)
        if d.ego_dist < cfg.class_range[d.detection_name] and not d.num_pts == 0:
            by.setdefault(b.sample_token, []).append(d)
    for tok in sorted({b.sample_token for b in boxes}):
        eb.add_boxes(tok, by.get(tok, []))
    return eb


def devkit_metrics(gts: list[DetBox], preds: list[DetBox]) -> DetectionMetrics:
    """Step 1 and 2 of the devkit's `DetectionEval.evaluate`, verbatim in structure."""
    cfg = config_factory("detection_cvpr_2019")
    gt_eb, pred_eb = to_devkit(gts, cfg), to_devkit(preds, cfg)
    metrics = DetectionMetrics(cfg)
    for c in cfg.class_names:
        mds = {th: algo.accumulate(gt_eb, pred_eb, c, dk_center_distance, th) for th in cfg.dist_ths}
        for th in cfg.dist_ths:
            metrics.add_label_ap(c, th, algo.calc_ap(mds[th], cfg.min_recall, cfg.min_precision))
        for m in DK_TP:
            if c in ["traffic_cone"] and m in ["attr_err", "vel_err", "orient_err"]:
                tp = np.nan
            elif c in ["barrier"] and m in ["attr_err", "vel_err"]:
                tp = np.nan
            else:
                tp = algo.calc_tp(mds[cfg.dist_th_tp], cfg.min_recall, m)
            metrics.add_label_tp(c, m, tp)
    return metrics


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_matches_devkit_on_random_box_sets(seed: int) -> None:
    gts, preds = random_sets(seed)
    ours = evaluate_detection(gts, preds)
    theirs = devkit_metrics(gts, preds)
    assert ours["mAP"] == pytest.approx(theirs.mean_ap, abs=1e-12)
    for m in DK_TP:
        assert ours["tp_errors"][m] == pytest.approx(theirs.tp_errors[m], abs=1e-12, nan_ok=True)
    for c in NUSCENES_CLASSES:
        assert ours["mean_dist_aps"][c] == pytest.approx(theirs.mean_dist_aps[c], abs=1e-12)
    assert ours["NDS"] == pytest.approx(theirs.nd_score, abs=1e-12)
    assert 0.0 < ours["NDS"] < 1.0  # the sets are neither perfect nor empty
