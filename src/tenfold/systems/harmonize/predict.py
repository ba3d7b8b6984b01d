"""`tenfold predict harmonize`: segment a user's own images of any size with a trained run (issue 18).

Paper: Zhou et al., "Harmonizing output imbalance for semantic segmentation on extremely-imbalanced input data",
arXiv 2211.05295.

    tenfold predict harmonize --run DIR --input IMAGE_OR_FOLDER --output MASK.png_OR_FOLDER

Steps:
 1. read the run: config.json, the finished checkpoint (weights_only) and summary.json's `val_logit_threshold`, the
    threshold train chose on the validation split (`scoring.validation_threshold`, the best validation F1);
 2. list the inputs (one PNG / JPEG / TIFF, or every such file of a folder) and decode each whole with the reader of
    the training data (`data._read_image`: grey, scaled by bit depth, truncated files and bombs refused) before
    anything is written;
 3. tile each image into windows of the training input size with a margin of overlap, keep each window's centre
    (`tiled_logits`), and write the mask (0 / 255, 8-bit PNG, the image's size) atomically.
Design choice: windows of the training input size (data.train_crop, else data.image_size): the model's GroupNorm
statistics then come from inputs of the size it was trained on, and memory stays bounded for any image size.
Design choice (issue 18): the mask uses the validation-chosen threshold; the summary also reports the paper's
fixed t = 0.5 (`train.threshold`) and how many pixels each gives, so a user sees what tuning changed.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tenfold.core.config import load_config
from tenfold.core.errors import InputError
from tenfold.core.images import image_files
from tenfold.core.runs import RunDir, atomic_write_bytes
from tenfold.systems.harmonize.config import Config
from tenfold.systems.harmonize.data import IMAGE_SUFFIXES, _read_image
from tenfold.systems.harmonize.model import build_model, input_multiple
from tenfold.systems.harmonize.scoring import checked_checkpoint, load_state

MARGIN = 16  # px of context discarded at each inner window border


def list_inputs(inp: Path, outp: Path) -> list[tuple[Path, Path]]:
    """(image, mask path) pairs: a folder gives OUT/<stem>_mask.png; a single image needs a .png output."""
    if inp.is_dir():
        files = image_files(inp)
        if not files:
            raise InputError(f"--input {inp}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        if outp.exists() and not outp.is_dir():
            raise InputError(f"--output {outp}: exists and is not a folder (a folder input needs a folder output)")
        return [(f, outp / f"{f.stem}_mask.png") for f in files]
    if inp.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"--input {inp}: suffix {inp.suffix!r} is not an image; expected one of {IMAGE_SUFFIXES}")
    if outp.suffix.lower() != ".png":
        raise InputError(f"--output {outp}: the mask is written as a PNG; name it <something>.png")
    return [(inp, outp)]


def _starts(length: int, window: int, step: int) -> list[int]:
    """Window starts covering [0, length): every `step`, the last one flush with the end."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window, step))
    return starts + [length - window]


@torch.no_grad()
def tiled_logits(model: nn.Module, image: torch.Tensor, window: int, multiple: int, margin: int = MARGIN,
                 device: torch.device | None = None) -> torch.Tensor:
    """(H, W) image -> (H, W) logits from overlapping windows; each output pixel comes from the window whose centre
    region holds it (its border pixels only where no other window covers them).

    The image is reflect-padded to at least one window and to a multiple of `multiple`; windows step by
    window - 2 margin.
    """
    h, w = image.shape
    ph = max(window, math.ceil(h / multiple) * multiple) - h
    pw = max(window, math.ceil(w / multiple) * multiple) - w
    x = image[None, None]  # (H, W) -> (1, 1, H, W)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = nn.functional.pad(x, (0, pw, 0, ph), mode=mode)  # (1, 1, H', W')
    H, W = x.shape[-2:]
    win_h, win_w = min(window, H), min(window, W)
    out = torch.zeros(H, W)
    step_h, step_w = max(win_h - 2 * margin, 1), max(win_w - 2 * margin, 1)
    device = device or next(model.parameters()).device
    for y in _starts(H, win_h, step_h):
        for x0 in _starts(W, win_w, step_w):
            z = model(x[..., y:y + win_h, x0:x0 + win_w].to(device)).float().cpu()[0, 0]  # (win_h, win_w)
            top = 0 if y == 0 else margin
            left = 0 if x0 == 0 else margin
            out[y + top:y + win_h, x0 + left:x0 + win_w] = z[top:, left:]
    return out[:h, :w]


def _png(mask: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")
    return buf.getvalue()


def _threshold(run: RunDir) -> float:
    path = run.summary_path
    try:
        value = json.loads(path.read_text(encoding="utf-8"))["val_logit_threshold"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: no 'val_logit_threshold' ({type(err).__name__}); expected the summary of a run "
                         f"trained to the end by this version of `tenfold train harmonize` (train it again)") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{path}: field 'val_logit_threshold' is {value!r}; expected a finite number")
    return float(value)


def predict(run_dir: Path, inp: Path, outp: Path) -> dict[str, Any]:
    """Segment `inp` into `outp`; every input is decoded and checked before the first mask is written."""
    run_dir, inp, outp = Path(run_dir), Path(inp), Path(outp)
    cfg = load_config(Config, run_dir / "config.json")
    run = RunDir(run_dir)
    ckpt = checked_checkpoint(run)
    if ckpt is None or not ckpt["plan"]["finished"]:
        raise InputError(f"{run.checkpoint_path}: no finished training run; run `tenfold train harmonize` first")
    logit_t = _threshold(run)
    pairs = list_inputs(inp, outp)
    images = [(src, dst, _read_image(src)) for src, dst in pairs]  # decode all first: refuse before writing
    model = build_model(cfg.model.arch, cfg.model.widths, cfg.model.encoder)
    load_state(model, ckpt["model"], f"{run.checkpoint_path}: field 'model'")
    model.eval()
    multiple = input_multiple(model)
    window = cfg.data.train_crop or cfg.data.image_size
    fixed_t = math.log(cfg.train.threshold / (1 - cfg.train.threshold))
    written, fg_val, fg_fixed = [], 0, 0
    for src, dst, img in images:
        z = tiled_logits(model, torch.from_numpy(img), window, multiple)  # (H, W)
        mask = (z >= logit_t).numpy()
        fg_val += int(mask.sum())
        fg_fixed += int((z >= fixed_t).sum())
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(dst, _png(mask.astype(np.uint8) * 255))
        written.append(str(dst))
    return {"images": len(written), "outputs": written, "window": window,
            "threshold": {"validation_logit": logit_t, "validation_p": 1 / (1 + math.exp(-logit_t)),
                          "fixed_p": cfg.train.threshold},
            "foreground_pixels": {"at_validation_threshold": fg_val, "at_fixed_threshold": fg_fixed}}
