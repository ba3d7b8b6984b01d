"""nuScenes annotations -> the mmdet3d info layout, for training and NDS of `cmt` on nuScenes (Cross Modal
Transformer, arXiv 2301.01283; spec 4.2 and component 15).

data.py reads the key frames (LiDAR, sweeps, cameras, calibration); this module adds what training and evaluation
need: the annotation tables, the official splits, and per key frame the annotations in the LiDAR frame, as
mmdet3d's `tools/data_converter/nuscenes_converter.py::_fill_trainval_infos` writes them (CMT ships the same
converter):
 1. the sample's annotations, in sample_annotation.json order (= the devkit's `sample['anns']`);
 2. box global -> ego -> LiDAR through the LIDAR_TOP sample_data's ego_pose and calibrated_sensor (devkit
    `get_sample_data`: translate by -t, rotate by R^-1, twice);
 3. gt_boxes = (x, y, z, dx, dy, dz, yaw): the nuScenes box centre (= the gravity centre the rest of data.py
    uses), (dx, dy, dz) = nuScenes (w, l, h)[[1, 0, 2]] = (l, w, h) (box_coder.from_nuscenes), yaw of the
    LiDAR-frame orientation;
 4. gt_velocity = devkit `box_velocity` (centre difference over the instance's prev / next annotations, at most
    1.5 s one-sided or 3 s centred, else NaN), its xy with z = 0 rotated into the LiDAR frame;
 5. gt_names through the devkit's detection mapping (other categories dropped); num_lidar_pts, num_radar_pts;
    valid_flag = num_lidar_pts + num_radar_pts > 0; gt_attrs from attribute_tokens.
Bad input raises InputError naming the file, the record and the field, before anything is written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from tenfold.core.errors import InputError
from tenfold.systems.cmt import data
from tenfold.systems.cmt.config import Config

# nuscenes-devkit 1.2.0 `eval/detection/utils.py::category_to_detection_name` (= mmdet3d
# `NuScenesDataset.NameMapping`): the 23 nuScenes categories -> the 10 detection classes; the rest is dropped
# (animal, debris, pushable_pullable, bicycle_rack, stroller, wheelchair, personal_mobility, emergency vehicles).
DETECTION_NAMES = {
    "movable_object.barrier": "barrier", "vehicle.bicycle": "bicycle", "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus", "vehicle.car": "car", "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle", "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian", "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian", "movable_object.trafficcone": "traffic_cone",
    "vehicle.trailer": "trailer", "vehicle.truck": "truck",
}

# nuscenes-devkit 1.2.0 `nuscenes/utils/splits.py`, `mini_train` and `mini_val`: v1.0-mini's official split.
MINI_SPLITS = {
    "train": ("scene-0061", "scene-0553", "scene-0655", "scene-0757", "scene-0796", "scene-1077", "scene-1094",
              "scene-1100"),
    "val": ("scene-0103", "scene-0916"),
}

MAX_TIME_DIFF = 1.5  # s, devkit `box_velocity` default (doubled for a centred difference)
ANNOTATION_TABLES = ("sample_annotation", "instance", "category", "attribute", "scene")


# ----------------------------------------------------------------------------------------- tables and checks

def read_annotation_tables(tabs: dict[str, Any]) -> dict[str, dict]:
    """sample_annotation, instance, category, attribute and scene of `tabs["meta"]`, every reference checked."""
    ann = {name: data.read_table(tabs["meta"], name) for name in ANNOTATION_TABLES}
    check_annotations(tabs, ann)
    return ann


def _resolve(rec: dict, field: str, table: dict, table_name: str, where: str) -> dict:
    target = table.get(rec.get(field)) if isinstance(rec.get(field), str) else None
    if target is None:
        raise InputError(f"{where} field {field!r} = {rec.get(field)!r} has no record in {table_name}")
    return target


def check_annotations(tabs: dict[str, Any], ann: dict[str, dict]) -> None:
    """Every annotation: sample / instance (-> category) / attribute / prev / next tokens resolve; translation
    finite; size (w, l, h) > 0; rotation a unit quaternion; point counts non-negative integers."""
    meta = tabs["meta"]
    for tok, a in ann["sample_annotation"].items():
        where = f"{meta / 'sample_annotation.json'}: annotation {tok!r}"
        _resolve(a, "sample_token", tabs["sample"], "sample.json", where)
        inst = _resolve(a, "instance_token", ann["instance"], "instance.json", where)
        cat = _resolve(inst, "category_token", ann["category"], "category.json",
                       f"{meta / 'instance.json'}: instance {inst['token']!r}")
        if not isinstance(cat.get("name"), str):
            raise InputError(f"{meta / 'category.json'}: category {cat['token']!r} field 'name' is not a string")
        for key in ("prev", "next"):
            if a.get(key, "") != "":
                _resolve(a, key, ann["sample_annotation"], "sample_annotation.json", where)
        attrs = a.get("attribute_tokens", [])
        if not isinstance(attrs, list) or len(attrs) > 1:
            # Design choice: refused, as the devkit's evaluation loader asserts at most one attribute per GT box.
            raise InputError(f"{where} field 'attribute_tokens' = {attrs!r}: expected a list of at most one token")
        for t in attrs:
            if not isinstance(t, str) or t not in ann["attribute"]:
                raise InputError(f"{where} field 'attribute_tokens' = {attrs!r}: {t!r} has no record in "
                                 "attribute.json")
        data.finite_matrix(a.get("translation"), (3,), f"{where} field 'translation'")
        size = data.finite_matrix(a.get("size"), (3,), f"{where} field 'size'")
        if (size <= 0).any():
            raise InputError(f"{where} field 'size' = {size.tolist()}: expected (w, l, h) > 0 m")
        data.unit_quaternion(a.get("rotation"), f"{where} field 'rotation'")
        for key in ("num_lidar_pts", "num_radar_pts"):
            n = a.get(key)
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise InputError(f"{where} field {key!r} = {n!r}: expected an integer >= 0")


def _timestamp(tabs: dict[str, Any], token: str) -> float:
    """Seconds of sample `token` (sample.json stores microseconds)."""
    ts = tabs["sample"][token].get("timestamp")
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts):
        raise InputError(f"{tabs['meta'] / 'sample.json'}: sample {token!r} field 'timestamp' = {ts!r}: expected "
                         "microseconds")
    return 1e-6 * ts


# ----------------------------------------------------------------------------------------- splits

def split_scenes(cfg: Config, split: str) -> tuple[str, ...]:
    """Scene names of `split` ("train" / "val"): data.split_file when given, else the built-in mini lists."""
    d = cfg.data
    if d.split_file is None:
        # Design choice: only v1.0-mini's lists are built in (10 names); trainval's 850 names come from a file.
        if d.version == "v1.0-mini":
            return MINI_SPLITS[split]
        raise InputError(f"data.version={d.version}: no built-in scene split (only v1.0-mini's); set "
                         "data.split_file to a JSON file {\"train\": [scene names], \"val\": [scene names]} "
                         "(e.g. the devkit's nuscenes/utils/splits.py train / val lists)")
    path = Path(d.split_file)
    if not path.is_file():
        raise InputError(f"{path}: data.split_file not found; expected a JSON file {{\"train\": [scene names], "
                         "\"val\": [scene names]}")
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: data.split_file is not valid JSON ({type(err).__name__})") from None
    names = splits.get(split) if isinstance(splits, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError(f"{path}: data.split_file field {split!r}: expected a list of scene names")
    return tuple(names)


def split_tokens(tabs: dict[str, Any], ann: dict[str, dict], cfg: Config, split: str) -> list[str]:
    """Sample tokens whose scene is in `split`, in sample.json order (the devkit's, which mmdet3d iterates)."""
    names = set(split_scenes(cfg, split))
    meta = tabs["meta"]
    out = []
    for tok, s in tabs["sample"].items():
        scene = _resolve(s, "scene_token", ann["scene"], "scene.json", f"{meta / 'sample.json'}: sample {tok!r}")
        if scene.get("name") in names:
            out.append(tok)
    if not out:
        raise InputError(f"{meta / 'scene.json'}: no scene of the {split} split ({', '.join(sorted(names)[:4])}"
                         f"{', ...' if len(names) > 4 else ''}) is in {cfg.data.version}")
    return out


# ----------------------------------------------------------------------------------------- geometry

def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (w, x, y, z) quaternions (pyquaternion `a * b`)."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def quat_inv(q: np.ndarray) -> np.ndarray:
    return np.array([q[0], -q[1], -q[2], -q[3]])


def box_to_lidar(translation: np.ndarray, rotation: np.ndarray, ego2global: dict,
                 lidar2ego: dict) -> tuple[np.ndarray, float]:
    """Global box centre and (w, x, y, z) orientation -> (LiDAR-frame centre, LiDAR-frame yaw).

    centre: c_l = R_le^T (R_eg^T (c_g - t_eg) - t_le); orientation q_l = q_le^-1 q_eg^-1 q_box (devkit
    `Box.translate` / `Box.rotate`); yaw = pyquaternion `yaw_pitch_roll[0]` = atan2(2 (w z - x y),
    1 - 2 (y^2 + z^2)) as mmdet3d's converter takes it (equal to the devkit's `quaternion_yaw` for rotations about
    z; nuScenes' small sensor tilts change it by ~1e-4 rad).
    """
    q_eg, q_le = np.asarray(ego2global["rotation"], float), np.asarray(lidar2ego["rotation"], float)
    q_eg, q_le = q_eg / np.linalg.norm(q_eg), q_le / np.linalg.norm(q_le)
    r_eg, r_le = data.quat_to_matrix(q_eg), data.quat_to_matrix(q_le)
    c = r_le.T @ (r_eg.T @ (translation - np.asarray(ego2global["translation"], float))
                  - np.asarray(lidar2ego["translation"], float))
    w, x, y, z = quat_mul(quat_inv(q_le), quat_mul(quat_inv(q_eg), rotation))
    # Design choice: mmdet3d's yaw (pyquaternion yaw_pitch_roll[0]), not the devkit's quaternion_yaw.
    return c, math.atan2(2 * (w * z - x * y), 1 - 2 * (y * y + z * z))


def box_velocity(ann: dict[str, dict], tabs: dict[str, Any], token: str,
                 max_time_diff: float = MAX_TIME_DIFF) -> np.ndarray:
    """Global (vx, vy, vz) of annotation `token` in m/s, devkit `NuScenes.box_velocity`: (next - prev) / dt over
    the neighbouring annotations of the same instance (the annotation itself where one side is missing); NaN
    without neighbours or when dt > max_time_diff (x 2 for a centred difference)."""
    table = ann["sample_annotation"]
    cur = table[token]
    has_prev, has_next = cur.get("prev", "") != "", cur.get("next", "") != ""
    if not has_prev and not has_next:
        return np.full(3, np.nan)
    first = table[cur["prev"]] if has_prev else cur
    last = table[cur["next"]] if has_next else cur
    dt = _timestamp(tabs, last["sample_token"]) - _timestamp(tabs, first["sample_token"])
    if has_prev and has_next:
        max_time_diff *= 2
    if dt > max_time_diff:
        return np.full(3, np.nan)
    if dt <= 0:  # Design choice: refused (the devkit would divide by zero or flip the sign)
        raise InputError(f"{tabs['meta'] / 'sample_annotation.json'}: annotation {token!r} fields 'prev' / 'next': "
                         f"their samples' timestamps do not increase (dt = {dt:.6g} s)")
    return (np.asarray(last["translation"], float) - np.asarray(first["translation"], float)) / dt


# ----------------------------------------------------------------------------------------- infos and samples

def key_frame_info(tabs: dict[str, Any], ann: dict[str, dict], anns_of: dict[str, list[str]],
                   token: str) -> dict[str, Any]:
    """The mmdet3d info annotation fields of sample `token` (LiDAR frame), steps 1-5 of the module doc.

    Returns {token, lidar2ego, ego2global (calibration records), gt_boxes (G, 7), gt_names, gt_velocity (G, 2)
    (NaN where unknown), num_lidar_pts, num_radar_pts, valid_flag (G,), gt_attrs, ann_tokens}.
    """
    lidar2ego, ego2global = data.lidar_pose(tabs, token)
    meta = tabs["meta"]
    # the pose checks of read_key_frame, run first because box_to_lidar uses the records below
    l2e = data.pose_matrix(lidar2ego, f"{meta / 'calibrated_sensor.json'}: record {lidar2ego['token']!r}")
    e2g = data.pose_matrix(ego2global, f"{meta / 'ego_pose.json'}: record {ego2global['token']!r}")
    r_inv = (e2g @ l2e)[:3, :3].T  # global -> LiDAR rotation (velocities)
    boxes, names, vels, n_lidar, n_radar, attrs, toks = [], [], [], [], [], [], []
    for tok in anns_of.get(token, []):
        a = ann["sample_annotation"][tok]
        cat = ann["category"][ann["instance"][a["instance_token"]]["category_token"]]["name"]
        if cat not in DETECTION_NAMES:  # Design choice: dropped here (mmdet3d drops them later: same targets)
            continue
        q = np.asarray(a["rotation"], float)
        centre, yaw = box_to_lidar(np.asarray(a["translation"], float), q / np.linalg.norm(q), ego2global,
                                   lidar2ego)
        w, l, h = a["size"]
        boxes.append([*centre, l, w, h, yaw])
        v = box_velocity(ann, tabs, tok)
        vels.append((r_inv @ np.array([v[0], v[1], 0.0]))[:2])  # mmdet3d: global xy velocity, z = 0, to LiDAR
        names.append(DETECTION_NAMES[cat])
        n_lidar.append(a["num_lidar_pts"])
        n_radar.append(a["num_radar_pts"])
        attrs.append(ann["attribute"][a["attribute_tokens"][0]]["name"] if a.get("attribute_tokens") else "")
        toks.append(tok)
    n_lidar, n_radar = np.asarray(n_lidar, int), np.asarray(n_radar, int)
    return {"token": token, "lidar2ego": lidar2ego, "ego2global": ego2global,
            "gt_boxes": np.asarray(boxes, float).reshape(-1, 7), "gt_names": names,
            "gt_velocity": np.asarray(vels, float).reshape(-1, 2), "num_lidar_pts": n_lidar,
            "num_radar_pts": n_radar, "valid_flag": (n_lidar + n_radar) > 0, "gt_attrs": attrs, "ann_tokens": toks}


def nuscenes_infos(cfg: Config, split: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(sensor tables, infos of the key frames of `split`) of the nuScenes root data.root."""
    if cfg.data.root is None:
        raise InputError("data.source=nuscenes needs data.root: the nuScenes root holding "
                         f"{cfg.data.version}/, samples/ and sweeps/")
    root = Path(cfg.data.root)
    if not root.is_dir():
        raise InputError(f"{root}: data.root is not a folder; expected a nuScenes root ({cfg.data.version}/, "
                         "samples/, sweeps/)")
    tabs = data.nuscenes_tables(root, cfg)
    ann = read_annotation_tables(tabs)
    anns_of: dict[str, list[str]] = {}
    for tok, a in ann["sample_annotation"].items():
        anns_of.setdefault(a["sample_token"], []).append(tok)
    return tabs, [key_frame_info(tabs, ann, anns_of, t) for t in split_tokens(tabs, ann, cfg, split)]


def training_targets(info: dict[str, Any], cfg: Config) -> dict[str, Any]:
    """Train-split GT as CMT trains on it: mmdet3d `NuScenesDataset.get_ann_info` keeps num_lidar_pts > 0 (CMT's
    configs leave use_valid_flag at its default False) and sets NaN velocities to 0; `ObjectRangeFilter` keeps
    centres strictly inside the BEV of model.pc_range (ObjectNameFilter: make_sample keeps data.classes)."""
    # Design choice: the train split gets training targets, the val split evaluation GT (evaluation_gt): train.py
    # uses every GT box of a sample, so the filter is applied when the sample is built.
    x0, y0, _, x1, y1, _ = cfg.model.pc_range
    b = info["gt_boxes"]
    keep = ((info["num_lidar_pts"] > 0) & (b[:, 0] > x0) & (b[:, 1] > y0) & (b[:, 0] < x1) & (b[:, 1] < y1))
    vel = np.nan_to_num(info["gt_velocity"], nan=0.0)
    return {"boxes": np.concatenate([b, vel], axis=1)[keep], "names": [n for n, k in zip(info["gt_names"], keep) if k],
            "attrs": [a for a, k in zip(info["gt_attrs"], keep) if k],
            "num_pts": (info["num_lidar_pts"] + info["num_radar_pts"])[keep],
            "vel_valid": ~np.isnan(info["gt_velocity"][:, 0])[keep]}


def evaluation_gt(info: dict[str, Any]) -> dict[str, Any]:
    """Val-split GT as the devkit scores it: every mapped box; num_pts = LiDAR + radar points (metrics drops 0);
    an unknown velocity is stored as 0 and marked (vel_valid False), so data.to_detboxes scores it as NaN (the
    devkit's NaN GT velocity, ignored by the AVE mean)."""
    # Design choice: 0 in the box tensor (finite, like training) plus the vel_valid mark, not NaN in the tensor.
    bad = np.isnan(info["gt_velocity"][:, 0])
    vel = np.nan_to_num(info["gt_velocity"], nan=0.0)
    return {"boxes": np.concatenate([info["gt_boxes"], vel], axis=1), "names": list(info["gt_names"]),
            "attrs": list(info["gt_attrs"]), "num_pts": info["num_lidar_pts"] + info["num_radar_pts"],
            "vel_valid": ~bad}


def nuscenes_samples(cfg: Config, split: str) -> list[dict[str, Any]]:
    """The samples of `split` ("train": training targets; "val": evaluation GT) of the nuScenes root
    data.root, every table and file checked before any training starts."""
    tabs, infos = nuscenes_infos(cfg, split)
    gt_of = (lambda i: training_targets(i, cfg)) if split == "train" else evaluation_gt
    return [data.read_key_frame(tabs, info["token"], cfg, gt_of(info)) for info in infos]
