"""COCO JSON reading / writing, the K-shot rule and the bad-input catalogue of reft (arXiv 2301.01156, spec 4)."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from tenfold.core.errors import InputError
from tenfold.systems.reft import coco as C
from tenfold.systems.reft import shapes as S


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """A tiny ShapesFSIS build on disk with 1- and 2-shot files for K-shot seeds 0 and 1."""
    folder = tmp_path_factory.mktemp("shapes") / "tiny"
    return C.write_shapes(S.PRESETS["tiny"], 0, folder, shots=(1, 2), kshot_seeds=(0, 1))


def test_rle_round_trip(build):
    # generator masks -> RLE -> pycocotools decode, and images -> PNG -> core.images, give back the same Samples
    made = S.generate_split(S.PRESETS["tiny"], "fewshot_pool", 0)
    read = C.load_split(build["fewshot_pool"], build["images"])
    assert len(made) == len(read) == 64
    for a, b in zip(made, read):
        assert (a.image_id, a.file_name) == (b.image_id, b.file_name)
        assert torch.equal(a.image, b.image) and torch.equal(a.masks, b.masks)
        assert torch.equal(a.category_ids, b.category_ids)


def test_annotation_fields_hand_case():
    mask = torch.zeros(1, 4, 5, dtype=torch.bool)
    mask[0, 1:3, 1:4] = True  # rows 1-2, columns 1-3
    s = C.Sample(7, torch.zeros(3, 4, 5), mask, torch.tensor([3]), "a.png")
    (ann,) = C.annotations_of(s, 11)
    assert ann["id"] == 11 and ann["image_id"] == 7 and ann["category_id"] == 3 and ann["iscrowd"] == 0
    assert ann["area"] == 6 and ann["bbox"] == [1.0, 1.0, 3.0, 2.0]  # x, y, w, h
    assert ann["segmentation"]["size"] == [4, 5] and isinstance(ann["segmentation"]["counts"], str)
    # column-major runs: 5 off (column 0 + row 0 of column 1), then 2 on / 2 off three times, then 5 off
    assert C._rle_string_counts(ann["segmentation"]["counts"]) == [5, 2, 2, 2, 2, 2, 5]


def test_rle_string_decoder_hand_case():
    # '5220003': 5, 2, 2, then deltas against the run two back: 0 + 2, 0 + 2, 0 + 2, 3 + 2
    assert C._rle_string_counts("5220003") == [5, 2, 2, 2, 2, 2, 5]
    assert C._rle_string_counts("5\x7f") is None  # a character outside '0'..'o'
    assert C._rle_string_counts("d") is None  # 'd' - 48 = 52 has the continuation bit: truncated value


def test_segments_cross():
    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], float)
    assert C._segments_cross(square) is None
    bowtie = np.array([[0, 0], [4, 4], [4, 0], [0, 4]], float)  # edge 0 (0,0)-(4,4) crosses edge 2 (4,0)-(0,4)
    assert C._segments_cross(bowtie) == (0, 2)


def _brute_cross(ring):
    """Slow reference: every non-adjacent edge pair in a double loop, proper crossings only."""
    n = len(ring)

    def orient(p, q, r):
        return np.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))

    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue
            a, b, c, d = ring[i], ring[(i + 1) % n], ring[j], ring[(j + 1) % n]
            if orient(a, b, c) * orient(a, b, d) < 0 and orient(c, d, a) * orient(c, d, b) < 0:
                return i, j
    return None


def test_segments_cross_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(200):
        ring = rng.integers(0, 10, (int(rng.integers(3, 9)), 2)).astype(float)
        assert C._segments_cross(ring) == _brute_cross(ring)
    # 600 points on a circle with points 400 and 401 swapped: chords 399-401 and 400-402 cross, in the second
    # chunk of rows (the vectorised test works 256 rows at a time)
    th = np.linspace(0, 2 * np.pi, 600, endpoint=False)
    ring = np.c_[np.cos(th), np.sin(th)]
    assert C._segments_cross(ring) is None
    ring[[400, 401]] = ring[[401, 400]]
    assert C._segments_cross(ring) == (399, 401)


def test_category_split_from_file(build):
    split = C.load_category_split(build["test"])
    assert split == S.category_split(S.PRESETS["tiny"], 0)


def test_coco_60_20_rule(tmp_path):
    cats = [{"id": i, "name": f"class{i}", "supercategory": "thing"} for i in range(1, 91) if i not in (12, 26, 29, 30,
                                                                                                         45, 66, 68, 69,
                                                                                                         71, 83)]
    names = dict(zip(C.COCO_NOVEL_IDS, C.COCO_NOVEL_NAMES))
    for c in cats:
        c["name"] = names.get(c["id"], c["name"])
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": cats}))
    split = C.load_category_split(path)
    assert len(cats) == 80 and split.novel_ids == C.COCO_NOVEL_IDS and len(split.base_ids) == 60
    assert 5 in split.novel_ids and split.names[5] == "airplane" and 8 in split.base_ids  # 8 = truck
    cats[0]["name"] = "not a person"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": cats}))
    with pytest.raises(InputError, match="supercategory 'base' or 'novel'"):
        C.load_category_split(path)


# ---------------------------------------------------------------------------------------------------------
# K-shot sampling


def test_kshot_select_hand_cases():
    # TFA ladder 1, 2, 3: each step adds images only while the count stays <= the step, so with one-instance
    # images 1, 2, 3 and a two-instance image 4, K = 3 must take exactly the three singles (image 4 never fits)
    per_image = {1: [7], 2: [7], 3: [7], 4: [7, 7], 5: [8]}
    for seed in range(5):
        assert C.kshot_select(per_image, [7], 3, seed) == {1: [0], 2: [0], 3: [0]}
    # K = 5 (ladder 1, 2, 3, 5): the three singles, then image 4 adds 2 -> all of class 7
    assert C.kshot_select(per_image, [7], 5, 0) == {1: [0], 2: [0], 3: [0], 4: [0, 1]}
    with pytest.raises(InputError, match="category 7 has 5 instances"):
        C.kshot_select(per_image, [7], 6, 0)
    with pytest.raises(InputError, match="exactly 1 instances"):
        C.kshot_select({1: [7, 7], 2: [7, 7]}, [7], 3, 0)  # no single image: the ladder's first step fails
    mixed = C.kshot_select({1: [7, 8, 7], 2: [8]}, [8], 1, 0)
    assert mixed in ({1: [1]}, {2: [0]})  # only the sampled class's annotation is kept
    # union over classes merged per image; the unsampled class 9 loses its annotation
    assert C.kshot_select({1: [7, 8, 9], 2: [9]}, [7, 8], 1, 0) == {1: [0, 1]}


def _counts(samples):
    return Counter(torch.cat([s.category_ids for s in samples]).tolist())


def test_kshot_sample_exact_deterministic_nested(build):
    pool = C.load_split(build["fewshot_pool"], build["images"])
    split = C.load_category_split(build["fewshot_pool"])
    one = C.kshot_sample(pool, split.all_ids, 1, seed=0)
    two = C.kshot_sample(pool, split.all_ids, 2, seed=0)
    assert _counts(one) == {c: 1 for c in split.all_ids}
    assert _counts(two) == {c: 2 for c in split.all_ids}
    again = C.kshot_sample(pool, split.all_ids, 2, seed=0)
    assert [(s.image_id, s.category_ids.tolist()) for s in again] == [(s.image_id, s.category_ids.tolist())
                                                                      for s in two]
    other = C.kshot_sample(pool, split.all_ids, 2, seed=1)
    assert [s.image_id for s in other] != [s.image_id for s in two]
    # TFA ladder: the 1-shot instances of a seed lie inside its 2-shot set
    inst = lambda ss: {(s.image_id, tuple(m.flatten().nonzero()[0].tolist())) for s in ss for m in s.masks}
    assert inst(one) <= inst(two)
    novel = C.kshot_sample(pool, split.novel_ids, 2, seed=0)
    assert _counts(novel) == {c: 2 for c in split.novel_ids}  # iFSIS: no base annotation at all


def test_kshot_files_match_in_memory_sampling(build):
    pool = C.load_split(build["fewshot_pool"], build["images"])
    split = C.load_category_split(build["fewshot_pool"])
    for name, ids in (("fewshot_2shot_seed1", split.all_ids), ("fewshot_novel_2shot_seed1", split.novel_ids)):
        from_file = C.load_split(build[name], build["images"])
        in_memory = C.kshot_sample(pool, ids, 2, seed=1)
        assert [s.image_id for s in from_file] == [s.image_id for s in in_memory]
        for a, b in zip(from_file, in_memory):
            assert torch.equal(a.masks, b.masks) and torch.equal(a.category_ids, b.category_ids)
    test_ids = {im["id"] for im in json.loads(build["test"].read_text())["images"]}
    for key, path in build.items():
        if key.startswith("fewshot_") and key != "fewshot_pool":
            kshot = json.loads(path.read_text())
            assert not {im["id"] for im in kshot["images"]} & test_ids  # no test image is ever a support


def test_write_shapes_reuses_a_complete_build(build):
    before = build["test"].stat().st_mtime_ns
    again = C.write_shapes(S.PRESETS["tiny"], 0, build["meta"].parent, shots=(1, 2), kshot_seeds=(0, 1))
    assert again == build and build["test"].stat().st_mtime_ns == before
    meta = json.loads(build["meta"].read_text())
    assert meta["novel_ids"] == list(S.novel_classes(S.PRESETS["tiny"], 0))


# ---------------------------------------------------------------------------------------------------------
# Bad input: InputError naming the file and the annotation id, nothing written.


@pytest.fixture
def valid(tmp_path):
    """A valid 8 x 8 COCO file with one image and two annotations (ids 1 and 2)."""
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                 "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]},
                {"id": 2, "image_id": 1, "category_id": 2, "iscrowd": 0,
                 "segmentation": {"size": [8, 8], "counts": [60, 2, 2]}}],
            "categories": [{"id": 1, "name": "a", "supercategory": "base"},
                           {"id": 2, "name": "b", "supercategory": "novel"}]}
    return tmp_path, data


def _write(folder, data):
    path = folder / "ann.json"
    path.write_text(json.dumps(data))
    return path


def test_valid_file_loads(valid):
    folder, data = valid
    (s,) = C.load_split(_write(folder, data), folder)
    assert s.category_ids.tolist() == [1, 2] and s.masks.shape == (2, 8, 8)
    # uncompressed RLE [60, 2, 2]: pixels 60, 61 in column-major order = column 7, rows 4 and 5
    assert s.masks[1].nonzero().tolist() == [[4, 7], [5, 7]]
    assert s.masks[0].sum() > 0


@pytest.mark.parametrize("field, value, message", [
    ("category_id", 9, "unknown category id 9"),
    ("segmentation", [], "empty polygon"),
    ("segmentation", [[1, 1, 5, 5]], r"empty \(2 points"),
    ("segmentation", [[0, 0, 2, 2, 4, 4]], "is empty"),  # collinear: zero area
    ("segmentation", [[0, 0, 4, 4, 4, 0, 0, 4]], "self-intersecting"),
    ("segmentation", {"size": [4, 4], "counts": [16]}, "RLE of the wrong size"),
    ("segmentation", {"size": [8, 8], "counts": [60, 2, 1]}, "summing to 8 x 8"),
    ("segmentation", {"size": [8, 8], "counts": "d"}, "not a valid compressed string"),
    ("segmentation", "1 1 5 5", "neither a polygon list nor an RLE"),
    ("iscrowd", 2, "iscrowd"),
])
def test_bad_annotation_is_refused(valid, field, value, message):
    folder, data = valid
    data["annotations"][1][field] = value
    path = _write(folder, data)
    with pytest.raises(InputError, match=message) as err:
        C.load_split(path, folder)
    assert str(path) in str(err.value) and "annotation id 2" in str(err.value)


def test_polygon_below_one_pixel_is_left_out(valid):
    folder, data = valid
    data["annotations"][1]["segmentation"] = [[1.1, 1.1, 1.2, 1.1, 1.2, 1.2]]  # area 0.005 px: valid, no pixel
    (s,) = C.load_split(_write(folder, data), folder)
    assert s.category_ids.tolist() == [1]
    with pytest.raises(InputError, match="category 2 has 0 instances"):  # K-shot counts agree with the loader
        C.write_kshot_json(_write(folder, data), folder / "k.json", [2], 1, 0)


def test_duplicate_annotation_ids(valid):
    folder, data = valid
    data["annotations"][1]["id"] = 1
    path = _write(folder, data)
    with pytest.raises(InputError, match=r"duplicate annotation id 1 \(also annotations\[0\]\)") as err:
        C.load_split(path, folder)
    assert str(path) in str(err.value)


def test_missing_image(valid):
    folder, data = valid
    path = _write(folder, data)
    (folder / "a.png").unlink()
    with pytest.raises(InputError, match="missing image 'a.png'") as err:
        C.load_split(path, folder)
    assert str(path) in str(err.value) and "annotation id 1" in str(err.value)


def test_image_size_mismatch_and_unsafe_name(valid):
    folder, data = valid
    data["images"][0]["width"] = 9
    with pytest.raises(InputError):  # the RLE of annotation 2 is 8 x 8, the image now says 8 x 9
        C.load_split(_write(folder, data), folder)
    data["annotations"] = []
    with pytest.raises(InputError, match="the image is 8 x 8 but the file says width 9"):
        C.load_split(_write(folder, data), folder)
    data["images"][0].update(width=8, file_name="../a.png")
    with pytest.raises(InputError, match="not a relative path"):
        C.load_split(_write(folder, data), folder)


def test_not_json_and_not_coco(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        C.load_split(bad, tmp_path)
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(InputError, match="expected a COCO object"):
        C.load_split(bad, tmp_path)
    with pytest.raises(InputError, match="not found"):
        C.load_split(tmp_path / "absent.json", tmp_path)


def test_kshot_writer_refuses_before_writing(valid):
    folder, data = valid
    data["annotations"][1]["category_id"] = 5
    path = _write(folder, data)
    out = folder / "fewshot_1shot_seed0.json"
    with pytest.raises(InputError, match="annotation id 2"):
        C.write_kshot_json(path, out, [1, 2], 1, 0)
    assert not out.exists()
    data["annotations"][1]["category_id"] = 2
    path = _write(folder, data)
    (folder / "a.png").unlink()
    with pytest.raises(InputError, match="missing image"):
        C.write_kshot_json(path, out, [1, 2], 1, 0, image_dir=folder)
    assert not out.exists()
    with pytest.raises(InputError, match=r"categories \[7\]"):
        C.write_kshot_json(path, out, [7], 1, 0)
    assert not out.exists()
