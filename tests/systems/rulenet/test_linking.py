"""rulenet gradient linking: straight-through, grafting, simplex projection, search (spec 7, section 7)."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from tenfold.systems.rulenet.linking import (GradientLinkingSearch, graft, kl_link, line_search, project_simplex,
                                             simplex_target, straight_through)
from tenfold.systems.rulenet.loss import rule_loss
from tenfold.systems.rulenet.model import RuleNetwork
from tenfold.systems.rulenet.rules import parse_rules


def test_straight_through_forward_is_hard_backward_is_soft_jacobian():
    x = torch.tensor([0.3, -1.2], requires_grad=True)
    soft = torch.sigmoid(2 * x)
    hard = (x > 0).float()
    y = straight_through(hard, soft)
    assert torch.equal(y.detach(), hard)  # bit for bit
    (y * torch.tensor([1.0, 3.0])).sum().backward()
    s = torch.sigmoid(2 * x.detach())
    assert_close(x.grad, torch.tensor([1.0, 3.0]) * 2 * s * (1 - s))  # upstream x d soft / dx


def test_graft_forward_is_hard_gradient_goes_to_soft_only():
    soft = torch.tensor([0.2, 0.7], requires_grad=True)
    hard = torch.tensor([0.0, 1.0], requires_grad=True)
    y = graft(hard, soft)
    assert torch.equal(y.detach(), hard.detach())
    (y * torch.tensor([2.0, -5.0])).sum().backward()
    assert_close(soft.grad, torch.tensor([2.0, -5.0]))  # the upstream gradient, unchanged
    assert hard.grad is None  # the hard input gets none


def test_project_simplex_hand_computed_and_padding():
    # (0.5, 0.8, -1) -> subtract theta = 0.15 from the two largest: (0.35, 0.65, 0)
    v = torch.tensor([[0.5, 0.8, -1.0], [0.2, 0.2, 5.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    p = project_simplex(v, mask)
    assert_close(p, torch.tensor([[0.35, 0.65, 0.0], [0.5, 0.5, 0.0]]))


def test_simplex_target_two_observations_hand_computed():
    # spec 7: observations at 0 and 10 (1 channel), target k* = 2 -> pi* = (0.8, 0.2)
    obs = torch.tensor([[[0.0], [10.0]]])
    pi = simplex_target(obs, torch.ones(1, 2, dtype=torch.bool), torch.tensor([[2.0]]), torch.tensor([[0.5, 0.5]]),
                        steps=200)
    assert_close(pi, torch.tensor([[0.8, 0.2]]), atol=1e-5, rtol=0)


def test_kl_link_hand_computed():
    # KL((1, 0) || (0.5, 0.5)) = log 2; padded entries contribute nothing
    kl = kl_link(torch.tensor([[1.0, 0.0, 0.3]]), torch.tensor([[0.5, 0.5, 0.0]]), torch.tensor([[True, True, False]]))
    assert_close(kl, torch.tensor([0.6931471805599453]))


def test_line_search_smallest_correct_step():
    # correct when k > 0.3: from k = 0 with d = 1 the steps are 0.05, 0.1, 0.2, 0.4, ... -> eta* = 0.4
    eta, found = line_search(torch.tensor([[0.0], [0.0]]), torch.tensor([[1.0], [-1.0]]), lambda k: k[:, 0] > 0.3)
    assert_close(eta, torch.tensor([0.4, 3.2]))  # second item: never correct -> the largest, 0.05 * 2^6
    assert found.tolist() == [True, False]


def test_search_moves_pi_toward_the_inliers_on_a_toy_flip():
    # One item, rule "fail : x > 0", label ok. Inliers at -1 (three), one corrupt observation at +5:
    # uniform pi gives k = (-3 + 5) / 4 = 0.5 > 0 -> the rule fires wrongly.
    rs = parse_rules("default : ok\nfail : x > 0")
    net = RuleNetwork(rs, {"x": 0.0}, {"x": 1.0})
    obs = torch.tensor([[[-1.0], [-1.0], [-1.0], [5.0]]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    labels = torch.tensor([1])
    cat = torch.zeros(1, 1)
    logits = torch.zeros(1, 4, requires_grad=True)

    def soft_loss(k):
        _, P = net.combine(net.soft_atoms(k.double(), cat, tau=1.0), hard=False)
        return rule_loss(net.logits(P), labels, reduction="none")

    def correct(k):
        c, _ = net.combine(net.hard_atoms(k.double(), cat), hard=True)
        return net.hard_decision(c) == labels

    pi = torch.softmax(logits, -1)
    k = (pi[..., None] * obs).sum(1)
    assert not bool(correct(k.detach()))
    pi_star, found = GradientLinkingSearch().targets(k, soft_loss, correct, obs, mask, pi)
    assert bool(found)  # a flip within J = 6 doublings
    inlier = torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0.0]])
    before = kl_link(inlier, pi.detach(), mask)
    loss = kl_link(pi_star, pi, mask).sum()
    loss.backward()
    with torch.no_grad():
        after = kl_link(inlier, torch.softmax(logits - 1.0 * logits.grad, -1), mask)
    assert float(after) < float(before)


def test_link_loss_is_the_batch_mean_with_zero_for_items_without_a_target():
    # 3 wrong items of a batch of 8 with KL 0.2, 0.4, 0.6; the second has no target (found = False):
    # (0.2 + 0.6) / 8 = 0.1  (the mean over the two kept wrong items would be 0.4)
    from tenfold.systems.rulenet.loss import link_loss

    kl = torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64)
    out = link_loss(kl, torch.tensor([True, False, True]), batch_size=8)
    torch.testing.assert_close(out, torch.tensor(0.1, dtype=torch.float64))
    assert link_loss(kl[:0], torch.zeros(0, dtype=torch.bool), 8).item() == 0.0  # no wrong item: 0
