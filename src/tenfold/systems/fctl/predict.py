"""`tenfold predict fctl`: segment a user's own images of any size with a trained run (arXiv 2109.02580).

Paper: Liu et al., "Ultra-high Resolution Image Segmentation via Locality-aware Context Fusion and Alternating
Local Enhancement", IJCV 2024, arXiv 2109.02580.

    tenfold predict fctl --run DIR --input IMAGE_OR_FOLDER --output OUT

Steps:
 1. read the run: config.json and the best trained stage (LCF `all` when trained, else the last stage), each stage
    file read with weights_only and checked against the config;
 2. list the inputs (one PNG / JPEG / TIFF / GeoTIFF, or every such file of a folder) and check each file's header
    (size, at least one patch per side) before anything is written;
 3. decode the next images in loader threads while the model segments the current one (patches stream through the
    model in batches of `eval.test_batch`, so memory beyond the image and its K x H x W canvas stays bounded),
    with autocast (float16) on CUDA;
 4. write each mask atomically in the input's format: TIFF -> TIFF with the input's GeoTIFF tags (the georeference
    is kept), PNG / JPEG -> PNG; for a folder, OUT is a folder of `<stem>_mask.<png|tif>`.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from tenfold.core.config import load_config
from tenfold.core.errors import InputError
from tenfold.core.images import IMAGE_SUFFIXES, check_min_size, image_files, to_unit
from tenfold.systems.fctl.config import Config
from tenfold.systems.fctl.data import read_rgb, write_mask
from tenfold.systems.fctl.patching import model_device, segment_large_image
from tenfold.systems.fctl.stages import base_stage, load_stage_model, model_factors, stage_path, stage_predict

# Design choice: two loader threads decode ahead of the model (decoding releases the GIL in Pillow / tifffile).
LOADER_THREADS = 2


def pick_stage(cfg: Config, run_dir: Path) -> str:
    """LCF (`all`) when the run trained it, else the last trained stage."""
    trained = [s for s in cfg.train.stages if stage_path(run_dir, s).exists()]
    if not trained:
        raise InputError(f"{run_dir}: no trained stage (checkpoints/stage_*.pt); run `tenfold train fctl` first")
    return "all" if "all" in trained else trained[-1]


def list_inputs(inp: Path, outp: Path) -> list[tuple[Path, Path]]:
    """(input image, output mask) pairs; refuses unknown suffixes and an output that does not fit the input."""
    if inp.is_dir():
        files = image_files(inp)
        if not files:
            raise InputError(f"--input {inp}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        if outp.exists() and not outp.is_dir():
            raise InputError(f"--output {outp}: exists and is not a folder (a folder input needs a folder output)")
        return [(f, outp / f"{f.stem}_mask{'.tif' if f.suffix.lower() in ('.tif', '.tiff') else '.png'}")
                for f in files]
    if inp.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"--input {inp}: suffix {inp.suffix!r} is not an image; expected one of {IMAGE_SUFFIXES}")
    want = (".tif", ".tiff") if inp.suffix.lower() in (".tif", ".tiff") else (".png",)
    if outp.suffix.lower() not in want:
        raise InputError(f"--output {outp}: a mask of {inp.name} is written as {' / '.join(want)}; name it so")
    return [(inp, outp)]


def _check_header(path: Path, min_side: int) -> None:
    """Size from the header only (no decode): at least one patch per side."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                shape = tif.pages[0].shape
        except Exception as err:  # not a TIFF, bad tags
            raise InputError(f"{path}: cannot be read as a TIFF image ({type(err).__name__}: {err})") from None
        h, w = shape[:2]
    else:
        from PIL import Image

        try:
            with Image.open(path) as im:
                w, h = im.size
        except Exception as err:  # UnidentifiedImageError, OSError
            raise InputError(f"{path}: cannot be read as an image ({type(err).__name__}: {err})") from None
    if min(h, w) < min_side:
        raise InputError(f"{path}: image is {w}x{h} pixels; this run needs at least {min_side} px per side "
                         "(data.patch_size)")


def _read(path: Path, min_side: int) -> np.ndarray:
    img = to_unit(read_rgb(path), str(path))  # (H, W, 3) float32 in [0, 1], 8- or 16-bit in
    check_min_size(img, min_side, str(path))
    return img


def _prefetched(pairs: list[tuple[Path, Path]], min_side: int) -> Iterator[tuple[Path, Path, np.ndarray]]:
    """Yield decoded images in order while up to LOADER_THREADS later ones decode in the background."""
    with ThreadPoolExecutor(max_workers=LOADER_THREADS) as pool:
        futures = [pool.submit(_read, src, min_side) for src, _ in pairs[:LOADER_THREADS]]
        for i, (src, dst) in enumerate(pairs):
            img = futures[i].result()  # raises the reader's InputError for this file
            if i + LOADER_THREADS < len(pairs):
                futures.append(pool.submit(_read, pairs[i + LOADER_THREADS][0], min_side))
            yield src, dst, img


def predict(run_dir: Path, inp: Path, outp: Path) -> dict[str, Any]:
    """Segment `inp` (an image or a folder of images) into `outp`; -> a summary of what was written."""
    run_dir, inp, outp = Path(run_dir), Path(inp), Path(outp)
    cfg = load_config(Config, run_dir / "config.json")
    pairs = list_inputs(inp, outp)
    patch = cfg.data.patch_size
    for src, _ in pairs:
        _check_header(src, patch)
    stage = pick_stage(cfg, run_dir)
    model = load_stage_model(cfg, run_dir, stage).eval()
    device = model_device(model)
    factors = tuple(f for f in model_factors(model, cfg))
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else contextlib.nullcontext()
    written = []
    for src, dst, img in _prefetched(pairs, patch):
        with amp:
            if base_stage(stage) == "global":
                image = torch.from_numpy(img).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
                labels = stage_predict(model, stage, image, cfg).argmax(0).cpu().numpy()
            else:
                labels = segment_large_image(img, model, patch, cfg.data.min_overlap, (1, *factors),
                                             cfg.eval.use_tta, num_classes=cfg.data.num_classes,
                                             batch=cfg.eval.test_batch, device=device)
        written.append(write_mask(dst, labels, like=src))
    return {"stage": stage, "device": str(device), "images": len(written), "outputs": [str(p) for p in written]}
