"""The claim record: verdicts are computed from the numbers (core/claims.py)."""

from __future__ import annotations

import math

import pytest

from tenfold.core.claims import Claim, Relation, format_table


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


def test_non_finite_values_fail():
    assert not Relation(">=", 0.0).holds(math.nan, 0.0)
    assert not Relation("<=", 0.0).holds(0.0, math.inf)


def test_relation_text():
    assert Relation(">=", 0.05).text() == "method >= baseline + 0.05"
    assert Relation("<=", 1e-9).text("value", "bound") == "value <= bound + 1e-09"
    assert Relation(">=", -1e-3).text() == "method >= baseline - 0.001"
    assert Relation("within", 1e-3).text() == "|method - baseline| <= 0.001"
    with pytest.raises(ValueError, match="Relation.op"):
        Relation("~", 0.0)  # type: ignore[arg-type]


def _claim(mv: float, bv: float) -> Claim:
    return Claim(system="x", claim="c", metric="m", method="ours", method_value=mv, baseline="base",
                 baseline_value=bv, relation=Relation(">=", 0.0), seeds=(0, 1), wall_time_s=1.5)


def test_verdict_is_derived_and_round_trips():
    held, failed = _claim(0.9, 0.8), _claim(0.7, 0.8)
    assert (held.verdict, failed.verdict) == ("holds", "fails")
    d = held.to_dict()
    assert d["expected"] == "method >= baseline" and d["verdict"] == "holds"
    assert Claim.from_dict(d) == held
    d["verdict"] = "fails"  # a hand-edited verdict is caught
    with pytest.raises(ValueError, match="disagrees"):
        Claim.from_dict(d)
    with pytest.raises(TypeError):
        Claim(system="x", claim="c", metric="m", method="a", method_value=1, baseline="b", baseline_value=0,
              relation=Relation(">=", 0), seeds=(0,), wall_time_s=0.0, verdict="holds")  # type: ignore[call-arg]


def test_format_table_counts():
    text = format_table([_claim(0.9, 0.8), _claim(0.7, 0.8)])
    assert "1/2 claims hold" in text and "FAILS" in text and "holds" in text


def test_non_finite_measurement_serialises_as_null_and_fails():
    c = _claim(math.nan, 0.8)
    d = c.to_dict()
    assert d["method_value"] is None and d["verdict"] == "fails"
    assert Claim.from_dict(d).verdict == "fails"
