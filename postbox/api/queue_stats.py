"""`GET /v1/queue/stats`: counts per state, workers, throughput and the delivery settings."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from postbox.api.extension import state

bp = Blueprint("queue_stats", __name__)


@bp.get("/queue/stats")
def queue_stats() -> dict[str, Any]:
    """What the queue holds and who is working on it."""
    settings = state().settings
    stats = state().gateway.stats()
    stats["settings"] = {
        "worker_concurrency": settings.worker.concurrency,
        "max_attempts": settings.worker.max_attempts,
        "rate_limit": settings.worker.rate_limit,
        "domain_rate_limits": dict(settings.worker.domain_rate_limits),
        "dedup_window_seconds": settings.dedup_window_seconds,
    }
    return stats
