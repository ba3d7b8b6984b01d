"""nuScenes detection metrics of cmt (arXiv 2301.01283, spec component 15): hand-derived values on tiny box sets."""

import math

import numpy as np
import pytest

from tenfold.core.errors import InputError
from tenfold.systems.cmt.metrics import (DetBox, DetectionConfig, MetricData, accumulate, angle_diff,
                                         attribute_from_velocity, calc_ap, calc_tp, cummean, evaluate_detection,
                                         filter_boxes, nds_from_parts, scale_iou, synthdrive_config, yaw_diff)

CAR_ONLY = DetectionConfig(class_names=("car",), class_range={"car": 50.0})
CAR_PED = DetectionConfig(class_names=("car", "pedestrian"), class_range={"car": 50.0, "pedestrian": 40.0})


def gt(x, y=0.0, name="car", size=(2.0, 4.0, 1.5), yaw=0.0, vel=(0.0, 0.0), attr="vehicle.parked", tok="s0",
       pts=10):
    return DetBox(tok, (x, y, 0.0), size, yaw, vel, name, -1.0, attr, pts)


def pred(x, y=0.0, score=0.9, name="car", size=(2.0, 4.0, 1.5), yaw=0.0, vel=(0.0, 0.0), attr="vehicle.parked",
         tok="s0"):
    return DetBox(tok, (x, y, 0.0), size, yaw, vel, name, score, attr)


def test_perfect_predictions_give_nds_one() -> None:
    # Every prediction sits on its GT with the right size, yaw, velocity and attribute: AP = 1 at every
    # threshold, all five TP errors 0 -> NDS = (5 * 1 + 5 * 1) / 10 = 1.
    gts = [gt(5.0), gt(-8.0, 3.0, vel=(2.0, 0.0), attr="vehicle.moving"), gt(1.0, 20.0, tok="s1")]
    preds = [pred(b.translation[0], b.translation[1], 0.9 - 0.1 * i, vel=b.velocity, attr=b.attribute,
                  tok=b.sample_token) for i, b in enumerate(gts)]
    out = evaluate_detection(gts, preds, CAR_ONLY)
    assert out["mAP"] == pytest.approx(1.0)
    assert all(v == pytest.approx(0.0) for v in out["tp_errors"].values())
    assert out["NDS"] == pytest.approx(1.0)


def test_no_predictions_give_nds_zero() -> None:
    # AP 0 everywhere, every TP error 1 (max recall < 0.1) -> NDS = 0.
    out = evaluate_detection([gt(5.0)], [], CAR_ONLY)
    assert out["mAP"] == 0.0 and out["NDS"] == 0.0
    assert all(v == 1.0 for v in out["tp_errors"].values())


def test_one_class_missed() -> None:
    # car perfect, pedestrian never predicted: mAP = (1 + 0) / 2 = 0.5; every TP error = nanmean(0, 1) = 0.5
    # -> NDS = (5 * 0.5 + 5 * 0.5) / 10 = 0.5.
    gts = [gt(5.0), gt(0.0, 6.0, name="pedestrian", size=(0.7, 0.7, 1.75), attr="pedestrian.standing")]
    out = evaluate_detection(gts, [pred(5.0)], CAR_PED)
    assert out["mean_dist_aps"] == {"car": pytest.approx(1.0), "pedestrian": 0.0}
    assert out["tp_errors"]["trans_err"] == pytest.approx(0.5)
    assert out["NDS"] == pytest.approx(0.5)


def test_known_translation_error() -> None:
    # One GT, one prediction 0.6 m away: miss at 0.5 m, hit at 1, 2, 4 m -> AP = (0 + 1 + 1 + 1) / 4 = 0.75;
    # ATE = 0.6 at every recall bin; others 0 -> NDS = (5 * 0.75 + 0.4 + 4) / 10 = 0.815.
    out = evaluate_detection([gt(10.0)], [pred(10.0, 0.6)], CAR_ONLY)
    assert out["label_aps"]["car"] == {0.5: 0.0, 1.0: pytest.approx(1.0), 2.0: pytest.approx(1.0),
                                       4.0: pytest.approx(1.0)}
    assert out["mAP"] == pytest.approx(0.75)
    assert out["tp_errors"]["trans_err"] == pytest.approx(0.6)
    assert out["NDS"] == pytest.approx(0.815)


def test_precision_interpolation_without_envelope() -> None:
    # 3 GT; predictions by score: TP (0.9), FP (0.8), TP (0.7). cum prec = [1, 1/2, 2/3], rec = [1/3, 1/3, 2/3].
    # np.interp on the 101 grid: r < 1/3 -> 1; 1/3 < r < 2/3 -> 1/2 + (r - 1/3) * (1/6) / (1/3); r > 2/3 -> 0.
    # AP = mean over r = 0.11..1.00 of max(p - 0.1, 0) / 0.9 (no monotone envelope, unlike COCO).
    gts = [gt(0.0, 5.0), gt(10.0), gt(20.0)]
    preds = [pred(0.0, 5.0, 0.9), pred(40.0, 0.0, 0.8), pred(10.0, 0.0, 0.7)]
    md = accumulate(gts, preds, "car", 2.0)
    r = np.arange(101) / 100
    p = np.where(r < 1 / 3, 1.0, np.where(r < 2 / 3, 0.5 + (r - 1 / 3) * 0.5, 0.0))
    np.testing.assert_allclose(md.precision, p, atol=1e-12)
    assert md.precision[50] == pytest.approx(0.5 + (0.5 - 1 / 3) * 0.5)  # 0.58333, below the envelope's 2/3
    ap = (sum(0.9 for k in range(11, 34)) + sum(0.5 + (k / 100 - 1 / 3) * 0.5 - 0.1 for k in range(34, 67))) / 90 / 0.9
    assert calc_ap(md, 0.1, 0.1) == pytest.approx(ap)


def test_tp_error_interpolated_by_confidence() -> None:
    # 2 GT, 2 TPs: score 0.9 with 0.2 m error, score 0.5 with 0.4 m. rec = [0.5, 1]; cummean = [0.2, 0.3].
    # On the grid: conf = 0.9 for r <= 0.5, then 0.9 - 0.8 (r - 0.5); err(conf) linear from 0.3 @ 0.5 to 0.2 @ 0.9
    # -> err = 0.2 for r <= 0.5, 0.2 + 0.2 (r - 0.5) above. calc_tp averages bins 11..100:
    # (40 * 0.2 + sum_{k=51..100} (0.2 + 0.002 (k - 50))) / 90 = (18 + 2.55) / 90 = 0.228333...
    gts = [gt(0.0, 10.0), gt(20.0)]
    preds = [pred(0.0, 10.2, 0.9), pred(20.4, 0.0, 0.5)]
    md = accumulate(gts, preds, "car", 2.0)
    assert md.max_recall_ind == 100
    assert calc_tp(md, 0.1, "trans_err") == pytest.approx(20.55 / 90)
    assert calc_ap(md, 0.1, 0.1) == pytest.approx(1.0)


def test_tp_error_is_one_below_min_recall() -> None:
    # 20 GT, 1 TP: max recall 0.05 < 0.1 -> every TP error is 1 (devkit convention).
    gts = [gt(2.0 * i + 4, 0.0) for i in range(20)]
    md = accumulate(gts, [pred(4.0)], "car", 2.0)
    assert md.max_recall_ind == 5
    assert calc_tp(md, 0.1, "trans_err") == 1.0


def test_scale_orientation_velocity_attribute_errors() -> None:
    # Sizes (2, 4, 1.5) vs (2, 4, 3): inter 12, union 12 + 24 - 12 = 24 -> ASE = 0.5.
    assert 1 - scale_iou(gt(0.0), pred(0.0, size=(2.0, 4.0, 3.0))) == pytest.approx(0.5)
    # Car facing the other way: AOE = pi; a barrier has period pi -> 0. Wrap: 3.0 vs -3.0 is 2pi - 6 apart.
    assert yaw_diff(gt(0.0), pred(0.0, yaw=math.pi)) == pytest.approx(math.pi)
    assert yaw_diff(gt(0.0), pred(0.0, yaw=math.pi), period=math.pi) == pytest.approx(0.0, abs=1e-12)
    assert yaw_diff(gt(0.0, yaw=3.0), pred(0.0, yaw=-3.0)) == pytest.approx(2 * math.pi - 6.0)
    assert angle_diff(0.1, 2 * math.pi - 0.1, 2 * math.pi) == pytest.approx(0.2)
    # Through the evaluator: AVE = |(1, 0) - (0, 0)| = 1, AAE = 1 (wrong attribute), AOE = pi/2.
    out = evaluate_detection([gt(5.0, vel=(1.0, 0.0), attr="vehicle.moving")],
                             [pred(5.0, yaw=math.pi / 2, attr="vehicle.parked")], CAR_ONLY)
    te = out["tp_errors"]
    assert (te["vel_err"], te["attr_err"], te["orient_err"]) == (pytest.approx(1.0), pytest.approx(1.0),
                                                                  pytest.approx(math.pi / 2))
    # NDS: mAP 1; scores trans 1, scale 1, orient max(0, 1 - pi/2) = 0, vel 0, attr 0 -> (5 + 2) / 10.
    assert out["NDS"] == pytest.approx(0.7)


def test_barrier_and_cone_conventions() -> None:
    cfg = DetectionConfig(class_names=("barrier", "traffic_cone"),
                          class_range={"barrier": 30.0, "traffic_cone": 30.0})
    gts = [gt(5.0, name="barrier", size=(2.5, 0.5, 1.0), attr=""),
           gt(8.0, name="traffic_cone", size=(0.4, 0.4, 1.0), attr="")]
    preds = [pred(5.0, name="barrier", size=(2.5, 0.5, 1.0), yaw=math.pi, vel=(3.0, 0.0), attr=""),
             pred(8.0, name="traffic_cone", size=(0.4, 0.4, 1.0), yaw=2.0, vel=(3.0, 0.0), attr="")]
    out = evaluate_detection(gts, preds, cfg)
    lt = out["label_tp_errors"]
    assert lt["barrier"]["orient_err"] == pytest.approx(0.0, abs=1e-12)  # period pi
    assert math.isnan(lt["barrier"]["vel_err"]) and math.isnan(lt["barrier"]["attr_err"])
    assert all(math.isnan(lt["traffic_cone"][m]) for m in ("orient_err", "vel_err", "attr_err"))
    # Class means are NaN-means; vel_err is NaN for both classes, so its mean is NaN and its score is
    # max(0.0, 1 - nan) = 0.0 (Python's max keeps the first argument), as in the devkit.
    assert math.isnan(out["tp_errors"]["vel_err"]) and out["tp_scores"]["vel_err"] == 0.0


def test_synthdrive_config_bollard_like_cone() -> None:
    cfg = synthdrive_config()
    assert cfg.undefined_tp["bollard"] == cfg.undefined_tp["traffic_cone"]
    assert cfg.class_range["car"] == pytest.approx(50 * 0.6) and cfg.class_range["bollard"] == pytest.approx(18.0)


def test_filter_range_and_zero_point_gt() -> None:
    # Cone at 31 m (range 30) dropped; car at 49.9 m kept; GT with 0 points dropped; prediction (num_pts -1) kept.
    boxes = [gt(31.0, name="traffic_cone"), gt(0.0, 49.9), gt(3.0, pts=0), pred(3.0)]
    kept = filter_boxes(boxes, DetectionConfig())
    assert kept == [boxes[1], boxes[3]]
    # A prediction on a zero-point GT is then a false positive: AP 0 for that class.
    assert evaluate_detection([gt(3.0, pts=0)], [pred(3.0)], CAR_ONLY)["mAP"] == 0.0


def test_nds_formula_and_cummean() -> None:
    # Spec section 7: mAP 0.5 and all five TP errors 0.2 -> (2.5 + 4.0) / 10 = 0.65; errors > 1 clip to score 0.
    assert nds_from_parts(0.5, {m: 0.2 for m in "abcde"}) == pytest.approx(0.65)
    assert nds_from_parts(1.0, {m: 3.0 for m in "abcde"}) == pytest.approx(0.5)
    np.testing.assert_allclose(cummean(np.array([1.0, np.nan, 3.0])), [1.0, 1.0, 2.0])
    np.testing.assert_allclose(cummean(np.array([np.nan, np.nan])), [1.0, 1.0])
    assert MetricData.no_predictions().max_recall_ind == 0


def test_too_many_predictions_refused() -> None:
    preds = [pred(0.1 * i, score=0.5) for i in range(501)]
    with pytest.raises(InputError, match="max_boxes_per_sample"):
        evaluate_detection([gt(1.0)], preds, CAR_ONLY)


def test_attribute_from_velocity() -> None:
    assert attribute_from_velocity("car", (0.3, 0.0)) == "vehicle.moving"
    assert attribute_from_velocity("car", (0.1, 0.1)) == "vehicle.parked"  # |v| = 0.141 <= 0.2
    assert attribute_from_velocity("bus", (0.0, 0.0)) == "vehicle.stopped"
    assert attribute_from_velocity("pedestrian", (0.0, 0.0)) == "pedestrian.standing"
    assert attribute_from_velocity("pedestrian", (1.0, 0.0)) == "pedestrian.moving"
    assert attribute_from_velocity("bicycle", (1.0, 0.0)) == "cycle.with_rider"
    assert attribute_from_velocity("barrier", (1.0, 0.0)) == ""
