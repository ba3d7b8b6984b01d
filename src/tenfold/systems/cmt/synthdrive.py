"""SynthDrive: procedural camera + LiDAR driving scenes for `cmt` (Cross Modal Transformer, arXiv 2301.01283).

Spec section 4.1 [design choice]: nuScenes ships no data, so the quick profile runs on generated scenes.
One frame = LiDAR = ego frame (x forward, y left, z up), LiDAR at the origin, ground plane z = -1.84 m.
Box = (x, y, z_gravity, dx, dy, dz, yaw, vx, vy).

Steps of `generate_scene` (rng = default_rng([seed, split_id, index])):
1. `sample_objects`: #objects ~ Poisson(14) clipped to [3, 30], classes by `CLASS_PROBS`, 60 % on the two lane
   bands (|y| in [2, 9], yaw in {0, pi} + N(0, 0.1)), 40 % uniform; rejection near the ego and on any BEV
   overlap (`bev_overlap`, separating-axis test); static classes in short rows with p = 0.5.
2. `lidar_sweeps`: a 32-beam ray-cast LiDAR (`cast_rays`: nearest hit of ground plane and every box by the
   slab test in each box frame) at t = 0, -0.25, -0.5 s with objects at c + v t; channel 5 = time lag -t, so
   velocity is observable from the points.
3. `camera_calibrations` + `render_camera`: 6 pinholes (nuScenes yaw layout), lidar2img = K4 @ lidar2cam as in
   CMT, images by per-pixel ray casting with the same intersector; cone and bollard differ only in colour.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GROUND_Z = -1.84

# class: (dx, dy, dz), moving speed range (m/s), P(moving), LiDAR intensity      [spec 4.1 table]
CLASSES: dict[str, tuple[tuple[float, float, float], tuple[float, float], float, float]] = {
    "car": ((4.6, 1.95, 1.7), (2.0, 12.0), 0.5, 0.3),
    "truck": ((7.0, 2.5, 2.9), (2.0, 10.0), 0.5, 0.3),
    "bus": ((11.0, 2.9, 3.5), (2.0, 8.0), 0.5, 0.3),
    "pedestrian": ((0.7, 0.7, 1.75), (0.5, 1.8), 0.5, 0.2),
    "bicycle": ((1.75, 0.6, 1.3), (2.0, 6.0), 0.5, 0.3),
    "barrier": ((0.5, 2.5, 1.0), (0.0, 0.0), 0.0, 0.5),
    "traffic_cone": ((0.4, 0.4, 1.0), (0.0, 0.0), 0.0, 0.6),
    "bollard": ((0.4, 0.4, 1.0), (0.0, 0.0), 0.0, 0.6),  # same geometry and intensity as the cone
}
CLASS_NAMES = tuple(CLASSES)
CLASS_PROBS = (0.30, 0.08, 0.04, 0.20, 0.08, 0.12, 0.09, 0.09)
STATIC = ("barrier", "traffic_cone", "bollard")
# Design choice: paints, textures and the sun direction are ours (the spec names the looks only).
CAR_PAINTS = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.9, 0.9, 0.9], [0.15, 0.15, 0.15], [0.6, 0.6, 0.65],
                       [0.2, 0.5, 0.2]])
SUN = np.array([0.4, 0.3, 0.866]) / np.linalg.norm([0.4, 0.3, 0.866])
CAMERA_YAWS_DEG = (0.0, 55.0, -55.0, 180.0, 110.0, -110.0)
CAMERA_NAMES = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")


@dataclass(frozen=True)
class SynthConfig:
    """Generator sizes. Defaults = the spec's small preset except the azimuth count (spec: 512 small, 1024 full).

    Args:
        num_beams: LiDAR beams, elevations linear in [elev_min_deg, elev_max_deg].
        num_azimuth: azimuth steps over 360 deg.
        max_range: LiDAR hits beyond it are dropped (m).
        range_noise: sigma of the range noise (m); dropout: fraction of returns dropped.
        sweep_times: sweep times in s (0 first); channel 5 of the points is -t.
        num_cameras: first n cameras of the nuScenes layout; image_hw: (H, W); fov_deg: horizontal FOV.
        scene_half_extent: uniform placement in |x|, |y| <= this (m).
        render_noise: whether to add pixel noise and global brightness jitter.
    """
    num_beams: int = 32
    num_azimuth: int = 512
    elev_min_deg: float = -30.67
    elev_max_deg: float = 10.67
    max_range: float = 70.0
    range_noise: float = 0.02
    dropout: float = 0.05
    intensity_noise: float = 0.05
    sweep_times: tuple[float, ...] = (0.0, -0.25, -0.5)
    num_cameras: int = 6
    image_hw: tuple[int, int] = (96, 256)
    fov_deg: float = 70.0
    camera_height: float = -0.3
    scene_half_extent: float = 30.0
    mean_objects: float = 14.0
    render_noise: bool = True
    # Design choice: a subset of the classes (probabilities renormalised); the default draws as before.
    classes: tuple[str, ...] = CLASS_NAMES

    def __post_init__(self) -> None:
        if not 1 <= self.num_cameras <= 6:
            raise ValueError(f"SynthConfig.num_cameras={self.num_cameras}; allowed 1..6")
        if self.sweep_times[0] != 0.0:
            raise ValueError(f"SynthConfig.sweep_times must start with 0.0, got {self.sweep_times}")
        if not self.classes or any(c not in CLASS_NAMES for c in self.classes):
            raise ValueError(f"SynthConfig.classes must be a non-empty subset of {CLASS_NAMES}, got {self.classes}")


TINY = SynthConfig(num_beams=16, num_azimuth=128, num_cameras=2, image_hw=(32, 64), scene_half_extent=14.0,
                   mean_objects=6.0)


# ----------------------------------------------------------------------------- geometry

def rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def bev_corners(box: np.ndarray) -> np.ndarray:
    """(4, 2) BEV corners of (x, y, z, dx, dy, dz, yaw, ...), counter-clockwise."""
    hx, hy = box[3] / 2, box[4] / 2
    local = np.array([[hx, hy], [-hx, hy], [-hx, -hy], [hx, -hy]])
    return local @ rot_z(box[6])[:2, :2].T + box[:2]


def bev_overlap(a: np.ndarray, b: np.ndarray, margin: float = 0.0) -> bool:
    """Separating-axis test of two oriented BEV rectangles (each grown by `margin` per side)."""
    ga, gb = a.copy(), b.copy()
    ga[3:5] += 2 * margin
    gb[3:5] += 2 * margin
    ca, cb = bev_corners(ga), bev_corners(gb)
    for yaw in (a[6], b[6]):
        for axis in (np.array([math.cos(yaw), math.sin(yaw)]), np.array([-math.sin(yaw), math.cos(yaw)])):
            pa, pb = ca @ axis, cb @ axis
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


def cast_rays(origins: np.ndarray, dirs: np.ndarray, boxes: np.ndarray, ground_z: float = GROUND_Z,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit of each ray among the ground plane and every box (slab test in the box frame).

    Args:
        origins (3,) or (R, 3); dirs (R, 3) unit directions; boxes (B, >=7) gravity-centred boxes.
    Returns:
        t (R,) hit distance (inf: no hit), hit id (R,) (-1 ground, -2 none, else box index),
        normal (R, 3) world-frame surface normal, local (R, 3) hit point in the hit box's frame (0 for ground).
    """
    r = dirs.shape[0]
    o = np.broadcast_to(np.asarray(origins, dtype=float), (r, 3))
    t = np.full(r, np.inf)
    hit = np.full(r, -2, dtype=np.int64)
    normal = np.zeros((r, 3))
    local = np.zeros((r, 3))
    down = dirs[:, 2] < -1e-12
    tg = np.where(down, (ground_z - o[:, 2]) / np.where(down, dirs[:, 2], -1.0), np.inf)
    ok = down & (tg > 0)
    t[ok], hit[ok], normal[ok] = tg[ok], -1, (0.0, 0.0, 1.0)
    for k, box in enumerate(boxes):
        rot = rot_z(float(box[6]))
        ol = (o - box[:3]) @ rot  # R^T (o - c), row form
        dl = dirs @ rot
        dl = np.where(np.abs(dl) < 1e-12, 1e-12, dl)
        half = np.asarray(box[3:6], dtype=float) / 2
        t1, t2 = (-half - ol) / dl, (half - ol) / dl
        tnear, tfar = np.minimum(t1, t2), np.maximum(t1, t2)
        tmin, tmax = tnear.max(axis=1), tfar.min(axis=1)
        better = (tmax >= tmin) & (tmin > 1e-9) & (tmin < t)
        if not better.any():
            continue
        axis = tnear.argmax(axis=1)
        n_local = np.zeros((r, 3))
        n_local[np.arange(r), axis] = -np.sign(dl[np.arange(r), axis])
        t[better], hit[better] = tmin[better], k
        normal[better] = n_local[better] @ rot.T
        local[better] = ol[better] + tmin[better, None] * dl[better]
    return t, hit, normal, local


# ----------------------------------------------------------------------------- scene content

def _object(rng: np.random.Generator, name: str, x: float, y: float, yaw: float) -> dict:
    size, (v_lo, v_hi), p_move, _ = CLASSES[name]
    dims = np.array(size) * rng.normal(1.0, 0.05, 3)
    moving = rng.random() < p_move
    speed = rng.uniform(v_lo, v_hi) if moving else 0.0
    if name == "car":
        albedo = CAR_PAINTS[rng.integers(len(CAR_PAINTS))]
    elif name == "pedestrian":
        albedo = rng.uniform(0.1, 0.9, 3)
    else:
        albedo = np.zeros(3)  # class texture decides
    box = np.array([x, y, GROUND_Z + dims[2] / 2, *dims, yaw, speed * math.cos(yaw), speed * math.sin(yaw)])
    return {"name": name, "box": box, "albedo": albedo, "moving": bool(moving)}


def attribute_of(name: str, velocity: np.ndarray) -> str:
    """Spec 4.1: vehicles moving / parked at 0.2 m/s, pedestrians moving / standing, bicycles with / without rider."""
    moving = float(np.hypot(*velocity[:2])) > 0.2
    if name in ("car", "truck", "bus"):
        return "vehicle.moving" if moving else "vehicle.parked"
    if name == "pedestrian":
        return "pedestrian.moving" if moving else "pedestrian.standing"
    if name == "bicycle":
        return "cycle.with_rider" if moving else "cycle.without_rider"
    return ""


def sample_objects(rng: np.random.Generator, cfg: SynthConfig) -> list[dict]:
    """Step 1: object list with rejection of ego-near (< 3 m) and BEV-overlapping placements."""
    n = int(np.clip(rng.poisson(cfg.mean_objects), 3, 30))
    objects: list[dict] = []
    ext = cfg.scene_half_extent
    if cfg.classes == CLASS_NAMES:
        names, probs = CLASS_NAMES, CLASS_PROBS
    else:
        names = cfg.classes
        probs = np.array([CLASS_PROBS[CLASS_NAMES.index(c)] for c in names])
        probs = tuple(probs / probs.sum())
    for _ in range(n * 20):
        if len(objects) >= n:
            break
        name = str(rng.choice(names, p=probs))
        if rng.random() < 0.6:  # lane bands
            y = rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 9.0)
            x = rng.uniform(-ext, ext)
            yaw = float(rng.choice([0.0, math.pi]) + rng.normal(0.0, 0.1))
        else:
            x, y = rng.uniform(-ext, ext, 2)
            yaw = float(rng.uniform(-math.pi, math.pi))
        count = int(rng.integers(2, 6)) if name in STATIC and rng.random() < 0.5 else 1
        step = rng.uniform(1.5, 3.0)
        group = [_object(rng, name, x + i * step * math.cos(yaw), y + i * step * math.sin(yaw), yaw)
                 for i in range(count)]
        if all(math.hypot(g["box"][0], g["box"][1]) >= 3.0 and max(abs(g["box"][0]), abs(g["box"][1])) <= ext
               and not any(bev_overlap(g["box"], o["box"], 0.1) for o in objects) for g in group) \
                and not any(bev_overlap(a["box"], b["box"], 0.1) for i, a in enumerate(group) for b in group[i + 1:]):
            objects.extend(group[: n - len(objects)])
    for o in objects:
        o["attribute"] = attribute_of(o["name"], o["box"][7:9])
    return objects


# ----------------------------------------------------------------------------- LiDAR

def lidar_directions(cfg: SynthConfig) -> np.ndarray:
    """(num_beams * num_azimuth, 3) unit directions, beams linear in elevation, azimuth from +x."""
    el = np.deg2rad(np.linspace(cfg.elev_min_deg, cfg.elev_max_deg, cfg.num_beams))
    az = np.arange(cfg.num_azimuth) * (2 * math.pi / cfg.num_azimuth)
    el, az = np.meshgrid(el, az, indexing="ij")
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1).reshape(-1, 3)


def boxes_at(boxes: np.ndarray, t: float) -> np.ndarray:
    """Boxes moved to time t: centre + v t (ego static)."""
    out = boxes.copy()
    out[:, 0:2] += boxes[:, 7:9] * t
    return out


def lidar_sweep(rng: np.random.Generator, objects: list[dict], cfg: SynthConfig, t: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """One sweep at time t: (N, 5) points (x, y, z, intensity, time lag -t) and (N,) hit ids (-1 ground)."""
    boxes = boxes_at(np.stack([o["box"] for o in objects]), t) if objects else np.zeros((0, 9))
    dirs = lidar_directions(cfg)
    dist, hit, _, _ = cast_rays(np.zeros(3), dirs, boxes)
    dist = dist + rng.normal(0.0, cfg.range_noise, dist.shape) if cfg.range_noise > 0 else dist
    keep = (hit != -2) & (dist <= cfg.max_range) & (rng.random(dist.shape) >= cfg.dropout)
    intens = np.array([CLASSES[o["name"]][3] for o in objects] + [0.1])  # index -1 -> ground 0.1
    noise = rng.normal(0.0, cfg.intensity_noise, int(keep.sum())) if cfg.intensity_noise > 0 else 0.0
    inten = intens[hit[keep]] + noise
    pts = np.concatenate([dirs[keep] * dist[keep, None], inten[:, None], np.full((int(keep.sum()), 1), -t)], axis=1)
    return pts.astype(np.float32), hit[keep]


# ----------------------------------------------------------------------------- cameras

def camera_calibration(yaw_deg: float, image_hw: tuple[int, int], fov_deg: float = 70.0,
                       height: float = -0.3) -> dict[str, np.ndarray]:
    """K, sensor2lidar (R, t), lidar2cam and lidar2img (= K4 @ lidar2cam, as in CMT) of one pinhole.

    Camera axes x right, y down, z forward; R = R_z(yaw) @ [[0,0,1], [-1,0,0], [0,-1,0]]; t = (0, 0, height).
    """
    h, w = image_hw
    f = w / (2 * math.tan(math.radians(fov_deg) / 2))
    k = np.array([[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]])
    rot = rot_z(math.radians(yaw_deg)) @ np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    trans = np.array([0.0, 0.0, height])
    lidar2cam = np.eye(4)
    lidar2cam[:3, :3] = rot.T
    lidar2cam[:3, 3] = -rot.T @ trans
    k4 = np.eye(4)
    k4[:3, :3] = k
    return {"cam_intrinsic": k, "sensor2lidar_rotation": rot, "sensor2lidar_translation": trans,
            "lidar2cam": lidar2cam, "lidar2img": k4 @ lidar2cam}


def project(lidar2img: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) LiDAR points -> (N, 2) pixel (u, v) and (N,) depth."""
    hom = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ lidar2img.T
    return hom[:, :2] / hom[:, 2:3], hom[:, 2]


def _face_colour(name: str, albedo: np.ndarray, local: np.ndarray, box: np.ndarray, moving: bool,
                 normal_axis: np.ndarray) -> np.ndarray:
    """Class texture in face coordinates: h = height fraction, a = fraction along the heading."""
    h = (local[:, 2] + box[5] / 2) / box[5]
    a = (local[:, 0] + box[3] / 2) / box[3]
    side = normal_axis != 2
    col = np.empty((len(local), 3))

    def two(mask, c_true, c_false):
        col[:] = np.where(mask[:, None], np.asarray(c_true, dtype=float), np.asarray(c_false, dtype=float))
    if name == "car":
        two(side & (h > 0.65), (0.08, 0.08, 0.1), albedo)
    elif name == "truck":
        two(a > 0.75, (0.55, 0.3, 0.1), (0.95, 0.95, 0.92))
    elif name == "bus":
        two(side & (h > 0.55) & (h < 0.85), (0.1, 0.1, 0.15), (0.85, 0.15, 0.1))
    elif name == "pedestrian":
        two(h > 0.88, (0.85, 0.65, 0.5), albedo)
    elif name == "bicycle":
        two((h > 0.5) if moving else np.zeros(len(h), bool), (0.2, 0.4, 0.8), (0.1, 0.1, 0.1))
    elif name == "barrier":
        two(np.floor((local[:, 1] + box[4] / 2) / 0.5) % 2 == 0, (0.85, 0.1, 0.1), (0.95, 0.95, 0.95))
    elif name == "traffic_cone":
        two((h > 0.5) & (h < 0.7), (0.95, 0.95, 0.95), (1.0, 0.45, 0.0))
    else:  # bollard
        two(h > 0.8, (0.95, 0.85, 0.1), (0.45, 0.45, 0.48))
    return col


def render_camera(calib: dict[str, np.ndarray], objects: list[dict], image_hw: tuple[int, int],
                  rng: np.random.Generator | None = None, noise: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel ray casting through pixel centres: (H, W, 3) uint8 image, (H, W) instance ids (-1 ground,
    -2 sky, else object index) and (H, W) camera depth (z_cam, inf for sky)."""
    h, w = image_hw
    # Design choice: rendering rays through pixel centres; the token PE uses cell corners (official).
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    k_inv = np.linalg.inv(calib["cam_intrinsic"])
    rays_cam = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3) @ k_inv.T  # z_cam = 1
    rot, origin = calib["sensor2lidar_rotation"], calib["sensor2lidar_translation"]
    dirs = rays_cam @ rot.T
    norm = np.linalg.norm(dirs, axis=1, keepdims=True)
    boxes = np.stack([o["box"] for o in objects]) if objects else np.zeros((0, 9))
    t, hit, normal, local = cast_rays(origin, dirs / norm, boxes)
    pts = origin + dirs / norm * t[:, None]
    col = np.zeros((len(t), 3))
    sky = hit == -2
    elev = (dirs / norm)[:, 2]
    col[sky] = np.stack([0.55 + 0.3 * elev[sky], 0.7 + 0.2 * elev[sky], np.full(int(sky.sum()), 0.95)], axis=1)
    gr = hit == -1
    gx, gy = pts[gr, 0], pts[gr, 1]
    grey = 0.42 + 0.04 * np.sin(0.31 * gx + 1.3) * np.cos(0.23 * gy + 0.7)
    stripe = np.min(np.abs(np.abs(gy)[:, None] - np.array([2.0, 9.0])[None]), axis=1) < 0.1
    col[gr] = np.where(stripe[:, None], 0.9, grey[:, None])
    for k, o in enumerate(objects):
        m = hit == k
        if not m.any():
            continue
        box = o["box"]
        axis = np.abs(normal[m] @ rot_z(float(box[6]))).argmax(axis=1)
        base = _face_colour(o["name"], o["albedo"], local[m], box, o["moving"], axis)
        col[m] = base * (0.35 + 0.65 * np.clip(normal[m] @ SUN, 0.0, None))[:, None]
    if noise and rng is not None:
        col = col * rng.uniform(0.85, 1.15) + rng.normal(0.0, 3 / 255, col.shape)
    img = (np.clip(col, 0.0, 1.0) * 255 + 0.5).astype(np.uint8).reshape(h, w, 3)
    depth = np.where(np.isinf(t), np.inf, t / norm[:, 0]).reshape(h, w)  # ray t / |ray(z_cam=1)| -> z_cam
    return img, hit.reshape(h, w), depth


# ----------------------------------------------------------------------------- scene

def generate_scene(seed: int, split_id: int, index: int, cfg: SynthConfig = SynthConfig()) -> dict:
    """One SynthDrive sample in the mmdet3d info layout (+ arrays): points (N, 5) over all sweeps, images
    {cam: (H, W, 3) uint8}, instance maps, cams {cam: calibration}, gt_boxes (N, 7) gravity centre,
    gt_velocity (N, 2), gt_names, gt_attrs, num_lidar_pts (current sweep). Deterministic in (seed, split_id,
    index, cfg)."""
    rng = np.random.default_rng([seed, split_id, index])
    objects = sample_objects(rng, cfg)
    sweeps, num_pts = [], np.zeros(len(objects), dtype=np.int64)
    for t in cfg.sweep_times:
        pts, hit = lidar_sweep(rng, objects, cfg, t)
        if t == 0.0:
            num_pts = np.bincount(hit[hit >= 0], minlength=len(objects))[: len(objects)]
        sweeps.append(pts)
    cams, images, instances = {}, {}, {}
    for name, yaw in list(zip(CAMERA_NAMES, CAMERA_YAWS_DEG))[: cfg.num_cameras]:
        cams[name] = camera_calibration(yaw, cfg.image_hw, cfg.fov_deg, cfg.camera_height)
        images[name], instances[name], _ = render_camera(cams[name], objects, cfg.image_hw, rng, cfg.render_noise)
    boxes = np.stack([o["box"] for o in objects]) if objects else np.zeros((0, 9))
    return {"token": f"{seed}-{split_id}-{index}", "points": np.concatenate(sweeps, axis=0), "images": images,
            "instances": instances, "cams": cams, "gt_boxes": boxes[:, :7].copy(), "gt_velocity": boxes[:, 7:9].copy(),
            "gt_names": [o["name"] for o in objects], "gt_attrs": [o["attribute"] for o in objects],
            "num_lidar_pts": num_pts}


def scene_info(scene: dict, split: str) -> dict:
    """The JSON-able info record of one scene (mmdet3d nuScenes info keys; paths relative to the split root)."""
    token = scene["token"]
    cams = {name: {"data_path": f"cams/{token}_{name}.png", **{k: v.tolist() for k, v in cal.items()}}
            for name, cal in scene["cams"].items()}
    return {"token": token, "split": split, "lidar_path": f"points/{token}.npy", "cams": cams,
            "gt_boxes": scene["gt_boxes"].tolist(), "gt_velocity": scene["gt_velocity"].tolist(),
            "gt_names": list(scene["gt_names"]), "gt_attrs": list(scene["gt_attrs"]),
            "num_lidar_pts": scene["num_lidar_pts"].tolist()}


def write_split(root: str | Path, seed: int, split: str, num_scenes: int, cfg: SynthConfig = SynthConfig()) -> Path:
    """Write `num_scenes` scenes under root: points/{token}.npy (float32, N x 5), cams/{token}_{cam}.png and
    infos_{split}.json (a list of `scene_info` records). split_id: train 0, val 1, test 2."""
    from PIL import Image

    split_ids = {"train": 0, "val": 1, "test": 2}
    if split not in split_ids:
        raise ValueError(f"split={split!r}; allowed: {tuple(split_ids)}")
    root = Path(root)
    (root / "points").mkdir(parents=True, exist_ok=True)
    (root / "cams").mkdir(parents=True, exist_ok=True)
    infos = []
    for index in range(num_scenes):
        scene = generate_scene(seed, split_ids[split], index, cfg)
        info = scene_info(scene, split)
        np.save(root / info["lidar_path"], scene["points"].astype(np.float32))
        for name, img in scene["images"].items():
            Image.fromarray(img).save(root / info["cams"][name]["data_path"])
        infos.append(info)
    out = root / f"infos_{split}.json"
    out.write_text(json.dumps(infos))
    return out
