"""Locality-aware context attention, multi-context fusion, LCF modes and ALE (spec components 5-7, 9)."""

import math

import pytest
import torch

from tenfold.systems.fctl.ale import AlternatingLocalEnhancement
from tenfold.systems.fctl.lcf import LocalityAwareContextAttention, LocalityAwareContextFusion, MultiContextFusion


def test_attention_gamma_zero_is_identity(gen):
    attn = LocalityAwareContextAttention(8)
    x, s = torch.randn(2, 8, 3, 3, generator=gen), torch.randn(2, 8, 3, 3, generator=gen)
    assert attn.gamma.item() == 0.0
    torch.testing.assert_close(x + attn(x, s), x, rtol=0, atol=0)


def test_attention_map_is_unscaled_softmax_and_output_matches_einsum(gen):
    attn = LocalityAwareContextAttention(4, 5)
    with torch.no_grad():
        attn.gamma.fill_(0.7)
        for p in attn.parameters():
            if p.dim() == 4:
                p.normal_(0, 0.5, generator=gen)
    x, s = torch.randn(1, 4, 2, 3, generator=gen), torch.randn(1, 4, 2, 2, generator=gen)
    wq, bq = attn.query.weight[:, :, 0, 0], attn.query.bias
    wk, bk = attn.key.weight[:, :, 0, 0], attn.key.bias
    wv = attn.value.weight[:, :, 0, 0]
    q = torch.einsum("oc,cn->on", wq, x[0].flatten(1)) + bq[:, None]  # (5, 6)
    k = torch.einsum("oc,cn->on", wk, s[0].flatten(1)) + bk[:, None]  # (5, 4)
    a_ref = torch.softmax(q.T @ k, dim=-1)  # (6, 4), no 1/sqrt(5)
    a = attn.attention(x, s)[0]
    torch.testing.assert_close(a, a_ref)
    torch.testing.assert_close(a.sum(-1), torch.ones(6))
    o_ref = 0.7 * (wv @ s[0].flatten(1)) @ a_ref.T  # (4, 6)
    torch.testing.assert_close(attn(x, s)[0].flatten(1), o_ref)


def test_centered_variant_subtracts_spatial_mean(gen):
    attn = LocalityAwareContextAttention(4, use_centered_qk=True)
    x, s = torch.randn(1, 4, 3, 3, generator=gen), torch.randn(1, 4, 3, 3, generator=gen)
    q = attn.query(x).flatten(2)
    k = attn.key(s).flatten(2)
    qc, kc = q - q.mean(-1, keepdim=True), k - k.mean(-1, keepdim=True)
    torch.testing.assert_close(qc.mean(-1), torch.zeros(1, 4), atol=1e-7, rtol=0)
    torch.testing.assert_close(attn.attention(x, s), torch.softmax(qc.transpose(1, 2) @ kc, -1))


def test_fusion_weights_bounded_and_sum_to_one(gen):
    fusion = MultiContextFusion(4, 3)
    with torch.no_grad():
        for p in fusion.parameters():
            p.mul_(50)  # push the sigmoids to saturation
    outs = [torch.randn(2, 4, 3, 3, generator=gen) * 10 for _ in range(3)]
    w = fusion.weights(outs)
    # softmax over 3 values in (0, 1): min 1 / (1 + 2e) = 0.1554, max e / (e + 2) = 0.5761.
    lo, hi = 1 / (1 + 2 * math.e), math.e / (math.e + 2)
    assert w.min() >= lo - 1e-6 and w.max() <= hi + 1e-6
    assert w.max() > 0.5 and w.min() < 0.2  # saturated, so the bounds are nearly reached
    torch.testing.assert_close(w.sum(0), torch.ones(2, 4, 3, 3))
    fused, _ = fusion(outs)
    torch.testing.assert_close(fused, (w * torch.stack(outs)).sum(0))


@pytest.mark.parametrize("mode,n_ctx,n_branch", [("local", 0, 0), ("single_context", 1, 1), ("all", 2, 3)])
def test_lcf_modes(gen, mode, n_ctx, n_branch):
    lcf = LocalityAwareContextFusion(6, mode, n_ctx)
    assert len(lcf.branches) == n_branch
    x = torch.randn(2, 6, 4, 4, generator=gen)
    ctx = [torch.randn(2, 6, 4, 4, generator=gen) for _ in range(n_ctx)]
    torch.testing.assert_close(lcf(x, ctx), x)  # every gamma starts at 0
    if mode == "all":
        assert lcf.last_weights.shape == (3, 2, 6, 4, 4)


def test_lcf_at_gamma_zero_only_gamma_gets_gradient_then_the_optimiser_grows_every_branch(gen):
    """Issue 17: from the code's start (every gamma = 0) the first backward reaches only the gammas (O_i = 0, so
    W_q, W_k, W_v and the fusion convolutions see no loss); a few Adam steps without decay on the context path
    (train.build_optimizer's default) must then grow |gamma| and |W_v| of every branch. With the bug (decay on
    the context path, which shrinks W_v while it has no gradient) |W_v| falls instead."""
    from types import SimpleNamespace

    from tenfold.systems.fctl.train import build_optimizer

    def run(context_decay):
        torch.manual_seed(0)
        net = torch.nn.Module()
        net.lcf = LocalityAwareContextFusion(6, "all", 2)
        x = torch.randn(4, 6, 3, 3, generator=torch.Generator().manual_seed(1))
        ctx = [torch.randn(4, 6, 3, 3, generator=torch.Generator().manual_seed(2 + i)) for i in range(2)]
        target = torch.randn(4, 6, 3, 3, generator=torch.Generator().manual_seed(9))
        v0 = [float(b.value.weight.detach().abs().mean()) for b in net.lcf.branches]
        opt = build_optimizer(net, SimpleNamespace(weight_decay=0.0, context_weight_decay=context_decay, lr=1e-3))
        for step in range(20):
            opt.zero_grad()
            (0.01 * (net.lcf(x, ctx) - target).pow(2).mean()).backward()
            if step == 0:
                grads = {n: float(p.grad.abs().sum()) for n, p in net.named_parameters()}
            opt.step()
        return v0, [float(b.value.weight.detach().abs().mean()) for b in net.lcf.branches], \
            [abs(float(b.gamma.detach())) for b in net.lcf.branches], grads

    v0, v, gammas, grads = run(0.0)
    assert all(g > 0 for n, g in grads.items() if n.endswith("gamma")), grads
    assert all(g == 0 for n, g in grads.items() if not n.endswith("gamma")), grads  # O_i = 0 at gamma = 0
    assert all(after > before for before, after in zip(v0, v)), (v0, v)
    assert all(g > 5e-3 for g in gammas), gammas  # Adam moves each gamma by ~lr per step while V carries signal
    _, v_bug, _, _ = run(5e-1)  # decay strong relative to the (scaled) loss, as with one step per image
    assert all(after < before for before, after in zip(v0, v_bug)), (v0, v_bug)


def test_single_context_rejects_two_contexts():
    with pytest.raises(ValueError, match="exactly one"):
        LocalityAwareContextFusion(4, "single_context", 2)


@pytest.mark.parametrize("mode", ["cross", "spatial_channel"])
def test_ale_identity_at_init_then_changes(gen, mode):
    ale = AlternatingLocalEnhancement(6, rounds=2, mode=mode)
    f, x = torch.randn(2, 6, 3, 3, generator=gen), torch.randn(2, 6, 3, 3, generator=gen)
    torch.testing.assert_close(ale(f, x), f)
    with torch.no_grad():
        for name, p in ale.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.5)
            elif p.dim() == 4:
                p.normal_(0, 0.3, generator=gen)
    out = ale(f, x)
    assert out.shape == f.shape and (out - f).abs().max() > 1e-3
    out.sum().backward()
    assert all(p.grad is not None for p in ale.parameters())
