"""Box coder of cmt (arXiv 2301.01283, spec components 10 and 14): slot semantics, round trips, post-processing."""

import math

import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.cmt.box_coder import (bottom_to_gravity, code_to_slots, decode_head_outputs,
                                           decode_predictions, denormalize_bbox, from_nuscenes, gravity_to_bottom,
                                           inverse_sigmoid, normalize_bbox, slots_to_code, to_nuscenes)

PC = (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0)
D = torch.float64


def boxes() -> torch.Tensor:
    # x, y, z_gravity, dx, dy, dz, yaw, vx, vy
    return torch.tensor([[10.0, -3.0, -0.9, 4.6, 1.95, 1.7, 0.3, 5.0, 1.0],
                         [-20.0, 7.5, -1.2, 0.4, 0.4, 1.0, -2.9, 0.0, 0.0]], dtype=D)


def test_normalize_bbox_layout() -> None:
    # b = (x, y, log dx, log dy, z, log dz, sin yaw, cos yaw, vx, vy), centre in metres.
    b = normalize_bbox(boxes())[0]
    expected = torch.tensor([10.0, -3.0, math.log(4.6), math.log(1.95), -0.9, math.log(1.7), math.sin(0.3),
                             math.cos(0.3), 5.0, 1.0], dtype=D)
    assert_close(b, expected)


@pytest.mark.parametrize("order", ["official", "semantic"])
def test_round_trip_through_head_slots(order: str) -> None:
    code = normalize_bbox(boxes())
    slots = code_to_slots(code, order)
    back = denormalize_bbox(slots_to_code(slots["center"], slots["height"], slots["dim"], slots["rot"],
                                          slots["vel"], order))
    assert_close(back, boxes(), rtol=0, atol=1e-12)


def test_official_slot_naming_quirk() -> None:
    # Sub-head outputs with distinct values: center (0, 1), height 2, dim (3, 4, 5), rot (6, 7), vel (8, 9).
    c, h, d = torch.tensor([0.0, 1.0]), torch.tensor([2.0]), torch.tensor([3.0, 4.0, 5.0])
    r, v = torch.tensor([6.0, 7.0]), torch.tensor([8.0, 9.0])
    official = slots_to_code(c, h, d, r, v, "official")
    # b position 2 is log dx: the official "height" slot sits there; position 4 (z) gets dim[1].
    assert official.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    semantic = slots_to_code(c, h, d, r, v, "semantic")
    # Semantic: log dx <- dim[0] (3), log dy <- dim[1] (4), z <- height (2), log dz <- dim[2] (5).
    assert semantic.tolist() == [0, 1, 3, 4, 2, 5, 6, 7, 8, 9]
    # Decoded with the official order, the "height" output becomes the box length dx = exp(2).
    box = denormalize_bbox(official)
    assert box[3].item() == pytest.approx(math.exp(2.0)) and box[2].item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="slot_order"):
        slots_to_code(c, h, d, r, v, "names")


def test_zero_delta_returns_the_anchor() -> None:
    # Spec 7: a_x = 0.5 -> x = 0 m on [-54, 54]; a_y = 0.25 -> -27 m; a_z = 0.5 -> -1 m on [-5, 3].
    ref = torch.tensor([[0.5, 0.25, 0.5]], dtype=D)
    z1, z2, z3 = torch.zeros(1, 1, dtype=D), torch.zeros(1, 2, dtype=D), torch.zeros(1, 3, dtype=D)
    official = decode_head_outputs(z2, z1, z3, z2, z2, ref, PC, "official")[0]
    assert official[:3].tolist() == pytest.approx([0.0, -27.0, -1.0])  # the z prior lands on the log dx slot
    semantic = decode_head_outputs(z2, z1, z3, z2, z2, ref, PC, "semantic")[0]
    assert semantic[4].item() == pytest.approx(-1.0) and semantic[2].item() == 0.0
    # A delta of logit(0.75) - logit(0.5) = ln 3 moves a_x = 0.5 to sigmoid = 0.75 -> x = 27 m.
    c = torch.tensor([[math.log(3.0), 0.0]], dtype=D)
    assert decode_head_outputs(c, z1, z3, z2, z2, ref, PC)[0, 0].item() == pytest.approx(27.0)
    assert inverse_sigmoid(torch.tensor([0.0])).item() == pytest.approx(math.log(1e-5 / 1.0))


def test_gravity_bottom_and_nuscenes_conversion() -> None:
    b = boxes()
    assert gravity_to_bottom(b)[0, 2].item() == pytest.approx(-0.9 - 0.85)
    assert_close(bottom_to_gravity(gravity_to_bottom(b)), b)
    rec = to_nuscenes(b[0].tolist())
    # w = dy, l = dx, h = dz; quaternion (cos 0.15, 0, 0, sin 0.15).
    assert rec["size"] == pytest.approx((1.95, 4.6, 1.7))
    assert rec["rotation"] == pytest.approx((math.cos(0.15), 0.0, 0.0, math.sin(0.15)))
    for row in b:
        assert_close(torch.tensor(from_nuscenes(to_nuscenes(row.tolist())), dtype=D), row, rtol=0, atol=1e-12)


def test_decode_predictions_topk_filter_bottom_centre() -> None:
    # 3 queries x 2 classes. Scores sigmoid([[2, -1], [0, 3], [1, -3]]); top-3 flat = (q1,c1), (q0,c0), (q2,c0).
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0], [1.0, -3.0]], dtype=D)
    bx = torch.tensor([[1.0, 2.0, 0.0, 2.0, 1.0, 2.0, 0.0, 0.0, 0.0],
                       [3.0, 4.0, 1.0, 2.0, 1.0, 4.0, 0.0, 0.0, 0.0],
                       [70.0, 0.0, 0.0, 2.0, 1.0, 2.0, 0.0, 0.0, 0.0]], dtype=D)  # q2 outside +-61.2
    out = decode_predictions(logits, normalize_bbox(bx), 3, (-61.2, -61.2, -10.0, 61.2, 61.2, 10.0))
    assert out["labels"].tolist() == [1, 0]
    assert_close(out["scores"], torch.sigmoid(torch.tensor([3.0, 2.0], dtype=D)))
    # q1: z_bottom = 1 - 4/2 = -1; q0: 0 - 2/2 = -1.
    assert_close(out["boxes"][:, :3], torch.tensor([[3.0, 4.0, -1.0], [1.0, 2.0, -1.0]], dtype=D))
