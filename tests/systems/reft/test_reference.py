"""The two references of reft (spec components 2-5, section 7; arXiv 2301.01156): mask pooling -> dynamic class
centres, the feature-level cross-attention, Top-K support queries and the query link."""

import math

import torch

from tenfold.systems.reft.config import ModelConfig
from tenfold.systems.reft.model import RefT, SupportSet
from tenfold.systems.reft.reference import (FeatureLevelReference, QueryLevelReference, area_resize,
                                            class_centres, mask_pool, select_topk_support_queries)


def test_mask_pooling_by_hand():
    # spec section 7: 2 x 2 features (1, 2, 3, 4), mask (1, 1, 0, 0) -> 1.5; a second shot with mask
    # (0, 0, 1, 1) -> 3.5; the class centre is their mean 2.5
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2).expand(2, 1, 2, 2)
    m = torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]]])
    torch.testing.assert_close(mask_pool(f, m), torch.tensor([[1.5], [3.5]]))
    centres, present = class_centres(f, m, torch.tensor([0, 0]), 2)
    torch.testing.assert_close(centres, torch.tensor([[2.5], [0.0]]))  # class 1 absent -> zero, not present
    assert present.tolist() == [True, False]


def test_mask_pooling_equals_brute_force_average():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(1, 3, 4, 4, generator=g)
    m = (torch.rand(1, 4, 4, generator=g) > 0.5).float()
    want = torch.stack([f[0, :, i, j] for i in range(4) for j in range(4) if m[0, i, j] > 0]).mean(0)
    torch.testing.assert_close(mask_pool(f, m)[0], want)


def test_area_resize_by_hand():
    # ones in the top-left 2 x 2 block of 4 x 4 -> (1, 0, 0, 0); a single foreground pixel -> 0.25
    m = torch.zeros(2, 4, 4)
    m[0, :2, :2] = 1
    m[1, 3, 3] = 1
    out = area_resize(m, (2, 2))
    torch.testing.assert_close(out[0], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    torch.testing.assert_close(out[1], torch.tensor([[0.0, 0.0], [0.0, 0.25]]))


def test_centres_invariant_to_support_order_and_permute_with_classes():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(5, 4, 4, 4, generator=g)
    m = (torch.rand(5, 8, 8, generator=g) > 0.3).float()
    y = torch.tensor([0, 1, 1, 2, 0])
    c, _ = class_centres(f, m, y, 3)
    order = torch.tensor([3, 1, 4, 0, 2])
    torch.testing.assert_close(class_centres(f[order], m[order], y[order], 3)[0], c)
    perm = torch.tensor([2, 0, 1])  # relabel class k as perm[k]: the centres move with it
    c2, _ = class_centres(f, m, perm[y], 3)
    torch.testing.assert_close(c2[perm], c)


def test_feature_reference_cross_attention_by_hand():
    # one head, D = 2, W_q = W_k = W_v = W_o = identity, no biases. Pixel f = (1, 0); centres p1 = (1, 0),
    # p2 = (0, 1): logits <f, p>/sqrt(2) = (1/sqrt2, 0), alpha = softmax -> a = e^(1/sqrt2) / (e^(1/sqrt2) + 1)
    # out = f + a p1 + (1 - a) p2 = (1 + a, 1 - a)
    blk = FeatureLevelReference(2, 1)
    for lin in (blk.attn.q, blk.attn.k, blk.attn.v, blk.attn.out):
        lin.weight.data = torch.eye(2)
        lin.bias.data.zero_()
    feat = torch.tensor([1.0, 0.0]).reshape(1, 2, 1, 1)
    centres = torch.eye(2)
    a = math.exp(1 / math.sqrt(2)) / (math.exp(1 / math.sqrt(2)) + 1)
    out = blk(feat, centres, torch.tensor([True, True]))
    torch.testing.assert_close(out.flatten(), torch.tensor([1 + a, 1 - a]))
    # class 2 absent: all weight on p1 -> (2, 0), whatever p2 holds
    out = blk(feat, torch.tensor([[1.0, 0.0], [9.0, 9.0]]), torch.tensor([True, False]))
    torch.testing.assert_close(out.flatten(), torch.tensor([2.0, 0.0]))


def test_fresh_reference_blocks_are_exact_identities():
    g = torch.Generator().manual_seed(2)
    feat = torch.randn(2, 8, 3, 3, generator=g)
    centres, present = torch.randn(4, 8, generator=g), torch.tensor([True, False, True, True])
    for mode in ("cross_attention", "channel"):
        assert torch.equal(FeatureLevelReference(8, 2, mode)(feat, centres, present), feat)
    q = torch.randn(2, 5, 8, generator=g)
    link = QueryLevelReference(8, 2, 16, 4)
    assert torch.equal(link(q, torch.randn(6, 8, generator=g), torch.tensor([0, 0, 1, 1, 3, 3])), q)


def test_query_link_shapes_and_gradients():
    g = torch.Generator().manual_seed(3)
    link = QueryLevelReference(8, 2, 16, 4)
    for p in link.parameters():  # leave the zero initialisation so gradients reach every parameter
        p.data.normal_(0, 0.3, generator=g)
    q = torch.randn(2, 5, 8, generator=g, requires_grad=True)
    s = torch.randn(6, 8, generator=g, requires_grad=True)
    out = link(q, s, torch.tensor([0, 0, 1, 1, 3, 3]))
    assert out.shape == (2, 5, 8)
    out.square().sum().backward()
    assert s.grad is not None and float(s.grad.abs().sum()) > 0 and float(q.grad.abs().sum()) > 0
    for name, p in link.named_parameters():
        assert p.grad is not None, name
    # class 2 has no support query, so its embedding row gets no gradient; the others do
    assert float(link.class_embed.weight.grad[2].abs().sum()) == 0.0
    assert float(link.class_embed.weight.grad[0].abs().sum()) > 0.0


def test_topk_support_queries_by_hand():
    # one support image, N = 3 queries; the target is the left column of a 2 x 2 map.
    # query 1 predicts it exactly, query 0 the right column, query 2 everything -> mask_iou top-1 = query 1,
    # then query 2 (dice (2*2+1)/(4+2+1) = 5/7 > (0+1)/(2+2+1))
    target = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    logits = torch.stack([(1 - 2 * target[0]) * 20, (2 * target[0] - 1) * 20, torch.full((2, 2), 20.0)])[None]
    queries = torch.arange(3.0)[None, :, None].expand(1, 3, 2)
    cls = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 5.0, 0.0]]])  # C = 2 (+ no-object)
    s, y = select_topk_support_queries(queries, logits, cls, torch.tensor([0]), target, torch.tensor([0]), 2)
    assert s[:, 0].tolist() == [1.0, 2.0] and y.tolist() == [0, 0]
    s, _ = select_topk_support_queries(queries, logits, cls, torch.tensor([0]), target, torch.tensor([0]), 1,
                                       "class_prob")
    assert s[:, 0].tolist() == [0.0]  # query 0 has the highest p(class 0)


def _tiny(**kw) -> ModelConfig:
    return ModelConfig(backbone_widths=(8, 8, 16, 16), hidden_dim=16, num_heads=2, dim_feedforward=32,
                       dec_layers=3, num_queries=6, topk_queries=2, **kw)


def _support(g: torch.Generator) -> SupportSet:
    return SupportSet(torch.rand(3, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 2]),
                      (torch.rand(4, 32, 32, generator=g) > 0.5).float(), torch.tensor([0, 1, 3, 1]))


def test_switching_modules_off_gives_the_baseline_path_exactly():
    g = torch.Generator().manual_seed(4)
    torch.manual_seed(0)
    full = RefT(_tiny(), 4).eval()
    x = torch.rand(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        base = full(x)  # refs=None: the Mask2Former baseline path
        refs = full.build_references(_support(g))
        fresh = full(x, refs)  # zero-initialised output projections: identical to the baseline
        assert torch.equal(fresh["pred_logits"], base["pred_logits"])
        assert torch.equal(fresh["pred_masks"], base["pred_masks"])
        for p in full.parameters():  # train-like weights: now the references change the outputs
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        base, both = full(x), full(x, refs)
        assert not torch.equal(both["pred_logits"], base["pred_logits"])
        for switch in ({"use_feature_reference": False}, {"use_query_link": False}):
            off = RefT(_tiny(**switch), 4).eval()
            off.load_state_dict(full.state_dict(), strict=False)
            one = off(x, off.build_references(_support(torch.Generator().manual_seed(4 + 100))))
            assert not torch.equal(one["pred_logits"], both["pred_logits"])
        none = RefT(_tiny(use_feature_reference=False, use_query_link=False), 4).eval()
        none.load_state_dict(full.state_dict(), strict=False)
        out = none(x, none.build_references(_support(g)))
        torch.testing.assert_close(out["pred_logits"], base["pred_logits"], rtol=0, atol=0)
