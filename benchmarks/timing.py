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
