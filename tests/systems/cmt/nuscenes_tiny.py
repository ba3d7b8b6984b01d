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
