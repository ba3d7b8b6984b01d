"""Heatmap GT of maskfocal (arXiv 2212.11542, spec 2.1-2.2): radius, Gaussians, masks, pseudo-boxes."""

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.maskfocal.heatmap import (THRESHOLD_TAU, centernet_targets, draw_heatmap, fcos_targets,
                                               gaussian_radius, head_radii, pseudo_boxes)


def reference_radius(height, width, min_overlap=0.7):
    """CenterNet's gaussian_radius as published (three roots, the last two divided by 2, not 2a)."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def test_gaussian_radius_hand_value():
    # h = w = 10: case 3: a = 2.8, b = -2 * 0.7 * 20 = -28, c = -0.3 * 100 = -30
    #   -> (-28 + sqrt(784 + 336)) / 2 = (-28 + 33.466) / 2 = 2.7332;
    # case 1: (20 + sqrt(400 - 4 * 17.647)) / 2 = 19.075; case 2: (40 + sqrt(1600 - 480)) / 2 = 36.73 -> min 2.7332.
    assert gaussian_radius(10, 10) == pytest.approx((-28 + math.sqrt(1120)) / 2, abs=1e-12)
    assert gaussian_radius(10, 10) == pytest.approx(2.73320, abs=1e-5)


@pytest.mark.parametrize("h", [1.0, 2.5, 4.0, 7.0, 16.0, 33.0])
@pytest.mark.parametrize("w", [1.0, 3.0, 8.0, 20.0])
def test_gaussian_radius_pinned_to_reference(h, w):
    assert gaussian_radius(h, w) == pytest.approx(reference_radius(h, w), rel=1e-12)


def test_min_radius_floor_keeps_tiny_heads():
    # A 2x2 px head at stride 4 is 0.5 x 0.5 cells: rho < 1 -> floor 0, raised to r_min = 1.
    box = np.array([[9.0, 9.0, 11.0, 11.0]])
    assert head_radii(box, 4, min_radius=0)[0] == 0
    assert head_radii(box, 4)[0] == 1
    t = draw_heatmap(box, (8, 8), 4)
    assert t.heatmap[2, 2] == 1.0  # c~ = floor(10 / 4) = 2
    for m in ("box", "radius", "threshold"):
        assert t.masks[m][2, 2] == 1.0 and t.masks[m].sum() >= 1


def test_gaussian_values_and_sigma():
    # A 32 px head at stride 4 is 8 x 8 cells: case 3: b = -22.4, c = -19.2 -> (-22.4 + sqrt(716.8)) / 2 = 2.187
    # -> r = 2, sigma = (2 r + 1) / 6 = 5/6, and Y at distance 1 from the peak = exp(-1 / (2 * 25/36)) = exp(-0.72).
    box = np.array([[0.0, 0.0, 32.0, 32.0]])
    assert head_radii(box, 4)[0] == 2
    t = draw_heatmap(box, (10, 10), 4)  # centre 16 px -> c~ = (4, 4)
    assert t.heatmap[4, 4] == 1.0
    assert t.heatmap[4, 5] == pytest.approx(math.exp(-0.72), rel=1e-6)
    assert t.heatmap[5, 5] == pytest.approx(math.exp(-1.44), rel=1e-6)
    assert t.heatmap[4, 7] == 0.0  # outside the (2r + 1)^2 window


def test_threshold_mask_is_one_sigma_disc():
    # 80 px = 20 cells: case 3: (-56 + sqrt(4480)) / 2 = 5.466 -> r = 5, sigma = 11/6: the 3x3 block (d^2 <= 2).
    box = np.array([[0.0, 0.0, 80.0, 80.0]])
    assert head_radii(box, 4)[0] == 5
    t = draw_heatmap(box, (20, 20), 4)
    yy, xx = np.mgrid[0:20, 0:20]
    within = (np.abs(xx - 10) <= 1) & (np.abs(yy - 10) <= 1)
    np.testing.assert_array_equal(t.masks["threshold"] > 0, within)
    assert THRESHOLD_TAU == pytest.approx(0.60653, abs=1e-5)


def test_overlapping_heads_combine_by_max():
    boxes = np.array([[0.0, 0.0, 40.0, 40.0], [8.0, 0.0, 48.0, 40.0]])  # centres at cells (5, 5) and (7, 5)
    t = draw_heatmap(boxes, (12, 14), 4)
    assert t.heatmap[5, 5] == 1.0 and t.heatmap[5, 7] == 1.0  # a sum would exceed 1 at both peaks
    assert t.heatmap.max() == 1.0
    one = draw_heatmap(boxes[:1], (12, 14), 4).heatmap
    two = draw_heatmap(boxes[1:], (12, 14), 4).heatmap
    np.testing.assert_array_equal(t.heatmap, np.maximum(one, two))


def test_number_of_peaks_equals_distinct_centre_cells(gen):
    rng = np.random.default_rng(0)
    c = rng.uniform(4, 60, (40, 2))
    boxes = np.concatenate([c - 3, c + 3], 1)
    t = draw_heatmap(boxes, (16, 16), 4)
    distinct = len({(int(x // 4), int(y // 4)) for x, y in c})
    assert int((t.heatmap == 1).sum()) == distinct


def test_box_mask_covers_the_cells_the_box_touches():
    t = draw_heatmap(np.array([[5.0, 6.0, 13.0, 9.0]]), (6, 6), 4)
    # x cells floor(5/4) = 1 .. ceil(13/4) - 1 = 3; y cells floor(6/4) = 1 .. ceil(9/4) - 1 = 2.
    expected = np.zeros((6, 6))
    expected[1:3, 1:4] = 1
    np.testing.assert_array_equal(t.masks["box"], expected)


def test_pseudo_boxes_modes():
    pts = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0], [100.0, 100.0]])
    # knn, k = 3, beta 0.3: point 0 neighbours at 10, 10, 14.142 -> s = 0.3 * 34.142 / 3 = 3.4142.
    b = pseudo_boxes(pts, "knn")
    assert b[0, 2] - b[0, 0] == pytest.approx(0.3 * (20 + math.sqrt(200)) / 3)
    # nn: s = nearest distance = 10 for point 0; the isolated point's nearest is 127.3 -> clipped to 64.
    b = pseudo_boxes(pts, "nn")
    assert b[0, 2] - b[0, 0] == pytest.approx(10.0)
    assert b[4, 2] - b[4, 0] == pytest.approx(64.0)
    b = pseudo_boxes(pts[:1], "knn")  # one head: the fixed 16 px fallback
    assert_close(torch.tensor(b), torch.tensor([[-8.0, -8.0, 8.0, 8.0]], dtype=torch.float64))
    with pytest.raises(ValueError):
        pseudo_boxes(pts, "bogus")


def test_fcos_targets_centre_cell_always_positive():
    boxes = np.array([[9.0, 9.0, 11.0, 11.0], [20.0, 20.0, 60.0, 60.0]])  # a 2 px head and a 40 px head
    t = fcos_targets(boxes, (64, 64), (4, 8), size_split=16.0)
    n4 = 16 * 16
    assert t["labels"][2 * 16 + 2] == 1  # the tiny head's centre cell (2, 2) at stride 4
    assert t["labels"][n4:].sum() > 1  # the big head lives on stride 8 with several positives
    assert t["labels"][:n4].sum() == 1
    pos = t["labels"] > 0
    assert np.all(t["centerness"][pos] <= 1) and np.all(t["centerness"][~pos] == 0)
    assert float(t["num_heads"]) == 2


def test_centernet_targets_shapes():
    t = centernet_targets(np.array([[0.0, 0.0, 8.0, 8.0]]), (32, 32), 4)
    assert t["heatmap"].shape == (1, 8, 8) and t["mask_box"].shape == (1, 8, 8)
    assert_close(torch.tensor(t["size"]), torch.tensor([[2.0, 2.0]]))  # 8 px / stride 4
    assert_close(torch.tensor(t["offset"]), torch.tensor([[0.0, 0.0]]))  # centre 4 px -> 1.0 cell, c~ = 1


def test_target_stats_hand_values():
    from tenfold.systems.maskfocal.heatmap import target_stats

    # One 32 px head at stride 4 (8 x 8 cells, r = 2, sigma = 5/6, see test_gaussian_values_and_sigma): the box
    # mask (64 cells) holds the whole 5 x 5 window, so sum M Y = (1 + 2 e^{-0.72} + 2 e^{-2.88})^2
    # = (1 + 0.97350 + 0.11226)^2 = 2.08576^2 = 4.35040; the peak holds 1 / 4.35040 = 0.22986 of it.
    s = target_stats([np.array([[0.0, 0.0, 32.0, 32.0]])], (40, 40), 4)
    row = 1 + 2 * math.exp(-0.72) + 2 * math.exp(-2.88)
    assert s["num_heads"] == 1 and s["radius_counts"] == {2: 1} and s["floor_radius_share"] == 0.0
    assert s["mask_weight_per_head"] == pytest.approx(row ** 2, rel=1e-6)
    assert s["peak_weight_share"] == pytest.approx(1 / row ** 2, rel=1e-6)
    assert s["mask_cells_per_head"] == 64 and s["peaks_per_head"] == 1
    # Two tiny heads (2 x 2 px, one cell each, r = 1) plus an empty image: all weight on the peaks (CenterNet's
    # loss exactly), radius at the floor for every head.
    tiny = target_stats([np.array([[1.0, 1.0, 3.0, 3.0], [21.0, 21.0, 23.0, 23.0]]), np.zeros((0, 4))], (32, 32), 4)
    assert tiny["radius_counts"] == {1: 2} and tiny["floor_radius_share"] == 1.0 and tiny["median_radius"] == 1.0
    assert tiny["peak_weight_share"] == 1.0 and tiny["mask_weight_per_head"] == 1.0


def _dense_assignment(b, c, area, shape, s, radius):
    """The dense (L, K, 4) FCOS assignment the lazy one replaced (reference parity)."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    pts = np.stack([xs.ravel(), ys.ravel()], 1) * s + s / 2.0
    ltrb = np.concatenate([pts[:, None] - b[None, :, :2], b[None, :, 2:] - pts[:, None]], 2)
    match = (ltrb.min(2) > 0) & (np.abs(pts[:, None] - c[None]).max(2) < radius * s)
    cell = np.floor(c / s).astype(np.int64).clip(0, [w - 1, h - 1])
    match[cell[:, 1] * w + cell[:, 0], np.arange(len(b))] = True
    # smallest area wins, first on exact ties (the replaced code scored 1e8 - area, which rounds areas that
    # differ by less than 1.5e-8 to a tie)
    score = np.where(match, -area[None], -np.inf)
    return score.argmax(1), match.any(1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lazy_fcos_assignment_equals_the_dense_one(seed):
    from tenfold.systems.maskfocal.heatmap import _assign_locations

    rng = np.random.default_rng(seed)
    xy = rng.uniform(-4, 100, (60, 2))
    wh = rng.choice([2.0, 5.0, 8.0, 13.0, 30.0], (60, 2))  # repeated sizes: equal areas test the tie rule
    b = np.concatenate([xy, xy + wh], 1).clip(0, 96)
    b = b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
    c, area = (b[:, :2] + b[:, 2:]) / 2, (b[:, 2:] - b[:, :2]).prod(1)
    for s in (4, 8):
        shape = (96 // s, 96 // s)
        idx, pos = _assign_locations(b, c, area, shape, s, 1.5)
        ref_idx, ref_pos = _dense_assignment(b, c, area, shape, s, 1.5)
        np.testing.assert_array_equal(pos, ref_pos)
        np.testing.assert_array_equal(idx[pos], ref_idx[ref_pos])
