"""How much each measurement does: the full run (under 5 minutes on 2 cores) or --quick."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one benchmark run."""

    drain_jobs: int
    rates: tuple[float, ...]
    rate_seconds: float
    batch_sizes: tuple[int, ...]
    batch_seconds: float
    batch_concurrency: int
    e2e_rate: float
    e2e_seconds: float
    # --peers only: the realistic relay's rows, and the drains with every feature on.
    relay_jobs: int
    features_jobs: int
    suppressions: int


FULL = Plan(
    drain_jobs=20_000,
    rates=(250, 500, 1000),
    rate_seconds=10,
    batch_sizes=(100, 500),
    batch_seconds=6,
    batch_concurrency=4,
    e2e_rate=200,
    e2e_seconds=10,
    relay_jobs=5_000,
    features_jobs=20_000,
    suppressions=100_000,
)

QUICK = Plan(
    drain_jobs=1_000,
    rates=(250, 500),
    rate_seconds=1.5,
    batch_sizes=(100, 500),
    batch_seconds=1.5,
    batch_concurrency=4,
    e2e_rate=200,
    e2e_seconds=2,
    relay_jobs=300,
    features_jobs=1_000,
    suppressions=1_000,
)
