"""Bad inputs of `tenfold predict reft` (arXiv 2301.01156): exit 2 naming the file (and the annotation), nothing
written. The COCO reader's own catalogue (polygons, RLE sizes, duplicate ids) is in test_coco.py."""

import json
import shutil

import pytest

from tenfold.cli import main
from tests.badinput import assert_refused


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A smoke run; its data/test.json (+ images) serves as a valid support file."""
    root = tmp_path_factory.mktemp("reft_run")
    assert main(["--quiet", "train", "reft", "--profile", "smoke", "--out", str(root / "run")]) == 0
    return root / "run"


def _support(run, tmp_path, edit=None):
    folder = tmp_path / "support"
    shutil.copytree(run / "data", folder)
    data = json.loads((folder / "test.json").read_text())
    if edit is not None:
        edit(data)
    (folder / "test.json").write_text(json.dumps(data))
    return folder / "test.json"


def _predict(run, support, inputs, out):
    argv = ["predict", "reft", "--run", str(run), "--input", str(inputs), "--output", str(out)]
    return argv + (["--support", str(support)] if support is not None else [])


def test_unknown_category_in_support_names_file_and_annotation(run, tmp_path, capsys):
    def edit(d):
        d["categories"].append({"id": 999, "name": "x", "supercategory": "novel"})
        d["annotations"][0]["category_id"] = 999

    support = _support(run, tmp_path, edit)
    images = run / "data" / "images" / "test"
    out = tmp_path / "out"
    err = assert_refused(_predict(run, support, images, out / "r.json"), ["test.json", "annotation id"], out, capsys)
    assert "999" in err


def test_missing_support_image_names_file(run, tmp_path, capsys):
    def edit(d):
        d["images"][0]["file_name"] = "nowhere/absent.png"

    support = _support(run, tmp_path, edit)
    out = tmp_path / "out"
    assert_refused(_predict(run, support, run / "data" / "images" / "test", out / "r.json"), ["test.json", "absent.png"],
                   out, capsys)


def test_garbage_input_image_and_missing_support(run, tmp_path, capsys):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x00\xffnot an image")
    out = tmp_path / "out"
    assert_refused(_predict(run, _support(run, tmp_path), garbage, out / "r.json"), "garbage.png", out, capsys)
    img = next((run / "data" / "images").rglob("*.png"))
    assert_refused(_predict(run, tmp_path / "nope.json", img, out / "r.json"), "nope.json", out, capsys)
    assert_refused(_predict(run, None, img, out / "r.json"), "--support", out, capsys)


def test_predict_writes_coco_results(run, tmp_path):
    img = next((run / "data" / "images").rglob("*.png"))
    out = tmp_path / "r.json"
    assert main(["--quiet", *_predict(run, _support(run, tmp_path), img, out)]) == 0
    results = json.loads(out.read_text())
    assert isinstance(results, list)
    for r in results:
        assert {"image_id", "category_id", "segmentation", "bbox", "score", "file_name"} <= set(r)
