"""core.images: bit depth scaled (not clipped), every malformed file refused with InputError naming it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tenfold.core import images
from tenfold.core.errors import InputError


def test_16bit_png_is_scaled_by_its_depth_not_clipped(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint32) * 16).reshape(64, 64).astype(np.uint16)  # 0..65520
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    arr = images.read_pixels(path)
    assert arr.dtype == np.uint16 and int(arr.max()) == 65520
    unit = images.to_unit(arr, str(path))
    np.testing.assert_allclose(unit, ramp / 65535.0, atol=1e-6)
    assert (unit >= 1.0).mean() < 0.01  # convert("RGB") would put 99 % of pixels at 1.0
    rgb = images.to_rgb(unit, str(path))
    assert rgb.shape == (64, 64, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])


def test_la_palette_and_rgba_modes_give_rgb(tmp_path):
    grey = np.full((5, 6), 200, np.uint8)
    Image.fromarray(np.stack([grey, np.full_like(grey, 7)], axis=2), mode="LA").save(tmp_path / "la.png")
    la = images.to_rgb(images.read_pixels(tmp_path / "la.png"), "la")
    assert la.shape == (5, 6, 3) and (la == 200).all()
    pal = Image.new("P", (4, 3))
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.putpixel((1, 1), 1)
    pal.save(tmp_path / "p.png")
    arr = images.read_pixels(tmp_path / "p.png")
    assert arr.shape == (3, 4, 3) and tuple(arr[1, 1]) == (10, 20, 30)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    assert images.to_rgb(images.read_pixels(tmp_path / "rgba.png"), "x").shape == (2, 2, 3)


def test_grey_luma_weights():
    px = np.array([[[255, 0, 0], [0, 255, 0]]], np.uint8)
    np.testing.assert_allclose(images.to_grey(px, "x"), [[0.299 * 255, 0.587 * 255]])


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_unreadable_files_name_the_file(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(InputError, match="bad.png"):
        images.read_pixels(path)


def test_truncated_png_fails_at_read_time(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError, match="cut.png"):
        images.read_pixels(path)


def test_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (100, 100)).save(path)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 99 * 100)
    with pytest.raises(InputError, match="over the limit"):
        images.read_pixels(path)


def test_missing_file_and_float_ranges(tmp_path):
    with pytest.raises(InputError, match="nope.png: image file not found"):
        images.read_pixels(tmp_path / "nope.png")
    with pytest.raises(InputError, match="non-finite"):
        images.to_unit(np.array([[0.5, np.inf]], np.float32), "f.tif")
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        images.to_unit(np.array([[0.5, 3.0]], np.float32), "f.tif")
    with pytest.raises(InputError, match="at least 8 px"):
        images.check_min_size(np.zeros((1, 1)), 8, "tiny.png")
    with pytest.raises(InputError, match="shape"):
        images.to_rgb(np.zeros((2, 2, 5), np.uint8), "x")
