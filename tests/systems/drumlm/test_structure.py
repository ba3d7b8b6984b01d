"""The structural evaluation of drumlm (arXiv 2301.01162, spec components 10-13): Levenshtein, stability,
2-means features, the repeat / random references and the generated-bar metrics, on hand-made bar sequences."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tenfold.systems.drumlm.drumroll import EMPTY, RepairReport
from tenfold.systems.drumlm.structure import (StructureSummary, bar_pool, bar_text, bar_texts, distance_to_human,
                                              duplication_histogram, generated_features, levenshtein, novelty,
                                              onset_density, piece_features, random_reference, repeat_reference,
                                              repetition_rate, stability, structure_summary, two_means, validity)

A = ["---oo-", EMPTY, "----o-", EMPTY, "--o-o-", EMPTY, "----o-", EMPTY] * 2  # kick / snare / hats
B = A[:7] + ["oooooo"] + A[8:]  # line 7: "------" -> "oooooo"


def slow_levenshtein(a: str, b: str) -> int:
    """The textbook O(|a| |b|) table."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_levenshtein_hand() -> None:
    assert levenshtein("---oo-", "--o-o-") == 2  # two substitutions (positions 2 and 3)
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "") == 3 and levenshtein("", "") == 0
    assert levenshtein("kitten", "sitting") == 3
    one = ["--o-o-"] + A[1:]  # line 0 "---oo-" -> "--o-o-"
    assert levenshtein(bar_text(A), bar_text(one)) == 2  # bars differing in that one line


def test_levenshtein_matches_table() -> None:
    rng = random.Random(0)
    for _ in range(300):
        a = "".join(rng.choice("o-\n") for _ in range(rng.randint(0, 40)))
        b = "".join(rng.choice("o-\nx") for _ in range(rng.randint(0, 70)))
        assert levenshtein(a, b) == slow_levenshtein(a, b) == levenshtein(b, a)


def test_bar_text_form() -> None:
    # each line + its newline, joined by another newline: 16 * 7 + 15 = 127 characters
    assert len(bar_text(A)) == 127 and bar_text(A).startswith("---oo-\n\n------\n\n")
    assert len(bar_texts(A * 20)) == 16  # the first 16 bars only
    assert [len(t) for t in bar_texts(A + A[:3])] == [127, 3 * 7 + 2]  # a short last bar is kept


def test_stability_one_varied_bar() -> None:
    assert slow_levenshtein(bar_text(A), bar_text(B)) == levenshtein(bar_text(A), bar_text(B)) == 6
    piece = A * 7 + B + A * 8  # 16 bars, bar 8 (1-indexed) is B
    s = stability(bar_texts(piece))
    # bars 2..15: bar 7 and 9 repeat a neighbour (0); bar 8 is 6 from both -> (0 x6, 6, 0 x7)
    assert s == [0] * 6 + [6] + [0] * 7
    f = piece_features(piece)
    assert (f.centre_gap, f.mean_deviation) == (6.0, 0.0)  # clusters {0 x13} and {6}
    summary = structure_summary([piece])
    assert summary.mean_stability == pytest.approx(6 / 14) and summary.mean_bars == 16.0
    # generated bars only (prompt 2 bars): bars 3..15 -> 13 values, the 6 still among them
    assert generated_features(piece).values == tuple([0] * 5 + [6] + [0] * 7)


def test_stability_short_pieces() -> None:
    assert stability(bar_texts(A * 2)) == []  # under 3 bars: no value
    assert stability(bar_texts(A * 3)) == [0]  # 3 bars: bar 2 only
    s = structure_summary([A * 2, A * 7 + B + A * 8])  # the 2-bar piece adds no value and no gap
    assert s.num_values == 14 and s.centre_gap == 6.0 and s.mean_bars == pytest.approx((2 + 16) / 2)


def test_two_means_hand() -> None:
    # {0, 0, 1, 1, 5, 7}: split {0,0,1,1}|{5,7}: SSE 1 + 2 = 3 (vs 17.2 for {0,0,1,1,5}|{7});
    # centres 0.5 and 6 -> gap 5.5; deviation (4 * 0.5 + 1 + 1) / 6 = 0.6667
    gap, dev = two_means([5, 0, 1, 7, 0, 1])
    assert gap == pytest.approx(5.5) and dev == pytest.approx(4 / 6)
    # {1, 2, 3, 10}: SSE of the splits 38 | 25 | 2 -> {1,2,3}|{10}, centres 2 and 10: gap 8, dev (1+0+1+0)/4
    assert two_means([1, 2, 3, 10]) == pytest.approx((8.0, 0.5))
    for degenerate in ([], [3], [2, 2, 2]):
        assert two_means(degenerate) == (0.0, 0.0)
        assert two_means(degenerate, method="sklearn") == (0.0, 0.0)


def test_two_means_matches_sklearn() -> None:
    rng = random.Random(3)
    for _ in range(4):
        values = [rng.randint(0, 20) for _ in range(14)]
        exact, sk = two_means(values), two_means(values, method="sklearn")
        assert exact == pytest.approx(sk, abs=1e-9), values


def test_repeat_reference_is_zero() -> None:
    human = A * 7 + B + A * 8
    rep = repeat_reference(human)
    assert rep == A + A * 15 and len(rep) == 256
    lead = B + A * 15  # bar 1 differs from bar 2: still every s_i = 0 (bar 2 repeats bar 3)
    s = structure_summary([repeat_reference(lead), rep])
    assert (s.mean_stability, s.centre_gap, s.mean_deviation, s.mean_bars) == (0.0, 0.0, 0.0, 16.0)


def test_random_reference() -> None:
    names = ["c", "a", "b", "d"]
    ref = random_reference(names)
    assert ref == random_reference(list(reversed(names)))  # depends only on the seed and the sorted names
    assert ref != random_reference(names, seed=30)
    assert list(ref) == ["a", "b", "c", "d"] and all(len(p) == 256 for p in ref.values())
    assert all(len(x) == 6 and set(x) <= {"o", "-"} for p in ref.values() for x in p)
    # spec 6: random lines give a mean stability of ~40 (40.38 on the paper's 37 test names); within 10 %
    s = structure_summary(ref.values())
    assert 36 < s.mean_stability < 44 and s.num_values == 4 * 14


def test_repetition_rate_hand() -> None:
    # bars A, A, B, B with a 2-bar prompt: generated bars 3 (B vs A: new) and 4 (B vs B: repeat) -> 1/2
    assert repetition_rate([A + A + B + B]) == 0.5
    # with a 16-bar repeat: 14 generated bars, all repeats
    assert repetition_rate([repeat_reference(A * 16)]) == 1.0
    assert repetition_rate([A + A + B + B[:5]]) == 0.0  # a short last bar is not counted: bar 3 (B vs A) only


def test_novelty_and_duplication() -> None:
    C = ["oo----"] * 16
    pool = bar_pool([A + B])
    # generated (after 2 prompt bars): A (in the pool), C (new), an empty bar (not counted) -> 1/2 of 2 bars
    assert novelty([C + C + A + C + [EMPTY] * 16], pool) == (0.5, 2)
    assert duplication_histogram([C + C + A + C + [EMPTY] * 16], pool) == Counter({1: 1, 0: 1})
    train = [A * 4 + B * 4, B * 3 + C * 5]
    assert novelty(train, bar_pool(train), prompt_bars=0) == (0.0, 16)  # a training piece against its own pool


def test_onset_density_hand() -> None:
    d = onset_density([["o-----", "oo----"], ["------", "---o--"]])
    # 4 lines: crash 2, ride 1, kick 1
    assert d == {"crash": 0.5, "ride": 0.25, "snare": 0.0, "kick": 0.25, "hihat": 0.0, "tom": 0.0}


def test_distance_to_human_and_validity() -> None:
    sys_ = StructureSummary(1.0, 2.0, 3.0, 16.0, 1, 14)
    human = StructureSummary(2.0, 2.0, 5.0, 16.0, 1, 14)
    assert distance_to_human(sys_, human) == pytest.approx(1.0)  # (1 + 0 + 2) / 3
    r1 = RepairReport(num_drum_lines=32, num_malformed=2, num_dropped=0, ended=True)
    r2 = RepairReport(num_drum_lines=14, num_malformed=3, num_dropped=2, ended=False)
    v = validity([r1, r2])
    # 5 malformed of 32 + 14 + 2 = 48 lines; bars (2 + 0.875) / 2; one of two ended
    assert v["well_formed_fraction"] == pytest.approx(1 - 5 / 48)
    assert v["mean_bars"] == pytest.approx(1.4375) and v["ended_fraction"] == 0.5
