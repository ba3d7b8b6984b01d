"""Query denoising of cmt (arXiv 2301.01283, spec component 11): groups, mask, noise and labels."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from tenfold.systems.cmt.denoising import DN_CLS_FACTOR, dn_attention_mask, dn_groups, make_dn_queries

PC = (-10.0, -10.0, -3.0, 10.0, 10.0, 2.0)


def test_groups_and_cls_factor() -> None:
    # Spec 7: G = min(10, 900 // 14) = 10, 900 // 120 = 7; factor (pi / 6) 0.75^3 = 0.2209.
    assert dn_groups(14, 900) == 10 and dn_groups(120, 900) == 7 and dn_groups(0, 900) == 0
    assert DN_CLS_FACTOR == pytest.approx(0.2209, abs=1e-4)


def test_attention_mask_by_hand() -> None:
    # 2 groups of 2 DN slots, 3 matching queries (T = 7); 1 = blocked.
    expected = torch.tensor([[0, 0, 1, 1, 0, 0, 0],
                             [0, 0, 1, 1, 0, 0, 0],
                             [1, 1, 0, 0, 0, 0, 0],
                             [1, 1, 0, 0, 0, 0, 0],
                             [1, 1, 1, 1, 0, 0, 0],
                             [1, 1, 1, 1, 0, 0, 0],
                             [1, 1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(dn_attention_mask(2, 2, 3), expected)


def test_mask_blocks_leakage_exactly() -> None:
    # Self-attention with the mask: gradients of matching-query outputs w.r.t. DN-query inputs are exactly 0,
    # and group 0's outputs do not depend on group 1's inputs.
    torch.manual_seed(0)
    mask = dn_attention_mask(3, 3, 5)                       # pad 9, T = 14
    x = torch.randn(1, 1, 14, 8, requires_grad=True)
    out = F.scaled_dot_product_attention(x, x, x, attn_mask=~mask)
    out[..., 9:, :].sum().backward(retain_graph=True)
    assert x.grad[..., :9, :].abs().max().item() == 0.0 and x.grad[..., 9:, :].abs().max().item() > 0
    x.grad = None
    out[..., 0:3, :].sum().backward()
    assert x.grad[..., 3:9, :].abs().max().item() == 0.0 and x.grad[..., 9:, :].abs().max().item() > 0


def test_noise_within_half_size_and_labels_by_radius() -> None:
    g = torch.Generator().manual_seed(0)
    gts = [torch.tensor([[1.0, 2.0, -0.5, 4.0, 2.0, 1.5, 0.3, 1.0, 0.0],
                         [-3.0, 0.0, -1.0, 0.5, 0.5, 1.0, 0.0, 0.0, 0.0]], dtype=torch.float64),
           torch.tensor([[5.0, -5.0, 0.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0]], dtype=torch.float64)]
    labels = [torch.tensor([0, 2]), torch.tensor([1])]
    out = make_dn_queries(gts, labels, 3, PC, num_queries=8, generator=g)
    # max #GT 2 -> G = min(10, 8 // 2) = 4, pad 8.
    assert (out["groups"], out["single_pad"], out["pad_size"]) == (4, 2, 8)
    valid = out["valid"]
    assert valid[0].all() and valid[1].tolist() == [True, False] * 4          # sample 1 has one GT per group
    span = torch.tensor([20.0, 20.0, 5.0], dtype=torch.float64)
    lo = torch.tensor(PC[:3], dtype=torch.float64)
    for b, gt in enumerate(gts):
        for g_ in range(4):
            for i in range(len(gt)):
                s = g_ * 2 + i
                centre = out["reference"][b, s] * span + lo            # no clamping needed: all inside the range
                u = (centre - gt[i, :3]) / (gt[i, 3:6] / 2)
                assert_close(u, out["noise"][b, s])
                assert (u.abs() <= 1).all()
                bg = u.norm().item() > 0.75
                assert out["labels"][b, s].item() == (3 if bg else labels[b][i].item())
                assert_close(out["boxes"][b, s], gt[i])
    assert out["labels"][1, 1].item() == 3 and out["reference"][1, 1].abs().sum() == 0   # unsupervised pad slot
    assert out["attn_mask"].shape == (16, 16)


def test_no_noise_gives_normalised_centres() -> None:
    gt = torch.tensor([[0.0, 5.0, -0.5, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    out = make_dn_queries([gt], [torch.tensor([1])], 2, PC, num_queries=4, noise_scale=0.0)
    # (0 + 10) / 20 = 0.5, (5 + 10) / 20 = 0.75, (-0.5 + 3) / 5 = 0.5; G = min(10, 4 // 1) = 4.
    assert_close(out["reference"][0], torch.tensor([[0.5, 0.75, 0.5]]).repeat(4, 1))
    empty = make_dn_queries([torch.zeros(0, 9)], [torch.zeros(0, dtype=torch.long)], 2, PC, num_queries=4)
    assert empty["pad_size"] == 0 and empty["attn_mask"].shape == (4, 4) and not empty["attn_mask"].any()
    assert math.isclose(DN_CLS_FACTOR, math.pi / 6 * 0.421875)
