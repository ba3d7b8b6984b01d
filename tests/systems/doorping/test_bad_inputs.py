"""Bad-input catalogue of doorping (Backdoor Attacks Against Dataset Distillation, arXiv 2301.01197): every
malformed file the CLI reads is refused with exit 2, a message naming the file (or field), no traceback, and
the run directory absent or unchanged.

Readers covered: `data.dataset=npz` (data.load_npz), `data.dataset=imagefolder` (data.load_imagefolder,
through tenfold.core.images), the pre-write checks of `train` (train.check_inputs), the run directory read by
`tenfold eval --run` (synset.pt, trigger.pt; evaluate.check_artefacts) and the checkpoint a resumed `train`
reads (checkpoints/last.pt), and CIFAR-100's torchvision pickles (data.load_cifar100, a restricted unpickler).
The other torchvision formats are read by torchvision itself (md5-checked; any error becomes an InputError
naming data.root) and are not catalogued file by file here.
"""

import json
import os

import numpy as np
import pytest
import torch

from tenfold.core.config import make_config, save_config
from tenfold.systems.doorping.config import PROFILES, Config
from tests.badinput import assert_refused

SMOKE = ["train", "doorping", "--profile", "smoke"]


class _Evil:
    """Unpickling it would run a shell command that creates `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ------------------------------------------------------------------------------------------------ npz (data.root)

def _arrays(n_train=40, n_test=20, side=16, channels=1):
    rng = np.random.default_rng(0)
    return {"train_x": rng.uniform(0, 1, (n_train, channels, side, side)).astype(np.float32),
            "train_y": np.arange(n_train) % 10, "test_x": rng.uniform(0, 1, (n_test, channels, side, side)),
            "test_y": np.arange(n_test) % 10}


def _with(**changes):
    """A case writing the valid arrays with `changes` applied (None drops the array)."""
    def write(path):
        arrays = {**_arrays(), **changes}
        np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return write


def _raw(data: bytes):
    return lambda path: path.write_bytes(data)


def _truncated_npz(path):
    np.savez(path, **_arrays())
    _truncate(path)


def _object_dtype(path):
    arrays = _arrays()
    arrays["train_y"] = np.array([object()] * 40, dtype=object)  # np.savez pickles object arrays
    np.savez(path, **arrays)


def _nan(key, value):
    arr = _arrays()[key].copy()
    arr[1, 0, 2, 3] = value
    return _with(**{key: arr})


NPZ_CASES = {  # name: (writer, text the message must contain besides the file name)
    "empty": (_raw(b""), "not a readable .npz"),
    "truncated": (_truncated_npz, "not a readable .npz"),
    "non_utf8_text": (_raw("ünïcode, not a zip".encode("latin-1")), "not a readable .npz"),
    "pickled_object_labels": (_object_dtype, "field 'train_y': dtype '|O' is not numeric"),
    "missing_test_y": (_with(test_y=None), "missing array 'test_y'"),
    "images_3d": (_with(train_x=np.zeros((40, 16, 16))), "field train_x must be N x C x H x W"),
    "two_channels": (_with(train_x=np.zeros((40, 2, 16, 16))), "field train_x must be N x C x H x W"),
    "non_square": (_with(test_x=np.zeros((20, 1, 16, 12))), "field test_x must be N x C x H x W"),
    "complex_pixels": (_with(train_x=np.zeros((40, 1, 16, 16), np.complex64)), "dtype complex64"),
    "int64_pixels": (_with(train_x=np.zeros((40, 1, 16, 16), np.int64)), "dtype int64"),
    "string_pixels": (_with(train_x=np.full((40, 1, 16, 16), "a")), "field 'train_x': dtype '<U1' is not numeric"),
    "nan_pixel": (_nan("train_x", np.nan), "non-finite"),
    "inf_pixel": (_nan("test_x", np.inf), "non-finite"),
    "pixel_above_one": (_nan("train_x", 1.5), "[0, 1]"),
    "no_train_images": (_with(train_x=np.zeros((0, 1, 16, 16)), train_y=np.zeros(0, np.int64)), "no images"),
    "no_test_images": (_with(test_x=np.zeros((0, 1, 16, 16)), test_y=np.zeros(0, np.int64)), "no images"),
    "test_channels_differ": (_with(test_x=np.zeros((20, 3, 16, 16))), "field test_x has images of shape"),
    "float_labels": (_with(train_y=np.arange(40) % 10 + 0.0), "field train_y has dtype float64"),
    "labels_2d": (_with(train_y=(np.arange(40) % 10)[:, None]), "field train_y has shape (40, 1)"),
    "label_count_mismatch": (_with(test_y=np.arange(19) % 10), "field test_y has shape (19,); expected (20,)"),
    "negative_label": (_with(test_y=np.arange(20) % 10 - 1), "field test_y has labels in [-1, 8]"),
    "huge_label": (_with(train_y=np.full(40, 10**9)), "[0, 1000)"),
    "class_without_train_image": (_with(train_y=np.arange(40) % 5 * 2), "no image of classes [1, 3, 5, 7, 9]"),
    "constant_images": (_with(train_x=np.full((40, 1, 16, 16), 0.5, np.float32)), "one constant value"),
    "too_small_for_model": (_with(train_x=np.random.default_rng(0).uniform(0, 1, (40, 1, 3, 3)),
                                  test_x=np.random.default_rng(1).uniform(0, 1, (20, 1, 3, 3))), "too small"),
}


@pytest.mark.parametrize("case", sorted(NPZ_CASES))
def test_npz_refused(case, tmp_path, capsys):
    write, text = NPZ_CASES[case]
    path = tmp_path / "set.npz"
    write(path)
    run = tmp_path / "run"
    assert_refused([*SMOKE, "--out", str(run), "--set", "data.dataset=npz", "--set", f"data.root={path}"],
                   [str(path), text], run, capsys)


def test_valid_npz_passes_every_pre_write_check(tmp_path):
    # The catalogue's base file is accepted, so each case above is refused for its own defect.
    from tenfold.systems.doorping.train import check_inputs
    from tenfold.systems.doorping.victims import load_for_config

    path = tmp_path / "set.npz"
    _with()(path)
    cfg = make_config(Config, PROFILES, "smoke", {"data.dataset": "npz", "data.root": str(path)})
    check_inputs(cfg, load_for_config(cfg))


def test_attack_portion_emptying_classes_is_refused_before_writing(tmp_path, capsys):
    # portion 1 relabels every kept image to the target: classes 1..9 have no real images to distil from
    # (before the fix this was found by RealPool after config.json was written).
    run = tmp_path / "run"
    assert_refused([*SMOKE, "--out", str(run), "--set", "attack.portion=1.0"],
                   ["attack.portion=1.0", "no image of classes [1, 2"], run, capsys)


# -------------------------------------------------------------------------------------- ImageFolder (data.root)

def _png(path, arr, mode=None):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(path)


def _tree(root):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("a", "b"):
            for i in range(3):
                _png(root / split / cls / f"{i}.png", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    return root


def _replace(rel, arr, suffix=".tif"):
    def damage(root):
        (root / f"{rel}.png").unlink()
        _png(root / f"{rel}{suffix}", arr)
        return f"{rel.rsplit('/', 1)[-1]}{suffix}"
    return damage


def _overwrite(rel, data):
    def damage(root):
        (root / rel).write_bytes(data)
        return rel.rsplit("/", 1)[-1]
    return damage


def _truncated_png(root):
    _truncate(root / "test/b/2.png")
    return "2.png"


def _empty_class(root):
    for f in (root / "train/b").iterdir():
        f.unlink()
    return "classes b"


def _class_mismatch(root):
    (root / "test/b").rename(root / "test/c")
    return "differ from test classes"


def _single_tree_without_test(root):
    # one tree (no train/ and test/), 2 images per class: round(0.2 * 2) = 0 test images
    flat = root / "flat"
    for cls in ("a", "b"):
        (flat / cls).mkdir(parents=True)
        for i in (0, 1):
            (root / "train" / cls / f"{i}.png").rename(flat / cls / f"{i}.png")
    return "test split has no images"


def _constant_images(root):
    for f in root.rglob("*.png"):
        _png(f, np.full((16, 16, 3), 7, np.uint8))
    return "one constant value"


def _float(value):
    arr = np.full((16, 16), 0.5, np.float32)
    arr[2, 3] = value
    return arr


IMAGEFOLDER_CASES = {  # name: damage(root) -> text the message must contain
    "empty_file": _overwrite("train/a/1.png", b""),
    "truncated_png": _truncated_png,
    "non_utf8_text": _overwrite("test/a/0.png", "ünïcode text, not a PNG".encode("latin-1")),
    "nan_float_tiff": _replace("train/b/0", _float(np.nan)),
    "inf_float_tiff": _replace("train/b/0", _float(np.inf)),
    "float_tiff_above_one": _replace("test/a/1", _float(2.0)),
    "int32_beyond_16_bits": _replace("train/a/2", np.full((16, 16), 70000, np.int32)),
    "empty_class_folder": _empty_class,
    "class_mismatch": _class_mismatch,
    "constant_images": _constant_images,
}


@pytest.mark.parametrize("case", sorted(IMAGEFOLDER_CASES))
def test_imagefolder_refused(case, tmp_path, capsys):
    root = _tree(tmp_path / "tree")
    text = IMAGEFOLDER_CASES[case](root)
    run = tmp_path / "run"
    assert_refused([*SMOKE, "--out", str(run), "--set", "data.dataset=imagefolder", "--set",
                    f"data.root={root}"], [text], run, capsys)


def test_imagefolder_single_tree_without_test_images_refused(tmp_path, capsys):
    root = _tree(tmp_path / "tree")
    _single_tree_without_test(root)
    run = tmp_path / "run"
    assert_refused([*SMOKE, "--out", str(run), "--set", "data.dataset=imagefolder", "--set",
                    f"data.root={root / 'flat'}"], ["flat", "test split has no images"], run, capsys)


def test_imagefolder_missing_root_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert_refused([*SMOKE, "--out", str(run), "--set", "data.dataset=imagefolder", "--set",
                    f"data.root={tmp_path / 'nope'}"], ["nope", "not a folder"], run, capsys)


def test_imagefolder_decompression_bomb_refused(tmp_path, capsys, monkeypatch):
    # A huge image without a huge file: the limit is lowered below the 16 x 16 = 256 pixels of every image.
    import tenfold.core.images as images

    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100)
    root = _tree(tmp_path / "tree")
    run = tmp_path / "run"
    assert_refused([*SMOKE, "--out", str(run), "--set", "data.dataset=imagefolder", "--set",
                    f"data.root={root}"], ["0.png", "over the limit of 100"], run, capsys)


def test_imagefolder_refusal_leaves_an_existing_run_directory_unchanged(tmp_path, capsys):
    root = _tree(tmp_path / "tree")
    _truncated_png(root)
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("kept\n")
    assert_refused([*SMOKE, "--out", str(run), "--set", "data.dataset=imagefolder", "--set",
                    f"data.root={root}"], ["2.png"], run, capsys)


# ------------------------------------------------------------------------------ run directory (eval, resume)

def _run_dir(path, cfg=None):
    """A run directory as `tenfold train` leaves it for the smoke profile (digits, 1 x 16 x 16, 10 classes)."""
    cfg = cfg or make_config(Config, PROFILES, "smoke")
    path.mkdir(parents=True)
    save_config(cfg, path / "config.json")
    (path / "run.json").write_text(json.dumps({"system": "doorping", "profile": "smoke"}) + "\n")
    torch.save({"images": torch.randn(20, 1, 16, 16), "labels": torch.arange(10).repeat(2)}, path / "synset.pt")
    torch.save({"tau": torch.randn(1, 1, 16, 16), "mask": torch.zeros(1, 1, 16, 16), "additive": False,
                "attack": "doorping", "tau_uint8": torch.randn(1, 1, 16, 16)}, path / "trigger.pt")
    return path


def _save(name, obj):
    return lambda run: torch.save(obj, run / name)


def _edit(name, key, value):
    def damage(run):
        obj = torch.load(run / name, weights_only=True)
        obj[key] = value
        torch.save(obj, run / name)
    return damage


EVAL_CASES = {  # name: (damage(run), file named, text)
    "synset_truncated": (lambda run: _truncate(run / "synset.pt"), "synset.pt", "load safely"),
    "synset_empty": (lambda run: (run / "synset.pt").write_bytes(b""), "synset.pt", "load safely"),
    "trigger_truncated": (lambda run: _truncate(run / "trigger.pt"), "trigger.pt", "load safely"),
    "trigger_non_utf8_text": (lambda run: (run / "trigger.pt").write_bytes("τ".encode("utf-16")), "trigger.pt",
                              "load safely"),
    "synset_missing": (lambda run: (run / "synset.pt").unlink(), "synset.pt", "no distilled set"),
    "synset_a_list": (_save("synset.pt", [torch.zeros(1)]), "synset.pt", "field 'images'"),
    "synset_three_channels": (_edit("synset.pt", "images", torch.zeros(20, 3, 16, 16)), "synset.pt",
                              "field 'images' is (20, 3, 16, 16)"),
    "synset_nan": (_edit("synset.pt", "images", torch.full((20, 1, 16, 16), float("nan"))), "synset.pt",
                   "finite floats"),
    "synset_float_labels": (_edit("synset.pt", "labels", torch.zeros(20)), "synset.pt", "dtype torch.float32"),
    "synset_label_out_of_range": (_edit("synset.pt", "labels", torch.arange(20)), "synset.pt", "[0, 9]"),
    "synset_label_count": (_edit("synset.pt", "labels", torch.arange(10)), "synset.pt", "field 'labels' is (10,)"),
    "trigger_wrong_shape": (_edit("trigger.pt", "tau", torch.zeros(1, 1, 8, 8)), "trigger.pt", "field 'tau'"),
    "trigger_inf": (_edit("trigger.pt", "mask", torch.full((1, 1, 16, 16), float("inf"))), "trigger.pt",
                    "finite floats"),
    "trigger_additive_text": (_edit("trigger.pt", "additive", "yes"), "trigger.pt", "field 'additive'"),
}


@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_eval_run_files_refused(case, tmp_path, capsys):
    damage, name, text = EVAL_CASES[case]
    run = _run_dir(tmp_path / "run")
    damage(run)
    assert_refused(["eval", "--run", str(run)], [str(run / name), text], run, capsys)


def test_valid_run_files_pass_the_artefact_checks(tmp_path):
    from tenfold.systems.doorping.evaluate import check_artefacts
    from tenfold.systems.doorping.victims import load_for_config

    run = _run_dir(tmp_path / "run")
    cfg = make_config(Config, PROFILES, "smoke")
    load = lambda n: torch.load(run / n, weights_only=True)  # noqa: E731
    check_artefacts(cfg, load_for_config(cfg), load("synset.pt"), load("trigger.pt"), run / "synset.pt",
                    run / "trigger.pt")


@pytest.mark.parametrize("name", ["synset.pt", "trigger.pt"])
def test_eval_malicious_pickle_refused_without_running_it(name, tmp_path, capsys):
    run = _run_dir(tmp_path / "run")
    marker = tmp_path / "pwned"
    torch.save({"images": _Evil(marker)}, run / name)
    assert_refused(["eval", "--run", str(run)], [str(run / name), "load safely"], run, capsys)
    assert not marker.exists()


def test_resume_with_malicious_checkpoint_refused_without_running_it(tmp_path, capsys):
    run = _run_dir(tmp_path / "run")
    marker = tmp_path / "pwned"
    (run / "checkpoints").mkdir()
    torch.save({"kind": "distill", "syn": _Evil(marker)}, run / "checkpoints" / "last.pt")
    assert_refused([*SMOKE, "--out", str(run)], ["last.pt", "load safely"], run, capsys)
    assert not marker.exists()


def test_resume_with_foreign_checkpoint_refused(tmp_path, capsys):
    run = _run_dir(tmp_path / "run")
    (run / "checkpoints").mkdir()
    torch.save({"kind": "distill", "iter": 1, "syn": torch.zeros(3)}, run / "checkpoints" / "last.pt")
    assert_refused([*SMOKE, "--out", str(run)], ["last.pt", "not a doorping distillation checkpoint"], run,
                   capsys)


def _dd_synset(cfg, bad_param: str | None = None):
    """synset.pt of a DD smoke run: S plus {"dd": images, raw_lrs, params0}; `bad_param` gets a wrong shape."""
    from tenfold.systems.doorping.model import build_network

    m, d = cfg.model, cfg.distill
    net = build_network(m.arch, 1, 10, 16, m.width, m.depth, m.hidden)
    params0 = {k: v.detach() for k, v in net.named_parameters()}
    if bad_param:
        params0[bad_param] = torch.zeros(3)
    dd = {"images": torch.randn(d.dd_steps, 10 * d.dd_images_per_step, 1, 16, 16),
          "raw_lrs": torch.zeros(d.dd_steps * d.dd_epochs), "params0": params0}
    return {"images": torch.randn(10, 1, 16, 16), "labels": torch.arange(10), "dd": dd}


def test_eval_dd_synset_with_foreign_params0_refused(tmp_path, capsys):
    from tenfold.systems.doorping.evaluate import check_artefacts
    from tenfold.systems.doorping.victims import load_for_config

    cfg = make_config(Config, PROFILES, "smoke", {"distill.method": "dd"})
    run = _run_dir(tmp_path / "run", cfg)
    check_artefacts(cfg, load_for_config(cfg), _dd_synset(cfg), torch.load(run / "trigger.pt", weights_only=True),
                    run / "synset.pt", run / "trigger.pt")  # the well-formed DD artefact passes
    torch.save(_dd_synset(cfg, "fc1.weight"), run / "synset.pt")
    assert_refused(["eval", "--run", str(run)], [str(run / "synset.pt"), "field 'fc1.weight'"], run, capsys)


# ------------------------------------------------------------------------------ CIFAR-100 pickles (data.root)

def _cifar_write(split, **fields):
    from .test_data import write_cifar100

    return lambda root: write_cifar100(root, **{split: fields})


def _cifar_raw(split, make):
    from .test_data import write_cifar100

    def write(root):
        write_cifar100(root)
        path = root / "cifar-100-python" / split
        path.write_bytes(make(path))
    return write


def _cifar_evil(root):
    import pickle

    from .test_data import write_cifar100

    write_cifar100(root)
    (root / "cifar-100-python" / "train").write_bytes(pickle.dumps(_Evil(root / "pwned")))


CIFAR100_CASES = {
    "missing_test": (lambda root: (_cifar_write("train")(root), (root / "cifar-100-python" / "test").unlink()),
                     "test", "missing"),
    "empty_file": (_cifar_raw("train", lambda p: b""), "train", "not a readable CIFAR-100 pickle"),
    "truncated": (_cifar_raw("test", lambda p: p.read_bytes()[:500]), "test", "not a readable CIFAR-100 pickle"),
    "not_a_pickle": (_cifar_raw("train", lambda p: b"PNG not a pickle" * 10), "train", "not a readable"),
    "not_a_dict": (_cifar_raw("train", lambda p: __import__("pickle").dumps([1, 2, 3])), "train",
                   "expected a pickled dict"),
    "missing_data": (_cifar_write("train", data=None), "train", "field 'data'"),
    "data_int64": (_cifar_write("train", data=np.zeros((100, 3072), np.int64)), "train", "field 'data'"),
    "data_wrong_width": (_cifar_write("test", data=np.zeros((10, 1024), np.uint8)), "test", "(N, 3072) uint8"),
    "missing_labels": (_cifar_write("train", fine_labels=None), "train", "field 'fine_labels'"),
    "labels_count": (_cifar_write("test", fine_labels=[0] * 9), "test", "field 'fine_labels' must be 10 integers"),
    "float_labels": (_cifar_write("test", fine_labels=[0.5] * 10), "test", "field 'fine_labels'"),
    "label_100": (_cifar_write("test", fine_labels=[100] * 10), "test", "must be in [0, 99]"),
    "class_without_train_image": (_cifar_write("train", fine_labels=[i % 50 for i in range(100)]), "cifar100",
                                  "no image of classes [50, 51"),
}


@pytest.mark.parametrize("case", sorted(CIFAR100_CASES))
def test_cifar100_refused(case, tmp_path, capsys):
    write, name, text = CIFAR100_CASES[case]
    root = tmp_path / "c100"
    write(root)
    run = tmp_path / "run"
    assert_refused([*SMOKE, "--out", str(run), "--set", "data.dataset=cifar100", "--set", f"data.root={root}"],
                   [name, text], run, capsys)


def test_cifar100_malicious_pickle_refused_without_running_it(tmp_path, capsys):
    root = tmp_path / "c100"
    _cifar_evil(root)
    run = tmp_path / "run"
    assert_refused([*SMOKE, "--out", str(run), "--set", "data.dataset=cifar100", "--set", f"data.root={root}"],
                   ["train", "is not allowed"], run, capsys)
    assert not (root / "pwned").exists()
