"""SynthCrowd on disk and the real-data readers of `maskfocal`.

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with
canonical object detection networks", arXiv 2212.11542 (spec ../shared/specs/maskfocal.md, section 4).

  make_synth_crowd   procedural stand-in for GTA_Head (spec 4.1), in synthcrowd.py (re-exported here).
  write_coco / write_points   COCO JSON (boxes) and a points CSV (point-only copy), the field's formats.
  load_split         reads a COCO JSON through pycocotools, a points CSV / JSON, or (formats.py) a SCUT-HEAD
                     VOC XML folder, a CrowdHuman .odgt, a ShanghaiTech / UCF-QNRF .mat folder; invisible heads
                     (iscrowd = 1) are ignore regions; bad input raises InputError naming file and entry.
  HeadSet            a split's annotations; images decoded per batch (HeadSet.batch), padded to the batch's
                     largest, kept while they fit IMAGE_CACHE_BYTES: memory scales with a batch, not the split.
  data_files / load_data   {split: file} of a run (SynthCrowd generated into <run>/data by rank 0 first) and
                     the HeadSets read from them; shared by train.py and evaluate.py.
  restore            a checkpoint's state into the model (InputError when it does not fit); train + eval.
  normalise          uint8 images -> the detector's fixed input normalisation; shared by training and scoring.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tenfold.core import distributed as D
from tenfold.core.errors import InputError
from tenfold.systems.maskfocal.config import Config
from tenfold.systems.maskfocal.synthcrowd import Frame, head_size_at, make_synth_crowd  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    import torch

log = logging.getLogger("tenfold.maskfocal")


# ----------------------------------------------------------------------------------------------------------
# Formats: COCO JSON (boxes) and a points CSV, written for SynthCrowd and read for users' data alike.


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
                "frames": cfg_data.frames_per_sequence, "visibility": cfg_data.visibility_threshold,
                "head_scale": cfg_data.head_scale, "version": 2}
    paths = {s: {"boxes": folder / f"{s}.json", "points": folder / f"{s}_points.csv"} for s in SPLIT_SEQUENCE_OFFSET}
    mf = folder / "manifest.json"
    if mf.exists() and json.loads(mf.read_text()) == manifest:
        return paths
    sizes = {"train": cfg_data.num_train_images, "val": cfg_data.num_val_images, "test": cfg_data.num_test_images}
    from tenfold.core.runs import atomic_dir

    with atomic_dir(folder) as tmp:
        for split, n in sizes.items():
            frames = make_synth_crowd(seed, n, cfg_data.image_size, cfg_data.min_heads, cfg_data.max_heads,
                                      cfg_data.frames_per_sequence, SPLIT_SEQUENCE_OFFSET[split],
                                      cfg_data.head_scale)
            write_coco(frames, tmp, split, cfg_data.visibility_threshold)
            write_points(frames, tmp, split, cfg_data.visibility_threshold)
        (tmp / "manifest.json").write_text(json.dumps(manifest))
    return paths


# Design choice (issue 19, large images): a split holds its annotations and image sizes, not its pixels. Images
# are decoded when a batch needs them (HeadSet.batch) and zero-padded to that batch's largest, so memory scales
# with one batch, not with split size x largest image. Decoded images are kept while they fit in
# IMAGE_CACHE_BYTES per split (the quick profile's splits fit whole, so streaming costs no extra decoding there).
IMAGE_CACHE_BYTES = 2**28
# Design choice: a batch's zero-padded uint8 tensor (B x H x W pixels, 3 bytes each) is capped at 2^28 pixels
# (768 MiB); train checks the worst batch of its training split (batch_size x the largest padded image) before
# it writes anything, evaluation splits its batches to fit.
MAX_BATCH_PIXELS = 2**28


class BoundedCache:
    """{key: value} kept while the values' total size stays within `max_bytes`; once full, further values are
    returned but not kept (no eviction: random epoch orders would make an LRU thrash), so memory is bounded."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.used, self.items = max_bytes, 0, {}

    def get(self, key, make):
        if key in self.items:
            return self.items[key]
        value = make()
        n = _nbytes(value)
        if self.used + n <= self.max_bytes:
            self.items[key], self.used = value, self.used + n
        return value


def _nbytes(value) -> int:
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    return int(value.nbytes) if hasattr(value, "nbytes") else int(value.numel() * value.element_size())


def padded_size(hws: list[tuple[int, int]]) -> tuple[int, int]:
    """The common size of a batch: its largest height and width, each rounded up to a multiple of 32."""
    return (int(math.ceil(max(h for h, _ in hws) / 32) * 32), int(math.ceil(max(w for _, w in hws) / 32) * 32))


@dataclass
class HeadSet:
    """A split: annotations in memory, images read per batch. boxes: counted heads (K, 4) xyxy px (pseudo-boxes
    for point GT); points (K, 2); sizes (K,) head size s for point-F1; ignore (J, 4) regions that neither count nor
    cost AP; image_hw the decoded (H, W) of every image; images are read from root / file_names[i]."""

    boxes: list[np.ndarray]
    points: list[np.ndarray]
    sizes: list[np.ndarray]
    ignore: list[np.ndarray]
    file_names: list[str]
    source: str
    has_boxes: bool = True
    image_hw: list[tuple[int, int]] = field(default_factory=list)
    root: Path = Path(".")
    cache: BoundedCache = field(default_factory=lambda: BoundedCache(IMAGE_CACHE_BYTES), repr=False)

    def __len__(self) -> int:
        return len(self.file_names)

    @property
    def counts(self) -> np.ndarray:
        return np.array([len(b) for b in self.boxes], dtype=np.int64)

    def image(self, i: int) -> "torch.Tensor":
        """Image i as (3, H, W) uint8, decoded again unless cached; a file changed since load_split -> InputError."""
        return self.cache.get(i, lambda: _load_image(self.root, self.file_names[i], Path(self.source),
                                                     self.image_hw[i]))

    def padded_hw(self, idx) -> tuple[int, int]:
        return padded_size([self.image_hw[i] for i in idx])

    def batch(self, idx) -> "torch.Tensor":
        """Images idx zero-padded bottom/right to the batch's padded size -> (B, 3, Hp, Wp) uint8 (boxes unchanged)."""
        import torch

        idx = list(idx)
        Hp, Wp = self.padded_hw(idx)
        check_batch_pixels(self.source, len(idx), Hp, Wp)
        out = torch.zeros(len(idx), 3, Hp, Wp, dtype=torch.uint8)
        for j, i in enumerate(idx):
            img = self.image(i)
            out[j, :, : img.shape[1], : img.shape[2]] = img
        return out


def check_batch_pixels(source: str, n: int, Hp: int, Wp: int) -> None:
    if n * Hp * Wp > MAX_BATCH_PIXELS:
        raise InputError(f"{source}: a batch of {n} images padded to {Wp}x{Hp} exceeds {MAX_BATCH_PIXELS} pixels "
                         "(maskfocal.data.MAX_BATCH_PIXELS); expected a smaller train.batch_size or smaller images "
                         "(crop or tile large images)")


# Design choice: an annotation file over 1 GiB is refused before it is read (COCO JSON of 10^6 heads is ~150 MB).
MAX_ANNOTATION_BYTES = 2**30
COCO_FORM = ("a COCO object {'images': [{id, file_name, width, height}], 'annotations': [{id, image_id, "
             "category_id, bbox: [x, y, w, h], iscrowd}], 'categories': [{id, name}]}")
POINTS_FORM = "a points object {file_name: [[x, y], ...]} or a CSV with the header 'file_name,x,y'"


def _read_text(path: Path) -> str:
    """The annotation file as UTF-8 text; missing, unreadable, too large or non-UTF-8 -> InputError."""
    try:
        size = path.stat().st_size
        if size > MAX_ANNOTATION_BYTES:
            raise InputError(f"{path}: {size} bytes is over the limit of {MAX_ANNOTATION_BYTES} "
                             "(maskfocal.data.MAX_ANNOTATION_BYTES); expected one split's annotation file")
        return path.read_text(encoding="utf-8-sig")  # a leading byte-order mark (Excel CSV) is dropped
    except FileNotFoundError:
        raise InputError(f"{path}: annotation file not found") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); expected UTF-8 "
                         "JSON or CSV") from None
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({type(err).__name__}: {err.strerror or err})") from None


def _read_json(path: Path) -> object:
    text = _read_text(path)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, an int over 4300 digits, deep nesting
        raise InputError(f"{path}: not valid JSON ({type(err).__name__}: {err}); expected {COCO_FORM} or "
                         f"{POINTS_FORM}") from None


def _finite(v: object) -> bool:
    """A JSON number that is finite: not a bool, not NaN / inf, not an integer beyond float range."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _count(v: object) -> bool:
    """A positive integer id / size (JSON 3, not 3.0 or true)."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**63


def _safe_name(name: object, path: Path, where: str) -> str:
    """An image path relative to the data root: no absolute path, drive, '..' part or NUL (never read outside)."""
    # Design choice: the check is on the name as written; symlinks the user placed inside the root are followed.
    from pathlib import PurePosixPath, PureWindowsPath

    bad = not isinstance(name, str) or not name.strip() or "\x00" in name
    if not bad:
        win = PureWindowsPath(name)
        bad = (PurePosixPath(name).is_absolute() or bool(win.drive) or win.is_absolute() or
               ".." in PurePosixPath(name.replace("\\", "/")).parts)
    if bad:
        raise InputError(f"{path}: {where}: file_name {name!r:.120} is not a relative path inside the image root; "
                         "expected e.g. 'images/0001.png' (no '..', no absolute path)")
    return name


def _coco_images(path: Path, data: dict) -> dict[int, dict]:
    """images[] -> {id: image}; each needs an integer id, a safe file_name, integer width / height > 0."""
    images: dict[int, dict] = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not all(_count(im.get(k)) for k in ("id", "width", "height")):
            raise InputError(f"{path}: images[{i}]: expected an object with integer id, width, height > 0 and a "
                             f"file_name; got {im!r:.160}")
        _safe_name(im.get("file_name"), path, f"images[{i}]")
        if im["id"] in images:
            raise InputError(f"{path}: images[{i}]: id {im['id']} is used twice; expected unique image ids")
        images[im["id"]] = im
    return images


def _coco_categories(path: Path, data: dict) -> set[int]:
    cats = data.get("categories", [])
    if not isinstance(cats, list) or not all(isinstance(c, dict) and _count(c.get("id")) for c in cats):
        raise InputError(f"{path}: categories: expected a list of objects with an integer id > 0; got {cats!r:.160}")
    return {c["id"] for c in cats}


def _check_annotation(path: Path, i: int, ann: object, images: dict, cats: set[int], has_cats: bool) -> None:
    """One annotations[i]: id, known image_id and category_id, finite bbox [x, y, w, h] inside its image."""
    where = f"annotations[{i}]"
    if not isinstance(ann, dict) or not _count(ann.get("id")):
        raise InputError(f"{path}: {where}: expected an object with an integer id > 0; got {ann!r:.160}")
    where = f"annotation id {ann['id']} ({where})"
    img_id = ann.get("image_id")
    if not _count(img_id) or img_id not in images:
        raise InputError(f"{path}: {where}: image_id {img_id!r:.60} is missing or not one of the images' ids")
    cat = ann.get("category_id")
    if (has_cats or "category_id" in ann) and not (_count(cat) and cat in cats):
        raise InputError(f"{path}: {where}: category_id {cat!r:.60} is not one of the "
                         f"categories' ids {sorted(cats)[:10]}")
    if ann.get("iscrowd", 0) not in (0, 1) or isinstance(ann.get("iscrowd", 0), float):
        raise InputError(f"{path}: {where}: iscrowd must be 0 or 1, got {ann.get('iscrowd')!r:.60}")
    im, bbox = images[img_id], ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_finite(v) for v in bbox)):
        raise InputError(f"{path}: {where} (image {im['file_name']!r}): bbox must be [x, y, w, h] finite "
                         f"numbers, got {bbox!r:.120}")
    x, y, w, h = bbox
    W, H = im["width"], im["height"]
    if w <= 0 or h <= 0 or x < -0.5 or y < -0.5 or x + w > W + 0.5 or y + h > H + 0.5:
        raise InputError(f"{path}: {where} (image {im['file_name']!r}): bbox {bbox} lies outside the {W}x{H} "
                         "image or is empty; expected [x, y, w, h] with w, h > 0 inside the image")


def _coco_entries(path: Path, data: dict) -> list[dict]:
    """Validate a COCO head file, then index it with pycocotools; -> [{file_name, hw, boxes, ignore}]."""
    from pycocotools.coco import COCO

    if not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise InputError(f"{path}: expected {COCO_FORM}; 'images' and 'annotations' must be lists")
    images = _coco_images(path, data)
    cats = _coco_categories(path, data)
    for i, ann in enumerate(data["annotations"]):
        _check_annotation(path, i, ann, images, cats, "categories" in data)
    coco = COCO()
    coco.dataset = data  # validated above: createIndex cannot fail on it
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    entries = []
    for img_id in sorted(coco.getImgIds()):
        im = coco.imgs[img_id]
        boxes, ignore = [], []
        for ann in coco.imgToAnns.get(img_id, []):
            x, y, w, h = ann["bbox"]
            (ignore if ann.get("iscrowd", 0) else boxes).append([x, y, x + w, y + h])
        entries.append({"file_name": im["file_name"], "hw": (im["height"], im["width"]),
                        "boxes": np.array(boxes, dtype=np.float64).reshape(-1, 4),
                        "ignore": np.array(ignore, dtype=np.float64).reshape(-1, 4)})
    return entries


def _csv_points(path: Path) -> dict[str, list]:
    """Points CSV, header file_name,x,y; blank lines are skipped; x, y must be finite numbers."""
    try:
        rows = list(csv.reader(io.StringIO(_read_text(path), newline="")))
    except csv.Error as err:
        raise InputError(f"{path}: not a readable CSV ({err}); expected {POINTS_FORM}") from None
    if not rows or [c.strip() for c in rows[0]] != ["file_name", "x", "y"]:
        raise InputError(f"{path}: expected the header 'file_name,x,y' on line 1; got {rows[0] if rows else []!r:.80}")
    per: dict[str, list] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            xy = [float(row[1]), float(row[2])] if len(row) == 3 else None
        except ValueError:
            xy = None
        if xy is None or not all(math.isfinite(v) for v in xy):
            raise InputError(f"{path}: line {line}: expected 'file_name,x,y' with finite numeric x, y; "
                             f"got {row!r:.120}")
        per.setdefault(_safe_name(row[0], path, f"line {line}"), []).append(xy)
    return per


def _json_points(path: Path, data: object) -> dict[str, list]:
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected {COCO_FORM} or {POINTS_FORM}; got a JSON {type(data).__name__}")
    per: dict[str, list] = {}
    for name, pts in data.items():
        _safe_name(name, path, f"entry {name!r:.60}")
        if not isinstance(pts, list) or not all(isinstance(p, list) and len(p) == 2 and all(_finite(v) for v in p)
                                                for p in pts):
            raise InputError(f"{path}: entry {name!r:.60}: expected a list of [x, y] finite number pairs, "
                             f"got {pts!r:.80}")
        per[name] = [[float(x), float(y)] for x, y in pts]
    return per


def read_annotations(path: Path) -> tuple[list[dict], bool]:
    """Parse and validate one annotation file without reading images -> (entries, is_coco).

    COCO JSON (an object with 'images' or 'annotations') -> [{file_name, hw, boxes, ignore}]; points CSV / JSON
    -> [{file_name, points}]. Any malformed content raises InputError naming the file and the entry.
    """
    from tenfold.systems.maskfocal import formats

    path = Path(path)
    if path.is_dir():  # SCUT-HEAD Annotations/ (VOC XML) or ShanghaiTech / UCF-QNRF .mat points
        kinds = {p.suffix.lower() for p in path.iterdir()}
        if ".xml" in kinds:
            entries, is_coco = formats.read_voc_folder(path), True
        elif ".mat" in kinds:
            entries, is_coco = formats.read_mat_folder(path), False
        else:
            raise InputError(f"{path}: a folder without .xml or .mat files; expected {formats.VOC_FORM} or "
                             f"{formats.MAT_FORM}")
    elif path.suffix.lower() == ".odgt":
        entries, is_coco = formats.read_odgt(path, _read_text(path)), True
    if path.is_dir() or path.suffix.lower() == ".odgt":
        for e in entries:  # names come from inside the files: never read outside the image root
            _safe_name(e["file_name"], path, e.get("entry", e["file_name"]))
    elif path.suffix.lower() == ".csv":
        per, is_coco = _csv_points(path), False
    else:
        data = _read_json(path)
        is_coco = isinstance(data, dict) and ("images" in data or "annotations" in data)
        if is_coco:
            entries = _coco_entries(path, data)
        else:
            per = _json_points(path, data)
    if not is_coco and not path.is_dir():
        entries = [{"file_name": k, "points": np.array(v, dtype=np.float64).reshape(-1, 2)} for k, v in per.items()]
    if not entries:
        raise InputError(f"{path}: no images; expected at least one image entry")
    return entries, is_coco


def _load_image(root: Path, name: str, ann_path: Path, expect_hw: tuple[int, int] | None):
    """(3, H, W) uint8 tensor via tenfold.core.images (bit depth scaled, never clipped; grey / LA / RGBA -> RGB)."""
    import torch

    from tenfold.core.images import read_pixels, to_rgb, to_unit

    path = root / name
    label = f"{ann_path}: image {name!r} ({path})"
    try:
        arr = to_rgb(read_pixels(path, label), label)  # (H, W, 3), native dtype
    except OSError as err:  # e.g. a name too long for the file system
        raise InputError(f"{label}: cannot be read ({err.strerror or err})") from None
    if arr.dtype != np.uint8:
        # Design choice: images are held as uint8 (the detector's input is 8-bit); 16-bit, bool and float
        # samples are scaled by their bit depth and rounded, never clipped.
        arr = np.round(to_unit(arr, label) * 255.0).astype(np.uint8)
    img = torch.from_numpy(np.array(arr)).permute(2, 0, 1)  # writable copy; (H, W, 3) -> (3, H, W)
    if expect_hw is not None and tuple(img.shape[1:]) != tuple(expect_hw):
        raise InputError(f"{ann_path}: image {name!r} is {img.shape[2]}x{img.shape[1]} but the annotation file "
                         f"says width={expect_hw[1]}, height={expect_hw[0]}")
    return img


def _clipped(e: dict, key: str, W: int, H: int, path: Path, where: str) -> np.ndarray:
    """CrowdHuman boxes clipped to the W x H image (they are amodal and may cross its border); a counted head
    with no area inside the image is refused, an ignore region outside it is dropped."""
    b = e[key].copy()
    b[:, [0, 2]], b[:, [1, 3]] = b[:, [0, 2]].clip(0, W), b[:, [1, 3]].clip(0, H)
    empty = (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
    if key == "boxes" and empty.any():
        raise InputError(f"{path}: {where}: head box {e[key][np.argmax(empty)].tolist()} (x1, y1, x2, y2) lies "
                         f"outside the {W}x{H} image")
    return b[~empty]


def load_split(path: Path, image_root: Path | None = None, annotation_type: str = "boxes",
               pseudo_box: str = "knn") -> HeadSet:
    """Read one split: a COCO JSON (via pycocotools), a points CSV / JSON or a data set's own format; decode
    every image once to check it (size, boxes / points inside it) -> a HeadSet that reads images per batch.

    With annotation_type="points" the boxes are dropped (COCO input keeps only the box centres) and replaced by
    pseudo-boxes (heatmap.pseudo_boxes); the head size s used by point-F1 is then the pseudo-box size.
    """
    from tenfold.systems.maskfocal.heatmap import pseudo_boxes

    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    entries, is_coco = read_annotations(path)
    cache = BoundedCache(IMAGE_CACHE_BYTES)
    boxes, points, sizes, ignore, hws = [], [], [], [], []
    for i, e in enumerate(entries):  # every image is decoded once here to check it; kept only if it fits the cache
        img = _load_image(root, e["file_name"], path, e.get("hw"))
        H, W = img.shape[1:]
        where = f"{e['entry']}, image {e['file_name']!r}" if "entry" in e else f"image {e['file_name']!r}"
        if "boxes" in e:
            b = _clipped(e, "boxes", W, H, path, where) if e.get("clip") else e["boxes"]
            pts = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)
            out = np.nonzero((b[:, 0] < -0.5) | (b[:, 1] < -0.5) | (b[:, 2] > W + 0.5) | (b[:, 3] > H + 0.5))[0]
            if len(out):  # COCO / VOC were checked against their declared size
                raise InputError(f"{path}: {where}: box {b[out[0]].tolist()} (x1, y1, x2, y2) lies outside the "
                                 f"{W}x{H} image")
        else:
            pts = e["points"]
            bad = (pts[:, 0] < 0) | (pts[:, 0] > W) | (pts[:, 1] < 0) | (pts[:, 1] > H)
            if bad.any() and e.get("drop_outside"):  # .mat data sets: dropped, as the field's preprocessing does
                log.warning("%s: %s: %d of %d points lie outside the %dx%d image and are dropped", path, where,
                            int(bad.sum()), len(pts), W, H)
                pts = pts[~bad]
            elif bad.any():
                raise InputError(f"{path}: {where}: point {pts[np.argmax(bad)].tolist()} lies outside the "
                                 f"{W}x{H} image")
        if annotation_type == "points" or "boxes" not in e:
            b = np.clip(pseudo_boxes(pts, pseudo_box), 0, [W, H, W, H])
        cache.get(i, lambda: img)
        boxes.append(b)
        points.append(pts)
        sizes.append(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]))
        ig = e.get("ignore", np.zeros((0, 4)))
        ignore.append(_clipped(e, "ignore", W, H, path, where) if e.get("clip") else ig)
        hws.append((H, W))
    return HeadSet(boxes, points, sizes, ignore, [e["file_name"] for e in entries], str(path),
                   has_boxes=is_coco and annotation_type == "boxes", image_hw=hws, root=root, cache=cache)


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


def restore(path: Path, ckpt: dict, model, opt=None, sched=None) -> int:
    """Load a checkpoint's model (and optimizer / scheduler) state; a state that does not fit -> InputError.

    Shared by train.py (resume) and evaluate.py, which never import each other.
    """
    try:
        model.load_state_dict(ckpt["model"])
        if opt is not None:
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
        return int(ckpt["step"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise InputError(f"{path}: does not hold this config's maskfocal state ({type(err).__name__}: {first}); "
                         "expected keys model, optimizer, scheduler, step written by `tenfold train`") from None


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float, roughly zero-mean unit-variance (# Design choice: fixed 0.45 / 0.25)."""
    return (images.float() / 255.0 - 0.45) / 0.25
