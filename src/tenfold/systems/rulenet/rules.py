"""The expert rule language: parser, `RuleSet`, derived features and the hard rule semantics.

Paper: Li, Huang, Zhou, Fu, Qiao, He, "Deep Explainable Learning with Graph Based Data Assessing and Rule
Reasoning", arXiv 2211.04693. The paper body is unavailable; the grammar is the spec's reconstruction
(specs/rulenet.md, components 4 and 5), parsed by a hand-written recursive-descent parser (never `eval`).

Grammar (one statement per line; `#` starts a comment):
    define NAME = EXPR                    derived feature g(k) (component 4): + - * / ( ) numbers, `pi`, names
    default : LABEL                       the class when no rule fires (binary: the negative class)
    CLASS : ATOM (& ATOM)* [@ WEIGHT]      a rule; rules of one class are OR-ed (component 5)
    ATOM := FEAT OP NUMBER | FEAT in [NUMBER, NUMBER] | CATFEAT == LABEL | ! ATOM | ( ATOM )
    OP   := < | <= | > | >=

Hard semantics (component 6, "hard"): atom 1[f op theta]; rule = AND of atoms; class fires = OR of its rules.
Multi-class decision (design choice, spec 5 "ordered rule list"): the class of the first rule in file order that
fires, else the default class.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from tenfold.core.errors import InputError

OPS = ("<", "<=", ">", ">=")


class RuleParseError(InputError):
    """A rule file does not parse; the message names the line, the column and the expected token."""


# ----------------------------------------------------------------------------------------------- AST

@dataclass(frozen=True)
class Expr:
    """Arithmetic over feature names: kind in {"num", "name", "+", "-", "*", "/", "neg"}."""

    kind: str
    value: float | str | None = None
    args: tuple["Expr", ...] = ()

    def names(self) -> set[str]:
        if self.kind == "name":
            return {str(self.value)}
        return set().union(*(a.names() for a in self.args)) if self.args else set()

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """Evaluate on numpy arrays or torch tensors (same operators); `env` maps names to columns."""
        if self.kind == "num":
            return self.value
        if self.kind == "name":
            return env[str(self.value)]
        vals = [a.evaluate(env) for a in self.args]
        if self.kind == "neg":
            return -vals[0]
        a, b = vals
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b}[self.kind]()

    def text(self) -> str:
        if self.kind == "num":
            return "pi" if self.value == math.pi else _num(float(self.value))
        if self.kind == "name":
            return str(self.value)
        if self.kind == "neg":
            return f"-{_paren(self.args[0])}"
        return f"{_paren(self.args[0])} {self.kind} {_paren(self.args[1])}"


def _paren(e: Expr) -> str:
    return e.text() if e.kind in ("num", "name") else f"({e.text()})"


def _num(x: float) -> str:
    """Shortest text that parses back to exactly the same float64."""
    return repr(float(x))


@dataclass(frozen=True)
class Atom:
    """One test. kind "cmp": feature op lo; "interval": lo <= feature <= hi; "cat": feature == label."""

    kind: str
    feature: str
    op: str = ""
    lo: float = 0.0
    hi: float = 0.0
    label: str = ""
    negated: bool = False

    def text(self) -> str:
        if self.kind == "cmp":
            core = f"{self.feature} {self.op} {_num(self.lo)}"
        elif self.kind == "interval":
            core = f"{self.feature} in [{_num(self.lo)}, {_num(self.hi)}]"
        else:
            core = f"{self.feature} == {self.label}"
        return f"!({core})" if self.negated else core


@dataclass(frozen=True)
class Rule:
    label: str
    atoms: tuple[Atom, ...]
    weight: float = 1.0
    line: int = 0

    def text(self) -> str:
        w = "" if self.weight == 1.0 else f" @ {_num(self.weight)}"
        return f"{self.label} : " + " & ".join(a.text() for a in self.atoms) + w


@dataclass(frozen=True)
class RuleSet:
    """Parsed rules: derived formulas, rules in file order, the default class."""

    rules: tuple[Rule, ...]
    derived: tuple[tuple[str, Expr], ...] = ()
    default: str = "default"
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def classes(self) -> list[str]:
        """Rule classes in order of first appearance, then the default class last."""
        out: list[str] = []
        for r in self.rules:
            if r.label not in out:
                out.append(r.label)
        return out + ([self.default] if self.default not in out else [])

    @property
    def atoms(self) -> list[tuple[int, Atom]]:
        """(rule index, atom) for every atom, in order: the atom index a of the rule network."""
        return [(i, a) for i, r in enumerate(self.rules) for a in r.atoms]

    @property
    def numeric_features(self) -> list[str]:
        """Numeric features the atoms test (raw or derived), in first-use order: the F columns."""
        out: list[str] = []
        for _, a in self.atoms:
            if a.kind != "cat" and a.feature not in out:
                out.append(a.feature)
        return out

    @property
    def categorical_features(self) -> list[str]:
        return sorted({a.feature for _, a in self.atoms if a.kind == "cat"})

    def raw_names(self) -> set[str]:
        """Names the rules need from the data (channels or static attributes), derived ones expanded."""
        derived = dict(self.derived)
        out: set[str] = set()
        for f in self.numeric_features:
            out |= derived[f].names() if f in derived else {f}
        return out | set(self.categorical_features)

    def validate(self, numeric: set[str], categorical: Mapping[str, set[str]], source: str = "rules") -> None:
        """Unknown feature names or category labels are an InputError naming the line."""
        derived = dict(self.derived)
        for name, expr in self.derived:
            bad = expr.names() - numeric - set(derived)
            if bad:
                raise InputError(f"{source}: derived feature {name!r} uses unknown channel(s) {sorted(bad)}; "
                                 f"known numeric features: {sorted(numeric)}")
        for r in self.rules:
            for a in r.atoms:
                if a.kind == "cat":
                    if a.feature not in categorical:
                        raise InputError(f"{source}: line {r.line}: unknown categorical feature {a.feature!r}; "
                                         f"known: {sorted(categorical)}")
                    if a.label not in categorical[a.feature]:
                        raise InputError(f"{source}: line {r.line}: {a.feature} has no category {a.label!r}; "
                                         f"known: {sorted(categorical[a.feature])}")
                elif a.feature not in numeric and a.feature not in derived:
                    raise InputError(f"{source}: line {r.line}: unknown feature {a.feature!r}; known: "
                                     f"{sorted(numeric | set(derived))}")

    def text(self) -> str:
        lines = [f"define {n} = {e.text()}" for n, e in self.derived]
        lines.append(f"default : {self.default}")
        lines += [r.text() for r in self.rules]
        return "\n".join(lines) + "\n"

    def with_rules(self, rules: list[Rule]) -> "RuleSet":
        return replace(self, rules=tuple(rules))


# ------------------------------------------------------------------------------------------ tokenizer

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<op><=|>=|==|[<>:&@!()\[\],=+\-*/]))")


def _tokenize(line: str, lineno: int) -> list[tuple[str, str, int]]:
    """(kind, text, column) triples; kind in num/name/op/end. Columns are 1-based."""
    out, pos = [], 0
    while pos < len(line):
        if line[pos:].strip() == "":
            break
        m = _TOKEN.match(line, pos)
        if m is None or m.end() == pos:
            col = pos + len(line[pos:]) - len(line[pos:].lstrip()) + 1
            raise RuleParseError(f"line {lineno}, column {col}: unexpected character {line[col - 1]!r}")
        kind = m.lastgroup or "op"
        out.append((kind, m.group(kind), m.start(kind) + 1))
        pos = m.end()
    out.append(("end", "end of line", len(line) + 1))
    return out


class _Line:
    """Recursive-descent parser over the tokens of one line."""

    def __init__(self, line: str, lineno: int) -> None:
        self.toks, self.i, self.lineno = _tokenize(line, lineno), 0, lineno

    def peek(self) -> tuple[str, str, int]:
        return self.toks[self.i]

    def error(self, expected: str) -> RuleParseError:
        kind, text, col = self.peek()
        return RuleParseError(f"line {self.lineno}, column {col}: expected {expected}, got {text!r}")

    def take(self, kind: str, text: str | None = None, expected: str | None = None) -> str:
        k, t, _ = self.peek()
        if k != kind or (text is not None and t != text):
            raise self.error(expected or repr(text) if text else (expected or kind))
        self.i += 1
        return t

    def accept(self, text: str) -> bool:
        if self.peek()[0] == "op" and self.peek()[1] == text:
            self.i += 1
            return True
        return False

    def number(self) -> float:
        sign = -1.0 if self.accept("-") else 1.0
        return sign * float(self.take("num", expected="a number"))

    # EXPR := TERM (("+"|"-") TERM)* ; TERM := FACTOR (("*"|"/") FACTOR)* ; FACTOR := num | name | pi | (EXPR) | -FACTOR
    def expr(self) -> Expr:
        e = self.term()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take("op")
            e = Expr(op, None, (e, self.term()))
        return e

    def term(self) -> Expr:
        e = self.factor()
        while self.peek()[1] in ("*", "/") and self.peek()[0] == "op":
            op = self.take("op")
            e = Expr(op, None, (e, self.factor()))
        return e

    def factor(self) -> Expr:
        kind, text, _ = self.peek()
        if self.accept("("):
            e = self.expr()
            self.take("op", ")", "')'")
            return e
        if self.accept("-"):
            return Expr("neg", None, (self.factor(),))
        if kind == "num":
            self.i += 1
            return Expr("num", float(text))
        if kind == "name":
            self.i += 1
            return Expr("num", math.pi) if text == "pi" else Expr("name", text)
        raise self.error("a number, a name or '('")

    def atom(self) -> Atom:
        if self.accept("!"):
            inner = self.atom()
            return replace(inner, negated=not inner.negated)
        if self.accept("("):
            a = self.atom()
            self.take("op", ")", "')'")
            return a
        feat = self.take("name", expected="a feature name")
        kind, text, _ = self.peek()
        if kind == "name" and text == "in":
            self.i += 1
            self.take("op", "[", "'['")
            lo = self.number()
            self.take("op", ",", "','")
            hi = self.number()
            self.take("op", "]", "']'")
            if not lo <= hi:
                raise RuleParseError(f"line {self.lineno}: interval [{lo}, {hi}] of {feat!r} has lo > hi")
            return Atom("interval", feat, lo=lo, hi=hi)
        if self.accept("=="):
            label = self.take("name", expected="a category label") if self.peek()[0] == "name" else \
                self.take("num", expected="a category label")
            return Atom("cat", feat, label=label)
        if kind == "op" and text in OPS:
            self.i += 1
            return Atom("cmp", feat, op=text, lo=self.number())
        raise self.error("one of <, <=, >, >=, ==, 'in'")

    def at_end(self) -> None:
        if self.peek()[0] != "end":
            raise self.error("end of line")


def parse_rules(text: str, source: str = "rules") -> RuleSet:
    """Parse rule text (grammar in the module docstring) into a RuleSet; errors name line and column."""
    rules: list[Rule] = []
    derived: list[tuple[str, Expr]] = []
    default = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0]
        if not line.strip():
            continue
        try:
            p = _Line(line, lineno)
            kind, head, _ = p.peek()
            if kind == "name" and head == "define":
                p.i += 1
                name = p.take("name", expected="a derived feature name")
                if name in dict(derived):
                    raise RuleParseError(f"line {lineno}: derived feature {name!r} defined twice")
                p.take("op", "=", "'='")
                derived.append((name, p.expr()))
                p.at_end()
                continue
            label = p.take("name", expected="a class label, 'default' or 'define'")
            p.take("op", ":", "':'")
            if label == "default":
                default = p.take("name", expected="the default class label")
                p.at_end()
                continue
            atoms = [p.atom()]
            while p.accept("&"):
                atoms.append(p.atom())
            weight = p.number() if p.accept("@") else 1.0
            p.at_end()
            if not 0.0 <= weight <= 1.0:
                raise RuleParseError(f"line {lineno}: rule weight must be in [0, 1], got {weight}")
            rules.append(Rule(label, tuple(atoms), weight, lineno))
        except RuleParseError as err:
            raise RuleParseError(f"{source}: {err}") from None
    if not rules:
        raise RuleParseError(f"{source}: no rules found (expected lines like 'failure : power < 3500')")
    labels = {r.label for r in rules}
    if default is None:
        default = "not_" + rules[0].label if len(labels) == 1 else "default"
    if default in labels:
        raise RuleParseError(f"{source}: the default class {default!r} also has rules")
    return RuleSet(tuple(rules), tuple(derived), default)


# ------------------------------------------------------------------------------------ hard semantics

def compute_features(rs: RuleSet, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Raw columns plus every derived feature g(k) (component 4); works on numpy arrays or torch tensors."""
    env = dict(raw)
    for name, expr in rs.derived:
        env[name] = expr.evaluate(env)
    return env


def atom_hard(atom: Atom, values: Any) -> np.ndarray:
    """1[f op theta] for one atom on a numpy column (categorical: string equality)."""
    if atom.kind == "cat":
        out = np.asarray(values).astype(str) == atom.label
    elif atom.kind == "interval":
        out = (values >= atom.lo) & (values <= atom.hi)
    else:
        out = {"<": values < atom.lo, "<=": values <= atom.lo, ">": values > atom.lo, ">=": values >= atom.lo}[atom.op]
    out = np.asarray(out, dtype=bool)
    return ~out if atom.negated else out


def predict_hard(rs: RuleSet, raw: Mapping[str, Any]) -> np.ndarray:
    """Class index per item (index into `rs.classes`): first firing rule in file order, else the default."""
    env = compute_features(rs, {k: np.asarray(v) for k, v in raw.items()})
    n = len(next(iter(env.values())))
    classes = rs.classes
    out = np.full(n, classes.index(rs.default), dtype=np.int64)
    decided = np.zeros(n, dtype=bool)
    for r in rs.rules:
        fires = np.ones(n, dtype=bool)
        for a in r.atoms:
            fires &= atom_hard(a, env[a.feature])
        new = fires & ~decided
        out[new] = classes.index(r.label)
        decided |= fires
    return out
