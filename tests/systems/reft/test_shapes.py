"""ShapesFSIS, the procedural generator of reft (Reference Twice, arXiv 2301.01156, spec 4.1)."""

import math
from collections import Counter

import numpy as np
import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.systems.reft import shapes as S


@pytest.fixture(scope="module")
def tiny_pool():
    return S.generate_split(S.PRESETS["tiny"], "fewshot_pool", 0, num_images=32)


def test_novel_selection_is_latin_style():
    # spec: 10 shapes x 8 textures, 20 novel: every shape in exactly 2 novel classes, every texture in 2 or 3
    p = S.PRESETS["cpu"]
    novel = S.novel_classes(p, 0)
    assert len(set(novel)) == 20 and all(1 <= c <= 80 for c in novel)
    shapes = Counter(p.class_of(c)[0] for c in novel)
    textures = Counter(p.class_of(c)[1] for c in novel)
    assert set(shapes.values()) == {2} and len(shapes) == 10
    assert set(textures.values()) <= {2, 3} and len(textures) == 8 and sum(textures.values()) == 20
    assert S.novel_classes(p, 0) == novel  # seeded
    assert S.novel_classes(p, 1) != novel
    # tiny: 4 x 4, 4 novel -> a permutation matrix: each shape and each texture exactly once
    t = S.PRESETS["tiny"]
    tiny = S.novel_classes(t, 3)
    assert sorted(Counter(t.class_of(c)[0] for c in tiny).values()) == [1, 1, 1, 1]
    assert sorted(Counter(t.class_of(c)[1] for c in tiny).values()) == [1, 1, 1, 1]


def test_category_split_names_and_ids():
    split = S.category_split(S.PRESETS["tiny"], 0)
    assert len(split.base_ids) == 12 and len(split.novel_ids) == 4 and split.all_ids == tuple(range(1, 17))
    # id = 1 + shape index * 4 + texture index: id 6 = (triangle, stripes)
    assert split.names[6] == "triangle_stripes" and split.names[1] == "disk_solid"


@pytest.mark.parametrize("name, u, v, inside", [
    ("disk", 0.99, 0.0, True), ("disk", 0.72, 0.72, False),  # radius 1.018
    ("ellipse", 0.0, 0.54, True), ("ellipse", 0.0, 0.56, False),  # semi-axis 0.55
    ("ring", 0.3, 0.0, False), ("ring", 0.75, 0.0, True),  # inner radius 0.5
    ("triangle", 0.99, 0.0, True), ("triangle", -0.49, 0.0, True), ("triangle", -0.51, 0.0, False),  # edge at -cos 60
    ("hexagon", 0.86 * math.cos(math.pi / 6), 0.86 * math.sin(math.pi / 6), True),  # apothem cos 30 = 0.866
    ("hexagon", 0.87 * math.cos(math.pi / 6), 0.87 * math.sin(math.pi / 6), False),
    ("star", 0.44 * math.cos(math.pi / 5), 0.44 * math.sin(math.pi / 5), True),  # inner vertex radius 0.45
    ("star", 0.46 * math.cos(math.pi / 5), 0.46 * math.sin(math.pi / 5), False),
    ("plus", 0.9, 0.1, True), ("plus", 0.5, 0.5, False),  # arms of half width 0.3
    ("crescent", 0.9, 0.0, False), ("crescent", -0.9, 0.0, True),  # bite: radius 0.8 about (0.45, 0)
    ("rounded_square", 0.7, 0.0, True), ("rounded_square", 0.74, 0.74, False),  # corner radius 0.25 about 0.5
])
def test_shape_points(name, u, v, inside):
    assert bool(S.shape_mask(name, np.array([u]), np.array([v]))[0]) is inside


@pytest.mark.parametrize("name, area", [
    ("triangle", 3 / 2 * math.sin(2 * math.pi / 3)),  # regular n-gon, circumradius 1: n/2 sin(2 pi / n)
    ("pentagon", 5 / 2 * math.sin(2 * math.pi / 5)),
    ("hexagon", 6 / 2 * math.sin(2 * math.pi / 6)),
    ("star", 5 * 0.45 * math.sin(math.pi / 5)),  # 10 triangles O, A, B of area 0.5 * 1 * 0.45 * sin(pi / 5)
    ("disk", math.pi), ("ring", math.pi * (1 - 0.25)),
])
def test_shape_areas_against_a_grid(name, area):
    # slow obviously-correct reference: count points of a 2001 x 2001 grid over [-1, 1]^2
    g = np.linspace(-1, 1, 2001)
    u, v = np.meshgrid(g, g)
    estimate = S.shape_mask(name, u, v).mean() * 4.0
    assert abs(estimate - area) < 0.01 * area


@pytest.mark.parametrize("name, x, y, expected", [
    ("solid", 3.0, 3.0, False),
    ("stripes", 1.0, 0.0, True), ("stripes", 5.0, 0.0, False),  # period 8: (x / 8) mod 1 < 0.5
    ("checkerboard", 1.0, 1.0, False), ("checkerboard", 5.0, 1.0, True),  # cells of 4 px
    ("dots", 4.0, 4.0, True), ("dots", 0.0, 0.0, False),  # dot centres at (4, 4) + 8 Z^2, radius 2.4
    ("rings", 2.0, 0.0, True), ("rings", 0.0, 6.0, False),  # (r / 8) mod 1 < 0.5
    ("grid", 1.0, 5.0, True), ("grid", 5.0, 5.0, False),  # lines of width 2
    ("waves", 0.0, 1.0, True), ("waves", 0.0, 5.0, False),  # at x = 0 the sine is 0: plain stripes in y
])
def test_texture_points(name, x, y, expected):
    assert bool(S.texture(name, np.array([x]), np.array([y]), 8.0)[0]) is expected


def test_visible_area_rule():
    H = W = 20
    below = np.zeros((H, W), bool)
    below[:10, :10] = True  # 100 px
    layer = S._Layer(below, below.copy(), np.zeros((H, W, 3)), 1, True)
    cover = np.zeros((H, W), bool)
    cover[:6, :10] = True  # hides 60 px: 40 left = 40 % of 100 -> allowed
    cover[10:, 10:] = True
    assert S._place([layer], cover) and layer.visible.sum() == 40
    layer2 = S._Layer(below, below.copy(), np.zeros((H, W, 3)), 1, True)
    cover[6, 0] = True  # hides 61 px: 39 % -> refused, and nothing changes
    assert not S._place([layer2], cover) and layer2.visible.sum() == 100
    small = np.zeros((H, W), bool)
    small[:5, :8] = True  # 40 px; hiding 21 leaves 19 < 20 px although 47 % is visible
    layer3 = S._Layer(small, small.copy(), np.zeros((H, W, 3)), 1, True)
    hide = np.zeros((H, W), bool)
    hide[:2, :8] = True
    hide[2, :5] = True
    assert not S._place([layer3], hide)
    unlabelled = S._Layer(below, below.copy(), np.zeros((H, W, 3)), 0, False)
    assert S._place([unlabelled], np.ones((H, W), bool))  # a distractor may be hidden entirely


def test_samples_shapes_and_ranges(tiny_pool):
    for s in tiny_pool:
        assert s.image.shape == (3, 64, 64) and s.image.dtype == torch.float32
        assert 0 <= s.image.min() and s.image.max() <= 1
        n = len(s.category_ids)
        assert s.masks.shape == (n, 64, 64) and s.masks.dtype == torch.bool and n <= 3
        assert s.category_ids.dtype == torch.long
        assert (s.masks.flatten(1).sum(1) >= 20).all()  # visible-area rule
        assert not (s.masks.sum(0) > 1).any()  # visible masks never overlap
    assert len({s.image_id for s in tiny_pool}) == len(tiny_pool)


def test_base_train_annotates_base_only_and_pool_has_novel(tiny_pool):
    p = S.PRESETS["tiny"]
    split = S.category_split(p, 0)
    base = S.generate_split(p, "base_train", 0, num_images=24)
    assert set(torch.cat([s.category_ids for s in base]).tolist()) <= set(split.base_ids)
    assert set(torch.cat([s.category_ids for s in tiny_pool]).tolist()) & set(split.novel_ids)
    leak = S.generate_split(S.with_preset("tiny", novel_leak=1.0), "base_train", 0, num_images=8)
    assert all(len(s.category_ids) == 0 for s in leak)  # every instance novel: drawn, never annotated


def test_deterministic_and_prefix_stable(tiny_pool):
    again = S.generate_split(S.PRESETS["tiny"], "fewshot_pool", 0, num_images=4)
    for a, b in zip(tiny_pool[:4], again):
        assert a.image_id == b.image_id and a.file_name == b.file_name
        assert torch.equal(a.image, b.image) and torch.equal(a.masks, b.masks)
    other = S.generate_split(S.PRESETS["tiny"], "fewshot_pool", 1, num_images=1)
    assert not torch.equal(other[0].image, tiny_pool[0].image)
    test = S.generate_split(S.PRESETS["tiny"], "test", 0, num_images=4)
    assert not {s.image_id for s in test} & {s.image_id for s in tiny_pool}  # ids unique across splits


def test_distractor_is_never_annotated():
    p = S.PRESETS["tiny"]
    rng = np.random.default_rng(5)
    img, masks, cats = S.render_image(rng, p, labelled=[], unlabelled=[0])
    assert masks.shape == (0, 64, 64) and cats.shape == (0,)
    img2, masks2, cats2 = S.render_image(np.random.default_rng(6), p, labelled=[3], unlabelled=[0])
    assert cats2.tolist() == [3] and masks2.shape == (1, 64, 64)


def test_colour_carries_no_class_information():
    # a nearest-centroid classifier on an instance's mean colour, fitted on one half, stays near chance (1/16)
    # on the other; the generator draws colours independently of the class, so only sampling noise remains
    samples = S.generate_split(S.PRESETS["tiny"], "test", 11, num_images=240)
    feats, labels = [], []
    for s in samples:
        for m, c in zip(s.masks, s.category_ids):
            feats.append(s.image[:, m].mean(1).numpy())
            labels.append(int(c))
    feats, labels = np.array(feats), np.array(labels)
    half = len(labels) // 2
    classes = np.unique(labels[:half])
    centres = np.stack([feats[:half][labels[:half] == c].mean(0) for c in classes])
    pred = classes[np.argmin(((feats[half:, None] - centres[None]) ** 2).sum(-1), axis=1)]
    assert (pred == labels[half:]).mean() < 0.15  # chance 0.0625; a colour-coded class would give ~1


def test_preset_validation():
    with pytest.raises(InputError, match="num_novel"):
        S.with_preset("tiny", num_novel=3)  # not a multiple of 4 shapes
    with pytest.raises(InputError, match="shapes"):
        S.with_preset("tiny", shapes=("disk", "blob"))
    with pytest.raises(InputError, match="preset"):
        S.with_preset("huge")
