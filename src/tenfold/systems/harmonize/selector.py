"""Adaptive selection of the output-imbalance hyperparameter of `harmonize` (Harmonizing output imbalance
for semantic segmentation on extremely-imbalanced input data, arXiv 2211.05295), spec section 2 component 6.

Goal: the FN weight b* (FP weight a = 1 - b*) whose model has OI(val) ~ 0 at the inference threshold 0.5.
The paper's algorithm is not available; both variants are the spec's reconstruction [design choice].

Variant A, `AdaptiveImbalanceSelector` (outer bisection, warm-started rounds):
  1. lo = 0.05, hi = 0.95, b = 0.5; tolerance eps = 0.05; at most K rounds
  2. train a round with L(b) (the caller; warm-started from the previous round)
  3. measure OI on validation (hard counts at t = 0.5)                        -> `update(b, oi)`
  4. |OI| <= eps: stop; OI > eps (FN dominate): lo = b; OI < -eps: hi = b
  5. b = (lo + hi) / 2 (`propose`); OI(b) is assumed decreasing; a violation switches to a grid
     over the untried points of `GRID`; the best-|OI| candidate is kept, not just the last
Variant B, `OnlineImbalanceController` (single run):
  b_{e+1} = clip(b_e + eta * OI_e, 0.05, 0.95), OI_e optionally EMA-smoothed (momentum 0.8),
  b frozen for the last `freeze_fraction` of the epochs.
`require_validation(split)`: the selector only ever sees validation data (pitfall 3).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tenfold.core.errors import InputError

GRID = (0.1, 0.3, 0.5, 0.7, 0.9)  # fallback candidates when OI(b) is not monotone (pitfall 11)


def require_validation(split: str) -> None:
    """Refuse to select a hyperparameter on the test split (threshold/selection leakage, pitfall 3)."""
    if split == "test":
        raise InputError("the output-imbalance selector must not see the test split; pass validation data")


@dataclass
class AdaptiveImbalanceSelector:
    """Bisection on b with memory of every (b, OI) tried; state is a plain dict (checkpointable)."""

    lo: float = 0.05
    hi: float = 0.95
    init: float = 0.5
    tolerance: float = 0.05
    max_rounds: int = 6
    history: list[tuple[float, float]] = field(default_factory=list)
    mode: str = "bisection"
    done: bool = False

    def propose(self) -> float:
        """The b of the next round."""
        if not self.history:
            return self.init
        if self.mode == "grid":
            tried = {round(b, 6) for b, _ in self.history}
            best = self.best()[0]
            left = [b for b in GRID if round(b, 6) not in tried]
            return min(left, key=lambda b: abs(b - best)) if left else best
        return 0.5 * (self.lo + self.hi)

    def update(self, b: float, oi: float) -> None:
        """Record the validation OI of the model trained with `b` (steps 3-5)."""
        if self.done:
            raise RuntimeError("selector already finished; read best()")
        self._check_monotone(b, oi)
        self.history.append((float(b), float(oi)))
        if abs(oi) <= self.tolerance:
            self.done = True
        elif self.mode == "bisection":
            if oi > 0:  # FN dominate: more FN weight
                self.lo = b
            else:  # over-segmentation: less FN weight
                self.hi = b
        if len(self.history) >= self.max_rounds:
            self.done = True
        if self.mode == "grid" and all(any(abs(b - t) < 1e-9 for t, _ in self.history) for b in GRID):
            self.done = True

    def _check_monotone(self, b: float, oi: float) -> None:
        """OI must not increase with b by more than the tolerance (noise allowance)."""
        for b_old, oi_old in self.history:
            if (b - b_old) * (oi - oi_old) > 0 and abs(oi - oi_old) > 2 * self.tolerance:
                self.mode = "grid"

    def best(self) -> tuple[float, float]:
        """(b, OI) with the smallest |OI| seen."""
        if not self.history:
            return self.init, float("nan")
        return min(self.history, key=lambda h: abs(h[1]))

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "AdaptiveImbalanceSelector":
        state = dict(state)
        state["history"] = [tuple(h) for h in state["history"]]
        return cls(**state)


@dataclass
class OnlineImbalanceController:
    """Variant B: b follows the validation OI once per epoch, then freezes."""

    num_epochs: int
    init: float = 0.5
    step_size: float = 0.1
    momentum: float = 0.0
    freeze_fraction: float = 0.2
    lo: float = 0.05
    hi: float = 0.95
    b: float = -1.0
    smoothed: float | None = None
    history: list[tuple[int, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.b < 0:
            self.b = self.init

    @property
    def freeze_epoch(self) -> int:
        """First epoch trained at the frozen b."""
        return self.num_epochs - int(round(self.freeze_fraction * self.num_epochs))

    def update(self, epoch: int, oi: float) -> float:
        """After epoch `epoch` (0-based) with validation OI `oi`: the b of epoch + 1."""
        self.smoothed = oi if self.smoothed is None or self.momentum == 0 else (
            self.momentum * self.smoothed + (1 - self.momentum) * oi)
        self.history.append((int(epoch), float(self.b), float(oi)))
        if epoch + 1 <= self.freeze_epoch:  # the b of the freeze epoch still follows the OI; later ones keep it
            self.b = min(self.hi, max(self.lo, self.b + self.step_size * self.smoothed))
        return self.b

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "OnlineImbalanceController":
        state = dict(state)
        state["history"] = [tuple(h) for h in state["history"]]
        return cls(**state)
