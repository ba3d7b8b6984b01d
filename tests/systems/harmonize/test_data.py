"""Data of harmonize (arXiv 2211.05295): the EL-cell generator and the real image/mask folder reader."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from tenfold.core.errors import InputError
from tenfold.systems.harmonize.data import (SCALES, SPLIT_SEED_OFFSETS, _crack_pixels, load_pairs_folder,
                                             make_el_cells, make_split, random_crops, save_pairs_folder)


def test_crack_masks_are_thin_connected_and_exactly_L_pixels():
    rng = np.random.default_rng(0)
    eight = np.ones((3, 3))
    for _ in range(200):
        length = int(rng.integers(6, 17))
        pix = _crack_pixels(rng, 128, length, 0.15)
        mask = np.zeros((128, 128), dtype=np.uint8)
        mask[tuple(np.array(pix).T)] = 1
        assert mask.sum() == length  # exactly L distinct pixels
        assert ndimage.label(mask, structure=eight)[1] == 1  # one 8-connected component
        blocks = mask[:-1, :-1] & mask[1:, :-1] & mask[:-1, 1:] & mask[1:, 1:]
        assert blocks.sum() == 0  # 1 px wide: never a filled 2x2 block


@pytest.mark.parametrize("scale", ["S1", "S2", "S3"])
def test_scales_are_below_one_to_thousand(scale):
    size, crack_len = SCALES[scale]
    data = make_el_cells(150, size, crack_len, 0.6, seed=1)
    per_image = data.masks.flatten(1).sum(1)  # (N,) crack pixels per image
    defect = per_image > 0
    ratios = per_image[defect] / (size * size - per_image[defect])
    # spec table: S1 1:1023-1:1535, S2 1:1023-1:2047, S3 1:2303-1:4607 in defect images, i.e. L in range
    assert float(ratios.max()) < 1e-3
    lo, hi = crack_len
    assert int(per_image[defect].min()) >= lo and int(per_image[defect].max()) <= hi
    assert data.foreground_ratio() < 1e-3  # the measured dataset-level ratio (with ~40 % empty images)
    assert set(torch.unique(data.masks).tolist()) <= {0.0, 1.0}


def test_empty_fraction_blur_and_determinism():
    data = make_el_cells(400, 48, (4, 6), 0.6, seed=2)
    empty = float((data.masks.flatten(1).sum(1) == 0).float().mean())
    assert abs(empty - 0.4) < 0.08  # binomial(400, 0.4): sd 0.024
    assert data.images.min() >= 0 and data.images.max() <= 1
    again = make_el_cells(400, 48, (4, 6), 0.6, seed=2)
    torch.testing.assert_close(again.images, data.images)
    # the blur touches the image only: masks are exactly binary with L pixels (no blurred mask values)
    assert set(torch.unique(data.masks).tolist()) <= {0.0, 1.0}


def test_split_seed_ranges_are_disjoint():
    offsets = sorted(SPLIT_SEED_OFFSETS.values())
    assert all(b - a >= 1_000_000 for a, b in zip(offsets, offsets[1:]))
    tr, va = make_split("train", 4, 32, (3, 4), 0.6, 0), make_split("val", 4, 32, (3, 4), 0.6, 0)
    assert tr.split == "train" and va.split == "val"
    assert not torch.equal(tr.images, va.images)
    with pytest.raises(InputError, match="split"):
        make_split("dev", 4, 32, (3, 4), 0.6, 0)


def test_random_crops_keep_pairs_aligned():
    g = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16)
    x, y = random_crops(images, images.clone(), 8, g)
    assert x.shape == (2, 1, 8, 8)
    torch.testing.assert_close(x, y)


def test_real_pairs_round_trip_and_16bit_tiff(tmp_path):
    from PIL import Image

    data = make_el_cells(3, 32, (3, 4), 1.0, seed=3)
    save_pairs_folder(data, tmp_path / "set")
    loaded = load_pairs_folder(tmp_path / "set")
    torch.testing.assert_close(loaded.masks, data.masks)
    torch.testing.assert_close(loaded.images, data.images, atol=1 / 255, rtol=0)  # 8-bit quantisation
    # a 16-bit TIFF image (common for EL) is scaled by 65535
    root = tmp_path / "tif"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(root / "images" / "a.tif")
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(root / "masks" / "a.png")
    assert float(load_pairs_folder(root).images.mean()) == pytest.approx(32768 / 65535)


def _pair(root, name, img, mask):
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    Image.fromarray(img).save(root / "images" / f"{name}.png")
    Image.fromarray(mask).save(root / "masks" / f"{name}.png")


def test_real_data_errors_name_the_file(tmp_path):
    ok_img, ok_mask = np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)
    bad = tmp_path / "nonbinary"
    _pair(bad, "x", ok_img, np.full((8, 8), 7, np.uint8))
    with pytest.raises(InputError, match=r"x\.png: mask is not binary"):
        load_pairs_folder(bad)
    size = tmp_path / "size"
    _pair(size, "y", ok_img, np.zeros((4, 8), np.uint8))
    with pytest.raises(InputError, match=r"y\.png: mask size"):
        load_pairs_folder(size)
    broken = tmp_path / "broken"
    _pair(broken, "z", ok_img, ok_mask)
    (broken / "images" / "z.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"z\.png: cannot be read as an image"):
        load_pairs_folder(broken)
    with pytest.raises(InputError, match="folder not found"):
        load_pairs_folder(tmp_path / "missing")


def test_loaded_values_follow_the_stored_bit_depth(tmp_path):
    """8-bit grey / 255, 16-bit grey / 65535 (PNG and a 32-bit "I" TIFF holding 16-bit values), RGB -> luma."""
    from PIL import Image

    root = tmp_path / "set"
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[...] = (200, 100, 50)
    files = {"a8.png": np.full((8, 8), 51, np.uint8), "b16.png": np.full((8, 8), 13107, np.uint16),
             "c32.tif": np.full((8, 8), 52428, np.int32), "d_rgb.png": rgb}
    for name, arr in files.items():
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        Image.fromarray(arr).save(root / "images" / name)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / f"{name.split('.')[0]}.png")
    loaded = load_pairs_folder(root)
    means = dict(zip(loaded.names, loaded.images.flatten(1).mean(1).tolist()))
    assert means["a8"] == pytest.approx(51 / 255, abs=1e-6)  # 0.2
    assert means["b16"] == pytest.approx(13107 / 65535, abs=1e-6)  # 0.2
    # Pillow reads a 32-bit integer TIFF as mode "I": it must not be divided by 2^31 - 1 (near-black)
    assert means["c32"] == pytest.approx(52428 / 65535, abs=1e-6)  # 0.8
    assert means["d_rgb"] == pytest.approx((0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255, abs=1e-5)


def test_grey_masks_stored_as_colour_are_accepted(tmp_path):
    """A palette (black/white) or opaque LA mask is grey in disguise: read as 0/1; the palette indices are not used."""
    from PIL import Image

    root = tmp_path / "set"
    _pair(root, "p", np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    _pair(root, "q", np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    index = np.zeros((8, 8), np.uint8)
    index[2, 3] = 1
    pal = Image.fromarray(index, mode="P")
    pal.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)  # index 0 is WHITE: the mask is 63 ones, one zero
    pal.save(root / "masks" / "p.png")
    la = np.zeros((8, 8, 2), np.uint8)
    la[..., 1] = 255
    la[4, 4, 0] = 255
    Image.fromarray(la).save(root / "masks" / "q.png")
    loaded = load_pairs_folder(root)
    assert loaded.masks[0].sum() == 63 and loaded.masks[0, 0, 2, 3] == 0
    assert loaded.masks[1].sum() == 1 and loaded.masks[1, 0, 4, 4] == 1
