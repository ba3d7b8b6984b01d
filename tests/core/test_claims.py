"""The claim record (core/claims.py): per-seed measurements, the noise rule, checks apart, references, budgets."""

from __future__ import annotations

import math

import pytest

from tenfold.core.claims import (Claim, Measurement, Relation, aggregate, counts, format_table, judge,
                                 judge_within, summary_line, t_critical)


@pytest.mark.parametrize("op,margin,method,baseline,expected", [
    (">=", 0.05, 0.80, 0.75, True),    # 0.80 >= 0.75 + 0.05 = 0.80 (equality holds)
    (">=", 0.05, 0.79, 0.75, False),   # 0.79 < 0.80
    ("<=", 1e-9, 0.9 + 5e-10, 0.9, True),  # value <= bound + 1e-9
    ("<=", 1e-9, 0.9 + 2e-9, 0.9, False),
    (">", 0.0, 1.0, 1.0, False),       # strict
    ("<", 0.0, 10.0, 11.0, True),
    ("within", 1e-3, 0.9995, 1.0, True),   # |−0.0005| <= 0.001
    ("within", 1e-3, 0.998, 1.0, False),   # |−0.002| > 0.001
    (">=", -1e-3, 0.9991, 1.0, True),  # 0.9991 >= 1 - 0.001 = 0.999
])
def test_relation_hand_computed(op, margin, method, baseline, expected):
    assert Relation(op, margin).holds(method, baseline) is expected


@pytest.mark.parametrize("op,margin,method,baseline,expected", [
    (">=", 0.05, 0.90, 0.75, 0.10),    # 0.90 - 0.75 - 0.05
    ("<", 0.0, 10.0, 11.0, 1.0),       # 11 + 0 - 10
    ("<=", -0.5, 0.2, 1.0, 0.3),       # 1.0 - 0.5 - 0.2
    ("within", 1e-3, 0.9995, 1.0, 5e-4),  # 0.001 - 0.0005
])
def test_advantage_hand_computed(op, margin, method, baseline, expected):
    assert Relation(op, margin).advantage(method, baseline) == pytest.approx(expected)


def test_non_finite_values_fail_the_plain_relation():
    assert not Relation(">=", 0.0).holds(math.nan, 0.0)
    assert not Relation("<=", 0.0).holds(0.0, math.inf)


def test_relation_text_and_validation():
    assert Relation(">=", 0.05).text() == "method >= baseline + 0.05"
    assert Relation("<=", 1e-9).text("value", "bound") == "value <= bound + 1e-09"
    assert Relation(">=", -1e-3).text() == "method >= baseline - 0.001"
    assert Relation("within", 1e-3).text() == "|method - baseline| <= 0.001"
    with pytest.raises(ValueError, match="Relation.op"):
        Relation("~", 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Relation.tie"):
        Relation(">", 0.0, tie=-1.0)


# ------------------------------------------------------------------------------------ the noise rule

def test_t_critical_matches_the_table():
    # One-sided 95 % quantiles of Student's t (any printed table): df 2 -> 2.920, df 4 -> 2.132.
    assert t_critical(3) == pytest.approx(2.919986, abs=1e-6)
    assert t_critical(5) == pytest.approx(2.131847, abs=1e-6)


def test_clear_gap_with_small_spread_holds():
    # mean 0.10, sd 0.01, se 0.01/sqrt(3) = 0.005774, t-noise 2.92 * 0.005774 = 0.01686 < 0.10
    verdict, reason = judge([0.10, 0.11, 0.09], tie=1e-9)
    assert verdict == "holds" and "0.0169" in reason


def test_contradiction_beyond_noise_fails():
    assert judge([-0.10, -0.11, -0.09], tie=1e-9)[0] == "fails"


def test_gap_within_noise_is_inconclusive():
    # mean 0.1, sd sqrt((0.04 + 0.04 + 0) / 2) = 0.2, se 0.1155, t-noise 0.337 > 0.1
    verdict, reason = judge([0.3, -0.1, 0.1], tie=1e-9)
    assert verdict == "inconclusive" and reason.startswith("within noise")


def test_tie_is_never_a_win():
    # the qae row of the issue: 1.0000000000000044 vs 0.9999999999999427, identical on every seed
    adv = [1.0000000000000044 - 0.9999999999999427] * 3
    verdict, reason = judge(adv, tie=1e-9)
    assert verdict == "inconclusive" and reason.startswith("tie")
    assert judge([0.004, 0.004, 0.004], tie=0.005)[0] == "inconclusive"  # a stated tolerance


def test_one_seed_is_inconclusive_unless_deterministic():
    assert judge([0.5], tie=1e-9)[0] == "inconclusive"
    assert judge([0.5], tie=1e-9, deterministic=True)[0] == "holds"
    assert judge([-0.5], tie=1e-9, deterministic=True)[0] == "fails"
    assert judge([0.5, 0.0], tie=1e-9, deterministic=True)[0] == "inconclusive"  # one seed ties


def test_missing_value_is_inconclusive():
    assert judge([0.1, math.nan, 0.1], tie=1e-9)[0] == "inconclusive"


def test_within_uses_the_whole_interval():
    # diffs 1e-4, -2e-4, 1e-4: |mean| 0, sd 1.73e-4, t-noise 2.92 * 1e-4 = 2.9e-4 < margin 1e-3
    assert judge_within([1e-4, -2e-4, 1e-4], margin=1e-3, tie=1e-9)[0] == "holds"
    assert judge_within([0.010, 0.011, 0.009], margin=1e-3, tie=1e-9)[0] == "fails"
    assert judge_within([0.0, 0.002, -0.002], margin=1e-3, tie=1e-9)[0] == "inconclusive"


# --------------------------------------------------------------------------------------- claim rows

def _m(seed: int, mv: float, bv: float, ref: float | None = None, kind: str = "claim", op: str = ">",
       budget=None, claim: str = "c") -> Measurement:
    return Measurement(system="x", claim=claim, metric="m", method="ours", method_value=mv, baseline="base",
                       baseline_value=bv, relation=Relation(op), seed=seed, wall_time_s=1.0, kind=kind,
                       reference="" if ref is None else "constant", reference_value=math.nan if ref is None else ref,
                       budget=budget or {})


def test_aggregate_pairs_seeds_by_row_and_keeps_order():
    ms = [_m(1, 0.9, 0.8, claim="a"), _m(1, 0.5, 0.4, claim="b"), _m(2, 0.91, 0.8, claim="a"),
          _m(2, 0.52, 0.4, claim="b"), _m(3, 0.92, 0.8, claim="a"), _m(3, 0.51, 0.41, claim="b")]
    a, b = aggregate(ms)
    assert (a.claim, a.seeds, a.method_values, a.baseline_values) == ("a", (1, 2, 3), (0.9, 0.91, 0.92), (0.8,) * 3)
    assert b.claim == "b" and a.verdict == "holds" and a.wall_time_s == 3.0
    with pytest.raises(ValueError, match="measured twice"):
        aggregate([_m(1, 0.9, 0.8), _m(1, 0.9, 0.8)])


def test_degenerate_pair_is_inconclusive():
    # ours beats the baseline by 0.1 on every seed, but the constant predictor beats both
    ms = [_m(s, 0.50 + d, 0.40 + d, ref=0.60) for s, d in ((1, 0.0), (2, 0.01), (3, 0.02))]
    (row,) = aggregate(ms)
    assert row.verdict == "inconclusive" and row.reason.startswith("degenerate")
    ms = [_m(s, 0.70 + d, 0.40 + d, ref=0.60) for s, d in ((1, 0.0), (2, 0.01), (3, 0.02))]
    assert aggregate(ms)[0].verdict == "holds"  # ours beats the reference: not degenerate


def test_lower_is_better_reference_direction():
    # MAE: lower wins; the constant count has MAE 40; ours 20 and the baseline 30 both beat it
    ms = [_m(s, 20.0 + s, 30.0 + s, ref=40.0, op="<") for s in (1, 2, 3)]
    assert aggregate(ms)[0].verdict == "holds"


def test_checks_pass_on_every_seed_or_fail_and_are_not_counted():
    ok = aggregate([_m(s, 0.0, 1.0, kind="check", op="<=") for s in (1, 2, 3)])
    bad = aggregate([_m(s, 0.0 if s != 2 else 2.0, 1.0, kind="check", op="<=", claim="k") for s in (1, 2, 3)])
    assert ok[0].verdict == "holds" and bad[0].verdict == "fails" and "[2]" in bad[0].reason
    claim = aggregate([_m(s, 0.9 + s / 100, 0.8, claim="z") for s in (1, 2, 3)])
    assert counts(ok + bad + claim) == {"holds": 1, "fails": 0, "inconclusive": 0, "claims": 1, "checks": 2,
                                         "checks_failed": 1}
    assert summary_line(ok + claim) == "claims: 1 holds / 0 fails / 0 inconclusive (of 1); checks: 1/1 pass"


def test_budgets_merge_and_unequal_ones_are_flagged():
    ms = [_m(s, 0.9 + s / 100, 0.8, budget={"method": {"epochs": 18, "wall_s": 1.0},
                                             "baseline": {"epochs": 6 + (s == 3), "wall_s": 0.5}}) for s in (1, 2, 3)]
    (row,) = aggregate(ms)
    assert row.budget == {"method": {"epochs": 18, "wall_s": 3.0}, "baseline": {"epochs": "6-7", "wall_s": 1.5}}
    assert row.unequal_budget == ["epochs: 18 vs 6-7"]


def test_round_trip_and_tampering_is_caught():
    (row,) = aggregate([_m(s, 0.9 + s / 100, 0.8, ref=0.5) for s in (1, 2, 3)])
    d = row.to_dict()
    assert d["verdict"] == "holds" and d["expected"] == "method > baseline"
    assert Claim.from_dict(d) == row
    edited = dict(d, method_values=[0.95, 0.95, 0.95])  # an edited number with the verdict unchanged
    with pytest.raises(ValueError, match="digest"):
        Claim.from_dict(edited)
    with pytest.raises(ValueError, match="disagrees"):
        Claim.from_dict(dict(d, verdict="fails"))
    with pytest.raises(TypeError):
        Claim(system="x", claim="c", metric="m", method="a", baseline="b", relation=Relation(">"), kind="claim",
              seeds=(0,), method_values=(1.0,), baseline_values=(0.0,), wall_time_s=0.0,
              verdict="holds")  # type: ignore[call-arg]


def test_missing_values_serialise_as_null():
    (row,) = aggregate([_m(s, math.nan if s == 2 else 0.9, 0.8) for s in (1, 2, 3)])
    d = row.to_dict()
    assert d["method_values"][1] is None and d["verdict"] == "inconclusive"
    assert Claim.from_dict(d).verdict == "inconclusive"


def test_measurement_round_trip_and_seed_verdict():
    m = _m(4, 0.9, 0.8, ref=0.5, budget={"method": {"epochs": 3}})
    assert m.verdict == "holds"  # this seed's plain relation, not a claim verdict
    assert Measurement.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="kind"):
        _m(1, 0.9, 0.8, kind="theorem")


def test_format_table_lists_claims_then_checks_and_the_summary():
    rows = aggregate([_m(s, 0.0, 1.0, kind="check", op="<=", claim="bound") for s in (1, 2, 3)]
                     + [_m(s, 0.5, 0.8, claim="worse") for s in (1, 2, 3)])
    text = format_table(rows)
    assert text.index("worse") < text.index("bound") and "FAILS" in text
    assert text.splitlines()[-1] == "claims: 0 holds / 1 fails / 0 inconclusive (of 1); checks: 1/1 pass"
