"""Bad-input catalogue of maskfocal (Mask Focal Loss, arXiv 2212.11542): every reader through the real CLI.

Readers: the COCO head JSON, the points CSV and points JSON (data.train_file / val_file / test_file), the image
files they name (PNG / JPEG / TIFF via tenfold.core.images) and, for `tenfold eval` and a resumed `train`, the
run directory's checkpoint. Each malformed file is written here; `assert_refused` checks exit 2, a message that
names the file, no traceback, and the run directory absent (train) or unchanged (eval / resume).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tenfold.cli import main
from tenfold.core.config import ConfigError, make_config, save_config
from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir
from tests.badinput import assert_refused
from tenfold.systems.maskfocal import data as mf_data
from tenfold.systems.maskfocal.config import PROFILES, Config
from tenfold.systems.maskfocal.data import load_split
from tenfold.systems.maskfocal.model import build_model

N = 4  # images per split: the smoke profile's batch of 4 fits


def _coco(names=None, bbox=(10.0, 10.0, 8.0, 8.0), **ann_extra) -> dict:
    names = names or [f"images/a{i}.png" for i in range(N)]
    images = [{"id": i + 1, "file_name": n, "width": 64, "height": 64} for i, n in enumerate(names)]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": list(bbox), "iscrowd": 0, **ann_extra}
            for i in range(len(names))]
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "head"}]}


@pytest.fixture
def ds(tmp_path) -> Path:
    """A valid data set: 4 RGB 64x64 PNGs, train / val / test COCO files, a points CSV and JSON."""
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(N):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "images" / f"a{i}.png")
    for split in ("train", "val", "test"):
        (root / f"{split}.json").write_text(json.dumps(_coco()))
    (root / "points.csv").write_text("file_name,x,y\n" + "".join(f"images/a{i}.png,12,14\n" for i in range(N)))
    (root / "points.json").write_text(json.dumps({f"images/a{i}.png": [[12, 14]] for i in range(N)}))
    return root


def _train(root: Path, run: Path, test: str = "test.json", train: str = "train.json", *extra: str) -> list[str]:
    return ["train", "maskfocal", "--profile", "smoke", "--set", "data.source=files",
            "--set", f"data.train_file={root / train}", "--set", f"data.val_file={root / 'val.json'}",
            "--set", f"data.test_file={root / test}", *extra, "--out", str(run)]


def _coco_text(**kw) -> str:
    return json.dumps(_coco(**kw))


def _without(key: str) -> str:
    c = _coco()
    del c["annotations"][0][key]
    return json.dumps(c)


def _images_field(key: str, value) -> str:
    c = _coco()
    c["images"][0][key] = value
    return json.dumps(c)


# (case id, bytes of the bad test.json (the split read last, at evaluation, before the fix), words in the message)
VALID = json.dumps(_coco())
COCO_CASES = [
    ("empty", b"", ["not valid JSON"]),
    ("truncated", VALID[: len(VALID) // 2].encode(), ["not valid JSON"]),
    ("not_utf8", b"\xff\xfe" + VALID.encode("utf-16-le"), ["not UTF-8"]),
    ("list_not_object", b"[1, 2, 3]", ["got a JSON list"]),
    ("deep_nesting", b"[" * 100_000 + b"]" * 100_000, ["not valid JSON"]),
    ("int_5000_digits", VALID.replace('"width": 64', '"width": ' + "9" * 5000, 1).encode(), ["not valid JSON"]),
    ("no_image_id", _without("image_id").encode(), ["annotation id 1", "image_id"]),
    ("width_string", _images_field("width", "abc").encode(), ["images[0]", "width"]),
    ("width_nan", _images_field("width", float("nan")).encode(), ["images[0]", "width"]),
    ("width_negative", _images_field("width", -64).encode(), ["images[0]", "width"]),
    ("unknown_category", _coco_text(category_id=9).encode(), ["annotation id 1", "category_id 9"]),
    ("bool_bbox", _coco_text(bbox=(True, 10.0, 8.0, 8.0)).encode(), ["annotation id 1", "bbox"]),
    ("nan_bbox", _coco_text(bbox=(float("nan"), 10.0, 8.0, 8.0)).encode(), ["annotation id 1", "finite"]),
    ("inf_width", _coco_text(bbox=(10.0, 10.0, float("inf"), 8.0)).encode(), ["annotation id 1", "finite"]),
    ("negative_width", _coco_text(bbox=(10.0, 10.0, -8.0, 8.0)).encode(), ["annotation id 1", "w, h > 0"]),
    ("bbox_outside", _coco_text(bbox=(60.0, 10.0, 8.0, 8.0)).encode(), ["annotation id 1", "outside"]),
    ("bbox_short", _coco_text(bbox=(1.0, 2.0, 3.0)).encode(), ["annotation id 1", "bbox"]),
    ("iscrowd_2", _coco_text(iscrowd=2).encode(), ["annotation id 1", "iscrowd"]),
    ("dotdot_name", _coco_text(names=["../outside.png"] + [f"images/a{i}.png" for i in range(1, N)]).encode(),
     ["images[0]", "../outside.png"]),
    ("absolute_name", _coco_text(names=["/etc/passwd"] + [f"images/a{i}.png" for i in range(1, N)]).encode(),
     ["images[0]", "/etc/passwd"]),
    ("missing_image", _coco_text(names=["images/nope.png"] + [f"images/a{i}.png" for i in range(1, N)]).encode(),
     ["images/nope.png", "not found"]),
    ("size_mismatch", _images_field("width", 32).encode(), ["a0.png", "width=32"]),
    ("duplicate_ids", json.dumps({**_coco(), "images": _coco()["images"][:1] * 2}).encode(), ["used twice"]),
    ("no_images", json.dumps({"images": [], "annotations": []}).encode(), ["no images"]),
]


@pytest.mark.parametrize("case, content, words", COCO_CASES, ids=[c[0] for c in COCO_CASES])
def test_bad_coco_test_file_is_refused_before_any_write(ds, tmp_path, capsys, case, content, words):
    (ds / "bad.json").write_bytes(content)
    run = tmp_path / "run"
    assert_refused(_train(ds, run, test="bad.json"), [str(ds / "bad.json"), *words], run, capsys)
    assert not run.exists()


POINT_CASES = [  # (file name, content, words): used as the train file
    ("p.csv", b"", ["header"]),
    ("p.csv", b"file_name,x,y\nimages/a0.png,1,\x002\n", ["line 2"]),
    ("p.csv", b"name,x,y\nimages/a0.png,1,2\n", ["header"]),
    ("p.csv", b"file_name,x,y\nimages/a0.png,1,oops\n", ["line 2"]),
    ("p.csv", b"file_name,x,y\nimages/a0.png,inf,2\n", ["line 2", "finite"]),
    ("p.csv", b"file_name,x,y\nimages/a0.png,nan,2\n", ["line 2", "finite"]),
    ("p.csv", b"file_name,x,y\nimages/a0.png,1\n", ["line 2"]),
    ("p.csv", b"file_name,x,y\nimages/a0.png,1,2,3\n", ["line 2"]),
    ("p.csv", b"file_name,x,y\nimages/a\xff.png,1,2\n", ["not UTF-8"]),
    ("p.csv", b"file_name,x,y\n../images/a0.png,1,2\n", ["line 2", "../images/a0.png"]),
    ("p.csv", b"file_name,x,y\nimages/a0.png,1,99\n", ["a0.png", "outside the 64x64"]),
    ("p.csv", b"file_name,x,y\nimages/a0.png,\"1\n", ["line 2"]),
    ("p.json", b"[[1, 2]]", ["got a JSON list"]),
    ("p.json", b'{"images/a0.png": [[1, Infinity]]}', ["finite"]),
    ("p.json", b'{"images/a0.png": [[true, 2]]}', ["finite"]),
    ("p.json", b'{"images/a0.png": [[1, 2, 3]]}', ["images/a0.png"]),
    ("p.json", b'{"images/a0.png": "12,14"}', ["images/a0.png"]),
    ("p.json", b'{"/abs/a0.png": [[1, 2]]}', ["/abs/a0.png"]),
    ("p.json", b"{}", ["no images"]),
]


@pytest.mark.parametrize("name, content, words", POINT_CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(POINT_CASES)])
def test_bad_points_file_is_refused(ds, tmp_path, capsys, name, content, words):
    (ds / name).write_bytes(content)
    run = tmp_path / "run"
    assert_refused(_train(ds, run, "test.json", name), [str(ds / name), *words], run, capsys)


def _png_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _float_tiff(path: Path, value: float) -> None:
    Image.fromarray(np.full((64, 64), value, dtype=np.float32), mode="F").save(path, format="TIFF")  # TIFF bytes under a .png name


IMAGE_CASES = [  # (case, writer of images/a3.png (used by every split), words)
    ("empty", lambda p: p.write_bytes(b""), ["a3.png", "cannot be read"]),
    ("truncated", lambda p: p.write_bytes(_png_bytes(np.zeros((64, 64, 3), np.uint8))[:60]), ["a3.png"]),
    ("text", lambda p: p.write_bytes(b"not an image"), ["a3.png", "cannot be read"]),
    ("float_nan", lambda p: _float_tiff(p, float("nan")), ["a3.png", "non-finite"]),
    ("float_out_of_range", lambda p: _float_tiff(p, 7.0), ["a3.png", "[0, 1]"]),
    ("directory", lambda p: (p.unlink(), p.mkdir()), ["a3.png", "not found"]),
]


@pytest.mark.parametrize("case, write, words", IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_bad_image_is_refused(ds, tmp_path, capsys, case, write, words):
    write(ds / "images" / "a3.png")
    run = tmp_path / "run"
    assert_refused(_train(ds, run), [str(ds / "train.json"), *words], run, capsys)


def test_huge_inputs_are_refused_by_their_limits(ds, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setattr("tenfold.core.images.MAX_IMAGE_PIXELS", 64 * 64 - 1)  # a decompression bomb, in small
    assert_refused(_train(ds, run), [str(ds / "train.json"), "a0.png", "over the limit"], run, capsys)
    monkeypatch.undo()
    monkeypatch.setattr(mf_data, "MAX_ANNOTATION_BYTES", 100)
    assert_refused(_train(ds, run), [str(ds / "train.json"), "MAX_ANNOTATION_BYTES"], run, capsys)
    monkeypatch.undo()
    # the smoke profile's batch of 4 images of 64x64 = 16384 pixels; one pixel less refuses (train's worst batch)
    monkeypatch.setattr(mf_data, "MAX_BATCH_PIXELS", 4 * 64 * 64 - 1)
    assert_refused(_train(ds, run), [str(ds / "train.json"), "MAX_BATCH_PIXELS"], run, capsys)
    assert not run.exists()


def test_refused_input_leaves_an_existing_run_unchanged(ds, tmp_path, capsys):
    """Resume into a run directory: a bad test file or a damaged checkpoint leaves every byte as it was."""
    run = tmp_path / "run"
    cfg = make_config(Config, PROFILES, "smoke", {"data.source": "files", "data.train_file": str(ds / "train.json"),
                                                  "data.val_file": str(ds / "val.json"),
                                                  "data.test_file": str(ds / "test.json")})
    run.mkdir()
    save_config(cfg, run / "config.json")
    (run / ".config.json.123.tmp").write_text("leftover")  # write_config would delete it: it must not run
    (ds / "bad.json").write_text("{")
    assert_refused(_train(ds, run, test="bad.json"), str(ds / "bad.json"), run, capsys)
    ckpt = RunDir(run).checkpoint_path
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"PK\x03\x04 truncated")
    assert_refused(_train(ds, run), str(ckpt), run, capsys)
    RunDir(run).save_checkpoint({"model": {"nonsense": torch.zeros(2)}, "step": 3})
    assert_refused(_train(ds, run), [str(ckpt), "does not hold"], run, capsys)


def _eval_run(ds: Path, run: Path, state: dict | None) -> None:
    cfg = make_config(Config, PROFILES, "smoke", {"data.source": "files", "data.train_file": str(ds / "train.json"),
                                                  "data.val_file": str(ds / "val.json"),
                                                  "data.test_file": str(ds / "test.json")})
    run.mkdir()
    save_config(cfg, run / "config.json")
    (run / "run.json").write_text(json.dumps({"system": "maskfocal", "profile": "smoke"}))
    if state is not None:
        RunDir(run).save_checkpoint(state)


def test_eval_refuses_bad_checkpoints_and_bad_split_files(ds, tmp_path, capsys):
    model = build_model(make_config(Config, PROFILES, "smoke").model)
    good = {"model": model.state_dict(), "step": 8, "finished": True}
    cases = [(None, "no final checkpoint"), ({**good, "finished": False}, "no final checkpoint"),
             ({**good, "model": {"w": torch.zeros(1)}}, "does not hold"), ("garbage", "cannot load")]
    for i, (state, words) in enumerate(cases):
        run = tmp_path / f"run{i}"
        _eval_run(ds, run, None if state == "garbage" else state)
        if state == "garbage":
            RunDir(run).checkpoint_path.parent.mkdir()
            RunDir(run).checkpoint_path.write_bytes(b"\x80\x02garbage")
        names = [str(RunDir(run).checkpoint_path)] + ([words] if words != "cannot load" else [])
        assert_refused(["eval", "--run", str(run)], names, run, capsys)
    run = tmp_path / "run-bad-test"
    _eval_run(ds, run, good)
    (ds / "test.json").write_bytes(b"\xff\xfe")  # the test split is read only at evaluation
    assert_refused(["eval", "--run", str(run)], [str(ds / "test.json"), "not UTF-8"], run, capsys)
    assert not (run / "eval.json").exists()


# ---------------------------------------------------------------------------------------------------------
# Issue 12 fixes outside the table.


def test_readme_command_order_of_set_flags_is_accepted(ds, capsys):
    """README: `--set data.source=files --set data.train_file=...` used to exit 2 (validated after each --set)."""
    files = [f"data.train_file={ds / 'train.json'}", f"data.val_file={ds / 'val.json'}",
             f"data.test_file={ds / 'test.json'}"]
    for sets in (["data.source=files", *files], [*files[::-1], "data.source=files"]):
        argv = ["show", "maskfocal", "--profile", "smoke"] + [a for s in sets for a in ("--set", s)]
        assert main(argv) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["data"]["source"] == "files" and shown["data"]["test_file"] == str(ds / "test.json")
    with pytest.raises(ConfigError, match="data.test_file"):  # a missing file setting is still refused ...
        make_config(Config, PROFILES, "smoke", {"data.source": "files", "data.train_file": "a.json",
                                                "data.val_file": "b.json"})


def test_missing_annotation_file_is_refused(ds, tmp_path, capsys):
    run = tmp_path / "run"  # ... and so is a file that does not exist
    assert_refused(_train(ds, run, test="absent.json"), [str(ds / "absent.json"), "not found"], run, capsys)


def test_points_csv_with_byte_order_mark_is_read(ds):
    (ds / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (ds / "points.csv").read_bytes())  # as Excel saves UTF-8 CSV
    assert load_split(ds / "bom.csv").counts.tolist() == [1] * N


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    """Pillow's convert("RGB") clipped 16-bit samples to 255: 32768 / 65535 of full scale must read as 128."""
    (tmp_path / "images").mkdir()
    Image.fromarray(np.full((64, 64), 32768, dtype=np.uint16)).save(tmp_path / "images" / "a0.png")
    Image.fromarray(np.full((64, 64, 2), 200, dtype=np.uint8), mode="LA").save(tmp_path / "images" / "a1.png")
    (tmp_path / "s.json").write_text(_coco_text(names=["images/a0.png", "images/a1.png"]))
    ds = load_split(tmp_path / "s.json")
    assert ds.image(0).dtype == torch.uint8
    assert ds.image(0).unique().tolist() == [128]  # round(32768 / 65535 * 255) = round(127.50) = 128; was 255
    assert ds.image(1).unique().tolist() == [200]  # LA: grey to all 3 channels, alpha dropped


def test_symlinked_image_root_is_followed_but_dotdot_is_not(ds, tmp_path):
    """Design choice: the name is checked as written; a symlink the user placed inside the root is followed."""
    link = tmp_path / "linked"
    link.symlink_to(ds / "images")
    (ds / "l.json").write_text(_coco_text(names=["../linked/a0.png"]))
    with pytest.raises(InputError, match=r"l.json: images\[0\]: file_name '../linked/a0.png'"):
        load_split(ds / "l.json", image_root=ds)
    (tmp_path / "l.json").write_text(_coco_text(names=["linked/a0.png"]))
    assert len(load_split(tmp_path / "l.json").boxes) == 1
