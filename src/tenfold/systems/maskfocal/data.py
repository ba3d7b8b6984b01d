"""SynthCrowd generator and the real-data readers of `maskfocal`.

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with
canonical object detection networks", arXiv 2212.11542 (spec ../shared/specs/maskfocal.md, section 4).

  make_synth_crowd   procedural stand-in for GTA_Head (spec 4.1) [design choice]: perspective-scaled heads,
                     crowding toward the horizon, clustered knots, painter's-order occlusion with an
                     instance-ID buffer for visibility, distractor blobs, sequences split by sequence.
  write_coco / write_points   COCO JSON (boxes) and a points CSV (point-only copy), the field's formats.
  load_split         reads a COCO JSON through pycocotools, or a points CSV / JSON; invisible heads
                     (iscrowd = 1) are ignore regions; bad input raises InputError naming file and entry.
  data_files / load_data   {split: file} of a run (SynthCrowd generated into <run>/data by rank 0 first) and
                     the HeadSets read from them; shared by train.py and evaluate.py.
  normalise          uint8 images -> the detector's fixed input normalisation; shared by training and scoring.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tenfold.core import distributed as D
from tenfold.core.errors import InputError
from tenfold.systems.maskfocal.config import Config

if TYPE_CHECKING:
    import torch

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


def _make_sequence(rng: np.random.Generator, size: int, n_min: int, n_max: int) -> _Sequence:
    H = W = size
    scale = size / 256.0
    y_h = rng.uniform(-0.4 * H, 0.15 * H)  # horizon row, may be above the frame
    s_near = rng.uniform(14, 30) * scale
    n = int(round(math.exp(rng.uniform(math.log(n_min), math.log(n_max)))))  # log-uniform count
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
                     frames_per_sequence: int = 15, first_sequence: int = 0) -> list[Frame]:
    """SynthCrowd (spec 4.1): sequences of `frames_per_sequence` frames; people random-walk between frames.

    Sequence j uses its own generator seeded by (seed, first_sequence + j), so splits made with disjoint
    `first_sequence` ranges share no sequence.
    """
    frames: list[Frame] = []
    j = 0
    while len(frames) < num_images:
        sid = first_sequence + j
        rng = np.random.default_rng([seed, sid])
        seq = _make_sequence(rng, size, min_heads, max_heads)
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


# ----------------------------------------------------------------------------------------------------------
# Formats: COCO JSON (boxes) and a points CSV, written for SynthCrowd and read for users' data alike.


def _atomic_dir(final: Path):
    """Context: yields a temporary sibling folder that replaces `final` only when the block succeeds."""

    @contextlib.contextmanager
    def cm():
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
        try:
            yield tmp
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    return cm()


def write_coco(frames: list[Frame], folder: Path, split: str, visibility_threshold: float = 0.2) -> Path:
    """Write images/<split>_NNNNN.png and <split>.json (COCO; heads below the visibility policy: iscrowd = 1)."""
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i, fr in enumerate(frames):
        name = f"images/{split}_{i:05d}.png"
        Image.fromarray(fr.image).save(folder / name)
        h, w = fr.image.shape[:2]
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h,
                       "sequence_id": fr.sequence_id, "frame_id": fr.frame_id})
        for box, vis in zip(fr.boxes, fr.visibility):
            bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
            if bw <= 0 or bh <= 0:
                continue
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1,
                         "bbox": [float(box[0]), float(box[1]), bw, bh], "area": bw * bh,
                         "iscrowd": int(vis < visibility_threshold), "visibility": round(float(vis), 4)})
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "head"}]}
    path = folder / f"{split}.json"
    path.write_text(json.dumps(coco))
    return path


def write_points(frames: list[Frame], folder: Path, split: str, visibility_threshold: float = 0.2) -> Path:
    """The point-only copy: <split>_points.csv with rows file_name,x,y for the counted heads."""
    path = folder / f"{split}_points.csv"
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["file_name", "x", "y"])
        for i, fr in enumerate(frames):
            for (x, y), vis in zip(fr.centers, fr.visibility):
                if vis >= visibility_threshold:
                    out.writerow([f"images/{split}_{i:05d}.png", f"{x:.2f}", f"{y:.2f}"])
    return path


SPLIT_SEQUENCE_OFFSET = {"train": 0, "val": 100_000, "test": 200_000}  # disjoint sequences per split


def prepare_synth(cfg_data, seed: int, folder: Path) -> dict[str, dict[str, Path]]:
    """Generate SynthCrowd train/val/test into `folder` once (reused when its manifest matches)."""
    folder = Path(folder)
    manifest = {"seed": seed, "size": cfg_data.image_size, "n": [cfg_data.num_train_images, cfg_data.num_val_images,
                cfg_data.num_test_images], "heads": [cfg_data.min_heads, cfg_data.max_heads],
                "frames": cfg_data.frames_per_sequence, "visibility": cfg_data.visibility_threshold, "version": 1}
    paths = {s: {"boxes": folder / f"{s}.json", "points": folder / f"{s}_points.csv"} for s in SPLIT_SEQUENCE_OFFSET}
    mf = folder / "manifest.json"
    if mf.exists() and json.loads(mf.read_text()) == manifest:
        return paths
    sizes = {"train": cfg_data.num_train_images, "val": cfg_data.num_val_images, "test": cfg_data.num_test_images}
    with _atomic_dir(folder) as tmp:
        for split, n in sizes.items():
            frames = make_synth_crowd(seed, n, cfg_data.image_size, cfg_data.min_heads, cfg_data.max_heads,
                                      cfg_data.frames_per_sequence, SPLIT_SEQUENCE_OFFSET[split])
            write_coco(frames, tmp, split, cfg_data.visibility_threshold)
            write_points(frames, tmp, split, cfg_data.visibility_threshold)
        (tmp / "manifest.json").write_text(json.dumps(manifest))
    return paths


@dataclass
class HeadSet:
    """A split in memory. boxes: counted heads (K, 4) xyxy px (pseudo-boxes for point GT); points (K, 2);
    sizes (K,) head size s for point-F1; ignore (J, 4) regions that neither count nor cost AP."""

    images: "object"  # torch.Tensor (N, 3, H, W) uint8, zero-padded bottom/right to a common size
    boxes: list[np.ndarray]
    points: list[np.ndarray]
    sizes: list[np.ndarray]
    ignore: list[np.ndarray]
    file_names: list[str]
    source: str
    has_boxes: bool = True
    image_hw: list[tuple[int, int]] = field(default_factory=list)

    @property
    def counts(self) -> np.ndarray:
        return np.array([len(b) for b in self.boxes], dtype=np.int64)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err}); expected a COCO object "
                         "{'images': [...], 'annotations': [...]} or a points object {file_name: [[x, y], ...]}") from None


def _load_image(root: Path, name: str, ann_path: Path, expect_hw: tuple[int, int] | None):
    import torch
    from PIL import Image, UnidentifiedImageError

    path = root / name
    if not path.is_file():
        raise InputError(f"{ann_path}: image {name!r} not found at {path}")
    try:
        with Image.open(path) as im:
            img = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    except (OSError, UnidentifiedImageError) as err:
        raise InputError(f"{ann_path}: image {name!r} ({path}) could not be decoded: {err}") from None
    if expect_hw is not None and tuple(img.shape[1:]) != tuple(expect_hw):
        raise InputError(f"{ann_path}: image {name!r} is {img.shape[2]}x{img.shape[1]} but the annotation file "
                         f"says width={expect_hw[1]}, height={expect_hw[0]}")
    return img


def _coco_entries(path: Path, data: object) -> list[dict]:
    """Validate a COCO head file with pycocotools' index; -> [{file_name, hw, boxes, ignore}]."""
    from pycocotools.coco import COCO

    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or \
            not isinstance(data.get("annotations"), list):
        raise InputError(f"{path}: expected a COCO object with lists 'images' and 'annotations'")
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not {"id", "file_name", "width", "height"} <= set(im):
            raise InputError(f"{path}: images[{i}] must have id, file_name, width, height; got {im!r}")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    entries = []
    for img_id in sorted(coco.getImgIds()):
        im = coco.imgs[img_id]
        W, H = float(im["width"]), float(im["height"])
        boxes, ignore = [], []
        for ann in coco.imgToAnns.get(img_id, []):
            bbox = ann.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
                raise InputError(f"{path}: annotation id {ann.get('id')} (image {im['file_name']!r}): bbox must be "
                                 f"[x, y, w, h] numbers, got {bbox!r}")
            x, y, w, h = bbox
            if w <= 0 or h <= 0 or x < -0.5 or y < -0.5 or x + w > W + 0.5 or y + h > H + 0.5:
                raise InputError(f"{path}: annotation id {ann.get('id')} (image {im['file_name']!r}): bbox {bbox} "
                                 f"lies outside the {int(W)}x{int(H)} image or is empty; expected [x, y, w, h] with "
                                 "w, h > 0 inside the image")
            (ignore if ann.get("iscrowd", 0) else boxes).append([x, y, x + w, y + h])
        unknown = [a for a in data["annotations"] if a.get("image_id") not in coco.imgs]
        if unknown:
            raise InputError(f"{path}: annotation id {unknown[0].get('id')} refers to unknown image_id "
                             f"{unknown[0].get('image_id')!r}")
        entries.append({"file_name": im["file_name"], "hw": (int(H), int(W)),
                        "boxes": np.array(boxes, dtype=np.float64).reshape(-1, 4),
                        "ignore": np.array(ignore, dtype=np.float64).reshape(-1, 4)})
    return entries


def _point_entries(path: Path) -> list[dict]:
    """Points CSV (header file_name,x,y) or JSON {file_name: [[x, y], ...]} -> [{file_name, points}]."""
    per: dict[str, list] = {}
    if path.suffix.lower() == ".csv":
        try:
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
        except FileNotFoundError:
            raise InputError(f"{path}: points file not found") from None
        if not rows or [c.strip() for c in rows[0]] != ["file_name", "x", "y"]:
            raise InputError(f"{path}: expected the header 'file_name,x,y'")
        for line, row in enumerate(rows[1:], start=2):
            try:
                per.setdefault(row[0], []).append([float(row[1]), float(row[2])])
            except (IndexError, ValueError):
                raise InputError(f"{path}: line {line}: expected 'file_name,x,y' with numeric x, y; got {row!r}") from None
    else:
        data = _read_json(path)
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a points object {{file_name: [[x, y], ...]}}")
        for name, pts in data.items():
            if not isinstance(pts, list) or not all(isinstance(p, list) and len(p) == 2 and
                                                    all(isinstance(v, (int, float)) for v in p) for p in pts):
                raise InputError(f"{path}: entry {name!r}: expected a list of [x, y] number pairs, got {pts!r:.80}")
            per[name] = [[float(x), float(y)] for x, y in pts]
    return [{"file_name": k, "points": np.array(v, dtype=np.float64).reshape(-1, 2)} for k, v in per.items()]


def load_split(path: Path, image_root: Path | None = None, annotation_type: str = "boxes",
               pseudo_box: str = "knn") -> HeadSet:
    """Read one split: a COCO JSON (via pycocotools) or a points CSV / JSON; images via torchvision.io.

    With annotation_type="points" the boxes are dropped (COCO input keeps only the box centres) and replaced by
    pseudo-boxes (heatmap.pseudo_boxes); the head size s used by point-F1 is then the pseudo-box size.
    """
    import torch

    from tenfold.systems.maskfocal.heatmap import pseudo_boxes

    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    is_coco = path.suffix.lower() == ".json" and isinstance(data := _read_json(path), dict) and "images" in data
    entries = _coco_entries(path, data) if is_coco else _point_entries(path)
    if not entries:
        raise InputError(f"{path}: no images")
    imgs, boxes, points, sizes, ignore, hws = [], [], [], [], [], []
    for e in entries:
        img = _load_image(root, e["file_name"], path, e.get("hw"))
        H, W = img.shape[1:]
        if "boxes" in e:
            b = e["boxes"]
            pts = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)
        else:
            pts = e["points"]
            bad = np.nonzero((pts[:, 0] < 0) | (pts[:, 0] > W) | (pts[:, 1] < 0) | (pts[:, 1] > H))[0]
            if len(bad):
                raise InputError(f"{path}: image {e['file_name']!r}: point {pts[bad[0]].tolist()} lies outside the "
                                 f"{W}x{H} image")
        if annotation_type == "points" or "boxes" not in e:
            b = np.clip(pseudo_boxes(pts, pseudo_box), 0, [W, H, W, H])
        imgs.append(img)
        boxes.append(b)
        points.append(pts)
        sizes.append(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]))
        ignore.append(e.get("ignore", np.zeros((0, 4))))
        hws.append((H, W))
    # Design choice: images of different sizes are zero-padded bottom/right to one size (boxes unchanged).
    Hm = int(math.ceil(max(h for h, _ in hws) / 32) * 32)  # pad to a common size, a multiple of 32
    Wm = int(math.ceil(max(w for _, w in hws) / 32) * 32)
    batch = torch.zeros(len(imgs), 3, Hm, Wm, dtype=torch.uint8)
    for i, img in enumerate(imgs):
        batch[i, :, : img.shape[1], : img.shape[2]] = img
    return HeadSet(batch, boxes, points, sizes, ignore, [e["file_name"] for e in entries], str(path),
                   has_boxes=is_coco and annotation_type == "boxes", image_hw=hws)


def data_files(cfg: Config, run_dir: Path, ctx: D.DistContext | None = None) -> dict[str, Path]:
    """{split: annotation file}; SynthCrowd is generated into <run_dir>/data by rank 0 first."""
    if cfg.data.source == "files":
        return {"train": Path(cfg.data.train_file), "val": Path(cfg.data.val_file), "test": Path(cfg.data.test_file)}
    folder = Path(run_dir) / "data"
    if ctx is None or ctx.is_main:
        paths = prepare_synth(cfg.data, cfg.seed, folder)
    if ctx is not None:
        D.barrier(ctx)
        paths = prepare_synth(cfg.data, cfg.seed, folder)  # the manifest matches: only returns the paths
    kind = "points" if cfg.data.annotation_type == "points" else "boxes"
    return {s: p[kind] for s, p in paths.items()}


def load_data(cfg: Config, run_dir: Path, splits=("train", "val", "test"),
              ctx: D.DistContext | None = None) -> dict[str, HeadSet]:
    files = data_files(cfg, run_dir, ctx)
    root = Path(cfg.data.image_root) if cfg.data.image_root else None
    return {s: load_split(files[s], root, cfg.data.annotation_type, cfg.data.pseudo_box) for s in splits}


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float, roughly zero-mean unit-variance (# Design choice: fixed 0.45 / 0.25)."""
    return (images.float() / 255.0 - 0.45) / 0.25
