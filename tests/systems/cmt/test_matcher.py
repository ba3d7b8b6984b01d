"""Matching costs and Hungarian matcher of cmt (arXiv 2301.01283, spec component 12)."""

import math
from itertools import permutations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.cmt.box_coder import normalize_bbox
from tenfold.systems.cmt.loss import HungarianMatcher, focal_cost, hungarian_match, l1_box_cost


def brute_force_match(cost: np.ndarray) -> float:
    """Minimum total cost over all injective maps GT -> query (Q >= G), by enumeration."""
    q, g = cost.shape
    return min(float(sum(cost[p[j], j] for j in range(g))) for p in permutations(range(q), g))


def test_focal_cost_at_half() -> None:
    # Spec 7: p = 0.5: 0.25 * 0.25 * ln 2 - 0.75 * 0.25 * ln 2 = -0.0866, x 2.0 -> -0.1733.
    c = focal_cost(torch.zeros(1, 3, dtype=torch.float64), torch.tensor([1]))
    assert c.item() == pytest.approx(2.0 * (0.0625 - 0.1875) * math.log(2), abs=1e-12)
    # A confident right class costs less than a confident wrong one.
    logits = torch.tensor([[4.0, -4.0]], dtype=torch.float64)
    both = focal_cost(logits, torch.tensor([0, 1]))
    assert both[0, 0] < 0 < both[0, 1]


def test_hungarian_beats_greedy_on_hand_3x3() -> None:
    # Row-greedy takes (0,0)=1 then 9 then 1 = 11; the optimum is (0,1)=2, (1,0)=1, (2,2)=1 = 4.
    cost = torch.tensor([[1.0, 2.0, 9.0], [1.0, 9.0, 9.0], [9.0, 9.0, 1.0]])
    rows, cols = hungarian_match(cost)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]
    assert cost[rows, cols].sum().item() == 4.0


def test_matcher_cost_matrix_by_hand() -> None:
    # GT cars (label 0) at x = 0, 10, 20 (unit cubes, yaw 0, v 0); predictions equal except x = 9, 21, 1 and a
    # wild velocity (excluded from the cost). Logits 0 -> class cost -0.1733 everywhere.
    # Box cost = 0.25 * w_x * |dx| = 0.5 |dx|: rows (9, 21, 1) vs cols (0, 10, 20).
    gt = torch.tensor([[x, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0] for x in (0.0, 10.0, 20.0)], dtype=torch.float64)
    pred = normalize_bbox(torch.tensor([[x, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 30.0, -30.0] for x in (9.0, 21.0, 1.0)],
                                       dtype=torch.float64))
    logits = torch.zeros(3, 2, dtype=torch.float64)
    labels = torch.zeros(3, dtype=torch.long)
    m = HungarianMatcher()
    cls = 2.0 * (0.0625 - 0.1875) * math.log(2)
    expected = 0.5 * torch.tensor([[9.0, 1.0, 11.0], [21.0, 11.0, 1.0], [1.0, 9.0, 19.0]], dtype=torch.float64) + cls
    assert_close(m.cost(logits, pred, gt, labels), expected)
    rows, cols = m(logits, pred, gt, labels)
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 1, 1: 2, 2: 0}


def test_l1_cost_weights_and_velocity_excluded() -> None:
    # Only y differs by 1 (w_y = 2) and log dz by 1 (w = 1): 0.25 * (2 + 1) = 0.75; velocity differs by 100.
    a = torch.zeros(1, 10)
    b = torch.zeros(1, 10)
    b[0, 1], b[0, 5], b[0, 8] = 1.0, 1.0, 100.0
    assert l1_box_cost(a, b).item() == pytest.approx(0.75)


@pytest.mark.parametrize("seed", range(6))
def test_matcher_equals_brute_force(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    q = int(torch.randint(1, 7, (1,), generator=g))
    n = int(torch.randint(1, q + 1, (1,), generator=g))
    cost = torch.rand(q, n, generator=g, dtype=torch.float64)
    rows, cols = hungarian_match(cost)
    assert len(set(rows.tolist())) == n and sorted(cols.tolist()) == list(range(n))
    assert cost[rows, cols].sum().item() == pytest.approx(brute_force_match(cost.numpy()))


def test_no_gt_gives_empty_match() -> None:
    rows, cols = HungarianMatcher()(torch.zeros(4, 2), torch.zeros(4, 10), torch.zeros(0, 9),
                                    torch.zeros(0, dtype=torch.long))
    assert rows.numel() == 0 and cols.numel() == 0


LN2 = math.log(2)


def test_sigmoid_focal_loss_at_half() -> None:
    from tenfold.systems.cmt.loss import sigmoid_focal_loss
    # p = 0.5: positive 0.25 * 0.5^2 * ln 2 = 0.0625 ln 2; negative 0.75 * 0.25 * ln 2 = 0.1875 ln 2.
    out = sigmoid_focal_loss(torch.zeros(2, dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert_close(out, torch.tensor([0.0625 * LN2, 0.1875 * LN2], dtype=torch.float64))


def two_gt() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    # Codes (+-1, 2, 0, 0, 0.5, 0, 0, 1, 0.5, 0): weighted |code| = 2*1 + 2*2 + 0.5 + 1 + 0.2*0.5 = 7.6 each.
    gt = torch.tensor([[1.0, 2.0, 0.5, 1.0, 1.0, 1.0, 0.0, 0.5, 0.0],
                       [-1.0, 2.0, 0.5, 1.0, 1.0, 1.0, 0.0, 0.5, 0.0]], dtype=torch.float64)
    return [gt], [torch.tensor([0, 2])]


def test_set_criterion_hand_values() -> None:
    from tenfold.systems.cmt.loss import SetCriterion
    # B = 1, Q = 30, C = 3, logits 0, codes 0, 2 GT. Focal sum = 2 * 0.0625 ln 2 + 88 * 0.1875 ln 2;
    # normaliser N_pos + 0.1 N_neg = 2 + 0.1 * 28 = 4.8. L1 = (7.6 + 7.6) / N_pos = 7.6.
    crit = SetCriterion(num_classes=3)
    gts, labels = two_gt()
    terms = crit.layer_losses(torch.zeros(1, 30, 3, dtype=torch.float64), torch.zeros(1, 30, 10, dtype=torch.float64),
                              gts, labels)
    assert terms["loss_cls"].item() == pytest.approx((2 * 0.0625 + 88 * 0.1875) * LN2 / 4.8)
    assert terms["loss_bbox"].item() == pytest.approx(7.6)
    # Two identical decoder layers: each term doubles; total = 2.0 * cls + 0.25 * bbox.
    out = crit(torch.zeros(2, 1, 30, 3, dtype=torch.float64), torch.zeros(2, 1, 30, 10, dtype=torch.float64),
               gts, labels)
    assert out["loss_bbox"].item() == pytest.approx(15.2)
    assert out["loss"].item() == pytest.approx(2.0 * out["loss_cls"].item() + 0.25 * 15.2)


def test_classification_normaliser_official_sizes() -> None:
    from tenfold.systems.cmt.loss import SetCriterion
    # Spec 7: 900 queries, 20 GT -> N_pos + 0.1 N_neg = 20 + 0.1 * 880 = 108 (logits 0, 10 classes).
    gt = torch.tensor([[2.0 * i - 19, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0] for i in range(20)], dtype=torch.float64)
    terms = SetCriterion(num_classes=10).layer_losses(torch.zeros(1, 900, 10, dtype=torch.float64),
                                                       torch.zeros(1, 900, 10, dtype=torch.float64),
                                                       [gt], [torch.zeros(20, dtype=torch.long)])
    assert terms["loss_cls"].item() == pytest.approx((20 * 0.0625 + 8980 * 0.1875) * LN2 / 108)


def test_set_criterion_gt_permutation_invariant_and_differentiable() -> None:
    from tenfold.systems.cmt.loss import SetCriterion
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 8, 3, generator=g, dtype=torch.float64, requires_grad=True)
    code = torch.randn(1, 8, 10, generator=g, dtype=torch.float64, requires_grad=True)
    gt = torch.cat([torch.randn(4, 3, generator=g, dtype=torch.float64), torch.rand(4, 3, generator=g,
                    dtype=torch.float64) + 0.5, torch.randn(4, 3, generator=g, dtype=torch.float64)], dim=1)
    labels = torch.tensor([0, 1, 2, 1])
    crit = SetCriterion(num_classes=3)
    a = crit(logits[None], code[None], [gt], [labels])
    perm = torch.tensor([2, 0, 3, 1])
    b = crit(logits[None], code[None], [gt[perm]], [labels[perm]])
    assert_close(a["loss"], b["loss"])
    a["loss"].backward()
    assert logits.grad.abs().sum() > 0 and code.grad[0, :, 8:].abs().sum() > 0  # velocity slots get L1 gradient
