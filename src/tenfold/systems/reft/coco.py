"""COCO JSON + image folder for `reft`: the one loader train.py, evaluate.py and predict.py share (spec 4).

Paper: Han, Zhang, Wang, Wang, Liu, Qi, Li, Yang, "Reference Twice: A Simple and Unified Baseline for Few-Shot
Instance Segmentation", arXiv 2301.01156 (spec ../shared/specs/reft.md, sections 2.9 and 4).

Interface (what the model half codes against):
  Sample(image_id: int, image: FloatTensor [3, H, W] in [0, 1], masks: BoolTensor [N, H, W],
         category_ids: LongTensor [N] (COCO ids, not contiguous indices), file_name: str)   frozen
  CategorySplit(base_ids: tuple[int, ...], novel_ids: tuple[int, ...], names: dict[int, str]); .all_ids
  load_split(json_path, image_dir) -> list[Sample]        validated COCO JSON (polygon or RLE) + its images
  load_category_split(json_path) -> CategorySplit         supercategory "base"/"novel", else the COCO 60/20 rule
  kshot_sample(samples, category_ids, k, seed) -> list[Sample]   the TFA K-shot rule (below), deterministic
  write_kshot_json(pool_json, out_path, category_ids, k, seed, image_dir=None) -> Path   the same set as a file
  write_kshot_files(pool_json, [(out_path, category_ids, k, seed), ...], image_dir=None)  many, pool read once
  write_coco(samples, split, json_path, image_dir) -> Path  Samples -> COCO JSON (RLE masks) + PNG images
  write_shapes(preset, seed, folder, shots, kshot_seeds) -> dict[str, Path]   a whole ShapesFSIS build on disk
  shapes.generate_split(preset, split, seed) -> list[Sample]   the same Samples in memory
  metrics.evaluate_segm(gt_json_path, predictions, category_ids) -> {"AP", "AP50", "bbox_AP", "bbox_AP50"}
  metrics.nap_bap(gt_json_path, predictions, split) -> {"nAP", "nAP50", "bAP", "bAP50", "AP", "bbox_nAP", ...}
      predictions: [{"image_id": int, "masks": BoolTensor [M, H, W], "category_ids": LongTensor [M] (COCO ids),
                     "scores": FloatTensor [M]}]; metrics.to_coco_results(predictions) -> COCO results format

K-shot rule [literature: TFA's prepare_coco_few_shot.py]: for each class c, draw random images holding c and add
one only while the running count of c's instances stays <= K, until it equals K; keep only c's annotations of that
image for c. Counts grow along the TFA ladder 1, 2, 3, 5, 10, 30 (so for one seed the 5-shot set lies inside the
10-shot set). The K-shot set is the union over classes; an image picked for two classes carries both classes'
picked annotations (Deviation: merged by image id; TFA lists it once per class). Other objects in a picked image stay in
the pixels, unannotated, as in TFA.

Bad input: every malformed file raises InputError naming the file and the annotation id (unknown category id,
empty or self-intersecting polygon, RLE of the wrong size or length, missing image, duplicate annotation ids, ...);
everything is checked before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.core.runs import atomic_dir

log = logging.getLogger("tenfold.reft")

# spec 4.2 [literature]: the 20 PASCAL VOC classes are COCO's novel set; the other 60 are base.
COCO_NOVEL_IDS = (1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 20, 21, 44, 62, 63, 64, 67, 72)
COCO_NOVEL_NAMES = ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "boat", "bird", "cat",
                    "dog", "horse", "sheep", "cow", "bottle", "chair", "couch", "potted plant", "dining table", "tv")
TFA_SHOTS = (1, 2, 3, 5, 10, 30)
MAX_JSON_BYTES = 2**31  # COCO train2017 instances: 0.45 GB
COCO_FORM = ("a COCO object {'images': [{id, file_name, width, height}], 'annotations': [{id, image_id, "
             "category_id, segmentation: [[x1, y1, x2, y2, ...]] or {size: [h, w], counts}, iscrowd}], "
             "'categories': [{id, name, supercategory}]}")


@dataclass(frozen=True, eq=False)
class Sample:
    """One image and its instances: image (3, H, W) float in [0, 1], masks (N, H, W) bool, category_ids (N,)."""

    image_id: int
    image: torch.Tensor
    masks: torch.Tensor
    category_ids: torch.Tensor
    file_name: str


@dataclass(frozen=True)
class CategorySplit:
    """Base and novel COCO category ids (disjoint, sorted) and every id's name."""

    base_ids: tuple[int, ...]
    novel_ids: tuple[int, ...]
    names: dict[int, str]

    def __post_init__(self) -> None:
        if set(self.base_ids) & set(self.novel_ids) or not set(self.all_ids) <= set(self.names):
            raise InputError(f"category split: base {self.base_ids} and novel {self.novel_ids} must be disjoint "
                             "and every id needs a name")

    @property
    def all_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.base_ids + self.novel_ids))


# ----------------------------------------------------------------------------------------------------------
# Reading and checking a COCO file.


def _read_json(path: Path) -> Any:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise InputError(f"{path}: {size} bytes is over the limit of {MAX_JSON_BYTES} (reft.coco.MAX_JSON_BYTES)")
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputError(f"{path}: annotation file not found; expected {COCO_FORM}") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); expected JSON") from None
    except (ValueError, RecursionError) as err:
        raise InputError(f"{path}: not valid JSON ({type(err).__name__}: {err}); expected {COCO_FORM}") from None
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None


def _count(v: object) -> bool:
    """A positive JSON integer (3, not 3.0 or true)."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**63


def _finite(v: object) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _safe_name(name: object, path: Path, where: str) -> str:
    """An image path relative to the image folder: no absolute path, drive, '..' part or NUL."""
    bad = not isinstance(name, str) or not name.strip() or "\x00" in name
    if not bad:
        win = PureWindowsPath(name)
        bad = (PurePosixPath(name).is_absolute() or bool(win.drive) or win.is_absolute()
               or ".." in PurePosixPath(name.replace("\\", "/")).parts)
    if bad:
        raise InputError(f"{path}: {where}: file_name {name!r:.120} is not a relative path inside the image "
                         "folder; expected e.g. 'train/0001.png'")
    return name


def _segments_cross(ring: np.ndarray) -> tuple[int, int] | None:
    """First pair (i, j) of non-adjacent edges of the closed ring (n, 2) that properly cross, else None.

    Edges e_i = (p_i, p_{i+1}); a proper crossing has the two ends of each edge strictly on opposite sides of the
    other (touching or collinear overlaps are not counted).
    """
    a, b = ring, np.roll(ring, -1, axis=0)  # (n, 2) edge starts and ends

    def orient(p, q, r):  # sign of cross(q - p, r - p), broadcast over edge pairs
        return np.sign((q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
                       - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0]))

    n = len(ring)
    C, D = a[None, :], b[None, :]  # (1, n, 2)
    for start in range(0, n, 256):  # rows in chunks: a (256, n) table at a time, for rings of many points
        A, B = a[start:start + 256, None], b[start:start + 256, None]  # (r, 1, 2)
        cross = (orient(A, B, C) * orient(A, B, D) < 0) & (orient(C, D, A) * orient(C, D, B) < 0)  # (r, n)
        i = np.arange(start, start + len(A))[:, None]
        j = np.arange(n)[None, :]
        cross &= (j >= i + 2) & ~((i == 0) & (j == n - 1))  # non-adjacent pairs once; edges 0, n-1 share p_0
        hits = np.argwhere(cross)
        if len(hits):
            return int(hits[0, 0]) + start, int(hits[0, 1])
    return None


def _rle_string_counts(s: str) -> list[int] | None:
    """The run lengths of a compressed COCO RLE string (maskApi.c rleFrString), or None if it is malformed.

    Checked here because pycocotools' C decoder trusts the string (it reads past a truncated value).
    """
    counts, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                return None
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _polygons(seg: list, path: Path, where: str, h: int, w: int) -> dict:
    from pycocotools import mask as mask_utils

    if not seg:
        raise InputError(f"{path}: {where}: empty polygon list; expected [[x1, y1, x2, y2, x3, y3, ...], ...]")
    for p, poly in enumerate(seg):
        if not isinstance(poly, list) or not all(_finite(v) for v in poly) or len(poly) % 2:
            raise InputError(f"{path}: {where}: polygon {p} is not a flat list of finite x, y numbers; got "
                             f"{poly!r:.100}")
        ring = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        crossing = _segments_cross(ring) if len(ring) >= 3 else None
        if crossing is not None:
            raise InputError(f"{path}: {where}: polygon {p} is self-intersecting (edges {crossing[0]} and "
                             f"{crossing[1]} cross); expected a simple polygon")
        twice_area = np.sum(ring[:, 0] * np.roll(ring[:, 1], -1) - np.roll(ring[:, 0], -1) * ring[:, 1])
        if len(ring) < 3 or abs(twice_area) < 1e-9:
            raise InputError(f"{path}: {where}: polygon {p} is empty ({len(ring)} points, area "
                             f"{abs(twice_area) / 2:g}); expected at least 3 points enclosing an area")
    return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))


def _rle(seg: dict, path: Path, where: str, h: int, w: int) -> dict:
    size, counts = seg.get("size"), seg.get("counts")
    if size != [h, w]:
        raise InputError(f"{path}: {where}: RLE of the wrong size: size {size!r:.40} but the image is "
                         f"{h} x {w}; expected size [height, width] = [{h}, {w}]")
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts) \
                or sum(counts) != h * w:
            raise InputError(f"{path}: {where}: RLE counts are not non-negative integers summing to "
                             f"{h} x {w} = {h * w}")
        from pycocotools import mask as mask_utils

        return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    runs = _rle_string_counts(counts) if isinstance(counts, str) else None
    if runs is None or any(c < 0 for c in runs) or sum(runs) != h * w:
        raise InputError(f"{path}: {where}: RLE counts are not a valid compressed string covering {h} x {w} = "
                         f"{h * w} pixels")
    return {"size": [h, w], "counts": counts.encode("ascii")}


def _annotation(path: Path, i: int, ann: object, images: dict, cats: dict, seen: dict) -> dict | None:
    """Check annotations[i]; -> {image_id, category_id, id, rle}; None (checked, not used) for iscrowd 1 and
    for a mask that covers no pixel."""
    if not isinstance(ann, dict) or not _count(ann.get("id")):
        raise InputError(f"{path}: annotations[{i}]: expected an object with an integer id > 0; got {ann!r:.120}")
    aid = ann["id"]
    where = f"annotation id {aid} (annotations[{i}])"
    if aid in seen:
        raise InputError(f"{path}: {where}: duplicate annotation id {aid} (also annotations[{seen[aid]}]); "
                         "expected unique ids")
    seen[aid] = i
    if not _count(ann.get("image_id")) or ann["image_id"] not in images:
        raise InputError(f"{path}: {where}: image_id {ann.get('image_id')!r:.40} is not one of the images' ids")
    if not _count(ann.get("category_id")) or ann["category_id"] not in cats:
        raise InputError(f"{path}: {where}: unknown category id {ann.get('category_id')!r:.40}; expected one "
                         f"of the categories' ids {sorted(cats)[:20]}")
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, (bool, float)):
        raise InputError(f"{path}: {where}: iscrowd must be 0 or 1, got {crowd!r:.40}")
    im = images[ann["image_id"]]
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        rle = _polygons(seg, path, where, im["height"], im["width"])
    elif isinstance(seg, dict):
        rle = _rle(seg, path, where, im["height"], im["width"])
    else:
        raise InputError(f"{path}: {where}: segmentation {seg!r:.60} is neither a polygon list nor an RLE; "
                         "expected [[x1, y1, ...]] or {size: [h, w], counts}")
    # Design choice: crowd regions are checked but not used as training targets (COCOeval ignores them).
    if crowd:
        return None
    from pycocotools import mask as mask_utils

    if int(mask_utils.area(rle)) == 0:  # Design choice: a valid polygon too small to cover a pixel is left out
        log.warning("%s: %s covers no pixel; left out", path, where)
        return None
    return {"id": aid, "image_id": ann["image_id"], "category_id": ann["category_id"], "rle": rle}


def read_coco(json_path: Path) -> tuple[dict, dict[int, dict], list[dict]]:
    """Read and check a whole COCO file -> (data, {image id: image}, used annotations with decoded-ready RLE).

    Raises InputError naming the file (and the annotation id) for anything malformed; nothing is written.
    """
    path = Path(json_path)
    data = _read_json(path)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise InputError(f"{path}: expected {COCO_FORM}")
    cats = {}
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or not _count(c.get("id")) or not isinstance(c.get("name"), str) \
                or c["id"] in cats:
            raise InputError(f"{path}: categories[{i}]: expected an object with a unique integer id > 0 and a "
                             f"name; got {c!r:.120}")
        cats[c["id"]] = c
    images: dict[int, dict] = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not all(_count(im.get(k)) for k in ("id", "width", "height")) \
                or im["id"] in images:
            raise InputError(f"{path}: images[{i}]: expected an object with a unique integer id and integer width, "
                             f"height > 0; got {im!r:.120}")
        _safe_name(im.get("file_name"), path, f"images[{i}] (image id {im['id']})")
        images[im["id"]] = im
    seen: dict[int, int] = {}
    anns = [_annotation(path, i, a, images, cats, seen) for i, a in enumerate(data["annotations"])]
    return data, images, [a for a in anns if a is not None]


def _image_path(json_path: Path, image_dir: Path, im: dict, anns: list[dict]) -> Path:
    p = Path(image_dir) / im["file_name"]
    if not p.is_file():
        first = f" (needed by annotation id {anns[0]['id']})" if anns else ""
        raise InputError(f"{json_path}: image id {im['id']}{first}: missing image {im['file_name']!r} in "
                         f"{image_dir}; expected the file there")
    return p


def _by_image(images: dict[int, dict], anns: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {i: [] for i in images}
    for a in anns:
        out[a["image_id"]].append(a)
    return out


def load_split(json_path: Path, image_dir: Path) -> list[Sample]:
    """A COCO JSON + its image folder -> list[Sample], in the file's image order (crowd regions left out).

    Every annotation and image is checked first (InputError naming the file and the annotation id); then the
    images are decoded by tenfold.core.images (bit depth scaled, grey / RGBA -> RGB) and the masks by pycocotools.
    """
    from pycocotools import mask as mask_utils

    from tenfold.core.images import read_pixels, to_rgb, to_unit

    json_path, image_dir = Path(json_path), Path(image_dir)
    _, images, anns = read_coco(json_path)
    per_image = _by_image(images, anns)
    paths = {i: _image_path(json_path, image_dir, im, per_image[i]) for i, im in images.items()}
    samples = []
    for i, im in images.items():
        label = f"{json_path}: image id {i} ({paths[i]})"
        arr = to_unit(to_rgb(read_pixels(paths[i], label), label), label)  # (H, W, 3) float32
        if arr.shape[:2] != (im["height"], im["width"]):
            raise InputError(f"{label}: the image is {arr.shape[1]} x {arr.shape[0]} but the file says width "
                             f"{im['width']}, height {im['height']}")
        masks, cat_ids = [], []
        for a in per_image[i]:
            masks.append(mask_utils.decode(a["rle"]).astype(bool))  # (H, W)
            cat_ids.append(a["category_id"])
        H, W = arr.shape[:2]
        samples.append(Sample(
            image_id=i, image=torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))),  # (3, H, W)
            masks=torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, H, W, dtype=torch.bool),
            category_ids=torch.tensor(cat_ids, dtype=torch.long), file_name=im["file_name"]))
    return samples


def load_category_split(json_path: Path) -> CategorySplit:
    """Base / novel ids of a COCO file: every category's supercategory "base" or "novel" (ShapesFSIS, or a user
    file marked so), else the COCO few-shot rule (spec 4.2): the 20 VOC ids novel, the other 60 base."""
    path = Path(json_path)
    data = _read_json(path)
    cats = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(cats, list) or not cats or not all(isinstance(c, dict) and _count(c.get("id"))
                                                         and isinstance(c.get("name"), str) for c in cats):
        raise InputError(f"{path}: categories: expected a list of {{id, name, supercategory}}")
    names = {c["id"]: c["name"] for c in cats}
    if all(c.get("supercategory") in ("base", "novel") for c in cats):
        novel = tuple(sorted(c["id"] for c in cats if c["supercategory"] == "novel"))
    else:
        wrong = [(i, n) for i, n in zip(COCO_NOVEL_IDS, COCO_NOVEL_NAMES) if names.get(i) != n]
        if wrong:
            raise InputError(f"{path}: categories: not the COCO ids (id {wrong[0][0]} should be {wrong[0][1]!r}) "
                             "and not marked; expected supercategory 'base' or 'novel' on every category, or the "
                             "80 COCO categories (novel = the 20 VOC classes)")
        novel = COCO_NOVEL_IDS
    base = tuple(sorted(i for i in names if i not in novel))
    if not base or not novel:
        raise InputError(f"{path}: categories: need at least one base and one novel category")
    return CategorySplit(base_ids=base, novel_ids=novel, names=names)


# ----------------------------------------------------------------------------------------------------------
# K-shot sampling (spec 2.9) [literature: TFA rule].


def _ladder(k: int) -> tuple[int, ...]:
    return tuple(s for s in TFA_SHOTS if s < k) + (k,)


def kshot_select(per_image: dict[int, list[int]], category_ids, k: int, seed: int, label: str = "K-shot pool",
                 max_rounds: int = 1000) -> dict[int, list[int]]:
    """The TFA K-shot rule on an index -> {image id: sorted indices of the kept annotations}.

    Args:
        per_image: image id -> the category id of each of its annotations, in order.
        category_ids: the classes to sample (all ids for FSIS / gFSIS, novel ids for iFSIS).
        k: instances per class (exactly).
        seed: K-shot seed; class c draws from its own stream (seed, c), so its sample does not depend on which
            other classes are sampled. Deviation: numpy's generator, not Python's `random` as in TFA.
        label: names the source in error messages.
    Each round draws up to `shots` unpicked-or-picked images at random and adds an image only while the class's
    count stays <= shots, as TFA's loop does; rounds repeat until the count equals `shots` (InputError after
    `max_rounds`, or at once when the pool holds fewer than k instances of a class).
    """
    if not (isinstance(k, int) and k >= 1):
        raise InputError(f"{label}: K = {k!r}; expected an integer >= 1")
    chosen: dict[int, set[int]] = {}
    for c in sorted(set(int(c) for c in category_ids)):
        holders = sorted(i for i, cats in per_image.items() if c in cats)
        count = {i: per_image[i].count(c) for i in holders}
        if sum(count.values()) < k:
            raise InputError(f"{label}: category {c} has {sum(count.values())} instances; {k}-shot sampling "
                             f"needs at least {k}")
        rng = np.random.default_rng([seed, c])
        picked: list[int] = []
        n = 0
        for shots in _ladder(k):
            for _ in range(max_rounds):
                if n == shots:
                    break
                draw = rng.choice(len(holders), size=min(shots, len(holders)), replace=False)
                for img in (holders[j] for j in draw):
                    if img in picked or n + count[img] > shots:
                        continue
                    picked.append(img)
                    n += count[img]
                    if n == shots:
                        break
            if n != shots:
                raise InputError(f"{label}: category {c}: no draw of images adds up to exactly {shots} instances "
                                 f"in {max_rounds} rounds (instances per image: {sorted(count.values())[:20]})")
        for img in picked:  # Deviation: merged by image id (TFA lists an image once per class)
            chosen.setdefault(img, set()).update(j for j, cat in enumerate(per_image[img]) if cat == c)
    return {img: sorted(idx) for img, idx in chosen.items()}


def kshot_sample(samples: list[Sample], category_ids, k: int, seed: int) -> list[Sample]:
    """The K-shot training set from a pool of Samples: picked images (pool order), picked annotations only."""
    per_image = {s.image_id: [int(c) for c in s.category_ids] for s in samples}
    if len(per_image) != len(samples):
        raise InputError("K-shot pool: image ids are not unique")
    chosen = kshot_select(per_image, category_ids, k, seed)
    out = []
    for s in samples:
        if s.image_id in chosen:
            idx = torch.tensor(chosen[s.image_id], dtype=torch.long)
            out.append(dataclasses.replace(s, masks=s.masks[idx], category_ids=s.category_ids[idx]))
    return out


def write_kshot_json(pool_json: Path, out_path: Path, category_ids, k: int, seed: int,
                     image_dir: Path | None = None) -> Path:
    """Write the K-shot set of a pool COCO file as a COCO file (original image and annotation ids kept).

    The pool is checked in full (and its images' presence, with `image_dir`) before anything is written; the same
    pool loaded with load_split and passed to kshot_sample gives the same set.
    """
    return write_kshot_files(pool_json, [(Path(out_path), tuple(category_ids), k, seed)], image_dir)[0]


def write_kshot_files(pool_json: Path, jobs: list[tuple[Path, tuple[int, ...], int, int]],
                      image_dir: Path | None = None) -> list[Path]:
    """Several K-shot files [(out_path, category_ids, k, seed)] of one pool, read and checked once; every set is
    sampled (and every error raised) before the first file is written."""
    pool_json = Path(pool_json)
    data, images, anns = read_coco(pool_json)
    per_image_anns = _by_image(images, anns)
    if image_dir is not None:
        for i, im in images.items():
            _image_path(pool_json, Path(image_dir), im, per_image_anns[i])
    known = {c["id"] for c in data["categories"]}
    per_image = {i: [a["category_id"] for a in v] for i, v in per_image_anns.items()}
    outputs = []
    for out_path, category_ids, k, seed in jobs:
        unknown = sorted(set(int(c) for c in category_ids) - known)
        if unknown:
            raise InputError(f"{pool_json}: K-shot categories {unknown} are not among the file's categories")
        chosen = kshot_select(per_image, category_ids, k, seed, label=str(pool_json))
        keep_ids = {per_image_anns[i][j]["id"] for i, idx in chosen.items() for j in idx}
        outputs.append((Path(out_path), {
            "info": {"description": f"{k}-shot set (TFA rule) of {pool_json.name}", "kshot": k, "seed": seed,
                     "category_ids": sorted(int(c) for c in category_ids)},
            "images": [im for im in data["images"] if im["id"] in chosen],
            "annotations": [a for a in data["annotations"] if a["id"] in keep_ids],
            "categories": data["categories"]}))
    from tenfold.core.runs import atomic_write_text

    for path, out in outputs:
        atomic_write_text(path, json.dumps(out) + "\n")
    return [path for path, _ in outputs]


# ----------------------------------------------------------------------------------------------------------
# Writing Samples (ShapesFSIS) as COCO.


def annotations_of(sample: Sample, first_id: int) -> list[dict]:
    """COCO annotations of a Sample: RLE of each mask (Fortran-ordered uint8, counts as str), area = pixels,
    bbox = tight xywh of the mask, iscrowd 0; ids first_id, first_id + 1, ..."""
    from pycocotools import mask as mask_utils

    out = []
    for j, (m, c) in enumerate(zip(sample.masks, sample.category_ids)):
        rle = mask_utils.encode(np.asfortranarray(m.numpy().astype(np.uint8)))
        out.append({"id": first_id + j, "image_id": sample.image_id, "category_id": int(c),
                    "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
                    "area": int(m.sum()), "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0})
    return out


def write_coco(samples: list[Sample], split: CategorySplit, json_path: Path, image_dir: Path) -> Path:
    """Samples -> PNGs at image_dir / file_name and a COCO JSON with RLE masks (categories marked base / novel)."""
    from PIL import Image

    from tenfold.core.runs import atomic_write_text

    images, anns = [], []
    for s in samples:
        _, H, W = s.image.shape
        target = Path(image_dir) / s.file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.round(np.clip(s.image.numpy(), 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)  # (H, W, 3)
        Image.fromarray(pixels).save(target)
        images.append({"id": s.image_id, "file_name": s.file_name, "width": W, "height": H})
        anns.extend(annotations_of(s, len(anns) + 1))
    cats = [{"id": i, "name": split.names[i], "supercategory": "novel" if i in split.novel_ids else "base"}
            for i in split.all_ids]
    atomic_write_text(Path(json_path), json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return Path(json_path)


def write_shapes(preset, seed: int, folder: Path, shots: tuple[int, ...] = (1, 5, 10, 30),
                 kshot_seeds: tuple[int, ...] = tuple(range(10))) -> dict[str, Path]:
    """A ShapesFSIS build on disk (spec 4.1): images/, base_train.json, fewshot_pool.json, test.json, meta.json,
    fewshot_{K}shot_seed{s}.json (all classes) and fewshot_novel_{K}shot_seed{s}.json (novel only).

    Reused when folder/meta.json matches (same generator version, preset, seed, shots, K-shot seeds); otherwise
    built in a temporary sibling folder that replaces `folder` only when complete.
    """
    from tenfold.systems.reft import shapes

    folder = Path(folder)
    split = shapes.category_split(preset, seed)
    meta = {"generator": "ShapesFSIS", "version": shapes.GENERATOR_VERSION, "seed": seed,
            "preset": dataclasses.asdict(preset), "shots": list(shots), "kshot_seeds": list(kshot_seeds),
            "base_ids": list(split.base_ids), "novel_ids": list(split.novel_ids)}
    names = {name: folder / f"{name}.json" for name in shapes.SPLITS}
    for k in shots:
        for s in kshot_seeds:
            names[f"fewshot_{k}shot_seed{s}"] = folder / f"fewshot_{k}shot_seed{s}.json"
            names[f"fewshot_novel_{k}shot_seed{s}"] = folder / f"fewshot_novel_{k}shot_seed{s}.json"
    names["images"], names["meta"] = folder / "images", folder / "meta.json"
    try:
        if json.loads((folder / "meta.json").read_text()) == json.loads(json.dumps(meta)) and \
                all(p.exists() for p in names.values()):
            return names
    except (OSError, ValueError):
        pass
    with atomic_dir(folder) as tmp:
        for name in shapes.SPLITS:
            write_coco(shapes.generate_split(preset, name, seed), split, tmp / f"{name}.json", tmp / "images")
        write_kshot_files(tmp / "fewshot_pool.json",
                          [(tmp / f"fewshot{tag}_{k}shot_seed{s}.json", ids, k, s) for k in shots for s in kshot_seeds
                           for tag, ids in (("", split.all_ids), ("_novel", split.novel_ids))])
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return names
