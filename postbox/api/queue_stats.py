"""`GET /v1/queue/stats`: counts per state, workers, throughput, the cluster's processes,
the delivery settings, the relay (as configured here, and as the live workers see it),
webhook delivery (endpoints, backlog, failures, outcomes), and capacity advice."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from postbox.api.extension import state
from postbox.api.history import history_status
from postbox.queue.advice import advise, figures
from postbox.queue.delivery_settings import cluster_delivery_settings, delivery_settings
from postbox.queue.relay_health import relay_summary, relays_summary
from postbox.webhooks.stats import webhook_stats

bp = Blueprint("queue_stats", __name__)


@bp.get("/queue/stats")
def queue_stats() -> dict[str, Any]:
    """What the queue holds, who is working on it, and what to do about it."""
    return build_stats()


def build_stats() -> dict[str, Any]:
    """The stats answer (also the dashboard's): the queue's numbers, the delivery settings
    (as the live workers publish them: postbox/queue/delivery_settings.py), and the
    capacity advice computed from both."""
    stats = state().gateway.stats()
    delivery = cluster_delivery_settings(stats["instances"], delivery_settings(state().settings))
    relay = delivery.pop("relay")
    rate_per_second = delivery.pop("rate_limit_per_second")
    stats["settings"] = delivery
    workers = relay_summary(stats["instances"])
    stats["relay"] = {
        "host": relay["host"],
        "port": relay["port"],
        "security": relay["security"],
        "custom_ca": relay["custom_ca"],
        "pool_size": relay["pool_size"],
        # A live worker's refused login first: it holds up every email now.
        "config_error": workers["auth_error"] or stats["dead_letters"]["latest_config_error"],
        "workers": workers,
        # Each relay by name (SMTP_RELAYS), as the live workers see it.
        "relays": relays_summary(stats["instances"]),
    }
    name = state().settings.redis.queue_name
    stats["webhooks"] = state().gateway.with_client(lambda client: webhook_stats(client, name))
    found = figures(stats, stats["at_ms"], rate_per_second)
    stats["advice"] = [advice.to_json() for advice in advise(found)]
    stats["history"] = history_status()
    return stats
