"""doorping losses: gradient-match distance against hand values and a per-row loop (spec 7.6)."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from tenfold.systems.doorping.loss import distribution_match, gradient_match_distance, layer_distance, loss_dict


def test_identical_gradients_give_zero():
    g = [torch.tensor([[1.0, 2.0], [3.0, -1.0]])]
    # cos = 1 per row up to the 1e-6 epsilon: |g|^2 / (|g|^2 + 1e-6) -> 1 - that < 1e-5.
    assert_close(gradient_match_distance(g, g), torch.tensor(0.0), atol=1e-5, rtol=0)


def test_opposite_gradients_give_two_per_row():
    g = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    # each row: 1 - (-1) = 2; two rows -> 4.
    assert_close(gradient_match_distance([g], [-g]), torch.tensor(4.0), atol=1e-5, rtol=0)


def test_orthogonal_row():
    # rows (1, 0), (0, 1) vs (1, 0), (1, 0): (1 - 1) + (1 - 0) = 1.
    a, b = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert_close(gradient_match_distance([a], [b]), torch.tensor(1.0), atol=1e-5, rtol=0)


def test_bias_contributes_zero():
    assert_close(gradient_match_distance([torch.tensor([1.0, 2.0])], [torch.tensor([-5.0, 1.0])]), torch.tensor(0.0))


def test_conv_weights_are_rowwise_over_in_k_k(gen):
    gs, gr = torch.randn(4, 3, 3, 3, generator=gen), torch.randn(4, 3, 3, 3, generator=gen)
    # Slow reference: one row per output channel, flattened over (in, k, k).
    expected = sum(1 - torch.dot(gs[o].flatten(), gr[o].flatten()) / (gs[o].norm() * gr[o].norm() + 1e-6)
                   for o in range(4))
    assert_close(layer_distance(gs, gr), expected)


def test_batched_over_classes_matches_loop(gen):
    shapes = [(5, 2, 3, 3), (5,), (7, 20), (7,)]
    gs = [torch.randn(3, *s, generator=gen) for s in shapes]
    gr = [torch.randn(3, *s, generator=gen) for s in shapes]
    batched = gradient_match_distance(gs, gr, batch_dims=1)
    loop = torch.stack([gradient_match_distance([g[c] for g in gs], [g[c] for g in gr]) for c in range(3)])
    assert_close(batched, loop)


def test_mse_and_cos_metrics():
    a, b = [torch.tensor([[1.0, 0.0]]), torch.tensor([2.0])], [torch.tensor([[0.0, 1.0]]), torch.tensor([2.0])]
    # mse: (1-0)^2 + (0-1)^2 + 0 = 2; cos over (1, 0, 2) and (0, 1, 2): 1 - 4 / (sqrt5 sqrt5) = 0.2.
    assert_close(gradient_match_distance(a, b, "mse"), torch.tensor(2.0))
    assert_close(gradient_match_distance(a, b, "cos"), torch.tensor(0.2), atol=1e-5, rtol=0)


def test_distribution_match_hand_value():
    real = torch.tensor([[[0.0, 0.0], [2.0, 2.0]]])  # mean (1, 1)
    syn = torch.tensor([[[1.0, 3.0]]])  # mean (1, 3)
    assert_close(distribution_match(real, syn), torch.tensor([4.0]))  # (1 - 1)^2 + (1 - 3)^2


def test_loss_dict_names():
    d = loss_dict(torch.tensor(2.0), 0.5)
    assert set(d) == {"loss_match", "loss"} and float(d["loss"]) == 1.0
