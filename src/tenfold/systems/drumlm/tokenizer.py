"""Character tokeniser of `drumlm` ("Language Models are Drummers", arXiv 2301.01162; spec component 5).

Design choice (spec 2.5): the from-scratch Transformer (baseline C) and the smoke model read drumroll text one
character at a time over {o, -, newline, S, E, P, N, D} plus PAD / BOS / EOS; a drum line is 7 tokens (6 + newline).
"""

from __future__ import annotations

from typing import Sequence

CHARS = "o-\nSEPND"
PAD, BOS, EOS = 0, 1, 2
SPECIALS = 3


class CharTokenizer:
    """encode: text -> ids (characters outside the alphabet are refused); decode: ids -> text (specials dropped)."""

    vocab_size = SPECIALS + len(CHARS)
    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def __init__(self) -> None:
        self._to_id = {c: SPECIALS + i for i, c in enumerate(CHARS)}

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        bad = sorted({c for c in text if c not in self._to_id})
        if bad:
            raise ValueError(f"characters {bad!r} are not in the drumroll alphabet {CHARS!r}")
        return [BOS] * bos + [self._to_id[c] for c in text] + [EOS] * eos

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(CHARS[i - SPECIALS] for i in ids if i >= SPECIALS)
