"""CLI-level bad inputs of `tenfold predict reft --run RUN --input IMAGES --output OUT --support SUPPORT.json`
(Han et al., "Reference Twice", arXiv 2301.01156), through `tests/badinput.py::assert_refused`: exit 2, a message
naming the file (and the annotation, image or JSON line), nothing written at --output and the run untouched.
Also: a valid support file gives a valid COCO results file. The COCO reader's own catalogue (RLE sizes, duplicate
ids, self-intersecting polygons) is in test_coco.py; `predict` without --support is refused in test_bad_inputs.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tenfold.cli import main
from tests.badinput import assert_refused, tree_digest

SENTINEL = "[\"results of an earlier predict\"]\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One smoke run (tiny preset: 64 x 64 px, 16 classes, 12 queries); its data/test.json + data/images/ is a
    valid support file in the ShapesFSIS layout."""
    root = tmp_path_factory.mktemp("reft_cli_run")
    assert main(["--quiet", "train", "reft", "--profile", "smoke", "--out", str(root / "run")]) == 0
    return root / "run"


def _support(run: Path, tmp_path: Path, edit=None) -> Path:
    """A copy of the run's test.json (+ images/) as a support file, after `edit(data)`."""
    folder = tmp_path / "support"
    shutil.copytree(run / "data", folder)
    path = folder / "test.json"
    data = json.loads(path.read_text())
    if edit is not None:
        edit(data)
    path.write_text(json.dumps(data))
    return path


def _inputs(run: Path, tmp_path: Path, names=("b.png", "a.png")) -> Path:
    """A folder of copies of the run's first test images, under `names`."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name, src in zip(names, sorted((run / "data" / "images").rglob("*.png"))):
        shutil.copy(src, folder / name)
    return folder


def _out_dir(tmp_path: Path) -> Path:
    """The --output folder, holding an earlier results file: a refusal must neither overwrite it nor add a file."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(SENTINEL)
    return out


def _argv(run: Path, inputs: Path, out: Path, support: Path) -> list[str]:
    return ["predict", "reft", "--run", str(run), "--input", str(inputs), "--output", str(out / "results.json"),
            "--support", str(support)]


def _refused(run: Path, inputs: Path, support: Path, names: list[str], tmp_path: Path, capsys) -> str:
    out = _out_dir(tmp_path)
    run_before = tree_digest(run)
    err = assert_refused(_argv(run, inputs, out, support), names, out, capsys)
    assert (out / "results.json").read_text() == SENTINEL
    assert tree_digest(run) == run_before, "the run directory changed although the input was refused"
    return err


# (1) support file that is not JSON: the file and the line / column of the first error.
def test_support_not_json(run, tmp_path, capsys):
    path = tmp_path / "support.json"
    # Line 3 is `  "annotations": [,`: 2 spaces + 14 characters of `"annotations":` + space + `[` = 18, so the
    # stray comma is at column 19.
    path.write_text('{\n  "images": [],\n  "annotations": [,\n')
    _refused(run, _inputs(run, tmp_path), path, [str(path), "not valid JSON", "line 3 column 19"], tmp_path, capsys)


# (2) an annotation whose category is in the file's categories but not among the run's classes.
def test_support_category_not_in_run(run, tmp_path, capsys):
    seen = {}

    def edit(d):
        d["categories"].append({"id": 999, "name": "unseen", "supercategory": "novel"})
        d["annotations"][1]["category_id"] = 999
        seen["id"] = d["annotations"][1]["id"]

    path = _support(run, tmp_path, edit)
    _refused(run, _inputs(run, tmp_path), path,
             [str(path), f"annotation id {seen['id']}:", "category_id 999", "not a class of the run"], tmp_path, capsys)


# (3) an image entry whose file is not in the support folder (nor its images/ subfolder).
def test_support_image_file_missing(run, tmp_path, capsys):
    seen = {}

    def edit(d):
        image = d["images"][0]
        image["file_name"] = "absent.png"
        seen["image"] = image["id"]
        seen["ann"] = next(a["id"] for a in d["annotations"] if a["image_id"] == image["id"])

    path = _support(run, tmp_path, edit)
    _refused(run, _inputs(run, tmp_path), path,
             [str(path), f"image id {seen['image']} (needed by annotation id {seen['ann']})",
              "missing image 'absent.png'"], tmp_path, capsys)


# (4) a polygon with an odd number of coordinates (5 numbers: two points and a lone x).
def test_support_polygon_odd_coordinates(run, tmp_path, capsys):
    seen = {}

    def edit(d):
        d["annotations"][2]["segmentation"] = [[10, 10, 30, 10, 30]]
        seen["id"] = d["annotations"][2]["id"]

    path = _support(run, tmp_path, edit)
    _refused(run, _inputs(run, tmp_path), path,
             [str(path), f"annotation id {seen['id']} (annotations[2])", "polygon 0 is not a flat list"],
             tmp_path, capsys)


# (5) an unreadable input image beside a valid one: the bad file itself is named.
@pytest.mark.parametrize("kind", ["truncated", "empty", "garbage"])
def test_input_image_unreadable(run, tmp_path, capsys, kind):
    inputs = _inputs(run, tmp_path)  # a.png and b.png, both valid
    good = (inputs / "a.png").read_bytes()
    bad = inputs / "c.png"
    bad.write_bytes({"truncated": good[:len(good) // 2], "empty": b"", "garbage": b"\x00\xffnot a png"}[kind])
    _refused(run, inputs, _support(run, tmp_path), [str(bad), "cannot be read as an image"], tmp_path, capsys)


# (6) an input folder without a single image file.
def test_input_folder_without_images(run, tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "notes.txt").write_text("no images here\n")
    (inputs / "sub").mkdir()  # images in sub-folders are not read
    shutil.copy(next((run / "data" / "images").rglob("*.png")), inputs / "sub" / "a.png")
    _refused(run, inputs, _support(run, tmp_path), [str(inputs), "--input"], tmp_path, capsys)


# (7) --support naming a path that does not exist.
def test_support_path_missing(run, tmp_path, capsys):
    path = tmp_path / "nowhere" / "support.json"
    _refused(run, _inputs(run, tmp_path), path, ["--support", str(path), "not found"], tmp_path, capsys)


def test_predict_writes_coco_results(run, tmp_path, capsys):
    """A valid support file: COCO results, image ids 1.. in sorted file order, masks of the input's size."""
    from pycocotools import mask as mask_utils

    support = _support(run, tmp_path)
    gt = json.loads(support.read_text())
    inputs = _inputs(run, tmp_path)  # b.png, a.png -> sorted: a.png = image 1, b.png = image 2
    out = tmp_path / "results.json"
    capsys.readouterr()
    argv = ["predict", "reft", "--run", str(run), "--input", str(inputs), "--output", str(out),
            "--support", str(support)]
    assert main(["--quiet", *argv]) == 0
    summary = json.loads(capsys.readouterr().out)
    results = json.loads(out.read_text())
    # smoke: 12 queries x 16 classes = 192 (query, class) pairs >= top_k 100, so 100 detections per image; every
    # annotation of the support file is one support instance (all visible, none crowd).
    assert summary == {"images": 2, "detections": 200, "supports": len(gt["annotations"])}
    assert len(results) == 200
    class_ids = {c["id"] for c in gt["categories"]}
    for r in results:
        assert set(r) == {"image_id", "file_name", "category_id", "segmentation", "bbox", "score"}
        assert (r["image_id"], r["file_name"]) in {(1, "a.png"), (2, "b.png")}
        assert r["category_id"] in class_ids
        assert r["segmentation"]["size"] == [64, 64]
        rle = {"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode("ascii")}
        assert mask_utils.decode(rle).shape == (64, 64)
        assert r["bbox"] == [float(v) for v in mask_utils.toBbox(rle)]
        assert 0.0 <= r["score"] <= 1.0
    assert sorted(r["image_id"] for r in results) == [1] * 100 + [2] * 100
    # pycocotools accepts the file as results of these two images.
    from pycocotools.coco import COCO

    truth = COCO()
    truth.dataset = {"info": {}, "images": [{"id": 1, "width": 64, "height": 64}, {"id": 2, "width": 64,
                                                                                   "height": 64}],
                     "annotations": [], "categories": gt["categories"]}
    truth.createIndex()
    assert len(truth.loadRes(str(out)).getAnnIds()) == 200
