"""The patch pipeline of FCtL (Liu et al., "Ultra-high Resolution Image Segmentation via Locality-aware
Context Fusion and Alternating Local Enhancement", IJCV 2024, arXiv 2109.02580), as fixed by the official
code (github.com/liqiokkk/FCtL; spec ../shared/specs/fctl.md components 1, 2, 11).

  patch_grid(L, p, min_overlap)        component 1: n patches per side, step (L - p)/(n - 1), last flush
  context_crop(image, box, factor)     component 2: m*p window centred on the patch, zero outside, resized to p
  iter_patches(image, ...)             streams (boxes, patches, contexts) in batches of `batch`
  merge_logits(canvas, logits, boxes)  component 11: raw logits of overlapping patches are summed
  tta_logits(fn, inputs)               component 11: 4 rotations x {no flip, h-flip}, undone and summed
  segment_large_image(img, model, ...) spec 4.2 API: any size in, H x W labels out, bounded memory
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

GLOBAL = 0.0  # context "factor" 0 = the whole image resized to p x p (DeepGlobe global context, component 8)


@dataclass(frozen=True)
class Grid:
    """Patch starts along one side: `starts[i]` for i < n; `step` = (L - p)/(n - 1); `overlap` = p - step."""

    n: int
    step: float
    overlap: float
    starts: tuple[int, ...]


def patch_grid(length: int, patch: int, min_overlap: float = 50.0) -> Grid:
    """Component 1 [code]: smallest n with n*p >= L, raised until p - (L - p)/(n - 1) >= min_overlap.

    Args:
        length: image side L in pixels (>= patch).
        patch: patch side p.
        min_overlap: minimum overlap in pixels between neighbours (50 at p = 508 [code]).
    """
    if length < patch:
        raise ValueError(f"image side {length} is smaller than the patch {patch}")
    if length == patch:
        return Grid(1, 0.0, float(patch), (0,))
    n = max(2, math.ceil(length / patch))
    while patch - (length - patch) / (n - 1) < min_overlap:
        n += 1
    step = (length - patch) / (n - 1)
    starts = tuple(int(round(i * step)) for i in range(n - 1)) + (length - patch,)
    return Grid(n, step, patch - step, starts)


def patch_boxes(height: int, width: int, patch: int, min_overlap: float) -> list[tuple[int, int]]:
    """(y, x) top-left corners of every patch, row-major over the two grids."""
    gy, gx = patch_grid(height, patch, min_overlap), patch_grid(width, patch, min_overlap)
    return [(y, x) for y in gy.starts for x in gx.starts]


def context_crop(image: torch.Tensor, box: tuple[int, int], patch: int, factor: float) -> torch.Tensor:
    """Component 2 [code]: the (m p) x (m p) window centred on the patch at `box`, resized to p x p.

    Equals zero-padding the whole image by (m - 1) p / 2 and cropping (tested against that reference), but
    # Design choice: copies only the window, so memory does not grow with the image (pitfall 8).
    Args:
        image: (C, H, W) float tensor.
        box: (y, x) top-left corner of the local patch.
        factor: m >= 1 (1 = the patch itself), or GLOBAL (0) for the whole image resized to p x p.
    Returns: (C, p, p).
    """
    c, h, w = image.shape
    if factor == GLOBAL:
        return _resize(image, patch)
    y, x = box
    if factor == 1:
        return image[:, y:y + patch, x:x + patch]
    win = int(round(factor * patch))
    pad = (win - patch) / 2.0  # (m - 1) p / 2 on every side [code]
    y0, x0 = y - int(round(pad)), x - int(round(pad))
    out = image.new_zeros(c, win, win)  # black outside the image (pitfall 9)
    sy, sx = max(0, y0), max(0, x0)
    ey, ex = min(h, y0 + win), min(w, x0 + win)
    if ey > sy and ex > sx:
        out[:, sy - y0:ey - y0, sx - x0:ex - x0] = image[:, sy:ey, sx:ex]
    return _resize(out, patch)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (C, h, w) to (C, size, size)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    # Design choice: bilinear without antialiasing (the official resize library is not pinned).
    return F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0]


def crops_for(image: torch.Tensor, boxes: Sequence[tuple[int, int]], patch: int,
              factors: Sequence[float]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Local patches (B, C, p, p) and one (B, C, p, p) context tensor per factor for `boxes`."""
    local = torch.stack([image[:, y:y + patch, x:x + patch] for y, x in boxes])
    ctx = []
    for m in factors:
        if m == GLOBAL:  # one resize, repeated for every patch of the image (maintainer, issue #2)
            ctx.append(_resize(image, patch)[None].expand(len(boxes), -1, -1, -1))
        else:
            ctx.append(torch.stack([context_crop(image, b, patch, m) for b in boxes]))
    return local, ctx


def iter_patches(image: torch.Tensor, patch: int, min_overlap: float, factors: Sequence[float] = (),
                 batch: int = 16) -> Iterator[tuple[list[tuple[int, int]], torch.Tensor, list[torch.Tensor]]]:
    """Stream (boxes, local (B, C, p, p), contexts [(B, C, p, p)] per factor) over the grid, B <= batch."""
    boxes = patch_boxes(image.shape[-2], image.shape[-1], patch, min_overlap)
    for i in range(0, len(boxes), batch):
        chunk = boxes[i:i + batch]
        local, ctx = crops_for(image, chunk, patch, factors)
        yield chunk, local, ctx


def merge_logits(canvas: torch.Tensor, logits: torch.Tensor, boxes: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Component 11 [code]: add raw logits (B, K, p, p) into the (K, H, W) canvas in place; returns it.

    Logits, not probabilities, are summed; overlaps carry the sum of every patch covering them (pitfall 8).
    """
    p = logits.shape[-1]
    for (y, x), lg in zip(boxes, logits):
        canvas[:, y:y + p, x:x + p] += lg.to(canvas.dtype)
    return canvas


def _transform(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    return torch.rot90(x.flip(-1) if flip else x, k, dims=(-2, -1))


def _untransform(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, -k, dims=(-2, -1))
    return x.flip(-1) if flip else x


def tta_logits(fn: Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor], local: torch.Tensor,
               contexts: list[torch.Tensor]) -> torch.Tensor:
    """Component 11 [code]: 8 passes (rotations 0/90/180/270 x {no flip, h-flip}), logits undone and summed.

    Centred contexts rotate with their patch, so every input gets the same transform.
    """
    total = None
    for flip in (False, True):
        for k in range(4):
            out = fn(_transform(local, k, flip), [_transform(c, k, flip) for c in contexts])
            out = _untransform(out, k, flip)
            total = out if total is None else total + out
    return total


def as_chw_float(img: np.ndarray | torch.Tensor) -> torch.Tensor:
    """H x W x 3 uint8 (0..255) or float (0..1) -> (3, H, W) float32 in [0, 1] [code: no mean/std]."""
    t = torch.as_tensor(np.array(img)) if isinstance(img, np.ndarray) else img
    if t.ndim != 3 or t.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an H x W x C image with C in (1, 3, 4), got shape {tuple(t.shape)}")
    t = t[..., :3] if t.shape[-1] == 4 else t.expand(-1, -1, 3) if t.shape[-1] == 1 else t
    t = t.permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    return (t.float() / 255.0) if t.dtype == torch.uint8 else t.float()


def model_device(model: Any) -> torch.device:
    """Where `model`'s parameters live (CPU for a plain callable or a parameter-free module): inputs go there."""
    if isinstance(model, torch.nn.Module):
        for t in model.parameters():
            return t.device
        for t in model.buffers():
            return t.device
    return torch.device("cpu")


@torch.no_grad()
def segment_logits(image: torch.Tensor, model: Callable, patch: int, min_overlap: float,
                   factors: Sequence[float], num_classes: int, tta: bool = False, batch: int = 16,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Sum of patch logits over a (3, H, W) image -> (K, H, W) float32 canvas on `device` (default: the model's).

    `model(local, contexts)` maps (B, 3, p, p) and a list of (B, 3, p, p) to logits (B, K, p, p).
    Images smaller than p are zero-padded to p and the canvas is cropped back.
    """
    device = model_device(model) if device is None else device
    _, h, w = image.shape
    ph, pw = max(h, patch), max(w, patch)
    if (ph, pw) != (h, w):
        image = F.pad(image, (0, pw - w, 0, ph - h))
    canvas = torch.zeros(num_classes, ph, pw, device=device)  # float32 on-device (pitfall 8)
    for boxes, local, ctx in iter_patches(image, patch, min_overlap, factors, batch):
        local, ctx = local.to(device), [c.to(device) for c in ctx]
        logits = tta_logits(model, local, ctx) if tta else model(local, ctx)
        merge_logits(canvas, logits, boxes)
    return canvas[:, :h, :w]


def segment_large_image(img: np.ndarray | torch.Tensor, model: Callable, patch: int = 508,
                        min_overlap: float = 50.0, contexts: Sequence[float] = (1, 2, 3), tta: bool = False,
                        num_classes: int | None = None, batch: int = 16,
                        device: torch.device | str | None = None) -> np.ndarray:
    """Spec 4.2 API: H x W x 3 (uint8 or float in [0, 1]) -> H x W int64 labels (argmax of summed logits).

    `contexts` lists the factors fed to `model` besides the patch; factor 1 is the patch itself, which the
    model recomputes from `local`, so it is not passed twice.
    """
    factors = [m for m in contexts if m != 1]
    device = model_device(model) if device is None else device
    image = as_chw_float(img)
    if num_classes is None:
        probe = image[:, :patch, :patch]
        probe = F.pad(probe, (0, patch - probe.shape[-1], 0, patch - probe.shape[-2]))
        with torch.no_grad():
            num_classes = model(probe[None].to(device), [torch.zeros_like(probe)[None].to(device)
                                                         for _ in factors]).shape[1]
    canvas = segment_logits(image, model, patch, min_overlap, factors, num_classes, tta, batch, device)
    return canvas.argmax(0).cpu().numpy()
