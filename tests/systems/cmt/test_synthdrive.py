"""SynthDrive generator of cmt (arXiv 2301.01283, spec section 4.1): ray-cast geometry, calibration, determinism."""

import math

import numpy as np
import pytest

from tenfold.systems.cmt.synthdrive import (CLASSES, GROUND_Z, STATIC, TINY, SynthConfig, attribute_of, bev_overlap,
                                            camera_calibration, cast_rays, generate_scene, lidar_sweep, project,
                                            render_camera, sample_objects)

EXACT = SynthConfig(num_beams=16, num_azimuth=256, range_noise=0.0, dropout=0.0, intensity_noise=0.0,
                    num_cameras=1, render_noise=False)


def obj(name, x, y=0.0, dims=None, yaw=0.0, vel=(0.0, 0.0), z=None):
    dx, dy, dz = dims or CLASSES[name][0]
    zc = GROUND_Z + dz / 2 if z is None else z
    return {"name": name, "box": np.array([x, y, zc, dx, dy, dz, yaw, *vel]), "albedo": np.array([0.5, 0.5, 0.5]),
            "moving": vel != (0.0, 0.0), "attribute": ""}


def test_cast_rays_hand_distances() -> None:
    boxes = np.array([[10.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0],             # front face at x = 9
                      [0.0, 10.0, 0.0, 4.0, 2.0, 2.0, math.pi / 2],      # rotated: world extent in y is dx = 4
                      [20.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0]])             # hidden behind box 0
    dirs = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0], [0, 0, 1.0], [-1.0, 0, 0]])
    t, hit, normal, local = cast_rays(np.zeros(3), dirs, boxes)
    # +x: box 0 at 10 - 1 = 9; +y: rotated box 1 at 10 - 4/2 = 8; down: ground at 1.84; up / -x: nothing.
    np.testing.assert_allclose(t[:3], [9.0, 8.0, 1.84])
    assert hit.tolist() == [0, 1, -1, -2, -2] and np.isinf(t[3:]).all()
    np.testing.assert_allclose(normal[:3], [[-1, 0, 0], [0, -1, 0], [0, 0, 1]], atol=1e-12)
    # Hit on box 1 in its frame: world (0, 8, 0) - (0, 10, 0) rotated by -90 deg -> (-2, 0, 0), the rear face.
    np.testing.assert_allclose(local[1], [-2.0, 0.0, 0.0], atol=1e-9)
    # An oblique ray: 45 deg up from (0, 0, 0) to box 0's face x = 9 -> t = 9 sqrt 2 only if z = 9 <= 1: misses.
    t2, hit2, _, _ = cast_rays(np.zeros(3), np.array([[1.0, 0.0, 1.0]]) / math.sqrt(2), boxes[:1])
    assert hit2[0] == -2
    t3, hit3, _, _ = cast_rays(np.zeros(3), np.array([[9.0, 0.0, 0.9]]) / math.hypot(9.0, 0.9), boxes[:1])
    assert hit3[0] == 0 and t3[0] == pytest.approx(math.hypot(9.0, 0.9))


def test_lidar_points_lie_on_surfaces() -> None:
    objects = [obj("car", 10.0, 0.0, yaw=0.4), obj("pedestrian", -6.0, 3.0), obj("bus", 0.0, -12.0, yaw=1.2)]
    pts, hit = lidar_sweep(np.random.default_rng(0), objects, EXACT, 0.0)
    assert pts.dtype == np.float32 and pts.shape[1] == 5
    np.testing.assert_allclose(pts[hit == -1, 2], GROUND_Z, atol=1e-5)
    for k, o in enumerate(objects):
        b = o["box"]
        c, s = math.cos(b[6]), math.sin(b[6])
        rel = pts[hit == k, :3].astype(float) - b[:3]
        local = np.stack([rel[:, 0] * c + rel[:, 1] * s, -rel[:, 0] * s + rel[:, 1] * c, rel[:, 2]], axis=1)
        gap = np.abs(np.abs(local) - b[3:6] / 2)
        assert len(local) > 0
        assert (np.abs(local) <= b[3:6] / 2 + 1e-4).all()          # inside the box ...
        assert (gap.min(axis=1) < 1e-4).all()                       # ... and on one of its faces
    assert np.unique(pts[:, 3][hit == 0]).tolist() == [pytest.approx(0.3)]  # car intensity, no noise


def test_velocity_observable_across_sweeps() -> None:
    # A 3 m tall box ahead (yaw 0, vx = 4 m/s): the LiDAR sees only its rear face x = 10 + 4 t - dx / 2.
    o = obj("truck", 10.0, dims=(2.0, 2.0, 3.0), vel=(4.0, 0.0))
    for t in (0.0, -0.25, -0.5):
        pts, hit = lidar_sweep(np.random.default_rng(0), [o], EXACT, t)
        face = pts[hit == 0]
        assert len(face) > 0
        np.testing.assert_allclose(face[:, 0], 10.0 + 4.0 * t - 1.0, atol=1e-4)
        np.testing.assert_allclose(face[:, 4], -t)  # time-lag channel


def test_calibration_projects_hand_computed_pixels() -> None:
    cal = camera_calibration(0.0, (96, 256), 70.0, -0.3)
    f = 128 / math.tan(math.radians(35))
    np.testing.assert_allclose(cal["cam_intrinsic"], [[f, 0, 128], [0, f, 48], [0, 0, 1]])
    # (10, -2, -1.3): relative to the camera (10, -2, -1) -> cam (x right 2, y down 1, z 10)
    # -> (u, v) = (128 + 0.2 f, 48 + 0.1 f).
    uv, depth = project(cal["lidar2img"], np.array([[10.0, -2.0, -1.3], [10.0, 0.0, -0.3]]))
    np.testing.assert_allclose(uv, [[128 + 0.2 * f, 48 + 0.1 * f], [128.0, 48.0]])
    np.testing.assert_allclose(depth, [10.0, 10.0])
    # The +55 deg camera looks along azimuth 55 deg: a point there at camera height hits its principal point.
    cal55 = camera_calibration(55.0, (96, 256))
    p = np.array([[10 * math.cos(math.radians(55)), 10 * math.sin(math.radians(55)), -0.3]])
    np.testing.assert_allclose(project(cal55["lidar2img"], p)[0], [[128.0, 48.0]], atol=1e-9)
    # lidar2cam inverts sensor2lidar.
    s2l = np.eye(4)
    s2l[:3, :3], s2l[:3, 3] = cal55["sensor2lidar_rotation"], cal55["sensor2lidar_translation"]
    np.testing.assert_allclose(cal55["lidar2cam"] @ s2l, np.eye(4), atol=1e-12)


def test_rendered_box_corner_and_depth() -> None:
    # Box 2 x 2 x 2 centred at (10, 0, -0.3): its rear face x = 9 faces the front camera head-on (depth 9).
    # Top-left corner of that face seen from the camera: (9, +1, +0.7) -> cam (-1, -1, 9) -> u = 128 - f/9,
    # v = 48 - f/9 = 48 - 20.31 = 27.69 (u = 107.69).
    cal = camera_calibration(0.0, (96, 256))
    f = 128 / math.tan(math.radians(35))
    o = obj("car", 10.0, dims=(2.0, 2.0, 2.0), z=-0.3)
    uv, _ = project(cal["lidar2img"], np.array([[9.0, 1.0, 0.7]]))
    u, v = uv[:, 0], uv[:, 1]
    assert (u[0], v[0]) == (pytest.approx(128 - f / 9), pytest.approx(48 - f / 9))
    img, inst, depth = render_camera(cal, [o], (96, 256), noise=False)
    col, row = int(u[0]), int(v[0])             # pixel (27, 107): centre (107.5, 27.5) is outside the face
    assert inst[row + 1, col + 1] == 0 and inst[row, col] != 0
    assert depth[row + 1, col + 1] == pytest.approx(9.0) and depth[48, 128] == pytest.approx(9.0)
    assert inst[0, 0] == -2 and inst[95, 0] == -1  # sky above, ground below


def test_cone_and_bollard_differ_only_in_colour() -> None:
    assert CLASSES["traffic_cone"][0] == CLASSES["bollard"][0] and CLASSES["traffic_cone"][3] == CLASSES["bollard"][3]
    cal = camera_calibration(0.0, (96, 256))
    cone, bollard = obj("traffic_cone", 6.0, 0.8), obj("bollard", 6.0, -0.8)
    img, inst, _ = render_camera(cal, [cone, bollard], (96, 256), noise=False)
    mean_cone = img[inst == 0].mean(axis=0) / 255
    mean_boll = img[inst == 1].mean(axis=0) / 255
    assert (inst == 0).sum() > 50 and (inst == 1).sum() > 50
    # Chromaticity r / (r + g + b): orange cone ~0.57, grey-and-yellow bollard ~0.38 (both faces in shade).
    assert mean_cone[0] / mean_cone.sum() - mean_boll[0] / mean_boll.sum() > 0.1
    # Same LiDAR returns for the two (noise-free): equal point counts and intensities when mirrored in y.
    p, h = lidar_sweep(np.random.default_rng(0), [cone, bollard], EXACT, 0.0)
    assert (h == 0).sum() == (h == 1).sum() and set(p[h == 0, 3]) == set(p[h == 1, 3])


def test_bev_overlap_hand_cases() -> None:
    a = np.array([0.0, 0.0, 0.0, 2.0, 2.0, 1.0, 0.0])
    assert bev_overlap(a, np.array([1.9, 0.0, 0.0, 2.0, 2.0, 1.0, 0.0]))
    assert not bev_overlap(a, np.array([2.1, 0.0, 0.0, 2.0, 2.0, 1.0, 0.0]))
    # A 45-deg rotated unit-diagonal square at x = 2.3: its corner reaches 2.3 - sqrt 2 = 0.886 < 1 -> overlap;
    # at x = 2.5: 1.086 > 1 -> separated (an axis-aligned bounding test would wrongly say overlap).
    rot = np.array([2.3, 0.0, 0.0, 2.0, 2.0, 1.0, math.pi / 4])
    assert bev_overlap(a, rot)
    rot[0] = 2.5
    assert not bev_overlap(a, rot)


def test_scene_sampling_rules() -> None:
    rng = np.random.default_rng(7)
    cfg = SynthConfig()
    for _ in range(5):
        objs = sample_objects(rng, cfg)
        assert 3 <= len(objs) <= 30
        for i, o in enumerate(objs):
            b = o["box"]
            assert math.hypot(b[0], b[1]) >= 3.0 and b[2] == pytest.approx(GROUND_Z + b[5] / 2)
            if o["name"] in STATIC:
                assert b[7] == 0.0 and b[8] == 0.0 and o["attribute"] == ""
            assert not any(bev_overlap(b, p["box"]) for p in objs[i + 1:])
    assert attribute_of("car", np.array([0.15, 0.15])) == "vehicle.moving"   # |v| = 0.212 > 0.2
    assert attribute_of("bicycle", np.array([0.0, 0.0])) == "cycle.without_rider"


def test_generate_scene_deterministic_and_consistent() -> None:
    a, b = generate_scene(3, 0, 1, TINY), generate_scene(3, 0, 1, TINY)
    np.testing.assert_array_equal(a["points"], b["points"])
    for cam in a["images"]:
        np.testing.assert_array_equal(a["images"][cam], b["images"][cam])
    c = generate_scene(3, 0, 2, TINY)
    assert a["points"].shape != c["points"].shape or not np.array_equal(a["points"], c["points"])
    n = len(a["gt_names"])
    assert a["gt_boxes"].shape == (n, 7) and a["gt_velocity"].shape == (n, 2) and len(a["num_lidar_pts"]) == n
    assert sorted(np.unique(a["points"][:, 4]).tolist()) == pytest.approx([0.0, 0.25, 0.5])
    assert a["num_lidar_pts"].sum() <= (a["points"][:, 4] == 0).sum()
    assert set(a["cams"]) == {"CAM_FRONT", "CAM_FRONT_LEFT"} and a["images"]["CAM_FRONT"].shape == (32, 64, 3)
    cal = a["cams"]["CAM_FRONT"]
    k4 = np.eye(4)
    k4[:3, :3] = cal["cam_intrinsic"]
    np.testing.assert_allclose(cal["lidar2img"], k4 @ cal["lidar2cam"])


def test_write_split_files(tmp_path) -> None:
    import json

    from PIL import Image

    from tenfold.systems.cmt.synthdrive import write_split
    out = write_split(tmp_path, 5, "val", 2, TINY)
    infos = json.loads(out.read_text())
    assert out.name == "infos_val.json" and [i["token"] for i in infos] == ["5-1-0", "5-1-1"]
    scene = generate_scene(5, 1, 1, TINY)
    pts = np.load(tmp_path / infos[1]["lidar_path"])
    np.testing.assert_array_equal(pts, scene["points"])
    img = np.asarray(Image.open(tmp_path / infos[1]["cams"]["CAM_FRONT"]["data_path"]))
    np.testing.assert_array_equal(img, scene["images"]["CAM_FRONT"])
    np.testing.assert_allclose(infos[1]["cams"]["CAM_FRONT"]["lidar2img"], scene["cams"]["CAM_FRONT"]["lidar2img"])
    assert set(infos[1]) >= {"lidar_path", "cams", "gt_boxes", "gt_velocity", "gt_names", "gt_attrs", "num_lidar_pts"}
    with pytest.raises(ValueError, match="split"):
        write_split(tmp_path, 5, "dev", 1, TINY)
