"""Mask, dice, class and distillation losses of reft (spec components 1 and 7; arXiv 2301.01156)."""

import math

import torch

from tenfold.systems.reft.config import LossConfig
from tenfold.systems.reft.loss import (SetCriterion, base_distillation_loss, dice_loss, importance_points,
                                       sigmoid_ce_loss)


def test_dice_loss_by_hand():
    # spec section 7: p = 0.5 on 4 pixels, target (1, 1, 0, 0) -> 1 - (2 * 1 + 1) / (2 + 2 + 1) = 0.4;
    # two such masks over num_masks = 4 -> 0.8 / 4 = 0.2
    x = torch.zeros(2, 4)
    t = torch.tensor([[1.0, 1.0, 0.0, 0.0]]).expand(2, 4)
    torch.testing.assert_close(dice_loss(x, t, 1.0), torch.tensor(0.8))
    torch.testing.assert_close(dice_loss(x, t, 4.0), torch.tensor(0.2))


def test_sigmoid_ce_loss_by_hand():
    # logit ln 3 (p = 0.75), target (1, 0): mean of -ln 0.75 and -ln 0.25
    x = torch.full((1, 2), math.log(3.0))
    t = torch.tensor([[1.0, 0.0]])
    torch.testing.assert_close(sigmoid_ce_loss(x, t, 1.0), torch.tensor((-math.log(0.75) - math.log(0.25)) / 2))


def _criterion(**kw) -> SetCriterion:
    return SetCriterion(1, LossConfig(num_points=kw.pop("num_points", 0), use_deep_supervision=kw.pop("deep", False),
                                      **kw))


def _case():
    # 2 queries, C = 1 (+ no-object). Query 0 predicts the target's mask exactly (logits +-20), query 1 the
    # complement, so the matcher picks query 0 for the one target (class 0).
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    masks = torch.stack([(target * 2 - 1) * 20, (1 - 2 * target) * 20])[None]
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]])  # q1: p(no-object) = 1 / (3 + 1)
    out = {"pred_logits": logits, "pred_masks": masks, "aux_outputs": [{"pred_logits": logits, "pred_masks": masks}]}
    return out, [{"labels": torch.tensor([0]), "masks": target[None].bool()}]


def test_class_loss_with_no_object_weight_by_hand():
    # query 0 -> class 0: CE = ln 2 (weight 1); query 1 -> no-object: CE = -ln 0.25 = ln 4 (weight 0.1)
    # weighted mean = (ln 2 + 0.1 ln 4) / 1.1
    out, tgt = _case()
    losses = _criterion()(out, tgt)
    torch.testing.assert_close(losses["loss_ce"], torch.tensor((math.log(2) + 0.1 * math.log(4)) / 1.1))
    # the matched mask is (almost) exact: BCE ~ 0; dice = 1 - (2 * 2 + 1) / (2 + 2 + 1) = 0 up to e^-20
    assert float(losses["loss_mask"]) < 1e-6 and float(losses["loss_dice"]) < 1e-6


def test_total_uses_the_official_weights_and_deep_supervision_sums_layers():
    out, tgt = _case()
    single = _criterion()(out, tgt)
    deep = _criterion(deep=True)(out, tgt)
    for k in single:  # the auxiliary prediction equals the final one: every term doubles
        torch.testing.assert_close(deep[k], 2 * single[k])
    c = _criterion()
    want = 2 * single["loss_ce"] + 5 * single["loss_mask"] + 5 * single["loss_dice"]
    torch.testing.assert_close(c.total(single), want)


def test_point_sampled_loss_is_finite_and_near_the_full_grid_value():
    out, tgt = _case()
    pts = _criterion(num_points=64)(out, tgt, torch.Generator().manual_seed(0))
    torch.testing.assert_close(pts["loss_ce"], _criterion()(out, tgt)["loss_ce"])
    assert all(torch.isfinite(v) for v in pts.values())


def test_importance_points_pick_the_uncertain_region():
    # logits 0 (uncertain) in the left half, +-10 elsewhere; importance 1.0 -> every point has x < 0.5
    logits = torch.full((1, 8, 8), 10.0)
    logits[:, :, :4] = 0.0
    coords = importance_points(logits, 16, 3.0, 1.0, torch.Generator().manual_seed(0))
    assert coords.shape == (1, 16, 2) and bool((coords[..., 0] < 0.5).all())


def test_no_targets_gives_only_the_class_term():
    out, _ = _case()
    empty = [{"labels": torch.zeros(0, dtype=torch.long), "masks": torch.zeros(0, 2, 2, dtype=torch.bool)}]
    losses = _criterion()(out, empty)
    # both queries -> no-object (both weight 0.1, so the weighted mean is the plain mean):
    # q0 logits (0, 0): -ln 0.5; q1 logits (ln 3, 0): -ln 0.25
    torch.testing.assert_close(losses["loss_ce"], torch.tensor((math.log(2) + math.log(4)) / 2))
    assert float(losses["loss_mask"]) == 0.0


def test_distillation_by_hand():
    # C = 2 (+ no-object), base = {0}: kept entries (class 0, no-object)
    # teacher (0, 0) -> (1/2, 1/2); student (ln 3, 0) -> (3/4, 1/4)
    # KL = 1/2 ln((1/2)/(3/4)) + 1/2 ln((1/2)/(1/4)) = 1/2 ln(4/3); a single query -> the weight cancels
    teacher = torch.tensor([[[0.0, 5.0, 0.0]]])
    student = torch.tensor([[[math.log(3.0), -2.0, 0.0]]])
    kd = base_distillation_loss(student, teacher, torch.tensor([0]))
    torch.testing.assert_close(kd, torch.tensor(0.5 * math.log(4 / 3)))
    assert float(base_distillation_loss(teacher, teacher, torch.tensor([0]))) == 0.0
