"""Locality-aware context fusion (LCF) of FCtL (Liu et al., "Ultra-high Resolution Image Segmentation via
Locality-aware Context Fusion and Alternating Local Enhancement", IJCV 2024, arXiv 2109.02580); the block
the ICCV version calls locality-aware contextual correlation (LCC). Spec ../shared/specs/fctl.md 5-8.

  LocalityAwareContextAttention  component 5 [code]: A = softmax_row(Q^T K) (no 1/sqrt(d)), O = gamma V A^T
  MultiContextFusion             component 6 [code]: in / trans / out 1x1 convs, W = softmax_i(sigmoid(G_i))
  LocalityAwareContextFusion     component 7 [code]: stage modes local | single_context | all
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

Mode = Literal["local", "single_context", "all"]


def _conv1x1(cin: int, cout: int, bias: bool = True, std: float | None = None) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1, bias=bias)
    if std is not None:  # [code] N(0, 0.01^2) weights, zero biases
        nn.init.normal_(conv.weight, 0.0, std)
        if bias:
            nn.init.zeros_(conv.bias)
    return conv


class LocalityAwareContextAttention(nn.Module):
    """Component 5: local features X (B, C, h, w) attend over a source map S (B, C, h', w').

    Q = W_q X + b_q, K = W_k S + b_k (C -> C'), V = W_v S (no bias); A = softmax_row(Q^T K) with no
    temperature [code]; O = gamma * V A^T, gamma a scalar initialised to 0 (the block starts as identity).
    Args:
        channels: C.
        key_channels: C' (512 for VGG-16 [code]).
        use_centered_qk: subtract the per-channel spatial mean of Q and K (DeepGlobe branch, component 8).
        init_std: std of the 1x1 weights (0.01 [code]).
    """

    def __init__(self, channels: int, key_channels: int | None = None, use_centered_qk: bool = False,
                 init_std: float = 0.01) -> None:
        super().__init__()
        kc = key_channels or channels
        self.query = _conv1x1(channels, kc, std=init_std)
        self.key = _conv1x1(channels, kc, std=init_std)
        self.value = _conv1x1(channels, channels, bias=False, std=init_std)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.use_centered_qk = use_centered_qk
        # [code] Q/K carry a "no weight decay" tag that the single-group Adam never reads: inert, so absent.

    def attention(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """A (B, N, N'): row i = local position i over all source positions; rows sum to 1."""
        q = self.query(x).flatten(2)  # (B, C', h, w) -> (B, C', N)
        k = self.key(source).flatten(2)  # (B, C', h', w') -> (B, C', N')
        if self.use_centered_qk:
            q = q - q.mean(-1, keepdim=True)
            k = k - k.mean(-1, keepdim=True)
        return torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # Paper/code: no 1/sqrt(C') scaling

    def forward(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """O (B, C, h, w) = gamma * V A^T, without the residual (callers add X)."""
        b, c, h, w = x.shape
        a = self.attention(x, source)  # (B, N, N')
        v = self.value(source).flatten(2)  # (B, C, h', w') -> (B, C, N')
        o = v @ a.transpose(1, 2)  # (B, C, N)
        return self.gamma * o.view(b, c, h, w)  # (B, C, N) -> (B, C, h, w)


class MultiContextFusion(nn.Module):
    """Component 6: per-channel, per-position weights over the n context outputs O_i (B, C, h, w).

    H_i = in_i(O_i); T = trans(concat H) split into T_i; G_i = sigmoid(out_i(T_i)); W = softmax_i(G).
    Because softmax acts on values in (0, 1), each W_i lies in [1/(1 + (n-1)e), e/(e + n - 1)]: fusion can
    never switch a context off [code]; reproduced as is (spec component 6).
    """

    def __init__(self, channels: int, num_contexts: int = 3) -> None:
        super().__init__()
        self.num_contexts = num_contexts
        # Design choice: PyTorch's default init for the fusion convs (the spec fixes only the attention's).
        self.inp = nn.ModuleList(_conv1x1(channels, channels) for _ in range(num_contexts))
        self.trans = _conv1x1(num_contexts * channels, num_contexts * channels)
        self.out = nn.ModuleList(_conv1x1(channels, channels) for _ in range(num_contexts))

    def weights(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """W (n, B, C, h, w), summing to 1 over n."""
        h = torch.cat([f(o) for f, o in zip(self.inp, outputs)], dim=1)  # n x (B, C, h, w) -> (B, nC, h, w)
        t = self.trans(h).chunk(self.num_contexts, dim=1)  # (B, nC, h, w) -> n x (B, C, h, w)
        g = torch.stack([torch.sigmoid(f(ti)) for f, ti in zip(self.out, t)])  # (n, B, C, h, w)
        return torch.softmax(g, dim=0)

    def forward(self, outputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum_i W_i * O_i (B, C, h, w), W (n, B, C, h, w))."""
        w = self.weights(outputs)
        return (w * torch.stack(outputs)).sum(0), w


class LocalityAwareContextFusion(nn.Module):
    """Component 7: wires attention and fusion for the training stages of spec section 3.

    mode "local": returns X (stage 0). "single_context": X + O(X, S) with one branch (stages 1, 2).
    "all": branches (self X -> X, then one per context) fused, X + sum_i W_i O_i (stage 3).
    """

    def __init__(self, channels: int, mode: Mode, num_contexts: int, use_centered_qk: bool = False,
                 init_std: float = 0.01) -> None:
        super().__init__()
        if mode not in ("local", "single_context", "all"):
            raise ValueError(f"mode must be local, single_context or all, got {mode!r}")
        if mode == "single_context" and num_contexts != 1:
            raise ValueError(f"single_context mode takes exactly one context, got {num_contexts}")
        self.mode = mode
        n_branch = {"local": 0, "single_context": 1, "all": num_contexts + 1}[mode]

        def branch() -> LocalityAwareContextAttention:
            return LocalityAwareContextAttention(channels, channels, use_centered_qk, init_std)

        # branches[0] is the self (x1) branch in mode "all"; branches[1 + i] attends to context i.
        self.branches = nn.ModuleList(branch() for _ in range(n_branch))
        self.fusion = MultiContextFusion(channels, n_branch) if mode == "all" else None
        self.last_weights: torch.Tensor | None = None  # W of the last forward, for statistics

    def forward(self, x: torch.Tensor, contexts: list[torch.Tensor]) -> torch.Tensor:
        if self.mode == "local":
            return x
        if self.mode == "single_context":
            return x + self.branches[0](x, contexts[0])
        outputs = [self.branches[0](x, x)] + [b(x, s) for b, s in zip(self.branches[1:], contexts)]
        fused, w = self.fusion(outputs)
        self.last_weights = w.detach()
        return x + fused
