"""SynthCrowd: the procedural stand-in for GTA_Head of `maskfocal` (spec 4.1).

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with
canonical object detection networks", arXiv 2212.11542 (spec ../shared/specs/maskfocal.md, section 4.1).

  make_synth_crowd   [design choice] perspective-scaled heads, crowding toward the horizon, clustered knots,
                     painter's-order occlusion with an instance-ID buffer for visibility, distractor blobs,
                     sequences split by sequence. Written to disk by data.py (write_coco / write_points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SKIN = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.63, 0.45, 0.33], [0.38, 0.26, 0.18]])
HAIR = np.array([[0.08, 0.06, 0.05], [0.25, 0.16, 0.09], [0.45, 0.35, 0.22], [0.15, 0.15, 0.15]])


@dataclass
class Frame:
    """One rendered image and its heads: boxes (K, 4) xyxy px, centres (K, 2), visibility (K,) in [0, 1]."""

    image: np.ndarray  # (H, W, 3) uint8
    boxes: np.ndarray
    centers: np.ndarray
    visibility: np.ndarray
    sequence_id: int
    frame_id: int


def head_size_at(y: np.ndarray, y_h: float, s_near: float, height: int) -> np.ndarray:
    """Spec 4.1 perspective: s(y) = s_near (y - y_h) / (H - y_h), floor 1.5 px (flat-ground pinhole)."""
    return np.maximum(s_near * (y - y_h) / (height - y_h), 1.5)


def _value_noise(rng: np.random.Generator, size: int, cells: int = 6) -> np.ndarray:
    """Bilinearly up-sampled uniform noise (size, size) in [0, 1]."""
    import torch
    import torch.nn.functional as F

    g = torch.from_numpy(rng.random((1, 1, cells, cells)).astype(np.float32))
    return F.interpolate(g, size=(size, size), mode="bilinear", align_corners=True)[0, 0].numpy()


@dataclass
class _Sequence:
    y_h: float
    s_near: float
    background: np.ndarray  # (H, W, 3) float32
    xs: np.ndarray
    ys: np.ndarray
    jitter: np.ndarray
    skin: np.ndarray
    hair_frac: np.ndarray
    hat: np.ndarray
    cloth: np.ndarray
    blobs: np.ndarray  # (B, 3) x, y, radius


def _make_sequence(rng: np.random.Generator, size: int, n_min: int, n_max: int, quantile: float,
                   head_scale: float = 1.0) -> _Sequence:
    H = W = size
    scale = size / 256.0 * head_scale
    y_h = rng.uniform(-0.4 * H, 0.15 * H)  # horizon row, may be above the frame
    s_near = rng.uniform(14, 30) * scale
    # log-uniform count, drawn at the sequence's stratified quantile (make_synth_crowd)
    n = int(round(math.exp(math.log(n_min) + quantile * (math.log(n_max) - math.log(n_min)))))
    # Rows with density proportional to 1 / s(y)^2 (constant ground-plane density) by inverse CDF.
    grid = np.linspace(max(y_h + 1.0, 0.0), H - 1, 512)
    w = 1.0 / head_size_at(grid, y_h, s_near, H) ** 2
    cdf = np.cumsum(w) / w.sum()
    ys = np.interp(rng.random(n), cdf, grid)
    centres = rng.uniform(0.1 * W, 0.9 * W, size=rng.integers(1, 5))
    # Design choice: no Poisson-disk rejection (spec: optional); x is clipped into the frame.
    clustered = rng.random(n) < 0.6  # spec 4.1: 60 % of people around 1-4 cluster centres
    xs = np.where(clustered, rng.normal(centres[rng.integers(0, len(centres), n)], 0.08 * W), rng.uniform(0, W, n))
    ground = rng.uniform(0.25, 0.7, 3)
    rows = np.linspace(0.8, 1.15, H)[:, None, None]  # vertical illumination gradient
    bg = ground[None, None, :] * rows * (0.75 + 0.5 * _value_noise(rng, size)[:, :, None])
    nb = rng.integers(0, 31)
    by = rng.uniform(max(y_h, 0), H, nb)
    blobs = np.stack([rng.uniform(0, W, nb), by, 0.5 * head_size_at(by, y_h, s_near, H)], 1)
    yy, xx = np.ogrid[:H, :W]
    for bx, by_, br in blobs:  # dark head-sized blobs on the ground: false-positive bait (static per sequence)
        bg[(xx - bx) ** 2 + (yy - by_) ** 2 <= br * br] = 0.12
    for _ in range(rng.integers(0, 4)):  # 0-3 poles / lines
        x0 = int(rng.uniform(0, W))
        bg[:, x0:x0 + max(1, int(2 * scale)), :] = rng.uniform(0.1, 0.4)
    desat = rng.uniform(0.1, 0.9, (n, 3))
    cloth = 0.6 * desat + 0.4 * desat.mean(1, keepdims=True)  # slightly desaturated clothing
    return _Sequence(y_h, s_near, bg.astype(np.float32), np.clip(xs, 0, W - 1), ys, rng.uniform(0.85, 1.15, n),
                     rng.integers(0, 4, n), rng.uniform(-0.2, 1.0, n), rng.random(n) < 0.1, cloth, blobs)


def _render(seq: _Sequence, xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator, size: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Painter's order far -> near; returns image (H, W, 3) uint8, boxes (K, 4), centres (K, 2), visibility (K,)."""
    H = W = size
    img = seq.background.copy()
    ids = np.full((H, W), -1, dtype=np.int32)
    s = head_size_at(ys, seq.y_h, seq.s_near, H) * seq.jitter  # (K,)
    area = np.zeros(len(xs))
    for k in np.argsort(ys):
        x, y, sk, ry = xs[k], ys[k], s[k], 0.575 * s[k]
        bx0, bx1 = int(max(x - 0.8 * sk, 0)), int(min(x + 0.8 * sk + 1, W))
        by0, by1 = int(max(y + 0.8 * ry, 0)), int(min(y + ry + 2.5 * sk + 1, H))
        if bx1 > bx0 and by1 > by0:  # body: occludes everything farther, including heads
            img[by0:by1, bx0:bx1] = seq.cloth[k]
            ids[by0:by1, bx0:bx1] = -2
        x0, x1 = int(max(math.floor(x - sk / 2), 0)), int(min(math.ceil(x + sk / 2) + 1, W))
        y0, y1 = int(max(math.floor(y - ry), 0)), int(min(math.ceil(y + ry) + 1, H))
        yy, xx = np.ogrid[y0:y1, x0:x1]
        inside = ((xx - x) / (sk / 2)) ** 2 + ((yy - y) / ry) ** 2 <= 1.0  # head ellipse s/2 x 0.575 s
        cy, cx = min(max(int(y), 0), H - 1) - y0, min(max(int(x), 0), W - 1) - x0
        if 0 <= cy < inside.shape[0] and 0 <= cx < inside.shape[1]:
            inside[cy, cx] = True  # tiny heads cover at least their centre pixel
        colour = np.where(((yy - (y - ry)) < seq.hair_frac[k] * 2 * ry)[..., None], HAIR[k % 4], SKIN[seq.skin[k]])
        if seq.hat[k]:
            colour = np.where(((yy - (y - ry)) < 0.5 * ry)[..., None], seq.cloth[k][::-1], colour)
        colour = np.broadcast_to(colour, inside.shape + (3,))
        img[y0:y1, x0:x1][inside] = colour[inside]
        ids[y0:y1, x0:x1][inside] = k
        area[k] = inside.sum()
    counts = np.bincount(ids[ids >= 0].ravel(), minlength=len(xs))
    visibility = np.where(area > 0, counts / np.maximum(area, 1), 0.0)  # visible / total head pixels
    img = _photometrics(img, seq, rng, size)
    boxes = np.stack([xs - s / 2, ys - 0.575 * s, xs + s / 2, ys + 0.575 * s], 1)
    boxes = np.clip(boxes, 0, [W, H, W, H])
    return img, boxes, np.stack([xs, ys], 1), visibility


def _photometrics(img: np.ndarray, seq: _Sequence, rng: np.random.Generator, size: int) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    # Design choice (spec 4.1 blur toward the horizon): blend with a blurred copy, weight 1 - s(y)/s_near.
    blurred = gaussian_filter(img, sigma=(0.8, 0.8, 0))
    alpha = np.clip(1 - head_size_at(np.arange(size) + 0.5, seq.y_h, seq.s_near, size) / seq.s_near, 0, 1)
    img = img * (1 - alpha[:, None, None]) + blurred * alpha[:, None, None]
    img = img * rng.uniform(0.7, 1.3) + rng.normal(0, rng.uniform(0, 0.03), img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_synth_crowd(seed: int, num_images: int, size: int = 256, min_heads: int = 50, max_heads: int = 800,
                     frames_per_sequence: int = 15, first_sequence: int = 0, head_scale: float = 1.0) -> list[Frame]:
    """SynthCrowd (spec 4.1): sequences of `frames_per_sequence` frames; people random-walk between frames.

    Sequence j uses its own generator seeded by (seed, first_sequence + j), so splits made with disjoint
    `first_sequence` ranges share no sequence. `head_scale` multiplies every head size (s_near).
    # Design choice: the log-uniform counts of a split's S sequences are stratified: sequence j draws its
    # quantile from [(pi_j) / S, (pi_j + 1) / S) for a random permutation pi, so every part of [min_heads,
    # max_heads] (hence every density bucket) is covered by some sequence of every split, on every seed.
    """
    n_seq = -(-num_images // frames_per_sequence)
    strata = np.random.default_rng([seed, first_sequence, 7]).permutation(n_seq)
    frames: list[Frame] = []
    j = 0
    while len(frames) < num_images:
        sid = first_sequence + j
        rng = np.random.default_rng([seed, sid])
        quantile = (strata[j] + rng.random()) / n_seq
        seq = _make_sequence(rng, size, min_heads, max_heads, quantile, head_scale)
        xs, ys = seq.xs.copy(), seq.ys.copy()
        for f in range(min(frames_per_sequence, num_images - len(frames))):
            img, boxes, centres, vis = _render(seq, xs, ys, rng, size)
            frames.append(Frame(img, boxes, centres, vis, sid, f))
            # Design choice: random-walk steps proportional to the local head size (far people move fewer px).
            step = 0.01 * size * head_size_at(ys, seq.y_h, seq.s_near, size) / seq.s_near
            xs = np.clip(xs + rng.normal(0, 1, len(xs)) * step * 3, 0, size - 1)
            ys = np.clip(ys + rng.normal(0, 1, len(ys)) * step, max(seq.y_h + 1, 0), size - 1)
        j += 1
    return frames
