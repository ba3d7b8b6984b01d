"""cmt's nuScenes annotation reader (nuscenes.py, spec 4.2 / component 15) on a hand-built nuScenes-layout folder
(nuscenes_tiny.write_annotated_nuscenes): LiDAR-frame boxes, velocities and splits by hand, the category mapping,
valid_flag and the training filter, the detection_cvpr_2019 scoring config, the bad-input catalogue, and
`tenfold train` + `tenfold eval` through the CLI.

Pose of every sample: ego -> global R = Rz(90 deg), t = (100, 200, 0); LIDAR_TOP -> ego R = Rz(90 deg),
t = (1, 0, 2). A global point p goes to the LiDAR frame as Rz(-90) (Rz(-90) (p - t_eg) - t_le) with
Rz(-90): (x, y) -> (y, -x); a global yaw psi becomes psi - 180 deg; a global velocity (vx, vy) becomes (-vx, -vy).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tenfold.cli import main
from tenfold.core.config import make_config, override
from tenfold.systems.cmt import data, nuscenes
from tenfold.systems.cmt.box_coder import from_nuscenes
from tenfold.systems.cmt.config import PROFILES, Config
from tenfold.systems.cmt.metrics import NUSCENES_CLASSES
from tests.badinput import assert_refused
from tests.systems.cmt.nuscenes_tiny import VERSION, edit_table, write_annotated_nuscenes

CLASSES = ("car", "truck", "pedestrian", "traffic_cone", "barrier")


@pytest.fixture
def root(tmp_path) -> Path:
    return write_annotated_nuscenes(tmp_path / "ns")


def ns_cfg(root: Path, **over) -> Config:
    return make_config(Config, PROFILES, "smoke", {"data.source": "nuscenes", "data.root": str(root),
                                                     "data.classes": CLASSES, **over})


def infos_by_token(root: Path, split: str, **over) -> dict[str, dict]:
    _, infos = nuscenes.nuscenes_infos(ns_cfg(root, **over), split)
    return {i["token"]: i for i in infos}


def test_box_in_the_lidar_frame_by_hand(root):
    """a_car2: global centre (100, 210, 1), yaw 180 deg, (w, l, h) = (2, 4, 1.5).
    p - t_eg = (0, 10, 1) -> Rz(-90) -> (10, 0, 1) (ego frame) -> - t_le = (9, 0, -1) -> Rz(-90) -> (0, -9, -1);
    yaw 180 - 90 - 90 = 0; (dx, dy, dz) = (l, w, h) = (4, 2, 1.5), as box_coder.from_nuscenes orders them.
    a_tr2: (90, 200, 1.5), yaw 90 deg: (-10, 0, 1.5) -> (0, 10, 1.5) -> (-1, 10, -0.5) -> (10, 1, -0.5); yaw -90."""
    s2 = infos_by_token(root, "train")["s2"]
    assert s2["gt_names"] == ["car", "truck"]
    np.testing.assert_allclose(s2["gt_boxes"][0], [0, -9, -1, 4, 2, 1.5, 0], atol=1e-12)
    np.testing.assert_allclose(s2["gt_boxes"][1], [10, 1, -0.5, 6, 2.5, 3, -math.pi / 2], atol=1e-12)
    sizes = from_nuscenes({"translation": (0, 0, 0), "size": (2, 4, 1.5), "rotation": (1, 0, 0, 0)})[3:6]
    np.testing.assert_allclose(s2["gt_boxes"][0, 3:6], sizes)


def test_centre_and_yaw_through_the_transform_helper():
    """box_to_lidar alone, identity LiDAR calibration, ego yaw 90 deg at (10, 0, 0): global (10, 5, 0) with yaw
    30 deg -> Rz(-90) (0, 5, 0) = (5, 0, 0), yaw 30 - 90 = -60 deg."""
    c45 = math.sqrt(0.5)
    yaw30 = np.array([math.cos(math.pi / 12), 0, 0, math.sin(math.pi / 12)])
    centre, yaw = nuscenes.box_to_lidar(np.array([10.0, 5.0, 0.0]), yaw30,
                                        {"translation": [10, 0, 0], "rotation": [c45, 0, 0, c45]},
                                        {"translation": [0, 0, 0], "rotation": [1, 0, 0, 0]})
    np.testing.assert_allclose(centre, [5, 0, 0], atol=1e-12)
    assert yaw == pytest.approx(-math.pi / 3, abs=1e-12)


def test_velocity_from_prev_and_next_by_hand(root):
    """Sample times s1 1 s, s2 1.5 s, s3 2 s, s4 4 s; LiDAR frame velocity = -(global velocity).
    car: y 206 (s1), 210 (s2), 216 (s3): s1 forward (210 - 206) / 0.5 = 8; s2 centred (216 - 206) / 1 = 10;
    s3 backward (216 - 210) / 0.5 = 12 -> (0, -8), (0, -10), (0, -12).
    truck: y 200 (s2), 205 (s3), 215 (s4): s3 centred (215 - 200) / 2.5 s = 6 (2.5 <= 2 x 1.5) -> (0, -6);
    s4 backward over 2 s > 1.5 -> NaN. pedestrian s3 -> s4 (2 s apart, one-sided) -> NaN twice."""
    i = infos_by_token(root, "train")
    np.testing.assert_allclose(i["s1"]["gt_velocity"], [[0, -8]], atol=1e-9)
    np.testing.assert_allclose(i["s2"]["gt_velocity"][0], [0, -10], atol=1e-9)
    np.testing.assert_allclose(i["s3"]["gt_velocity"][:2], [[0, -12], [0, -6]], atol=1e-9)
    assert np.isnan(i["s3"]["gt_velocity"][2]).all() and np.isnan(i["s4"]["gt_velocity"]).all()
    tabs = data.nuscenes_tables(root, ns_cfg(root))
    ann = nuscenes.read_annotation_tables(tabs)
    np.testing.assert_allclose(nuscenes.box_velocity(ann, tabs, "a_car2"), [0, 10, 0], atol=1e-9)  # global
    assert np.isnan(nuscenes.box_velocity(ann, tabs, "a_cone")).all()  # no neighbours


def test_unknown_velocity_is_zero_for_training_and_marked_for_scoring(root):
    """mmdet3d sets NaN GT velocities to 0 for training; the sample marks them (gt_vel_valid False) and
    to_detboxes turns them back into NaN, the devkit's unknown velocity."""
    cfg = ns_cfg(root)
    s4 = {s["token"]: s for s in data.training_samples(cfg, "train")}["s4"]
    assert s4["gt_names"] == ["truck", "pedestrian"] and s4["gt_vel_valid"].tolist() == [False, False]
    torch.testing.assert_close(s4["gt_boxes"][:, 7:9], torch.zeros(2, 2))
    (truck, _) = data.to_detboxes([s4], None, cfg)
    assert math.isnan(truck.velocity[0]) and math.isnan(truck.velocity[1])


def test_category_mapping_and_dropping(root):
    """The devkit's 14 mapped categories -> 10 classes; animal and police cars are dropped, not mislabelled."""
    assert set(nuscenes.DETECTION_NAMES.values()) == set(NUSCENES_CLASSES) and len(nuscenes.DETECTION_NAMES) == 14
    assert nuscenes.DETECTION_NAMES["human.pedestrian.police_officer"] == "pedestrian"
    assert nuscenes.DETECTION_NAMES["vehicle.bus.bendy"] == "bus"
    assert nuscenes.DETECTION_NAMES["movable_object.trafficcone"] == "traffic_cone"
    for dropped in ("animal", "vehicle.emergency.police", "human.pedestrian.stroller", "static_object.bicycle_rack"):
        assert dropped not in nuscenes.DETECTION_NAMES
    s2 = infos_by_token(root, "train")["s2"]  # s2 holds a_car2, a_tr2, a_animal, a_police
    assert s2["ann_tokens"] == ["a_car2", "a_tr2"] and s2["gt_attrs"] == ["vehicle.moving", ""]


def test_valid_flag_and_the_training_filter(root):
    """s3: car (10 LiDAR + 1 radar), truck (0 + 0), pedestrian (0 + 3): valid_flag = [T, F, T]. Training keeps
    num_lidar_pts > 0 (CMT's use_valid_flag=False) -> car only; evaluation keeps all three with num_pts
    [11, 0, 3] (the metric drops the 0). With a +-12 m BEV range the car at y = -15 m leaves training too."""
    cfg = ns_cfg(root)
    s3 = infos_by_token(root, "train")["s3"]
    assert s3["valid_flag"].tolist() == [True, False, True]
    assert nuscenes.training_targets(s3, cfg)["names"] == ["car"]
    ev = nuscenes.evaluation_gt(s3)
    assert ev["names"] == ["car", "truck", "pedestrian"] and ev["num_pts"].tolist() == [11, 0, 3]
    small = override(cfg, {"model.pc_range": (-12.0, -12.0, -3.0, 12.0, 12.0, 2.0)})
    assert nuscenes.training_targets(s3, small)["names"] == []
    assert nuscenes.training_targets(infos_by_token(root, "train")["s1"], small)["names"] == ["car"]  # y = -5


def test_mini_split(root):
    """mini_train holds scene-0061 (s1-s4), mini_val scene-0103 (s5); scene-0001 (s6) is in neither."""
    assert len(nuscenes.MINI_SPLITS["train"]) == 8 and nuscenes.MINI_SPLITS["val"] == ("scene-0103", "scene-0916")
    assert list(infos_by_token(root, "train")) == ["s1", "s2", "s3", "s4"]
    assert list(infos_by_token(root, "val")) == ["s5"]


def test_split_file_for_other_versions(root, tmp_path):
    (root / VERSION).rename(root / "v1.0-trainval")
    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps({"train": ["scene-0001"], "val": ["scene-0061", "scene-0103"]}))
    over = {"data.version": "v1.0-trainval", "data.split_file": str(split_file)}
    assert list(infos_by_token(root, "train", **over)) == ["s6"]
    assert list(infos_by_token(root, "val", **over)) == ["s1", "s2", "s3", "s4", "s5"]


def test_nuscenes_scores_with_the_detection_cvpr_2019_ranges(root):
    cfg = ns_cfg(root)
    dc = data.detection_config(cfg)
    assert dc.class_names == CLASSES
    assert dict(dc.class_range) == {"car": 50.0, "truck": 50.0, "pedestrian": 40.0, "traffic_cone": 30.0,
                                    "barrier": 30.0}
    synth = data.detection_config(make_config(Config, PROFILES, "smoke"))
    assert synth.class_range["car"] == 30.0  # SynthDrive keeps its x 0.6 ranges


def test_class_range_distance_is_from_the_ego_origin(root):
    """a_car2 is 9 m from the LiDAR but 10 m from the ego origin (global (100, 210) - ego (100, 200)): the devkit
    measures the class range from the ego pose."""
    cfg = ns_cfg(root)
    s2 = {s["token"]: s for s in data.training_samples(cfg, "train")}["s2"]
    car = data.to_detboxes([s2], None, cfg)[0]
    assert math.hypot(*car.translation[:2]) == pytest.approx(9.0) and car.ego_dist == pytest.approx(10.0)


def test_perfect_predictions_ignore_unknown_gt_velocities(root):
    """Predictions = the train-split GT of car and truck, the velocity of the truck whose GT velocity is unknown
    (s4) off by 5 m/s: mAP 1, ATE / ASE / AOE / AVE 0 (the unknown velocity is ignored), AAE: car 0 (GT
    'vehicle.moving', predicted moving from 8-12 m/s), truck 1 (no GT attribute anywhere: the devkit's all-NaN
    cummean is 1) -> mAAE 0.5 -> NDS = (5 x 1 + 4 + 0.5) / 10 = 0.95."""
    cfg = ns_cfg(root, **{"data.classes": ("car", "truck")})
    samples = data.training_samples(cfg, "train")
    preds = []
    for s in samples:
        b = s["gt_boxes"].clone()
        b[:, 2] -= b[:, 5] / 2  # predictions carry the bottom centre
        b[~torch.as_tensor(s["gt_vel_valid"]), 7] += 5.0
        preds.append({"boxes": b, "scores": torch.linspace(0.9, 0.5, len(b)), "labels": s["gt_labels"]})
    r = data.score(samples, preds, cfg)
    assert r["mAP"] == pytest.approx(1.0)
    for m in ("trans_err", "scale_err", "orient_err", "vel_err"):
        assert r["tp_errors"][m] == pytest.approx(0.0, abs=1e-9), m
    assert r["tp_errors"]["attr_err"] == pytest.approx(0.5) and r["NDS"] == pytest.approx(0.95)


def test_config_classes_for_nuscenes(capsys, tmp_path):
    """The SynthDrive default class list becomes the 10 nuScenes classes; a SynthDrive-only class is refused."""
    assert override(Config(), {"data.source": "nuscenes"}).data.classes == NUSCENES_CLASSES
    assert_refused(["train", "cmt", "--profile", "smoke", "--out", str(tmp_path / "run"), "--set",
                    "data.source=nuscenes"], ["data.classes", "bollard"], tmp_path / "run", capsys)


# ----------------------------------------------------------------------------------------- bad inputs

def _train(root: Path, run: Path, *sets: str) -> list[str]:
    argv = ["train", "cmt", "--profile", "smoke", "--out", str(run), "--set", "data.source=nuscenes",
            "--set", f"data.root={root}", "--set", "data.classes=" + ",".join(CLASSES)]
    for s in sets:
        argv += ["--set", s]
    return argv


def _edit_ann(root: Path, token: str, **fields) -> None:
    edit_table(root, "sample_annotation", lambda rows: [{**r, **fields} if r["token"] == token else r for r in rows])


@pytest.mark.parametrize("table", ["sample_annotation", "instance", "category", "attribute", "scene"])
def test_missing_annotation_table(root, tmp_path, capsys, table):
    (root / VERSION / f"{table}.json").unlink()
    assert_refused(_train(root, tmp_path / "run"), [f"{table}.json", "table missing"], tmp_path / "run", capsys)


@pytest.mark.parametrize("field, value, file", [
    ("sample_token", "nope", "sample.json"), ("instance_token", "nope", "instance.json"),
    ("attribute_tokens", ["nope"], "attribute.json"), ("next", "nope", "sample_annotation.json")])
def test_annotation_token_does_not_resolve(root, tmp_path, capsys, field, value, file):
    _edit_ann(root, "a_car2", **{field: value})
    assert_refused(_train(root, tmp_path / "run"), ["sample_annotation.json", "a_car2", repr(field), file],
                   tmp_path / "run", capsys)


def test_category_token_does_not_resolve(root, tmp_path, capsys):
    edit_table(root, "instance", lambda rows: [{**r, "category_token": "nope"} if r["token"] == "inst_cone" else r
                                               for r in rows])
    assert_refused(_train(root, tmp_path / "run"), ["instance.json", "inst_cone", "'category_token'",
                                                    "category.json"], tmp_path / "run", capsys)


@pytest.mark.parametrize("rotation, needle", [([0.5, 0, 0, 0.5], "norm 0.7071"), ([1, 0, 0], "4-vector"),
                                              ("x", "4-vector"), ([1, 0, 0, float("nan")], "4-vector")])
def test_bad_annotation_rotation(root, tmp_path, capsys, rotation, needle):
    _edit_ann(root, "a_ped4", rotation=rotation)
    assert_refused(_train(root, tmp_path / "run"), ["sample_annotation.json", "a_ped4", "'rotation'", needle],
                   tmp_path / "run", capsys)


@pytest.mark.parametrize("size", [[2, 0, 1.5], [2, -4, 1.5]])
def test_non_positive_size(root, tmp_path, capsys, size):
    _edit_ann(root, "a_cone", size=size)
    assert_refused(_train(root, tmp_path / "run"), ["sample_annotation.json", "a_cone", "'size'", "> 0"],
                   tmp_path / "run", capsys)


def test_negative_point_count(root, tmp_path, capsys):
    _edit_ann(root, "a_cone", num_radar_pts=-1)
    assert_refused(_train(root, tmp_path / "run"), ["a_cone", "'num_radar_pts'", "integer >= 0"], tmp_path / "run",
                   capsys)


def test_empty_point_file_refused_for_training(root, tmp_path, capsys):
    (root / "samples/LIDAR_TOP/key.pcd.bin").write_bytes(b"")
    assert_refused(_train(root, tmp_path / "run"), ["key.pcd.bin", "empty point file"], tmp_path / "run", capsys)


def test_missing_lidar_calibration_entry(root, tmp_path, capsys):
    edit_table(root, "calibrated_sensor", lambda rows: [r for r in rows if r["token"] != "cal_LIDAR_TOP"])
    assert_refused(_train(root, tmp_path / "run"), ["calibrated_sensor.json", "cal_LIDAR_TOP"], tmp_path / "run",
                   capsys)


def test_bad_ego_pose_rotation(root, tmp_path, capsys):
    edit_table(root, "ego_pose", lambda rows: [{**r, "rotation": [2, 0, 0, 0]} if r["token"] == "pose_a" else r
                                               for r in rows])
    assert_refused(_train(root, tmp_path / "run"), ["ego_pose.json", "pose_a", "rotation", "norm 2"],
                   tmp_path / "run", capsys)


def test_other_version_without_split_file(root, tmp_path, capsys):
    (root / VERSION).rename(root / "v1.0-trainval")
    assert_refused(_train(root, tmp_path / "run", "data.version=v1.0-trainval"), ["v1.0-trainval",
                                                                               "data.split_file"],
                   tmp_path / "run", capsys)


def test_split_file_without_the_split(root, tmp_path, capsys):
    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps({"train": ["scene-0061"]}))
    assert_refused(_train(root, tmp_path / "run", f"data.split_file={split_file}"),
                   [str(split_file), "'val'"], tmp_path / "run", capsys)


def test_nuscenes_without_root(tmp_path, capsys):
    assert_refused(["train", "cmt", "--profile", "smoke", "--out", str(tmp_path / "run"), "--set",
                    "data.source=nuscenes", "--set", "data.classes=car"], ["data.root"], tmp_path / "run", capsys)


# ----------------------------------------------------------------------------------------- CLI end to end

def test_train_and_eval_on_a_nuscenes_folder_through_the_cli(root, tmp_path):
    """`tenfold train cmt --set data.source=nuscenes ...` trains on mini_train (s1-s4), scores mini_val (s5: a
    cone and a barrier); `tenfold eval` rebuilds the run's config (source, root, classes) and writes eval.json."""
    run = tmp_path / "run"
    assert main(["--quiet", *_train(root, run)]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"]["source"] == "nuscenes" and cfg["data"]["classes"] == list(CLASSES)
    assert main(["--quiet", "eval", "--run", str(run)]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert 0.0 <= ev["NDS"] <= 1.0 and set(ev["class_AP"]) == set(CLASSES)
    assert {"points_zeroed", "image_zeroed"} <= set(ev)


# ----------------------------------------------------------------------------------------- devkit parity

def test_infos_equal_mmdet3d_converter_on_devkit_boxes(root):
    """Parity with the mmdet3d converter run on nuscenes-devkit 1.2.0 (`NuScenes.get_sample_data` boxes,
    pyquaternion `yaw_pitch_roll[0]`, `box_velocity`) with a tilted ego pose and a tilted LiDAR (so the yaw
    formula matters). Skipped without the devkit; the cmt README says how to run it (numpy < 2 pin)."""
    pytest.importorskip("nuscenes.nuscenes", reason="nuscenes-devkit not installed")
    from nuscenes.nuscenes import NuScenes
    from pyquaternion import Quaternion
    from scipy.spatial.transform import Rotation

    def quat(zyx_deg):
        x, y, z, w = Rotation.from_euler("ZYX", zyx_deg, degrees=True).as_quat()
        return [float(w), float(x), float(y), float(z)]

    edit_table(root, "ego_pose", lambda rows: [{**r, "rotation": quat([80, 3, -2])} if r["token"] == "pose_a"
                                               else r for r in rows])
    edit_table(root, "calibrated_sensor", lambda rows: [{**r, "rotation": quat([-89, 1, 2])}
                                                        if r["token"] == "cal_LIDAR_TOP" else r for r in rows])
    edit_table(root, "scene", lambda rows: [{**r, "log_token": "log0", "nbr_samples": 0, "description": ""}
                                            for r in rows])
    (root / "maps").mkdir()
    (root / "maps/m.png").write_bytes(b"")
    for name, rows in {"log": [{"token": "log0", "logfile": "", "vehicle": "", "date_captured": "",
                                "location": "x"}],
                       "map": [{"token": "map0", "log_tokens": ["log0"], "category": "", "filename": "maps/m.png"}],
                       "visibility": [{"token": "4", "level": "v80-100", "description": ""}]}.items():
        (root / VERSION / f"{name}.json").write_text(json.dumps(rows))
    nusc = NuScenes(version=VERSION, dataroot=str(root), verbose=False)
    for split in ("train", "val"):
        for info in infos_by_token(root, split).values():
            sample = nusc.get("sample", info["token"])
            sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
            e2g = Quaternion(nusc.get("ego_pose", sd["ego_pose_token"])["rotation"]).rotation_matrix
            l2e = Quaternion(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])["rotation"]).rotation_matrix
            _, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
            keep = [k for k, b in enumerate(boxes) if b.name in nuscenes.DETECTION_NAMES]
            boxes = [boxes[k] for k in keep]
            anns = [sample["anns"][k] for k in keep]
            ref = np.array([[*b.center, *b.wlh[[1, 0, 2]], b.orientation.yaw_pitch_roll[0]] for b in boxes])
            vel = np.array([np.array([*nusc.box_velocity(t)[:2], 0.0]) @ np.linalg.inv(e2g).T @ np.linalg.inv(l2e).T
                            for t in anns]).reshape(-1, 3)[:, :2]
            assert info["ann_tokens"] == anns
            assert info["gt_names"] == [nuscenes.DETECTION_NAMES[b.name] for b in boxes]
            np.testing.assert_allclose(info["gt_boxes"], ref.reshape(-1, 7), atol=1e-9)
            np.testing.assert_allclose(info["gt_velocity"], vel, atol=1e-9)  # NaN == NaN here
