"""Output-imbalance measures and metrics of harmonize (arXiv 2211.05295)."""

import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.harmonize import imbalance as I
from tenfold.systems.harmonize.scoring import prf, segmentation_metrics
from tenfold.systems.harmonize.loss import tversky_index


def test_oi_and_area_ratio_hand_values():
    assert I.output_imbalance(fp=10, fn=30) == pytest.approx(0.5)  # (30 - 10) / 40
    # CE-like counts TP 10, FP 5, FN 45: OI = 40 / 50 = 0.8, R = 15 / 55 = 0.2727
    assert I.output_imbalance(fp=5, fn=45) == pytest.approx(0.8)
    assert I.area_ratio(10, 5, 45) == pytest.approx(15 / 55)
    assert I.output_imbalance(0, 0) == 0.0
    for fp, fn in [(3, 9), (7, 1), (0, 4)]:  # antisymmetric under swapping FP and FN
        assert I.output_imbalance(fp, fn) == -I.output_imbalance(fn, fp)
    assert I.signed_imbalance(10, 5, 45, "area_ratio") > 0  # under-segmentation has the same sign in both
    assert I.signed_imbalance(10, 45, 5, "area_ratio") < 0
    assert I.exchange_rate(0.3, 0.7) == pytest.approx(7 / 3)


def test_confusion_counts_soft_and_hard(counts_8_2_4):
    z, g = counts_8_2_4
    tp, fp, fn, tn = I.confusion_counts(z, g, threshold=0.5)
    assert (float(tp), float(fp), float(fn), float(tn)) == (8.0, 2.0, 4.0, 6.0)
    zs = torch.zeros(1, 1, 2, 2)  # p = 0.5: soft TP = 0.5 per fg pixel
    gs = torch.tensor([1.0, 1, 0, 0]).view(1, 1, 2, 2)
    assert_close(torch.stack(list(I.confusion_counts(zs, gs))), torch.tensor([1.0, 1.0, 1.0, 1.0]))


def test_gradient_balance_matches_autograd():
    # soft counts TP 8, FP 2, FN 4: 12 fg pixels at p = 2/3, 4 bg pixels at p = 1/2
    p = torch.tensor([2 / 3] * 12 + [0.5] * 4, dtype=torch.float64)
    g = torch.tensor([1.0] * 12 + [0.0] * 4, dtype=torch.float64)
    z = torch.logit(p).view(1, 1, 4, 4).requires_grad_(True)
    T = tversky_index(z, g.view(1, 1, 4, 4), 0.3, 0.7, smooth=0.0)
    (dz,) = torch.autograd.grad(T, z)
    dp = dz.flatten() / (p * (1 - p))  # chain rule: dT/dp = dT/dz / (p (1 - p))
    bg, fg = I.tversky_pixel_gradients(8.0, 2.0, 4.0, 0.3, 0.7)
    # background: -0.3 * 8 / 11.4^2 = -0.018467; foreground: (0.3*2 + 0.7*12) / 11.4^2 = 0.069252
    assert bg == pytest.approx(-0.018467, abs=1e-6) and fg == pytest.approx(0.069252, abs=1e-6)
    assert_close(dp[12:], torch.full((4,), bg, dtype=torch.float64))
    assert_close(dp[:12], torch.full((12,), fg, dtype=torch.float64))
    # total fg / total bg gradient: 12 * 0.069252 / (4 * 0.018467) = N_fg (a FP + b N_fg) / (N_bg a TP) = 11.25
    assert I.gradient_balance(8, 2, 4, 12, 4, 0.3, 0.7) == pytest.approx(12 * 9.0 / (4 * 2.4))


def test_metrics_match_smp_micro():
    smp = pytest.importorskip("segmentation_models_pytorch")
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(4, 1, 16, 16, generator=gen) - 1
    g = (torch.rand(4, 1, 16, 16, generator=gen) < 0.1).long()
    ours = segmentation_metrics(z, g.float())
    tp, fp, fn, tn = smp.metrics.get_stats(torch.sigmoid(z), g, mode="binary", threshold=0.5)
    for name, fn_ in [("iou", smp.metrics.iou_score), ("f1", smp.metrics.f1_score),
                      ("precision", smp.metrics.precision), ("recall", smp.metrics.recall)]:
        assert ours[name] == pytest.approx(float(fn_(tp, fp, fn, tn, reduction="micro")), abs=1e-6), name


def test_oracle_f1_and_image_level_rates():
    # 2 images: image 0 has 2 fg pixels with logits -1 (p = 0.27, missed at 0.5); image 1 is empty with one
    # bg pixel at logit 2 (a false alarm). At t = 0.5: TP 0, FP 1, FN 2 -> F1 0, OI = (2 - 1)/3.
    z = torch.full((2, 1, 2, 2), -8.0)
    g = torch.zeros(2, 1, 2, 2)
    z[0, 0, 0, 0] = z[0, 0, 0, 1] = -1.0
    g[0, 0, 0, 0] = g[0, 0, 0, 1] = 1.0
    z[1, 0, 1, 1] = 2.0
    m = segmentation_metrics(z, g)
    assert m["f1"] == 0.0 and m["oi"] == pytest.approx(1 / 3)
    assert m["detection_rate"] == 0.0 and m["empty_false_alarm_rate"] == 1.0
    # a threshold just below logit -1 predicts the 2 fg pixels and the logit-2 pixel: F1 = 4 / (4 + 1) = 0.8
    assert m["oracle_f1"] == pytest.approx(0.8) and m["f1_gap"] == pytest.approx(0.8)
    assert prf(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "iou": 0.0}
    # F1 = 0.8 on the plateau of grid logits in (-8, -1]; ties go to the highest threshold: the largest grid
    # logit <= -1 (grid step 0.05; one step higher misses both fg pixels)
    from tenfold.systems.harmonize.scoring import SWEEP_LOGITS

    best = float(SWEEP_LOGITS[SWEEP_LOGITS <= -1.0].max())
    assert -1.0 - 0.05 - 1e-5 < best <= -1.0  # float32 grid: -1.0 itself may sit a hair above -1
    assert m["oracle_threshold"] == pytest.approx(float(torch.sigmoid(torch.tensor(best))), abs=1e-7)


def test_threshold_sweep_counts_a_pixel_only_at_thresholds_it_reaches():
    from tenfold.systems.harmonize.scoring import SWEEP_LOGITS, threshold_sweep

    z = torch.tensor([0.01, -0.01, -20.0, 20.0]).view(1, 1, 2, 2)
    g = torch.tensor([1.0, 1.0, 1.0, 0.0]).view(1, 1, 2, 2)
    s = threshold_sweep(z, g)
    at = {round(float(v), 4): j for j, v in enumerate(SWEEP_LOGITS)}
    # threshold 0.0: only z = 0.01 (fg) and z = 20 (bg) reach it; threshold 0.05: only z = 20
    assert float(s["tp"][at[0.0]]) == 1 and float(s["fp"][at[0.0]]) == 1
    assert float(s["tp"][at[0.05]]) == 0 and float(s["fp"][at[0.05]]) == 1
    # threshold -0.05: 0.01 and -0.01; the lowest grid value -16: still not z = -20 (below the grid)
    assert float(s["tp"][at[-0.05]]) == 2 and float(s["tp"][0]) == 2 and float(s["fn"][0]) == 1
    # the top of the grid (16): z = 20 is above it and counts
    assert float(s["fp"][-1]) == 1
