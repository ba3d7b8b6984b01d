"""cmt spec 6 rows "fusion vs LiDAR-only at far range" and "DN on vs off at 50 % of the schedule": the distance-band
mAP on hand-made boxes, the far band of each profile, the mid-schedule score, and both rows in a smoke reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tenfold.core.config import make_config
from tenfold.systems.cmt.config import PROFILES, Config
from tenfold.systems.cmt.metrics import DetBox, DetectionConfig, distance_band, evaluate_detection, filter_boxes
from tenfold.systems.cmt.reproduce import far_band, reproduce
from tenfold.systems.cmt.train import eval_step

CAR = DetectionConfig(class_names=("car",), class_range={"car": 30.0})


def car(x: float, score: float = -1.0, ego_x: float | None = None) -> DetBox:
    ego = None if ego_x is None else (ego_x, 0.0, 0.0)
    return DetBox("s", (x, 0.0, 0.0), (2.0, 4.0, 1.5), 0.0, name="car", score=score,
                  num_pts=10 if score < 0 else -1, ego_translation=ego)


GT = [car(5.0), car(25.0)]  # one car 5 m from the ego, one 25 m
NEAR = DetectionConfig(class_names=("car",), class_range={"car": 20.0})  # the complement band [0, 20)
FAR = distance_band(CAR, {"car": 20.0})  # [20, 30)


def test_far_band_map_by_hand_prediction_on_the_far_car():
    """One prediction 0.3 m from the far car (a TP at every threshold 0.5 / 1 / 2 / 4 m).
    Far band: 1 GT, 1 TP -> precision 1 at every recall -> AP 1.
    No band (devkit): 2 GT, recall 0.5; the 101-point grid above the 0.1 recall clip has 90 bins, the 40 with
    recall <= 0.5 keep precision 1 -> AP = 40 (1 - 0.1) / 90 / (1 - 0.1) = 4 / 9.
    Near band: only the near car is scored and the prediction (25.3 m) is filtered out -> AP 0."""
    pred = [car(25.3, 0.9)]
    assert evaluate_detection(GT, pred, FAR)["mAP"] == pytest.approx(1.0)
    assert evaluate_detection(GT, pred, CAR)["mAP"] == pytest.approx(4 / 9)
    assert evaluate_detection(GT, pred, NEAR)["mAP"] == pytest.approx(0.0)


def test_far_band_map_by_hand_prediction_on_the_near_car():
    """The same prediction on the near car instead: far band AP 0 (the far car unmatched, the prediction outside
    the band), near band AP 1, no band 4 / 9 again."""
    pred = [car(5.3, 0.9)]
    assert evaluate_detection(GT, pred, FAR)["mAP"] == pytest.approx(0.0)
    assert evaluate_detection(GT, pred, NEAR)["mAP"] == pytest.approx(1.0)
    assert evaluate_detection(GT, pred, CAR)["mAP"] == pytest.approx(4 / 9)


def test_band_is_half_open_and_measured_from_the_ego():
    """[20, 30) and [0, 20) partition the boxes: a car at exactly 20 m is far, not near. The distance is the
    devkit's ego distance: a box at x = 25 m whose ego-relative centre is 15 m away is near."""
    at_20 = car(20.0)
    assert filter_boxes([at_20], FAR) == [at_20] and filter_boxes([at_20], NEAR) == []
    moved = car(25.0, ego_x=15.0)
    assert filter_boxes([moved], FAR) == [] and filter_boxes([moved], NEAR) == [moved]
    assert FAR.class_min_range == {"car": 20.0} and CAR.class_min_range == {}  # default: the devkit filter


def test_empty_bands_leave_the_mean_and_bad_bands_are_refused():
    """SynthDrive ranges: car / truck / bus 30 m, pedestrian / bicycle 24 m, barrier / cone / bollard 18 m; a 20 m
    band keeps the first five classes only."""
    from tenfold.systems.cmt.metrics import synthdrive_config

    band = distance_band(synthdrive_config(), {c: 20.0 for c in synthdrive_config().class_names})
    assert band.class_names == ("car", "truck", "bus", "pedestrian", "bicycle")
    with pytest.raises(ValueError, match="no class"):
        distance_band(CAR, {"car": 30.0})
    with pytest.raises(ValueError, match="leaves no band"):
        DetectionConfig(class_names=("car",), class_range={"car": 30.0}, class_min_range={"car": 30.0})
    with pytest.raises(ValueError, match=">= 0"):
        DetectionConfig(class_names=("car",), class_range={"car": 30.0}, class_min_range={"car": -1.0})


def test_far_band_of_each_profile():
    """Quick / smoke world (objects within |x|, |y| <= 14 m, at most 19.8 m away): the spec's 20 m of a 30 m scene
    scaled to 14 m, 20 x 14 / 30 = 9.333 m, for all four classes (ranges 30 / 24 / 18 / 18 m). Full: the spec's
    20 m (classes with an 18 m range have no band)."""
    quick = far_band(make_config(Config, PROFILES, "quick", {}))
    assert quick.class_names == ("car", "pedestrian", "traffic_cone", "bollard")
    assert dict(quick.class_min_range) == pytest.approx({c: 28 / 3 for c in quick.class_names})
    full = far_band(make_config(Config, PROFILES, "full", {}))
    assert dict(full.class_min_range) == {c: 20.0 for c in ("car", "truck", "bus", "pedestrian", "bicycle")}


def test_mid_schedule_step_by_hand():
    # round(0.5 x 800) = 400; round(0.5 x 3) = 2 (round half to even); at least update 1; 0 = no mid score.
    cfg = make_config(Config, PROFILES, "smoke", {"train.eval_fraction": 0.5})
    assert (eval_step(cfg, 800), eval_step(cfg, 3)) == (400, 2)
    assert eval_step(make_config(Config, PROFILES, "smoke", {"train.eval_fraction": 0.01}), 3) == 1
    assert eval_step(make_config(Config, PROFILES, "smoke", {}), 800) == 0


def _smoke_reproduce(out: Path, dn: bool) -> list:
    """The smoke reproduce with fusion / LiDAR / camera (+ fusion without DN), no plots: a few seconds."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"reproduce.plots": False, "reproduce.include_2d_pe": False,
                           "reproduce.include_no_modal_mask": False, "reproduce.include_dn_ablation": dn}.items():
            mp.setitem(PROFILES["smoke"], key, value)
        return reproduce("smoke", 5, out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, list]]:
    out = {}
    for dn in (True, False):
        folder = tmp_path_factory.mktemp(f"cmt_rows_dn{int(dn)}")
        out["on" if dn else "off"] = (folder, _smoke_reproduce(folder, dn))
    return out


def by_claim(rows: list, prefix: str):
    (hit,) = [r for r in rows if r.claim.startswith(prefix)]
    return hit


def test_far_range_row_has_its_reference_and_equal_budgets(runs):
    _, rows = runs["off"]
    row = by_claim(rows, "C9 ")
    assert (row.method, row.baseline, row.metric) == ("fusion", "lidar", "far-range mAP")
    assert row.reference == "untrained fusion model (initial weights)" and 0.0 <= row.reference_value <= 1.0
    assert row.budget["method"]["updates"] == row.budget["baseline"]["updates"] == 3  # smoke train.steps
    assert row.budget["method"]["train_scenes"] == row.budget["baseline"]["train_scenes"] == 4
    assert row.details == "far band: car >= 9.33333 m, pedestrian >= 9.33333 m, traffic_cone >= 9.33333 m, " \
                          "bollard >= 9.33333 m"
    assert 0.0 <= row.method_value <= 1.0 and 0.0 <= row.baseline_value <= 1.0


def test_dn_flag_adds_its_row_scored_at_mid_schedule(runs):
    folder, rows = runs["on"]
    _, rows_off = runs["off"]
    # Flag off: C1-C5 + C9 (2D PE and no-ModalMask3D arms off here); flag on adds C10 and its arm.
    assert [r.claim.split()[0] for r in rows_off] == ["C1", "C2", "C3", "C4", "C5", "C9"]
    assert [r.claim.split()[0] for r in rows] == ["C1", "C2", "C3", "C4", "C5", "C9", "C10"]
    assert not (runs["off"][0] / "fusion_nodn").exists()
    row = by_claim(rows, "C10 ")
    on = json.loads((folder / "fusion" / "summary.json").read_text())["mid_eval"]
    off = json.loads((folder / "fusion_nodn" / "summary.json").read_text())["mid_eval"]
    assert (row.method_value, row.baseline_value) == (on["mAP"], off["mAP"])
    # round(0.5 x 3) = 2 of the 3 smoke updates, for both arms
    assert on["step"] == off["step"] == 2
    for side in ("method", "baseline"):
        assert (row.budget[side]["updates"], row.budget[side]["schedule_updates"]) == (2, 3)
    assert row.reference == "untrained fusion model (initial weights)" and row.reference_value >= 0.0
    cfg_on = json.loads((folder / "fusion" / "config.json").read_text())["train"]
    cfg_off = json.loads((folder / "fusion_nodn" / "config.json").read_text())["train"]
    assert {k for k in cfg_on if cfg_on[k] != cfg_off[k]} == {"dn_scalar"} and cfg_off["dn_scalar"] == 0
    assert make_config(Config, PROFILES, "quick", {}).reproduce.include_dn_ablation is False
    assert make_config(Config, PROFILES, "full", {}).reproduce.include_dn_ablation is True


def test_mid_schedule_score_does_not_change_training(runs):
    """The fusion arm scored at mid-schedule (flag on) ends with the same weights as without it (flag off)."""
    from tenfold.core.runs import RunDir

    a = RunDir(runs["on"][0] / "fusion").load_checkpoint()["model"]
    b = RunDir(runs["off"][0] / "fusion").load_checkpoint()["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
