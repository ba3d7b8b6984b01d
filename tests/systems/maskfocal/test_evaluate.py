"""Decoding, counting and metrics of maskfocal (arXiv 2212.11542, spec 2.7-2.8)."""

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.maskfocal.heatmap import draw_heatmap
from tenfold.systems.maskfocal.scoring import (ap50, bucket_mae, choose_threshold, count_from_detections,
                                               decode_centernet, decode_fcos, mae_rmse, point_f1)


def _centernet_out(boxes, shape, stride):
    t = draw_heatmap(np.array(boxes), shape, stride)
    y = torch.tensor(t.heatmap).clamp(1e-6, 1 - 1e-6)
    return {"heatmap": torch.logit(y)[None, None], "size": torch.zeros(1, 2, *shape),
            "offset": torch.zeros(1, 2, *shape)}


def test_peaks_merge_at_stride_4_and_separate_at_stride_2():
    # Two heads 2 px apart (centres x = 9 and 11, y = 9): at stride 4 both fall in cell 2 -> ONE peak;
    # at stride 2 they fall in cells 4 and 5, two peaks of 1.0 (ties with the 3x3 max survive).
    boxes = [[7.0, 7.0, 11.0, 11.0], [9.0, 7.0, 13.0, 11.0]]
    d4 = decode_centernet(_centernet_out(boxes, (8, 8), 4), 4, 100, 0.5)[0]
    d2 = decode_centernet(_centernet_out(boxes, (16, 16), 2), 2, 100, 0.5)[0]
    assert len(d4["scores"]) == 1  # documented undercount (pitfall 3)
    assert len(d2["scores"]) == 2


def test_decode_centernet_positions_and_sizes():
    out = _centernet_out([[16.0, 8.0, 24.0, 16.0]], (8, 8), 4)  # centre (20, 12) -> cell (5, 3)
    out["offset"][0, :, 3, 5] = torch.tensor([0.25, 0.5])
    out["size"][0, :, 3, 5] = torch.tensor([2.0, 1.0])
    d = decode_centernet(out, 4, 10, 0.5)[0]
    # centre = ((5, 3) + (0.25, 0.5)) * 4 = (21, 14); half-size = (2, 1) * 4 / 2 = (4, 2).
    assert_close(torch.tensor(d["points"]), torch.tensor([[21.0, 14.0]]))
    assert_close(torch.tensor(d["boxes"]), torch.tensor([[17.0, 12.0, 25.0, 16.0]]))


def test_decode_fcos_nms():
    boxes = torch.tensor([[[0.0, 0, 10, 10], [1, 1, 11, 11], [30, 30, 40, 40]]])
    out = {"cls": torch.tensor([[3.0, 2.0, 1.0]]), "ctr": torch.tensor([[3.0, 3.0, 3.0]]), "boxes": boxes}
    d = decode_fcos(out, 10, 0.1, 0.5)[0]
    # IoU of the first two = 81 / 119 = 0.68 > 0.5 -> the second is suppressed.
    assert len(d["scores"]) == 2
    assert d["scores"][0] == pytest.approx(math.sqrt(torch.sigmoid(torch.tensor(3.0)).item() ** 2))


def test_counting_and_errors_against_numpy():
    assert count_from_detections(np.array([0.1, 0.5, 0.7, 0.5]), 0.5) == 3
    pred, gt = np.array([3, 10, 7]), np.array([5, 10, 4])
    mae, rmse = mae_rmse(pred, gt)
    # |d| = 2, 0, 3 -> MAE 5/3; RMSE sqrt(13/3).
    assert mae == pytest.approx(5 / 3) and rmse == pytest.approx(math.sqrt(13 / 3))
    b = bucket_mae(np.array([1, 150, 500]), np.array([3, 100, 310]), (100.0, 300.0))
    assert b == {"sparse": 2.0, "medium": 50.0, "dense": 190.0}


def test_threshold_is_chosen_on_validation_counts():
    dets = [{"scores": np.array([0.9, 0.8, 0.3])}, {"scores": np.array([0.95, 0.2])}]
    # true counts 2 and 1: any tau in (0.3, 0.8] gives counts (2, 1) -> MAE 0; the smallest grid value is 0.31.
    assert choose_threshold(dets, np.array([2, 1]), 0.01) == pytest.approx(0.31)


def test_ap50_gt_as_prediction_is_one_and_hand_case():
    gt = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=float), np.array([[5, 5, 15, 15]], dtype=float)]
    dets = [{"boxes": g, "scores": np.ones(len(g))} for g in gt]
    assert ap50(dets, gt, [np.zeros((0, 4))] * 2, 100) == pytest.approx(1.0)
    # One of two GT found with the top score, plus a false positive with a lower score: precision 1 up to
    # recall 0.5, nothing beyond -> 101-point AP = 51 / 101.
    d = [{"boxes": np.array([[0, 0, 10, 10], [50, 50, 60, 60]], dtype=float), "scores": np.array([0.9, 0.5])}]
    assert ap50(d, gt[:1], [np.zeros((0, 4))], 100) == pytest.approx(51 / 101)
    # a detection on an ignore (iscrowd) region is neither TP nor FP
    d = [{"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=float), "scores": np.array([0.9, 0.95])}]
    assert ap50(d, [gt[0][:1]], [gt[0][1:]], 100) == pytest.approx(1.0)


def test_point_f1_hand():
    gt = [np.array([[10.0, 10.0], [30.0, 10.0]])]
    sizes = [np.array([4.0, 4.0])]
    pred = [np.array([[11.0, 10.0], [12.0, 10.0], [50.0, 50.0]])]
    # radius 0.5 * 4 = 2: both first predictions are near head 0 but only one may match (one-to-one):
    # TP 1, predictions 3, heads 2 -> F1 = 2 / 5.
    assert point_f1(pred, gt, sizes) == pytest.approx(0.4)
    assert point_f1([np.zeros((0, 2))], gt, sizes) == 0.0


def test_tau_is_selected_on_validation_never_on_test(monkeypatch):
    """evaluate_model hands choose_threshold the VALIDATION detections and counts only (pitfall 2)."""
    from types import SimpleNamespace

    import tenfold.systems.maskfocal.scoring as E

    seen = {}

    def spy(dets, counts, min_score):
        seen["counts"] = list(counts)
        return 0.5

    val = SimpleNamespace(source="val", counts=np.array([1, 2]))
    test = SimpleNamespace(source="test", counts=np.array([7, 9]), points=[np.zeros((0, 2))] * 2,
                           sizes=[np.zeros(0)] * 2, boxes=[np.zeros((0, 4))] * 2, ignore=[np.zeros((0, 4))] * 2,
                           has_boxes=False)
    fake = {"val": [{"scores": np.array([0.9]), "points": np.zeros((1, 2)), "boxes": np.zeros((1, 4))}] * 2,
            "test": [{"scores": np.array([0.9, 0.6, 0.1]), "points": np.zeros((3, 2)), "boxes": np.zeros((3, 4))}] * 2}
    monkeypatch.setattr(E, "predict_set", lambda model, ds, cfg: fake[ds.source])
    monkeypatch.setattr(E, "choose_threshold", spy)
    cfg = SimpleNamespace(eval=SimpleNamespace(min_score=0.01, bucket_edges=(5.0, 8.0), max_dets=100))
    m = E.evaluate_model(None, cfg, val, test)
    assert seen["counts"] == [1, 2]
    assert m["tau"] == 0.5 and m["pred_counts"] == [2, 2]  # scores >= 0.5 on each test image


def test_constant_count_reference_hand_values():
    from tenfold.systems.maskfocal.scoring import constant_count_metrics

    # val counts 10, 20, 40 -> median 20; test counts 5, 20, 120 -> |err| 15, 0, 100: MAE 115/3,
    # RMSE sqrt((225 + 0 + 10000) / 3); buckets (edges 30, 100): sparse {5, 20} MAE 7.5, medium empty, dense 100
    m = constant_count_metrics(np.array([10, 20, 40]), np.array([5, 20, 120]), (30.0, 100.0))
    assert m["const_count"] == 20.0
    assert m["const_mae"] == pytest.approx(115 / 3) and m["const_rmse"] == pytest.approx(np.sqrt(10225 / 3))
    assert m["const_mae_sparse"] == 7.5 and np.isnan(m["const_mae_medium"]) and m["const_mae_dense"] == 100.0
