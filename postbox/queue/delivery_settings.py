"""The delivery settings as the workers use them, published in their heartbeat.

Why from the workers: in a split deployment the API instances have no `SMTP_*`,
`EMAIL_RATE_LIMIT` or concurrency of their own (docker-compose.yml and k8s give those to
the workers), so `GET /v1/queue/stats` built from the API's settings showed the defaults
(`relay` 127.0.0.1:25 while the workers sent to mailpit:1025, issue 19), and the capacity
advice computed with a rate limit nobody used. Each worker's registry entry
(postbox/queue/registry.py) carries `delivery_settings(settings)` under `delivery`; the
stats take the one most live workers report, and the API's own only while no worker does.

Only settings, never a secret: no password, no user name, no key.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from postbox.config import Settings


def delivery_settings(settings: Settings) -> dict[str, Any]:
    """What a worker process delivers with, as JSON (nothing secret)."""
    worker, smtp = settings.worker, settings.smtp
    rate_limit = worker.rate_limit
    return {
        "worker_concurrency": worker.concurrency,
        "max_attempts": worker.max_attempts,
        "rate_limit": str(rate_limit) if rate_limit else None,
        "rate_limit_per_second": rate_limit.per_second if rate_limit else None,
        "domain_rate_limits": {domain: str(limit) for domain, limit in worker.domain_rate_limits},
        "dedup_window_seconds": settings.dedup_window_seconds,
        "relay": {
            "host": smtp.host,
            "port": smtp.port,
            "security": str(smtp.security),
            "custom_ca": smtp.ca_file is not None,
            "pool_size": smtp.pool_size,
            "timeout_seconds": smtp.timeout_seconds,
        },
    }


def cluster_delivery_settings(
    instances: list[dict[str, Any]], own: dict[str, Any]
) -> dict[str, Any]:
    """The settings most live workers publish (with `source: workers` and how many report
    others), or `own` (`source: api`) while no live worker publishes any."""
    published = [
        entry["delivery"]
        for entry in instances
        if entry.get("role") == "worker" and entry["health"] != "gone" and "delivery" in entry
    ]
    if not published:
        return {**own, "source": "api", "workers_reporting": 0, "workers_differing": 0}
    counted = Counter(_key(item) for item in published)
    common, count = counted.most_common(1)[0]
    chosen = next(item for item in published if _key(item) == common)
    return {
        **chosen,
        "source": "workers",
        "workers_reporting": len(published),
        "workers_differing": len(published) - count,
    }


def _key(item: dict[str, Any]) -> str:
    return repr(sorted(item.items()))
