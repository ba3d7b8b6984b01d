"""Hungarian matching of reft's Mask2Former base model (spec component 1, section 7 "Parity"; arXiv 2301.01156)."""

import itertools
import math

import torch

from tenfold.systems.reft.matcher import (HungarianMatcher, batch_dice_cost, batch_sigmoid_ce_cost, point_sample,
                                          target_points)


def test_sigmoid_ce_cost_by_hand():
    # prediction logit ln 3 (p = 0.75) on two points; target (1, 0):
    # BCE = (-ln 0.75 - ln 0.25) / 2; against target (1, 1): -ln 0.75
    x = torch.full((1, 2), math.log(3.0))
    t = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    want = torch.tensor([[(-math.log(0.75) - math.log(0.25)) / 2, -math.log(0.75)]])
    torch.testing.assert_close(batch_sigmoid_ce_cost(x, t), want)


def test_dice_cost_by_hand():
    # p = 0.5 on 4 points, target (1, 1, 0, 0): 1 - (2 * 1 + 1) / (2 + 2 + 1) = 0.4 (spec section 7)
    x = torch.zeros(1, 4)
    t = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(batch_dice_cost(x, t), torch.tensor([[0.4]]))


def test_total_cost_by_hand():
    # 1 query, 2 classes + no-object, logits (0, 0, 0) -> p = 1/3 each; mask logits 0 on a 2 x 2 map;
    # target class 1 with mask (1, 1, 0, 0):
    # cost = 2 * (-1/3) + 5 * ln 2 (BCE of p = 0.5 is ln 2 for either target) + 5 * 0.4
    m = HungarianMatcher(2.0, 5.0, 5.0, num_points=0)
    cost = m.cost(torch.zeros(1, 3), torch.zeros(1, 2, 2), torch.tensor([1]),
                  torch.tensor([[[1.0, 1.0], [0.0, 0.0]]]))
    torch.testing.assert_close(cost, torch.tensor([[-2 / 3 + 5 * math.log(2) + 2.0]]))


def test_point_sample_reads_pixel_centres():
    # pixel (row 0, col 1) has its centre at (x, y) = (0.75, 0.25)
    masks = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    coords = torch.tensor([[[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75], [0.5, 0.25]]])
    torch.testing.assert_close(point_sample(masks, coords), torch.tensor([[0.0, 1.0, 2.0, 3.0, 0.5]]))


def test_target_points_full_grid_area_resizes_targets():
    pred = torch.zeros(1, 2, 2)
    tgt = torch.zeros(1, 4, 4)
    tgt[0, 0, 0] = 1  # one pixel of the top-left 2 x 2 cell -> 0.25
    p, t = target_points(pred, tgt, 0)
    torch.testing.assert_close(t, torch.tensor([[0.25, 0.0, 0.0, 0.0]]))
    assert p.shape == (1, 4)


def _brute_force(cost: torch.Tensor) -> float:
    n, m = cost.shape
    return min(sum(float(cost[r, c]) for c, r in enumerate(rows)) for rows in itertools.permutations(range(n), m))


def test_hungarian_equals_brute_force_over_permutations():
    g = torch.Generator().manual_seed(0)
    matcher = HungarianMatcher(num_points=0)
    for trial in range(5):
        n, m = 5, 1 + trial % 4
        outputs = {"pred_logits": torch.randn(1, n, 4, generator=g), "pred_masks": torch.randn(1, n, 4, 4, generator=g)}
        labels = torch.randint(0, 3, (m,), generator=g)
        masks = torch.rand(m, 8, 8, generator=g) > 0.5
        (rows, cols), = matcher(outputs, [{"labels": labels, "masks": masks}])
        cost = matcher.cost(outputs["pred_logits"][0], outputs["pred_masks"][0], labels, masks.float())
        assert len(rows) == m and len(set(rows.tolist())) == m and sorted(cols.tolist()) == list(range(m))
        assert abs(float(cost[rows, cols].sum()) - _brute_force(cost)) < 1e-5


def test_matcher_with_empty_targets_and_sampled_points():
    outputs = {"pred_logits": torch.randn(2, 3, 4), "pred_masks": torch.randn(2, 3, 4, 4)}
    targets = [{"labels": torch.zeros(0, dtype=torch.long), "masks": torch.zeros(0, 16, 16, dtype=torch.bool)},
               {"labels": torch.tensor([2]), "masks": torch.ones(1, 16, 16, dtype=torch.bool)}]
    out = HungarianMatcher(num_points=50)(outputs, targets, torch.Generator().manual_seed(0))
    assert len(out[0][0]) == 0 and len(out[1][0]) == 1
