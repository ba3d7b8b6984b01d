"""Tokenisers of `drumlm` ("Language Models are Drummers", arXiv 2301.01162; spec components 5 and 7).

Design choice (spec 2.5): the from-scratch Transformer (baseline C) and the smoke model read drumroll text one
character at a time over {o, -, newline, S, E, P, N, D} plus PAD / BOS / EOS; a drum line is 7 tokens (6 + newline).
`LineTokenizer` (spec 2.7, `model_c.tokenizer=line`, an ablation of C) reads one token per line instead.
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


# ------------------------------------------------------------------------------------------ line tokens

LINE_WIDTH = 6  # voices per drum line
SEP_LINE, END_LINE = "SEP", "END"


class LineTokenizer:
    """Spec 2.7 ablation `model_c.tokenizer=line`: one token per drumroll line. 64 drum-line tokens ({o,-}^6),
    then `SEP` and `END`, after PAD / BOS / EOS: vocab 3 + 64 + 2 = 69; a 16-bar piece is ~272 tokens.

    Ids: a drum line is read as a 6-bit number, 'o' = 1, its first character the high bit, id = SPECIALS + that
    number ("------" -> 3, "-----o" -> 4, "o-----" -> 35, "oooooo" -> 66); SEP -> 67, END -> 68. The newline is
    implicit: decode writes each line but END with its trailing newline (see `decode`).
    """

    vocab_size = SPECIALS + 2 ** LINE_WIDTH + 2
    pad_id, bos_id, eos_id = PAD, BOS, EOS
    sep_id, end_id = SPECIALS + 2 ** LINE_WIDTH, SPECIALS + 2 ** LINE_WIDTH + 1

    def __init__(self) -> None:
        self._lines = ["".join("o" if n >> (LINE_WIDTH - 1 - k) & 1 else "-" for k in range(LINE_WIDTH))
                       for n in range(2 ** LINE_WIDTH)] + [SEP_LINE, END_LINE]
        self._to_id = {line: SPECIALS + i for i, line in enumerate(self._lines)}

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        lines = text.split("\n")
        terminated = lines[-1] == ""  # the text ends with a newline (or is empty): no line after it
        if terminated:
            lines.pop()
        bad = sorted({line for line in lines if line not in self._to_id})
        if bad:
            raise ValueError(f"lines {bad!r} are not drum lines (6 characters from 'o-') nor SEP / END")
        if END_LINE in (lines if terminated else lines[:-1]):
            raise ValueError("text after the END line (a newline included); expected END to end the text")
        if lines and not terminated and lines[-1] != END_LINE:
            raise ValueError(f"last line {lines[-1]!r} has no trailing newline; line tokens decode every line but "
                             "END with one, so the text would not come back unchanged")
        return [BOS] * bos + [self._to_id[line] for line in lines] + [EOS] * eos

    def decode(self, ids: Sequence[int]) -> str:
        # Design choice: a drum line or SEP decodes to the line + "\n", END to "END" alone (no newline): the prompt
        # of `split_example` ends with "SEP\n" and the completion with "\nEND", so encode(prompt) +
        # encode(completion) decodes to prompt + completion exactly. `encode` refuses the texts this rule could not
        # give back unchanged: a last line other than END without its "\n" (CharTokenizer keeps it), text after END.
        lines = [self._lines[i - SPECIALS] for i in ids if SPECIALS <= i < self.vocab_size]
        return "".join(line if line == END_LINE else line + "\n" for line in lines)
