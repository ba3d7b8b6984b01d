"""`tenfold predict maskfocal --run DIR --input IMAGES --output detections.json` (arXiv 2212.11542).

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with
canonical object detection networks", arXiv 2212.11542 (spec ../shared/specs/maskfocal.md, sections 2.7, 3).

Steps: 1. the run's config.json, its final checkpoint and the validation tau from summary.json (never a test
tau; pitfall 2); 2. every input image (a file or a folder of PNG / JPEG / TIFF) through tenfold.core.images;
3. tiled inference: tiles of `TILE` px with `OVERLAP` px overlap, each detection kept only by the tile whose core
(the part of the image closer to it than to its neighbours) holds its centre, so a head is counted once;
4. detections with score >= tau written as COCO results [{image_id, category_id: 1, bbox [x, y, w, h], score}]
and, beside them, <output stem>_counts.csv with file_name, image_id, width, height, count.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
TILE = 512  # Design choice: tile side in px (a multiple of 32); smaller images run in one piece, zero-padded
OVERLAP = 64  # Design choice: px shared by neighbouring tiles (> the largest head a tile must see whole)


def _inputs(inp: Path) -> tuple[Path, list[str]]:
    """(root, image names relative to it) for an image file or a folder of images (sorted, not recursive)."""
    if inp.is_dir():
        names = sorted(p.name for p in inp.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not names:
            raise InputError(f"--input {inp}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return inp, names
    if inp.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"--input {inp}: expected an image ({', '.join(IMAGE_SUFFIXES)}) or a folder of images")
    return inp.parent, [inp.name]


def _run_state(run_dir: Path):
    from tenfold.core.config import load_config
    from tenfold.core.runs import RunDir
    from tenfold.systems.maskfocal.config import Config
    from tenfold.systems.maskfocal.data import restore
    from tenfold.systems.maskfocal.model import build_model

    cfg = load_config(Config, run_dir / "config.json")
    summary = run_dir / "summary.json"
    try:
        tau = json.loads(summary.read_text())["tau"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{summary}: missing or without tau; expected the summary of a finished "
                         "`tenfold train maskfocal` run (tau is chosen on its validation split)") from None
    if not isinstance(tau, (int, float)) or isinstance(tau, bool) or not 0 <= tau < 1:
        raise InputError(f"{summary}: tau is {tau!r:.40}; expected a number in [0, 1)")
    run = RunDir(run_dir)
    ckpt = run.load_checkpoint()
    if ckpt is None or ckpt.get("finished") is not True:
        raise InputError(f"{run.checkpoint_path}: no final checkpoint (field 'finished' is not true)")
    model = build_model(cfg.model)
    restore(run.checkpoint_path, ckpt, model)
    return cfg, model.eval(), float(tau)


def _starts(size: int, tile: int) -> list[int]:
    """Tile origins covering [0, size) with `OVERLAP` px overlap; the last tile ends at the padded edge."""
    if size <= tile:
        return [0]
    step = tile - OVERLAP
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def detect_tiled(model: torch.nn.Module, cfg, image: torch.Tensor, tile: int = TILE) -> dict[str, np.ndarray]:
    """Detections of one uint8 image (3, H, W) in image px: tiles, decoding, ownership by tile core."""
    from tenfold.systems.maskfocal.scoring import predict

    _, H, W = image.shape
    Hp, Wp = -(-H // 32) * 32, -(-W // 32) * 32  # pad to a multiple of 32 (the trunk's stride)
    padded = torch.zeros(3, Hp, Wp, dtype=torch.uint8)
    padded[:, :H, :W] = image
    th, tw = min(tile, Hp), min(tile, Wp)
    ys, xs = _starts(Hp, th), _starts(Wp, tw)
    # Each tile owns the part of the image closer to it than to its neighbours: core boundaries at the middle
    # of every overlap, -inf / +inf at the image border.
    ycut = [-np.inf] + [(a + th + b) / 2 for a, b in zip(ys, ys[1:])] + [np.inf]
    xcut = [-np.inf] + [(a + tw + b) / 2 for a, b in zip(xs, xs[1:])] + [np.inf]
    out: dict[str, list] = {"boxes": [], "scores": [], "points": []}
    for i, y0 in enumerate(ys):
        for j, x0 in enumerate(xs):
            det = predict(model, padded[None, :, y0:y0 + th, x0:x0 + tw], cfg)[0]
            shift = np.array([x0, y0], dtype=np.float32)
            pts = det["points"] + shift
            lo, hi = np.array([xcut[j], ycut[i]]), np.array([xcut[j + 1], ycut[i + 1]])
            keep = np.all((pts >= lo) & (pts < hi), axis=1) & (pts[:, 0] < W) & (pts[:, 1] < H)
            out["points"].append(pts[keep])
            out["boxes"].append(det["boxes"][keep] + np.tile(shift, 2))
            out["scores"].append(det["scores"][keep])
    return {"boxes": np.concatenate(out["boxes"]).reshape(-1, 4), "scores": np.concatenate(out["scores"]),
            "points": np.concatenate(out["points"]).reshape(-1, 2)}


def predict(run_dir: Path, inp: Path, outp: Path) -> dict[str, Any]:
    """Detect heads in `inp` with the run in `run_dir`; write COCO results to `outp` and counts beside it."""
    from tenfold.core.runs import atomic_write_text
    from tenfold.systems.maskfocal.data import _load_image

    run_dir, inp, outp = Path(run_dir), Path(inp), Path(outp)
    root, names = _inputs(inp)
    cfg, model, tau = _run_state(run_dir)
    # Design choice (issue 19, large images): every input is decoded once to check it before any write, then
    # again for inference, so that one image at a time is in memory.
    for name in names:
        _load_image(root, name, inp, None)
    results, rows = [], []
    for image_id, name in enumerate(names, start=1):
        img = _load_image(root, name, inp, None)
        det = detect_tiled(model, cfg, img)
        keep = det["scores"] >= tau
        for (x1, y1, x2, y2), s in zip(det["boxes"][keep], det["scores"][keep]):
            results.append({"image_id": image_id, "category_id": 1, "score": round(float(s), 5),
                            "bbox": [round(float(v), 2) for v in (x1, y1, x2 - x1, y2 - y1)]})
        rows.append([name, image_id, img.shape[2], img.shape[1], int(keep.sum())])
    counts = outp.with_name(outp.stem + "_counts.csv")
    outp.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file_name", "image_id", "width", "height", "count"])
    w.writerows(rows)
    atomic_write_text(outp, json.dumps(results) + "\n")
    atomic_write_text(counts, buf.getvalue())
    return {"tau (validation)": tau, "images": len(rows), "detections": len(results), "output": str(outp),
            "counts": str(counts)}
