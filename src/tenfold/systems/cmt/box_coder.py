"""Box coder of `cmt` (Cross Modal Transformer, arXiv 2301.01283), spec components 10 and 14.

Box layout in the LiDAR frame (mmdet3d 1.0): (x, y, z, dx, dy, dz, yaw[, vx, vy]); z is the **gravity**
centre inside the coder, dx the length along the heading, yaw measured from +x towards +y.

Regression code (official `normalize_bbox`, 10-d):
    b = (x, y, log dx, log dy, z, log dz, sin yaw, cos yaw, vx, vy)     centre in metres, not normalised.

The head has five sub-heads named center (2), height (1), dim (3), rot (2), vel (2). The official code
concatenates them as (center, height, dim, rot, vel) and compares that vector **position by position** with b:

| position | b holds | official slot (`slot_order="official"`) | semantic slot (`"semantic"`) |
|---|---|---|---|
| 0, 1 | x, y        | center (anchor-xy prior, metres)   | center |
| 2    | log dx      | **height** (anchor-z prior, metres) | dim[0] |
| 3    | log dy      | dim[0]                              | dim[1] |
| 4    | z           | **dim[1]**                          | height (anchor-z prior) |
| 5    | log dz      | dim[2]                              | dim[2] |
| 6..9 | sin, cos, vx, vy | rot, vel                       | rot, vel |

So with the official order the slot named "height" learns log dx and carries the anchor-z prior, and dim[1]
learns z. `denormalize_bbox` reads the same positions, so the official code is self-consistent; only the
names mislead (spec pitfall 1). Never mix checkpoints across the two orders.
"""

from __future__ import annotations

from typing import Literal, Sequence

import math

import torch

# Design choice: "official" is the default everywhere; "semantic" is the conscious fix (spec pitfall 1).
SlotOrder = Literal["official", "semantic"]
SLOT_ORDERS = ("official", "semantic")
# Spec component 12: code weights of the L1 loss and of the matching cost (cost uses the first 8).
CODE_WEIGHTS = (2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2)


def _check_order(slot_order: str) -> None:
    if slot_order not in SLOT_ORDERS:
        raise ValueError(f"slot_order={slot_order!r}; allowed: {SLOT_ORDERS}")


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """log(x / (1 - x)) with both clamped at eps (mmdet `inverse_sigmoid`)."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def normalize_bbox(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 7 | 9) boxes (gravity centre) -> (..., 8 | 10) code b (official `normalize_bbox`)."""
    x, y, z = boxes[..., 0:1], boxes[..., 1:2], boxes[..., 2:3]
    ldx, ldy, ldz = boxes[..., 3:4].log(), boxes[..., 4:5].log(), boxes[..., 5:6].log()
    yaw = boxes[..., 6:7]
    parts = [x, y, ldx, ldy, z, ldz, yaw.sin(), yaw.cos()]
    if boxes.shape[-1] > 7:
        parts += [boxes[..., 7:8], boxes[..., 8:9]]
    return torch.cat(parts, dim=-1)


def denormalize_bbox(code: torch.Tensor) -> torch.Tensor:
    """(..., 8 | 10) code -> (..., 7 | 9) boxes (x, y, z_gravity, dx, dy, dz, yaw[, vx, vy])."""
    yaw = torch.atan2(code[..., 6:7], code[..., 7:8])
    parts = [code[..., 0:1], code[..., 1:2], code[..., 4:5],
             code[..., 2:3].exp(), code[..., 3:4].exp(), code[..., 5:6].exp(), yaw]
    if code.shape[-1] > 8:
        parts += [code[..., 8:9], code[..., 9:10]]
    return torch.cat(parts, dim=-1)


def slots_to_code(center: torch.Tensor, height: torch.Tensor, dim: torch.Tensor, rot: torch.Tensor,
                  vel: torch.Tensor, slot_order: SlotOrder = "official") -> torch.Tensor:
    """Concatenate the five sub-head outputs into the 10-d vector compared with b (table in the module doc)."""
    _check_order(slot_order)
    if slot_order == "official":
        return torch.cat([center, height, dim, rot, vel], dim=-1)
    return torch.cat([center, dim[..., 0:2], height, dim[..., 2:3], rot, vel], dim=-1)


def code_to_slots(code: torch.Tensor, slot_order: SlotOrder = "official") -> dict[str, torch.Tensor]:
    """Inverse of `slots_to_code`: {center (2), height (1), dim (3), rot (2), vel (2)}."""
    _check_order(slot_order)
    out = {"center": code[..., 0:2], "rot": code[..., 6:8], "vel": code[..., 8:10]}
    if slot_order == "official":
        out["height"], out["dim"] = code[..., 2:3], code[..., 3:6]
    else:
        out["height"] = code[..., 4:5]
        out["dim"] = torch.cat([code[..., 2:4], code[..., 5:6]], dim=-1)
    return out


def decode_head_outputs(center: torch.Tensor, height: torch.Tensor, dim: torch.Tensor, rot: torch.Tensor,
                        vel: torch.Tensor, reference: torch.Tensor, pc_range: Sequence[float],
                        slot_order: SlotOrder = "official") -> torch.Tensor:
    """Raw sub-head outputs + anchors -> predicted code (..., 10) (official `CmtHead.forward`).

    center_xy = sigmoid(delta_xy + logit(a_xy)) * (r_max - r_min) + r_min        (metres)
    height    = sigmoid(delta_h + logit(a_z)) * (z_max - z_min) + z_min         (metres)

    Args:
        center (..., 2), height (..., 1), dim (..., 3), rot (..., 2), vel (..., 2): raw head outputs.
        reference: (..., 3) anchors in [0, 1]^3 (normalised range units).
        pc_range: (x_min, y_min, z_min, x_max, y_max, z_max).
        slot_order: "official" (default) or "semantic"; see the module table.
    """
    lo = torch.as_tensor(pc_range[:3], dtype=center.dtype, device=center.device)
    span = torch.as_tensor(pc_range[3:], dtype=center.dtype, device=center.device) - lo
    c = (center + inverse_sigmoid(reference[..., 0:2])).sigmoid() * span[:2] + lo[:2]
    h = (height + inverse_sigmoid(reference[..., 2:3])).sigmoid() * span[2:3] + lo[2:3]
    return slots_to_code(c, h, dim, rot, vel, slot_order)


def gravity_to_bottom(boxes: torch.Tensor) -> torch.Tensor:
    """z_bottom = z_gravity - dz / 2 (the official decoder's last step)."""
    out = boxes.clone()
    out[..., 2] = boxes[..., 2] - boxes[..., 5] * 0.5
    return out


def bottom_to_gravity(boxes: torch.Tensor) -> torch.Tensor:
    out = boxes.clone()
    out[..., 2] = boxes[..., 2] + boxes[..., 5] * 0.5
    return out


def to_nuscenes(box: Sequence[float]) -> dict:
    """One (x, y, z, dx, dy, dz, yaw[, vx, vy]) LiDAR-frame box -> nuScenes fields in the same frame:
    translation, size (w, l, h) = (dy, dx, dz), rotation quaternion (w, x, y, z) about +z by yaw, velocity."""
    x, y, z, dx, dy, dz, yaw = (float(v) for v in box[:7])
    vel = (float(box[7]), float(box[8])) if len(box) > 8 else (0.0, 0.0)
    return {"translation": (x, y, z), "size": (dy, dx, dz),
            "rotation": (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)), "velocity": vel}


def from_nuscenes(rec: dict) -> list[float]:
    """Inverse of `to_nuscenes` for yaw-only quaternions; yaw in (-pi, pi]."""
    w, l, h = rec["size"]
    qw, _, _, qz = rec["rotation"]
    yaw = math.atan2(2 * qw * qz, 1 - 2 * qz * qz)
    return [*rec["translation"], l, w, h, yaw, *rec.get("velocity", (0.0, 0.0))]


def decode_predictions(cls_logits: torch.Tensor, code: torch.Tensor, max_num: int,
                       post_center_range: Sequence[float]) -> dict[str, torch.Tensor]:
    """Post-processing of one sample (spec component 14, official `NMSFreeCoder.decode_single`).

    Sigmoid scores over (Q, C), top-`max_num` over the flattened Q*C scores (label = index % C, query =
    index // C), decode, keep centres inside `post_center_range` (x/y/z min, x/y/z max), no score
    threshold, no NMS; z converted from gravity to bottom centre.

    Returns {"boxes" (K, 9): x, y, z_bottom, dx, dy, dz, yaw, vx, vy; "scores" (K,); "labels" (K,)}.
    """
    num_classes = cls_logits.shape[-1]
    scores, idx = cls_logits.sigmoid().flatten().topk(min(max_num, cls_logits.numel()))
    labels = idx % num_classes
    boxes = denormalize_bbox(code[idx // num_classes])
    r = torch.as_tensor(post_center_range, dtype=boxes.dtype)
    keep = ((boxes[:, :3] >= r[:3]) & (boxes[:, :3] <= r[3:])).all(dim=1)
    return {"boxes": gravity_to_bottom(boxes[keep]), "scores": scores[keep], "labels": labels[keep]}
