"""The claim record: one row per measured comparison, with a verdict computed from the numbers.

A row says which paper claim it tests, which metric, the method's and the baseline's measured
values, and the expected relation between them. The verdict is never written by hand: it is
evaluated from `method_value`, `baseline_value` and the relation when the row is made.

Relations (`Relation.op`):
  ">="      method >= baseline + margin
  "<="      method <= baseline + margin
  ">"       method >  baseline + margin
  "<"       method <  baseline + margin
  "within"  |method - baseline| <= margin
A non-finite value always fails.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Op = Literal[">=", "<=", ">", "<", "within"]
_OPS = (">=", "<=", ">", "<", "within")


@dataclass(frozen=True)
class Relation:
    op: Op
    margin: float = 0.0

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"Relation.op must be one of {_OPS}, got {self.op!r}")
        if not math.isfinite(self.margin):
            raise ValueError(f"Relation.margin must be finite, got {self.margin!r}")

    def holds(self, method: float, baseline: float) -> bool:
        if not (math.isfinite(method) and math.isfinite(baseline)):
            return False
        if self.op == "within":
            return abs(method - baseline) <= self.margin
        rhs = baseline + self.margin
        return {">=": method >= rhs, "<=": method <= rhs, ">": method > rhs, "<": method < rhs}[self.op]

    def text(self, method: str = "method", baseline: str = "baseline") -> str:
        if self.op == "within":
            return f"|{method} - {baseline}| <= {self.margin:g}"
        if self.margin == 0:
            return f"{method} {self.op} {baseline}"
        sign = "+" if self.margin > 0 else "-"
        return f"{method} {self.op} {baseline} {sign} {abs(self.margin):g}"


@dataclass(frozen=True)
class Claim:
    """One measured comparison. `verdict` is derived, never passed in."""

    system: str
    claim: str
    metric: str
    method: str
    method_value: float
    baseline: str
    baseline_value: float
    relation: Relation
    seeds: tuple[int, ...]
    wall_time_s: float
    details: str = ""
    verdict: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method_value", float(self.method_value))
        object.__setattr__(self, "baseline_value", float(self.baseline_value))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        ok = self.relation.holds(self.method_value, self.baseline_value)
        object.__setattr__(self, "verdict", "holds" if ok else "fails")

    @property
    def expected(self) -> str:
        return self.relation.text("method", "baseline")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("method_value", "baseline_value"):  # JSON has no NaN / inf: a missing measurement is null
            if not math.isfinite(d[key]):
                d[key] = None
        d["relation"] = {"op": self.relation.op, "margin": self.relation.margin}
        d["expected"] = self.expected
        d["seeds"] = list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Claim":
        """Rebuild from `to_dict`; the verdict is recomputed and must agree with the stored one."""
        rel = Relation(d["relation"]["op"], float(d["relation"]["margin"]))
        claim = cls(system=d["system"], claim=d["claim"], metric=d["metric"], method=d["method"],
                    method_value=_num(d["method_value"]), baseline=d["baseline"],
                    baseline_value=_num(d["baseline_value"]), relation=rel, seeds=tuple(d["seeds"]),
                    wall_time_s=float(d["wall_time_s"]), details=d.get("details", ""))
        if "verdict" in d and d["verdict"] != claim.verdict:
            raise ValueError(f"claim {d['claim']!r}: stored verdict {d['verdict']!r} disagrees with "
                             f"the numbers ({claim.verdict!r})")
        return claim


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def format_table(claims: list[Claim]) -> str:
    """A plain-text table for the terminal."""
    header = ("system", "claim", "metric", "method", "value", "baseline", "value", "expected", "verdict")
    rows = [header] + [
        (c.system, _short(c.claim, 48), c.metric, c.method, f"{c.method_value:.6g}", c.baseline,
         f"{c.baseline_value:.6g}", c.expected, c.verdict.upper() if c.verdict == "fails" else c.verdict)
        for c in claims
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    held = sum(c.verdict == "holds" for c in claims)
    lines.append(f"{held}/{len(claims)} claims hold")
    return "\n".join(lines)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
