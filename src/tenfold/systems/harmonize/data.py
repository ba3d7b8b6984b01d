"""Data of `harmonize` (Harmonizing output imbalance ..., arXiv 2211.05295), spec section 4.

  4.1  `make_el_cells`      synthetic electroluminescence (EL) cells with tiny hidden cracks (1 px wide, L px long)
                            and false-positive distractors, at three input-imbalance scales (`SCALES`)
  4.2  `load_pairs_folder`  real data: `images/*.png|jpg|tif` + `masks/*.png` pairs read through
                            `tenfold.core.images` (bit depth kept), with clear errors for unreadable files, size
                            mismatches, sizes the model cannot take and non-binary masks (README "Bad input")
       `augment`            flips and 90-degree rotations (no resizing: pitfall 6)
       `random_crops`       uniformly placed training crops (never crack-centred: pitfall 7)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from tenfold.core.errors import InputError
from tenfold.core.images import IMAGE_SUFFIXES, check_min_size, image_files, read_pixels, to_grey, to_unit

# Spec 4.1 item 8: scale -> (canvas side, crack length range in px).
SCALES: dict[str, tuple[int, tuple[int, int]]] = {"S1": (96, (6, 9)), "S2": (128, (8, 16)), "S3": (192, (8, 16))}
# Spec 4.1 item 9: disjoint seed ranges per split (seed offsets; a run's seed shifts all three).
SPLIT_SEED_OFFSETS = {"train": 0, "val": 1_000_000, "test": 2_000_000}


@dataclass(frozen=True)
class SegmentationSet:
    """Images (N, 1, H, W) float32 in [0, 1] and binary masks (N, 1, H, W) float32; `names` for files."""

    images: torch.Tensor
    masks: torch.Tensor
    names: tuple[str, ...] = ()
    split: str = ""  # "train" | "val" | "test" | "" (unknown); the selector refuses "test" (pitfall 3)
    # Issue 18: (h, w) of each image when a folder mixes sizes; the tensors are then zero-padded to the largest
    # and only [:h, :w] is image (training crops stay inside it, scoring ignores the rest). () = all full size.
    sizes: tuple[tuple[int, int], ...] = ()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def foreground_ratio(self) -> float:
        """Dataset-level fg:bg pixel ratio IR = sum g / sum (1 - g) (spec 2, notation)."""
        fg = float(self.masks.sum())
        return fg / max(float(self.masks.numel()) - fg, 1.0)


def _crack_pixels(rng: np.random.Generator, size: int, length: int, turn_std: float) -> list[tuple[int, int]]:
    """A 1-px wide, 8-connected random walk of exactly `length` distinct pixels (spec 4.1 item 6)."""
    margin = 8
    while True:
        y, x = rng.uniform(margin, size - margin, size=2)
        heading = rng.uniform(0, 2 * math.pi)
        pixels = [(int(round(y)), int(round(x)))]
        for _ in range(20 * length):
            if len(pixels) == length:
                return pixels
            heading += rng.normal(0.0, turn_std)  # heading turning noise per 1-px step
            y, x = y + math.sin(heading), x + math.cos(heading)
            p = (int(round(y)), int(round(x)))
            if not (0 <= p[0] < size and 0 <= p[1] < size):
                break
            if p == pixels[-1]:
                continue
            if p in pixels:  # the walk turned back on itself: resample (keeps the crack a simple 1-px line)
                break
            last = pixels[-1]
            if max(abs(p[0] - last[0]), abs(p[1] - last[1])) > 1:  # rounding skipped a pixel: bridge it
                mid = (last[0] + int(np.sign(p[0] - last[0])), last[1] + int(np.sign(p[1] - last[1])))
                if mid in pixels:
                    break
                pixels.append(mid)
                if len(pixels) == length:
                    return pixels
            pixels.append(p)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Cell background: level, illumination gradient, busbars, fingers, pseudo-square corners (items 1-4)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    img = 0.55 + rng.uniform(-0.08, 0.08) * (xx - 0.5) * 2 + rng.uniform(-0.08, 0.08) * (yy - 0.5) * 2
    img[::6, :] -= 0.03  # fingers: horizontal lines every 6 px
    for frac in (0.25, 0.5, 0.75):  # busbars: 3 px wide at W/4, W/2, 3W/4, jittered +-3 px
        c = int(frac * size) + int(rng.integers(-3, 4))
        img[:, max(c - 1, 0):c + 2] -= 0.25
    leg = int(round(0.12 * size))  # pseudo-square corners cut at 12 % of the side
    iy, ix = np.mgrid[0:size, 0:size]
    for cy, cx in ((0, 0), (0, size - 1), (size - 1, 0), (size - 1, size - 1)):
        img[(np.abs(iy - cy) + np.abs(ix - cx)) < leg] = 0.1
    return img


def _distractors(rng: np.random.Generator, img: np.ndarray) -> None:
    """False-positive bait (item 5): finger interruptions and dark Gaussian spots, in place."""
    size = img.shape[0]
    for _ in range(int(rng.integers(0, 4))):  # 0-3 dark dashes of 3-6 px along a finger line, -0.08
        row = 6 * int(rng.integers(1, size // 6))
        start = int(rng.integers(0, size - 6))
        img[row, start:start + int(rng.integers(3, 7))] -= 0.08
    iy, ix = np.mgrid[0:size, 0:size]
    for _ in range(int(rng.integers(0, 3))):  # 0-2 dark Gaussian blobs, sigma 1.5-3 px, peak -0.08
        cy, cx = rng.uniform(0, size, size=2)
        s = rng.uniform(1.5, 3.0)
        img -= 0.08 * np.exp(-((iy - cy) ** 2 + (ix - cx) ** 2) / (2 * s * s))


def make_el_cell(rng: np.random.Generator, size: int, crack_len: tuple[int, int], p_defect: float,
                 contrast: tuple[float, float] = (0.04, 0.12), noise_std: float = 0.03, blur_sigma: float = 0.6,
                 turn_std: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """One (image (H, W) float32 in [0, 1], mask (H, W) uint8) pair, spec 4.1 items 1-7."""
    img = _background(rng, size)
    _distractors(rng, img)
    mask = np.zeros((size, size), dtype=np.uint8)
    if rng.random() < p_defect:
        length = int(rng.integers(crack_len[0], crack_len[1] + 1))
        pix = np.array(_crack_pixels(rng, size, length, turn_std))  # (L, 2) rows, cols
        mask[pix[:, 0], pix[:, 1]] = 1
        img[pix[:, 0], pix[:, 1]] -= rng.uniform(*contrast)  # barely visible against the noise
    img += rng.normal(0.0, noise_std, size=img.shape)  # texture noise
    img = ndimage.gaussian_filter(img, blur_sigma)  # item 7: blur the image only; the mask stays 1 px
    return np.clip(img, 0.0, 1.0).astype(np.float32), mask


def make_el_cells(n: int, size: int, crack_len: tuple[int, int], p_defect: float = 0.6, seed: int = 0,
                  contrast: tuple[float, float] = (0.04, 0.12), noise_std: float = 0.03) -> SegmentationSet:
    """`n` synthetic EL cells of `size` x `size` (spec 4.1); deterministic in `seed`."""
    if size < 24 or crack_len[0] < 1 or crack_len[1] < crack_len[0]:
        raise InputError(f"make_el_cells: need size >= 24 and 1 <= crack_len[0] <= crack_len[1], "
                         f"got size={size}, crack_len={crack_len}")
    rng = np.random.default_rng(seed)
    pairs = [make_el_cell(rng, size, crack_len, p_defect, contrast, noise_std) for _ in range(n)]
    images = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]  # (N, 1, H, W)
    masks = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.float32))[:, None]  # (N, 1, H, W)
    return SegmentationSet(images, masks)


def make_split(split: str, num: int, size: int, crack_len: tuple[int, int], p_defect: float, seed: int,
               contrast: tuple[float, float] = (0.04, 0.12), noise_std: float = 0.03) -> SegmentationSet:
    """One split generated from its own disjoint seed range (spec 4.1 item 9)."""
    if split not in SPLIT_SEED_OFFSETS:
        raise InputError(f"split must be one of {sorted(SPLIT_SEED_OFFSETS)}, got {split!r}")
    data = make_el_cells(num, size, crack_len, p_defect, SPLIT_SEED_OFFSETS[split] + seed * 7919, contrast,
                         noise_std)
    return dataclasses.replace(data, split=split)


# --------------------------------------------------------------------------------------------- real data (4.2)

def _read_image(path: Path) -> np.ndarray:
    """An image file -> (H, W) float32 in [0, 1], scaled by its stored bit depth (8 or 16 bit, or float).

    Decoded whole by `tenfold.core.images.read_pixels` (truncated files, bombs, unreadable files -> InputError
    naming the file); colour is reduced to luminance (EL images are greyscale).
    """
    arr = read_pixels(path)
    # Deviation (issue 12): float images must already lie in [0, 1] (`to_unit`); they were divided by their
    # own maximum before, which gave every image a different scale.
    return to_grey(to_unit(arr, str(path)), str(path)).astype(np.float32)


def _read_mask(path: Path) -> np.ndarray:
    """A mask file -> (H, W) float32 0/1. Single channel (L, 1, I;16) with values 0/1 or 0/255.

    Design choice: a mask stored as colour (palette, RGB, LA, RGBA) is accepted only when it is grey in disguise:
    equal colour channels and a fully opaque alpha; anything else is refused (the class is ambiguous).
    """
    arr = read_pixels(path)
    if arr.ndim == 3:
        arr = _grey_mask(arr, path)
    values = np.unique(arr)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        raise InputError(f"{path}: mask is not binary: values {values[:6].tolist()}...; expected 0/1 or 0/255")
    return (arr > 0).astype(np.float32)


def _grey_mask(arr: np.ndarray, path: Path) -> np.ndarray:
    """(H, W, C) colour mask -> (H, W) when it is grey (equal colour channels, opaque alpha); else InputError."""
    channels = arr.shape[2]
    colour, alpha = (arr[..., :1], arr[..., 1]) if channels == 2 else (arr[..., :3], arr[..., 3:])
    full = np.iinfo(arr.dtype).max if np.issubdtype(arr.dtype, np.integer) else 1
    grey = bool((colour == colour[..., :1]).all())
    opaque = bool((alpha == full).all()) if alpha.size else True
    if channels not in (2, 3, 4) or not grey or not opaque:
        raise InputError(f"{path}: mask must be single-channel, got shape {arr.shape} with "
                         f"{'colours' if not grey else 'transparency'}; expected a grey (mode L or 1) PNG with "
                         "values 0/1 or 0/255")
    return colour[..., 0]


def load_pairs_folder(root: Path, multiple: int = 1, crop: int = 0) -> SegmentationSet:
    """Read `root/images/<name>.<png|jpg|tif>` with `root/masks/<name>.png` (spec 4.2), every file decoded whole.

    Errors (InputError) name the file and what was expected: a missing folder or mask, no image at all, an
    unreadable, truncated or over-large file (`tenfold.core.images`), NaN/inf or out-of-range float pixels,
    image/mask size mismatch, a non-binary or colour mask, and sides that are not multiples of `multiple` (the
    model's down-sampling) or shorter than `crop` (training crops). Images of different sizes are zero-padded to
    the largest, with `sizes` recording each one's own (h, w) (issue 18).
    """
    root = Path(root)
    img_dir, mask_dir = root / "images", root / "masks"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise InputError(f"{d}: folder not found; expected {root}/images/*.png|jpg|tif and {root}/masks/*.png")
    files = image_files(img_dir)
    if not files:
        raise InputError(f"{img_dir}: no images (*.png, *.jpg, *.tif); expected at least one image per split")
    images, masks, names = [], [], []
    for f in files:
        mpath = mask_dir / (f.stem + ".png")
        if not mpath.exists():
            raise InputError(f"{mpath}: mask missing for image {f.name}; expected masks/<image stem>.png")
        img = _read_image(f)
        check_side(img, multiple, crop, str(f))
        mask = _read_mask(mpath)
        if img.shape != mask.shape:
            raise InputError(f"{mpath}: mask size {mask.shape[::-1]} differs from image {f.name} size "
                             f"{img.shape[::-1]} (W x H); masks must match their images pixel for pixel")
        images.append(img)
        masks.append(mask)
        names.append(f.stem)
    sizes = [im.shape for im in images]
    if len(set(sizes)) == 1:
        return SegmentationSet(torch.from_numpy(np.stack(images))[:, None],
                               torch.from_numpy(np.stack(masks))[:, None], tuple(names))
    # Issue 18: images of different sizes are kept whole (no resizing: 1-px targets), zero-padded to the largest.
    H, W = max(h for h, _ in sizes), max(w for _, w in sizes)
    img_t, mask_t = torch.zeros(len(images), 1, H, W), torch.zeros(len(images), 1, H, W)  # (N, 1, H, W)
    for i, (im, m) in enumerate(zip(images, masks)):
        img_t[i, 0, :im.shape[0], :im.shape[1]] = torch.from_numpy(im)
        mask_t[i, 0, :m.shape[0], :m.shape[1]] = torch.from_numpy(m)
    return SegmentationSet(img_t, mask_t, tuple(names), sizes=tuple((int(h), int(w)) for h, w in sizes))


def check_side(img: np.ndarray, multiple: int, crop: int, label: str) -> None:
    """Refuse an (H, W) image the model cannot take: sides not multiples of `multiple`, or shorter than `crop`."""
    check_min_size(img, max(multiple, crop), label)
    h, w = img.shape[:2]
    if h % multiple or w % multiple:
        raise InputError(f"{label}: image is {w}x{h} pixels; the model needs both sides to be multiples of "
                         f"{multiple} (crop or pad the data set; no resizing: 1-px targets)")


def save_pairs_folder(data: SegmentationSet, root: Path) -> None:
    """Export PNG image/mask pairs (8-bit image, 0/255 mask) so generated data serves the real-data path."""
    from PIL import Image

    (Path(root) / "images").mkdir(parents=True, exist_ok=True)
    (Path(root) / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(len(data)):
        name = data.names[i] if data.names else f"cell_{i:05d}"
        img = np.round(data.images[i, 0].numpy() * 255).astype(np.uint8)
        mask = (data.masks[i, 0].numpy() > 0).astype(np.uint8) * 255
        Image.fromarray(img).save(Path(root) / "images" / f"{name}.png")
        Image.fromarray(mask).save(Path(root) / "masks" / f"{name}.png")


# ------------------------------------------------------------------------------------------- augmentation

def augment(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips and 90-degree rotations, the same for image and mask (spec 3); no resizing."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    flip = bool(torch.randint(0, 2, (1,), generator=generator))
    images, masks = torch.rot90(images, k, (-2, -1)), torch.rot90(masks, k, (-2, -1))
    if flip:
        images, masks = images.flip(-1), masks.flip(-1)
    return images, masks


def random_crops(images: torch.Tensor, masks: torch.Tensor, crop: int, generator: torch.Generator,
                 extents: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One uniformly placed `crop` x `crop` window per image: (B, 1, H, W) -> (B, 1, crop, crop).

    Uniform placement keeps the expected fg:bg ratio of the canvas (pitfall 7 forbids crack-centred crops).
    `extents` (B, 2): each image's own (h, w) inside the padded tensor (mixed sizes); windows stay inside it.
    """
    b, _, h, w = images.shape
    if crop <= 0 or (crop >= h and crop >= w and extents is None):
        return images, masks
    if extents is None:
        ys = torch.randint(0, h - crop + 1, (b,), generator=generator)
        xs = torch.randint(0, w - crop + 1, (b,), generator=generator)
    else:  # uniform in [0, h_i - crop] x [0, w_i - crop] per image
        ys = (torch.rand(b, generator=generator) * (extents[:, 0] - crop + 1)).long().clamp_max(extents[:, 0] - crop)
        xs = (torch.rand(b, generator=generator) * (extents[:, 1] - crop + 1)).long().clamp_max(extents[:, 1] - crop)
    img = torch.stack([images[i, :, y:y + crop, x:x + crop] for i, (y, x) in enumerate(zip(ys.tolist(), xs.tolist()))])
    msk = torch.stack([masks[i, :, y:y + crop, x:x + crop] for i, (y, x) in enumerate(zip(ys.tolist(), xs.tolist()))])
    return img, msk
