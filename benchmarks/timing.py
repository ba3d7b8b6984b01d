"""Shared timing helper of the benchmark scripts (run as `python benchmarks/<key>_bench.py`, so this folder is on
sys.path). Design choice: the median of `repeats` timed calls after untimed warm-ups, because the 2-core machine
is shared and timings have long tails."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time in seconds of `repeats` calls of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function over `repeats` calls timed round-robin, after one warm-up call each.

    Design choice: the arms are compared on a machine shared with a training run, whose load drifts over
    seconds; timing them in turns (A B C D A B C D ...) rather than one after the other (median_seconds on
    each in sequence) spreads the drift over every arm alike.
    """
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(median_seconds(fn, 1, warmup=0))  # one timed call
    return {name: statistics.median(ts) for name, ts in times.items()}
