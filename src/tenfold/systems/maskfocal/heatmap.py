"""Gaussian heatmap ground truth, positive masks and pseudo-boxes of `maskfocal`.

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with
canonical object detection networks", arXiv 2212.11542 (spec ../shared/specs/maskfocal.md, section 2).

Component -> function:
  gaussian_radius (CenterNet's closed-form radius, kept as published) ... `gaussian_radius`
  r_k = max(r_min, floor(rho(h_k, w_k)))                                 ... `head_radii`
  Y_u = max_k exp(-|u - c~_k|^2 / (2 sigma_k^2)), sigma_k = (2 r_k + 1)/6 ... `draw_heatmap`
  mask M (box / radius / threshold)                                     ... `draw_heatmap`
  pseudo-boxes for point-only annotations (knn / nn / fixed)            ... `pseudo_boxes`
  radius distribution, peak share of sum M Y, sum M Y per head (the scale check) ... `target_stats`
Conventions: output cell u = (ux, uy) covers image pixels [u R, (u + 1) R); c~_k = floor(c_k / R).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

THRESHOLD_TAU = math.exp(-0.5)  # spec 2.5: tau = e^{-1/2}, i.e. inside one sigma
MASK_MODES = ("box", "radius", "threshold")


def gaussian_radius(h: float, w: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius rho(h, w): the minimum of its three quadratic-root radii.

    Paper (CenterNet code, spec 2.1): the three cases (both corners inside, both outside, one in one out).
    The published form divides by 2 instead of 2a in two of the roots and is known not to be the exact IoU
    solution; it is kept as published (spec: "pin its values in tests, do not correct it").
    """
    a1, b1, c1 = 1.0, h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2, c2 = 4.0, 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def head_radii(boxes: np.ndarray, stride: int, min_overlap: float = 0.7, min_radius: int = 1) -> np.ndarray:
    """r_k = max(min_radius, floor(rho(h_k / R, w_k / R))) on the output grid; boxes (K, 4) xyxy in px -> (K,)."""
    out = np.zeros(len(boxes), dtype=np.int64)
    for k, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=np.float64)):
        rho = gaussian_radius((y2 - y1) / stride, (x2 - x1) / stride, min_overlap)
        # Design choice (spec 2.1, pitfall 4): floor r_min = 1 so tiny heads keep a non-empty mask.
        out[k] = max(min_radius, int(math.floor(rho)))
    return out


@dataclass(frozen=True)
class HeatmapTarget:
    """Dense targets of one image on one output grid (Ho, Wo).

    heatmap: Y (Ho, Wo) float32 in [0, 1]; masks: {"box" | "radius" | "threshold": M (Ho, Wo) float32 {0, 1}};
    box_map: binary-GT map t (Ho, Wo) (1 inside any box, used for the "Y = 1 on the box" reduction);
    centers: c~ (K, 2) int64 (x, y) cells; offsets (K, 2) sub-cell offsets c/R - c~; sizes (K, 2) (w, h) / R.
    """

    heatmap: np.ndarray
    masks: dict
    box_map: np.ndarray
    centers: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray


def _box_cells(box: np.ndarray, stride: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Cells intersecting the box, [x0, x1) x [y0, y1); they always include the centre cell c~.

    # Design choice: "inside the GT box" on the output grid = every cell the box touches, so a head smaller than
    # the stride still has a one-cell mask containing its peak.
    """
    ho, wo = shape
    x0, y0 = int(math.floor(box[0] / stride)), int(math.floor(box[1] / stride))
    x1, y1 = int(math.ceil(box[2] / stride)), int(math.ceil(box[3] / stride))
    return max(x0, 0), max(y0, 0), min(max(x1, x0 + 1), wo), min(max(y1, y0 + 1), ho)


def draw_heatmap(boxes: np.ndarray, shape: tuple[int, int], stride: int, min_overlap: float = 0.7,
                 min_radius: int = 1, centers_px: np.ndarray | None = None) -> HeatmapTarget:
    """Draw Y and the three positive masks for heads `boxes` (K, 4) xyxy px on a (Ho, Wo) grid of stride R.

    Paper (spec 2.1): each Gaussian lives in a (2 r_k + 1)^2 window and heads combine by element-wise MAX
    (a sum would push overlapping peaks above 1 and break Y = 1 at every centre).
    `centers_px` (K, 2) defaults to the box centres.
    """
    ho, wo = shape
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if centers_px is None:
        centers_px = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    c = np.asarray(centers_px, dtype=np.float64).reshape(-1, 2) / stride
    cells = np.clip(np.floor(c).astype(np.int64), 0, [wo - 1, ho - 1])  # (K, 2) c~ = floor(c / R)
    radii = head_radii(boxes, stride, min_overlap, min_radius)
    heat = np.zeros(shape, dtype=np.float32)
    m_box, m_rad, box_map = (np.zeros(shape, dtype=np.float32) for _ in range(3))
    for (cx, cy), r, box in zip(cells, radii, boxes):
        sigma = (2 * r + 1) / 6.0
        dy, dx = np.ogrid[-r:r + 1, -r:r + 1]  # (2r+1, 1), (1, 2r+1)
        g = np.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)).astype(np.float32)  # (2r+1, 2r+1)
        disk = (dx * dx + dy * dy <= r * r).astype(np.float32)
        top, bottom = min(cy, r), min(ho - cy, r + 1)
        left, right = min(cx, r), min(wo - cx, r + 1)
        win = (slice(cy - top, cy + bottom), slice(cx - left, cx + right))
        gwin = (slice(r - top, r + bottom), slice(r - left, r + right))
        np.maximum(heat[win], g[gwin], out=heat[win])
        np.maximum(m_rad[win], disk[gwin], out=m_rad[win])
        x0, y0, x1, y1 = _box_cells(box, stride, shape)
        m_box[y0:y1, x0:x1] = 1.0
        box_map[y0:y1, x0:x1] = 1.0
    m_thr = (heat >= THRESHOLD_TAU - 1e-6).astype(np.float32)
    return HeatmapTarget(heatmap=heat, masks={"box": m_box, "radius": m_rad, "threshold": m_thr},
                         box_map=box_map, centers=cells, offsets=(c - cells).astype(np.float32),
                         sizes=np.stack([(boxes[:, 2] - boxes[:, 0]), (boxes[:, 3] - boxes[:, 1])],
                                        axis=1).astype(np.float32).reshape(-1, 2) / stride)


def pseudo_boxes(points: np.ndarray, mode: str = "knn", beta: float = 0.3, k: int = 3,
                 fixed_size: float = 16.0, min_size: float = 2.0, max_size: float = 64.0) -> np.ndarray:
    """Square pseudo-boxes (K, 4) xyxy for point-only heads `points` (K, 2) (x, y) px.

    Design choice (spec 2.2; field conventions are unverified recollection):
      knn   s_k = beta * mean distance to the k nearest annotated neighbours (MCNN's geometry-adaptive rule)
      nn    s_k = the nearest-neighbour distance (LSC-CNN / Crowd-SDNet family)
      fixed s_k = fixed_size (also the fallback for an isolated head: fewer than k neighbours for knn)
    Sizes are clipped to [min_size, max_size] px.
    """
    if mode not in ("knn", "nn", "fixed"):
        raise ValueError(f"pseudo-box mode must be 'knn', 'nn' or 'fixed', got {mode!r}")
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    sizes = np.full(n, float(fixed_size))
    if n > 1 and mode != "fixed":
        d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))  # (K, K)
        np.fill_diagonal(d, np.inf)
        d.sort(axis=1)
        if mode == "knn" and n > k:
            sizes = beta * d[:, :k].mean(axis=1)
        elif mode == "nn":
            sizes = d[:, 0]
    sizes = np.clip(sizes, min_size, max_size)
    half = sizes[:, None] / 2
    return np.concatenate([pts - half, pts + half], axis=1)


def centernet_targets(boxes: np.ndarray, image_hw: tuple[int, int], stride: int, min_overlap: float = 0.7,
                      min_radius: int = 1) -> dict[str, np.ndarray]:
    """Per-image CenterNet targets: heatmap / mask_<mode> / box_map (1, Ho, Wo), centers, size, offset (K, 2)."""
    shape = (image_hw[0] // stride, image_hw[1] // stride)
    t = draw_heatmap(boxes, shape, stride, min_overlap, min_radius)
    out = {"heatmap": t.heatmap[None], "box_map": t.box_map[None], "centers": t.centers, "size": t.sizes,
           "offset": t.offsets}
    out.update({f"mask_{m}": v[None] for m, v in t.masks.items()})
    return out


def _assign_locations(b: np.ndarray, c: np.ndarray, area: np.ndarray, shape: tuple[int, int], s: int,
                      radius: float) -> tuple[np.ndarray, np.ndarray]:
    """FCOS assignment of one level without a locations x heads array: (matched head index (L,), positive (L,)).

    A location matches head k when its point lies strictly inside the box and within radius * s of the centre
    (per axis), or it is the cell holding the centre; the smallest matching box wins (the first on ties).
    Each head visits only the cells of its window, so memory is O(L + K) (a 512^2 image with 2,000 heads
    would need ~1 GB as a dense (L, K, 4) array).
    """
    h, w = shape
    best = np.full(h * w, np.inf)
    idx = np.zeros(h * w, dtype=np.int64)
    cell = np.floor(c / s).astype(np.int64).clip(0, [w - 1, h - 1]) if len(b) else np.zeros((0, 2), np.int64)
    for k in range(len(b)):
        x1, y1, x2, y2 = b[k]
        lo = np.maximum([x1, y1], c[k] - radius * s)  # open interval (lo, hi) of admissible cell centres
        hi = np.minimum([x2, y2], c[k] + radius * s)
        gx = np.arange(max(int(np.floor((lo[0] - s / 2) / s)), 0), min(int(np.ceil((hi[0] - s / 2) / s)) + 1, w))
        gy = np.arange(max(int(np.floor((lo[1] - s / 2) / s)), 0), min(int(np.ceil((hi[1] - s / 2) / s)) + 1, h))
        px, py = gx * s + s / 2.0, gy * s + s / 2.0
        inx = (px > x1) & (px < x2) & (np.abs(px - c[k, 0]) < radius * s)
        iny = (py > y1) & (py < y2) & (np.abs(py - c[k, 1]) < radius * s)
        cells = (gy[iny][:, None] * w + gx[inx][None, :]).ravel()
        cells = np.append(cells, cell[k, 1] * w + cell[k, 0])
        win = cells[area[k] < best[cells]]
        best[win], idx[win] = area[k], k
    return idx, np.isfinite(best)


def fcos_targets(boxes: np.ndarray, image_hw: tuple[int, int], strides: tuple[int, ...], size_split: float,
                 radius: float = 1.5, min_overlap: float = 0.7, min_radius: int = 1) -> dict[str, np.ndarray]:
    """Per-image FCOS targets over all locations L (levels in `strides` order, row-major): labels t, heatmap Y,
    mask_<mode>, matched boxes (L, 4), centerness (L,).

    Level of a head: stride strides[0] when max(w, h) <= size_split, else the next level ([design choice]).
    Positive location of level l (FCOS, spec 2.3): its point lies inside the box and within radius * stride of
    the box centre; if several boxes match, the smallest wins. # Design choice: the cell holding a head's
    centre is always positive, so heads smaller than the stride still train (same rule for both losses).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wh = boxes[:, 2:] - boxes[:, :2]
    level = np.minimum((wh.max(1) > size_split).astype(np.int64), len(strides) - 1)  # (K,)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    area = wh.prod(1)
    parts: dict[str, list] = {k: [] for k in ("labels", "heatmap", "boxes", "centerness", "mask_box",
                                              "mask_radius", "mask_threshold")}
    for li, s in enumerate(strides):
        h, w = image_hw[0] // s, image_hw[1] // s
        ys, xs = np.mgrid[0:h, 0:w]
        pts = np.stack([xs.ravel(), ys.ravel()], 1) * s + s / 2.0  # (L_l, 2) cell centres px
        sel = np.nonzero(level == li)[0]
        b, c = boxes[sel], centers[sel]
        idx, pos = _assign_locations(b, c, area[sel], (h, w), s, radius)
        matched = b[idx] if len(sel) else np.zeros((len(pts), 4))
        d = np.concatenate([pts - matched[:, :2], matched[:, 2:] - pts], 1).clip(min=0)  # (L_l, 4)
        lr, tb = d[:, [0, 2]], d[:, [1, 3]]
        ctr = np.sqrt(lr.min(1) / np.maximum(lr.max(1), 1e-6) * tb.min(1) / np.maximum(tb.max(1), 1e-6))
        t = draw_heatmap(b, (h, w), s, min_overlap, min_radius)
        parts["labels"].append(pos.astype(np.float32))
        parts["boxes"].append(matched.astype(np.float32))
        parts["centerness"].append(np.where(pos, ctr, 0.0).astype(np.float32))
        parts["heatmap"].append(t.heatmap.ravel())
        for m, v in t.masks.items():
            parts[f"mask_{m}"].append(v.ravel())
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["num_heads"] = np.array(float(len(boxes)))
    return out


def target_stats(boxes_per_image: list[np.ndarray], image_hw: tuple[int, int], stride: int,
                 min_overlap: float = 0.7, min_radius: int = 1, mask_mode: str = "box",
                 delta: float = 1.0) -> dict[str, object]:
    """How far MFL differs from CenterNet's loss at a scale: statistics of the GT drawn on the output grid.

    MFL's positive weight is w_u = M_u Y_u^delta; CenterNet's loss puts all of it on the peak cells (Y = 1). When
    every head has the floor radius, Y falls to e^{-2} one cell from the peak and nearly all of sum w sits on the
    peaks, so MFL(box) is CenterNet's loss in all but name (issue 19). Returns
      num_heads, radius_counts {r: heads}, floor_radius_share (share of heads with r = min_radius),
      median_radius, peak_weight_share = sum_{Y=1} w / sum w, mask_weight_per_head = sum w / #heads,
      mask_cells_per_head = sum M / #heads, peaks_per_head = #(Y = 1 cells) / #heads.
    """
    shape = (image_hw[0] // stride, image_hw[1] // stride)
    radii, total_w, peak_w, cells, peaks = [], 0.0, 0.0, 0.0, 0
    for boxes in boxes_per_image:
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            continue
        radii.append(head_radii(boxes, stride, min_overlap, min_radius))
        t = draw_heatmap(boxes, shape, stride, min_overlap, min_radius)
        m = t.masks[mask_mode].astype(np.float64)
        w = m * t.heatmap.astype(np.float64) ** delta
        peak = t.heatmap == 1.0
        total_w, peak_w = total_w + w.sum(), peak_w + w[peak].sum()
        cells, peaks = cells + m.sum(), peaks + int(peak.sum())
    r = np.concatenate(radii) if radii else np.zeros(0, dtype=np.int64)
    n = len(r)
    values, counts = np.unique(r, return_counts=True)
    return {"num_heads": n, "radius_counts": {int(v): int(c) for v, c in zip(values, counts)},
            "floor_radius_share": float(np.mean(r == min_radius)) if n else float("nan"),
            "median_radius": float(np.median(r)) if n else float("nan"),
            "peak_weight_share": peak_w / total_w if total_w > 0 else float("nan"),
            "mask_weight_per_head": total_w / n if n else float("nan"),
            "mask_cells_per_head": cells / n if n else float("nan"),
            "peaks_per_head": peaks / n if n else float("nan")}
