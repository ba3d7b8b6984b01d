"""The structural evaluation of "Language Models are Drummers" (Zhang, Callison-Burch; arXiv 2301.01162).

Spec ../shared/specs/drumlm.md (official code zharry29/drums-with-llm, `source/evaluate.py`, `analysis.py`,
`duplication_analysis.py`):
    component 10  bar texts, stability s_i = min(Lev(b_i, b_{i-1}), Lev(b_i, b_{i+1})), 2-means centre gap and
                  mean deviation, mean stability                    bar_texts, levenshtein, stability, two_means,
                                                                    piece_features, structure_summary
    component 11  the human / random / repeat references             random_reference, repeat_reference
    component 12  metrics on the generated bars: stability from bar 3, repetition rate, distance to human,
                  onset density per voice, format validity, novelty against the train bar pool
                                                                    generated_features, repetition_rate,
                                                                    distance_to_human, onset_density, validity,
                                                                    bar_pool, novelty
    component 13  how often each generated bar occurs in a pool     duplication_histogram

Design choice: the component-12 metrics live here beside component 10, not in evaluate.py, so that the parity
measurement and evaluate.py share them without importing the model code.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from tenfold.systems.drumlm.drumroll import EMPTY, LINES_PER_BAR, VOICES, RepairReport

MAX_BARS = 16  # Paper: the first 16 bars of a piece are scored


# ------------------------------------------------------------------------------------------ distances

def levenshtein(a: str, b: str) -> int:
    """Character-level Levenshtein distance (unit insert / delete / substitute), exact.

    Bit-parallel (Myers 1999, Hyyrö's formulation) over Python integers: one pass over `a` with the pattern `b`
    as a bit vector; a 127-character bar pair costs ~127 big-integer steps instead of 127^2 table cells.
    """
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, c in enumerate(b):
        peq[c] = peq.get(c, 0) | (1 << i)
    full, top = (1 << m) - 1, 1 << (m - 1)
    pv, mv, score = full, 0, m
    for c in a:
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & full
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = (mh | ~(xv | ph)) & full
        mv = ph & xv
    return score


# ------------------------------------------------------------------------------------------ component 10

def bars_of(lines: Sequence[str], max_bars: int = MAX_BARS) -> list[list[str]]:
    """Consecutive 16-line bars, the first `max_bars` kept; a short last bar is kept as it is (the paper's
    outputs end wherever the model stopped)."""
    return [list(lines[i:i + LINES_PER_BAR]) for i in range(0, len(lines), LINES_PER_BAR)][:max_bars]


def bar_text(bar: Sequence[str]) -> str:
    """Paper: each line with its trailing newline, joined by another newline (doubled newlines);
    a full bar is 16 * 7 + 15 = 127 characters."""
    return "\n".join(line + "\n" for line in bar)


def bar_texts(lines: Sequence[str], max_bars: int = MAX_BARS) -> list[str]:
    return [bar_text(b) for b in bars_of(lines, max_bars)]


def stability(bars: Sequence[str], first: int = 1) -> list[int]:
    """s_i = min(Lev(b_i, b_{i-1}), Lev(b_i, b_{i+1})) for i = first .. len - 2 (0-indexed).

    Paper: first = 1 (bars 2..15 1-indexed, the first and last bars excluded): 14 values for 16 bars, none under
    3 bars. Component 12 uses first = 2 (bar 3, the first generated bar after a 2-bar prompt).
    """
    return [min(levenshtein(bars[i], bars[i - 1]), levenshtein(bars[i], bars[i + 1]))
            for i in range(max(first, 1), len(bars) - 1)]


def two_means(values: Sequence[float], method: str = "exact") -> tuple[float, float]:
    """(centre gap, mean deviation) of a 2-cluster split of 1-D values (spec component 10).

    method "exact" (tenfold default): sort, try every split point, keep the one with the least within-cluster
    sum of squares (the 1-D optimum; ties: the first split). "sklearn": `KMeans(n_clusters=2, random_state=0)`
    as the official code. Gap = |c_1 - c_2|; deviation = mean |s_i - centre of s_i's cluster|.
    Design choice: fewer than 2 values or all values equal -> (0, 0) (no sklearn warning path).
    """
    xs = sorted(float(v) for v in values)
    if len(xs) < 2 or xs[0] == xs[-1]:
        return 0.0, 0.0
    if method == "sklearn":
        return _two_means_sklearn(xs)
    if method != "exact":
        raise ValueError(f"method must be 'exact' or 'sklearn', got {method!r}")
    best = None
    for j in range(1, len(xs)):
        lo, hi = xs[:j], xs[j:]
        c1, c2 = sum(lo) / len(lo), sum(hi) / len(hi)
        sse = sum((x - c1) ** 2 for x in lo) + sum((x - c2) ** 2 for x in hi)
        if best is None or sse < best[0] - 1e-12:
            best = (sse, c1, c2, lo, hi)
    _, c1, c2, lo, hi = best
    dev = (sum(abs(x - c1) for x in lo) + sum(abs(x - c2) for x in hi)) / len(xs)
    return abs(c2 - c1), dev


def _two_means_sklearn(xs: list[float]) -> tuple[float, float]:
    import numpy as np
    from sklearn.cluster import KMeans

    x = np.asarray(xs, dtype=float).reshape(-1, 1)
    km = KMeans(n_clusters=2, random_state=0, n_init=10).fit(x)
    centres = km.cluster_centers_[:, 0]
    dev = float(np.mean(np.abs(x[:, 0] - centres[km.labels_])))
    return float(abs(centres[0] - centres[1])), dev


@dataclass(frozen=True)
class PieceFeatures:
    values: tuple[int, ...]  # the stability values s_i
    centre_gap: float
    mean_deviation: float
    num_lines: int


def piece_features(lines: Sequence[str], first: int = 1, method: str = "exact") -> PieceFeatures:
    """Stability values and 2-means features of one piece (its first 16 bars)."""
    s = stability(bar_texts(lines), first=first)
    gap, dev = two_means(s, method)
    return PieceFeatures(tuple(s), gap, dev, len(lines))


@dataclass(frozen=True)
class StructureSummary:
    mean_stability: float  # mean of every s_i pooled over all pieces
    centre_gap: float  # mean over pieces
    mean_deviation: float  # mean over pieces
    mean_bars: float  # mean number of lines / 16
    num_pieces: int
    num_values: int


def structure_summary(pieces: Iterable[Sequence[str]], first: int = 1, method: str = "exact") -> StructureSummary:
    """Paper: mean stability pooled over all bars of all pieces; gap and deviation averaged over pieces.

    Design choice: a piece with no stability value (under 3 bars) adds nothing to the gap / deviation means.
    """
    feats = [piece_features(p, first, method) for p in pieces]
    pooled = [v for f in feats for v in f.values]
    scored = [f for f in feats if f.values]
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return StructureSummary(mean(pooled), mean([f.centre_gap for f in scored]),
                            mean([f.mean_deviation for f in scored]),
                            mean([f.num_lines / LINES_PER_BAR for f in feats]), len(feats), len(pooled))


# ------------------------------------------------------------------------------------------ component 11

def random_reference(names: Iterable[str], seed: int = 29, num_lines: int = 256) -> dict[str, list[str]]:
    """Paper `random`: per file 256 lines of 6 characters, each `random.choice("o-")`, one generator seeded once
    with 29. Design choice: files visited in **sorted** name order (the original's `os.listdir` order is
    filesystem-dependent), so the result depends only on the seed and the names."""
    rng = random.Random(seed)
    out = {}
    for name in sorted(names):
        out[name] = ["".join(rng.choice("o-") for _ in range(6)) for _ in range(num_lines)]
    return out


def repeat_reference(lines: Sequence[str], num_bars: int = MAX_BARS) -> list[str]:
    """Paper `repeat`: bar 1, then bar 2 repeated to 16 bars (stability 0 everywhere)."""
    bar1, bar2 = list(lines[:LINES_PER_BAR]), list(lines[LINES_PER_BAR:2 * LINES_PER_BAR])
    return bar1 + bar2 * (num_bars - 1)


# ------------------------------------------------------------------------------------------ component 12

def generated_features(lines: Sequence[str], prompt_bars: int = 2, method: str = "exact") -> PieceFeatures:
    """Stability and 2-means on the generated bars only: s_i for bars prompt_bars+1 .. 15 (1-indexed), so the
    first generated bar's left neighbour is the last prompt bar."""
    return piece_features(lines, first=prompt_bars, method=method)


def repetition_rate(pieces: Iterable[Sequence[str]], prompt_bars: int = 2) -> float:
    """Fraction of generated full bars (bar index >= prompt_bars) identical to the bar before them."""
    same = total = 0
    for lines in pieces:
        bars = [b for b in bars_of(lines) if len(b) == LINES_PER_BAR]
        for i in range(max(prompt_bars, 1), len(bars)):
            total += 1
            same += bars[i] == bars[i - 1]
    return same / total if total else float("nan")


def distance_to_human(system: StructureSummary, human: StructureSummary) -> float:
    """Mean |difference| of (mean stability, centre gap, mean deviation) against the human reference."""
    return (abs(system.mean_stability - human.mean_stability) + abs(system.centre_gap - human.centre_gap)
            + abs(system.mean_deviation - human.mean_deviation)) / 3


def onset_density(pieces: Iterable[Sequence[str]]) -> dict[str, float]:
    """Fraction of 16th steps with an onset, per voice (crash, ride, snare, kick, hihat, tom)."""
    counts, total = [0] * 6, 0
    for lines in pieces:
        for line in lines:
            total += 1
            for col in range(6):
                counts[col] += line[col] == "o"
    return {v: (c / total if total else float("nan")) for v, c in zip(VOICES, counts)}


def validity(reports: Iterable[RepairReport]) -> dict[str, float]:
    """Format validity over parsed model texts: well-formed line fraction, mean bars, share that ended."""
    reports = list(reports)
    lines = sum(r.num_drum_lines + r.num_dropped for r in reports)
    bad = sum(r.num_malformed for r in reports)
    n = len(reports)
    return {"well_formed_fraction": 1 - bad / lines if lines else float("nan"),
            "num_malformed": float(bad), "num_lines": float(lines),
            "mean_bars": sum(r.num_bars for r in reports) / n if n else float("nan"),
            "ended_fraction": sum(r.ended for r in reports) / n if n else float("nan")}


def _full_bars(lines: Sequence[str], first: int = 0) -> list[tuple[str, ...]]:
    return [tuple(b) for b in bars_of(lines)[first:] if len(b) == LINES_PER_BAR]


def bar_pool(pieces: Iterable[Sequence[str]]) -> Counter:
    """Occurrences of every full bar of the pool pieces (Design choice: the **train** pieces; the original
    built its pool from the test folder)."""
    pool: Counter = Counter()
    for lines in pieces:
        pool.update(_full_bars(lines))
    return pool


def novelty(pieces: Iterable[Sequence[str]], pool: Counter, prompt_bars: int = 2) -> tuple[float, int]:
    """(fraction of non-empty generated full bars not found verbatim in `pool`, number of such bars)."""
    bars = [b for lines in pieces for b in _full_bars(lines, prompt_bars) if any(x != EMPTY for x in b)]
    if not bars:
        return float("nan"), 0
    return sum(b not in pool for b in bars) / len(bars), len(bars)


def duplication_histogram(pieces: Iterable[Sequence[str]], pool: Counter, prompt_bars: int = 2) -> Counter:
    """{occurrences in the pool: number of non-empty generated bars with that many} (component 13)."""
    return Counter(pool.get(b, 0) for lines in pieces for b in _full_bars(lines, prompt_bars)
                   if any(x != EMPTY for x in b))
