"""doorping distillers: vectorised vs per-class loops, loop counts, DD unrolling, RNG streams (spec 7)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from tenfold.core.config import make_config
from tenfold.systems.doorping import distill_dc, distill_dd
from tenfold.systems.doorping.config import PROFILES, Config
from tenfold.systems.doorping.model import ConvNetMini
from tenfold.systems.doorping.train import distill, setup_attack
from tenfold.systems.doorping.victims import load_for_config, streams


def _batch(gen, c=10, n=6, ipc=2):
    rx, sx = torch.randn(c, n, 1, 16, 16, generator=gen), torch.randn(c, ipc, 1, 16, 16, generator=gen)
    ry, sy = torch.arange(c)[:, None].expand(c, n), torch.arange(c)[:, None].expand(c, ipc)
    return rx, ry, sx.requires_grad_(True), sy


@pytest.mark.parametrize("metric", ["ours", "mse", "cos"])
def test_dc_match_loss_vectorised_equals_the_per_class_loop(metric, gen):
    torch.manual_seed(0)
    net = ConvNetMini(1, 10, 16)
    rx, ry, sx, sy = _batch(gen)
    a = distill_dc.dc_match_loss(net, rx, ry, sx, sy, metric)
    b = distill_dc.dc_match_loss_loop(net, rx, ry, sx, sy, metric)
    assert_close(a, b, rtol=1e-5, atol=1e-5)
    ga, = torch.autograd.grad(a, sx)
    gb, = torch.autograd.grad(b, sx)
    assert_close(ga, gb, rtol=1e-4, atol=1e-6)  # second-order gradient to the synthetic images agrees


def test_dm_loss_vectorised_equals_loop(gen):
    torch.manual_seed(0)
    net = ConvNetMini(1, 10, 16)
    rx, _, sx, _ = _batch(gen)
    assert_close(distill_dc.dm_loss(net, rx, sx), distill_dc.dm_loss_loop(net, rx, sx), rtol=1e-5, atol=1e-5)


def test_dsa_same_seed_same_transform(gen):
    x = torch.randn(3, 2, 1, 8, 8, generator=gen)
    for seed in range(4):  # covers the four operations
        a, b = distill_dc.dsa_augment(x, seed), distill_dc.dsa_augment(x.clone(), seed)
        assert torch.equal(a, b) and a.shape == x.shape
    x.requires_grad_(True)
    distill_dc.dsa_augment(x, 1).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0  # differentiable


def _cfg(**kw):
    return make_config(Config, PROFILES, "smoke", kw)


@pytest.mark.parametrize("ipc,outer,inner,switch,updates", [(10, 10, 50, False, 9), (50, 50, 10, False, 49),
                                                             (1, 1, 1, False, 0), (1, 1, 1, True, 1)])
def test_dc_trigger_updates_per_iteration(ipc, outer, inner, switch, updates):
    # Spec 7.7: outer_loop - 1 updates per iteration (9 at ipc 10, 49 at ipc 50, 0 at ipc 1);
    # 9 x 1,000 = 9,000 over the paper's 1,000 iterations. The ipc-1 switch adds one (pitfall 2).
    cfg = _cfg(**{"distill.ipc": ipc, "distill.outer_loop": 0, "distill.inner_loop": 0,
                  "attack.update_at_ipc1": switch})
    assert cfg.distill.loops() == (outer, inner)
    calls = []

    small = _cfg(**{"distill.ipc": 1 if ipc == 1 else 2, "distill.outer_loop": outer, "distill.inner_loop": 1,
                    "attack.update_at_ipc1": switch})
    pool = distill_dc.RealPool(torch.randn(40, 1, 16, 16), torch.arange(10).repeat(4), 10)
    syn = torch.randn(10 * small.distill.ipc, 1, 16, 16, requires_grad=True)
    syn_y = torch.arange(10).repeat_interleave(small.distill.ipc)
    opt = torch.optim.SGD([syn], lr=0.1)
    torch.manual_seed(0)
    rec = distill_dc.dc_iteration(ConvNetMini(1, 10, 16), pool, syn, syn_y, opt, small, torch.Generator(),
                                  lambda net: calls.append(1) or {"trigger_steps": 0, "trigger_loss": 0.0})
    assert len(calls) == len(rec["trigger_updates"]) == updates
    assert updates * 1000 == {9: 9000, 49: 49_000, 0: 0, 1: 1000}[updates]


def test_dd_counts_and_lr_init():
    # Spec 7.8: T = 10 x 3 = 30; 10 x 10 = 100 images per class; ln(e^0.001 - 1) = -6.9073, softplus -> 0.001.
    assert distill_dd.raw_lr_init(0.001) == pytest.approx(-6.9073, abs=1e-4)
    d = distill_dd.DistilledSteps(10, 10, 10, (1, 16, 16), 3, 0.001, torch.Generator())
    assert d.raw_lrs.shape == (30,) and d.images.shape[:2] == (10, 100)
    assert int((d.flat()[1] == 0).sum()) == 100 and len(d.flat()[0]) == 1000
    assert_close(d.lrs(), torch.full((30,), 0.001))


def test_dd_unroll_matches_a_hand_written_sgd_loop(gen):
    torch.manual_seed(0)
    net = ConvNetMini(1, 10, 16)
    d = distill_dd.DistilledSteps(2, 1, 10, (1, 16, 16), 2, 0.01, gen)
    with torch.no_grad():
        d.raw_lrs.copy_(torch.tensor([-4.0, -3.0, -2.0, -5.0]))
    params0 = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}
    theta = distill_dd.unroll(net, params0, d)
    ref = ConvNetMini(1, 10, 16)
    ref.load_state_dict(net.state_dict())
    for t in range(4):  # step t uses images[t mod 2] and lr softplus(r_t)
        loss = F.cross_entropy(ref(d.images[t % 2].detach()), d.labels)
        grads = torch.autograd.grad(loss, list(ref.parameters()))
        with torch.no_grad():
            for p, g in zip(ref.parameters(), grads):
                p -= F.softplus(d.raw_lrs[t].detach()) * g
    for (k, v), p in zip(theta.items(), ref.parameters()):
        assert_close(v.detach(), p.detach(), rtol=1e-4, atol=1e-6)
    theta["fc2.weight"].sum().backward()  # differentiable to images and lrs
    assert d.images.grad is not None and d.raw_lrs.grad is not None


def _synthetic(attack: str, **kw):
    cfg = _cfg(**{"attack.attack": attack, **kw})
    data = load_for_config(cfg)
    gens = streams(cfg.seed)
    setup = setup_attack(cfg, data, gens)
    return distill(cfg, data, setup, gens, None)["images"], setup, data


def test_portion_zero_gives_the_clean_set_bit_for_bit():
    clean, _, _ = _synthetic("clean")
    for attack in ("naive", "doorping"):
        other, _, _ = _synthetic(attack, **{"attack.portion": 0.0})
        assert torch.equal(clean, other), attack


def test_poisoned_images_carry_the_current_trigger_in_the_class0_pool():
    _, setup, data = _synthetic("doorping")
    assert len(setup.poison_idx) == 10  # floor(0.05 * 200)
    tau, mask = setup.attack.tau, setup.attack.mask
    got = setup.pool.images[setup.poison_idx]
    assert_close(got, setup.clean_poison * (1 - mask) + tau * mask)
    assert set(setup.poison_idx.tolist()) <= set(setup.pool.indices_class[0].tolist())
    assert len(setup.attack.history) == 2  # (outer 2 - 1) x 2 iterations


def test_synthetic_set_is_never_stamped():
    syn, setup, _ = _synthetic("doorping")
    patch = setup.attack.mask.bool().expand_as(syn)
    assert not torch.equal(syn[patch], setup.attack.tau.expand_as(syn)[patch])


def test_dd_outer_step_with_a_reused_network_equals_fresh_copies(gen):
    # Issue 21 (GPU hot path): the trigger update at theta_T on one reused copy of the net (parameters
    # overwritten per batch) gives the same distilled images, lrs and trigger as a deep copy per batch.
    import copy

    from tenfold.systems.doorping.attack import DoorpingTrigger
    from tenfold.systems.doorping.data import stamp

    from .conftest import tiny_data

    d = tiny_data()
    results = []
    for reuse in (False, True):
        torch.manual_seed(0)
        net = ConvNetMini(1, 10, 16)
        params0 = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}
        steps = distill_dd.DistilledSteps(2, 1, 10, (1, 16, 16), 1, 0.01, torch.Generator().manual_seed(1))
        opt = torch.optim.Adam(steps.parameters(), lr=0.01, betas=(0.5, 0.999))
        trig = DoorpingTrigger.build(d, 2, torch.Generator().manual_seed(2), activation="pre_relu", steps=5,
                                     stop_loss=1e-12)
        hook = lambda net_t, x: {**trig.update(net_t), "restamped": stamp(x, trig.tau, trig.mask)}  # noqa: E731
        shadow = copy.deepcopy(net) if reuse else None
        for b in range(3):  # three real batches
            distill_dd.dd_outer_step(net, params0, steps, opt, d.train_x[b * 20:(b + 1) * 20],
                                     d.train_y[b * 20:(b + 1) * 20], hook, shadow)
        results.append((steps.images.detach().clone(), steps.raw_lrs.detach().clone(), trig.tau.clone()))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_split_depends_on_the_seed():
    # Issue 21: held-out seeds get their own digits split (stratified 1,437 / 360), the same seed the same one.
    def test_x(seed):
        return load_for_config(make_config(Config, PROFILES, "quick", {"seed": seed})).test_x

    a, b = test_x(1000), test_x(1001)
    assert a.shape == b.shape == (360, 1, 16, 16)
    assert not torch.equal(a, b) and torch.equal(a, test_x(1000))


def test_dsa_colour_hand_values():
    # One class, one grey 1x2 image [0, 2]; r = (0.5, 0.3, 0.25): brightness + (0.5 - 0.5) = 0 -> [0, 2];
    # saturation on one channel is a no-op (the channel mean is the pixel); contrast (x - 1) * 0.75 + 1 ->
    # [0.25, 1.75]. A constant image [1, 1] with r0 = 0.75: +0.25 -> [1.25, 1.25], contrast keeps a constant.
    x = torch.tensor([0.0, 2.0]).reshape(1, 1, 1, 1, 2)
    assert_close(distill_dc.dsa_colour(x, torch.tensor([[0.5, 0.3, 0.25]])).flatten(), torch.tensor([0.25, 1.75]))
    ones = torch.ones(1, 1, 1, 1, 2)
    assert_close(distill_dc.dsa_colour(ones, torch.tensor([[0.75, 0.9, 0.1]])).flatten(), torch.tensor([1.25, 1.25]))


def test_dsa_cutout_hand_values():
    # 4x4 image: side int(4 * 0.5 + 0.5) = 2; u = (0.5, 0.0): centre row floor(0.5 * 5) = 2, col 0 ->
    # rows [2 - 1, 2 + 1) = {1, 2}, cols [-1, 1) clipped = {0}: exactly those two pixels are zeroed.
    x = torch.ones(1, 1, 1, 4, 4)
    out = distill_dc.dsa_cutout(x, torch.tensor([[0.5, 0.0]]))[0, 0, 0]
    expected = torch.ones(4, 4)
    expected[1:3, 0] = 0
    assert torch.equal(out, expected)


def test_dsa_augment_samples_uses_per_sample_parameters(gen):
    # DSA outside matching (non-Siamese): each sample draws its own parameter. A horizontal flip (op 2) flips a
    # sample iff its u0 < 0.5; with 64 identical images both outcomes appear (P(all equal) = 2^-63).
    x = torch.arange(16.0).reshape(1, 1, 4, 4).expand(64, 1, 4, 4).contiguous()
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        s = int(torch.randint(0, 2**31, (1,), generator=torch.Generator().manual_seed(seed)))
        if int(torch.randint(0, 6, (1,), generator=torch.Generator().manual_seed(s))) != 2:
            continue
        out = distill_dc.dsa_augment_samples(x, g)
        flipped = torch.isclose(out, x.flip(-1)).flatten(1).all(1)
        kept = torch.isclose(out, x).flatten(1).all(1)
        assert bool((flipped | kept).all()) and 0 < int(flipped.sum()) < 64
        return
    pytest.fail("no seed chose the flip")


def test_dsa_inner_loop_and_victims_are_augmented(monkeypatch, gen):
    # [code] with DSA the inner loop on S and the victims train on DSA-augmented batches; DC on neither.
    calls = []
    real = distill_dc.dsa_augment_samples
    monkeypatch.setattr(distill_dc, "dsa_augment_samples", lambda x, g: calls.append(len(x)) or real(x, g))
    cfg = make_config(Config, PROFILES, "smoke", {"distill.outer_loop": 3, "distill.inner_loop": 2})
    pool = distill_dc.RealPool(torch.randn(40, 1, 16, 16, generator=gen), torch.arange(10).repeat(4), 10)
    syn = torch.randn(20, 1, 16, 16, generator=gen).requires_grad_(True)
    y = torch.arange(10).repeat_interleave(2)
    for seed, expected in ((None, 0), (5, 2 * 2)):  # (outer - 1) x inner epochs x 1 batch of 20 <= 256
        calls.clear()
        distill_dc.dc_iteration(ConvNetMini(1, 10, 16), pool, syn, y, torch.optim.SGD([syn], lr=0.1), cfg,
                                torch.Generator().manual_seed(0), dsa_seed=seed)
        assert len(calls) == expected
    from tenfold.systems.doorping.victims import train_victim

    calls.clear()
    vcfg = make_config(Config, PROFILES, "smoke", {"victim.epochs": 3, "victim.dsa_epochs": 5}).victim
    assert len(train_victim(ConvNetMini(1, 10, 16), syn.detach(), y, vcfg, gen, augment=True)) == 6  # passes 0..5
    assert calls == [20] * 6
    calls.clear()
    assert len(train_victim(ConvNetMini(1, 10, 16), syn.detach(), y, vcfg, gen)) == 4 and calls == []
