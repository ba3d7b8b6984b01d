"""Patch grid, context crops, logit-sum merge and TTA (spec components 1, 2, 11)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tenfold.systems.fctl.patching import (GLOBAL, context_crop, crops_for, merge_logits, patch_boxes, patch_grid,
                                           segment_large_image, segment_logits, tta_logits)


@pytest.mark.parametrize("length,patch,overlap,n,step,got_overlap", [
    (2448, 508, 50, 6, 388.0, 120.0),  # n=5 gives 508 - 1940/4 = 23 < 50; n=6: 1940/5 = 388
    (5000, 508, 50, 11, 449.2, 58.8),  # n=10: 508 - 4492/9 = 8.9 < 50; n=11: 4492/10 = 449.2
    (384, 96, 50 * 96 / 508, 5, 72.0, 24.0),  # n=4: overlap 0; n=5: 288/4 = 72
    (192, 48, 50 * 48 / 508, 5, 36.0, 12.0),  # n=4: overlap 0; n=5: 144/4 = 36
    (1536, 96, 50 * 96 / 508, 18, 1440 / 17, 96 - 1440 / 17),  # n=17: 96 - 90 = 6 < 9.45; n=18: 84.7
])
def test_patch_grid_hand_values(length, patch, overlap, n, step, got_overlap):
    g = patch_grid(length, patch, overlap)
    assert g.n == n
    assert g.step == pytest.approx(step)
    assert g.overlap == pytest.approx(got_overlap)
    assert g.starts[0] == 0 and g.starts[-1] == length - patch  # last patch flush with the border


def test_patch_grid_deepglobe_starts_and_cityscapes():
    # 2448: starts i * 388 for i < 5, last 2448 - 508 = 1940 = 5 * 388.
    assert patch_grid(2448, 508, 50).starts == (0, 388, 776, 1164, 1552, 1940)
    # Cityscapes 2048 x 1024: ceil(2048/508) = 5 (overlap 508 - 385 = 123), ceil(1024/508) = 3 (250).
    assert patch_grid(2048, 508, 50).n == 5 and patch_grid(1024, 508, 50).n == 3
    assert len(patch_boxes(1024, 2048, 508, 50)) == 15
    assert patch_grid(508, 508, 50).starts == (0,)


def _pad_reference(image, box, p, m):
    """Spec component 2 literally: zero-pad the whole image by (m - 1) p / 2, crop m p, resize to p."""
    pad = int((m - 1) * p / 2)
    padded = F.pad(image, (pad, pad, pad, pad))
    y, x = box
    win = padded[:, y:y + int(m * p), x:x + int(m * p)]
    return F.interpolate(win[None], size=(p, p), mode="bilinear", align_corners=False)[0]


def test_context_crop_matches_padding_reference(gen):
    image = torch.rand(3, 40, 40, generator=gen)
    for box in [(0, 0), (12, 20), (28, 28)]:
        for m in (2, 3):
            torch.testing.assert_close(context_crop(image, box, 12, m), _pad_reference(image, box, 12, m))


def test_context_crop_factor_one_corner_black_and_centre(gen):
    image = torch.rand(3, 30, 30, generator=gen) + 0.5  # strictly positive, so black = outside
    torch.testing.assert_close(context_crop(image, (6, 9), 10, 1), image[:, 6:16, 9:19])
    # Corner patch (0, 0), p = 10, x3: window rows/cols -10..19; the top-left third is outside -> 0.
    ctx = context_crop(image, (0, 0), 10, 3)
    assert ctx[:, :3, :3].abs().max() == 0
    assert ctx[:, 5:, 5:].min() > 0
    # Centre mapping: a bright dot at the patch centre (14.5, 14.5 between pixels 14 and 15) lands at the
    # centre of the context (4.5, 4.5) for a patch at (10, 10) of side 10.
    dot = torch.zeros(1, 30, 30)
    dot[:, 14:16, 14:16] = 1
    c = context_crop(dot, (10, 10), 10, 3)[0]
    idx = torch.nonzero(c == c.max())
    assert idx.float().mean(0).tolist() == [4.5, 4.5]


def test_global_context_is_whole_image_resized(gen):
    image = torch.rand(3, 24, 24, generator=gen)
    _, ctx = crops_for(image, [(0, 0), (12, 12)], 12, (GLOBAL,))
    ref = F.interpolate(image[None], size=(12, 12), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(ctx[0][1], ref)


def test_merge_sums_overlaps_and_matches_float64(gen):
    canvas = torch.zeros(2, 6, 8)
    merge_logits(canvas, torch.ones(2, 2, 4, 4), [(0, 0), (2, 4)])
    # Patch 1 covers rows 0-3, cols 0-3; patch 2 rows 2-5, cols 4-7: no shared pixel -> all covered = 1.
    assert canvas.sum() == 2 * 2 * 16
    canvas = torch.zeros(1, 4, 6)
    merge_logits(canvas, torch.ones(2, 1, 4, 4), [(0, 0), (0, 2)])
    # Cols 2-3 are covered twice: sum 2 (logit sum, not an average).
    torch.testing.assert_close(canvas[0, 0], torch.tensor([1.0, 1, 2, 2, 1, 1]))
    logits = torch.randn(9, 3, 8, 8, generator=gen) * 100
    boxes = patch_boxes(20, 20, 8, 2)
    ref = np.zeros((3, 20, 20))
    for (y, x), lg in zip(boxes, logits.double().numpy()):
        ref[:, y:y + 8, x:x + 8] += lg
    got = merge_logits(torch.zeros(3, 20, 20), logits, boxes)
    torch.testing.assert_close(got.double(), torch.from_numpy(ref), rtol=1e-5, atol=1e-3)


def test_single_patch_merge_is_identity(gen):
    logits = torch.randn(1, 3, 8, 8, generator=gen)
    torch.testing.assert_close(merge_logits(torch.zeros(3, 8, 8), logits, [(0, 0)]), logits[0])


def test_tiling_then_merging_reproduces_the_input(gen):
    image = torch.rand(3, 50, 37, generator=gen)

    def identity(local, contexts):
        return local

    summed = segment_logits(image, identity, 16, 3, (), 3, batch=5)
    count = segment_logits(torch.ones(3, 50, 37), identity, 16, 3, (), 3, batch=5)
    torch.testing.assert_close(summed / count, image)


def test_tta_equals_eight_passes_for_an_equivariant_model(gen):
    conv = torch.nn.Conv2d(3, 4, 1)  # 1x1 convs commute with rotations and flips

    def model(local, contexts):
        return conv(local + contexts[0])

    local, ctx = torch.rand(2, 3, 8, 8, generator=gen), torch.rand(2, 3, 8, 8, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(tta_logits(model, local, [ctx]), 8 * model(local, [ctx]))


def test_segment_large_image_any_size_uint8_and_streaming():
    calls = []

    def model(local, contexts):
        calls.append(local.shape[0])
        assert len(contexts) == 2 and contexts[0].shape == local.shape
        return torch.stack([local[:, 0], 1 - local[:, 0]], 1)  # class 0 where red > 0.5

    img = np.zeros((70, 45, 3), np.uint8)
    img[:35, :, 0] = 255
    labels = segment_large_image(img, model, patch=16, min_overlap=3, contexts=(1, 2, 3), batch=4)
    assert labels.shape == (70, 45)
    assert (labels[:35] == 0).all() and (labels[35:] == 1).all()
    assert calls[0] == 1  # the probe that finds the number of classes
    assert max(calls) <= 4  # streamed in batches of at most 4 patches
    assert sum(calls[1:]) == patch_grid(70, 16, 3).n * patch_grid(45, 16, 3).n
    assert math.isclose(patch_grid(70, 16, 3).n, 6)  # ceil(70/16)=5: 16 - 54/4 = 2.5 < 3 -> 6
