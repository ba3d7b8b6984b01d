"""The one data module of `cmt` (arXiv 2301.01283) that train.py, evaluate.py, predict.py and reproduce.py share.

Sources (spec 4): SynthDrive scenes generated in memory (synthdrive.py) or read from a folder it wrote
(`infos_<split>.json`, `points/`, `cams/`), and the nuScenes layout (`<root>/<version>/*.json`, `samples/`,
`sweeps/`; key frames here, annotations and splits in nuscenes.py). A sample is a dict:
  token, grid (5 Z, Y, X) voxel grid or None, images (N, 3, H, W) uint8 or None, lidar2img (N, 4, 4),
  gt_boxes (G, 9) gravity centre + velocity, gt_labels (G,), gt_names, gt_attrs, num_pts (G,) (LiDAR + radar
  points, the evaluation filter), gt_vel_valid (G,) (False: the GT velocity is unknown, scored as NaN),
  lidar2global (4, 4) (identity for SynthDrive: ego = global), ego_position (3,) (global; the class-range origin),
  missing ("" / "points" / "image").
A modality the input lacks is zeroed (the masked-modal path, ModalMask3D test semantics), never an error.
Bad inputs raise InputError naming the file, the field and the expected form before anything is written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.systems.cmt.box_coder import to_nuscenes
from tenfold.systems.cmt.config import Config, ModelConfig
from tenfold.systems.cmt.metrics import DetBox, DetectionConfig, attribute_from_velocity, synthdrive_config
from tenfold.systems.cmt.model import POINT_FEATURES, grid_shape, points_to_grid
from tenfold.systems.cmt.synthdrive import CAMERA_NAMES, SynthConfig, generate_scene

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
MAX_POINTS = 2_000_000


# ----------------------------------------------------------------------------------------- SynthDrive

def synth_config(cfg: Config) -> SynthConfig:
    d = cfg.data
    return SynthConfig(num_beams=d.num_beams, num_azimuth=d.num_azimuth, num_cameras=d.num_cameras,
                       image_hw=tuple(d.image_hw), scene_half_extent=d.scene_half_extent,
                       mean_objects=d.mean_objects, classes=tuple(d.classes),
                       sweep_times=(0.0, -0.25, -0.5)[: d.num_sweeps])


def make_sample(token: str, points: np.ndarray | None, images: np.ndarray | None, lidar2img: np.ndarray,
                cfg: Config, gt: dict | None = None, lidar2global: np.ndarray | None = None,
                ego_position: np.ndarray | None = None) -> dict[str, Any]:
    """Voxelise the points once (no global augmentation in these profiles) and keep images as uint8.
    `gt`: {"boxes" (G, 9), "names", "attrs", "num_pts"[, "vel_valid"]}; classes outside data.classes dropped."""
    classes = list(cfg.data.classes)
    gt = gt or {"boxes": np.zeros((0, 9)), "names": [], "attrs": [], "num_pts": np.zeros(0)}
    keep = [i for i, n in enumerate(gt["names"]) if n in classes]
    vel_valid = np.asarray(gt.get("vel_valid", np.ones(len(gt["names"]), bool)), dtype=bool)
    lidar2global = np.eye(4) if lidar2global is None else lidar2global
    missing = "points" if points is None else "image" if images is None else ""
    if points is None:  # masked-modal path: every point x 0 collapses into the voxel at the origin (spec 13)
        points = np.zeros((1, POINT_FEATURES), dtype=np.float32)
    if images is None:
        images = np.zeros((len(lidar2img), *cfg.data.image_hw, 3), dtype=np.uint8)
    return {"token": token, "grid": points_to_grid(points, cfg.model).half(),
            "images": torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
            "lidar2img": torch.as_tensor(lidar2img, dtype=torch.float32),
            "gt_boxes": torch.as_tensor(np.asarray(gt["boxes"], dtype=np.float32)[keep].reshape(-1, 9)),
            "gt_labels": torch.as_tensor([classes.index(gt["names"][i]) for i in keep], dtype=torch.long),
            "gt_names": [gt["names"][i] for i in keep], "gt_attrs": [gt["attrs"][i] for i in keep],
            "num_pts": np.asarray(gt["num_pts"])[keep].astype(int), "gt_vel_valid": vel_valid[keep],
            "lidar2global": lidar2global,
            "ego_position": lidar2global[:3, 3].copy() if ego_position is None else np.asarray(ego_position),
            "missing": missing}


def synthdrive_samples(cfg: Config, split: str, num: int | None = None) -> list[dict[str, Any]]:
    """Generate split `split` of seed `cfg.seed` (deterministic in seed, split, index and the data config)."""
    sc = synth_config(cfg)
    n = num if num is not None else (cfg.data.num_train_scenes if split == "train" else cfg.data.num_val_scenes)
    out = []
    for i in range(n):
        s = generate_scene(cfg.seed, SPLIT_IDS[split], i, sc)
        names = list(s["cams"])
        gt = {"boxes": np.concatenate([s["gt_boxes"], s["gt_velocity"]], axis=1), "names": s["gt_names"],
              "attrs": s["gt_attrs"], "num_pts": s["num_lidar_pts"]}
        out.append(make_sample(s["token"], s["points"], np.stack([s["images"][k] for k in names]),
                               np.stack([s["cams"][k]["lidar2img"] for k in names]), cfg, gt))
    return out


# ----------------------------------------------------------------------------------------- file readers

def read_points_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: point file not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:
        raise InputError(f"{path}: not a .npy array ({type(err).__name__}); expected float32 (N, 5) points "
                         "x, y, z, intensity, time-lag") from None
    return check_points(arr, path)


def check_points(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim != 2 or arr.shape[1] < POINT_FEATURES or arr.dtype.kind != "f":
        raise InputError(f"{path}: points of shape {arr.shape} and dtype {arr.dtype}; expected float (N, >= 5)")
    if len(arr) == 0:
        raise InputError(f"{path}: empty point file (0 points); expected (N, 5) points with N >= 1 (to run "
                         "without LiDAR, leave the lidar entry out: the masked-modal path runs)")
    if len(arr) > MAX_POINTS or not np.isfinite(arr[:, :POINT_FEATURES]).all():
        raise InputError(f"{path}: more than {MAX_POINTS} points or non-finite values; expected finite (N, 5)")
    return arr[:, :POINT_FEATURES].astype(np.float32)


def read_image(path: Path, hw: Sequence[int], field: str) -> np.ndarray:
    from tenfold.core.images import read_pixels

    img = read_pixels(path)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InputError(f"{path}: image of shape {img.shape} / {img.dtype}; expected 8-bit RGB")
    if tuple(img.shape[:2]) != tuple(hw):
        raise InputError(f"{path}: image is {img.shape[0]} x {img.shape[1]} (H x W) but {field} says "
                         f"{hw[0]} x {hw[1]}")
    return img


def finite_matrix(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != shape or not np.isfinite(arr).all():
        what = f"{shape[0]}-vector" if len(shape) == 1 else f"{'x'.join(map(str, shape))} matrix"
        raise InputError(f"{where}: expected a finite {what}")
    return arr


def training_samples(cfg: Config, split: str) -> list[dict[str, Any]]:
    """The labelled samples of `split`: generated SynthDrive scenes, `data.root`'s infos_<split>.json (a folder
    synthdrive.write_split wrote), or, with data.source=nuscenes, the key frames of the split's scenes of a
    nuScenes root with their annotations (nuscenes.py)."""
    if cfg.data.source == "nuscenes":
        from tenfold.systems.cmt.nuscenes import nuscenes_samples

        return nuscenes_samples(cfg, split)
    if cfg.data.root is None:
        return synthdrive_samples(cfg, split)
    folder = Path(cfg.data.root)
    if not folder.is_dir():
        raise InputError(f"{folder}: data.root is not a folder; expected a SynthDrive folder with "
                         f"infos_{split}.json, points/, cams/")
    out = read_synthdrive_dir(folder, cfg, split)
    if any(s["missing"] for s in out):
        bad = next(s["token"] for s in out if s["missing"])
        raise InputError(f"{folder / f'infos_{split}.json'}: sample {bad!r} lacks a modality; training needs both")
    return out


def read_synthdrive_dir(folder: Path, cfg: Config, split: str | None = None) -> list[dict[str, Any]]:
    """A folder with infos_<split>.json (synthdrive.scene_info records), points/*.npy and cams/*.png.
    A record without `lidar_path` or without `cams` runs the masked-modal path for that modality."""
    infos = sorted(folder.glob("infos_*.json" if split is None else f"infos_{split}.json"))
    if not infos:
        raise InputError(f"{folder}: no infos_{split or '<split>'}.json; expected a SynthDrive scene folder "
                         "(infos_<split>.json, points/, cams/) or a nuScenes root (<version>/, samples/, sweeps/)")
    samples = []
    for info_path in infos:
        try:
            records = json.loads(info_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{info_path}: not valid JSON ({type(err).__name__})") from None
        if not isinstance(records, list):
            raise InputError(f"{info_path}: expected a JSON list of scene records")
        for k, rec in enumerate(records):
            where = f"{info_path} record {k}"
            if not isinstance(rec, dict) or "token" not in rec:
                raise InputError(f"{where}: expected an object with 'token', 'lidar_path', 'cams'")
            pts = read_points_npy(folder / rec["lidar_path"]) if rec.get("lidar_path") else None
            cams = rec.get("cams") or {}
            if not isinstance(cams, dict):
                raise InputError(f"{where}: field 'cams' must be an object {{camera: {{data_path, lidar2img}}}}")
            names = [c for c in CAMERA_NAMES if c in cams][: cfg.data.num_cameras]
            if cams and len(names) != cfg.data.num_cameras:
                raise InputError(f"{where}: field 'cams' has {sorted(cams)}; the run expects "
                                 f"{cfg.data.num_cameras} of {CAMERA_NAMES}")
            l2i = [finite_matrix(cams[c].get("lidar2img"), (4, 4), f"{where} cams.{c}.lidar2img") for c in names]
            imgs = [read_image(folder / cams[c]["data_path"], cfg.data.image_hw, "the run's data.image_hw")
                    for c in names] if names else None
            if not names:  # no cameras: the nominal rig of the run keeps the query PE defined
                sc = synth_config(cfg)
                from tenfold.systems.cmt.synthdrive import CAMERA_YAWS_DEG, camera_calibration

                l2i = [camera_calibration(y, sc.image_hw, sc.fov_deg, sc.camera_height)["lidar2img"]
                       for y in CAMERA_YAWS_DEG[: cfg.data.num_cameras]]
            if pts is None and imgs is None:
                raise InputError(f"{where}: neither 'lidar_path' nor 'cams'; a sample needs one modality")
            gt = None
            if rec.get("gt_boxes") is not None:
                boxes = np.concatenate([np.asarray(rec["gt_boxes"], float).reshape(-1, 7),
                                        np.asarray(rec.get("gt_velocity", []), float).reshape(-1, 2)], axis=1)
                gt = {"boxes": boxes, "names": rec["gt_names"], "attrs": rec.get("gt_attrs", [""] * len(boxes)),
                      "num_pts": rec.get("num_lidar_pts", [1] * len(boxes))}
            samples.append(make_sample(str(rec["token"]), pts, np.stack(imgs) if imgs else None, np.stack(l2i),
                                       cfg, gt))
    return samples


# ----------------------------------------------------------------------------------------- nuScenes

def quat_to_matrix(q: Sequence[float]) -> np.ndarray:
    """(w, x, y, z) unit quaternion -> 3x3 rotation."""
    q = np.asarray(q, dtype=float)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


# Design choice: a stored rotation must be a unit quaternion within 1e-3 (nuScenes stores ~1e-9); the devkit
# normalises silently, which would hide a corrupt record.
QUATERNION_TOL = 1e-3


def unit_quaternion(value: Any, where: str) -> np.ndarray:
    """A stored (w, x, y, z) rotation: finite 4-vector of norm 1 +- QUATERNION_TOL, returned normalised."""
    q = finite_matrix(value, (4,), where)
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > QUATERNION_TOL:
        raise InputError(f"{where}: quaternion {q.tolist()} has norm {norm:.4g}; expected a unit rotation "
                         "(w, x, y, z)")
    return q / norm


def pose_matrix(rec: dict, where: str) -> np.ndarray:
    """4x4 of a calibrated_sensor / ego_pose record: unit-quaternion rotation, finite translation (checked)."""
    t = np.eye(4)
    t[:3, :3] = quat_to_matrix(unit_quaternion(rec.get("rotation"), f"{where}.rotation"))
    t[:3, 3] = finite_matrix(rec.get("translation"), (3,), f"{where}.translation")
    return t


def read_table(meta: Path, name: str) -> dict[str, dict]:
    path = meta / f"{name}.json"
    if not path.is_file():
        raise InputError(f"{path}: nuScenes table missing; expected {name}.json in {meta}")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return {r["token"]: r for r in rows}
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError) as err:
        raise InputError(f"{path}: not a nuScenes table (a JSON list of records with 'token'): "
                         f"{type(err).__name__}") from None


def nuscenes_tables(root: Path, cfg: Config) -> dict[str, Any]:
    """The sensor tables of `<root>/<data.version>/` keyed by token, plus `key_frames` {sample: [sample_data]}."""
    meta = root / cfg.data.version
    if not meta.is_dir():
        raise InputError(f"{meta}: nuScenes version folder missing; expected {root}/{cfg.data.version}/ with the "
                         "JSON tables (set data.version, e.g. v1.0-mini)")
    tabs: dict[str, Any] = {"root": root, "meta": meta}
    for name in ("sample", "sample_data", "calibrated_sensor", "ego_pose", "sensor"):
        tabs[name] = read_table(meta, name)
    tabs["key_frames"] = {}
    for sd in tabs["sample_data"].values():
        if sd.get("is_key_frame"):
            tabs["key_frames"].setdefault(sd.get("sample_token"), []).append(sd)
    return tabs


def _channel(tabs: dict[str, Any], sd: dict) -> tuple[str, dict]:
    """(sensor channel, calibrated_sensor record) of one sample_data record; its ego pose must exist."""
    meta = tabs["meta"]
    cal = tabs["calibrated_sensor"].get(sd.get("calibrated_sensor_token"))
    if cal is None:
        raise InputError(f"{meta / 'calibrated_sensor.json'}: no calibrated_sensor entry "
                         f"{sd.get('calibrated_sensor_token')!r} (needed by sample_data {sd['token']!r})")
    if sd.get("ego_pose_token") not in tabs["ego_pose"]:
        raise InputError(f"{meta / 'ego_pose.json'}: no ego_pose entry {sd.get('ego_pose_token')!r} "
                         f"(needed by sample_data {sd['token']!r})")
    return tabs["sensor"].get(cal.get("sensor_token"), {}).get("channel", ""), cal


def key_channels(tabs: dict[str, Any], token: str) -> dict[str, tuple[dict, dict]]:
    """{channel: (sample_data, calibrated_sensor)} of sample `token`'s key frames; LIDAR_TOP required."""
    chans = {}
    for sd in tabs["key_frames"].get(token, []):
        name, cal = _channel(tabs, sd)
        chans[name] = (sd, cal)
    if "LIDAR_TOP" not in chans:
        raise InputError(f"{tabs['meta'] / 'sample_data.json'}: sample {token!r} has no LIDAR_TOP key frame")
    return chans


def lidar_pose(tabs: dict[str, Any], token: str) -> tuple[dict, dict]:
    """(calibrated_sensor, ego_pose) records of sample `token`'s LIDAR_TOP key frame (lidar->ego, ego->global)."""
    sd, cal = key_channels(tabs, token)["LIDAR_TOP"]
    return cal, tabs["ego_pose"][sd["ego_pose_token"]]


def read_nuscenes(root: Path, cfg: Config) -> list[dict[str, Any]]:
    """Every key frame of a nuScenes folder, in the LiDAR frame, without annotations (prediction input).

    Design choice: the JSON tables are read directly (nuscenes-devkit 1.2.0 pins numpy < 2 and is not a
    dependency); the geometry is the devkit's: lidar2img = K4 @ cam<-ego_c @ ego_c<-global @ global<-ego_l @
    ego_l<-lidar. Images are checked against their sample_data width / height, then resized to the run's
    data.image_hw (intrinsics scaled). Previous sweeps (`prev` chain, up to data.num_sweeps - 1) are merged
    with a time-lag channel; nuScenes' fifth channel (ring index) is replaced by it. Annotations: nuscenes.py.
    """
    tabs = nuscenes_tables(root, cfg)
    return [read_key_frame(tabs, token, cfg) for token in tabs["sample"]]


def read_key_frame(tabs: dict[str, Any], token: str, cfg: Config, gt: dict | None = None) -> dict[str, Any]:
    """One sample (read_nuscenes' geometry); `gt` (LiDAR-frame boxes, nuscenes.py) attached when given."""
    root, meta, cfg_d = tabs["root"], tabs["meta"], cfg.data
    pose_t, sd_t = tabs["ego_pose"], tabs["sample_data"]
    chans = key_channels(tabs, token)
    sd_l, cal_l = chans["LIDAR_TOP"]
    ego_l = pose_matrix(pose_t[sd_l["ego_pose_token"]], f"{meta / 'ego_pose.json'} {sd_l['ego_pose_token']}")
    lidar2global = ego_l @ pose_matrix(cal_l, f"{meta / 'calibrated_sensor.json'} {cal_l['token']}")
    pts = [_read_bin(root / sd_l["filename"], 0.0)]
    prev = sd_l.get("prev", "")
    for _ in range(cfg_d.num_sweeps - 1):
        if not prev:
            break
        sw = sd_t.get(prev)
        if sw is None:
            raise InputError(f"{meta / 'sample_data.json'}: sweep {prev!r} (prev of {sd_l['token']!r}) missing")
        _, cal_s = _channel(tabs, sw)
        path = root / sw["filename"]
        if not path.parent.is_dir():
            raise InputError(f"{path.parent}: sweeps folder missing; expected the LiDAR sweeps of "
                             f"{cfg_d.version} (or set data.num_sweeps=1)")
        s2g = (pose_matrix(pose_t[sw["ego_pose_token"]], f"{meta / 'ego_pose.json'} {sw['ego_pose_token']}")
               @ pose_matrix(cal_s, f"{meta / 'calibrated_sensor.json'} {cal_s['token']}"))
        p = _read_bin(path, (sd_l["timestamp"] - sw["timestamp"]) * 1e-6)
        hom = np.concatenate([p[:, :3], np.ones((len(p), 1))], axis=1) @ (np.linalg.inv(lidar2global) @ s2g).T
        p[:, :3] = hom[:, :3]
        pts.append(p)
        prev = sw.get("prev", "")
    l2i, imgs = [], []
    for cam in CAMERA_NAMES[: cfg_d.num_cameras]:
        if cam not in chans:
            raise InputError(f"{meta / 'sample_data.json'}: sample {token!r} has no {cam} key frame")
        sd_c, cal_c = chans[cam]
        k = finite_matrix(cal_c.get("camera_intrinsic"), (3, 3),
                          f"calibrated_sensor {cal_c['token']}.camera_intrinsic")
        hw = (int(sd_c.get("height", 0)), int(sd_c.get("width", 0)))
        img = read_image(root / sd_c["filename"], hw, f"sample_data {sd_c['token']} (height, width)")
        img, k = _resize(img, k, cfg_d.image_hw)
        c2g = (pose_matrix(pose_t[sd_c["ego_pose_token"]], f"{meta / 'ego_pose.json'} {sd_c['ego_pose_token']}")
               @ pose_matrix(cal_c, f"{meta / 'calibrated_sensor.json'} {cal_c['token']}"))
        k4 = np.eye(4)
        k4[:3, :3] = k
        l2i.append(k4 @ np.linalg.inv(c2g) @ lidar2global)
        imgs.append(img)
    return make_sample(token, np.concatenate(pts), np.stack(imgs), np.stack(l2i), cfg, gt,
                       lidar2global=lidar2global, ego_position=ego_l[:3, 3])


def _read_bin(path: Path, lag: float) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: LiDAR file not found")
    raw = path.read_bytes()
    if len(raw) % 20:
        raise InputError(f"{path}: {len(raw)} bytes is not a whole number of float32 (N, 5) points")
    arr = check_points(np.frombuffer(raw, dtype=np.float32).reshape(-1, 5).copy(), path)
    arr[:, 4] = lag
    return arr


def _resize(img: np.ndarray, k: np.ndarray, hw: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    h, w = img.shape[:2]
    if (h, w) == tuple(hw):
        return img, k
    out = np.asarray(Image.fromarray(img).resize((hw[1], hw[0]), Image.BILINEAR))
    scale = np.diag([hw[1] / w, hw[0] / h, 1.0])
    return out, scale @ k


def load_input(path: Path, cfg: Config) -> list[dict[str, Any]]:
    """A user's scene folder: nuScenes root (holds data.version/) or a SynthDrive folder (infos_*.json)."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a folder; expected a SynthDrive scene folder (infos_<split>.json, points/, "
                         "cams/) or a nuScenes root (<version>/, samples/, sweeps/)")
    if (path / "samples").is_dir() or (path / "sweeps").is_dir() or any(path.glob("v1.0-*")):
        return read_nuscenes(path, cfg)
    return read_synthdrive_dir(path, cfg)


# ----------------------------------------------------------------------------------------- batches and scoring

def collate(samples: Sequence[dict], cfg: ModelConfig, drop: Sequence[str] | None = None) -> dict[str, Any]:
    """Stack samples into a model batch; `drop[i]` in {"", "points", "image"} zeroes that modality of sample i
    (ModalMask3D, spec 13). Only the modalities the model uses are passed (camera-only never sees points)."""
    drop = drop or [""] * len(samples)
    batch: dict[str, Any] = {"lidar2img": torch.stack([s["lidar2img"] for s in samples])}
    if cfg.modality in ("fusion", "lidar"):
        batch["grid"] = torch.stack([s["grid"].float() * (0.0 if d == "points" else 1.0)
                                     for s, d in zip(samples, drop)])
    if cfg.modality in ("fusion", "camera"):
        batch["images"] = torch.stack([s["images"] * (0 if d == "image" else 1) for s, d in zip(samples, drop)])
    return batch


def predictions(model: torch.nn.Module, samples: Sequence[dict], cfg: Config, mask_modal: str = "",
                batch_size: int = 8) -> list[dict[str, torch.Tensor]]:
    """Post-processed predictions per sample; mask_modal zeroes "points" or "image" for every sample."""
    model.eval()
    out = []
    for i in range(0, len(samples), batch_size):
        chunk = samples[i:i + batch_size]
        drops = [mask_modal or s["missing"] for s in chunk]
        out.extend(model.predict(collate(chunk, cfg.model, drops)))
    return out


def detection_config(cfg: Config) -> DetectionConfig:
    """Spec 15: nuScenes is scored with the devkit's detection_cvpr_2019 config (50 / 40 / 30 m class ranges,
    cone / barrier TP rules), SynthDrive with its own (ranges x 0.6, bollard like the cone); both restricted
    to data.classes."""
    base = DetectionConfig() if cfg.data.source == "nuscenes" else synthdrive_config()
    from dataclasses import replace

    return replace(base, class_names=tuple(cfg.data.classes),
                   class_range={c: base.class_range[c] for c in cfg.data.classes})


def to_detboxes(samples: Sequence[dict], preds: Sequence[dict] | None, cfg: Config) -> list[DetBox]:
    """GT (preds None) or predictions as DetBoxes (LiDAR frame, bottom-centre z; yaw; nuScenes (w, l, h)).
    The class-range distance is the devkit's: global box centre minus the ego position (for SynthDrive, where
    lidar = ego = global, the box centre itself); an unknown GT velocity is NaN, so its AVE term is ignored."""
    boxes = []
    for k, s in enumerate(samples):
        g, ego = s["lidar2global"], s["ego_position"]

        def ego_xyz(b: Sequence[float]) -> tuple[float, float, float]:
            return tuple((g[:3, :3] @ np.asarray(b[:3]) + g[:3, 3] - ego).tolist())

        if preds is None:
            for b, name, attr, n, ok in zip(s["gt_boxes"].tolist(), s["gt_names"], s["gt_attrs"], s["num_pts"],
                                            s["gt_vel_valid"]):
                vel = (b[7], b[8]) if ok else (math.nan, math.nan)
                bottom = (b[0], b[1], b[2] - b[5] / 2)
                boxes.append(DetBox(s["token"], bottom, (b[4], b[3], b[5]), b[6], vel, name, -1.0, attr, int(n),
                                    ego_xyz(bottom)))
        else:
            p = preds[k]
            for b, sc, lab in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
                name = cfg.data.classes[lab]
                boxes.append(DetBox(s["token"], tuple(b[:3]), (b[4], b[3], b[5]), b[6], (b[7], b[8]), name, sc,
                                    attribute_from_velocity(name, b[7:9]), -1, ego_xyz(b)))
    return boxes


def score(samples: Sequence[dict], preds: Sequence[dict], cfg: Config) -> dict[str, Any]:
    """NDS / mAP / per-class AP / TP errors (metrics.evaluate_detection under `detection_config`)."""
    from tenfold.systems.cmt.metrics import evaluate_detection

    return evaluate_detection(to_detboxes(samples, None, cfg), to_detboxes(samples, preds, cfg),
                              detection_config(cfg))


def submission(samples: Sequence[dict], preds: Sequence[dict], cfg: Config) -> dict[str, Any]:
    """nuScenes submission JSON: {meta, results: {sample_token: [box records in the global frame]}}."""
    results: dict[str, list] = {}
    for s, p in zip(samples, preds):
        g = s["lidar2global"]
        yaw_g = math.atan2(g[1, 0], g[0, 0])
        recs = []
        for b, sc, lab in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
            centre = g @ np.array([b[0], b[1], b[2] + b[5] / 2, 1.0])  # nuScenes: box centre
            vel = g[:2, :2] @ np.array(b[7:9])
            rec = to_nuscenes([*centre[:3], b[3], b[4], b[5], b[6] + yaw_g, *vel])
            name = cfg.data.classes[lab]
            recs.append({"sample_token": s["token"], "translation": list(rec["translation"]),
                         "size": list(rec["size"]), "rotation": list(rec["rotation"]),
                         "velocity": list(rec["velocity"]), "detection_name": name, "detection_score": sc,
                         "attribute_name": attribute_from_velocity(name, b[7:9])})
        results[s["token"]] = recs
    missing = sorted({s["missing"] for s in samples} - {""})
    return {"meta": {"use_camera": cfg.model.modality != "lidar" and "image" not in missing,
                     "use_lidar": cfg.model.modality != "camera" and "points" not in missing,
                     "use_radar": False, "use_map": False, "use_external": False}, "results": results}


def grid_channels(cfg: ModelConfig) -> int:
    return POINT_FEATURES * grid_shape(cfg)[0]
