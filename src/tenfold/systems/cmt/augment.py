"""Masked-modal training of `cmt` (Cross Modal Transformer, arXiv 2301.01283), spec component 13: ModalMask3D.

Training: s ~ U(0, 1); s > 0.75 -> every image x 0; 0.5 < s <= 0.75 -> every point (coordinates and features)
x 0; else both kept. Each modality is dropped 25 % of the time, never both. Test mode zeroes the modality named
by `mask_modal`. Applied before image normalisation and before the global 3D augmentation (so a dropped image
becomes the constant -mean/std, and dropped points collapse into the one voxel holding the origin).
The other augmentations (global rot/scale/flip folded into lidar2img, image resize/crop/flip, GT-paste) are
not built yet.
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def draw_dropped(rng: np.random.Generator) -> str:
    """The training draw alone: s ~ U(0, 1); s > 0.75 -> "image", 0.5 < s <= 0.75 -> "points", else ""."""
    s = rng.random()
    return "image" if s > 0.75 else "points" if s > 0.5 else ""


def modal_mask_3d(points: np.ndarray, images: np.ndarray, rng: np.random.Generator | None = None,
                  mode: Literal["train", "test"] = "train", mask_modal: Literal["image", "points"] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, str]:
    """Returns (points, images, dropped) with dropped in {"none", "image", "points"}; inputs are not modified."""
    if mode == "test":
        if mask_modal not in ("image", "points", None):
            raise ValueError(f"mask_modal={mask_modal!r}; allowed: 'image', 'points', None")
        dropped = mask_modal or "none"
    elif mode == "train":
        if rng is None:
            raise ValueError("modal_mask_3d: mode='train' needs an rng")
        dropped = draw_dropped(rng) or "none"
    else:
        raise ValueError(f"mode={mode!r}; allowed: 'train', 'test'")
    if dropped == "image":
        return points, np.zeros_like(images), dropped
    if dropped == "points":
        return np.zeros_like(points), images, dropped
    return points, images, dropped
