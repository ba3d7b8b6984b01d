"""The compact Mask2Former of reft (spec component 1, section 7; arXiv 2301.01156): shapes, masked attention,
deep-supervision outputs, inference scores, cosine classifier, gradients."""

import math

import torch

from tenfold.systems.reft.config import LossConfig, ModelConfig
from tenfold.systems.reft.loss import SetCriterion
from tenfold.systems.reft.model import (CosineClassifier, RefT, SupportSet, instance_inference,
                                        sine_position_encoding)
from tenfold.systems.reft.reference import MultiHeadAttention


def _cfg(**kw) -> ModelConfig:
    return ModelConfig(backbone_widths=(8, 8, 16, 16), hidden_dim=16, num_heads=2, dim_feedforward=32,
                       dec_layers=3, num_queries=6, topk_queries=2, **kw)


def _support(g: torch.Generator) -> SupportSet:
    return SupportSet(torch.rand(2, 3, 32, 32, generator=g), torch.tensor([0, 1, 1]),
                      (torch.rand(3, 32, 32, generator=g) > 0.5).float(), torch.tensor([0, 2, 1]))


def test_output_shapes_and_deep_supervision_count():
    torch.manual_seed(0)
    m = RefT(_cfg(), 4)
    x = torch.rand(2, 3, 32, 32)
    out = m(x, m.build_references(_support(torch.Generator().manual_seed(0))))
    assert out["pred_logits"].shape == (2, 6, 5)  # C + 1
    assert out["pred_masks"].shape == (2, 6, 8, 8)  # stride 4
    assert len(out["aux_outputs"]) == 3  # 1 prediction from the learnable queries + 1 per layer, minus the last
    feats, mf = m.encode(x)
    assert [tuple(f.shape[-2:]) for f in feats] == [(1, 1), (2, 2), (4, 4)] and mf.shape == (2, 16, 8, 8)


def test_fully_masked_attention_row_is_unmasked_and_finite():
    torch.manual_seed(0)
    attn = MultiHeadAttention(4, 2)
    q, k = torch.randn(1, 2, 4), torch.randn(1, 3, 4)
    blocked = torch.tensor([[[True, True, True], [False, True, True]]])
    # the model unmasks full rows before attention (RefT.predict); a row kept fully masked would be NaN
    fixed = blocked & ~blocked.all(-1, keepdim=True)
    out = attn(q, k, k, fixed)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:, 0], attn(q, k, k)[:, 0])  # unmasked row = plain attention


def test_masked_attention_follows_the_previous_mask():
    # query row may only see key 1: the output equals attending to key 1 alone
    torch.manual_seed(0)
    attn = MultiHeadAttention(4, 1)
    q, k = torch.randn(1, 1, 4), torch.randn(1, 3, 4)
    out = attn(q, k, k, torch.tensor([[[True, False, True]]]))
    torch.testing.assert_close(out, attn(q, k[:, 1:2], k[:, 1:2]))


def test_batch_of_one_equals_batched():
    torch.manual_seed(0)
    m = RefT(_cfg(), 4).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        refs = m.build_references(_support(torch.Generator().manual_seed(1)))
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
        both = m(x, refs)
        one = m(x[1:2], refs)
    torch.testing.assert_close(one["pred_logits"][0], both["pred_logits"][1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(one["pred_masks"][0], both["pred_masks"][1], rtol=1e-4, atol=1e-4)


def test_instance_inference_score_by_hand():
    # spec section 7: class score 0.8 x mean mask probability 0.75 inside the binary mask -> 0.6.
    # one query, C = 1: logits (ln 4, 0) -> p(class 0) = 0.8 (softmax over class + no-object, no-object dropped)
    # mask logits ln 3 (p = 0.75) on the left column, -5 on the right column of a 2 x 2 map
    logits = torch.tensor([[math.log(4.0), 0.0]])
    masks = torch.tensor([[[math.log(3.0), -5.0], [math.log(3.0), -5.0]]])
    out = instance_inference(logits, masks, (2, 2), torch.tensor([17]))
    torch.testing.assert_close(out["scores"], torch.tensor([0.6]))
    assert out["category_ids"].tolist() == [17] and out["masks"].dtype == torch.bool
    assert out["masks"][0].tolist() == [[True, False], [True, False]]


def test_instance_inference_ranks_queries_times_classes():
    logits = torch.randn(4, 4)  # N = 4, C = 3
    out = instance_inference(logits, torch.randn(4, 2, 2), (8, 8), torch.tensor([5, 7, 9]), top_k=5)
    assert out["masks"].shape == (5, 8, 8) and set(out["category_ids"].tolist()) <= {5, 7, 9}
    probs = logits.softmax(-1)[:, :-1].flatten().sort(descending=True).values[:5]
    assert bool((out["scores"] <= probs + 1e-6).all())  # mask scores are <= 1


def test_cosine_classifier_by_hand():
    # spec section 7: q parallel to w_c -> logit = scale (20); orthogonal -> 0
    c = CosineClassifier(2, 2, 20.0)
    c.weight.data = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    torch.testing.assert_close(c(torch.tensor([[5.0, 0.0]])), torch.tensor([[20.0, 0.0]]))


def test_enable_cosine_replaces_only_the_novel_logits():
    torch.manual_seed(0)
    m = RefT(_cfg(), 4)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        before = m(x)["pred_logits"]
        m.enable_cosine(torch.tensor([1, 3]))
        after = m(x)["pred_logits"]
    torch.testing.assert_close(after[..., [0, 2, 4]], before[..., [0, 2, 4]])
    assert not torch.allclose(after[..., [1, 3]], before[..., [1, 3]])


def test_sine_position_encoding_shape_and_range():
    pe = sine_position_encoding(2, 3, 4, 8, torch.device("cpu"))
    assert pe.shape == (2, 12, 8) and float(pe.abs().max()) <= 1.0
    assert not torch.equal(pe[0, 0], pe[0, 1])  # positions differ


def test_gradient_reaches_every_parameter_and_loss_drops_on_one_batch():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    m = RefT(_cfg(), 4)
    with torch.no_grad():  # move the zero-initialised output projections so gradients pass through
        for name, p in m.named_parameters():
            if float(p.abs().sum()) == 0.0 and p.dim() > 1:
                p.normal_(0, 0.05, generator=g)
    crit = SetCriterion(4, LossConfig(num_points=0))
    x = torch.rand(2, 3, 32, 32, generator=g)
    tgt = [{"labels": torch.tensor([0, 2]), "masks": torch.rand(2, 32, 32, generator=g) > 0.5},
           {"labels": torch.tensor([1]), "masks": torch.rand(1, 32, 32, generator=g) > 0.5}]
    refs = m.build_references(_support(g))
    loss = crit.total(crit(m(x, refs), tgt))
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert missing == [], missing
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    first = float(loss)
    for _ in range(15):
        opt.zero_grad()
        loss = crit.total(crit(m(x, refs), tgt))
        loss.backward()
        opt.step()
    assert float(loss) < first
