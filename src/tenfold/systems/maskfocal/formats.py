"""Readers for the crowd / head data sets' own formats (spec 4.2) of `maskfocal`.

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with
canonical object detection networks", arXiv 2212.11542 (spec ../shared/specs/maskfocal.md, section 4.2).

  read_voc_folder      SCUT-HEAD: a folder `Annotations/` of Pascal VOC XML files, one per image; images are
                       `JPEGImages/<filename>` beside it; objects named "person" (SCUT-HEAD's head label) or "head".
  read_odgt            CrowdHuman: `.odgt` JSON lines {"ID", "gtboxes": [{"tag", "hbox": [x, y, w, h], "extra":
                       {"ignore"}, "head_attr": {"ignore"}}]}; images `Images/<ID>.jpg` beside it; tag "mask",
                       extra.ignore and head_attr.ignore (not 0) make ignore regions; boxes are clipped to the image.
  read_mat_folder      ShanghaiTech (`GT_IMG_<n>.mat`, image_info{1,1}{1,1}.location, images `../images/IMG_<n>.jpg`)
                       and UCF-QNRF (`img_<n>_ann.mat`, annPoints, image `img_<n>.jpg` in the same folder): points
                       (x, y) in pixels; points outside the image are dropped, as the field's preprocessing does.
Each returns entries [{file_name, boxes, ignore, hw?}] or [{file_name, points}] for data.load_split, which checks
boxes and points against the decoded image. Checked (issue 19) against the CrowdHuman format definition as
published with the data set (gtbox fields tag / hbox / extra / head_attr, optional attribute keys, "mask" = ignore)
and the field's readers of the .mat files (image_info{1,1}{1,1}.location and annPoints, N x 2 (x, y)). Every
malformed file raises InputError naming the file, the entry and the expected form.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tenfold.core.errors import InputError

VOC_HEAD_LABELS = ("person", "head")  # SCUT-HEAD labels every head "person"
ODGT_TAGS = ("person", "mask")  # CrowdHuman: "mask" boxes are crowd / reflection regions (ignored)
VOC_FORM = ("a folder of Pascal VOC XML files: <annotation><filename/><size><width/><height/></size>"
            "<object><name>person</name><bndbox><xmin/><ymin/><xmax/><ymax/></bndbox></object>...</annotation>")
ODGT_FORM = 'JSON lines {"ID": str, "gtboxes": [{"tag": "person" | "mask", "hbox": [x, y, w, h]}]}'
MAT_FORM = ("a folder of ShanghaiTech GT_IMG_<n>.mat (image_info{1,1}{1,1}.location, N x 2) or UCF-QNRF "
            "img_<n>_ann.mat (annPoints, N x 2) files")


def _number(text: str | None, path: Path, where: str, field: str) -> float:
    try:
        v = float(text) if text is not None else math.nan
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise InputError(f"{path}: {where}: field {field} is {text!r:.40}; expected a finite number")
    return v


def _box(x1: float, y1: float, x2: float, y2: float, path: Path, where: str) -> list[float]:
    if x2 <= x1 or y2 <= y1:
        raise InputError(f"{path}: {where}: box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] has a negative or zero size; "
                         "expected xmin < xmax and ymin < ymax")
    return [x1, y1, x2, y2]


def _check_size(path: Path) -> None:
    from tenfold.systems.maskfocal.data import MAX_ANNOTATION_BYTES

    if path.stat().st_size > MAX_ANNOTATION_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes is over the limit of {MAX_ANNOTATION_BYTES} "
                         "(maskfocal.data.MAX_ANNOTATION_BYTES); expected one image's annotation file")


def _voc_file(path: Path) -> dict:
    import xml.etree.ElementTree as ET

    _check_size(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise InputError(f"{path}: not readable Pascal VOC XML ({err}); expected {VOC_FORM}") from None
    name = root.findtext("filename")
    if not name or not name.strip():
        raise InputError(f"{path}: field filename is missing; expected {VOC_FORM}")
    w = _number(root.findtext("size/width"), path, "size", "width")
    h = _number(root.findtext("size/height"), path, "size", "height")
    if w < 1 or h < 1 or w != int(w) or h != int(h):
        raise InputError(f"{path}: size {w:g}x{h:g}; expected integer width and height >= 1")
    boxes = []
    for i, obj in enumerate(root.findall("object")):
        where = f"object {i}"
        label = (obj.findtext("name") or "").strip()
        if label not in VOC_HEAD_LABELS:
            raise InputError(f"{path}: {where}: unknown label {label!r:.40}; expected one of {VOC_HEAD_LABELS}")
        bb = [_number(obj.findtext(f"bndbox/{k}"), path, where, f"bndbox/{k}") for k in
              ("xmin", "ymin", "xmax", "ymax")]
        b = _box(*bb, path, where)
        if b[0] < -0.5 or b[1] < -0.5 or b[2] > w + 0.5 or b[3] > h + 0.5:
            raise InputError(f"{path}: {where}: box {b} lies outside the {w:g}x{h:g} image")
        boxes.append(b)
    return {"file_name": f"JPEGImages/{name.strip()}", "hw": (int(h), int(w)), "entry": path.name,
            "boxes": np.array(boxes, dtype=np.float64).reshape(-1, 4), "ignore": np.zeros((0, 4))}


def read_voc_folder(path: Path) -> list[dict]:
    """SCUT-HEAD `Annotations/` folder -> entries; image names JPEGImages/<filename> under the folder's parent."""
    files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() == ".xml")
    return [_voc_file(p) for p in files]


def _flag(attrs: object, key: str) -> bool:
    """An odgt flag such as extra.ignore / head_attr.ignore: set when present and not 0 (the keys are optional)."""
    return isinstance(attrs, dict) and attrs.get(key, 0) not in (0, None, False)


def read_odgt(path: Path, text: str) -> list[dict]:
    """CrowdHuman `.odgt` (one JSON object per line) -> entries with head boxes (hbox) and ignore regions.

    Format (the data set's published definition): {"ID", "gtboxes": [{"tag": "person" | "mask", "hbox", "fbox",
    "vbox": [x, y, w, h], "extra": {"ignore", "box_id", "occ"}, "head_attr": {"ignore", "unsure", "occ"}}]}, the
    keys of extra / head_attr optional. A head is an ignore region when its tag is "mask" (crowds, reflections),
    extra.ignore or head_attr.ignore is set (not 0). # Design choice: an ignored entry without a usable hbox is
    skipped (nothing to count). Boxes are amodal and may cross the image border: load_split clips them to the
    decoded image (entry flag "clip") and refuses a counted head with no pixel inside it.
    """
    entries = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {line_no}"
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise InputError(f"{path}: {where}: not valid JSON ({err}); expected {ODGT_FORM}") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("ID"), str) or not isinstance(rec.get("gtboxes"), list):
            raise InputError(f"{path}: {where}: fields ID (string) and gtboxes (list) are required; "
                             f"expected {ODGT_FORM}")
        boxes, ignore = [], []
        for j, g in enumerate(rec["gtboxes"]):
            at = f"{where} (ID {rec['ID']!r:.40}) gtboxes[{j}]"
            tag = g.get("tag") if isinstance(g, dict) else None
            if tag not in ODGT_TAGS:
                raise InputError(f"{path}: {at}: unknown tag {tag!r:.40}; expected one of {ODGT_TAGS}")
            ignored = tag == "mask" or _flag(g.get("extra"), "ignore") or _flag(g.get("head_attr"), "ignore")
            hb = g.get("hbox")
            if not (isinstance(hb, list) and len(hb) == 4 and all(isinstance(v, (int, float))
                                                                  and not isinstance(v, bool) for v in hb)):
                if ignored and hb is None:
                    continue
                raise InputError(f"{path}: {at}: field hbox is {hb!r:.60}; expected [x, y, w, h] numbers")
            x, y, w, h = (_number(str(v), path, at, "hbox") for v in hb)
            if ignored and (w <= 0 or h <= 0):
                continue
            b = _box(x, y, x + w, y + h, path, at)
            (ignore if ignored else boxes).append(b)
        entries.append({"file_name": f"Images/{rec['ID']}.jpg", "entry": f"{where} (ID {rec['ID']!r:.40})",
                        "boxes": np.array(boxes, dtype=np.float64).reshape(-1, 4),
                        "ignore": np.array(ignore, dtype=np.float64).reshape(-1, 4), "clip": True})
    return entries


def _mat_points(path: Path) -> tuple[str, np.ndarray]:
    """One .mat file -> (image name relative to the folder's parent, points (N, 2))."""
    from scipy.io import loadmat

    _check_size(path)
    try:
        m = loadmat(path)
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError... on damaged files
        raise InputError(f"{path}: not a readable MATLAB file ({type(err).__name__}: {err}); "
                         f"expected {MAT_FORM}") from None
    # Image name from the file name: GT_IMG_<n>.mat -> images/IMG_<n>.jpg (ShanghaiTech); img_<n>_ann.mat ->
    # img_<n>.jpg beside it (UCF-QNRF); any other x.mat -> x.jpg beside it.
    stem = path.stem
    if stem.startswith("GT_"):
        name = f"images/{stem.removeprefix('GT_')}.jpg"
    else:
        name = f"{path.parent.name}/{stem.removesuffix('_ann')}.jpg"
    if "annPoints" in m:
        pts, field = m["annPoints"], "annPoints"
    elif "image_info" in m:
        pts, field = _location(m["image_info"]), "image_info{1,1}{1,1}.location"
        if pts is None:
            raise InputError(f"{path}: field image_info has no location (expected image_info{{1,1}}{{1,1}}.location "
                             f"or image_info.location); expected {MAT_FORM}")
    else:
        raise InputError(f"{path}: neither field annPoints nor image_info is present; expected {MAT_FORM}")
    pts = np.asarray(pts)
    if pts.size == 0:
        pts = np.zeros((0, 2))
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.issubdtype(pts.dtype, np.number) or \
            np.issubdtype(pts.dtype, np.bool_) or not np.all(np.isfinite(pts.astype(np.float64))):
        raise InputError(f"{path}: field {field} has shape {pts.shape} / dtype {pts.dtype}; expected an N x 2 "
                         "array of finite (x, y) pixel coordinates")
    return name, pts.astype(np.float64)


def _location(info: object, depth: int = 0) -> object:
    """The `location` field of ShanghaiTech's image_info, found by name through 1 x 1 cell / struct wrappers
    (image_info{1,1}.location as published; a bare struct image_info.location as some re-saved copies), else None."""
    if depth > 4 or not isinstance(info, np.ndarray) or info.size != 1:
        return None
    if info.dtype.names and "location" in info.dtype.names:
        return info["location"].item()
    return _location(info.item(), depth + 1) if info.dtype == object else None


def read_mat_folder(path: Path) -> list[dict]:
    """A folder of ShanghaiTech / UCF-QNRF .mat point files -> entries {file_name, points}.

    # Design choice: points outside the decoded image are dropped (entry flag "drop_outside", logged by load_split),
    # as the field's preprocessing does ("get rid of points outside of image grids"): the published UCF-QNRF and
    # ShanghaiTech annotations hold a few such clicks, so refusing them would refuse the data sets themselves.
    """
    entries = []
    for p in sorted(q for q in Path(path).iterdir() if q.suffix.lower() == ".mat"):
        name, pts = _mat_points(p)
        entries.append({"file_name": name, "points": pts, "entry": p.name, "drop_outside": True})
    return entries
