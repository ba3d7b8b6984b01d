"""doorping attacks: neuron selection, the masked trigger update, early stop, quirks (spec 7.4, 7.5)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from tenfold.systems.doorping.attack import (DoorpingTrigger, InvisibleTrigger, NaiveAttack, active_threshold,
                                             hooked_activation, restamp, select_active_neuron, select_neuron)
from tenfold.systems.doorping.data import trigger_mask
from tenfold.systems.doorping.model import ConvNet, ConvNetMini

from .conftest import tiny_data


class TwoLayer(nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.fc1 = nn.Linear(w.shape[1], w.shape[0])
        self.fc2 = nn.Linear(w.shape[0], 2)
        with torch.no_grad():
            self.fc1.weight.copy_(w)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_select_neuron_hand_values():
    # W = [[1, -2], [0.5, 0.5], [-3, 1]] -> r = (3, 1, 4) -> top-1 = unit 2, top-2 = (2, 0).
    net = TwoLayer(torch.tensor([[1.0, -2.0], [0.5, 0.5], [-3.0, 1.0]]))
    module, units = select_neuron(net, -2, 1)
    assert module is net.fc1 and units.tolist() == [2]
    assert select_neuron(net, -2, 2)[1].tolist() == [2, 0]


def test_layer_minus_two_is_the_fc192_weight():
    net = ConvNet(3, 10, 32)
    module, _ = select_neuron(net, -2)
    assert module is net.fc1 and tuple(module.weight.shape) == (192, 2048)


def test_canvas_outside_mask_is_black_and_mask_geometry(gen):
    d = tiny_data()
    trig = DoorpingTrigger.build(d, 2, gen)
    black = -0.3 / 0.3
    outside = ~trig.mask.bool()
    assert_close(trig.tau[outside], torch.full((int(outside.sum()),), black))
    assert_close(trig.mask, trigger_mask(16, 16, 2))  # canvas in [1, 255] > 0 everywhere in the patch
    pix = d.to_pixels(trig.tau)[trig.mask.bool()] * 255
    assert float(pix.min()) >= 1 - 1e-3 and float(pix.max()) <= 255 + 1e-3


def test_dd_canvas_quirk_excludes_value_one():
    # DD: canvas in [1, 254] and M = canvas > 1, so a patch pixel equal to 1 is outside M (spec 2.4).
    d = tiny_data()
    for seed in range(200):
        trig = DoorpingTrigger.build(d, 2, torch.Generator().manual_seed(seed), dd_canvas=True)
        pix = torch.round(d.to_pixels(trig.tau) * 255)
        patch = trigger_mask(16, 16, 2).bool()
        if (pix[patch] == 1).any():
            assert_close(trig.mask[patch], (pix[patch] > 1).float())
            assert trig.mask.sum() < 4
            return
    pytest.skip("no canvas with a pixel equal to 1 in 200 seeds")


def _mini_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return ConvNetMini(1, 10, 16)


def test_update_moves_only_masked_pixels_and_leaves_no_hooks(gen):
    d = tiny_data()
    net = _mini_net()
    trig = DoorpingTrigger.build(d, 2, gen, activation="pre_relu", steps=5, stop_loss=1e-12)
    before = trig.tau.clone()
    rec = trig.update(net)
    outside = ~trig.mask.bool()
    assert torch.equal(trig.tau[outside], before[outside])  # bit-identical outside M
    assert not torch.equal(trig.tau[~outside], before[~outside])
    assert rec["trigger_steps"] == 5
    for m in net.modules():
        assert not m._forward_hooks
    assert all(p.grad is None for p in net.parameters())


def test_masked_gradient_is_zero_outside_mask(gen):
    d = tiny_data()
    net = _mini_net()
    trig = DoorpingTrigger.build(d, 2, gen)
    tau = trig.tau.clone().requires_grad_(True)
    a = hooked_activation(net, net.fc1, tau, post_relu=False)[0, :3].sum()
    a.backward()
    g = tau.grad * trig.mask
    assert float(tau.grad.abs().sum()) > 0 and float(g[~trig.mask.bool()].abs().sum()) == 0


def test_post_relu_is_the_relu_of_pre_relu(gen):
    net = _mini_net()
    x = torch.randn(1, 1, 16, 16, generator=gen)
    pre = hooked_activation(net, net.fc1, x, post_relu=False)
    assert_close(hooked_activation(net, net.fc1, x, post_relu=True), torch.relu(pre))
    assert_close(pre, net.fc1(net.embed(x)))


class ConstUnit(nn.Module):
    """fc1 output = a constant `a` on unit 0 (bias), zero weights: the initial trigger loss is (alpha-1)^2 a^2."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.flat = nn.Flatten()
        self.fc1 = nn.Linear(256, 2)
        self.fc2 = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc1.weight.zero_()
            self.fc1.weight[0, 0] = 1e-3  # unit 0 has the largest L1 row
            self.fc1.bias.copy_(torch.tensor([a, 0.0]))

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(self.flat(x))))


@pytest.mark.parametrize("a,moves", [(0.07, False), (0.09, True)])
def test_early_stop_threshold(a, moves, gen):
    # Spec 7.4: L0 = (alpha - 1)^2 a0^2 = 81 a0^2 < 0.5  <=>  |a0| < sqrt(0.5 / 81) = 0.0786: stop at step 0.
    # The pixel at (0, 0) is not under the mask, so a stays ~ the bias (the weight 1e-3 sees a black pixel).
    d = tiny_data()
    trig = DoorpingTrigger.build(d, 2, gen, activation="pre_relu", steps=3)
    net = ConstUnit(a)
    with torch.no_grad():
        net.fc1.weight[0, 0] = 0.0
        net.fc1.weight[0, 14 * 16 + 14] = 1e-3  # a patch pixel: the unit can move, the L1 ranking is kept
    before = trig.tau.clone()
    rec = trig.update(net)
    assert math.sqrt(0.5 / 81) == pytest.approx(0.0786, abs=1e-4)
    assert (rec["trigger_steps"] > 0) == moves
    assert torch.equal(trig.tau, before) != moves


def test_alpha_one_never_moves(gen):
    d = tiny_data()
    trig = DoorpingTrigger.build(d, 2, gen, alpha=1.0, activation="pre_relu")
    before = trig.tau.clone()
    assert trig.update(_mini_net())["trigger_steps"] == 0  # L0 = 0 < 0.5
    assert torch.equal(trig.tau, before)


def test_inactive_unit_post_relu_gives_no_update(gen):
    # Post-ReLU (faithful): a unit with negative pre-activation has a0 = 0, loss 0, no update.
    d = tiny_data()
    net = ConstUnit(-1.0)
    trig = DoorpingTrigger.build(d, 2, gen)
    assert trig.update(net)["trigger_steps"] == 0
    trig_pre = DoorpingTrigger.build(d, 2, gen, activation="pre_relu", steps=2)
    assert trig_pre.update(net)["trigger_loss"] > 0  # pre-ReLU: 81 * 1 = 81 > 0.5


@pytest.mark.parametrize("mode", ["clamp", "uint8"])
def test_trigger_range_keeps_a_valid_image(mode, gen):
    d = tiny_data()
    trig = DoorpingTrigger.build(d, 2, gen, activation="pre_relu", steps=30, lr=5.0, stop_loss=1e-12,
                                 trigger_range=mode)
    trig.update(_mini_net())
    pix = d.to_pixels(trig.tau)[trig.mask.bool()]
    assert float(pix.min()) >= -1e-5 and float(pix.max()) <= 1 + 1e-5
    if mode == "uint8":
        assert_close(pix * 255, torch.round(pix * 255), atol=1e-3, rtol=0)


def test_restamp_uses_the_current_trigger(gen):
    d = tiny_data()
    trig = DoorpingTrigger.build(d, 2, gen)
    images = d.train_x.clone()
    idx = torch.tensor([1, 4, 7])
    clean = images[idx].clone()
    trig.tau = trig.tau + 1.0
    restamp(images, clean, idx, trig)
    assert_close(images[idx][..., 13:15, 13:15], trig.tau[..., 13:15, 13:15].expand(3, 1, 2, 2))
    assert torch.equal(images[0], d.train_x[0])


def test_invisible_faithful_accumulates_default_reapplies():
    d = tiny_data()
    inv = InvisibleTrigger.build(d, 0)
    images = d.train_x.clone()
    idx = torch.tensor([2, 3])
    clean = images[idx].clone()
    restamp(images, clean, idx, inv, accumulate=True)
    restamp(images, clean, idx, inv, accumulate=True)
    assert_close(images[idx], clean + 2 * inv.tau)  # x + tau_1 + tau_2 (tau unchanged here)
    restamp(images, clean, idx, inv, accumulate=False)
    assert_close(images[idx], clean + inv.tau)


def test_naive_attack_apply(data):
    atk = NaiveAttack.build(data, 2)
    out = atk.apply(data.train_x[:2])
    assert_close(out[..., 13:15, 13:15], torch.full((2, 1, 2, 2), 7 / 3))


def _stopping_trigger(check_every: int):
    """A pre-ReLU trigger whose early stop fires mid-run: stop_loss halfway between the loss at step 0 (L0) and
    the loss at step 10 (L10) of the unstopped run, so the per-step loop stops after 1..10 steps."""
    d = tiny_data()

    def build(steps: int, stop: float, every: int = 1) -> DoorpingTrigger:
        return DoorpingTrigger.build(d, 2, torch.Generator().manual_seed(5), activation="pre_relu", steps=steps,
                                     stop_loss=stop, lr=1.0, check_every=every)

    l0 = build(1, 1e-12).update(_mini_net(3))["trigger_loss"]  # the loss computed at step 0
    l10 = build(11, 1e-12).update(_mini_net(3))["trigger_loss"]  # the loss computed at step 10
    assert l10 < l0
    return build(30, (l0 + l10) / 2, check_every)


def test_batched_early_stop_check_equals_the_per_step_break():
    # Issue 21 (GPU hot path): checking the stop every 7 steps (no host sync in between; a stopped tau is frozen
    # with torch.where) gives the same tau, step count and loss as the code's per-step break.
    per_step, batched = _stopping_trigger(1), _stopping_trigger(7)
    r1, r7 = per_step.update(_mini_net(3)), batched.update(_mini_net(3))
    assert 1 <= r1["trigger_steps"] <= 10
    assert r1["trigger_steps"] == r7["trigger_steps"] and r1["trigger_loss"] == r7["trigger_loss"]
    assert torch.equal(per_step.tau, batched.tau)


class SilentTopUnit(nn.Module):
    """fc1 on the flattened 16x16 image, 3 units: unit 0 has the largest L1 row but is silent on any trigger
    (bias -5, weight 1e-3 on one pixel outside M); unit 1 (bias `a1`) and unit 2 (bias `a2`) each see one patch
    pixel with a smaller weight, so the ranking r = (W0, W1, W2) is unit 0 > unit 1 > unit 2."""

    def __init__(self, a1: float = 0.5, a2: float = 0.3) -> None:
        super().__init__()
        self.flat = nn.Flatten()
        self.fc1 = nn.Linear(256, 3)
        self.fc2 = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc1.weight.zero_()
            self.fc1.weight[0, 0] = 1e-3  # pixel (0, 0): black on the canvas, outside M
            self.fc1.weight[1, 13 * 16 + 13] = 5e-4  # patch pixel (13, 13)
            self.fc1.weight[2, 14 * 16 + 14] = 2e-4  # patch pixel (14, 14)
            self.fc1.bias.copy_(torch.tensor([-5.0, a1, a2]))

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(self.flat(x))))


def test_silent_top_weight_unit_never_moves_the_faithful_trigger_but_moves_the_active_rule(gen):
    # Issue 21: the code's rule picks unit 0 (largest L1 row), silent on tau (pre-activation ~ -5): post-ReLU
    # a0 = 0, L0 = 0 < 0.5, so the trigger stops at step 0 (DOORPING = NAIVE with a random patch). The active rule
    # skips it: unit 1 has a0 ~ 0.5 > 0.0786, L0 = 81 * 0.25 ~ 20 >= 0.5, so Adam runs and tau moves inside M.
    d = tiny_data()
    net = SilentTopUnit()
    old = DoorpingTrigger.build(d, 2, torch.Generator().manual_seed(1), steps=5)
    new = DoorpingTrigger.build(d, 2, torch.Generator().manual_seed(1), steps=5, neuron_rule="active_top_weight")
    before = old.tau.clone()
    r_old, r_new = old.update(net), new.update(net)
    assert r_old["unit"] == 0 and r_old["trigger_steps"] == 0 and torch.equal(old.tau, before)
    assert r_new["unit"] == 1 and r_new["trigger_steps"] == 5 and not r_new["neuron_fell_back"]
    assert r_new["trigger_loss0"] == pytest.approx(81 * float(torch.relu(net.fc1(net.flat(before)))[0, 1]) ** 2,
                                                   rel=1e-5)
    assert not torch.equal(new.tau, before)
    assert torch.equal(new.tau[~new.mask.bool()], before[~new.mask.bool()])


@pytest.mark.parametrize("a1,a2,unit", [(0.09, 0.5, 1), (0.07, 0.5, 2)])
def test_active_rule_threshold_is_sqrt_half_over_81(a1, a2, unit, gen):
    # min_activation = sqrt(0.5) / |10 - 1| = 0.0786: unit 1 at a0 ~ 0.09 is eligible and outranks unit 2 by
    # weight; at a0 ~ 0.07 it is not, so unit 2 is picked. (The patch pixel adds 5e-4 * tau, |tau| <= 2.33: < 1.2e-3.)
    assert active_threshold(10.0, 0.5) == pytest.approx(0.0786, abs=1e-4)
    d = tiny_data()
    trig = DoorpingTrigger.build(d, 2, gen)
    _, units, fell_back = select_active_neuron(SilentTopUnit(a1, a2), trig.tau, -2, 1, True,
                                               active_threshold(10.0, 0.5))
    assert units.tolist() == [unit] and not fell_back


def test_active_rule_falls_back_to_the_most_active_units(gen):
    # Only unit 1 is eligible; top-2 takes it, then the most active of the rest: unit 2 (a ~ 0.05) over unit 0
    # (silent, 0 post-ReLU).
    d = tiny_data()
    trig = DoorpingTrigger.build(d, 2, gen)
    _, units, fell_back = select_active_neuron(SilentTopUnit(0.5, 0.05), trig.tau, -2, 2, True, 0.0786)
    assert units.tolist() == [1, 2] and fell_back


def test_quick_profile_uses_the_active_rule_and_the_default_is_faithful():
    from tenfold.systems.doorping.config import PROFILES, Config

    assert Config().attack.neuron_rule == "top_weight"
    assert PROFILES["quick"]["attack.neuron_rule"] == "active_top_weight"
