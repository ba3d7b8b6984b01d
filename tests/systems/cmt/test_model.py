"""CMT model (arXiv 2301.01283): shapes, head variants, gradients, masked modalities, anchors, DN terms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tenfold.core.config import make_config, override
from tenfold.systems.cmt.config import PROFILES, Config
from tenfold.systems.cmt.denoising import DN_CLS_FACTOR
from tenfold.systems.cmt.model import CmtLoss, CrossModalTransformer, build, grid_shape, points_to_grid, prepare_dn
from tenfold.systems.cmt.train import one_cycle_lr

K = 4  # smoke classes: car, pedestrian, traffic_cone, bollard


def smoke(**over) -> Config:
    return make_config(Config, PROFILES, "smoke", {"model.dropout": 0.0, **over})


def batch(cfg: Config, b: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    nz, ny, nx = grid_shape(cfg.model)
    h, w = cfg.data.image_hw
    from tenfold.systems.cmt.synthdrive import CAMERA_YAWS_DEG, camera_calibration

    l2i = torch.tensor(np.stack([camera_calibration(y, (h, w))["lidar2img"] for y in CAMERA_YAWS_DEG]),
                       dtype=torch.float32)
    out = {"lidar2img": l2i.expand(b, -1, -1, -1)}
    if cfg.model.modality != "camera":
        out["grid"] = torch.randn(b, 5 * nz, ny, nx, generator=g)
    if cfg.model.modality != "lidar":
        out["images"] = torch.randint(0, 256, (b, 6, 3, h, w), generator=g, dtype=torch.uint8)
    return out


def gts(b: int = 2):
    boxes = [torch.tensor([[2.0, 3.0, -1.0, 4.6, 1.9, 1.7, 0.3, 1.0, 0.0]]),
             torch.tensor([[-5.0, 1.0, -1.3, 0.4, 0.4, 1.0, 0.0, 0.0, 0.0], [6.0, -4.0, -1.0, 0.7, 0.7, 1.75, 1.0,
                                                                              0.5, 0.2]])][:b]
    return boxes, [torch.tensor([0]), torch.tensor([2, 1])][:b]


@pytest.mark.parametrize("modality", ["fusion", "lidar", "camera"])
def test_output_shapes_per_head_variant(modality):
    cfg = smoke(**{"model.modality": modality})
    torch.manual_seed(0)
    model = CrossModalTransformer(cfg.model, K)
    out = model(batch(cfg))
    # L = 2 layers, B = 2, Q = 12 queries, K = 4 classes, 10 code slots
    assert out["cls_logits"].shape == (2, 2, 12, 4) and out["code"].shape == (2, 2, 12, 10)
    preds = model.eval().predict(batch(cfg))
    assert len(preds) == 2 and preds[0]["boxes"].shape[1] == 9 and len(preds[0]["scores"]) <= cfg.model.max_num


def test_head_variants_refuse_the_other_modality():
    cfg = smoke(**{"model.modality": "camera"})
    b = batch(smoke())  # has both grid and images
    with pytest.raises(ValueError, match="camera-only"):
        CrossModalTransformer(cfg.model, K)(b)
    with pytest.raises(ValueError, match="LiDAR-only"):
        CrossModalTransformer(smoke(**{"model.modality": "lidar"}).model, K)(b)


def test_gradient_reaches_every_parameter_with_dn():
    cfg = smoke()
    torch.manual_seed(0)
    model, crit = build(cfg.model, K)
    boxes, labels = gts()
    dn = prepare_dn(cfg.model, boxes, labels, K, 2, 1.0, 0.75, torch.Generator().manual_seed(0))
    assert dn is not None and dn["pad_size"] == 2 * 2  # single_pad 2 x groups min(2, 12 // 2)
    losses = crit(model(batch(cfg), dn), boxes, labels, dn)
    losses["loss"].backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # Hand-derived exceptions (official semantics: query content is zero at input): in layer 0 every query's
    # value is W_v 0 + b_v, identical, so attention returns b_v whatever the softmax (no gradient to W_q, W_k,
    # W_v); out = W_o b_v + b_o with b_v = b_o = 0 at init gives W_o no gradient; norm 0 sees LN(0) = 0 (no
    # gradient to its scale). Everything else learns.
    assert dead == ["layers.0.self_attn.in_proj_weight", "layers.0.self_attn.out_proj.weight",
                    "layers.0.norms.0.weight"]
    for k in ("loss_cls", "loss_bbox", "loss_dn_cls", "loss_dn_bbox"):
        assert torch.isfinite(losses[k]) and losses[k] > 0


def test_dn_queries_do_not_leak_into_matching_queries():
    cfg = smoke()
    torch.manual_seed(0)
    model = CrossModalTransformer(cfg.model, K).eval()
    boxes, labels = gts()
    dn = prepare_dn(cfg.model, boxes, labels, K, 2, 1.0, 0.75, torch.Generator().manual_seed(0))
    ref = dn["reference"].clone().requires_grad_(True)
    out = model(batch(cfg), {**dn, "reference": ref})
    pad = dn["pad_size"]
    out["code"][:, :, pad:].sum().backward()   # matching queries only
    assert torch.count_nonzero(ref.grad) == 0


def test_zeroed_modality_output_does_not_depend_on_its_data():
    """The masked-modal path: with points zeroed the output is a function of the images alone (and vice versa)."""
    cfg = smoke()
    torch.manual_seed(0)
    model = CrossModalTransformer(cfg.model, K).eval()
    a, b = batch(cfg, seed=1), batch(cfg, seed=2)
    b["images"] = a["images"]
    for x in (a, b):
        x["grid"] = torch.zeros_like(x["grid"])
    torch.testing.assert_close(model(a)["code"], model(b)["code"])
    c, d = batch(cfg, seed=3), batch(cfg, seed=4)
    d["grid"] = c["grid"]
    c["images"], d["images"] = torch.zeros_like(c["images"]), torch.zeros_like(d["images"])
    torch.testing.assert_close(model(c)["cls_logits"], model(d)["cls_logits"])
    with pytest.raises(AssertionError):  # and the data of the kept modality does matter
        torch.testing.assert_close(model(a)["code"], model(c)["code"])


def test_zero_offsets_decode_to_the_anchors():
    """Heads' last layers zeroed: centre = anchor de-normalised. Smoke range x, y in [-16, 16]:
    anchor (0.5, 0.25) -> (0, -8) m; (0.75, 0.5) -> (8, 0) m."""
    cfg = smoke(**{"model.modality": "lidar"})
    model = CrossModalTransformer(cfg.model, K).eval()
    with torch.no_grad():
        model.anchors.weight[:2] = torch.tensor([[0.5, 0.25, 0.5], [0.75, 0.5, 0.5]])
        for head in model.heads:
            for _, _, last in head.branches.values():
                last.weight.zero_()
                last.bias.zero_()
    code = model(batch(cfg))["code"][-1, 0, :2]
    torch.testing.assert_close(code[:, :2], torch.tensor([[0.0, -8.0], [8.0, 0.0]]), atol=1e-4, rtol=0)


def test_lidar_query_pe_is_the_bev_pe_of_the_anchor_xy():
    cfg = smoke(**{"model.modality": "lidar"})
    model = CrossModalTransformer(cfg.model, K)
    a = torch.rand(1, 5, 3)
    torch.testing.assert_close(model.query_pos(a, None, (1, 1)), model.bev_pe(a[..., :2]))
    fusion = CrossModalTransformer(smoke().model, K)
    l2i = batch(smoke())["lidar2img"][:1]
    extra = fusion.query_pos(a, l2i, (16, 32)) - fusion.bev_pe(a[..., :2])
    torch.testing.assert_close(extra, fusion.image_pe.query_embedding(a, l2i, (16, 32)))


def test_points_to_grid_hand_case():
    """Smoke voxels 1 m on x, y in [-16, 16), z in [-3, 2): a point (0.2, -0.3, 0.1) falls in cell x 16, y 15,
    z 3; two points there average; channel f * Z + z (Z = 5) holds feature f."""
    cfg = smoke().model
    pts = np.array([[0.2, -0.3, 0.1, 0.5, 0.0], [0.6, -0.9, 0.5, 0.1, 0.5]], dtype=np.float32)
    grid = points_to_grid(pts, cfg)
    assert grid.shape == (25, 32, 32)
    expect = pts.mean(axis=0)
    got = grid[[f * 5 + 3 for f in range(5)], 15, 16]
    torch.testing.assert_close(got, torch.tensor(expect))
    assert torch.count_nonzero(grid) == 5 - 0  # one voxel, five non-zero features
    assert torch.count_nonzero(points_to_grid(np.zeros((1, 5), np.float32), cfg)) == 0  # zeroed points


def test_dn_classification_term_by_hand():
    """One supervised DN slot labelled background, logits 0 (p = 1/2): focal per class = BCE ln 2 x (1 - alpha)
    p^2 = 0.75 x 0.25 ln 2; K classes, normaliser N_dn (pi/6) 0.75^3 with N_dn = 1, one layer."""
    crit = CmtLoss(K)
    pad = 1
    out = {"cls_logits": torch.zeros(1, 1, pad + 3, K), "code": torch.zeros(1, 1, pad + 3, 10)}
    dn = {"pad_size": pad, "valid": torch.tensor([[True]]), "labels": torch.tensor([[K]]),
          "boxes": torch.tensor([[[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]])}
    losses = crit(out, [torch.zeros(0, 9)], [torch.zeros(0, dtype=torch.long)], dn)
    expect = K * 0.75 * 0.25 * math.log(2) / DN_CLS_FACTOR
    assert losses["loss_dn_cls"].item() == pytest.approx(expect, rel=1e-6)
    # L1 on the code: target (0, 0, log 1, log 1, 0, log 1, sin 0, cos 0, 0, 0) -> only cos slot 1 differs, w = 1
    assert losses["loss_dn_bbox"].item() == pytest.approx(1.0, rel=1e-6)


def test_one_cycle_schedule_by_hand():
    # base 1, peak 8 at 40 % of 10 steps (step 4), cosine: step 2 -> 1 + 7 (1 - cos(pi/2)) / 2 = 4.5; end -> 1e-4
    assert one_cycle_lr(0, 10, 1.0, 8.0, 0.4) == pytest.approx(1.0)
    assert one_cycle_lr(2, 10, 1.0, 8.0, 0.4) == pytest.approx(4.5)
    assert one_cycle_lr(4, 10, 1.0, 8.0, 0.4) == pytest.approx(8.0)
    assert one_cycle_lr(10, 10, 1.0, 8.0, 0.4) == pytest.approx(1e-4)


def test_loss_drops_on_one_fixed_batch():
    cfg = smoke(**{"model.modality": "lidar"})
    torch.manual_seed(0)
    model, crit = build(cfg.model, K)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    b, (boxes, labels) = batch(cfg), gts()
    first = None
    for _ in range(25):
        loss = crit(model(b), boxes, labels, None)["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_quick_profile_sizes():
    cfg = make_config(Config, PROFILES, "quick")
    assert grid_shape(cfg.model) == (5, 64, 64)  # 32 m / 0.5, 5 m / 1.0
    model = CrossModalTransformer(cfg.model, 4)
    out = model(batch(cfg, b=1))
    assert out["code"].shape == (2, 1, 60, 10)
    # tokens: BEV 64 / 4 = 16 -> 256; images 32 x 96 / 8 = 4 x 12 per camera x 6 = 288
    assert model.bev_tokens(batch(cfg, b=1)["grid"])[0].shape == (1, 256, 64)
    assert model.image_tokens(batch(cfg, b=1)["images"], batch(cfg, b=1)["lidar2img"])[0].shape == (1, 288, 64)
    assert override(cfg, {"model.modality": "camera"}).model.modality == "camera"
