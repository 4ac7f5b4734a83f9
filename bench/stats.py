"""Percentiles of latency samples, the way the report prints them."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted, non-empty values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def percentiles(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max of samples in seconds, as milliseconds (None without samples)."""
    ordered = sorted(seconds)
    marks = {"p50": 0.50, "p95": 0.95, "p99": 0.99, "max": 1.0}
    return {
        name: round(percentile(ordered, q) * 1000, 2) if ordered else None
        for name, q in marks.items()
    }
