"""Coordinates encoding of cmt (arXiv 2301.01283, spec components 5 and 6): hand-computed rays and frequencies."""

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.cmt.position_encoding import (BEVPositionEncoding, CoordinatesEncoding, bev_cell_centres,
                                                   depth_bins, frustum_pixels, lift_frustum, normalise_points,
                                                   pos2embed)
from tenfold.systems.cmt.synthdrive import GROUND_Z, camera_calibration, render_camera

D = torch.float64
F_FRONT = 128 / math.tan(math.radians(35))  # focal length of a 256-px-wide, 70-deg camera


def front_l2i() -> torch.Tensor:
    return torch.as_tensor(camera_calibration(0.0, (96, 256))["lidar2img"], dtype=D)


def test_depth_bins_official_values() -> None:
    # Spec 7: 64 bins from 1.0 to 1 + 63 * 53 / 64 = 53.17 m; bin size 53 / 64.
    b = depth_bins(64, 54.0)
    assert b[0].item() == 1.0 and b[-1].item() == pytest.approx(1 + 63 * 53 / 64) and len(b) == 64
    assert depth_bins(32, 32.0)[-1].item() == pytest.approx(1 + 31 * 31 / 32)  # quick preset: ~31 m


def test_frustum_pixels_are_cell_corners() -> None:
    # 6 x 16 cells on 96 x 256: stride 16, u = 16 j, v = 16 i (top-left corner, no +0.5).
    px = frustum_pixels((6, 16), (96, 256))
    assert px.shape == (6, 16, 2)
    assert px[3, 8].tolist() == [128.0, 48.0] and px[0, 0].tolist() == [0.0, 0.0]
    assert px[5, 15].tolist() == [240.0, 80.0]


def test_lift_principal_point_and_corner_by_hand() -> None:
    # Front camera at (0, 0, -0.3) looking along +x. The principal point (128, 48) at depth d lies at (d, 0, -0.3).
    # Pixel (0, 0) at depth d: cam (x, y) = (-128 d / f, -48 d / f) -> LiDAR (d, +128 d / f, -0.3 + 48 d / f).
    depths = torch.tensor([2.0, 5.0], dtype=D)
    pixels = torch.tensor([[[128.0, 48.0], [0.0, 0.0]]], dtype=D)             # (H=1, W=2, 2)
    pts = lift_frustum(front_l2i(), pixels, depths)                            # (1, 2, 2, 3)
    assert_close(pts[0, 0], torch.tensor([[2.0, 0.0, -0.3], [5.0, 0.0, -0.3]], dtype=D))
    f = F_FRONT
    assert_close(pts[0, 1], torch.tensor([[d, 128 * d / f, -0.3 + 48 * d / f] for d in (2.0, 5.0)], dtype=D))
    # The +55 deg camera: the principal point at depth 10 lies 10 m along azimuth 55 deg.
    l2i = torch.as_tensor(camera_calibration(55.0, (96, 256))["lidar2img"], dtype=D)
    p = lift_frustum(l2i, pixels[:, :1], torch.tensor([10.0], dtype=D))[0, 0, 0]
    a = math.radians(55)
    assert_close(p, torch.tensor([10 * math.cos(a), 10 * math.sin(a), -0.3], dtype=D))


def test_ray_sample_at_rendered_depth_lies_on_surface() -> None:
    # A 2 m cube centred at (10, 0, -0.3): the front camera renders depth 9 at the principal pixel. With
    # D = 4 bins on x_max = 17 (1, 5, 9, 13) the third sample of the token ray through (128, 48) is (9, 0, -0.3),
    # a point of the cube's rear face x = 9.
    cube = {"name": "car", "box": np.array([10.0, 0.0, -0.3, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0]),
            "albedo": np.ones(3) * 0.5, "moving": False}
    _, inst, depth = render_camera(camera_calibration(0.0, (96, 256)), [cube], (96, 256), noise=False)
    assert inst[48, 128] == 0 and depth[48, 128] == pytest.approx(9.0)
    enc = CoordinatesEncoding(8, 4, (-17.0, -17.0, -3.0, 17.0, 17.0, 2.0))
    assert enc.depths.tolist() == [1.0, 5.0, 9.0, 13.0]
    pts = lift_frustum(front_l2i(), frustum_pixels((6, 16), (96, 256)), enc.depths.double())
    assert_close(pts[3, 8, 2], torch.tensor([9.0, 0.0, -0.3], dtype=D))
    # Normalised without clamping: x = 9 -> (9 + 17) / 34; the 13 m sample of a corner ray leaves [0, 1] in y.
    rp = enc.ray_points(front_l2i()[None, None].float(), (6, 16), (96, 256))   # (1, 1, 6, 16, 12)
    assert rp.shape == (1, 1, 6, 16, 12)
    assert rp[0, 0, 3, 8, 6].item() == pytest.approx(26 / 34)
    assert rp[0, 0, 0, 0].max().item() > 1.0 and GROUND_Z < 0


def test_coordinates_encoding_is_the_mlp_of_the_ray() -> None:
    torch.manual_seed(0)
    enc = CoordinatesEncoding(16, 4, (-17.0, -17.0, -3.0, 17.0, 17.0, 2.0))
    assert enc.rv_embedding[0].in_features == 12 and enc.rv_embedding[0].out_features == 64
    l2i = torch.stack([front_l2i(), torch.as_tensor(camera_calibration(180.0, (96, 256))["lidar2img"])]).float()
    out = enc(l2i[None], (6, 16), (96, 256))
    assert out.shape == (1, 2, 6, 16, 16)
    x = enc.ray_points(l2i[None], (6, 16), (96, 256))[0, 1, 2, 5]
    assert_close(out[0, 1, 2, 5], enc.rv_embedding(x))
    # Different cameras see different rays -> different embeddings for the same cell.
    assert not torch.allclose(out[0, 0, 2, 5], out[0, 1, 2, 5])
    assert_close(normalise_points(torch.tensor([[-17.0, 17.0, 2.0]]), enc.pc_range), torch.tensor([[0.0, 1.0, 1.0]]))


def test_pos2embed_official_frequency_quirk() -> None:
    # Spec 7: divisors 1 + 2 floor(i / 2) / 256 span [1, 1.9922]; standard: 10000^(2 floor(i / 2) / 256) up to ~9312.
    # At x = 0.25 (y = 0): official feature 0 = sin(2 pi 0.25 / 1) = 1; feature 255 = cos(2 pi 0.25 / (1 + 254/256)).
    e = pos2embed(torch.tensor([[0.25, 0.0]], dtype=D), 256)
    assert e.shape == (1, 512)
    x = e[0, 256:]
    assert x[0].item() == pytest.approx(1.0)
    assert x[255].item() == pytest.approx(math.cos(2 * math.pi * 0.25 / (1 + 254 / 256)))
    assert e[0, 0].item() == pytest.approx(0.0) and e[0, 1].item() == pytest.approx(1.0)  # y part: sin 0, cos 0
    s = pos2embed(torch.tensor([[0.25, 0.0]], dtype=D), 256, use_official_pos2embed=False)[0, 256:]
    assert s[255].item() == pytest.approx(math.cos(2 * math.pi * 0.25 / 10000 ** (254 / 256)))


def test_bev_positions_and_embedding_shape() -> None:
    c = bev_cell_centres((2, 4))
    assert c[0].tolist() == [0.125, 0.25] and c[5].tolist() == [0.375, 0.75]   # row 1, col 1
    pe = BEVPositionEncoding(16)
    assert pe(c).shape == (8, 16) and pe.bev_embedding[0].in_features == 32


def test_query_image_pe_equals_token_pe_on_its_ray() -> None:
    # Spec 7: an anchor exactly on a token's ray at a bin depth gets that token's PE. Token (3, 8) of the front
    # camera (pixel (128, 48)) at the 9 m bin is (9, 0, -0.3); neither the +55 deg nor the back camera sees it
    # (their fields of view start at 20 deg / are behind), so the sum over views is the front token's PE alone.
    torch.manual_seed(1)
    pc = (-17.0, -17.0, -3.0, 17.0, 17.0, 2.0)
    enc = CoordinatesEncoding(16, 4, pc)
    l2i = torch.stack([torch.as_tensor(camera_calibration(y, (96, 256))["lidar2img"]) for y in (0.0, 55.0, 180.0)])
    l2i = l2i[None].float()
    tokens = enc(l2i, (6, 16), (96, 256))                                           # (1, 3, 6, 16, 16)
    anchor = normalise_points(torch.tensor([[[9.0, 0.0, -0.3]]]), pc)               # (1, 1, 3)
    q = enc.query_embedding(anchor, l2i, (96, 256))
    assert_close(q[0, 0], tokens[0, 0, 3, 8], atol=1e-5, rtol=1e-5)
    # An anchor at azimuth 27.5 deg is seen by the front and the +55 deg cameras: the PE is the sum of both rays'.
    a = math.radians(27.5)
    p = torch.tensor([[[6 * math.cos(a), 6 * math.sin(a), -0.5]]])
    q2 = enc.query_embedding(normalise_points(p, pc), l2i, (96, 256))[0, 0]
    per_view = []
    for v in (0, 1):
        hom = l2i[0, v] @ torch.tensor([*p[0, 0].tolist(), 1.0])
        uv = hom[:2] / hom[2]
        assert 0 <= uv[0] < 256 and 0 <= uv[1] < 96
        ray = lift_frustum(l2i[0, v].double(), uv.double().reshape(1, 1, 2), enc.depths.double())
        per_view.append(enc.rv_embedding(normalise_points(ray, pc).flatten(-2).float())[0, 0])
    assert_close(q2, per_view[0] + per_view[1], atol=1e-5, rtol=1e-5)
    # An anchor straight above the cameras has depth 0 in every view (not > 0): no valid view, PE 0.
    up = normalise_points(torch.tensor([[[0.0, 0.0, 1.9]]]), pc)
    assert_close(enc.query_embedding(up, l2i, (96, 256)), torch.zeros(1, 1, 16))
