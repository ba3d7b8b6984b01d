"""rulenet rule language: parser, round trip, errors, derived features, hard semantics (spec 5, 7 "Parser")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tenfold.core.errors import InputError
from tenfold.systems.rulenet.data import NOISY_EXPERT_RULES
from tenfold.systems.rulenet.rules import RuleParseError, compute_features, parse_rules, predict_hard


def test_parse_noisy_expert_rules_structure():
    rs = parse_rules(NOISY_EXPERT_RULES)
    assert len(rs.rules) == 6 and len(rs.atoms) == 10
    assert rs.classes == ["failure", "ok"] and rs.default == "ok"
    assert rs.numeric_features == ["dT", "rpm", "power", "strain"]
    assert rs.categorical_features == ["grade"]
    assert rs.raw_names() == {"T_proc", "T_air", "rpm", "torque", "wear", "grade"}
    first = rs.rules[0]
    assert [(a.feature, a.op, a.lo) for a in first.atoms] == [("dT", "<", 9.4), ("rpm", "<", 1300.0)]


def test_atoms_intervals_categories_negation_and_weights():
    rs = parse_rules("default : ok\nfail : x in [1, 2.5] & !(y >= -3) & g == L @ 0.75\nfail : !!z <= 1e3")
    a, b, c = rs.rules[0].atoms
    assert (a.kind, a.lo, a.hi) == ("interval", 1.0, 2.5)
    assert (b.kind, b.op, b.lo, b.negated) == ("cmp", ">=", -3.0, True)
    assert (c.kind, c.label) == ("cat", "L")
    assert rs.rules[0].weight == 0.75
    assert rs.rules[1].atoms[0].negated is False  # double negation


def test_round_trip_text_ruleset_text():
    rs = parse_rules(NOISY_EXPERT_RULES + "failure : wear in [200, 240] & !(torque > 30) @ 0.5\n")
    again = parse_rules(rs.text())
    assert again == rs
    assert again.text() == rs.text()


def test_derived_features_hand_computed():
    # spec 7: torque 20 Nm, rpm 1500 -> P = 20 * 1500 * 2 pi / 60 = 1000 pi = 3141.59 W (< 3500: PWF fires);
    # torque 40, rpm 1539 -> 40 * 1539 * 2 pi / 60 = 2052 pi = 6446.5 W (no PWF).
    rs = parse_rules(NOISY_EXPERT_RULES)
    env = compute_features(rs, {"torque": np.array([20.0, 40.0]), "rpm": np.array([1500.0, 1539.0]),
                                "T_air": np.array([300.0, 300.0]), "T_proc": np.array([308.0, 311.0]),
                                "wear": np.array([0.0, 0.0])})
    np.testing.assert_allclose(env["power"], [1000 * math.pi, 2052 * math.pi], rtol=1e-12)
    assert round(float(env["power"][0]), 1) == 3141.6 and round(float(env["power"][1]), 1) == 6446.5
    true = parse_rules(NOISY_EXPERT_RULES.replace("power < 3100", "power < 3500"))
    raw = {"torque": np.array([20.0, 40.0]), "rpm": np.array([1500.0, 1539.0]), "T_air": np.array([300.0, 300.0]),
           "T_proc": np.array([311.0, 311.0]), "wear": np.array([0.0, 0.0]), "grade": np.array(["L", "L"])}
    assert predict_hard(true, raw).tolist() == [0, 1]  # PWF fires only for the first item


def test_arithmetic_precedence_and_parentheses():
    rs = parse_rules("define a = 1 + 2 * x - (3 - x) / 2\ndefine b = -x * 2\nc : a > 0 & b < 0")
    env = compute_features(rs, {"x": np.array([4.0])})
    # a = 1 + 8 - (3 - 4) / 2 = 9.5;  b = -8
    assert float(env["a"][0]) == 9.5 and float(env["b"][0]) == -8.0


def test_hard_semantics_strict_vs_non_strict_at_equality_and_first_match():
    rs = parse_rules("default : c\na : x < 1\nb : x <= 1\na2 : x >= 3\nb : x > 3 & g == H")
    raw = {"x": np.array([0.5, 1.0, 2.0, 3.0, 4.0]), "g": np.array(["H", "H", "H", "H", "H"])}
    cls = [rs.classes[i] for i in predict_hard(rs, raw)]
    # 0.5 -> a (first match, also b); 1.0 -> b (strict < fails at equality); 2 -> default; 3 -> a2 (>= holds,
    # > fails); 4 -> a2 (first match in file order, b also fires)
    assert cls == ["a", "b", "c", "a2", "a2"]


@pytest.mark.parametrize("text,needle", [
    ("failure : dT < ", "line 1, column 16: expected a number, got 'end of line'"),
    ("failure dT < 3", "line 1, column 9: expected ':'"),
    ("default : ok\nfailure : dT << 3", "line 2, column 15: expected a number, got"),
    ("failure : dT ~ 3", "unexpected character '~'"),
    ("failure : x in [3, 1]", "lo > hi"),
    ("failure : x < 1 @ 2", "rule weight must be in [0, 1]"),
    ("failure : __import__('os').system('ls') < 1", "line 1, column 22: unexpected character"),
    ("failure : open(x) > 1", "line 1, column 15: expected one of <, <=, >, >=, ==, 'in', got '('"),
    ("define p = torque ** 2\nfailure : p > 1", "line 1, column 20: expected a number, a name or '('"),
    ("# only comments\n", "no rules found"),
    ("ok : x < 1\ndefault : ok", "also has rules"),
])
def test_parse_errors_name_line_column_and_expected_token(text, needle):
    with pytest.raises(RuleParseError) as err:
        parse_rules(text)
    assert needle in str(err.value)
    assert isinstance(err.value, InputError)


def test_validate_rejects_unknown_features_and_labels():
    rs = parse_rules(NOISY_EXPERT_RULES)
    channels = {"T_air", "T_proc", "rpm", "torque", "wear"}
    rs.validate(channels, {"grade": {"L", "M", "H"}})
    with pytest.raises(InputError, match="unknown channel"):
        rs.validate(channels - {"wear"}, {"grade": {"L", "M", "H"}})
    with pytest.raises(InputError, match="has no category 'H'"):
        rs.validate(channels, {"grade": {"L", "M"}})
    bad = parse_rules("default : ok\nfailure : speed > 3")
    with pytest.raises(InputError, match="line 2: unknown feature 'speed'"):
        bad.validate(channels, {})
