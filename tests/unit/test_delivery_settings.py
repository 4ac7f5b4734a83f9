"""Which delivery settings the stats show: the live workers' (most of them), else the API's."""

from __future__ import annotations

from typing import Any

from postbox.config import load_settings
from postbox.queue.delivery_settings import cluster_delivery_settings, delivery_settings


def _worker(delivery: dict[str, Any], health: str = "healthy") -> dict[str, Any]:
    return {"role": "worker", "health": health, "delivery": delivery}


def test_most_live_workers_win_and_the_others_are_counted() -> None:
    own = delivery_settings(load_settings({}))
    fast = delivery_settings(load_settings({"EMAIL_RATE_LIMIT": "90/second"}))
    slow = delivery_settings(load_settings({"EMAIL_RATE_LIMIT": "5/second"}))
    instances = [_worker(fast), _worker(fast), _worker(slow), _worker(slow, "gone")]
    found = cluster_delivery_settings(instances, own)
    assert found["rate_limit"] == "90/second" and found["source"] == "workers"
    assert (found["workers_reporting"], found["workers_differing"]) == (3, 1)


def test_without_live_workers_the_api_says_its_own() -> None:
    own = delivery_settings(load_settings({"SMTP_HOST": "relay.example.com"}))
    found = cluster_delivery_settings([{"role": "api", "health": "healthy"}], own)
    assert found["source"] == "api" and found["relay"]["host"] == "relay.example.com"


def test_no_secret_is_published() -> None:
    published = delivery_settings(
        load_settings({"SMTP_USERNAME": "user-x", "SMTP_PASSWORD": "pw-secret-x"})
    )
    assert "pw-secret-x" not in str(published) and "user-x" not in str(published)
