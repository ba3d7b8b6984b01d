"""Readers of the field's formats (maskfocal, arXiv 2212.11542, spec 4.2): SCUT-HEAD VOC XML, CrowdHuman .odgt,
ShanghaiTech / UCF-QNRF .mat points. Good files round-trip through load_split; bad files exit 2 through the CLI
naming the file and the entry (tests/badinput.py::assert_refused)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from tenfold.systems.maskfocal.data import load_split
from tests.badinput import assert_refused

N = 4  # images: the smoke profile's batch of 4 fits


def _img(path: Path, w: int = 64, h: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 100, dtype=np.uint8)).save(path)


def _voc(name: str, objects: list[tuple[str, tuple]], size=("64", "48")) -> str:
    objs = "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects)
    return (f"<annotation><filename>{name}</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
            f"</size>{objs}</annotation>")


def _scut(root: Path, bad: str | None = None) -> Path:
    """SCUT-HEAD layout: root/Annotations/*.xml, root/JPEGImages/*.jpg; image 0 optionally replaced by `bad`."""
    ann = root / "Annotations"
    ann.mkdir(parents=True, exist_ok=True)
    for i in range(N):
        _img(root / "JPEGImages" / f"PartA_{i}.jpg")
        text = _voc(f"PartA_{i}.jpg", [("person", (10, 12, 20, 24)), ("person", (30, 5, 41, 15))])
        (ann / f"PartA_{i}.xml").write_text(bad if (bad is not None and i == 0) else text)
    return ann


def _crowdhuman(root: Path, first: dict | None = None) -> Path:
    lines = []
    for i in range(N):
        _img(root / "Images" / f"ch{i}.jpg")
        rec = {"ID": f"ch{i}", "gtboxes": [{"tag": "person", "hbox": [10, 12, 10, 12], "head_attr": {"ignore": 0}},
                                          {"tag": "person", "hbox": [30, 5, 8, 8], "head_attr": {"ignore": 1}},
                                          {"tag": "mask", "hbox": [40, 30, 10, 10]}]}
        lines.append(json.dumps(first if (first is not None and i == 0) else rec))
    path = root / "annotation_train.odgt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _shanghaitech(root: Path, first: dict | None = None) -> Path:
    gt = root / "ground-truth"
    gt.mkdir(parents=True, exist_ok=True)
    for i in range(N):
        _img(root / "images" / f"IMG_{i + 1}.jpg")
        loc = np.array([[12.5, 14.0], [40.0, 30.0], [41.0, 31.0]])
        info = np.empty((1, 1), dtype=object)
        info[0, 0] = np.array([[(loc, np.array([[3.0]]))]], dtype=[("location", object), ("number", object)])
        savemat(gt / f"GT_IMG_{i + 1}.mat", first if (first is not None and i == 0) else {"image_info": info})
    return gt


def _qnrf(root: Path) -> Path:
    folder = root / "Train"
    for i in range(N):
        _img(folder / f"img_{i + 1:04d}.jpg")
        savemat(folder / f"img_{i + 1:04d}_ann.mat", {"annPoints": np.array([[5.0, 6.0], [60.0, 40.0]])})
    return folder


def test_scut_head_voc_folder_round_trip(tmp_path):
    s = load_split(_scut(tmp_path / "scut"))
    assert len(s.boxes) == N and s.has_boxes and s.file_names[0] == "JPEGImages/PartA_0.jpg"
    np.testing.assert_array_equal(s.boxes[0], [[10, 12, 20, 24], [30, 5, 41, 15]])
    np.testing.assert_array_equal(s.points[0], [[15, 18], [35.5, 10]])  # box centres


def test_crowdhuman_odgt_round_trip_with_ignore_regions(tmp_path):
    s = load_split(_crowdhuman(tmp_path / "ch"))
    assert s.file_names[0] == "Images/ch0.jpg" and s.counts.tolist() == [1] * N
    np.testing.assert_array_equal(s.boxes[0], [[10, 12, 20, 24]])  # hbox [x, y, w, h] -> xyxy
    # head_attr.ignore = 1 and tag "mask" become ignore regions (neither counted nor costing AP)
    np.testing.assert_array_equal(s.ignore[0], [[30, 5, 38, 13], [40, 30, 50, 40]])


def test_shanghaitech_and_ucf_qnrf_mat_points(tmp_path):
    sh = load_split(_shanghaitech(tmp_path / "sh"))
    assert sh.file_names[0] == "images/IMG_1.jpg" and not sh.has_boxes and sh.counts.tolist() == [3] * N
    np.testing.assert_array_equal(sh.points[0], [[12.5, 14.0], [40.0, 30.0], [41.0, 31.0]])
    q = load_split(_qnrf(tmp_path / "q"))
    assert q.file_names[0] == "Train/img_0001.jpg" and q.counts.tolist() == [2] * N


def test_crowdhuman_fields_as_published(tmp_path):
    """The CrowdHuman format definition: attribute keys of extra / head_attr are optional; tag "mask" and an
    extra.ignore or head_attr.ignore that is not 0 make ignore regions (the evaluation code of the field drops
    both the body and the head of an extra.ignore person); boxes are amodal and may cross the image border."""
    rec = {"ID": "273271,c9db000d5146c15", "gtboxes": [
        {"tag": "person", "hbox": [10, 12, 10, 12], "fbox": [5, 5, 30, 60], "vbox": [5, 5, 30, 40],
         "extra": {"box_id": 0, "occ": 1}, "head_attr": {"ignore": 0, "occ": 1, "unsure": 0}},
        {"tag": "person", "hbox": [-4, 30, 10, 8]},  # no extra / head_attr; crosses the left border
        {"tag": "person", "hbox": [58, -3, 10, 9], "head_attr": {}},  # crosses the top-right corner
        {"tag": "person", "hbox": [30, 5, 8, 8], "extra": {"ignore": 1}, "head_attr": {"occ": 0}},
        {"tag": "person", "hbox": [40, 20, 6, 6], "head_attr": {"ignore": 1}},
        {"tag": "mask", "fbox": [0, 40, 64, 20], "vbox": [0, 40, 64, 8]},  # a crowd region without hbox
        {"tag": "mask", "hbox": [44, 30, 30, 30], "extra": {"ignore": 1}},  # crosses the right / bottom border
        {"tag": "mask", "hbox": [70, 50, 5, 5]}]}  # an ignore region wholly outside: dropped
    root = tmp_path / "ch"
    _img(root / "Images" / f"{rec['ID']}.jpg")  # 64 x 48
    (root / "annotation_val.odgt").write_text(json.dumps(rec) + "\n")
    s = load_split(root / "annotation_val.odgt")
    assert s.file_names == ["Images/273271,c9db000d5146c15.jpg"] and s.counts.tolist() == [3]
    # hbox [x, y, w, h] -> xyxy, clipped to [0, 64] x [0, 48]: [-4, 30, 6, 38] -> [0, 30, 6, 38]
    np.testing.assert_array_equal(s.boxes[0], [[10, 12, 20, 24], [0, 30, 6, 38], [58, 0, 64, 6]])
    np.testing.assert_array_equal(s.points[0], [[15, 18], [3, 34], [61, 3]])  # centres of the clipped boxes
    # extra.ignore person, head_attr.ignore head, the clipped mask [44, 30, 74, 60] -> [44, 30, 64, 48]
    np.testing.assert_array_equal(s.ignore[0], [[30, 5, 38, 13], [40, 20, 46, 26], [44, 30, 64, 48]])


def test_mat_points_outside_the_image_are_dropped(tmp_path, caplog):
    """UCF-QNRF / ShanghaiTech hold a few clicks outside their image; the field's preprocessing drops them
    ("get rid of points outside of image grids"), so does the reader, with a warning naming file and count."""
    pts = np.array([[5.0, 6.0], [64.0, 48.0], [64.5, 10.0], [-0.2, 3.0], [60.0, 40.0]])  # 64 x 48 image
    gt = _shanghaitech(tmp_path / "sh", {"annPoints": pts})
    with caplog.at_level("WARNING", logger="tenfold.maskfocal"):
        s = load_split(gt)
    np.testing.assert_array_equal(s.points[0], [[5.0, 6.0], [64.0, 48.0], [60.0, 40.0]])  # the border is inside
    assert s.counts.tolist() == [3, 3, 3, 3]
    assert "GT_IMG_1.mat" in caplog.text and "2 of 5 points" in caplog.text


def test_shanghaitech_location_is_found_by_name(tmp_path):
    """image_info{1,1}.location read by its field name: another field order (number first) or a bare struct
    (image_info.location, as some re-saved copies) give the same points."""
    loc = np.array([[12.5, 14.0], [40.0, 30.0]])
    swapped = np.empty((1, 1), dtype=object)
    swapped[0, 0] = np.array([[(np.array([[2.0]]), loc)]], dtype=[("number", object), ("location", object)])
    bare = np.array([[(loc, np.array([[2.0]]))]], dtype=[("location", object), ("number", object)])
    for info in (swapped, bare):
        s = load_split(_shanghaitech(tmp_path / "sh", {"image_info": info}))
        np.testing.assert_array_equal(s.points[0], loc)


def _train(split: Path, run: Path) -> list[str]:
    return ["train", "maskfocal", "--profile", "smoke", "--set", "data.source=files",
            "--set", f"data.train_file={split}", "--set", f"data.val_file={split}",
            "--set", f"data.test_file={split}", "--out", str(run)]


def _ok_box(tag="person"):
    return {"tag": tag, "hbox": [10, 12, 10, 12]}


@pytest.mark.parametrize("case, bad, words", [
    ("not xml", "<annotation><filename>", ["PartA_0.xml", "not readable Pascal VOC XML"]),
    ("missing filename", _voc("", [("person", (1, 1, 5, 5))]), ["PartA_0.xml", "filename is missing"]),
    ("missing field", _voc("PartA_0.jpg", [("person", (1, 1, 5, 5))]).replace("<xmax>5</xmax>", ""),
     ["PartA_0.xml", "object 0", "bndbox/xmax"]),
    ("non-numeric", _voc("PartA_0.jpg", [("person", ("a", 1, 5, 5))]), ["PartA_0.xml", "object 0", "xmin"]),
    ("negative size", _voc("PartA_0.jpg", [("person", (9, 1, 5, 5))]), ["PartA_0.xml", "object 0", "negative"]),
    ("outside", _voc("PartA_0.jpg", [("person", (1, 1, 5, 5)), ("person", (50, 40, 70, 47))]),
     ["PartA_0.xml", "object 1", "outside the 64x48 image"]),
    ("unknown label", _voc("PartA_0.jpg", [("car", (1, 1, 5, 5))]), ["PartA_0.xml", "object 0", "unknown label"]),
    ("bad size", _voc("PartA_0.jpg", [], size=("0", "48")), ["PartA_0.xml", "width and height"]),
    ("escaping name", _voc("../../x.jpg", []), ["Annotations", "not a relative path"]),
])
def test_bad_voc_files_exit_2(tmp_path, capsys, case, bad, words):
    ann = _scut(tmp_path / "scut", bad)
    assert_refused(_train(ann, tmp_path / "run"), words, tmp_path / "run", capsys)


@pytest.mark.parametrize("case, first, words", [
    ("missing ID", {"gtboxes": []}, ["line 1", "ID"]),
    ("missing hbox", {"ID": "ch0", "gtboxes": [{"tag": "person"}]}, ["line 1", "ch0", "gtboxes[0]", "hbox"]),
    ("unknown tag", {"ID": "ch0", "gtboxes": [_ok_box("dog")]}, ["gtboxes[0]", "unknown tag"]),
    ("negative size", {"ID": "ch0", "gtboxes": [_ok_box(), {"tag": "person", "hbox": [5, 5, -3, 4]}]},
     ["gtboxes[1]", "negative"]),
    ("outside", {"ID": "ch0", "gtboxes": [{"tag": "person", "hbox": [64, 20, 10, 10]}]},  # no pixel inside
     ["line 1", "ch0", "outside the 64x48 image"]),
    ("boolean", {"ID": "ch0", "gtboxes": [{"tag": "person", "hbox": [True, 1, 2, 2]}]}, ["gtboxes[0]", "hbox"]),
])
def test_bad_odgt_files_exit_2(tmp_path, capsys, case, first, words):
    path = _crowdhuman(tmp_path / "ch", first)
    assert_refused(_train(path, tmp_path / "run"), ["annotation_train.odgt", *words], tmp_path / "run", capsys)


def test_bad_odgt_line_is_refused(tmp_path, capsys):
    path = _crowdhuman(tmp_path / "ch")
    path.write_text(path.read_text() + "{not json\n")
    assert_refused(_train(path, tmp_path / "run"), ["annotation_train.odgt", "line 5", "not valid JSON"],
                   tmp_path / "run", capsys)


@pytest.mark.parametrize("case, first, words", [
    ("missing field", {"other": np.zeros((2, 2))}, ["GT_IMG_1.mat", "annPoints nor image_info"]),
    ("wrong shape", {"annPoints": np.zeros((3,))}, ["GT_IMG_1.mat", "annPoints", "N x 2"]),
    ("nan", {"annPoints": np.array([[1.0, np.nan]])}, ["GT_IMG_1.mat", "finite"]),
    ("no location", {"image_info": np.array([[(np.array([[3.0]]),)]], dtype=[("number", object)])},
     ["GT_IMG_1.mat", "image_info has no location"]),
])
def test_bad_mat_files_exit_2(tmp_path, capsys, case, first, words):
    gt = _shanghaitech(tmp_path / "sh", first)
    assert_refused(_train(gt, tmp_path / "run"), words, tmp_path / "run", capsys)


def test_damaged_mat_and_empty_folder_exit_2(tmp_path, capsys):
    gt = _shanghaitech(tmp_path / "sh")
    (gt / "GT_IMG_1.mat").write_bytes(b"MATLAB 5.0 garbage")
    assert_refused(_train(gt, tmp_path / "run"), ["GT_IMG_1.mat", "not a readable MATLAB file"], tmp_path / "run",
                   capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(_train(empty, tmp_path / "run2"), ["empty", "without .xml or .mat"], tmp_path / "run2", capsys)
