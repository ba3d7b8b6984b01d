"""COCOeval-based nAP / bAP of reft (Reference Twice, arXiv 2301.01156, spec 2.10) on hand-made cases."""

import math

import pytest
import torch

from tenfold.systems.reft import coco as C
from tenfold.systems.reft import metrics as M
from tenfold.systems.reft import shapes as S


def _gt(masks_per_image: list[list[tuple[torch.Tensor, int]]], size=(20, 20)) -> dict:
    """A ground-truth COCO dict: image i + 1 holds the given (mask, category id) pairs; categories 1, 2, 3."""
    images, anns = [], []
    for i, items in enumerate(masks_per_image):
        images.append({"id": i + 1, "file_name": f"{i}.png", "height": size[0], "width": size[1]})
        if items:
            s = C.Sample(i + 1, torch.zeros(3, *size), torch.stack([m for m, _ in items]),
                         torch.tensor([c for _, c in items]), f"{i}.png")
            anns.extend(C.annotations_of(s, len(anns) + 1))
    return {"images": images, "annotations": anns,
            "categories": [{"id": c, "name": str(c)} for c in (1, 2, 3)]}


def _square(r0=0, c0=0, n=10, size=(20, 20)) -> torch.Tensor:
    m = torch.zeros(size, dtype=torch.bool)
    m[r0:r0 + n, c0:c0 + n] = True
    return m


def _pred(image_id, masks, cats, scores) -> dict:
    return {"image_id": image_id, "masks": torch.stack(masks), "category_ids": torch.tensor(cats),
            "scores": torch.tensor(scores, dtype=torch.float32)}


def test_perfect_prediction_gives_one():
    gt = _gt([[(_square(), 1), (_square(10, 10), 2)], [(_square(5, 5), 1)]])
    preds = [_pred(1, [_square(), _square(10, 10)], [1, 2], [1.0, 1.0]), _pred(2, [_square(5, 5)], [1], [1.0])]
    for ids in ([1], [2], [1, 2]):
        assert M.evaluate_segm(gt, preds, ids) == pytest.approx({"AP": 1.0, "AP50": 1.0, "bbox_AP": 1.0,
                                                                  "bbox_AP50": 1.0})


def test_wrong_class_gives_zero_and_no_ground_truth_gives_nan():
    gt = _gt([[(_square(), 1)]])
    preds = [_pred(1, [_square()], [2], [1.0])]  # the right mask with the wrong class
    assert M.evaluate_segm(gt, preds, [1])["AP"] == 0.0
    assert math.isnan(M.evaluate_segm(gt, preds, [2])["AP"])  # no category-2 ground truth: COCOeval's -1
    assert M.evaluate_segm(gt, [], [1]) == {"AP": 0.0, "AP50": 0.0, "bbox_AP": 0.0, "bbox_AP50": 0.0}


def test_hand_computed_iou():
    # GT: a 10 x 10 square (100 px). Prediction: the square minus 22 interior pixels -> IoU 78 / 100 = 0.78,
    # a true positive at thresholds 0.50, 0.55, ..., 0.75 (6 of 10) -> mask AP = 0.6, AP50 = 1.
    # Its tight box is still the 10 x 10 square (the hole is interior): box IoU 1 -> box AP = 1.
    pred = _square()
    pred[2:7, 2:6] = False  # 20 px
    pred[7, 2:4] = False  # 2 px
    assert int(pred.sum()) == 78
    gt = _gt([[(_square(), 1)]])
    out = M.evaluate_segm(gt, [_pred(1, [pred], [1], [0.9])], [1])
    assert out["AP"] == pytest.approx(0.6) and out["AP50"] == pytest.approx(1.0)
    assert out["bbox_AP"] == pytest.approx(1.0)


def test_ranking_hand_case():
    # one GT; a false positive (IoU 0) scored 0.9 above the true positive scored 0.5: precision at recall 1 is
    # 1/2, and the interpolated precision is 1/2 at every recall point -> AP = 0.5
    gt = _gt([[(_square(), 1)]])
    preds = [_pred(1, [_square(10, 10), _square()], [1, 1], [0.9, 0.5])]
    assert M.evaluate_segm(gt, preds, [1])["AP"] == pytest.approx(0.5)
    swapped = [_pred(1, [_square(10, 10), _square()], [1, 1], [0.5, 0.9])]
    assert M.evaluate_segm(gt, swapped, [1])["AP"] == pytest.approx(1.0)  # the TP first: precision 1


def test_to_coco_results_fields():
    m = torch.zeros(1, 4, 5, dtype=torch.bool)
    m[0, 1:3, 1:4] = True
    (r,) = M.to_coco_results([{"image_id": 3, "masks": m, "category_ids": torch.tensor([2]),
                               "scores": torch.tensor([0.25])}])
    assert r["image_id"] == 3 and r["category_id"] == 2 and r["score"] == 0.25
    assert r["bbox"] == [1.0, 1.0, 3.0, 2.0] and r["segmentation"]["size"] == [4, 5]
    assert C._rle_string_counts(r["segmentation"]["counts"]) == [5, 2, 2, 2, 2, 2, 5]
    assert M.to_coco_results([{"image_id": 3, "masks": m[:0], "category_ids": torch.tensor([], dtype=torch.long),
                               "scores": torch.tensor([])}]) == []


def test_prediction_checks():
    gt = _gt([[(_square(), 1)]])
    with pytest.raises(ValueError, match="size"):
        M.evaluate_segm(gt, [_pred(1, [torch.ones(10, 10, dtype=torch.bool)], [1], [1.0])], [1])
    with pytest.raises(ValueError, match="does not hold"):
        M.evaluate_segm(gt, [_pred(9, [_square()], [1], [1.0])], [1])


def test_ground_truth_as_predictions_on_shapes_fsis(tmp_path):
    # spec 7: evaluating the GT as predictions (score 1) gives AP = 1 for novel, base and all ids
    build = C.write_shapes(S.PRESETS["tiny"], 0, tmp_path / "tiny", shots=(), kshot_seeds=())
    test = C.load_split(build["test"], build["images"])
    split = C.load_category_split(build["test"])
    preds = [{"image_id": s.image_id, "masks": s.masks, "category_ids": s.category_ids,
              "scores": torch.ones(len(s.category_ids))} for s in test]
    out = M.nap_bap(build["test"], preds, split)
    for key in ("nAP", "nAP50", "bAP", "bAP50", "AP", "bbox_nAP", "bbox_bAP", "bbox_AP"):
        assert out[key] == pytest.approx(1.0), key
    # drop the novel predictions: nAP 0, bAP still 1
    base_only = [{**p, "masks": p["masks"][keep], "category_ids": p["category_ids"][keep],
                  "scores": p["scores"][keep]}
                 for p in preds for keep in [torch.tensor([int(c) in split.base_ids for c in p["category_ids"]],
                                                          dtype=torch.bool)]]
    out = M.nap_bap(build["test"], base_only, split)
    assert out["nAP"] == 0.0 and out["bAP"] == pytest.approx(1.0)
