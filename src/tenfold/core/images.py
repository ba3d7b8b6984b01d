"""One image reader for every system: bit depth read correctly, bombs and truncation refused with InputError.

`read_pixels` decodes a whole file (a truncated one fails here, not later) and returns its samples in their
native dtype; `to_unit` scales them to float32 in [0, 1] by the bit depth they were stored with; `to_rgb` /
`to_grey` fix the channel layout. Pillow's `convert("RGB")` is never used on deep images: it clips 16-bit
samples to 255 instead of scaling them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from tenfold.core.errors import InputError

# Design choice: refuse images above 2^28 pixels (16384 x 16384) before decoding them. The largest standard
# images the systems read are Inria tiles (5000 x 5000 = 2.5e7); Pillow's own bomb limit is 8.9e7 (warning)
# and 1.8e8 (error).
MAX_IMAGE_PIXELS = 2**28

# Pillow modes whose samples are wider than 8 bits, and the bit depth their values use.
_DEEP_MODES = {"I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 16}


def read_pixels(path: str | Path, label: str | None = None) -> np.ndarray:
    """Decode `path` fully -> (H, W) or (H, W, C) array in the file's own dtype (uint8, uint16, bool, float32).

    Raises InputError naming the file for: a missing or unreadable file, a truncated one, more than
    MAX_IMAGE_PIXELS pixels, or an empty image. 32-bit integer images ("I" mode) are accepted only when
    their values fit 16 bits (Pillow reads 16-bit PNG and TIFF that way); they come back as uint16.
    """
    from PIL import Image

    path = Path(path)
    name = label or str(path)
    if not path.is_file():
        raise InputError(f"{name}: image file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise InputError(f"{name}: {width}x{height} pixels is over the limit of {MAX_IMAGE_PIXELS} "
                                     "(tenfold.core.images.MAX_IMAGE_PIXELS); tile the image first")
                mode = im.mode
                im.load()  # decode everything now: a truncated file fails here
                if mode == "P":  # palette: the colours, not the indices (a mask's ids are its colours)
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                    mode = im.mode
                arr = np.asarray(im)
    except InputError:
        raise
    except Exception as err:  # UnidentifiedImageError, OSError (truncated), DecompressionBomb*, ValueError
        raise InputError(f"{name}: cannot be read as an image ({type(err).__name__}: {err}); expected a PNG, "
                         "JPEG or TIFF file") from None
    if arr.size == 0:
        raise InputError(f"{name}: empty image ({arr.shape})")
    if mode in _DEEP_MODES:
        if arr.dtype != np.uint16:
            if arr.min() < 0 or arr.max() > 65535:
                raise InputError(f"{name}: 32-bit integer pixels outside 0..65535; expected 8- or 16-bit images")
            arr = arr.astype(np.uint16)
    elif arr.dtype not in (np.uint8, np.bool_, np.float32):
        raise InputError(f"{name}: pixel type {arr.dtype} (mode {mode}) is not supported; expected 8- or "
                         "16-bit images")
    return arr


def to_unit(arr: np.ndarray, label: str) -> np.ndarray:
    """Samples -> float32 in [0, 1], scaled by the stored bit depth (uint8 / 255, uint16 / 65535, bool 0/1).

    Float images must already lie in [0, 1] and be finite; anything else raises InputError naming `label`.
    """
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return (arr.astype(np.float64) / 65535.0).astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError(f"{label}: image has non-finite (NaN or inf) pixel values")
        if arr.min() < 0 or arr.max() > 1:
            raise InputError(f"{label}: floating-point pixels must lie in [0, 1], found "
                             f"[{float(arr.min()):.4g}, {float(arr.max()):.4g}]")
        return arr.astype(np.float32)
    raise InputError(f"{label}: pixel type {arr.dtype} is not supported; expected 8- or 16-bit images")


def to_rgb(arr: np.ndarray, label: str) -> np.ndarray:
    """(H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) or (H, W, 4) -> (H, W, 3); alpha is dropped."""
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)  # (H, W) -> (H, W, 3)
    if arr.ndim == 3 and arr.shape[2] == 2:
        return np.repeat(arr[..., :1], 3, axis=2)  # (H, W, 2) grey + alpha -> (H, W, 3)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return arr[..., :3]
    raise InputError(f"{label}: expected a grey or RGB image, got an array of shape {arr.shape}")


def to_grey(arr: np.ndarray, label: str) -> np.ndarray:
    """(H, W), (H, W, 2) grey + alpha, (H, W, 3|4) -> (H, W) float64 (ITU-R 601 luma for colour)."""
    if arr.ndim == 2:
        return arr.astype(np.float64)
    if arr.ndim == 3 and arr.shape[2] == 2:
        return arr[..., 0].astype(np.float64)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # (H, W, 3) -> (H, W)
    raise InputError(f"{label}: expected a grey or RGB image, got an array of shape {arr.shape}")


def check_min_size(arr: np.ndarray, min_side: int, label: str) -> None:
    """Refuse images with a side shorter than `min_side` pixels (the smallest the model can use)."""
    h, w = arr.shape[:2]
    if min(h, w) < min_side:
        raise InputError(f"{label}: image is {w}x{h} pixels; this system needs at least {min_side} px per side")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def image_files(folder: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """The files of `folder` (not its sub-folders) whose suffix, in any case, is one of `suffixes`, sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in suffixes and p.is_file())
