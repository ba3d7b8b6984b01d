"""Bad-input catalogue of harmonize (arXiv 2211.05295): every malformed file the CLI reads is refused with exit 2,
a message naming the file, no traceback, and the run directory absent or unchanged.

Readers covered: the real-data folder `data.root/{train,val,test}/{images,masks}` (data.load_pairs_folder),
`model.weights_file` (model.load_weights), and a run directory read by `tenfold eval --run` or resumed by
`tenfold train` (config.json, run.json, checkpoints/last.pt).
"""

import os
import shutil

import numpy as np
import pytest
import torch

from tenfold.cli import main
from tenfold.systems.harmonize.data import make_el_cells, save_pairs_folder
from tenfold.systems.harmonize.model import TinyUNet
from tests.badinput import assert_refused

SMOKE = ["train", "harmonize", "--profile", "smoke"]  # TinyUNet widths (4, 8): sides must be multiples of 2


def _image(path, arr):
    from PIL import Image

    Image.fromarray(arr).save(path)


def _data(root, size=32, n=2):
    for split, seed in (("train", 0), ("val", 1), ("test", 2)):
        save_pairs_folder(make_el_cells(n, size, (3, 4), 0.6, seed=seed), root / split)
    return root


def _replace_image(root, rel, arr):
    """Swap the image `rel` (e.g. "val/images/cell_00001") for a .tif holding `arr`; returns the new name."""
    (root / f"{rel}.png").unlink()
    _image(root / f"{rel}.tif", arr)
    return f"{rel.rsplit('/', 1)[-1]}.tif"


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


class _Evil:
    """Unpickling it would run a shell command that creates `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ------------------------------------------------------------------------------------ real data folder (data.root)
# Each case damages a valid data folder and returns the text the message must contain (the file, or the field).

def _empty_file(root):
    (root / "val/images/cell_00001.png").write_bytes(b"")
    return "cell_00001.png"


def _truncated_png(root):
    _truncate(root / "test/images/cell_00001.png")
    return "cell_00001.png"


def _not_an_image(root):
    (root / "val/images/cell_00000.png").write_bytes("ünïcode text, not a PNG".encode("latin-1"))
    return "cell_00000.png"


def _nan_float_tiff(root):
    arr = np.full((32, 32), 0.5, np.float32)
    arr[3, 4] = np.nan
    return _replace_image(root, "val/images/cell_00001", arr)


def _inf_float_tiff(root):
    arr = np.full((32, 32), 0.5, np.float32)
    arr[0, 0] = np.inf
    return _replace_image(root, "test/images/cell_00000", arr)


def _float_out_of_range(root):
    return _replace_image(root, "train/images/cell_00001", np.full((32, 32), 2.0, np.float32))


def _int32_beyond_16_bits(root):
    return _replace_image(root, "train/images/cell_00000", np.full((32, 32), 70000, np.int32))


def _too_small(root):
    _image(root / "train/images/cell_00000.png", np.zeros((1, 1), np.uint8))
    _image(root / "train/masks/cell_00000.png", np.zeros((1, 1), np.uint8))
    return "cell_00000.png"


def _odd_side(root):  # the 2-level TinyUNet pools once: 33 px cannot be halved
    _image(root / "val/images/cell_00000.png", np.zeros((33, 33), np.uint8))
    _image(root / "val/masks/cell_00000.png", np.zeros((33, 33), np.uint8))
    return "cell_00000.png"


def _mask_size_mismatch(root):
    _image(root / "test/masks/cell_00001.png", np.zeros((16, 32), np.uint8))
    return "cell_00001.png"


def _train_sizes_differ_without_crop(root):
    """Issue 18: mixed sizes are accepted, but training then needs crops (data.train_crop) to batch them."""
    _image(root / "train/images/cell_00001.png", np.zeros((16, 16), np.uint8))
    _image(root / "train/masks/cell_00001.png", np.zeros((16, 16), np.uint8))
    return "data.train_crop"


def _mask_missing(root):
    (root / "test/masks/cell_00000.png").unlink()
    return "cell_00000.png"


def _mask_not_binary(root):
    _image(root / "val/masks/cell_00000.png", np.full((32, 32), 7, np.uint8))
    return "cell_00000.png"


def _mask_empty_file(root):
    (root / "train/masks/cell_00001.png").write_bytes(b"")
    return "cell_00001.png"


def _mask_truncated(root):
    _truncate(root / "test/masks/cell_00000.png")
    return "cell_00000.png"


def _mask_la_transparent(root):
    la = np.zeros((32, 32, 2), np.uint8)  # grey 0, alpha 0 in the top half: which pixels are background?
    la[16:, :, 1] = 255
    _image(root / "val/masks/cell_00001.png", la)
    return "cell_00001.png"


def _mask_palette_colour(root):
    from PIL import Image

    im = Image.fromarray(np.eye(32, dtype=np.uint8), mode="P")  # index 1 is red: a class colour, not 0/255
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.save(root / "train/masks/cell_00000.png")
    return "cell_00000.png"


def _mask_rgb_colour(root):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[5, 5] = (0, 255, 0)
    _image(root / "test/masks/cell_00001.png", rgb)
    return "cell_00001.png"


def _mask_16bit_nonbinary(root):
    _image(root / "val/masks/cell_00000.png", np.full((32, 32), 1000, np.uint16))
    return "cell_00000.png"


def _no_images(root):  # images/ present, nothing in it
    for f in (root / "train/images").iterdir():
        f.unlink()
    return "train/images"


def _split_without_images(root):  # a split with zero images: only a stray text file
    for f in (root / "val/images").iterdir():
        f.unlink()
    (root / "val/images/notes.txt").write_text("none yet")
    return "val/images"


def _split_folder_missing(root):
    shutil.rmtree(root / "test/images")
    return "test/images"


FOLDER_CASES = [_empty_file, _truncated_png, _not_an_image, _nan_float_tiff, _inf_float_tiff, _float_out_of_range,
                _int32_beyond_16_bits, _too_small, _odd_side, _mask_size_mismatch, _train_sizes_differ_without_crop,
                _mask_missing, _mask_not_binary, _mask_empty_file, _mask_truncated, _mask_la_transparent,
                _mask_palette_colour, _mask_rgb_colour, _mask_16bit_nonbinary, _no_images, _split_without_images,
                _split_folder_missing]


@pytest.mark.parametrize("damage", FOLDER_CASES, ids=lambda f: f.__name__.strip("_"))
def test_bad_data_folder_is_refused_before_any_write(tmp_path, capsys, damage):
    root = _data(tmp_path / "data")
    name = damage(root)
    run = tmp_path / "run"
    assert_refused([*SMOKE, "--set", f"data.root={root}", "--out", str(run)], name, run, capsys)


def test_decompression_bomb_is_refused(tmp_path, capsys, monkeypatch):
    import tenfold.core.images

    root = _data(tmp_path / "data")
    monkeypatch.setattr(tenfold.core.images, "MAX_IMAGE_PIXELS", 32 * 32 - 1)  # stands in for a 2^28-pixel file
    run = tmp_path / "run"
    assert_refused([*SMOKE, "--set", f"data.root={root}", "--out", str(run)], ["cell_00000.png", "MAX_IMAGE_PIXELS"],
                   run, capsys)


def test_sizes_the_model_cannot_take_are_refused(tmp_path, capsys):
    run = tmp_path / "run"
    small = _data(tmp_path / "small", size=24)  # images smaller than the training crop
    assert_refused([*SMOKE, "--set", f"data.root={small}", "--set", "data.train_crop=32", "--out", str(run)],
                   "cell_00000.png", run, capsys)
    root = _data(tmp_path / "data")  # a crop the 3-level TinyUNet cannot take (multiple of 4 needed)
    assert_refused([*SMOKE, "--set", f"data.root={root}", "--set", "model.widths=4,8,16", "--set",
                    "data.train_crop=10", "--out", str(run)], "data.train_crop", run, capsys)
    assert_refused([*SMOKE, "--set", "data.image_size=30", "--set", "model.widths=4,8,16", "--out", str(run)],
                   "data.image_size", run, capsys)  # generated canvas


# ----------------------------------------------------------------------------------------------- model.weights_file

def _weights_missing(path, marker):
    return path


def _weights_empty(path, marker):
    path.write_bytes(b"")
    return path


def _weights_truncated(path, marker):
    torch.save(TinyUNet(1, (4, 8)).state_dict(), path)
    _truncate(path)
    return path


def _weights_not_torch(path, marker):
    path.write_bytes(b"\xff\xfe not a torch file \x00")
    return path


def _weights_malicious_pickle(path, marker):
    torch.save({"head.bias": _Evil(marker)}, path)
    return path


def _weights_not_a_dict(path, marker):
    torch.save(torch.zeros(3), path)
    return path


def _weights_empty_dict(path, marker):
    torch.save({}, path)
    return path


def _weights_wrong_shapes(path, marker):
    torch.save(TinyUNet(1, (8, 16)).state_dict(), path)  # the smoke model is (4, 8)
    return path


def _weights_nan_free_but_non_tensor(path, marker):
    torch.save({"head.bias": [1.0]}, path)
    return path


WEIGHT_CASES = [_weights_missing, _weights_empty, _weights_truncated, _weights_not_torch, _weights_malicious_pickle,
                _weights_not_a_dict, _weights_empty_dict, _weights_wrong_shapes, _weights_nan_free_but_non_tensor]


@pytest.mark.parametrize("make", WEIGHT_CASES, ids=lambda f: f.__name__.strip("_"))
def test_bad_weights_file_is_refused(tmp_path, capsys, make):
    marker = tmp_path / "pwned"
    path = make(tmp_path / "w.pt", marker)
    run = tmp_path / "run"
    assert_refused([*SMOKE, "--set", f"model.weights_file={path}", "--out", str(run)], ["model.weights_file", "w.pt"],
                   run, capsys)
    assert not marker.exists()  # the pickle's payload never ran


# ------------------------------------------------------------------------------ run directory (eval --run, resume)

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished smoke run on real folders (about 1 s)."""
    base = tmp_path_factory.mktemp("harmonize_run")
    root = _data(base / "data")
    run = base / "run"
    assert main(["--quiet", *SMOKE, "--set", f"data.root={root}", "--out", str(run)]) == 0
    return base


def _ckpt_truncated(run, marker):
    _truncate(run / "checkpoints/last.pt")
    return "last.pt"


def _ckpt_malicious(run, marker):
    torch.save({"epoch": 1, "model": _Evil(marker)}, run / "checkpoints/last.pt")
    return "last.pt"


def _ckpt_empty(run, marker):
    (run / "checkpoints/last.pt").write_bytes(b"")
    return "last.pt"


def _ckpt_fields_missing(run, marker):
    torch.save({"epoch": 1}, run / "checkpoints/last.pt")
    return "last.pt"


def _ckpt_other_model(run, marker):
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    state["model"] = TinyUNet(1, (8, 16)).state_dict()
    torch.save(state, run / "checkpoints/last.pt")
    return "last.pt"


def _ckpt_bad_plan(run, marker):
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    state["plan"] = {"what": 1}
    torch.save(state, run / "checkpoints/last.pt")
    return "last.pt"


def _config_not_utf8(run, marker):
    (run / "config.json").write_bytes(b"\xff\xfe{")
    return "config.json"


def _run_json_missing(run, marker):
    (run / "run.json").unlink()
    return "run.json"


def _test_image_damaged_later(run, marker):  # eval reads the test split again
    import json

    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["root"] = str(run.parent / "data")  # the copy's data folder
    (run / "config.json").write_text(json.dumps(cfg))
    (run.parent / "data/test/images/cell_00001.png").write_bytes(b"")
    return "cell_00001.png"


RUN_CASES = [_ckpt_truncated, _ckpt_malicious, _ckpt_empty, _ckpt_fields_missing, _ckpt_other_model, _ckpt_bad_plan,
             _config_not_utf8, _run_json_missing, _test_image_damaged_later]


@pytest.mark.parametrize("damage", RUN_CASES, ids=lambda f: f.__name__.strip("_"))
def test_bad_run_directory_is_refused_by_eval(tmp_path, capsys, finished_run, damage):
    base = tmp_path / "copy"
    shutil.copytree(finished_run, base)
    run, marker = base / "run", tmp_path / "pwned"
    name = damage(run, marker)
    assert_refused(["eval", "--run", str(run)], name, run, capsys)
    assert not marker.exists()


@pytest.mark.parametrize("damage", [_ckpt_truncated, _ckpt_malicious, _ckpt_fields_missing, _ckpt_bad_plan],
                         ids=lambda f: f.__name__.strip("_"))
def test_bad_checkpoint_is_refused_on_resume(tmp_path, capsys, finished_run, damage):
    base = tmp_path / "copy"
    shutil.copytree(finished_run, base)
    run, marker = base / "run", tmp_path / "pwned"
    damage(run, marker)
    assert_refused([*SMOKE, "--set", f"data.root={base / 'data'}", "--out", str(run)], "last.pt", run, capsys)
    assert not marker.exists()
