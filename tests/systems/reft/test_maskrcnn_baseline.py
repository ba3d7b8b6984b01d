"""reft's Mask R-CNN baseline (spec component 11, `baselines.py`; Han et al., "Reference Twice", arXiv
2301.01156): target conversion by hand, the TinyResNet + FPN backbone, torchvision's five losses reaching our
backbone, eval output through our pycocotools path, the class-head resize, and a smoke-size base + ft run that
yields the claim row. Smoke profile sizes throughout (seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from tenfold.core.config import make_config, override
from tenfold.systems.reft import baselines
from tenfold.systems.reft.coco import Sample
from tenfold.systems.reft.config import PROFILES, Config
from tenfold.systems.reft.data import kshot_set, load_data
from tenfold.systems.reft.metrics import nap_bap, to_coco_results
from tenfold.systems.reft.reproduce import NAMES, maskrcnn_runs, rows
from tenfold.systems.reft.train import build_model

LOSSES = {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}


@pytest.fixture(scope="module")
def smoke():
    return make_config(Config, PROFILES, "smoke", {"seed": 0})


@pytest.fixture(scope="module")
def data(smoke, tmp_path_factory):
    return load_data(smoke, tmp_path_factory.mktemp("reft_mrcn"))


def test_to_target_boxes_by_hand():
    masks = torch.zeros(3, 8, 10, dtype=torch.bool)
    masks[0, 1:4, 2:6] = True  # rows 1-3, columns 2-5 -> xyxy (2, 1, 6, 4): x2 = last column 5 + 1
    masks[1, 6, 9] = True  # one pixel at row 6, column 9 -> (9, 6, 10, 7), width 1 (not degenerate)
    # masks[2] empty: left out (its box would be degenerate)
    s = Sample(1, torch.zeros(3, 8, 10), masks, torch.tensor([7, 3, 3]), "x.png")
    t = baselines.to_target(s, {3: 1, 7: 2})
    torch.testing.assert_close(t["boxes"], torch.tensor([[2.0, 1.0, 6.0, 4.0], [9.0, 6.0, 10.0, 7.0]]))
    torch.testing.assert_close(t["labels"], torch.tensor([2, 1]))
    assert t["masks"].dtype == torch.uint8 and t["masks"].shape == (2, 8, 10)
    assert torch.equal(t["masks"].bool(), masks[:2])
    # parity with COCO's tight box (pycocotools toBbox, xywh): (2, 1, 4, 3) and (9, 6, 1, 1)
    rles = mask_utils.encode(np.asfortranarray(masks[:2].numpy().transpose(1, 2, 0).astype(np.uint8)))
    xywh = torch.tensor(mask_utils.toBbox(rles), dtype=torch.float32)
    torch.testing.assert_close(xywh, torch.tensor([[2.0, 1.0, 4.0, 3.0], [9.0, 6.0, 1.0, 1.0]]))
    torch.testing.assert_close(t["boxes"][:, :2], xywh[:, :2])
    torch.testing.assert_close(t["boxes"][:, 2:] - t["boxes"][:, :2], xywh[:, 2:])
    assert baselines.label_map((3, 7, 11)) == {3: 1, 7: 2, 11: 3}


def test_backbone_wrapper_shapes_and_same_backbone_as_reft(smoke):
    m = smoke.model  # widths (16, 32, 64, 96), D = 32
    net = baselines.TinyResNetFPN(m.backbone_widths, m.hidden_dim)
    assert net.out_channels == 32
    out = net(torch.rand(2, 3, 64, 64))
    # strides 4, 8, 16, 32 (+ P6 by max-pool): 64 / 4 = 16, 8, 4, 2, 1
    assert list(out) == ["0", "1", "2", "3", "pool"]
    assert [tuple(v.shape) for v in out.values()] == [(2, 32, 16, 16), (2, 32, 8, 8), (2, 32, 4, 4), (2, 32, 2, 2),
                                                    (2, 32, 1, 1)]
    ours = build_model(smoke, 16, "finetune").backbone
    assert type(net.body) is type(ours)
    assert {k: v.shape for k, v in net.body.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}


def test_parameter_count_by_hand(smoke):
    c = 15  # foreground classes -> 16 rows with the background
    model = baselines.MaskRCNNBaseline(smoke.model, c, 64)
    body = baselines.num_parameters(build_model(smoke, 16, "finetune").backbone)
    fpn = (16 + 32 + 64 + 96) * 32 + 4 * 32 + 4 * (32 * 32 * 9 + 32)  # 1x1 laterals + 3x3 outputs = 43,776
    rpn = (32 * 32 * 9 + 32) + (32 * 3 + 3) + (32 * 12 + 12)  # 3x3 conv, objectness, deltas (3 anchors) = 9,743
    box = (32 * 49 * 128 + 128) + (128 * 128 + 128) + (128 * 16 + 16) + (128 * 64 + 64)  # MLP 4 D, cls, deltas
    mask = 4 * (32 * 32 * 9 + 32) + (32 * 32 * 4 + 32) + (32 * 16 + 16)  # 4 convs, deconv 2x2, logits
    assert baselines.num_parameters(model.backbone.body) == body
    assert baselines.num_parameters(model) == body + fpn + rpn + box + mask


def test_train_forward_gives_five_finite_losses_and_reaches_the_backbone(smoke, data):
    model = baselines.MaskRCNNBaseline(smoke.model, len(data.split.base_ids), baselines.image_size_of(data)).train()
    batch = data.base_train[:2]
    losses = model([s.image for s in batch], [baselines.to_target(s, baselines.label_map(data.split.base_ids))
                                              for s in batch])
    assert set(losses) == LOSSES
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name, p in model.backbone.body.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_eval_output_converts_to_coco_results_our_evaluator_accepts(smoke, data):
    model = baselines.MaskRCNNBaseline(smoke.model, len(data.split.all_ids), baselines.image_size_of(data))
    preds = baselines.predict_maskrcnn(model, data.test[:3], data.class_ids)
    assert [p["image_id"] for p in preds] == [s.image_id for s in data.test[:3]]
    for p, s in zip(preds, data.test[:3]):
        assert p["masks"].dtype == torch.bool and p["masks"].shape[1:] == s.image.shape[1:]
        assert len(p["masks"]) == len(p["category_ids"]) == len(p["scores"]) <= 100
        assert set(p["category_ids"].tolist()) <= set(data.split.all_ids)
    results = to_coco_results(preds)
    assert all(set(r) == {"image_id", "category_id", "segmentation", "bbox", "score"} for r in results)
    m = nap_bap(data.test_json, preds, data.split)
    assert 0.0 <= m["nAP"] <= 1.0 and 0.0 <= m["bAP"] <= 1.0


def test_ground_truth_as_torchvision_detections_scores_ap_one(data):
    # labels 1 + contiguous index and pasted probabilities [M, 1, H, W], as eval-mode torchvision returns them:
    # to_prediction must map back to the COCO ids, so the ground truth scores AP = 1 on novel and base ids
    preds = []
    for s in data.test:
        det = {"labels": data.index_of(s.category_ids) + 1, "scores": torch.ones(len(s.category_ids)),
               "masks": s.masks[:, None].float() * 0.9}
        preds.append(baselines.to_prediction(det, s.image_id, data.class_ids))
    m = nap_bap(data.test_json, preds, data.split)
    assert m["nAP"] == pytest.approx(1.0) and m["bAP"] == pytest.approx(1.0)


def test_class_head_resize_keeps_base_rows_exactly(smoke):
    torch.manual_seed(0)
    model = baselines.MaskRCNNBaseline(smoke.model, 3, 64)
    old_box = model.roi_heads.box_predictor
    old_mask = model.roi_heads.mask_predictor.mask_fcn_logits
    x, feat = torch.randn(5, 128), torch.randn(5, 32, 4, 4)
    with torch.no_grad():
        old_scores, old_deltas = old_box(x)
        old_logits = old_mask(feat)
    # base classes 0, 1, 2 are contiguous classes 0, 2, 4 of 5: labels 0 (bg), 1, 2, 3 -> 0, 1, 3, 5
    model.resize_class_head(torch.tensor([0, 2, 4]), 5)
    box, mask = model.roi_heads.box_predictor, model.roi_heads.mask_predictor.mask_fcn_logits
    assert box.cls_score.weight.shape == (6, 128) and box.bbox_pred.weight.shape == (24, 128)
    assert mask.weight.shape == (6, 32, 1, 1)
    rows = torch.tensor([0, 1, 3, 5])
    deltas = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23])
    assert torch.equal(box.cls_score.weight[rows], old_box.cls_score.weight)
    assert torch.equal(box.bbox_pred.weight[deltas], old_box.bbox_pred.weight)
    assert torch.equal(mask.weight[rows], old_mask.weight) and torch.equal(mask.bias[rows], old_mask.bias)
    with torch.no_grad():
        scores, dl = box(x)
        # same weights; the matmul over 6 rather than 4 outputs may round differently (float32 tolerance)
        torch.testing.assert_close(scores[:, rows], old_scores)
        torch.testing.assert_close(dl[:, deltas], old_deltas)
        torch.testing.assert_close(mask(feat)[:, rows], old_logits)
    assert not torch.equal(box.cls_score.weight[2], box.cls_score.weight[4])  # fresh novel rows, not copies


def test_finetune_freezes_the_backbone_at_few_shots(smoke, data):
    base, hist = baselines.base_train_maskrcnn(smoke, data, 0)
    assert len(hist) == smoke.train.base_steps and all(LOSSES <= set(h) for h in hist)
    cfg = override(smoke, {"data.num_shots": 1})  # K = 1 <= freeze_backbone_max_shots (5)
    model, hist = baselines.finetune_maskrcnn(cfg, base, data, kshot_set(data, "fsis", 1, 0), 1)
    assert len(hist) == smoke.train.ft_steps
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in base.items() if k.startswith("backbone.body."))
    assert not torch.equal(state["backbone.fpn.layer_blocks.0.0.weight"], base["backbone.fpn.layer_blocks.0.0.weight"])
    assert model.roi_heads.box_predictor.cls_score.out_features == len(data.split.all_ids) + 1


def test_profiles_switch_the_arm():
    assert make_config(Config, PROFILES, "smoke", {}).reproduce.use_maskrcnn
    assert make_config(Config, PROFILES, "full", {}).reproduce.maskrcnn_shots == 10  # spec 6: 10 shots
    assert make_config(Config, PROFILES, "full", {}).reproduce.use_maskrcnn
    assert not make_config(Config, PROFILES, "quick", {}).reproduce.use_maskrcnn


def test_smoke_base_and_ft_run_yields_the_claim_row(smoke, data):
    r = smoke.reproduce
    km, draws = r.maskrcnn_shots, [0, 1]
    runs, info = maskrcnn_runs(smoke, data, 0, km, draws)
    assert len(runs) == 2 and all(0.0 <= x["nAP"] <= 100.0 for x in runs)
    info["m2f_params"] = 1234
    arm = {"nAP": 1.0, "bAP": 1.0, "wall_s": 1.0}
    res = {(a, k): [dict(arm)] * r.ft_seeds for k in r.shots for a in ("reft", "finetune")}
    res.update({(a, r.ablation_shots): [dict(arm)] * r.ft_seeds for a in ("no_feature", "no_link")})
    res[("maskrcnn", km)] = runs
    out = rows(smoke, 0, res, {"nAP": 0.0, "bAP": 1.0}, 1.0, 0.0, 0, 2.0, info)
    row = next(m for m in out if "Mask R-CNN" in m.claim)
    assert row.claim == "FSIS 2-shot: Mask2Former + ft-full > Mask R-CNN + ft-full"
    assert row.method == NAMES["finetune"] and row.baseline == NAMES["maskrcnn"]
    assert row.method_value == 1.0 and row.baseline_value == pytest.approx((runs[0]["nAP"] + runs[1]["nAP"]) / 2)
    b = row.budget["baseline"]
    assert (b["base_steps"], b["ft_steps"], b["K"], b["kshot_draws"]) == (3, 2, 2, 2)
    assert b["params"] == info["params"] > 0 and b["base_wall_s"] >= 0
    assert row.budget["method"]["ft_steps"] == b["ft_steps"] and row.budget["method"]["ft_batch"] == b["ft_batch"]
    # without the arm's info (use_maskrcnn off) there is no such row
    assert not any("Mask R-CNN" in m.claim for m in rows(smoke, 0, res, {"nAP": 0.0, "bAP": 1.0}, 1.0, 0.0, 0, 2.0))
