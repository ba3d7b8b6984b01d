"""SynthCrowd and the real-data readers of maskfocal (arXiv 2212.11542, spec 4)."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from tenfold.core.errors import InputError
from tenfold.systems.maskfocal.data import (head_size_at, load_split, make_synth_crowd, prepare_synth, write_coco,
                                            write_points)
from tenfold.systems.maskfocal.scoring import ap50


@pytest.fixture(scope="module")
def frames():
    return make_synth_crowd(3, 6, size=64, min_heads=30, max_heads=80, frames_per_sequence=3)


def test_generator_annotations(frames):
    for f in frames:
        assert f.image.shape == (64, 64, 3) and f.image.dtype == np.uint8
        assert np.all((f.visibility >= 0) & (f.visibility <= 1))
        assert np.all(f.boxes[:, 2] >= f.boxes[:, 0]) and np.all(f.boxes[:, 3] >= f.boxes[:, 1])
    assert [f.sequence_id for f in frames] == [0, 0, 0, 1, 1, 1]
    assert any(np.any(f.visibility < 0.2) for f in frames)  # occlusion happens: some heads are hidden


def test_head_sizes_follow_perspective():
    # s(y) = s_near (y - y_h) / (H - y_h): with y_h = -64, s_near = 20, H = 64: s(0) = 10, s(32) = 15, s(64) = 20.
    np.testing.assert_allclose(head_size_at(np.array([0.0, 32.0, 64.0]), -64.0, 20.0, 64), [10.0, 15.0, 20.0])
    np.testing.assert_allclose(head_size_at(np.array([-63.9]), -64.0, 20.0, 64), [1.5])  # floor 1.5 px


def test_box_heights_grow_with_row(frames):
    f = frames[3]
    inside = (f.boxes[:, 0] > 0) & (f.boxes[:, 2] < 64) & (f.boxes[:, 1] > 0) & (f.boxes[:, 3] < 64)
    h = f.boxes[inside, 3] - f.boxes[inside, 1]
    y = f.centers[inside, 1]
    assert np.corrcoef(y, h)[0, 1] > 0.8  # jitter is only +-15 %


def test_splits_have_disjoint_sequences(tmp_path):
    from tenfold.core.config import make_config
    from tenfold.systems.maskfocal.config import PROFILES, Config

    cfg = make_config(Config, PROFILES, "smoke")
    paths = prepare_synth(cfg.data, 0, tmp_path)
    seqs = {}
    for split, p in paths.items():
        data = json.loads(p["boxes"].read_text())
        seqs[split] = {im["sequence_id"] for im in data["images"]}
    assert not (seqs["train"] & seqs["val"]) and not (seqs["train"] & seqs["test"]) and not (seqs["val"] & seqs["test"])


def test_coco_round_trip_and_gt_as_prediction(tmp_path, frames):
    path = write_coco(frames, tmp_path, "t", visibility_threshold=0.2)
    ds = load_split(path)
    assert len(ds) == 6 and ds.batch(range(6)).shape == (6, 3, 64, 64)
    for f, b, ig in zip(frames, ds.boxes, ds.ignore):
        ok = (f.boxes[:, 2] > f.boxes[:, 0]) & (f.boxes[:, 3] > f.boxes[:, 1])
        assert len(b) == int(np.sum(ok & (f.visibility >= 0.2)))  # invisible heads do not count
        assert len(ig) == int(np.sum(ok & (f.visibility < 0.2)))  # ... they become ignore regions
    np.testing.assert_array_equal(ds.image(0).permute(1, 2, 0).numpy(), frames[0].image)
    dets = [{"boxes": b, "scores": np.ones(len(b))} for b in ds.boxes]
    assert ap50(dets, ds.boxes, ds.ignore, 1000) == pytest.approx(1.0)


def test_points_csv_and_json(tmp_path, frames):
    write_coco(frames, tmp_path, "t")
    csv_path = write_points(frames, tmp_path, "t")
    ds = load_split(csv_path, tmp_path, "points", "knn")
    assert not ds.has_boxes
    assert list(ds.counts) == [int(np.sum(f.visibility >= 0.2)) for f in frames]
    pts = {"images/t_00000.png": [[10.0, 12.0], [30.5, 40.0]]}
    (tmp_path / "p.json").write_text(json.dumps(pts))
    ds = load_split(tmp_path / "p.json", tmp_path, "points", "fixed")
    np.testing.assert_allclose(ds.boxes[0][0], [2.0, 4.0, 18.0, 20.0])  # fixed 16 px around (10, 12)


def _tiny_coco(tmp_path, bbox=(1.0, 1.0, 4.0, 4.0), file_name="a.png"):
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    coco = {"images": [{"id": 1, "file_name": file_name, "width": 8, "height": 8}],
            "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": list(bbox), "iscrowd": 0}],
            "categories": [{"id": 1, "name": "head"}]}
    p = tmp_path / "a.json"
    p.write_text(json.dumps(coco))
    return p


def test_bad_inputs_raise_clear_errors(tmp_path):
    assert len(load_split(_tiny_coco(tmp_path)).boxes[0]) == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: not valid JSON"):
        load_split(bad)
    with pytest.raises(InputError, match="annotation id 7 .*outside the 8x8 image"):
        load_split(_tiny_coco(tmp_path, bbox=(6.0, 6.0, 5.0, 5.0)))
    with pytest.raises(InputError, match="image 'missing.png'.*not found"):
        load_split(_tiny_coco(tmp_path, file_name="missing.png"))
    csv_bad = tmp_path / "p.csv"
    csv_bad.write_text("file_name,x,y\na.png,1,oops\n")
    with pytest.raises(InputError, match="line 2"):
        load_split(csv_bad)
    csv_bad.write_text("file_name,x,y\na.png,1,99\n")
    with pytest.raises(InputError, match="outside the 8x8 image"):
        load_split(csv_bad)


def test_counts_are_stratified_over_sequences():
    # 10 sequences of 1 frame: sequence counts n_j are log-uniform at stratified quantiles, one per tenth of
    # [log 10, log 100]; n is rounded, which moves the quantile by at most 0.5 / 10 / ln 10 = 0.022.
    frames = make_synth_crowd(5, 10, size=64, min_heads=10, max_heads=100, frames_per_sequence=1)
    q = np.sort([math.log(len(f.boxes) / 10) / math.log(10) for f in frames])
    assert np.all(np.abs(q - (np.arange(10) + 0.5) / 10) <= 0.05 + 0.022)


def test_first_frames_are_the_split_sequences():
    # The strata depend only on the number of sequences, so a split's first frames can be rendered alone.
    full = make_synth_crowd(4, 6, size=64, min_heads=10, max_heads=40, frames_per_sequence=3)
    first = make_synth_crowd(4, 2, size=64, min_heads=10, max_heads=40, frames_per_sequence=1)
    for a, b in zip([full[0], full[3]], first):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.boxes, b.boxes)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 7])
def test_quick_profile_test_and_val_splits_fill_every_density_bucket(seed):
    """issue 19: every density bucket has test (and validation) images on every seed, at the quick config.
    Checked on the first frame of each sequence (members of the split, test_first_frames_are_the_split_sequences);
    no training."""
    from tenfold.core.config import make_config
    from tenfold.systems.maskfocal.config import PROFILES, Config
    from tenfold.systems.maskfocal.data import SPLIT_SEQUENCE_OFFSET

    cfg = make_config(Config, PROFILES, "quick", {})
    d, (lo, hi) = cfg.data, cfg.eval.bucket_edges
    for split, n in (("test", d.num_test_images), ("val", d.num_val_images)):
        n_seq = -(-n // d.frames_per_sequence)
        frames = make_synth_crowd(seed, n_seq, d.image_size, d.min_heads, d.max_heads, 1,
                                  SPLIT_SEQUENCE_OFFSET[split], d.head_scale)
        k = np.array([int(np.sum(f.visibility >= d.visibility_threshold)) for f in frames])
        per_bucket = [(k < lo).sum(), ((k >= lo) & (k <= hi)).sum(), (k > hi).sum()]
        assert min(per_bucket) >= (3 if split == "val" else 5), (split, per_bucket)
