"""Bad-input catalogue of fctl (issue 12): every reader refuses a malformed file with exit 2, a message naming
the file, and the run directory absent or unchanged, before any training.

Readers: DeepGlobe `<root>/{train,crossvali,offical_crossvali}/<id>_sat.jpg + <id>_mask.png`, Inria
`<root>/{train,val,test}/{images,gt}/<name>.tif`, `model.weights_file` (a VGG-16 state dict), and the run
directory files `tenfold eval` / a resumed `tenfold train` read (stages/<stage>.pt, checkpoints/last.pt).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from tests.badinput import assert_refused
from tenfold.cli import main
from tenfold.systems.fctl import data as D
from tenfold.systems.fctl.stages import load_split

SIZE = 32  # the smoke profile's patch: the smallest image side fctl takes
DG_FOLDERS = D.SPLIT_FOLDERS["deepglobe"]


def _rgb(size: int = SIZE, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


def _ids(size: int = SIZE, seed: int = 1, top: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, top, (size, size)).astype(np.uint8)


def deepglobe_tree(root: Path) -> Path:
    """One valid `<split folder>/0_sat.jpg + 0_mask.png` pair per split."""
    for folder in DG_FOLDERS.values():
        (root / folder).mkdir(parents=True)
        Image.fromarray(_rgb()).save(root / folder / "0_sat.jpg")
        Image.fromarray(D.ids_to_colour(_ids())).save(root / folder / "0_mask.png")
    return root


def inria_tree(root: Path) -> Path:
    """One valid `<split>/images/austin1.tif + <split>/gt/austin1.tif` pair per split."""
    for split in ("train", "val", "test"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "gt").mkdir()
        tifffile.imwrite(root / split / "images" / "austin1.tif", _rgb())
        tifffile.imwrite(root / split / "gt" / "austin1.tif", _ids(top=2) * 255)
    return root


def _train_argv(source: str, root: Path, run: Path, *sets: str) -> list[str]:
    args = ["train", "fctl", "--profile", "smoke", "--set", f"data.source={source}", "--set", f"data.root={root}"]
    for s in sets:
        args += ["--set", s]
    return [*args, "--out", str(run)]


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _dg(root: Path, split: str, kind: str) -> Path:
    return root / DG_FOLDERS[split] / f"0_{kind}"


def _save(path: Path, arr: np.ndarray) -> Path:
    """PNG bytes (also under a .jpg name: the readers go by content); (H, W, 2) uint8 is saved as LA."""
    Image.fromarray(arr).save(path, format="PNG")
    return path


def _red_mask(root: Path) -> Path:
    colour = D.ids_to_colour(_ids())
    colour[3, 4] = (255, 0, 0)  # no DeepGlobe class
    return _save(_dg(root, "train", "mask.png"), colour)


def _small_pair(root: Path, side: int) -> Path:
    Image.fromarray(_rgb(side)).save(_dg(root, "val", "sat.jpg"), format="JPEG")
    _save(_dg(root, "val", "mask.png"), D.ids_to_colour(_ids(side)))
    return _dg(root, "val", "sat.jpg")


def _empty_split(root: Path) -> Path:
    for f in (root / DG_FOLDERS["test"]).iterdir():
        f.unlink()
    return root / DG_FOLDERS["test"]


# (case, mutate(root) -> the path the message must name, extra --set)
DEEPGLOBE_CASES = [
    ("empty train image", lambda r: (_dg(r, "train", "sat.jpg").write_bytes(b""), _dg(r, "train", "sat.jpg"))[1], ()),
    ("truncated val image", lambda r: _truncate(_dg(r, "val", "sat.jpg")), ()),
    ("truncated test mask", lambda r: _truncate(_dg(r, "test", "mask.png")), ()),
    ("text, not an image (non-UTF-8)", lambda r: (_dg(r, "val", "sat.jpg").write_bytes(b"\xff\xfe caf\xe9 \x00"),
                                                  _dg(r, "val", "sat.jpg"))[1], ()),
    ("1x1 image", lambda r: _small_pair(r, 1), ()),
    ("image smaller than the patch", lambda r: _small_pair(r, SIZE - 1), ()),
    ("mask colour outside the palette", _red_mask, ()),
    ("grey + alpha (LA) mask", lambda r: _save(_dg(r, "train", "mask.png"),
                                               np.zeros((SIZE, SIZE, 2), np.uint8)), ()),
    ("16-bit mask", lambda r: _save(_dg(r, "val", "mask.png"), np.zeros((SIZE, SIZE), np.uint16)), ()),
    ("mask size differs", lambda r: _save(_dg(r, "test", "mask.png"), D.ids_to_colour(_ids(SIZE + 1))), ()),
    ("missing mask", lambda r: (_dg(r, "val", "mask.png").unlink(), _dg(r, "val", "sat.jpg"))[1], ()),
    ("empty split folder", _empty_split, ()),
    ("class id over data.num_classes", lambda r: _dg(r, "train", "mask.png"), ("data.num_classes=2",)),
]


@pytest.mark.parametrize("case,mutate,sets", DEEPGLOBE_CASES, ids=[c[0] for c in DEEPGLOBE_CASES])
def test_deepglobe_bad_files_are_refused(tmp_path, capsys, case, mutate, sets):
    root = deepglobe_tree(tmp_path / "dg")
    name = mutate(root)
    run = tmp_path / "run"
    assert_refused(_train_argv("deepglobe", root, run, *sets), str(name), run, capsys)
    assert not run.exists()


def test_truncated_validation_image_is_refused_before_training(tmp_path, capsys, monkeypatch):
    """Issue 12: the truncated val image used to be found only after every stage had trained."""
    import tenfold.systems.fctl.train as T

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the inputs were validated")

    monkeypatch.setattr(T, "run_stage", no_training)
    root = deepglobe_tree(tmp_path / "dg")
    bad = _truncate(_dg(root, "val", "sat.jpg"))
    run = tmp_path / "run"
    err = assert_refused(_train_argv("deepglobe", root, run), str(bad), run, capsys)
    assert "cannot be read" in err and not run.exists()


def test_bad_file_keeps_an_existing_run_directory_unchanged(tmp_path, capsys):
    root = deepglobe_tree(tmp_path / "dg")
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine\n")
    bad = _truncate(_dg(root, "test", "sat.jpg"))
    assert_refused(_train_argv("deepglobe", root, run), str(bad), run, capsys)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # no config.json written


def _inria(root: Path, split: str, kind: str) -> Path:
    return root / split / kind / "austin1.tif"


def _tif(path: Path, arr: np.ndarray) -> Path:
    tifffile.imwrite(path, arr, photometric="rgb" if arr.ndim == 3 else "minisblack")
    return path


INRIA_CASES = [
    ("truncated val image", lambda r: _truncate(_inria(r, "val", "images")), ()),
    ("empty test gt", lambda r: (_inria(r, "test", "gt").write_bytes(b""), _inria(r, "test", "gt"))[1], ()),
    ("gt values not 0/255", lambda r: _tif(_inria(r, "train", "gt"), np.full((SIZE, SIZE), 7, np.uint8)), ()),
    ("16-bit gt", lambda r: _tif(_inria(r, "val", "gt"), np.zeros((SIZE, SIZE), np.uint16)), ()),
    ("float image with NaN", lambda r: _tif(_inria(r, "train", "images"),
                                            np.full((SIZE, SIZE, 3), np.nan, np.float32)), ()),
    ("float image over 1", lambda r: _tif(_inria(r, "val", "images"), np.full((SIZE, SIZE, 3), 7.0, np.float32)),
     ()),
    ("int32 image", lambda r: _tif(_inria(r, "test", "images"), np.ones((SIZE, SIZE, 3), np.int32)), ()),
    ("1x1 image", lambda r: (_tif(_inria(r, "val", "gt"), np.zeros((1, 1), np.uint8)),
                             _tif(_inria(r, "val", "images"), _rgb(1)))[1], ()),
    ("gt size differs", lambda r: _tif(_inria(r, "train", "gt"), np.zeros((SIZE, SIZE + 2), np.uint8)), ()),
    ("missing gt", lambda r: (_inria(r, "test", "gt").unlink(), _inria(r, "test", "images"))[1], ()),
    ("empty split folder", lambda r: (_inria(r, "val", "images").unlink(), r / "val")[1], ()),
]


@pytest.mark.parametrize("case,mutate,sets", INRIA_CASES, ids=[c[0] for c in INRIA_CASES])
def test_inria_bad_files_are_refused(tmp_path, capsys, case, mutate, sets):
    root = inria_tree(tmp_path / "inria")
    name = mutate(root)
    run = tmp_path / "run"
    assert_refused(_train_argv("inria", root, run, "data.num_classes=2", *sets), str(name), run, capsys)


@pytest.mark.parametrize("source", ["deepglobe", "inria"])
def test_decompression_bomb_is_refused_from_the_header(tmp_path, capsys, monkeypatch, source):
    import tenfold.core.images as core_images

    root = deepglobe_tree(tmp_path / "d") if source == "deepglobe" else inria_tree(tmp_path / "d")
    monkeypatch.setattr(core_images, "MAX_IMAGE_PIXELS", SIZE * SIZE - 1)  # stands for a 2^28-pixel file

    def no_decoding(*args, **kwargs):
        raise AssertionError("TIFF pixels decoded before the size check")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_decoding)
    first = _dg(root, "train", "sat.jpg") if source == "deepglobe" else _inria(root, "train", "images")
    run = tmp_path / "run"
    err = assert_refused(_train_argv(source, root, run, "data.num_classes=2" if source == "inria" else "seed=0"),
                         str(first), run, capsys)
    assert "MAX_IMAGE_PIXELS" in err


def test_sixteen_bit_and_grey_alpha_images_are_read_correctly(tmp_path, smoke_cfg):
    """# Design choice: 16-bit images are read (scaled by 65535), LA images as grey, not refused."""
    from tenfold.core.config import override

    root = inria_tree(tmp_path / "inria")
    deep = (np.arange(SIZE * SIZE * 3).reshape(SIZE, SIZE, 3) * 60).astype(np.uint16)  # wraps mod 2^16: 16 bits used
    _tif(_inria(root, "train", "images"), deep)
    cfg = override(smoke_cfg, {"data.source": "inria", "data.root": str(root), "data.num_classes": 2})
    img = load_split(cfg, "train").image(0)
    np.testing.assert_allclose(img.permute(1, 2, 0).numpy(), deep / 65535.0, rtol=1e-6)
    dg = deepglobe_tree(tmp_path / "dg")
    la = np.stack([_rgb()[..., 0], np.full((SIZE, SIZE), 255, np.uint8)], -1)
    _save(_dg(dg, "train", "sat.jpg"), la)
    cfg = override(smoke_cfg, {"data.source": "deepglobe", "data.root": str(dg)})
    img = load_split(cfg, "train").image(0)  # (3, H, W): grey repeated
    np.testing.assert_allclose(img[1].numpy(), la[..., 0] / 255.0, rtol=1e-6)


# ------------------------------------------------------------------ model.weights_file
class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _torch_file(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


WEIGHTS_CASES = [
    ("missing", lambda p: p, ()),
    ("empty", lambda p: (p.write_bytes(b""), p)[1], ()),
    ("truncated", lambda p: _truncate(_torch_file(p, {"features.0.weight": torch.zeros(64, 3, 3, 3)})), ()),
    ("not a torch file (non-UTF-8 bytes)", lambda p: (p.write_bytes(b"\xff\xfe\x00 weights"), p)[1], ()),
    ("a tensor, not a dict", lambda p: _torch_file(p, torch.zeros(3)), ()),
    ("NaN weights", lambda p: _torch_file(p, {"features.0.weight": torch.full((64, 3, 3, 3), float("nan"))}), ()),
    ("wrong shape", lambda p: _torch_file(p, {"features.0.weight": torch.zeros(8, 3, 3, 3)}), ()),
    ("missing VGG keys", lambda p: _torch_file(p, {"fc.weight": torch.zeros(2)}), ()),
    ("given with the tiny backbone", lambda p: _torch_file(p, {"a": torch.zeros(1)}), ("model.backbone=tiny",)),
]


@pytest.mark.parametrize("case,make,sets", WEIGHTS_CASES, ids=[c[0] for c in WEIGHTS_CASES])
def test_bad_weights_file_is_refused(tmp_path, capsys, case, make, sets):
    path = make(tmp_path / "vgg16.pth")
    run = tmp_path / "run"
    argv = ["train", "fctl", "--profile", "smoke", "--set", "model.backbone=vgg16", "--set",
            f"model.weights_file={path}", *[a for s in sets for a in ("--set", s)], "--out", str(run)]
    assert_refused(argv, str(path), run, capsys)


def test_malicious_weights_pickle_runs_no_code(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = _torch_file(tmp_path / "vgg16.pth", {"features.0.weight": _Evil(marker)})
    run = tmp_path / "run"
    argv = ["train", "fctl", "--profile", "smoke", "--set", "model.backbone=vgg16", "--set",
            f"model.weights_file={path}", "--out", str(run)]
    assert_refused(argv, str(path), run, capsys)
    assert not marker.exists()


def test_huge_weights_file_is_refused_unread(tmp_path, capsys, monkeypatch):
    import tenfold.systems.fctl.model as M

    monkeypatch.setattr(M, "MAX_WEIGHTS_BYTES", 64)  # stands for a file over 2 GiB
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read a file over the limit"))
    path = tmp_path / "vgg16.pth"
    path.write_bytes(b"\0" * 65)
    run = tmp_path / "run"
    argv = ["train", "fctl", "--profile", "smoke", "--set", "model.backbone=vgg16", "--set",
            f"model.weights_file={path}", "--out", str(run)]
    assert "MAX_WEIGHTS_BYTES" in assert_refused(argv, str(path), run, capsys)


# ------------------------------------------------------------------ run directory files (eval, resume)
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fctl") / "run"
    argv = ["--quiet", "train", "fctl", "--profile", "smoke", "--set", "train.stages=local,single0", "--out",
            str(run)]
    assert main(argv) == 0
    return run


STAGE_CASES = [
    ("empty", lambda p: p.write_bytes(b"")),
    ("truncated", _truncate),
    ("a list, not a state dict", lambda p: torch.save([torch.zeros(2)], p)),
    ("wrong tensor names", lambda p: torch.save({"w": torch.zeros(2)}, p)),
    ("wrong shape", lambda p: torch.save({k: v.flatten()[:1] if i == 0 else v for i, (k, v) in
                                          enumerate(torch.load(p, weights_only=True).items())}, p)),
    ("NaN weights", lambda p: torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                                          for k, v in torch.load(p, weights_only=True).items()}, p)),
]


@pytest.mark.parametrize("case,damage", STAGE_CASES, ids=[c[0] for c in STAGE_CASES])
def test_eval_refuses_a_bad_stage_file(tmp_path, capsys, trained_run, case, damage):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    bad = run / "stages" / "single0.pt"
    damage(bad)
    assert_refused(["eval", "--run", str(run)], str(bad), run, capsys)
    assert not (run / "eval.json").exists()


def test_eval_and_resume_refuse_a_malicious_pickle(tmp_path, capsys, trained_run):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    marker = tmp_path / "pwned"
    bad = _torch_file(run / "stages" / "local.pt", {"trunk.head.weight": _Evil(marker)})
    assert_refused(["eval", "--run", str(run)], str(bad), run, capsys)
    argv = ["train", "fctl", "--profile", "smoke", "--set", "train.stages=local,single0", "--out", str(run)]
    assert_refused(argv, str(bad), run, capsys)
    assert not marker.exists()


@pytest.mark.parametrize("case,ckpt", [
    ("unknown stage", lambda c: {**c, "stage": "bogus"}),
    ("epoch past the stage", lambda c: {**c, "epoch": 99}),
    ("model of another stage", lambda c: {**c, "stage": "local"}),
    ("no optimizer", lambda c: {k: v for k, v in c.items() if k != "optimizer"}),
])
def test_resume_refuses_a_bad_last_checkpoint(tmp_path, capsys, trained_run, case, ckpt):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    last = run / "checkpoints" / "last.pt"
    torch.save(ckpt(torch.load(last, weights_only=True)), last)
    (run / "stages" / "single0.pt").unlink()  # the run is resumed inside stage single0
    argv = ["train", "fctl", "--profile", "smoke", "--set", "train.stages=local,single0", "--out", str(run)]
    assert_refused(argv, str(last), run, capsys)


def test_scoring_an_empty_image_set_is_an_input_error_not_nan():
    from tenfold.core.errors import InputError
    from tenfold.systems.fctl.stages import evaluate_images

    with pytest.raises(InputError, match="empty"):
        evaluate_images(lambda i: None, [], 7)
