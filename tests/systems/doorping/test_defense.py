"""doorping defenses: anomaly index, entropy, STRIP AUROC, fine-pruning invariants."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.doorping.defense import (anomaly_index, fine_prune, last_conv, neural_cleanse,
                                              prediction_entropy, strip_auroc, strip_entropy)
from tenfold.systems.doorping.model import ConvNetMini


def test_anomaly_index_hand_values():
    # norms (1, 2, 3, 4, 100): median 3, |x - 3| = (2, 1, 0, 1, 97), MAD = 1, x1.4826 -> index = |x - 3| / 1.4826.
    idx = anomaly_index(torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert_close(idx, torch.tensor([2.0, 1.0, 0.0, 1.0, 97.0]) / 1.4826, rtol=1e-5, atol=1e-6)


def test_prediction_entropy_hand_values():
    # uniform over 4 classes: ln 4 = 1.3863; a one-hot-ish logit vector: ~0.
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
    assert_close(prediction_entropy(logits), torch.tensor([1.3863, 0.0]), atol=1e-4, rtol=0)


def test_strip_auroc_matches_ordering():
    # triggered entropies all below clean ones -> AUROC 1; identical -> 0.5.
    assert strip_auroc(torch.tensor([1.0, 1.2, 1.1]), torch.tensor([0.1, 0.2])) == 1.0
    assert strip_auroc(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])) == 0.5


def test_strip_entropy_shape(gen):
    net = ConvNetMini(1, 10, 16)
    ent = strip_entropy(net, torch.randn(5, 1, 16, 16, generator=gen), torch.randn(7, 1, 16, 16, generator=gen), 4, gen)
    assert ent.shape == (5,) and bool((ent >= 0).all()) and bool((ent <= torch.log(torch.tensor(10.0)) + 1e-5).all())


def test_fine_prune_zeroes_channels_that_stay_zero(gen):
    torch.manual_seed(0)
    net = ConvNetMini(1, 10, 16)
    x, y = torch.randn(40, 1, 16, 16, generator=gen), torch.randint(0, 10, (40,), generator=gen)
    pruned, dead = fine_prune(net, x, y, 0.5, epochs=2, generator=gen)
    assert len(dead) == 16  # half of the 32 channels
    conv = last_conv(pruned)
    assert float(conv.weight.detach()[dead].abs().sum()) == 0 and float(conv.bias.detach()[dead].abs().sum()) == 0
    assert float(last_conv(net).weight.detach()[dead].abs().sum()) > 0  # the original is untouched


def test_neural_cleanse_returns_per_class_norms(gen):
    torch.manual_seed(0)
    net = ConvNetMini(1, 10, 16)
    out = neural_cleanse(net, torch.randn(20, 1, 16, 16, generator=gen), 10, steps=3, generator=gen)
    assert len(out["mask_l1"]) == 10 and len(out["anomaly_index"]) == 10
    assert all(p.requires_grad for p in net.parameters())
