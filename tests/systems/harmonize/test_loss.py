"""Losses of harmonize (arXiv 2211.05295): hand-computed values, library parity, invariants."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from tenfold.systems.harmonize import loss as L


def t(x: float) -> torch.Tensor:
    return torch.tensor(x)


def test_tversky_focal_tversky_dice_hand_values(counts_8_2_4):
    z, g = counts_8_2_4
    # T = 8 / (8 + 0.3*2 + 0.7*4) = 8 / 11.4 = 0.70175 -> L = 0.29825
    assert_close(L.tversky(z, g, 0.3, 0.7, smooth=0.0), t(0.298246), atol=1e-5, rtol=0)
    # (1 - T)^0.75 = 0.29825^0.75 = 0.40358
    assert_close(L.focal_tversky(z, g, 0.3, 0.7, exponent=0.75, smooth=0.0), t(0.40358), atol=1e-4, rtol=0)
    # Dice = 1 - 16 / (16 + 2 + 4) = 1 - 16/22 = 0.27273
    assert_close(L.dice(z, g, smooth=0.0), t(0.272727), atol=1e-5, rtol=0)


def test_tversky_keeps_fp_term_on_empty_batch():
    g = torch.zeros(1, 1, 2, 3)
    z = torch.tensor([30.0, 30.0, 30.0, -30.0, -30.0, -30.0]).view(1, 1, 2, 3)  # FP = 3, TP = FN = 0
    # s = 1: L = 1 - 1 / (0 + 0.3*3 + 0 + 1) = 1 - 1/1.9 = 0.47368 (non-zero: the FPs are penalised)
    assert_close(L.tversky(z, g, 0.3, 0.7, smooth=1.0), t(0.473684), atol=1e-5, rtol=0)


def test_tversky_matches_smp_with_foreground_and_differs_on_empty():
    smp = pytest.importorskip("segmentation_models_pytorch")
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, 1, 8, 8, generator=gen)
    g = (torch.rand(3, 1, 8, 8, generator=gen) < 0.1).float()
    ref = smp.losses.TverskyLoss(mode="binary", alpha=0.3, beta=0.7, smooth=1.0, from_logits=True)
    assert_close(L.tversky(z, g, 0.3, 0.7, smooth=1.0), ref(z, g), atol=1e-6, rtol=1e-5)
    empty = torch.zeros_like(g)
    assert float(ref(z, empty)) == 0.0  # smp zeroes the loss of a batch without foreground (pitfall 1)
    assert float(L.tversky(z, empty, 0.3, 0.7, smooth=1.0)) > 0.1


def test_ce_and_focal_match_torch_and_torchvision():
    from torchvision.ops import sigmoid_focal_loss

    gen = torch.Generator().manual_seed(1)
    z = torch.randn(2, 1, 5, 5, generator=gen) * 3
    g = (torch.rand(2, 1, 5, 5, generator=gen) < 0.2).float()
    assert_close(L.cross_entropy(z, g), F.binary_cross_entropy_with_logits(z, g))
    assert_close(L.focal(z, g, 0.25, 2.0), sigmoid_focal_loss(z, g, alpha=0.25, gamma=2.0, reduction="mean"))


def test_weighted_ce_hand_value():
    # one fg pixel p = 0.5, one bg pixel p = 0.5, w = 0.9: -(1/2)[0.9 log 0.5 + 0.1 log 0.5] = 0.5 ln 2 = 0.34657
    z, g = torch.zeros(1, 1, 1, 2), torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    assert_close(L.weighted_ce(z, g, 0.9), t(0.5 * math.log(2)))


def test_wce_operating_point():
    # w = 0.9, q = 0.1: p* = 0.09 / (0.09 + 0.1*0.9) = 0.5 -> the threshold on q moved to 1 - w
    assert L.weighted_ce_operating_point(0.1, 0.9) == pytest.approx(0.5)
    # check the minimiser numerically: E[wCE] = -(w q log p + (1-w)(1-q) log(1-p)), minimised by gradient descent
    z = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([z], lr=5.0)
    for _ in range(500):
        loss = -(0.3 * 0.2 * F.logsigmoid(z) + 0.7 * 0.8 * F.logsigmoid(-z))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(torch.sigmoid(z.detach())) == pytest.approx(L.weighted_ce_operating_point(0.2, 0.3), abs=1e-4)
    # inverse frequency: w / (1 - w) = 1 / IR; IR = 1/999 -> w = 0.999
    assert L.inverse_frequency_weight(1 / 999) == pytest.approx(0.999)


def test_unified_focal_hand_value():
    z, g = torch.zeros(1, 1, 1, 2), torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)  # p = 0.5 everywhere
    # L_mF = -(1/2)[0.6 ln 0.5 + 0.4 * 0.5^0.5 * ln 0.5] = 0.5 ln2 (0.6 + 0.28284) = 0.30596
    # TP = FP = FN = TN = 0.5: mTI_fg = 0.5 / (0.5 + 0.6*0.5 + 0.4*0.5) = 0.5 = mTI_bg
    # L_mFT = (1 - 0.5) + (1 - 0.5)^0.5 = 1.20711;  L = 0.5 * 0.30596 + 0.5 * 1.20711 = 0.75653
    assert_close(L.unified_focal(z, g, 0.5, 0.6, 0.5, smooth=0.0), t(0.75653), atol=1e-4, rtol=0)


def test_unified_focal_tells_fn_from_fp():
    """p = 0.8 on the fg pixel, 0.4 on the bg pixel: TP 0.8, FN 0.2, FP 0.4, TN 0.6 (FN != FP, unlike p = 0.5).

    L_mF = -(1/2)[0.6 ln 0.8 + 0.4 * 0.4^0.5 ln 0.6] = 0.131558
    mTI_fg = 0.8 / (0.8 + 0.6 * 0.2 + 0.4 * 0.4) = 0.740741;  mTI_bg = 0.6 / (0.6 + 0.6 * 0.4 + 0.4 * 0.2) = 0.652174
    L_mFT = (1 - 0.652174) + (1 - 0.740741)^0.5 = 0.857001;  L = 0.5 * 0.131558 + 0.5 * 0.857001 = 0.494280
    (FN and FP swapped in mTI_fg would give mTI_fg = 0.8 / 1.12 and L = 0.50669.)
    """
    z = torch.tensor([math.log(4.0), math.log(0.4 / 0.6)]).view(1, 1, 1, 2)
    g = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    assert_close(L.unified_focal(z, g, 0.5, 0.6, 0.5, smooth=0.0), t(0.494280), atol=1e-5, rtol=0)


def test_invariants():
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(2, 1, 6, 6, generator=gen)
    g = (torch.rand(2, 1, 6, 6, generator=gen) < 0.15).float()
    assert_close(L.tversky(z, g, 0.5, 0.5, smooth=0.0), L.dice(z, g, smooth=0.0))  # a = b = 1/2 is Dice
    assert_close(L.combo(z, g, c=1.0, beta=0.7), L.weighted_ce(z, g, 0.7))  # Combo with c = 1 is wCE(beta)
    comp = L.HarmonizedCompoundLoss(fn_weight=0.8, weight_wce=1.0)
    assert_close(comp(z, g)["loss"], L.weighted_ce(z, g, 0.8))  # lam = 1: wCE(b*)
    comp = L.HarmonizedCompoundLoss(fn_weight=0.8, weight_wce=0.0)
    assert_close(comp(z, g)["loss"], L.focal_tversky(z, g, 0.2, 0.8, 0.75))  # lam = 0: FT(1 - b*, b*)


def test_compound_terms_and_weights():
    comp = L.HarmonizedCompoundLoss(fn_weight=0.7)
    z, g = torch.zeros(1, 1, 2, 2), torch.tensor([1.0, 0, 0, 0]).view(1, 1, 2, 2)
    terms = comp(z, g)
    assert set(comp.weights) == {"loss_wce", "loss_focal_tversky"}
    assert_close(terms["loss"], 0.5 * terms["loss_wce"] + 0.5 * terms["loss_focal_tversky"])
    with pytest.raises(ValueError):
        comp.set_fn_weight(1.0)


@pytest.mark.parametrize("name", L.LOSS_NAMES)
@pytest.mark.parametrize("value", [-30.0, 30.0])
def test_all_losses_finite_at_saturated_logits(name, value):
    crit = L.build_criterion(name, foreground_ratio=1e-3)
    for g in (torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)):
        z = torch.full((2, 1, 4, 4), value, requires_grad=True)
        terms = crit(z, g)
        terms["loss"].backward()
        assert all(math.isfinite(float(v.detach())) for v in terms.values()), (name, value)
        assert torch.isfinite(z.grad).all()
