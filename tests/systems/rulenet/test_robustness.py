"""rulenet issue 12: linear rule parsing, rule-file limits, defines that loop, non-finite values, diverged runs,
and property-based fuzzing of the rule language and the table readers (hypothesis)."""

from __future__ import annotations

import math
import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenfold.cli import main
from tenfold.core.errors import InputError
from tenfold.systems.rulenet import data as D
from tenfold.systems.rulenet import rules as R
from tenfold.systems.rulenet.rules import Atom, Expr, Rule, RuleSet, parse_rules, read_rules

FAST = settings(max_examples=150, deadline=None, database=None,  # no .hypothesis folder in the checkout
                suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------------------ linear tokenizer

class _CountingStr(str):
    """A line that counts the characters copied by slicing it (the old tokenizer sliced the rest of the line
    once per token: quadratic)."""

    copied = 0

    def __getitem__(self, key):
        out = str.__getitem__(self, key)
        if isinstance(key, slice):
            type(self).copied += len(out)
        return out


class _CountingPattern:
    """Stands in for a compiled regex and counts `match` calls."""

    def __init__(self, pattern):
        self.pattern, self.calls = pattern, 0

    def match(self, text, pos=0):
        self.calls += 1
        return self.pattern.match(text, pos)


def _tokenizer_work(line: str, monkeypatch) -> int:
    """Characters copied by slicing + regex calls made while tokenizing `line`."""
    counters = []
    for name in ("_TOKEN", "_SPACE"):
        if hasattr(R, name):
            counters.append(_CountingPattern(getattr(R, name)))
            monkeypatch.setattr(R, name, counters[-1])
    _CountingStr.copied = 0
    toks = R._tokenize(_CountingStr(line), 1)
    work = _CountingStr.copied + sum(c.calls for c in counters)
    monkeypatch.undo()
    assert len(toks) > 1
    return work


def test_tokenizer_work_grows_linearly_with_the_line(monkeypatch):
    # "x < 1 & " is 8 characters and 4 tokens. A linear scanner does O(1) work per token, so doubling the line
    # doubles the work (ratio 2); the old `line[pos:]` slices per token made it ~4.
    small = _tokenizer_work("x < 1 & " * 3_000 + "y > 2", monkeypatch)
    large = _tokenizer_work("x < 1 & " * 6_000 + "y > 2", monkeypatch)
    assert large / small < 2.2, (small, large)
    assert large <= 4 * 6_000 * 4, large  # at most a few regex calls per token, no copies of the line


def test_200kB_rule_line_parses_with_linear_regex_work(monkeypatch):
    n_atoms = 25_000  # 8 characters each: 200 kB on one line
    text = "default : ok\nfailure : " + "x < 1 & " * n_atoms + "y > 2\n"
    assert len(text) > 200_000
    tok, space = _CountingPattern(R._TOKEN), _CountingPattern(R._SPACE)
    monkeypatch.setattr(R, "_TOKEN", tok)
    monkeypatch.setattr(R, "_SPACE", space)
    rs = parse_rules(text)
    assert len(rs.rules[0].atoms) == n_atoms + 1
    n_tokens = 3 + 2 + 4 * n_atoms + 3  # "default : ok", "failure :", the atoms and "&", "y > 2"
    assert tok.calls + space.calls <= 2 * n_tokens + 4  # per token one space skip + one match; + 1 skip a line


def test_rule_file_over_the_size_limit_is_refused_before_reading(tmp_path, monkeypatch, capsys):
    path = tmp_path / "rules.txt"
    path.write_text("default : ok\nfailure : rpm < 1300\n" + "# padding\n" * 200)
    monkeypatch.setattr(R, "MAX_RULES_BYTES", 1_000)
    monkeypatch.setattr(type(path), "read_bytes", lambda self: pytest.fail("read a file over the limit"))
    with pytest.raises(InputError, match=r"rules.txt: \d+ bytes is over the limit of 1000 bytes"):
        read_rules(path)


def test_token_limit(monkeypatch):
    monkeypatch.setattr(R, "MAX_TOKENS", 20)
    parse_rules("failure : x < 1 & y < 2")  # 8 tokens
    with pytest.raises(InputError, match="more than 20 tokens"):
        parse_rules("failure : x < 1 & y < 2\n" * 3)  # 24 tokens over three lines


# ------------------------------------------------------------------------------ nesting and defines

@pytest.mark.parametrize("text,needle", [
    ("failure : " + "!" * 5000 + "x < 1", "nesting deeper than 100"),
    ("failure : " + "(" * 5000 + "x < 1" + ")" * 5000, "nesting deeper than 100"),
    ("define d = " + "-" * 5000 + "x\nfailure : d < 1", "nesting deeper than 100"),
    ("define d = " + "(" * 5000 + "x" + ")" * 5000 + "\nfailure : d < 1", "nesting deeper than 100"),
    ("define d = " + " + ".join(["x"] * 5000) + "\nfailure : d < 1", "define 'd' nests deeper than 100"),
])
def test_deep_nesting_is_an_input_error_not_a_recursion_error(text, needle):
    with pytest.raises(InputError, match=needle):
        parse_rules(text, source="deep.txt")


def test_expression_at_the_depth_limit_still_works_end_to_end():
    text = "define d = " + " + ".join(["x"] * R.MAX_EXPR_DEPTH) + "\nfailure : d > 1\n"
    rs = parse_rules(text)
    env = R.compute_features(rs, {"x": np.array([1.0])})
    assert env["d"][0] == R.MAX_EXPR_DEPTH  # 100 terms of 1
    again = parse_rules(rs.text())
    assert again.derived == rs.derived and again.text() == rs.text() and "(" not in rs.text()  # prints flat


@pytest.mark.parametrize("text,needle", [
    ("define a = a + 1\nfailure : a < 1", "define 'a' refers to itself"),
    ("define a = b + 1\ndefine b = a * 2\nfailure : a < 1", "define 'a' uses 'b', defined later at line 2"),
    ("define a = c\ndefine b = a\ndefine c = b\nfailure : c < 1", "define 'a' uses 'c', defined later at line 3"),
    ("define a = x\ndefine a = y\nfailure : a < 1", "'a' defined twice"),
])
def test_cyclic_or_self_referencing_defines_are_refused(text, needle):
    with pytest.raises(InputError, match=f"cyc.txt: line .*{needle}"):
        parse_rules(text, source="cyc.txt")


def test_define_chain_deeper_than_the_limit_is_refused():
    chain = ["define d0 = x"] + [f"define d{i} = d{i - 1} + 1" for i in range(1, R.MAX_DEFINE_DEPTH + 5)]
    ok = "\n".join(chain[:R.MAX_DEFINE_DEPTH]) + f"\nfailure : d{R.MAX_DEFINE_DEPTH - 1} > 0"
    assert len(parse_rules(ok).derived) == R.MAX_DEFINE_DEPTH
    with pytest.raises(InputError, match=f"define 'd{R.MAX_DEFINE_DEPTH}' sits on a chain of"):
        parse_rules("\n".join(chain) + "\nfailure : d0 > 0", source="chain.txt")


@pytest.mark.parametrize("text", ["failure : x < 1e999", "failure : x in [-1e999, 0]", "failure : x < 1 @ 1e999",
                                  "define d = x * 1e400\nfailure : d < 1"])
def test_non_finite_numbers_are_refused(text):
    with pytest.raises(InputError, match=r"r\.txt: line [12], column \d+: number '1e\d+' is not finite"):
        parse_rules(text, source="r.txt")


def test_non_utf8_rule_file_is_refused(tmp_path):
    path = tmp_path / "rules.txt"
    path.write_bytes(b"failure : x < 1 # caf\xe9\n")
    with pytest.raises(InputError, match=r"rules.txt: byte 21 is not valid UTF-8"):
        read_rules(path)


# ------------------------------------------------------------------------------- fuzz: rule language

TOKENS = ["define", "default", "in", "pi", "x", "y", "g", "L", "ok", "fail", ":", "=", "==", "<", "<=", ">", ">=",
          "&", "@", "!", "(", ")", "[", "]", ",", "+", "-", "*", "/", "0", "1", "2.5", ".5", "1e3", "1e999", "0.5",
          "\n", "#", "nan", "inf"]


def _parses_or_input_error(text: str) -> RuleSet | None:
    try:
        rs = parse_rules(text, source="fuzz.txt")
    except InputError as err:
        assert str(err).startswith("fuzz.txt: ")
        return None
    again = parse_rules(rs.text())  # the printer's text parses back to the same rule set (up to line numbers)
    assert _unlined(again) == _unlined(rs) and again.text() == rs.text()
    return rs


def _unlined(rs: RuleSet) -> RuleSet:
    return RuleSet(tuple(Rule(r.label, r.atoms, r.weight, 0) for r in rs.rules), rs.derived, rs.default)


@FAST
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text_parses_or_is_an_input_error(text):
    _parses_or_input_error(text)


@FAST
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_fuzz_token_soup_parses_or_is_an_input_error(tokens):
    _parses_or_input_error(" ".join(tokens))


NAMES = st.sampled_from(["x", "y", "rpm", "T_air", "a.b", "in", "define"])
FINITE = st.floats(allow_nan=False, allow_infinity=False)
NONNEG = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
EXPRS = st.recursive(
    st.one_of(NAMES.map(lambda n: Expr("name", n)), NONNEG.map(lambda v: Expr("num", v)),
              st.just(Expr("num", math.pi))),
    lambda sub: st.one_of(sub.map(lambda e: Expr("neg", None, (e,))),
                          st.tuples(st.sampled_from("+-*/"), sub, sub).map(lambda t: Expr(t[0], None, t[1:]))),
    max_leaves=12)


@st.composite
def atoms(draw) -> Atom:
    kind = draw(st.sampled_from(["cmp", "interval", "cat"]))
    feat, neg = draw(NAMES), draw(st.booleans())
    if kind == "cmp":
        return Atom("cmp", feat, op=draw(st.sampled_from(R.OPS)), lo=draw(FINITE), negated=neg)
    if kind == "interval":
        lo, hi = sorted([draw(FINITE), draw(FINITE)])
        return Atom("interval", feat, lo=lo, hi=hi, negated=neg)
    return Atom("cat", feat, label=draw(st.sampled_from(["L", "M", "H", "1", "2.5"])), negated=neg)


@st.composite
def rulesets(draw) -> RuleSet:
    derived = tuple((f"d{i}", draw(EXPRS)) for i in range(draw(st.integers(0, 3))))
    rules = tuple(Rule(draw(st.sampled_from(["fail", "warn"])), tuple(draw(st.lists(atoms(), min_size=1, max_size=4))),
                       draw(st.floats(0.0, 1.0)), 0) for _ in range(draw(st.integers(1, 4))))
    return RuleSet(rules, derived, "ok")


@FAST
@given(rulesets())
def test_fuzz_valid_rule_sets_round_trip_through_text(rs):
    text = rs.text()
    parsed = parse_rules(text)
    assert _unlined(parsed) == rs, text
    assert parse_rules(parsed.text()) == parsed


# ------------------------------------------------------------------------------- fuzz: table readers

CELLS = st.sampled_from(["0", "1", "2", "-3.5", "", "inf", "-inf", "nan", "x", "1e999", "1e39", "L", "ok", "failure",
                         "\"a,b\"", "True"])


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n"


def _load_or_input_error(tmp_path, obs_text: bytes | str, items_text: bytes | str) -> None:
    op, ip = tmp_path / "obs.csv", tmp_path / "items.csv"
    for p, t in ((op, obs_text), (ip, items_text)):
        p.write_bytes(t if isinstance(t, bytes) else t.encode())
    try:
        d = D.load_tables(op, ip)
    except InputError as err:
        assert "obs.csv" in str(err) or "items.csv" in str(err), err
        return
    assert bool(np.isfinite(d.obs.numpy()).all()) and bool(np.isfinite(d.quality.numpy()).all())
    assert d.mask.any(1).all() and len(d) == len(set(d.item_ids.tolist()))


@FAST
@given(st.lists(st.lists(CELLS, min_size=4, max_size=4), max_size=6),
       st.lists(st.lists(CELLS, min_size=3, max_size=3), max_size=4))
def test_fuzz_small_tables_load_or_are_an_input_error(tmp_path, obs_rows, item_rows):
    _load_or_input_error(tmp_path, _table(["item_id", "obs_idx", "rpm", "quality"], obs_rows),
                         _table(["item_id", "grade", "label"], item_rows))


@FAST
@given(st.binary(max_size=120), st.sampled_from(["item_id,grade,label\n1,L,ok\n", "item_id,label\n"]))
def test_fuzz_arbitrary_bytes_load_or_are_an_input_error(tmp_path, obs_bytes, items_text):
    _load_or_input_error(tmp_path, b"item_id,obs_idx,rpm\n" + obs_bytes, items_text)


@FAST
@given(st.text(alphabet=string.printable, max_size=150))
def test_fuzz_arbitrary_text_tables_load_or_are_an_input_error(tmp_path, text):
    _load_or_input_error(tmp_path, text, text)


# ------------------------------------------------------------------- non-finite values, diverged runs

def _real_files(tmp_path, n=60, seed=3, obs_edit=None, rules=D.NOISY_EXPERT_RULES):
    obs, items = D.items_to_frames(D.make_machining(n, seed, M=4))
    if obs_edit is not None:
        obs = obs_edit(obs)
    obs.to_csv(tmp_path / "obs.csv", index=False)
    items.to_csv(tmp_path / "items.csv", index=False)
    (tmp_path / "rules.txt").write_text(rules)
    return ["--set", f"data.observations={tmp_path / 'obs.csv'}", "--set", f"data.items={tmp_path / 'items.csv'}",
            "--set", f"data.rules={tmp_path / 'rules.txt'}"]


TINY = ["--set", "train.warmup_epochs=1", "--set", "train.rule_epochs=1", "--set", "train.joint_epochs=1",
        "--set", "train.projection_steps=2"]


def test_define_that_is_not_finite_on_the_data_is_refused_before_writing(tmp_path, capsys):
    sets = _real_files(tmp_path, obs_edit=lambda o: o.assign(wear=np.where(o.index == 5, 0.0, o.wear)),
                       rules="define r = torque / wear\ndefault : ok\nfailure : r > 1\n")
    out = tmp_path / "run"
    code = main(["--quiet", "train", "rulenet", "--profile", "smoke", *sets, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "rules.txt: define 'r' is inf on observation row 6" in err and "obs.csv" in err, err
    assert not out.exists()


def _poison_after(monkeypatch, epochs: int, how: str):
    """Make training diverge after `epochs` good epochs: a NaN loss, or NaN weights with a finite loss."""
    from tenfold.systems.rulenet import train as T

    real, calls = T.run_epoch, {"n": 0}

    def run_epoch(phase, model, *args):
        calls["n"] += 1
        if calls["n"] > epochs and how == "loss":
            raise FloatingPointError(f"non-finite loss in phase {phase}: {{'loss_rule': nan}}")
        out = real(phase, model, *args)
        if calls["n"] > epochs:
            with __import__("torch").no_grad():
                model.rules.theta.fill_(float("nan"))
        return out

    monkeypatch.setattr(T, "run_epoch", run_epoch)


@pytest.mark.parametrize("how", ["loss", "weights"])
def test_diverged_training_leaves_no_run_directory(tmp_path, monkeypatch, capsys, how):
    sets = _real_files(tmp_path)
    _poison_after(monkeypatch, 1, how)
    out = tmp_path / "run"
    code = main(["--quiet", "train", "rulenet", "--profile", "smoke", *sets, *TINY, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "training diverged" in err and "removed the run directory" in err, err
    assert "Traceback" not in err and not out.exists()


def test_diverged_training_keeps_files_that_were_there_and_no_diverged_checkpoint(tmp_path, monkeypatch, capsys):
    sets = _real_files(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _poison_after(monkeypatch, 2, "weights")
    code = main(["--quiet", "train", "rulenet", "--profile", "smoke", *sets, *TINY, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "removed the files this run created" in err, err
    assert sorted(p.name for p in out.rglob("*")) == ["notes.txt"]
