"""SynthLandcover generator, DeepGlobe / Inria readers and the mask writer (spec section 4)."""

import numpy as np
import pytest
from PIL import Image

from tenfold.core.errors import InputError
from tenfold.systems.fctl import data as D


@pytest.fixture(scope="module")
def samples():
    return [D.make_synth_landcover(s, 192, 48) for s in range(6)]


def test_label_table_and_determinism(samples):
    s = samples[0]
    again = D.make_synth_landcover(0, 192, 48)
    np.testing.assert_array_equal(s.image, again.image)
    np.testing.assert_array_equal(s.label, again.label)
    assert s.image.dtype == np.float32 and s.label.dtype == np.uint8 and s.image.min() >= 0 and s.image.max() <= 1
    free = ~(s.road | s.cloud)
    expected = {(0, 0): 3, (0, 1): 6, (1, 0): 2, (1, 1): 1, (2, 0): 5, (2, 1): 5, (3, 0): 4, (3, 1): 4,
                (4, 0): 1, (4, 1): 1}  # spec 4.1 (texture, regime) -> DeepGlobe id
    for (tex, reg), lab in expected.items():
        m = free & (s.texture == tex) & (s.regime == reg)
        assert (s.label[m] == lab).all()
    assert (s.label[s.road & ~s.cloud] == 1).all() and (s.label[s.cloud] == 0).all()


def test_regimes_share_texture_statistics():
    # Pairs {3, 6} and {2, 1}: same texture, different regime -> same colour statistics (within noise).
    pix = {3: [], 6: [], 2: [], 1: []}
    for seed in range(12):
        s = D.make_synth_landcover(seed, 192, 48)
        free = ~(s.road | s.cloud)
        for lab, tex in ((3, 0), (6, 0), (2, 1), (1, 1)):
            pix[lab].append(s.image[free & (s.label == lab) & (s.texture == tex)])
    mean = {k: np.concatenate(v).mean(0) for k, v in pix.items()}
    np.testing.assert_allclose(mean[3], mean[6], atol=0.03)
    np.testing.assert_allclose(mean[2], mean[1], atol=0.03)


def _cells_per_patch_by_regime(samples, patch):
    """Mean number of distinct cells in the grid patches centred on an ambiguous (T0 / T1) cell, per regime."""
    from tenfold.systems.fctl.patching import patch_boxes

    counts = {0: [], 1: []}
    for s in samples:
        for y, x in patch_boxes(*s.cell.shape, patch, 50 * patch / 508):
            c = (y + patch // 2, x + patch // 2)
            if s.texture[c] in (0, 1) and not (s.road[c] or s.cloud[c]):
                counts[int(s.regime[c])].append(len(np.unique(s.cell[y:y + patch, x:x + patch])))
    return {k: float(np.mean(v)) for k, v in counts.items()}, {k: len(v) for k, v in counts.items()}


def test_local_patches_of_the_two_regimes_have_the_same_border_density():
    """Issue 17: a p-patch on an ambiguous texture must not read its regime from how many cells it cuts.

    Measured (40 samples, S = 192, p = 48): 2.30 (L) vs 2.38 (S) cells per patch; the spec-4.1 generator (small
    cells in districts) gave 2.04 vs 4.31, which this tolerance refuses.
    """
    mean, n = _cells_per_patch_by_regime([D.make_synth_landcover(s, 192, 48) for s in range(40)], 48)
    assert min(n.values()) >= 50, n  # both regimes are sampled
    assert abs(mean[0] - mean[1]) < 0.4, mean


def test_districts_hold_more_building_cells():
    """The regime cue left for the contexts: P(T4) of a cell is BUILDING_PROB[regime] (0.1 in L, 0.5 in S)."""
    rng = np.random.default_rng(0)
    regime = np.repeat(np.array([0, 1], np.uint8), 20000)
    tex = D._cell_textures(rng, regime)
    assert abs((tex[:20000] == 4).mean() - 0.1) < 0.01 and abs((tex[20000:] == 4).mean() - 0.5) < 0.015
    for r in (0, 1):  # the rest uniform over T0..T3
        rest = tex[regime == r][tex[regime == r] != 4]
        np.testing.assert_allclose(np.bincount(rest, minlength=4) / rest.size, 0.25, atol=0.015)


def test_roads_are_three_pixels_wide():
    road = np.zeros((20, 30), bool)
    D.draw_road(road, np.array([[10.0, 2.0], [10.0, 27.0]]))
    # |y - 10| <= 1.5 -> rows 9, 10, 11
    assert road.sum(0)[5:25].tolist() == [3] * 20
    assert np.nonzero(road[:, 15])[0].tolist() == [9, 10, 11]


def test_clouds_and_both_regimes_present(samples):
    assert any(s.cloud.any() for s in samples)
    assert all(s.regime.any() and (s.regime == 0).any() for s in samples[:3])


def test_oracle_and_inside_fraction(samples):
    preds = D.texture_oracle(samples)
    assert len(preds) == len(samples) and preds[0].shape == samples[0].label.shape
    # The oracle is right wherever the regime does not matter (textures 2, 3, 4, roads, clouds).
    s, p = samples[0], preds[0]
    easy = np.isin(s.texture, (2, 3, 4)) | s.road | s.cloud
    assert (p[easy] == s.label[easy]).all()
    frac = D.patches_inside_cell(samples, 48, 50 * 48 / 508)
    assert 0 <= frac < 1


def test_deepglobe_colour_round_trip():
    ids = np.arange(7, dtype=np.uint8).repeat(3).reshape(3, 7)
    colour = D.ids_to_colour(ids)
    noisy = colour.astype(np.int16) + np.where(colour > 127, -100, 100)  # still on the same side of 128
    np.testing.assert_array_equal(D.deepglobe_colour_to_ids(noisy.astype(np.uint8)), ids)
    with pytest.raises(InputError, match="red"):
        D.deepglobe_colour_to_ids(np.full((2, 2, 3), (255, 0, 0), np.uint8), "m.png")


def test_read_deepglobe_pair_and_errors(tmp_path):
    rgb = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    ids = np.random.default_rng(1).integers(0, 7, (16, 16)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "7_sat.jpg")
    Image.fromarray(D.ids_to_colour(ids)).save(tmp_path / "7_mask.png")
    img, lab = D.read_deepglobe_pair(tmp_path / "7_sat.jpg")
    assert img.shape == (16, 16, 3)
    np.testing.assert_array_equal(lab, ids)
    Image.fromarray(D.ids_to_colour(ids[:8])).save(tmp_path / "8_mask.png")
    Image.fromarray(rgb).save(tmp_path / "8_sat.jpg")
    with pytest.raises(InputError, match="8_mask.png.*does not match"):
        D.read_deepglobe_pair(tmp_path / "8_sat.jpg")
    (tmp_path / "9_sat.jpg").write_bytes(b"\xff\xd8 truncated")
    Image.fromarray(D.ids_to_colour(ids)).save(tmp_path / "9_mask.png")
    with pytest.raises(InputError, match="9_sat.jpg"):
        D.read_deepglobe_pair(tmp_path / "9_sat.jpg")
    with pytest.raises(InputError, match="no mask"):
        Image.fromarray(rgb).save(tmp_path / "10_sat.jpg")
        D.read_deepglobe_pair(tmp_path / "10_sat.jpg")


def test_inria_geotiff_pair_and_split_listing(tmp_path):
    import tifffile

    root = tmp_path / "inria"
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "gt").mkdir()
    rgb = (np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8)
    gt = (np.random.default_rng(1).random((12, 10)) > 0.5).astype(np.uint8) * 255
    tifffile.imwrite(root / "train" / "images" / "austin1.tif", rgb)
    tifffile.imwrite(root / "train" / "gt" / "austin1.tif", gt)
    files = D.list_split("inria", root, "train")
    img, lab = D.read_inria_pair(files[0])
    np.testing.assert_array_equal(img, rgb)
    np.testing.assert_array_equal(lab, gt // 255)
    tifffile.imwrite(root / "train" / "gt" / "austin1.tif", np.full((12, 10), 7, np.uint8))
    with pytest.raises(InputError, match="0/255"):
        D.read_inria_pair(files[0])
    with pytest.raises(InputError, match="no images"):
        D.list_split("inria", root, "val")


@pytest.mark.parametrize("suffix,expected", [(".tif", ".tif"), (".png", ".png"), (".jpg", ".png")])
def test_write_mask_same_format_and_size(tmp_path, suffix, expected):
    labels = np.random.default_rng(0).integers(0, 7, (9, 13)).astype(np.uint8)
    out = D.write_mask(tmp_path / f"pred{suffix}", labels, like=f"in{suffix}")
    assert out.suffix == expected
    np.testing.assert_array_equal(D.read_image(out), labels)
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left behind


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_segment_file_writes_mask_in_the_input_format_and_size(tmp_path, suffix):
    import tifffile
    import torch

    from tenfold.systems.fctl.evaluate import segment_file

    img = np.zeros((40, 27, 3), np.uint8)
    img[:, :13, 2] = 255  # blue left part -> class 1 under the toy model below
    path = tmp_path / f"tile{suffix}"
    tifffile.imwrite(path, img) if suffix == ".tif" else Image.fromarray(img).save(path)

    def model(local, contexts):  # logits: class 1 where blue > 0.5, class 0 elsewhere
        return torch.stack([0.5 - local[:, 2], local[:, 2] - 0.5], 1)

    out = segment_file(model, path, tmp_path / f"mask{suffix}", patch=16, min_overlap=3, factors=(2, 3), batch=3)
    mask = D.read_image(out)
    assert out.suffix == suffix and mask.shape == (40, 27)
    assert (mask[:, :13] == 1).all() and (mask[:, 13:] == 0).all()


def _sample(regime: int, texture: np.ndarray) -> D.SynthSample:
    z = np.zeros(texture.shape, bool)
    return D.SynthSample(np.zeros((*texture.shape, 3), np.float32), np.zeros(texture.shape, np.uint8),
                         np.full(texture.shape, regime, np.uint8), texture.astype(np.uint8),
                         np.zeros(texture.shape, np.int32), z, z)


def test_regime_cue_accuracy_by_hand():
    # A: district (regime 1), columns 0-3 texture T0 (ambiguous), columns 4-7 buildings (T4); B: regime 0, all T0.
    # 8 x 8 images, p = 4, overlap 0: boxes (0,0), (0,4), (4,0), (4,4); A's right patches hold no T0 pixel.
    tex = np.zeros((8, 8), int)
    tex[:, 4:] = 4
    a, b = _sample(1, tex), _sample(0, np.zeros((8, 8), int))
    # Local (x1): every ambiguous patch has building fraction 0 (bin 0): 32 district px of 96 -> rule and constant
    # both say regime 0: 64 / 96 right.
    assert D.regime_cue_accuracy([a, b], [a, b], 4, 0, 1) == pytest.approx((2 / 3, 2 / 3))
    # x3: A's left patches see a 12 x 12 window clipped to rows/cols 0..7 -> 32 T4 px / 144 = 0.22 (bin 2), B's
    # windows 0 (bin 0): the rule reads the regime from the context, 96 / 96 right; the constant stays at 2 / 3.
    assert D.regime_cue_accuracy([a, b], [a, b], 4, 0, 3) == pytest.approx((1.0, 2 / 3))
    # x2: 8 x 8 window from (-2, -2): T4 columns 4-5, rows 0-5 -> 12 / 64 = 0.19 (bin 1): also 96 / 96.
    assert D.regime_cue_accuracy([a, b], [a, b], 4, 0, 2) == pytest.approx((1.0, 2 / 3))
