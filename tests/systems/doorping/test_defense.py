"""doorping defenses: anomaly index, entropy, STRIP AUROC, fine-pruning invariants."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.doorping.defense import (anomaly_index, fine_prune, flag_scores, last_conv, neural_cleanse,
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


def test_anomaly_index_on_ten_values_uses_the_standard_median():
    # norms 1..9 and 30: the standard median is (5 + 6) / 2 = 5.5 (torch.median would take 5).
    # |x - 5.5| = 4.5 3.5 2.5 1.5 .5 .5 1.5 2.5 3.5 24.5; sorted .5 .5 1.5 1.5 2.5 2.5 3.5 3.5 4.5 24.5 -> MAD 2.5
    norms = torch.tensor([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 30])
    want = torch.tensor([4.5, 3.5, 2.5, 1.5, 0.5, 0.5, 1.5, 2.5, 3.5, 24.5]) / (2.5 * 1.4826)
    assert_close(anomaly_index(norms), want, rtol=1e-5, atol=1e-6)
    # flag scores: only classes below the median keep their index: class 0 (1.214) is not > 2, class 9 is large
    # but above the median (a big trigger is not suspicious)
    assert_close(flag_scores(norms), torch.where(norms < 5.5, want, torch.zeros(10)), rtol=1e-5, atol=1e-6)
    small = torch.tensor([0.1, 20, 21, 22, 23, 24, 25, 26, 27, 28])  # one tiny trigger: median 23.5, MAD 2.5
    assert float(flag_scores(small)[0]) == pytest.approx(23.4 / (2.5 * 1.4826), rel=1e-5)


def test_strip_chunks_do_not_change_the_entropies(gen):
    torch.manual_seed(0)
    net = ConvNetMini(1, 10, 16)
    inputs, pool = torch.randn(9, 1, 16, 16, generator=gen), torch.randn(7, 1, 16, 16, generator=gen)
    whole = strip_entropy(net, inputs, pool, 4, torch.Generator().manual_seed(3), max_blends=10_000)
    chunked = strip_entropy(net, inputs, pool, 4, torch.Generator().manual_seed(3), max_blends=8)  # 2 inputs/chunk
    assert_close(whole, chunked, rtol=1e-5, atol=1e-6)


def test_fine_prune_removes_the_least_active_channels(gen):
    """Channel c of the last conv is scaled so its mean ReLU activation grows with c: channels 0..k-1 go first."""
    torch.manual_seed(0)
    net = ConvNetMini(1, 10, 16)
    conv = last_conv(net)
    with torch.no_grad():
        conv.weight.abs_()
        conv.bias.zero_()
        conv.weight.mul_(torch.arange(1, conv.out_channels + 1, dtype=torch.float32).view(-1, 1, 1, 1) * 100)
    x = torch.rand(40, 1, 16, 16, generator=gen)  # non-negative inputs keep every activation >= 0
    y = torch.randint(0, 10, (40,), generator=gen)
    acts = []
    handle = conv.register_forward_hook(lambda _m, _i, out: acts.append(torch.relu(out).mean((0, 2, 3))))
    with torch.no_grad():
        net.eval()
        net(x)
    handle.remove()
    expect = sorted(torch.argsort(acts[0])[: conv.out_channels // 4].tolist())
    _, dead = fine_prune(net, x, y, 0.25, epochs=0, generator=gen)
    assert sorted(dead) == expect


def test_neural_cleanse_flags_a_planted_backdoor():
    """A net that answers class 3 whenever the 2 x 2 top-left corner is bright, else a fixed linear read-out:
    reversing class 3 needs a 4-pixel mask, every other class a large one; class 3 must be flagged."""

    class Planted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.read = torch.nn.Linear(64, 10)
            with torch.no_grad():
                self.read.weight.copy_(torch.randn(10, 64, generator=g) * 0.2)
                self.read.bias.zero_()

        def forward(self, x):  # (N, 1, 8, 8)
            logits = self.read(x.flatten(1))
            corner = x[:, 0, :2, :2].mean((1, 2))  # (N,)
            bump = 20 * torch.sigmoid(20 * (corner - 0.7))  # smooth, so the reversal gets a gradient
            return logits + torch.nn.functional.one_hot(torch.tensor(3), 10) * bump[:, None]

    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))  # pattern range [0, 1]
    x[:, :, :2, :2] *= 0.5  # clean corners (mean <= 0.5) stay off the bump (centred at 0.7)
    out = neural_cleanse(Planted(), x, 10, steps=150, generator=torch.Generator().manual_seed(2))
    assert out["flagged"] == [3], out
