"""Hand-computed tests of the ssdg losses (spec section 7; arXiv 2111.10221)."""

import math

import pytest
import torch
import torch.nn.functional as F

from tenfold.systems.ssdg.generalization import peer_losses, split_by_flag
from tenfold.systems.ssdg.loss import (classifier_discrepancy, co_teaching_select, forget_rate_schedule,
                                       information_maximization_loss, input_mixup, mixup_cross_entropy)
from tenfold.systems.ssdg.train import cycle_lr


def test_discrepancy_2x3_both_normalisations():
    p1 = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    p2 = torch.tensor([[0.0, 1.0, 0.0], [0.2, 0.5, 0.3]])
    # |p1 - p2| = [[1, 1, 0], [0, 0.2, 0.2]]: row sums 2 and 0.4, total 2.4 over B x C = 6 entries.
    # released "mean": 2.4 / 6 = 0.4;  MCD "sum_classes": (2 + 0.4) / 2 = 1.2;  ratio 1/C = 1/3.
    torch.testing.assert_close(classifier_discrepancy(p1, p2, "mean"), torch.tensor(0.4))
    torch.testing.assert_close(classifier_discrepancy(p1, p2, "sum_classes"), torch.tensor(1.2))
    # spec 7: p1 = [1, 0], p2 = [0.5, 0.5] -> mean 0.5, sum_classes 1.0
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]])
    torch.testing.assert_close(classifier_discrepancy(a, b, "mean"), torch.tensor(0.5))
    torch.testing.assert_close(classifier_discrepancy(a, b, "sum_classes"), torch.tensor(1.0))
    with pytest.raises(ValueError):
        classifier_discrepancy(a, b, "max")


def test_discrepancy_sum_classes_matches_mcd_loop():
    g = torch.Generator().manual_seed(0)
    p1, p2 = torch.rand(5, 4, generator=g).softmax(1), torch.rand(5, 4, generator=g).softmax(1)
    loop = sum(sum(abs(float(p1[b, c] - p2[b, c])) for c in range(4)) for b in range(5)) / 5
    assert abs(float(classifier_discrepancy(p1, p2, "sum_classes")) - loop) < 1e-6


def test_information_maximisation_hand_values():
    # Q = {[1, 0], [0, 1]}: each H(p) = 0 (p log(p + eps) with p = 1 is -1e-5 ~ 0), marginal [0.5, 0.5]:
    # IM = 0 - ln 2 = -0.693147 up to O(eps).
    logits = torch.tensor([[50.0, -50.0], [-50.0, 50.0]])
    assert abs(float(information_maximization_loss(logits)) + math.log(2)) < 1e-4
    # uniform predictions: mean entropy = entropy of the mean -> IM = 0 for any C
    for c in (2, 5):
        torch.testing.assert_close(information_maximization_loss(torch.zeros(3, c)), torch.tensor(0.0))


def test_mixup_cross_entropy_limits():
    z, y = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), torch.tensor([0, 2])
    torch.testing.assert_close(mixup_cross_entropy(z, y, torch.tensor([2, 0]), 1.0), F.cross_entropy(z, y))
    torch.testing.assert_close(mixup_cross_entropy(z, y, y, 0.3), F.cross_entropy(z, y))
    # lam = 0.25 with a different partner: 0.25 CE(z, y) + 0.75 CE(z, y_perm)
    yp = torch.tensor([1, 1])
    torch.testing.assert_close(mixup_cross_entropy(z, y, yp, 0.25),
                               0.25 * F.cross_entropy(z, y) + 0.75 * F.cross_entropy(z, yp))


def test_input_mixup_is_a_convex_combination_of_the_batch():
    torch.manual_seed(0)
    x, y = torch.arange(4.0).reshape(4, 1), torch.arange(4)
    xm, ya, yb, lam = input_mixup(x, y, 1.0)
    torch.testing.assert_close(xm, lam * x + (1 - lam) * yb.float().reshape(4, 1))  # x[i] = i, so x[pi] = y[pi]
    assert torch.equal(ya, y) and sorted(yb.tolist()) == [0, 1, 2, 3]


def test_forget_rate_schedule():
    # linspace(0, 0.5, 10): tau_e = 0.5 e / 9
    assert forget_rate_schedule(0) == 0.0 and abs(forget_rate_schedule(9) - 0.5) < 1e-12
    assert abs(forget_rate_schedule(3) - 0.5 * 3 / 9) < 1e-12 and forget_rate_schedule(14) == 0.5
    vals = [forget_rate_schedule(e) for e in range(15)]
    assert vals == sorted(vals)
    assert forget_rate_schedule(0, 0.5, 1) == 0.0 and forget_rate_schedule(1, 0.5, 1) == 0.5  # smoke: 0 then 0.5


def test_co_teaching_select_small_loss():
    ce = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    # tau = 0.5 -> floor(0.5 * 10) = 5 kept: losses 0.0, 0.1, 0.2, 0.3, 0.4 at indices 9, 1, 5, 3, 7
    assert sorted(co_teaching_select(ce, 0.5).tolist()) == [1, 3, 5, 7, 9]
    assert sorted(co_teaching_select(ce, 0.0).tolist()) == list(range(10))
    assert len(co_teaching_select(ce, 0.25)) == 7  # floor(7.5)


def test_cross_update_uses_the_other_peers_losses():
    # Q = samples 1, 2 (flag False); the OTHER peer is confident on sample 2 only, peer j on sample 1 only.
    y = torch.tensor([0, 1, 1])
    lj = torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    lo = torch.tensor([[5.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    t_idx, q_idx = split_by_flag(torch.tensor([True, False, False]))
    terms = peer_losses(lj, lo, y, t_idx, q_idx, tau=0.5, weight_im=0.0)
    # keep floor(0.5 * 2) = 1 sample: the other peer's small-loss one = sample 2; peer j's CE there = CE([5, 0], 1)
    torch.testing.assert_close(terms["loss_ce_pseudo"], F.cross_entropy(lj[2:3], y[2:3]))
    torch.testing.assert_close(terms["loss_ce_labeled"], F.cross_entropy(lj[0:1], y[0:1]))


def test_lr_per_cycle():
    assert [round(cycle_lr(1e-3, r), 7) for r in range(3)] == [1e-3, 2.5e-4, 1.111e-4]
    assert cycle_lr(1e-3, 2, "none") == 1e-3
