"""`GET /v1/queue/stats` shows the delivery settings the workers use, not the API's own.

In docker-compose.yml and k8s the API has no `SMTP_*` or `EMAIL_RATE_LIMIT`: built from its
own settings, the stats showed relay 127.0.0.1:25 while the workers sent elsewhere, and
the advice used a rate limit nobody had (issue 19). Workers publish theirs in the heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from postbox.config import Settings, load_settings
from tests.conftest import ApiClient, WorkerProcess
from tests.support import wait_until

SECRET = "relay-password-never-shown"


def _stats(api: ApiClient) -> dict[str, Any]:
    reply = api.get("/v1/queue/stats")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    found: dict[str, Any] = reply.get_json()
    return found


def test_stats_show_the_workers_relay_and_limits(
    service_env: dict[str, str],
    api_factory: Callable[[Settings], ApiClient],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    # The API as compose starts it: nothing about the relay or the limits.
    api_env = {k: v for k, v in service_env.items() if not k.startswith("SMTP_")}
    api = api_factory(load_settings(api_env))
    before = _stats(api)
    assert before["settings"]["source"] == "api"
    assert (before["relay"]["host"], before["relay"]["port"]) == ("127.0.0.1", 25)
    worker_factory(
        EMAIL_RATE_LIMIT="40/second",
        EMAIL_WORKER_CONCURRENCY="7",
        SMTP_POOL_SIZE="3",
        SMTP_USERNAME="postbox",
        SMTP_PASSWORD=SECRET,
    )
    stats = wait_until(
        lambda: (found := _stats(api))["settings"]["source"] == "workers" and found, timeout=20
    )
    assert stats["settings"]["rate_limit"] == "40/second"
    assert stats["settings"]["worker_concurrency"] == 7
    assert stats["settings"]["workers_reporting"] == 1
    relay = stats["relay"]
    assert (relay["host"], relay["port"]) == (
        service_env["SMTP_HOST"],
        int(service_env["SMTP_PORT"]),
    )
    assert relay["pool_size"] == 3
    assert SECRET not in str(stats)
