"""Focal loss, poly schedule, mIoU (class 0 dropped) and the peak-memory tracker (components 12, 13)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tenfold.systems.fctl.evaluate import PeakMemory
from tenfold.systems.fctl.loss import loss_terms, softmax_focal_loss
from tenfold.systems.fctl.stages import confusion_matrix, iou_per_class, miou
from tenfold.systems.fctl.train import poly_lr


def test_focal_gamma_zero_is_cross_entropy(gen):
    logits, target = torch.randn(2, 5, 4, 4, generator=gen), torch.randint(0, 5, (2, 4, 4), generator=gen)
    torch.testing.assert_close(softmax_focal_loss(logits, target, 0.0), F.cross_entropy(logits, target))


def test_focal_hand_value():
    # Two classes with equal logits: p_t = 0.5, FL = (1 - 0.5)^3 * ln 2 = 0.125 * 0.6931 = 0.0866 per pixel.
    logits = torch.zeros(1, 2, 3, 3)
    target = torch.zeros(1, 3, 3, dtype=torch.long)
    torch.testing.assert_close(softmax_focal_loss(logits, target, 3.0), torch.tensor(0.125 * math.log(2)))
    terms = loss_terms(logits, target, 3.0, weight_focal=2.0)
    torch.testing.assert_close(terms["loss"], 2 * terms["loss_focal"])


def test_poly_schedule_started_at_epoch_50_of_100():
    # main's quirk: T starts at 50 of 100 epochs; first lr = 0.5^0.9 * 5e-5 = 2.679e-5.
    iters = 10
    assert poly_lr(5e-5, 50 * iters, 100 * iters) == pytest.approx(2.679e-5, rel=1e-3)
    assert poly_lr(5e-5, 100 * iters, 100 * iters) == 0.0
    assert poly_lr(5e-5, 100 * iters - 1, 100 * iters) < 1e-7


def test_miou_drops_class_zero_hand_example():
    target = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([1, 0, 1, 2, 2, 2])
    conf = confusion_matrix(pred, target, 3)
    # class 1: TP 1, FP 1 (a 0 predicted 1), FN 1 -> 1/3; class 2: TP 2, FP 1, FN 0 -> 2/3; mean (1..2) = 50 %.
    assert miou(conf) == pytest.approx(50.0)
    # class 0: TP 1, FN 1 -> 1/2, excluded from the reported mIoU.
    assert iou_per_class(conf)[0] == pytest.approx(0.5)


def test_two_class_miou_is_the_class_one_iou(gen):
    t = torch.randint(0, 2, (500,), generator=gen).numpy()
    p = torch.randint(0, 2, (500,), generator=gen).numpy()
    conf = confusion_matrix(p, t, 2)
    iou1 = ((p == 1) & (t == 1)).sum() / ((p == 1) | (t == 1)).sum()
    assert miou(conf) == pytest.approx(100 * iou1)


def test_confusion_matches_slow_loop(gen):
    t = torch.randint(0, 7, (300,), generator=gen).numpy()
    p = torch.randint(0, 7, (300,), generator=gen).numpy()
    ref = np.zeros((7, 7), np.int64)
    for a, b in zip(t, p):
        ref[a, b] += 1
    np.testing.assert_array_equal(confusion_matrix(p, t, 7), ref)
    slow = [((p == k) & (t == k)).sum() / max(((p == k) | (t == k)).sum(), 1) for k in range(7)]
    np.testing.assert_allclose(iou_per_class(ref), slow)


def test_peak_memory_counts_live_storage():
    with PeakMemory() as mem:
        a = torch.zeros(1000)  # 4000 bytes
        b = torch.zeros(500)  # +2000 -> 6000 live
        del a
        c = torch.zeros(250)  # 3000 live: the peak stays 6000
        v = c.view(10, 25)  # a view shares storage: no new bytes
    assert mem.peak == 6000
    assert mem.current == 3000
    del b, c, v


def test_confusion_and_iou_match_sklearn(gen):
    metrics = pytest.importorskip("sklearn.metrics")
    t = torch.randint(0, 7, (400,), generator=gen).numpy()
    p = torch.randint(0, 7, (400,), generator=gen).numpy()
    conf = confusion_matrix(p, t, 7)
    np.testing.assert_array_equal(conf, metrics.confusion_matrix(t, p, labels=list(range(7))))
    ref = metrics.jaccard_score(t, p, labels=list(range(7)), average=None)
    np.testing.assert_allclose(iou_per_class(conf), ref)
    assert miou(conf) == pytest.approx(100 * ref[1:].mean())
