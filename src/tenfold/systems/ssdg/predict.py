"""`tenfold predict ssdg`: classify a user's own images with a trained run (Lin et al., "Semi-Supervised Domain
Generalization with Evolving Intermediate Domain", arXiv 2111.10221).

    tenfold predict ssdg --run DIR --input FOLDER_OR_IMAGE --output preds.csv

Steps: read the run's config and final model (peer a for the cyclic method; weights_only); list the images
(a folder, recursively, or one file); decode and classify them in batches of 64 (resized to data.image_size,
the test transform); write `path,label,confidence` atomically at the end, so a refused input leaves nothing.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.config import load_config
from tenfold.core.errors import InputError
from tenfold.core.runs import atomic_write_text
from tenfold.systems.ssdg.config import Config
from tenfold.systems.ssdg.data import IMAGE_SUFFIXES, _load_image, to_input
from tenfold.systems.ssdg.evaluate import load_final

BATCH = 64


def list_images(inp: Path) -> list[Path]:
    if inp.is_dir():
        files = sorted(p for p in inp.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"--input {inp}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        return files
    if inp.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"--input {inp}: suffix {inp.suffix!r} is not an image; expected one of {IMAGE_SUFFIXES}")
    return [inp]


def predict(run_dir: Path, input_path: Path, output_path: Path) -> dict[str, Any]:
    run_dir, inp, outp = Path(run_dir), Path(input_path), Path(output_path)
    cfg = load_config(Config, run_dir / "config.json")
    _, model = load_final(cfg, run_dir)
    files = list_images(inp)
    size = cfg.data.image_size
    rows: list[tuple[str, int, float]] = []
    with torch.no_grad():
        for s in range(0, len(files), BATCH):  # streaming: one batch of decoded images in memory at a time
            chunk = files[s:s + BATCH]
            x = np.stack([_load_image(f, size, str(f)) for f in chunk])  # [B, H, W, 3] uint8
            probs = torch.softmax(model(to_input(x)), dim=1)
            conf, label = probs.max(1)
            rows += [(str(f), int(y), float(c)) for f, y, c in zip(chunk, label, conf)]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "label", "confidence"])
    w.writerows([(p, y, f"{c:.6f}") for p, y, c in rows])
    atomic_write_text(outp, buf.getvalue())
    return {"images": len(rows), "output": str(outp)}
