"""Alternating local enhancement (ALE) of FCtL (Liu et al., "Ultra-high Resolution Image Segmentation via
Locality-aware Context Fusion and Alternating Local Enhancement", IJCV 2024, arXiv 2109.02580).

The official code has no ALE: this module is a RECONSTRUCTION (spec ../shared/specs/fctl.md component 9,
[design choice]) of what the abstract says: ALE "restricts the negative impact of redundant information
introduced from the contexts" and "fixes the locality-aware features to produce refined results".

mode "cross" (default), for t = 1..T:
    F <- F + gamma_a,t * attn(query F, key/value X)     context cleaning: re-anchor F on the patch
    X <- X + gamma_b,t * attn(query X, key/value F)     local enhancing (t < T: the last would be unused)
mode "spatial_channel" (the alternative reading), for t = 1..T:
    F <- F + gamma_s,t * attn(query F, key/value X)     spatial attention (positions)
    F <- F + gamma_c,t * V_X softmax(F X^T)^T           channel attention (C x C affinity)
Output F. Every gamma starts at 0, so an untrained ALE is the identity on F.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from tenfold.systems.fctl.lcf import LocalityAwareContextAttention


class ChannelAttention(nn.Module):
    """O = gamma * softmax_row(F X^T) X over channels: (B, C, h, w) x (B, C, h, w) -> (B, C, h, w)."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = f.shape
        fq, xs = f.flatten(2), x.flatten(2)  # (B, C, h, w) -> (B, C, N)
        a = torch.softmax(fq @ xs.transpose(1, 2), dim=-1)  # (B, C, C)
        return self.gamma * (a @ xs).view(b, c, h, w)  # (B, C, N) -> (B, C, h, w)


class AlternatingLocalEnhancement(nn.Module):
    """Reconstructed ALE (see module docstring).

    Args:
        channels: C of the fused features F and the local features X.
        rounds: T (2, design choice).
        mode: "cross" | "spatial_channel".
    """

    def __init__(self, channels: int, rounds: int = 2, mode: Literal["cross", "spatial_channel"] = "cross",
                 init_std: float = 0.01) -> None:
        super().__init__()
        if mode not in ("cross", "spatial_channel"):
            raise ValueError(f"ALE mode must be 'cross' or 'spatial_channel', got {mode!r}")
        self.mode, self.rounds = mode, rounds

        def attn() -> LocalityAwareContextAttention:
            return LocalityAwareContextAttention(channels, channels, False, init_std)

        self.clean = nn.ModuleList(attn() for _ in range(rounds))
        # Design choice: in "cross" mode the X update of the last round would never reach the output F, so
        # only T - 1 local-enhancing blocks exist (every parameter receives gradient).
        n_enhance = rounds - 1 if mode == "cross" else rounds
        self.enhance = nn.ModuleList((attn() if mode == "cross" else ChannelAttention()) for _ in range(n_enhance))

    def forward(self, fused: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        f, x = fused, local
        for t in range(self.rounds):
            f = f + self.clean[t](f, x)
            if self.mode == "cross":
                if t < self.rounds - 1:
                    x = x + self.enhance[t](x, f)
            else:
                f = f + self.enhance[t](f, x)
        return f
