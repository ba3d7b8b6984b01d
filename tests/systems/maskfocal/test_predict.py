"""`tenfold predict maskfocal` (arXiv 2212.11542): COCO results + per-image counts with the run's validation tau,
tiled inference that counts every head once, and refused inputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tenfold.cli import main
from tenfold.systems.maskfocal import predict as mf_predict
from tests.badinput import assert_refused


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mf-run") / "run"
    assert main(["--quiet", "train", "maskfocal", "--profile", "smoke", "--out", str(out)]) == 0
    return out


@pytest.fixture
def images(tmp_path, run):
    folder = tmp_path / "imgs"
    folder.mkdir()
    src = sorted((run / "data" / "images").glob("test_*.png"))
    Image.open(src[0]).save(folder / "a.png")
    big = np.tile(np.asarray(Image.open(src[1])), (2, 3, 1))  # 128 x 192: several tiles at tile = 64
    Image.fromarray(big).save(folder / "b.png")
    return folder


def test_predict_writes_coco_results_and_counts_with_the_validation_tau(tmp_path, run, images):
    out = tmp_path / "out" / "det.json"
    assert main(["--quiet", "predict", "maskfocal", "--run", str(run), "--input", str(images),
                 "--output", str(out)]) == 0
    tau = json.loads((run / "summary.json").read_text())["tau"]
    results = json.loads(out.read_text())
    rows = list(csv.DictReader(open(tmp_path / "out" / "det_counts.csv")))
    assert [r["file_name"] for r in rows] == ["a.png", "b.png"]
    assert [(r["width"], r["height"]) for r in rows] == [("64", "64"), ("192", "128")]
    for r in rows:  # the count of an image = its detections in the COCO results, all with score >= tau
        mine = [d for d in results if d["image_id"] == int(r["image_id"])]
        assert int(r["count"]) == len(mine)
        assert all(d["score"] >= tau - 1e-5 and d["category_id"] == 1 and len(d["bbox"]) == 4 for d in mine)


def test_tiles_count_each_detection_once(monkeypatch):
    """A fake detector that reports one detection per bright pixel of its tile: tiled inference must report
    every bright pixel of the image exactly once, whatever the tile size (ownership by tile core)."""

    def fake_predict(model, batch, cfg):
        ys, xs = np.nonzero(batch[0, 0].numpy() > 0)
        pts = np.stack([xs, ys], 1).astype(np.float32) + 0.5
        return [{"points": pts, "scores": np.ones(len(pts), np.float32),
                 "boxes": np.concatenate([pts - 1, pts + 1], 1)}]

    monkeypatch.setattr("tenfold.systems.maskfocal.scoring.predict", fake_predict)
    image = torch.zeros(3, 200, 300, dtype=torch.uint8)
    rng = np.random.default_rng(0)
    ys, xs = rng.integers(0, 200, 40), rng.integers(0, 300, 40)
    image[:, ys, xs] = 255
    truth = sorted(set(zip(xs.tolist(), ys.tolist())))
    for tile in (96, 128, 512):  # 96 / 128: overlapping tiles (OVERLAP = 64); 512: one padded piece
        det = mf_predict.detect_tiled(None, None, image, tile=tile)
        got = sorted((int(x), int(y)) for x, y in det["points"])
        assert got == truth, tile


def test_predict_refuses_bad_inputs(tmp_path, run, images, capsys):
    out = tmp_path / "o" / "det.json"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(["predict", "maskfocal", "--run", str(run), "--input", str(empty), "--output", str(out)],
                   ["empty", "no images"], tmp_path / "o", capsys)
    (images / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert_refused(["predict", "maskfocal", "--run", str(run), "--input", str(images), "--output", str(out)],
                   ["c.png"], tmp_path / "o", capsys)
    bad_run = tmp_path / "bad_run"
    bad_run.mkdir()
    for name in ("config.json", "run.json"):
        (bad_run / name).write_text((run / name).read_text())
    (bad_run / "summary.json").write_text(json.dumps({"mae": 1.0}))
    assert_refused(["predict", "maskfocal", "--run", str(bad_run), "--input", str(images / "a.png"),
                    "--output", str(out)], ["summary.json", "tau"], tmp_path / "o", capsys)
