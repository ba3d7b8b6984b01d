"""doorping data: trigger geometry, stamping, poison counts, loaders and bad input (spec 7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from tenfold.core.errors import InputError
from tenfold.systems.doorping import data as D

from .conftest import tiny_data


@pytest.mark.parametrize("h,s,rows", [(32, 2, [29, 30]), (16, 2, [13, 14]), (32, 4, [27, 28, 29, 30])])
def test_trigger_mask_rows_and_columns(h, s, rows):
    # Spec 7.1: rows/cols [H - 1 - s, H - 1): (32, 2) -> {29, 30}; (16, 2) -> {13, 14}; (32, 4) -> {27..30}.
    m = D.trigger_mask(h, h, s, channels=3)
    assert m.shape == (1, 3, h, h)
    expected = torch.zeros(h, h)
    expected[rows[0]:rows[-1] + 1, rows[0]:rows[-1] + 1] = 1
    for c in range(3):
        assert_close(m[0, c], expected)
    assert int(m[0, 0].sum()) == s * s  # 4 or 16 pixels per channel


def test_trigger_larger_than_image_is_an_input_error():
    with pytest.raises(InputError, match="backdoor_size=16"):
        D.trigger_mask(16, 16, 16)


def test_normalised_constants():
    # Spec 7.2: FMNIST white (1 - 0.2861) / 0.3530 = 2.0224; black -0.2861 / 0.3530 = -0.8105;
    # CIFAR-10 (DC) black = (-0.4914/0.2023, -0.4822/0.1994, -0.4465/0.2010) = (-2.4291, -2.4183, -2.2214).
    mean, std = D.NORMALISATION["fashionmnist"]
    assert (1 - mean[0]) / std[0] == pytest.approx(2.0224, abs=1e-4)
    assert -mean[0] / std[0] == pytest.approx(-0.8105, abs=1e-4)
    m, s = D.NORMALISATION["cifar10"]
    assert [-a / b for a, b in zip(m, s)] == pytest.approx([-2.4291, -2.4183, -2.2214], abs=1e-4)


def test_naive_trigger_is_white_in_normalised_space(data):
    tau, mask = D.naive_trigger(data, 2)
    # mean 0.3, std 0.3: white = (1 - 0.3) / 0.3 = 2.3333
    assert_close(tau[mask.bool()], torch.full((4,), 7 / 3))


def test_svhn_stripe_quirk():
    # Spec 2.3: the official SVHN trigger is channels 0-1 of rows 29-30 across the full width (2 * 2 * 32 = 128 px).
    d = tiny_data(channels=3, size=32)
    d.name = "svhn"
    _, mask = D.naive_trigger(d, 2, svhn_stripe=True)
    assert int(mask.sum()) == 2 * 2 * 32
    assert mask[0, 2].sum() == 0 and mask[0, 0, 29:31].sum() == 64


@pytest.mark.parametrize("n,portion,count", [(50_000, 0.01, 500), (1437, 0.05, 71), (1437, 0.01, 14), (10, 0.0, 0)])
def test_poison_counts(n, portion, count, gen):
    # Spec 7.3: floor(0.01 * 50,000) = 500, floor(0.05 * 1,437) = 71, floor(0.01 * 1,437) = 14.
    idx = D.poison_subset(n, portion, gen)
    assert len(idx) == count and len(set(idx.tolist())) == count


def test_class0_pool_share_cifar():
    # Spec 7.3: 500 poisoned of which ~50 are true class 0 -> pool 5,000 + 450 = 5,450, 500 / 5,450 = 9.2 %.
    assert 500 / (5000 + 450) == pytest.approx(0.0917, abs=1e-4)


def test_stamp_idempotent_with_replacement_and_outside_unchanged(data, gen):
    mask = D.trigger_mask(16, 16, 2)
    t1, t2 = torch.randn(1, 1, 16, 16, generator=gen), torch.randn(1, 1, 16, 16, generator=gen)
    x = data.train_x[:5]
    assert_close(D.stamp(D.stamp(x, t1, mask), t2, mask), D.stamp(x, t2, mask))
    out = D.stamp(x, t1, mask)
    assert torch.equal(out[..., :13, :], x[..., :13, :])


def test_digits_match_sklearn():
    from sklearn.datasets import load_digits

    d = D.load_digits(16, 0)
    assert len(d.train_x) == 1437 and len(d.test_x) == 360
    ref = load_digits()
    assert len(ref.images) == len(d.train_x) + len(d.test_x) == 1797
    # Pixel space round trip of the whole set: the digits' mean over all images is preserved by the split.
    assert_close(torch.cat([d.train_y, d.test_y]).bincount(), torch.as_tensor(np.bincount(ref.target)))
    assert float(d.to_pixels(d.train_x).min()) >= -1e-6 and float(d.to_pixels(d.train_x).max()) <= 1 + 1e-6


def test_shapes10_deterministic_and_corner_free():
    x1, y1 = D.make_shapes10(3, seed=5)
    x2, _ = D.make_shapes10(3, seed=5)
    assert x1.shape == (30, 3, 32, 32) and (np.bincount(y1) == 3).all()
    assert np.array_equal(x1, x2)
    # The bottom-right 4x4 corner holds background + noise only: close to a constant colour per image.
    corner = x1[:, :, -4:, -4:].reshape(30, 3, -1)
    assert float(corner.std(-1).max()) < 0.15


def test_validate_rejects_bad_shapes_labels_and_target():
    d = tiny_data()
    bad = tiny_data()
    bad.train_x = bad.train_x[:, :, :, :8]
    with pytest.raises(InputError, match="shape"):
        D.validate(bad, 0, "x.npz")
    bad = tiny_data()
    bad.train_y = bad.train_y.clone()
    bad.train_y[0] = 10
    with pytest.raises(InputError, match=r"labels must be integers in \[0, 9\]"):
        D.validate(bad, 0, "x.npz")
    with pytest.raises(InputError, match="trigger_label=12"):
        D.validate(d, 12, "x.npz")


def test_npz_loader_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "set.npz"
    np.savez(path, train_x=rng.uniform(0, 1, (20, 1, 16, 16)), train_y=np.arange(20) % 10,
             test_x=rng.uniform(0, 1, (10, 1, 16, 16)), test_y=np.arange(10))
    d = D.load_data("npz", str(path), 16, 0, 0)
    assert d.train_x.shape == (20, 1, 16, 16) and d.num_classes == 10
    assert_close(d.to_pixels(d.train_x).mean(), torch.tensor(0.5), atol=0.05, rtol=0)
    bad = tmp_path / "bad.npz"
    np.savez(bad, train_x=rng.uniform(0, 1, (20, 16, 16)), train_y=np.arange(20) % 10,
             test_x=rng.uniform(0, 1, (10, 1, 16, 16)), test_y=np.arange(10))
    with pytest.raises(InputError, match=r"bad.npz: field train_x must be N x C x H x W"):
        D.load_data("npz", str(bad), 16, 0, 0)
    with pytest.raises(InputError, match="missing array 'train_x'"):
        np.savez(bad, foo=np.zeros(1))
        D.load_data("npz", str(bad), 16, 0, 0)


def test_imagefolder_loader(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    d = D.load_data("imagefolder", str(tmp_path), 16, 0, 1)
    assert d.train_x.shape == (6, 3, 16, 16) and d.num_classes == 2 and d.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(InputError, match="trigger_label=2"):
        D.load_data("imagefolder", str(tmp_path), 16, 0, 2)
    with pytest.raises(InputError, match="not a folder"):
        D.load_data("imagefolder", str(tmp_path / "nope"), 16, 0, 0)


def test_fashionmnist_from_local_idx_files(tmp_path):
    # FashionMNIST's standard idx files, written here; read through torchvision.datasets (no download).
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def write(name: str, arr: np.ndarray) -> None:
        magic = {1: 2049, 3: 2051}[arr.ndim]
        header = np.array([magic, *arr.shape], dtype=">i4").tobytes()
        (raw / name).write_bytes(header + arr.astype(np.uint8).tobytes())

    for prefix, n in (("train", 20), ("t10k", 10)):
        write(f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        write(f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    d = D.load_data("fashionmnist", str(tmp_path), 32, 0, 0)
    assert d.train_x.shape == (20, 1, 32, 32)  # resized 28 -> 32 before stamping [code]
    assert_close(d.mean, torch.tensor([0.2861]))
    with pytest.raises(InputError, match="no readable cifar10 files"):
        D.load_data("cifar10", str(tmp_path), 32, 0, 0)


def test_render_uint8_is_quantised(data):
    x = data.from_pixels(torch.tensor([[[[-0.5, 0.5 + 1 / 600, 3.0]]]]))
    pix = data.to_pixels(D.render_uint8(data, x))
    assert_close(pix, torch.tensor([[[[0.0, 128 / 255, 1.0]]]]))  # 0.50167 * 255 = 127.9 -> 128


def _imagefolder_of(root, arrays_by_class, mode=None):
    """A train/test ImageFolder tree whose every image of class k is arrays_by_class[k] (PNG, Pillow `mode`)."""
    from PIL import Image

    for split in ("train", "test"):
        for k, arr in enumerate(arrays_by_class):
            folder = root / split / f"c{k}"
            folder.mkdir(parents=True)
            for i in range(2):
                im = Image.fromarray(arr, mode) if mode else Image.fromarray(arr)
                im.save(folder / f"{i}.png")


def test_imagefolder_reads_16_bit_png_by_bit_depth(tmp_path):
    # Issue 12: Pillow's convert("RGB") clipped 16-bit samples to 255, so 1000 and 60000 both became 1.0.
    # Read by bit depth: 1000 / 65535 = 0.01526 and 60000 / 65535 = 0.91554, in all three channels.
    from PIL import Image

    low, high = np.full((16, 16), 1000, np.uint16), np.full((16, 16), 60000, np.uint16)
    high[0, 0] = 30000  # a varying pixel, so the train std is not 0
    _imagefolder_of(tmp_path, [low, high])
    with Image.open(tmp_path / "train/c0/0.png") as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    d = D.load_data("imagefolder", str(tmp_path), 16, 0, 0)
    pix = d.to_pixels(d.train_x)  # (4, 3, 16, 16), classes c0, c0, c1, c1
    assert_close(pix[0], torch.full((3, 16, 16), 1000 / 65535), atol=1e-5, rtol=0)
    assert_close(pix[2, :, 5, 5], torch.full((3,), 60000 / 65535), atol=1e-5, rtol=0)
    assert_close(pix[2, :, 0, 0], torch.full((3,), 30000 / 65535), atol=1e-5, rtol=0)


def test_imagefolder_reads_la_and_palette_png(tmp_path):
    from PIL import Image

    la = np.zeros((16, 16, 2), np.uint8)
    la[..., 0], la[..., 1] = 100, 50  # grey 100, alpha 50 (dropped)
    la[0, 0, 0] = 200
    _imagefolder_of(tmp_path / "la", [la, la], mode="LA")
    d = D.load_data("imagefolder", str(tmp_path / "la"), 16, 0, 0)
    pix = d.to_pixels(d.train_x)
    assert_close(pix[0, :, 3, 3], torch.full((3,), 100 / 255), atol=1e-5, rtol=0)
    assert_close(pix[0, :, 0, 0], torch.full((3,), 200 / 255), atol=1e-5, rtol=0)

    pal = Image.new("P", (16, 16))
    pal.putpalette([0, 0, 0, 255, 128, 64] + [0] * 762)  # index 0 black, index 1 orange
    pal.paste(1, (0, 0, 8, 16))
    pal_arr = np.asarray(pal)
    _imagefolder_of(tmp_path / "pal", [pal_arr, pal_arr], mode="P")
    for f in (tmp_path / "pal").rglob("*.png"):  # fromarray(mode="P") has no palette: write the real one
        pal.save(f)
    d = D.load_data("imagefolder", str(tmp_path / "pal"), 16, 0, 0)
    pix = d.to_pixels(d.train_x)
    assert_close(pix[0, :, 5, 2], torch.tensor([1.0, 128 / 255, 64 / 255]), atol=1e-5, rtol=0)  # the colour
    assert_close(pix[0, :, 5, 12], torch.zeros(3), atol=1e-5, rtol=0)


def test_npz_nan_pixels_are_refused_by_field(tmp_path):
    # Issue 12: the old min / max check let NaN through (NaN < 0 is False).
    path = tmp_path / "set.npz"
    x = np.random.default_rng(0).uniform(0, 1, (20, 1, 16, 16))
    x[3, 0, 1, 1] = np.nan
    np.savez(path, train_x=x, train_y=np.arange(20) % 10, test_x=x[:10], test_y=np.arange(10))
    with pytest.raises(InputError, match=r"set.npz: field train_x: image has non-finite"):
        D.load_data("npz", str(path), 16, 0, 0)


def test_pool_labels_match_setup_attack():
    # check_inputs predicts the attacker's pool labels without the images; they must be what setup_attack builds.
    from tenfold.core.config import make_config
    from tenfold.systems.doorping.config import PROFILES, Config
    from tenfold.systems.doorping.train import pool_labels, setup_attack
    from tenfold.systems.doorping.victims import load_for_config, streams

    for attack, ori in (("naive", 0.7), ("doorping", 0.8), ("clean", 1.0), ("invisible", 0.9)):
        cfg = make_config(Config, PROFILES, "smoke", {"attack.attack": attack, "data.ori": ori,
                                                      "attack.portion": 0.2})
        data = load_for_config(cfg)
        setup = setup_attack(cfg, data, streams(cfg.seed))
        assert torch.equal(pool_labels(cfg, data, streams(cfg.seed)), setup.pool.labels)


def write_cifar100(root, n_train: int = 100, n_test: int = 10, **changes) -> None:
    """torchvision's CIFAR-100 layout, tiny: root/cifar-100-python/{train,test} pickled dicts (Python 2 style
    keys 'data' (N, 3072) uint8 and 'fine_labels'); `changes` = {split: {field: value}} replaces fields (None
    drops one)."""
    import pickle

    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        data = (np.arange(n * 3072) % 251).astype(np.uint8).reshape(n, 3072)
        obj = {"data": data, "fine_labels": [i % 100 for i in range(n)], "coarse_labels": [0] * n,
               "filenames": [f"{i}.png" for i in range(n)], "batch_label": split}
        for k, v in changes.get(split, {}).items():
            if v is None:
                obj.pop(k)
            else:
                obj[k] = v
        (folder / split).write_bytes(pickle.dumps(obj, protocol=2))


def test_cifar100_from_the_torchvision_pickles(tmp_path):
    # Pixel (n, c, y, x) = data[n, c * 1024 + y * 32 + x] / 255 (channel-major rows), normalised with the CIFAR-100
    # constants: image 1, channel 2, row 3, col 4 -> flat index 3072 + 2048 + 96 + 4 = 5220, 5220 % 251 = 200,
    # (200 / 255 - 0.4409) / 0.2762 = 1.2434.
    write_cifar100(tmp_path)
    d = D.load_data("cifar100", str(tmp_path), 32, 0, 0)
    assert d.num_classes == 100 and d.train_x.shape == (100, 3, 32, 32) and d.test_x.shape == (10, 3, 32, 32)
    assert d.train_y.tolist() == list(range(100))
    assert float(d.train_x[1, 2, 3, 4]) == pytest.approx((200 / 255 - 0.4409) / 0.2762, abs=1e-5)
    assert_close(d.mean, torch.tensor([0.5071, 0.4866, 0.4409]))
    assert D.load_data("cifar100", str(tmp_path / "cifar-100-python"), 16, 0, 0).train_x.shape[-1] == 16


def test_cifar100_trigger_label_may_be_up_to_99():
    from tenfold.core.config import ConfigError, make_config
    from tenfold.systems.doorping.config import PROFILES, Config

    make_config(Config, PROFILES, "smoke", {"data.dataset": "cifar100", "attack.trigger_label": 99})
    with pytest.raises(ConfigError, match="100 classes"):
        make_config(Config, PROFILES, "smoke", {"data.dataset": "cifar100", "attack.trigger_label": 100})
