"""The claim record: per-seed measurements, aggregated into rows with a verdict computed by a noise rule.

A system's `reproduce(profile, seed, out_dir)` returns one seed's `Measurement`s. `tenfold reproduce`
calls it once per claim seed (paired: one seed gives every arm the same data, split and initialisation)
and `aggregate` joins the measurements that share (system, claim, metric, method, baseline) into one
`Claim` with the per-seed values of both arms, the trivial reference, the budgets and a verdict.

Relations (`Relation.op`), read per seed as "method OP baseline + margin":
  ">=" / ">"   the method is higher than the baseline by more than `margin` (the two are judged alike:
               a difference within the tie tolerance is a tie, never a win)
  "<=" / "<"   the method is lower than the baseline + margin
  "within"     |method - baseline| <= margin
The advantage of a seed is how far the relation is satisfied: m - b - margin for > / >=,
b + margin - m for < / <=.

The noise rule (`judge`; README "How to read a verdict"):
  claim, n >= 2 seeds, not deterministic:
      d = the mean paired advantage, se = its standard error (sample sd / sqrt(n)),
      c = t_{0.95, n-1} * se (a one-sided paired t-test at the 5 % level; 2.92 se for n = 3).
      holds         d >  max(c, tie)
      fails         d < -max(c, tie)
      inconclusive  otherwise (within noise, or a tie)
      "within": holds when the whole interval |mean diff| + c lies inside the margin; fails when
      |mean diff| - c lies outside it.
  claim, deterministic (the value cannot vary with the seed: a memory peak, an exactly computed bound):
      judged seed by seed without noise: holds if every seed's advantage > tie, fails if any < -tie.
  claim, one seed and not deterministic: inconclusive (noise cannot be judged from one seed).
  a missing (non-finite) value: inconclusive for a claim.
  degenerate: when the row names a trivial reference (constant, majority, chance, untrained) and
      neither arm beats it by the same rule, the claim is inconclusive (degenerate).
  check (a guarantee of the code: a theorem, an invariant, a structural limit): passes only when
      the plain relation holds on every seed; a failing check is a bug. Checks are never counted
      as reproduced claims.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, Sequence

Op = Literal[">=", "<=", ">", "<", "within"]
Kind = Literal["claim", "check"]
_OPS = (">=", "<=", ">", "<", "within")
_KINDS = ("claim", "check")
LEVEL = 0.05  # one-sided level of the paired t-test
DEFAULT_TIE = 1e-9  # float round-off: a difference this small is a tie


@dataclass(frozen=True)
class Relation:
    op: Op
    margin: float = 0.0
    tie: float = DEFAULT_TIE

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"Relation.op must be one of {_OPS}, got {self.op!r}")
        if not math.isfinite(self.margin):
            raise ValueError(f"Relation.margin must be finite, got {self.margin!r}")
        if not (math.isfinite(self.tie) and self.tie >= 0):
            raise ValueError(f"Relation.tie must be finite and >= 0, got {self.tie!r}")

    def holds(self, method: float, baseline: float) -> bool:
        """The plain relation on one pair of values (no noise rule); a non-finite value never holds."""
        if not (math.isfinite(method) and math.isfinite(baseline)):
            return False
        if self.op == "within":
            return abs(method - baseline) <= self.margin
        rhs = baseline + self.margin
        return {">=": method >= rhs, "<=": method <= rhs, ">": method > rhs, "<": method < rhs}[self.op]

    def advantage(self, method: float, baseline: float) -> float:
        """How far one seed satisfies the relation (> 0: satisfied); for "within", margin - |m - b|."""
        if self.op == "within":
            return self.margin - abs(method - baseline)
        if self.op in (">=", ">"):
            return method - baseline - self.margin
        return baseline + self.margin - method

    @property
    def higher_is_better(self) -> bool | None:
        return None if self.op == "within" else self.op in (">=", ">")

    def text(self, method: str = "method", baseline: str = "baseline") -> str:
        if self.op == "within":
            return f"|{method} - {baseline}| <= {self.margin:g}"
        if self.margin == 0:
            return f"{method} {self.op} {baseline}"
        sign = "+" if self.margin > 0 else "-"
        return f"{method} {self.op} {baseline} {sign} {abs(self.margin):g}"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "margin": self.margin, "tie": self.tie}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Relation":
        return cls(d["op"], float(d["margin"]), float(d.get("tie", DEFAULT_TIE)))


Budget = Mapping[str, Mapping[str, Any]]  # {"method": {"epochs": 18, "wall_s": 3.1}, "baseline": {...}}


@dataclass(frozen=True)
class Measurement:
    """One seed's comparison, made by a system's `reproduce`. `verdict` is this seed's plain relation only.

    Args:
        kind: "claim" (a falsifiable statement of the paper) or "check" (a guarantee of the code).
        reference / reference_value: the trivial predictor of the task measured in the same run
            (constant, majority, chance, untrained); "" when the row is not a learning comparison.
        budget: each arm's budget, e.g. {"method": {"epochs": 18}, "baseline": {"epochs": 6}}.
        deterministic: the value cannot vary with the seed (judged without a noise rule).
    """

    system: str
    claim: str
    metric: str
    method: str
    method_value: float
    baseline: str
    baseline_value: float
    relation: Relation
    seed: int
    wall_time_s: float
    details: str = ""
    kind: Kind = "claim"
    reference: str = ""
    reference_value: float = float("nan")
    budget: Budget = field(default_factory=dict)
    deterministic: bool = False
    verdict: str = field(init=False)

    def __post_init__(self) -> None:
        for key in ("method_value", "baseline_value", "reference_value", "wall_time_s"):
            object.__setattr__(self, key, float(getattr(self, key)))
        object.__setattr__(self, "seed", int(self.seed))
        if self.kind not in _KINDS:
            raise ValueError(f"Measurement.kind must be one of {_KINDS}, got {self.kind!r}")
        ok = self.relation.holds(self.method_value, self.baseline_value)
        object.__setattr__(self, "verdict", "holds" if ok else "fails")

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.system, self.claim, self.metric, self.method, self.baseline)

    def to_dict(self) -> dict[str, Any]:
        return {"system": self.system, "claim": self.claim, "metric": self.metric, "method": self.method,
                "method_value": _out(self.method_value), "baseline": self.baseline,
                "baseline_value": _out(self.baseline_value), "relation": self.relation.to_dict(),
                "seed": self.seed, "wall_time_s": self.wall_time_s, "details": self.details, "kind": self.kind,
                "reference": self.reference, "reference_value": _out(self.reference_value),
                "budget": _plain(self.budget), "deterministic": self.deterministic}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Measurement":
        return cls(system=d["system"], claim=d["claim"], metric=d["metric"], method=d["method"],
                   method_value=_num(d["method_value"]), baseline=d["baseline"],
                   baseline_value=_num(d["baseline_value"]), relation=Relation.from_dict(d["relation"]),
                   seed=int(d["seed"]), wall_time_s=float(d["wall_time_s"]), details=d.get("details", ""),
                   kind=d.get("kind", "claim"), reference=d.get("reference", ""),
                   reference_value=_num(d.get("reference_value")), budget=d.get("budget", {}),
                   deterministic=bool(d.get("deterministic", False)))


# ------------------------------------------------------------------------------------------- noise rule

def t_critical(n: int, level: float = LEVEL) -> float:
    """The one-sided t quantile t_{1-level, n-1} (n = 3: 2.920)."""
    from scipy.stats import t

    return float(t.ppf(1.0 - level, n - 1))


def judge(advantages: Sequence[float], tie: float, deterministic: bool = False) -> tuple[str, str]:
    """(verdict, reason) of a claim from its per-seed advantages (see the module docstring)."""
    a = [float(x) for x in advantages]
    if not a or not all(math.isfinite(x) for x in a):
        return "inconclusive", "a value is missing (NaN or inf)"
    n = len(a)
    if deterministic:
        if all(x > tie for x in a):
            return "holds", f"deterministic; every seed beyond the tie tolerance {tie:g}"
        if any(x < -tie for x in a):
            return "fails", f"deterministic; contradicted beyond the tie tolerance {tie:g}"
        return "inconclusive", f"tie: within {tie:g}"
    if n < 2:
        return "inconclusive", "one seed: noise cannot be judged"
    mean, crit = _mean_and_noise(a)
    bar = max(crit, tie)
    text = f"mean advantage {mean:.4g}, t-noise {crit:.3g}, tie {tie:g}"
    if mean > bar:
        return "holds", text
    if mean < -bar:
        return "fails", text
    return "inconclusive", ("tie; " if abs(mean) <= tie else "within noise; ") + text


def judge_within(diffs: Sequence[float], margin: float, tie: float, deterministic: bool = False) -> tuple[str, str]:
    """(verdict, reason) of "|method - baseline| <= margin" from the per-seed differences m - b."""
    d = [float(x) for x in diffs]
    if not d or not all(math.isfinite(x) for x in d):
        return "inconclusive", "a value is missing (NaN or inf)"
    if deterministic:
        return judge([margin - abs(x) for x in d], tie, deterministic=True)
    if len(d) < 2:
        return "inconclusive", "one seed: noise cannot be judged"
    mean, crit = _mean_and_noise(d)
    text = f"|mean difference| {abs(mean):.4g}, t-noise {crit:.3g}, margin {margin:g}"
    if abs(mean) + crit < margin - tie:
        return "holds", text
    if abs(mean) - crit > margin + tie:
        return "fails", text
    return "inconclusive", "within noise; " + text


# ------------------------------------------------------------------------------------------ claim rows

@dataclass(frozen=True)
class Claim:
    """One claim (or check) row over its seeds. `verdict`, `reason` and `digest` are derived, never passed in."""

    system: str
    claim: str
    metric: str
    method: str
    baseline: str
    relation: Relation
    kind: Kind
    seeds: tuple[int, ...]
    method_values: tuple[float, ...]
    baseline_values: tuple[float, ...]
    wall_time_s: float
    reference: str = ""
    reference_values: tuple[float, ...] = ()
    budget: Budget = field(default_factory=dict)
    deterministic: bool = False
    details: str = ""
    verdict: str = field(init=False)
    reason: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        for key in ("method_values", "baseline_values", "reference_values"):
            object.__setattr__(self, key, tuple(float(x) for x in getattr(self, key)))
        object.__setattr__(self, "wall_time_s", float(self.wall_time_s))
        if self.kind not in _KINDS:
            raise ValueError(f"Claim.kind must be one of {_KINDS}, got {self.kind!r}")
        n = len(self.seeds)
        if len(self.method_values) != n or len(self.baseline_values) != n or len(self.reference_values) not in (0, n):
            raise ValueError(f"claim {self.claim!r}: one value per seed is required for every arm")
        verdict, reason = self._judge()
        object.__setattr__(self, "verdict", verdict)
        object.__setattr__(self, "reason", reason)

    def _judge(self) -> tuple[str, str]:
        rel, m, b = self.relation, self.method_values, self.baseline_values
        if self.kind == "check":
            bad = [s for s, x, y in zip(self.seeds, m, b) if not rel.holds(x, y)]
            return ("holds", "holds on every seed") if not bad else ("fails", f"violated on seeds {bad}")
        if rel.op == "within":
            verdict, reason = judge_within([x - y for x, y in zip(m, b)], rel.margin, rel.tie, self.deterministic)
        else:
            verdict, reason = judge([rel.advantage(x, y) for x, y in zip(m, b)], rel.tie, self.deterministic)
        if self.reference_values and rel.higher_is_better is not None and not self._beats_reference():
            return "inconclusive", f"degenerate: neither arm beats the reference {self.reference!r} ({reason})"
        return verdict, reason

    def _beats_reference(self) -> bool:
        sign = 1.0 if self.relation.higher_is_better else -1.0
        ref = self.reference_values
        for arm in (self.method_values, self.baseline_values):
            adv = [sign * (x - r) for x, r in zip(arm, ref)]
            if judge(adv, self.relation.tie, self.deterministic)[0] == "holds":
                return True
        return False

    @property
    def expected(self) -> str:
        return self.relation.text("method", "baseline")

    @property
    def method_mean(self) -> float:
        return _mean(self.method_values)

    @property
    def baseline_mean(self) -> float:
        return _mean(self.baseline_values)

    @property
    def unequal_budget(self) -> list[str]:
        """The budget entries both arms state with different values (wall time excepted): flagged in the report."""
        m, b = self.budget.get("method", {}), self.budget.get("baseline", {})
        return [f"{k}: {m[k]} vs {b[k]}" for k in m if k in b and not k.startswith("wall") and m[k] != b[k]]

    def _content(self) -> dict[str, Any]:
        return {"system": self.system, "claim": self.claim, "metric": self.metric, "method": self.method,
                "baseline": self.baseline, "relation": self.relation.to_dict(), "kind": self.kind,
                "seeds": list(self.seeds), "method_values": [_out(x) for x in self.method_values],
                "baseline_values": [_out(x) for x in self.baseline_values], "wall_time_s": self.wall_time_s,
                "reference": self.reference, "reference_values": [_out(x) for x in self.reference_values],
                "budget": _plain(self.budget), "deterministic": self.deterministic, "details": self.details}

    @property
    def digest(self) -> str:
        """sha256 of the row's content: a hand-edited number, relation or verdict is caught on load."""
        blob = json.dumps(self._content(), sort_keys=True, allow_nan=False).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        d = self._content()
        d.update(expected=self.expected, verdict=self.verdict, reason=self.reason,
                 method_mean=_out(self.method_mean), baseline_mean=_out(self.baseline_mean),
                 unequal_budget=self.unequal_budget, digest=self.digest)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Claim":
        """Rebuild from `to_dict`; the verdict is recomputed, and the stored verdict and digest must agree.

        Any malformed field (missing, wrong type, a budget that is not {arm: {name: value}}) is a ValueError.
        """
        try:
            for name in ("system", "claim", "metric", "method", "baseline", "kind"):
                if not isinstance(d[name], str):
                    raise TypeError(f"'{name}' must be a string")
            for name in ("reference", "details"):
                if not isinstance(d.get(name, ""), str):
                    raise TypeError(f"'{name}' must be a string")
            budget = d.get("budget", {})
            if not (isinstance(budget, Mapping) and all(isinstance(v, Mapping) for v in budget.values())):
                raise TypeError("'budget' must map each arm to {name: value}")
            claim = cls(system=d["system"], claim=d["claim"], metric=d["metric"], method=d["method"],
                        baseline=d["baseline"], relation=Relation.from_dict(d["relation"]), kind=d["kind"],
                        seeds=tuple(int(x) for x in d["seeds"]),
                        method_values=tuple(_num(x) for x in d["method_values"]),
                        baseline_values=tuple(_num(x) for x in d["baseline_values"]),
                        wall_time_s=float(d["wall_time_s"]), reference=d.get("reference", ""),
                        reference_values=tuple(_num(x) for x in d.get("reference_values", ())),
                        budget=budget, deterministic=bool(d.get("deterministic", False)),
                        details=d.get("details", ""))
            verdict, digest = claim.verdict, claim.digest
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, IndexError) as err:
            raise ValueError(f"claim row {str(d.get('claim', '?'))[:80]!r}: field {err} missing or of the wrong "
                             "type") from None
        if "digest" not in d:
            raise ValueError(f"claim {d['claim']!r}: no digest; rows written by `tenfold reproduce` carry one")
        if "verdict" in d and d["verdict"] != verdict:
            raise ValueError(f"claim {d['claim']!r}: stored verdict {d['verdict']!r} disagrees with "
                             f"the numbers ({verdict!r})")
        if d["digest"] != digest:
            raise ValueError(f"claim {d['claim']!r}: its digest does not match its content (edited by hand?)")
        return claim


def aggregate(measurements: Iterable[Measurement]) -> list[Claim]:
    """Join per-seed measurements sharing (system, claim, metric, method, baseline) into rows, first-seen order.

    A seed may measure a row twice (a system's bug): that is an error, not a silent overwrite.
    """
    groups: dict[tuple[str, ...], list[Measurement]] = {}
    for m in measurements:
        rows = groups.setdefault(m.key, [])
        if any(r.seed == m.seed for r in rows):
            raise ValueError(f"row {m.key} measured twice on seed {m.seed}")
        rows.append(m)
    claims = []
    for group in groups.values():
        first = group[0]
        for m in group[1:]:
            if (m.relation, m.kind, m.reference) != (first.relation, first.kind, first.reference):
                raise ValueError(f"row {first.key}: relation, kind or reference differ between seeds")
        has_ref = first.reference != ""
        claims.append(Claim(
            system=first.system, claim=first.claim, metric=first.metric, method=first.method,
            baseline=first.baseline, relation=first.relation, kind=first.kind, seeds=tuple(m.seed for m in group),
            method_values=tuple(m.method_value for m in group), baseline_values=tuple(m.baseline_value for m in group),
            wall_time_s=sum(m.wall_time_s for m in group), reference=first.reference,
            reference_values=tuple(m.reference_value for m in group) if has_ref else (),
            budget=_merge_budgets([m.budget for m in group]), deterministic=all(m.deterministic for m in group),
            details=" | ".join(f"seed {m.seed}: {m.details}" for m in group if m.details)))
    return claims


def _merge_budgets(budgets: list[Budget]) -> dict[str, dict[str, Any]]:
    """Per arm and entry: the value when every seed agrees, else "min-max" (e.g. early-stopped epochs)."""
    out: dict[str, dict[str, Any]] = {}
    for arm in dict.fromkeys(a for b in budgets for a in b):
        keys = dict.fromkeys(k for b in budgets for k in b.get(arm, {}))
        out[arm] = {}
        for k in keys:
            vals = [b[arm][k] for b in budgets if k in b.get(arm, {})]
            if k.startswith("wall"):
                out[arm][k] = round(sum(float(v) for v in vals), 3)  # wall time adds up over seeds
            elif all(v == vals[0] for v in vals):
                out[arm][k] = vals[0]
            else:
                out[arm][k] = f"{min(vals)}-{max(vals)}"
    return out


# -------------------------------------------------------------------------------------------- helpers

def _mean_and_noise(xs: Sequence[float]) -> tuple[float, float]:
    """(mean, t_{0.95, n-1} * se) of n >= 2 paired values: the noise bar of the rule."""
    return _mean(xs), t_critical(len(xs)) * _std(xs) / math.sqrt(len(xs))


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _std(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _out(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no NaN / inf: a missing measurement is null


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _plain(budget: Budget) -> dict[str, dict[str, Any]]:
    return {str(arm): {str(k): _out(v) if isinstance(v, float) else v for k, v in entries.items()}
            for arm, entries in budget.items()}


def mean_std(xs: Sequence[float]) -> str:
    """"0.842 ± 0.013" (sample std; "± 0" for one seed)."""
    if not xs:
        return ""
    return f"{_mean(xs):.4g} ± {_std(xs):.2g}"


def counts(claims: Sequence[Claim]) -> dict[str, int]:
    """Claims only (checks are reported apart): {"holds", "fails", "inconclusive", "checks", "checks_failed"}."""
    rows = [c for c in claims if c.kind == "claim"]
    checks = [c for c in claims if c.kind == "check"]
    return {"holds": sum(c.verdict == "holds" for c in rows), "fails": sum(c.verdict == "fails" for c in rows),
            "inconclusive": sum(c.verdict == "inconclusive" for c in rows), "claims": len(rows),
            "checks": len(checks), "checks_failed": sum(c.verdict != "holds" for c in checks)}


def summary_line(claims: Sequence[Claim]) -> str:
    c = counts(claims)
    return (f"claims: {c['holds']} holds / {c['fails']} fails / {c['inconclusive']} inconclusive "
            f"(of {c['claims']}); checks: {c['checks'] - c['checks_failed']}/{c['checks']} pass")


def format_table(claims: Sequence[Claim]) -> str:
    """A plain-text table for the terminal: claims first, then checks, then the summary line."""
    header = ("system", "kind", "claim", "metric", "method", "mean ± std", "baseline", "mean ± std", "reference",
              "expected", "verdict", "seeds")
    ordered = [c for c in claims if c.kind == "claim"] + [c for c in claims if c.kind == "check"]
    rows = [header] + [
        (c.system, c.kind, _short(c.claim, 44), _short(c.metric, 32), _short(c.method, 18),
         mean_std(c.method_values), _short(c.baseline, 18), mean_std(c.baseline_values),
         mean_std(c.reference_values) if c.reference else "", c.expected,
         c.verdict.upper() if c.verdict == "fails" else c.verdict, ",".join(map(str, c.seeds)))
        for c in ordered
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(summary_line(claims))
    return "\n".join(lines)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
