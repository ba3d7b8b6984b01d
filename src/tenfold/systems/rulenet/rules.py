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
from pathlib import Path
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
        """Feature names the expression reads (an explicit stack: linear, no recursion)."""
        out, stack = set(), [self]
        while stack:
            e = stack.pop()
            if e.kind == "name":
                out.add(str(e.value))
            stack.extend(e.args)
        return out

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
            return f"-{_paren(self.args[0], _PREC['neg'])}"
        # Design choice: parentheses only where the tree needs them (a left-nested chain a + b + c prints flat), so
        # printed text never nests deeper than the text it was parsed from (MAX_NESTING holds on re-parse).
        prec = _PREC[self.kind]
        return f"{_paren(self.args[0], prec)} {self.kind} {_paren(self.args[1], prec + 1)}"


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "num": 4, "name": 4}


def _paren(e: Expr, min_prec: int) -> str:
    """Text of an operand that must bind at least as tightly as `min_prec` (else parenthesised)."""
    return e.text() if _PREC[e.kind] >= min_prec else f"({e.text()})"


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
        out = list(dict.fromkeys(r.label for r in self.rules))  # ordered set: linear in the number of rules
        return out + ([self.default] if self.default not in out else [])

    @property
    def atoms(self) -> list[tuple[int, Atom]]:
        """(rule index, atom) for every atom, in order: the atom index a of the rule network."""
        return [(i, a) for i, r in enumerate(self.rules) for a in r.atoms]

    @property
    def numeric_features(self) -> list[str]:
        """Numeric features the atoms test (raw or derived), in first-use order: the F columns."""
        return list(dict.fromkeys(a.feature for _, a in self.atoms if a.kind != "cat"))

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

# Limits of a rule file (refused up front with exit 2; the README "Bad input" section lists them).
MAX_RULES_BYTES = 1_000_000  # size of a rules file
MAX_TOKENS = 250_000  # tokens in one rule text (all lines)
MAX_NESTING = 100  # nesting of '(' / '!' / unary '-' inside one atom or expression
MAX_EXPR_DEPTH = 100  # depth of one define's expression tree (a chain a + b + c ... nests to the left)
MAX_DEFINE_DEPTH = 32  # a define that uses a define that uses a define ...: at most this many levels

_SPACE = re.compile(r"\s*", re.ASCII)
_TOKEN = re.compile(r"(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<op><=|>=|==|[<>:&@!()\[\],=+\-*/])", re.ASCII)


def _tokenize(line: str, lineno: int, budget: int = MAX_TOKENS) -> list[tuple[str, str, int]]:
    """(kind, text, column) triples; kind in num/name/op/end. Columns are 1-based.

    One left-to-right scan: every regex match is anchored at `pos` and `pos` only advances, so the work is
    linear in the line length (no slicing of the rest of the line). At most `budget` tokens.
    """
    out, pos, n = [], 0, len(line)
    while True:
        pos = _SPACE.match(line, pos).end()
        if pos >= n:
            break
        m = _TOKEN.match(line, pos)
        if m is None:
            raise RuleParseError(f"line {lineno}, column {pos + 1}: unexpected character {line[pos]!r}")
        if len(out) >= budget:
            raise RuleParseError(f"line {lineno}: more than {MAX_TOKENS} tokens in the rule text; expected a "
                                 f"smaller rule set (limit rules.MAX_TOKENS)")
        kind = m.lastgroup or "op"
        out.append((kind, m.group(kind), pos + 1))
        pos = m.end()
    out.append(("end", "end of line", n + 1))
    return out


class _Line:
    """Recursive-descent parser over the tokens of one line."""

    def __init__(self, line: str, lineno: int, budget: int = MAX_TOKENS) -> None:
        self.toks, self.i, self.lineno, self.depth = _tokenize(line, lineno, budget), 0, lineno, 0

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

    def nest(self) -> None:
        """Enter one level of '(' / '!' / unary '-': refused beyond MAX_NESTING (no RecursionError)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise RuleParseError(f"line {self.lineno}, column {self.peek()[2]}: nesting deeper than {MAX_NESTING} "
                                 f"levels of '(', '!' or '-'; expected at most {MAX_NESTING} (rules.MAX_NESTING)")

    def finite(self, text: str) -> float:
        x = float(text)
        if not math.isfinite(x):
            raise RuleParseError(f"line {self.lineno}, column {self.toks[self.i - 1][2]}: number {text!r} is not "
                                 f"finite (beyond the float64 range); expected a finite number such as 3.5 or 1e300")
        return x

    def number(self) -> float:
        sign = -1.0 if self.accept("-") else 1.0
        return sign * self.finite(self.take("num", expected="a number"))

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
            self.nest()
            e = self.expr()
            self.take("op", ")", "')'")
            self.depth -= 1
            return e
        if self.accept("-"):
            self.nest()
            e = Expr("neg", None, (self.factor(),))
            self.depth -= 1
            return e
        if kind == "num":
            self.i += 1
            return Expr("num", self.finite(text))
        if kind == "name":
            self.i += 1
            return Expr("num", math.pi) if text == "pi" else Expr("name", text)
        raise self.error("a number, a name or '('")

    def atom(self) -> Atom:
        if self.accept("!"):
            self.nest()
            inner = self.atom()
            self.depth -= 1
            return replace(inner, negated=not inner.negated)
        if self.accept("("):
            self.nest()
            a = self.atom()
            self.take("op", ")", "')'")
            self.depth -= 1
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


def expr_depth(e: Expr) -> int:
    """Depth of an expression tree, computed with an explicit stack (no recursion, linear in its size)."""
    best, stack = 0, [(e, 1)]
    while stack:
        node, d = stack.pop()
        best = max(best, d)
        stack.extend((a, d + 1) for a in node.args)
    return best


def _check_define(name: str, expr: Expr, lineno: int, lines: dict[str, int], depth: dict[str, int]) -> None:
    """A define uses channels and EARLIER defines only (so no define can refer to itself or loop), its tree is
    at most MAX_EXPR_DEPTH deep and the chain of defines under it at most MAX_DEFINE_DEPTH long."""
    # Design choice: file order is evaluation order (compute_features), so a use before the definition is refused
    # rather than sorted topologically; it also makes every cycle an error at its first line.
    if expr_depth(expr) > MAX_EXPR_DEPTH:
        raise RuleParseError(f"line {lineno}: define {name!r} nests deeper than {MAX_EXPR_DEPTH} operators; "
                             f"expected a shorter expression (rules.MAX_EXPR_DEPTH), or split it into defines")
    used = expr.names()
    if name in used:
        raise RuleParseError(f"line {lineno}: define {name!r} refers to itself; expected an expression over "
                             f"channels and defines above it")
    depth[name] = 1 + max((depth[u] for u in used if u in depth), default=0)
    if depth[name] > MAX_DEFINE_DEPTH:
        raise RuleParseError(f"line {lineno}: define {name!r} sits on a chain of {depth[name]} defines; expected at "
                             f"most {MAX_DEFINE_DEPTH} (rules.MAX_DEFINE_DEPTH)")
    lines[name] = lineno


def _check_forward(derived: list[tuple[str, Expr]], lines: dict[str, int]) -> None:
    """A define that uses a define of a LATER line (the only way to build a cycle) is refused."""
    order = {n: i for i, (n, _) in enumerate(derived)}
    for i, (name, expr) in enumerate(derived):
        later = sorted(u for u in expr.names() if order.get(u, -1) > i)
        if later:
            raise RuleParseError(f"line {lines[name]}: define {name!r} uses {later[0]!r}, defined later at line "
                                 f"{lines[later[0]]}; expected channels and defines above it (no cycles)")


def _parse_line(p: _Line, lineno: int, derived: list, lines: dict, depth: dict) -> tuple[str, Any]:
    """One statement -> ("define", None) | ("default", label) | ("rule", Rule)."""
    kind, head, _ = p.peek()
    if kind == "name" and head == "define":
        p.i += 1
        name = p.take("name", expected="a derived feature name")
        if name in lines:
            raise RuleParseError(f"line {lineno}: derived feature {name!r} defined twice (first at line "
                                 f"{lines[name]})")
        p.take("op", "=", "'='")
        expr = p.expr()
        p.at_end()
        _check_define(name, expr, lineno, lines, depth)
        derived.append((name, expr))
        return "define", None
    label = p.take("name", expected="a class label, 'default' or 'define'")
    p.take("op", ":", "':'")
    if label == "default":
        default = p.take("name", expected="the default class label")
        p.at_end()
        return "default", default
    atoms = [p.atom()]
    while p.accept("&"):
        atoms.append(p.atom())
    weight = p.number() if p.accept("@") else 1.0
    p.at_end()
    if not 0.0 <= weight <= 1.0:
        raise RuleParseError(f"line {lineno}: rule weight must be in [0, 1], got {weight}")
    return "rule", Rule(label, tuple(atoms), weight, lineno)


def parse_rules(text: str, source: str = "rules") -> RuleSet:
    """Parse rule text (grammar in the module docstring) into a RuleSet; errors name line and column.

    Linear in the text length; refused (RuleParseError, an InputError) beyond MAX_TOKENS tokens, MAX_NESTING
    nesting, MAX_EXPR_DEPTH / MAX_DEFINE_DEPTH for defines, and for defines that refer to themselves or loop.
    """
    rules: list[Rule] = []
    derived: list[tuple[str, Expr]] = []
    lines: dict[str, int] = {}
    depth: dict[str, int] = {}
    default, budget = None, MAX_TOKENS
    try:
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0]
            if not line.strip():
                continue
            p = _Line(line, lineno, budget)
            budget -= len(p.toks) - 1
            what, value = _parse_line(p, lineno, derived, lines, depth)
            if what == "default":
                default = value
            elif what == "rule":
                rules.append(value)
        _check_forward(derived, lines)
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


def read_rules(path: Path | str) -> RuleSet:
    """Read and parse a rules file (the rule language, or YAML for .yaml / .yml): at most MAX_RULES_BYTES bytes of
    UTF-8 text (checked before reading it)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"rules file {path}: not found (or not a file); expected a UTF-8 text file of rules")
    size = path.stat().st_size
    if size > MAX_RULES_BYTES:
        raise InputError(f"rules file {path}: {size} bytes is over the limit of {MAX_RULES_BYTES} bytes "
                         f"(rules.MAX_RULES_BYTES); expected a smaller rule set")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"rules file {path}: byte {err.start} is not valid UTF-8; expected UTF-8 text") from None
    if path.suffix.lower() in (".yaml", ".yml"):  # issue 20: the same rules spelled in YAML (rules_yaml.py)
        from tenfold.systems.rulenet.rules_yaml import parse_yaml_rules

        return parse_yaml_rules(text, source=str(path))
    return parse_rules(text, source=str(path))


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
