"""A tiny nuScenes-layout folder for the cmt reader tests: one sample, LIDAR_TOP + one sweep, six cameras
(identity ego poses; LiDAR at the ego origin; cameras at the SynthDrive rig, 0.3 m below the LiDAR)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from tenfold.systems.cmt.synthdrive import CAMERA_NAMES, CAMERA_YAWS_DEG, camera_calibration

VERSION = "v1.0-mini"


def quat_wxyz(rot: np.ndarray) -> list[float]:
    x, y, z, w = Rotation.from_matrix(rot).as_quat()
    return [float(w), float(x), float(y), float(z)]


def write_tiny_nuscenes(root: Path, image_hw: tuple[int, int] = (16, 32)) -> Path:
    h, w = image_hw
    meta = root / VERSION
    meta.mkdir(parents=True)
    for d in ("samples/LIDAR_TOP", "sweeps/LIDAR_TOP", *[f"samples/{c}" for c in CAMERA_NAMES]):
        (root / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-10, 10, (200, 3)), rng.uniform(0, 1, (200, 2))], axis=1).astype(np.float32)
    pts.tofile(root / "samples/LIDAR_TOP/key.pcd.bin")
    pts.tofile(root / "sweeps/LIDAR_TOP/sweep.pcd.bin")
    sensors = [{"token": "sen_LIDAR_TOP", "channel": "LIDAR_TOP", "modality": "lidar"}]
    cals = [{"token": "cal_LIDAR_TOP", "sensor_token": "sen_LIDAR_TOP", "translation": [0, 0, 0],
             "rotation": [1, 0, 0, 0], "camera_intrinsic": []}]
    poses = [{"token": "pose0", "translation": [0, 0, 0], "rotation": [1, 0, 0, 0], "timestamp": 0}]
    sds = [{"token": "sd_lidar", "sample_token": "s1", "ego_pose_token": "pose0",
            "calibrated_sensor_token": "cal_LIDAR_TOP", "filename": "samples/LIDAR_TOP/key.pcd.bin",
            "is_key_frame": True, "timestamp": 500000, "prev": "sd_sweep", "width": 0, "height": 0},
           {"token": "sd_sweep", "sample_token": "s1", "ego_pose_token": "pose0",
            "calibrated_sensor_token": "cal_LIDAR_TOP", "filename": "sweeps/LIDAR_TOP/sweep.pcd.bin",
            "is_key_frame": False, "timestamp": 250000, "prev": "", "width": 0, "height": 0}]
    for cam, yaw in zip(CAMERA_NAMES, CAMERA_YAWS_DEG):
        c = camera_calibration(yaw, image_hw)
        sensors.append({"token": f"sen_{cam}", "channel": cam, "modality": "camera"})
        cals.append({"token": f"cal_{cam}", "sensor_token": f"sen_{cam}",
                     "translation": c["sensor2lidar_translation"].tolist(),
                     "rotation": quat_wxyz(c["sensor2lidar_rotation"]), "camera_intrinsic": c["cam_intrinsic"].tolist()})
        fname = f"samples/{cam}/img.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / fname)
        sds.append({"token": f"sd_{cam}", "sample_token": "s1", "ego_pose_token": "pose0",
                    "calibrated_sensor_token": f"cal_{cam}", "filename": fname, "is_key_frame": True,
                    "timestamp": 500000, "prev": "", "width": w, "height": h})
    tables = {"sample": [{"token": "s1", "timestamp": 500000}], "sample_data": sds, "calibrated_sensor": cals,
              "ego_pose": poses, "sensor": sensors}
    for name, rows in tables.items():
        (meta / f"{name}.json").write_text(json.dumps(rows))
    return root


def edit_table(root: Path, name: str, fn) -> None:
    path = root / VERSION / f"{name}.json"
    path.write_text(json.dumps(fn(json.loads(path.read_text()))))


# ----------------------------------------------------------------------------------------- annotated folder
# The annotated folder (`write_annotated_nuscenes`): every sample shares one hand-chosen pose,
#   ego -> global: R = Rz(90 deg), t = (100, 200, 0);   LIDAR_TOP -> ego: R = Rz(90 deg), t = (1, 0, 2),
# so a global point p maps to the LiDAR frame as Rz(-90) (Rz(-90) (p - t_eg) - t_le), Rz(-90): (x, y) -> (y, -x),
# and a global yaw psi becomes psi - 180 deg. Scenes: scene-0061 (mini_train: s1 t = 1 s, s2 1.5 s, s3 2 s,
# s4 4 s), scene-0103 (mini_val: s5 10 s), scene-0001 (neither mini list: s6 20 s).
RZ90 = [float(np.sqrt(0.5)), 0.0, 0.0, float(np.sqrt(0.5))]
EGO_POSE = {"translation": [100.0, 200.0, 0.0], "rotation": RZ90}
LIDAR_CAL = {"translation": [1.0, 0.0, 2.0], "rotation": RZ90}
SAMPLES = {"s1": ("sc_train", 1_000_000), "s2": ("sc_train", 1_500_000), "s3": ("sc_train", 2_000_000),
           "s4": ("sc_train", 4_000_000), "s5": ("sc_val", 10_000_000), "s6": ("sc_other", 20_000_000)}
SCENES = {"sc_train": "scene-0061", "sc_val": "scene-0103", "sc_other": "scene-0001"}
CATEGORIES = ["vehicle.car", "vehicle.truck", "human.pedestrian.adult", "movable_object.trafficcone",
              "movable_object.barrier", "animal", "vehicle.emergency.police"]
INSTANCES = {"inst_car": "vehicle.car", "inst_truck": "vehicle.truck", "inst_ped": "human.pedestrian.adult",
             "inst_cone": "movable_object.trafficcone", "inst_barrier": "movable_object.barrier",
             "inst_animal": "animal", "inst_police": "vehicle.emergency.police", "inst_car6": "vehicle.car"}
YAW180 = [0.0, 0.0, 0.0, 1.0]
YAW90 = RZ90
# token: (sample, instance, global centre, (w, l, h), rotation, prev, next, num_lidar_pts, num_radar_pts, attrs)
ANNOTATIONS = {
    "a_car1": ("s1", "inst_car", (100, 206, 1), (2, 4, 1.5), YAW180, "", "a_car2", 10, 1, ["attr_moving"]),
    "a_car2": ("s2", "inst_car", (100, 210, 1), (2, 4, 1.5), YAW180, "a_car1", "a_car3", 10, 1, ["attr_moving"]),
    "a_car3": ("s3", "inst_car", (100, 216, 1), (2, 4, 1.5), YAW180, "a_car2", "", 10, 1, ["attr_moving"]),
    "a_tr2": ("s2", "inst_truck", (90, 200, 1.5), (2.5, 6, 3), YAW90, "", "a_tr3", 4, 0, []),
    "a_tr3": ("s3", "inst_truck", (90, 205, 1.5), (2.5, 6, 3), YAW90, "a_tr2", "a_tr4", 0, 0, []),
    "a_tr4": ("s4", "inst_truck", (90, 215, 1.5), (2.5, 6, 3), YAW90, "a_tr3", "", 4, 0, []),
    "a_ped3": ("s3", "inst_ped", (101, 200, 0.9), (0.6, 0.8, 1.8), YAW90, "", "a_ped4", 0, 3, []),
    "a_ped4": ("s4", "inst_ped", (101, 204, 0.9), (0.6, 0.8, 1.8), YAW90, "a_ped3", "", 5, 0, []),
    "a_animal": ("s2", "inst_animal", (95, 200, 0.5), (0.5, 1, 0.5), YAW90, "", "", 3, 0, []),
    "a_police": ("s2", "inst_police", (105, 200, 1), (2, 4, 1.5), YAW90, "", "", 3, 0, []),
    "a_cone": ("s5", "inst_cone", (100, 203, 0.5), (0.4, 0.4, 1), YAW90, "", "", 5, 0, []),
    "a_barrier": ("s5", "inst_barrier", (100, 190, 0.5), (2, 0.5, 1), YAW90, "", "", 2, 0, []),
    "a_car6": ("s6", "inst_car6", (100, 210, 1), (2, 4, 1.5), YAW180, "", "", 9, 0, []),
}


def write_annotated_nuscenes(root: Path, image_hw: tuple[int, int] = (16, 32)) -> Path:
    """`write_tiny_nuscenes` plus five more samples (their key frames share s1's files) with the pose above,
    scene / sample_annotation / instance / category / attribute tables and the annotations of ANNOTATIONS."""
    write_tiny_nuscenes(root, image_hw)
    key = [sd for sd in json.loads((root / VERSION / "sample_data.json").read_text()) if sd["is_key_frame"]]

    def sample_data(rows):
        for sd in rows:
            sd["ego_pose_token"] = "pose_a"
        extra = [{**sd, "token": f"{sd['token']}_{s}", "sample_token": s} for s in SAMPLES if s != "s1" for sd in key]
        return rows + [{**sd, "ego_pose_token": "pose_a"} for sd in extra]

    edit_table(root, "sample_data", sample_data)
    edit_table(root, "ego_pose", lambda rows: rows + [{"token": "pose_a", "timestamp": 0, **EGO_POSE}])
    edit_table(root, "calibrated_sensor", lambda rows: [{**r, **LIDAR_CAL} if r["token"] == "cal_LIDAR_TOP" else r
                                                        for r in rows])
    tables = {
        "sample": [{"token": s, "scene_token": sc, "timestamp": ts, "prev": "", "next": ""}
                   for s, (sc, ts) in SAMPLES.items()],
        "scene": [{"token": t, "name": n, "first_sample_token": "", "last_sample_token": ""}
                  for t, n in SCENES.items()],
        "category": [{"token": f"cat_{n}", "name": n, "description": ""} for n in CATEGORIES],
        "attribute": [{"token": "attr_moving", "name": "vehicle.moving", "description": ""},
                      {"token": "attr_parked", "name": "vehicle.parked", "description": ""}],
        "instance": [{"token": t, "category_token": f"cat_{c}", "nbr_annotations": 0} for t, c in INSTANCES.items()],
        "sample_annotation": [
            {"token": t, "sample_token": s, "instance_token": i, "translation": list(map(float, c)),
             "size": list(map(float, wlh)), "rotation": list(q), "prev": p, "next": n, "num_lidar_pts": nl,
             "num_radar_pts": nr, "attribute_tokens": attrs, "visibility_token": "4"}
            for t, (s, i, c, wlh, q, p, n, nl, nr, attrs) in ANNOTATIONS.items()],
    }
    for name, rows in tables.items():
        (root / VERSION / f"{name}.json").write_text(json.dumps(rows))
    return root
