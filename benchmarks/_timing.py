"""Shared timing helper for the benchmark scripts (``python benchmarks/NAME.py`` puts this folder on the path)."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time in seconds over ``repeats`` calls after one warm-up call (tracing excluded)."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
