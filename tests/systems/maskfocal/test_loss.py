"""Losses of maskfocal (arXiv 2212.11542, spec 2.3-2.5 and 7): hand values, torchvision parity, and the
unifying property (MFL reduces exactly to both baselines)."""

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close
from torchvision.ops import sigmoid_focal_loss

from tenfold.systems.maskfocal.heatmap import draw_heatmap
from tenfold.systems.maskfocal.loss import MaskFocalLoss, binary_focal_loss, centernet_focal_loss

TOL = dict(rtol=1e-6, atol=1e-7)


def logit(p: float) -> torch.Tensor:
    return torch.tensor([math.log(p / (1 - p))], dtype=torch.float64)


def test_binary_focal_hand_values():
    # t = 1, p = 0.9: 0.25 * 0.1^2 * (-ln 0.9) = 2.634e-4 (N_pos = 1).
    assert_close(binary_focal_loss(logit(0.9), torch.ones(1, dtype=torch.float64)),
                 torch.tensor(0.25 * 0.01 * -math.log(0.9), dtype=torch.float64))
    assert 0.25 * 0.01 * -math.log(0.9) == pytest.approx(2.634e-4, rel=1e-3)
    # t = 0, p = 0.2: 0.75 * 0.2^2 * (-ln 0.8) = 6.694e-3 (N_pos = 0 -> divided by 1).
    assert_close(binary_focal_loss(logit(0.2), torch.zeros(1, dtype=torch.float64)),
                 torch.tensor(0.75 * 0.04 * -math.log(0.8), dtype=torch.float64))
    assert 0.75 * 0.04 * -math.log(0.8) == pytest.approx(6.694e-3, rel=1e-3)


def test_binary_focal_matches_torchvision(gen):
    z = torch.randn(2, 1, 9, 11, generator=gen) * 3
    t = (torch.rand(2, 1, 9, 11, generator=gen) < 0.2).float()
    ref = sigmoid_focal_loss(z, t, alpha=0.25, gamma=2, reduction="sum") / t.sum()
    assert_close(binary_focal_loss(z, t), ref, **TOL)


def test_centernet_hand_values():
    # negative, Y = 0.5, p = 0.2: 0.5^4 * 0.2^2 * (-ln 0.8) = 5.579e-4 (no heads -> N = 1).
    neg = centernet_focal_loss(logit(0.2), torch.tensor([0.5], dtype=torch.float64))
    assert_close(neg, torch.tensor(0.0625 * 0.04 * -math.log(0.8), dtype=torch.float64))
    assert float(neg) == pytest.approx(5.579e-4, rel=1e-3)
    # positive, p = 0.9: 0.1^2 * (-ln 0.9) = 1.0536e-3.
    pos = centernet_focal_loss(logit(0.9), torch.tensor([1.0], dtype=torch.float64))
    assert float(pos) == pytest.approx(1.0536e-3, rel=1e-4)


def test_mfl_positive_hand_value():
    # inside the mask, Y = 0.5, delta = 1, p = 0.9, norm = heads (N = 1): 0.5 * 1.0536e-3 = 5.268e-4.
    mfl = MaskFocalLoss(norm="heads")
    out = mfl(logit(0.9), torch.tensor([0.5], dtype=torch.float64), torch.ones(1, dtype=torch.float64), num_heads=1)
    assert float(out) == pytest.approx(0.5 * 0.01 * -math.log(0.9), rel=1e-9)
    assert float(out) == pytest.approx(5.268e-4, rel=1e-3)
    # norm = mask_weight over 4 such cells: N = sum M Y = 2 -> 4 * 5.268e-4 / 2 = 1.0536e-3.
    out = MaskFocalLoss()(logit(0.9).repeat(4), torch.full((4,), 0.5, dtype=torch.float64),
                          torch.ones(4, dtype=torch.float64))
    assert float(out) == pytest.approx(0.01 * -math.log(0.9), rel=1e-9)


def _random_heatmap(seed: int) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.uniform(4, 60, (12, 2))
    s = rng.uniform(3, 14, (12, 1))
    boxes = np.concatenate([c - s / 2, c + s / 2], 1)
    t = draw_heatmap(boxes, (16, 16), 4)
    return torch.tensor(t.heatmap, dtype=torch.float64)[None, None], t  # (1, 1, 16, 16)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mfl_with_peak_mask_equals_centernet(seed, gen):
    Y, _ = _random_heatmap(seed)
    z = torch.randn(Y.shape, generator=gen, dtype=torch.float64) * 3
    heads = float((Y == 1).sum())
    mfl = MaskFocalLoss(norm="heads")(z, Y, (Y == 1).double(), num_heads=heads)
    assert_close(mfl, centernet_focal_loss(z, Y), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mfl_with_binary_box_gt_equals_unbalanced_binary_focal(seed, gen):
    _, t = _random_heatmap(seed)
    box = torch.tensor(t.box_map, dtype=torch.float64)[None, None]  # Y = M = 1 inside boxes, 0 outside
    z = torch.randn(box.shape, generator=gen, dtype=torch.float64) * 3
    mfl = MaskFocalLoss(mask_mode="box")(z, box, box)
    ref = sigmoid_focal_loss(z, box, alpha=-1, gamma=2, reduction="sum") / box.sum()
    assert_close(mfl, ref, rtol=1e-6, atol=1e-6)
    assert_close(binary_focal_loss(z, box, alpha=-1), ref, rtol=1e-6, atol=1e-6)


def test_gradient_at_a_peak_is_identical_across_losses():
    # One head, mask = {peak}: all three losses see (1 - p)^2 log p at the peak with N = 1, and alpha off.
    Y = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    Y[0, 0, 2, 2] = 1.0
    z = torch.full((1, 1, 5, 5), -1.0, dtype=torch.float64)
    z[0, 0, 2, 2] = 0.3
    grads = []
    for fn in (lambda x: centernet_focal_loss(x, Y),
               lambda x: MaskFocalLoss(norm="heads")(x, Y, (Y == 1).double(), num_heads=1),
               lambda x: binary_focal_loss(x, (Y == 1).double(), alpha=-1)):
        x = z.clone().requires_grad_(True)
        fn(x).backward()
        grads.append(x.grad[0, 0, 2, 2])
    assert_close(grads[0], grads[1])
    assert_close(grads[0], grads[2])


@pytest.mark.parametrize("variant", ["weighted", "unweighted", "soft"])
def test_finite_with_zero_heads_and_extreme_logits(variant):
    Y = torch.zeros(1, 1, 4, 4)
    z = torch.tensor([-30.0, 30.0]).repeat(8).reshape(1, 1, 4, 4)
    out = MaskFocalLoss(variant=variant)(z, Y, torch.zeros_like(Y))
    # zero heads: only the negative sum, N clamped to 1: 8 cells at p = 1 - e^-30: p^2 * 30 each ~ 240.
    assert torch.isfinite(out) and float(out) == pytest.approx(8 * 30.0, rel=1e-6)
    Y[0, 0, 1, 1] = 1.0
    for loss in (MaskFocalLoss(variant=variant)(z, Y, (Y == 1).float()), centernet_focal_loss(z, Y),
                 binary_focal_loss(z, (Y == 1).float())):
        assert torch.isfinite(loss)


def test_unweighted_and_soft_variants_hand_values():
    Y, M = torch.tensor([0.5], dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    # unweighted: -(1 - 0.9)^2 ln 0.9 / sum M (= 1) = 1.0536e-3.
    assert float(MaskFocalLoss(variant="unweighted")(logit(0.9), Y, M)) == pytest.approx(0.01 * -math.log(0.9))
    # soft: -|0.5 - 0.9|^2 [0.5 ln 0.9 + 0.5 ln 0.1] / max(sum M Y = 0.5, 1) = 0.16 * 1.20397 = 0.19264.
    expected = 0.16 * -(0.5 * math.log(0.9) + 0.5 * math.log(0.1)) / 1.0
    assert float(MaskFocalLoss(variant="soft")(logit(0.9), Y, M)) == pytest.approx(expected, rel=1e-9)


def test_background_ring_is_down_weighted():
    # Outside the mask, a cell with Y = 0.5 costs (1 - 0.5)^4 = 1/16 of a cell with Y = 0 at the same p.
    mfl = MaskFocalLoss(norm="heads")
    zero = torch.zeros(1, dtype=torch.float64)
    ring = mfl(logit(0.3), torch.tensor([0.5], dtype=torch.float64), zero, num_heads=1)
    far = mfl(logit(0.3), zero, zero, num_heads=1)
    assert_close(ring, far / 16)


def test_invalid_options_raise():
    with pytest.raises(ValueError):
        MaskFocalLoss(variant="x")
    with pytest.raises(ValueError):
        MaskFocalLoss(norm="x")


def test_native_norm_and_explicit_normaliser():
    Y, M = torch.tensor([0.5], dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    one = 0.5 * 0.01 * -math.log(0.9)  # spec 7: MFL positive, Y = 0.5, p = 0.9 -> 5.268e-4 with N = 1
    # norm="native": N is what the criterion passes (here 4 positive locations) -> 5.268e-4 / 4.
    assert float(MaskFocalLoss(norm="native")(logit(0.9), Y, M, num_heads=4)) == pytest.approx(one / 4, rel=1e-12)
    # An explicit normaliser (the DDP-global N) wins over the local sum M Y = 0.5 -> max(.,1) = 1: 5.268e-4 / 2.
    assert float(MaskFocalLoss()(logit(0.9), Y, M, normaliser=2.0)) == pytest.approx(one / 2, rel=1e-12)
    assert float(MaskFocalLoss()(logit(0.9), Y, M)) == pytest.approx(one, rel=1e-12)


def test_fcos_criterion_native_norm_divides_by_positive_locations():
    from types import SimpleNamespace

    from tenfold.systems.maskfocal.loss import fcos_criterion

    g = torch.Generator().manual_seed(0)
    L = 12
    labels = torch.zeros(1, L)
    labels[0, [2, 3, 4]] = 1.0  # 3 positive locations of 1 head
    heat = torch.rand(1, L, generator=g) * 0.9
    heat[0, 3] = 1.0
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0]]).expand(1, L, 4).clone()
    tgt = {"labels": labels, "heatmap": heat, "mask_box": labels.clone(), "boxes": boxes,
           "centerness": torch.full((1, L), 0.5), "num_pos": 3.0, "num_heads": 1.0}
    out = {"cls": torch.randn(1, L, generator=g), "ctr": torch.randn(1, L, generator=g), "boxes": boxes + 1.0}
    cfg = SimpleNamespace(alpha=0.25, gamma=2.0)
    native = fcos_criterion(out, tgt, cfg, MaskFocalLoss(norm="native"))["loss_cls"]
    heads = fcos_criterion(out, tgt, cfg, MaskFocalLoss(norm="heads"))["loss_cls"]
    assert_close(native * 3, heads * 1)  # the same sum, divided by N_pos = 3 instead of #heads = 1
    scaled = fcos_criterion(out, {**tgt, "loss_scale": 2.0}, cfg, None)
    plain = fcos_criterion(out, tgt, cfg, None)
    for k in plain:
        assert_close(scaled[k], 2 * plain[k])  # DDP: every term times the world size
