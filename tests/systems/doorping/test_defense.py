"""doorping defenses: anomaly index, entropy, STRIP AUROC, fine-pruning invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.doorping.defense import (activation_clustering, anomaly_index, fine_prune, flag_scores,
                                              kmeans2_stats, last_conv, neural_cleanse, penultimate,
                                              prediction_entropy, spectral_scores, spectral_signature, strip_auroc,
                                              strip_entropy)
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


# ----------------------------------------------------------------------- activation clustering, spectral signatures

def test_kmeans2_stats_hand_values_on_three_points():
    # 1-D points 0, 1, 10 -> clusters {0, 1} and {10}; smaller share 1/3.
    # silhouette: s(0) = 1 - a/b = 1 - 1/10 = 0.9; s(1) = 1 - 1/9 = 0.8889; s(10) = 0 (a singleton, sklearn's
    # convention); mean = (0.9 + 0.8889 + 0) / 3 = 0.59630.
    out = kmeans2_stats(np.array([[0.0], [1.0], [10.0]]))
    assert out["smaller_size"] == pytest.approx(1 / 3)
    assert out["silhouette"] == pytest.approx((0.9 + 8 / 9) / 3, abs=1e-6)


def test_activation_clustering_flags_a_split_class_only():
    # class 0: 7 points at the origin and 3 at (10, 10) -> smaller share 0.3 < 0.35, silhouette 1 (every point
    # sits on its centroid: a = 0) -> flagged. class 1: 5 and 5 -> share 0.5, not flagged.
    f0 = torch.tensor([[0.0, 0.0]] * 7 + [[10.0, 10.0]] * 3)
    f1 = torch.tensor([[0.0, 0.0]] * 5 + [[10.0, 10.0]] * 5)
    out = activation_clustering(torch.cat([f0, f1]), torch.tensor([0] * 10 + [1] * 10), 2)
    assert out["ac_smaller_size"] == pytest.approx([0.3, 0.5])
    assert out["ac_silhouette"][0] == pytest.approx(1.0)
    assert out["ac_flagged"] == [0]


def test_spectral_scores_hand_values():
    # points (-2, 0), (2, 0), (0, 1), (0, -1): mean 0, X^T X = diag(8, 2) -> sigma_1^2 = 8, sigma_2^2 = 2,
    # ratio 8 / 10 = 0.8; v = (+-1, 0) -> scores (x . v)^2 = 4, 4, 0, 0.
    scores, ratio = spectral_scores(torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, -1.0]]))
    assert ratio == pytest.approx(0.8)
    assert_close(scores, torch.tensor([4.0, 4.0, 0.0, 0.0], dtype=torch.float64))


def test_spectral_signature_flags_the_one_dimensional_class():
    # classes 1..4: (+-1, 0), (0, +-1) -> ratio 0.5 each (isotropic); class 0: (+-1, 0), (+-2, 0) -> ratio 1.
    # median 0.5, MAD 0 -> class 0's high-side index is huge (> 2), the others 0.
    iso = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    line = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [-2.0, 0.0]])
    feats = torch.cat([line] + [iso] * 4)
    labels = torch.arange(5).repeat_interleave(4)
    out = spectral_signature(feats, labels, 5)
    assert out["ss_ratio"] == pytest.approx([1.0, 0.5, 0.5, 0.5, 0.5])
    assert out["ss_flagged"] == [0] and out["ss_flag_score"][1:] == [0.0] * 4


def test_penultimate_is_the_relu_of_fc1(gen):
    torch.manual_seed(0)
    net = ConvNetMini(1, 10, 16)
    x = torch.randn(5, 1, 16, 16, generator=gen)
    with torch.no_grad():
        ref = torch.relu(net.fc1(net.embed(x)))
    assert_close(penultimate(net, x), ref)
    assert not net.fc1._forward_hooks


def test_defense_metrics_sweeps_every_pruning_fraction(gen):
    # ConvNetMini's last conv has 32 channels: fractions 0.25 and 0.5 prune int(8.0) = 8 and 16 channels.
    from tenfold.systems.doorping.config import DefenseConfig
    from tenfold.systems.doorping.data import trigger_mask
    from tenfold.systems.doorping.evaluate import defense_metrics

    from .conftest import tiny_data

    torch.manual_seed(0)
    d = tiny_data()
    net = ConvNetMini(1, 10, 16)
    dcfg = DefenseConfig(nc_steps=2, strip_overlays=2, prune_fractions=(0.25, 0.5), finetune_epochs=1)
    syn = {"images": d.train_x[:30], "labels": d.train_y[:30]}
    out = defense_metrics(net, d, d.train_x[:20], d.train_y[:20], torch.full((1, 1, 16, 16), 3.0),
                          trigger_mask(16, 16, 2), 0, dcfg, gen, syn)
    assert out["finepruning/0.25/pruned"] == 8 and out["finepruning/0.5/pruned"] == 16
    assert len(out["ac_smaller_size"]) == 10 and len(out["ss_ratio"]) == 10
    assert 0 <= out["strip_auroc"] <= 1
