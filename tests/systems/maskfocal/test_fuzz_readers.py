"""Property-based fuzzing of maskfocal's text readers (Mask Focal Loss, arXiv 2212.11542): COCO head JSON, points
CSV and points JSON. Arbitrary text / JSON structures either load or raise InputError, never another exception."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tenfold.core.errors import InputError
from tenfold.systems.maskfocal.data import load_split

ROOT = Path()  # set by the module fixture: pytest's temporary folder, cleaned up with the others


@pytest.fixture(scope="module", autouse=True)
def _root(tmp_path_factory):
    global ROOT
    ROOT = tmp_path_factory.mktemp("maskfocal-fuzz")
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(ROOT / "a.png")  # lets some inputs load fully

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) |
           st.sampled_from(["a.png", "../a.png", "/a.png", "", "x", "NaN", "\x00"]))
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=5) |
                           st.dictionaries(st.text(max_size=8) | st.sampled_from(["a.png", "id"]), kids, max_size=5),
                           max_leaves=25)
keys = st.sampled_from(["id", "image_id", "category_id", "bbox", "iscrowd", "file_name", "width", "height", "name"])
coco_like = st.fixed_dictionaries({
    "images": st.lists(st.dictionaries(keys, json_values | st.sampled_from([1, 8, "a.png"]), max_size=6), max_size=3)
    | json_values,
    "annotations": st.lists(st.dictionaries(keys, json_values | st.sampled_from([1, [1, 1, 2, 2]]), max_size=6),
                            max_size=3) | json_values,
}, optional={"categories": st.lists(st.dictionaries(keys, json_values, max_size=3), max_size=2) | json_values})


def _load(name: str, data: bytes) -> None:
    path = ROOT / name
    path.write_bytes(data)
    try:
        load_split(path, ROOT)
    except InputError:
        pass


@SETTINGS
@given(coco_like)
def test_coco_like_structures_load_or_raise_input_error(obj):
    _load("c.json", json.dumps(obj).encode())


@SETTINGS
@given(json_values)
def test_any_json_loads_or_raises_input_error(obj):
    _load("j.json", json.dumps(obj).encode())


@SETTINGS
@given(st.dictionaries(st.sampled_from(["a.png", "b.png", "../a.png", ""]) | st.text(max_size=6),
                       st.lists(st.lists(scalars, max_size=3), max_size=3) | scalars, max_size=3))
def test_points_json_loads_or_raises_input_error(obj):
    _load("p.json", json.dumps(obj).encode())


csv_cell = st.sampled_from(["a.png", "1", "2.5", "inf", "nan", "-1", "1e400", "", '"', "x"]) | st.text(max_size=5)


@SETTINGS
@given(st.lists(st.lists(csv_cell, max_size=4), max_size=4), st.booleans())
def test_points_csv_loads_or_raises_input_error(rows, header):
    text = ("file_name,x,y\n" if header else "") + "\n".join(",".join(r) for r in rows)
    _load("p.csv", text.encode("utf-8", "surrogatepass"))


@SETTINGS
@given(st.binary(max_size=64))
def test_arbitrary_bytes_load_or_raise_input_error(data):
    _load("b.json", data)
    _load("b.csv", data)
