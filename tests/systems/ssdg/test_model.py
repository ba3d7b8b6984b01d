"""MixStyle statistics and the backbones of ssdg (spec sections 2 and 7; arXiv 2111.10221)."""

import torch

from tenfold.systems.ssdg.model import Classifier, DigitsCNN, MCDNet, MixStyle


def _instance(mu: float, sd: float, n: int = 64) -> torch.Tensor:
    z = torch.randn(n, generator=torch.Generator().manual_seed(int(mu * 10)))
    z = (z - z.mean()) / z.std()  # exact sample mean 0, unbiased std 1
    return (mu + sd * z).reshape(1, 1, 8, 8)


def test_mixstyle_hand_statistics():
    # instance 0: (mu, sigma) = (1, 2), its partner (3, 4); lam = 0.25
    # -> (0.25*1 + 0.75*3, 0.25*2 + 0.75*4) = (2.5, 3.5)
    x = torch.cat([_instance(1.0, 2.0), _instance(3.0, 4.0)])
    ms = MixStyle(p=1.0, alpha=0.1).train()
    out = ms(x, lam=torch.tensor([0.25, 1.0]), perm=torch.tensor([1, 0]))
    torch.testing.assert_close(out[0].mean(), torch.tensor(2.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0].std(), torch.tensor(3.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], x[1], atol=1e-5, rtol=0)  # lam = 1 -> identity


def test_mixstyle_identity_in_eval_and_with_p_zero():
    x = torch.randn(4, 3, 5, 5)
    assert torch.equal(MixStyle(p=1.0).eval()(x), x)
    assert torch.equal(MixStyle(p=0.0).train()(x), x)


def test_mixstyle_no_gradient_through_statistics():
    # mu, sigma detached: out = (x - mu) / sigma * s + m  -> d out / d x = s / sigma elementwise (no stats terms)
    x = torch.cat([_instance(1.0, 2.0), _instance(3.0, 4.0)]).requires_grad_(True)
    out = MixStyle(p=1.0).train()(x, lam=torch.tensor([0.25, 0.25]), perm=torch.tensor([1, 0]))
    out[0].sum().backward()
    sig0 = (x[0].detach().var() + 1e-6).sqrt()
    torch.testing.assert_close(x.grad[0], torch.full_like(x[0], 3.5 / float(sig0)), atol=1e-5, rtol=1e-5)
    assert torch.all(x.grad[1] == 0)


def test_mixstyle_matches_a_per_sample_loop():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 2, 4, 4, generator=g)
    lam, perm = torch.tensor([0.1, 0.6, 0.9]), torch.tensor([2, 0, 1])
    out = MixStyle(p=1.0).train()(x, lam=lam, perm=perm)
    for b in range(3):
        for c in range(2):
            mu, sd = x[b, c].mean(), (x[b, c].var() + 1e-6).sqrt()
            mu2, sd2 = x[perm[b], c].mean(), (x[perm[b], c].var() + 1e-6).sqrt()
            want = (x[b, c] - mu) / sd * (lam[b] * sd + (1 - lam[b]) * sd2) + lam[b] * mu + (1 - lam[b]) * mu2
            torch.testing.assert_close(out[b, c], want)


def test_digits_cnn_shapes_and_mixstyle_placement():
    net = DigitsCNN((1, 2, 3))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 256)
    assert set(net.mixstyle) == {"1", "2", "3"}
    assert Classifier(DigitsCNN(), 10)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    mcd = MCDNet(DigitsCNN(), 7)
    assert len(mcd.F.mixstyle) == 0 and mcd(torch.randn(1, 3, 32, 32)).shape == (1, 7)
