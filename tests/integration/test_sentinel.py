"""Redis behind Sentinel: the API, the workers and the CLI find the primary through the
Sentinels, follow a failover without a restart, and with REDIS_ACK_REPLICAS=1 lose no email
they acknowledged when the primary is SIGKILLed (tests/sentinel_group.py starts the six
processes)."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postbox.config import load_settings
from postbox.queue.gateway import CALL_TIMEOUT_SECONDS
from tests.sentinel_group import SentinelGroup
from tests.support import email_payload, run_postbox, wait_until

EMAILS = 300
KILL_AT = 100
# Seconds between posts: ~25 emails/s, so the failover happens mid-stream.
POST_INTERVAL = 0.03


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path / "ha", secrets.token_hex(12), secrets.token_hex(12))
    group.start()
    yield group
    group.stop()


@pytest.fixture
def ha_env(service_env: dict[str, str], sentinels: SentinelGroup) -> dict[str, str]:
    return {
        **service_env,
        **sentinels.env(),
        "REDIS_ACK_REPLICAS": "1",
        # Jobs active on the lost primary come back within seconds, not 30.
        "EMAIL_LOCK_DURATION_MS": "5000",
        "EMAIL_STALLED_INTERVAL_MS": "5000",
    }


def _post(api: Any, index: int) -> tuple[int, float, Any]:
    started = time.monotonic()
    response = api.post(
        "/v1/emails",
        json=email_payload(subject=f"ha-{index}", to=[f"r{index}@example.org"]),
        headers={"Idempotency-Key": f"ha-{index}"},
    )
    return response.status_code, time.monotonic() - started, response


def test_acknowledged_emails_survive_a_primary_kill_and_are_delivered_once(
    sentinels, api_factory, worker_factory, smtp_server, ha_env
):
    api = api_factory(load_settings(ha_env))
    worker_factory(**ha_env)
    statuses: Counter[int] = Counter()
    refused: list[int] = []
    slowest = 0.0
    killed_at = 0.0
    for index in range(EMAILS):
        if index == KILL_AT:
            sentinels.kill(sentinels.first_primary)
            killed_at = time.time()
        status, took, response = _post(api, index)
        statuses[status] += 1
        slowest = max(slowest, took)
        assert status in {202, 503}, response.json
        if status == 503:
            assert response.headers["Retry-After"]
            refused.append(index)
        time.sleep(POST_INTERVAL)
    assert slowest < CALL_TIMEOUT_SECONDS + 1
    sentinels.wait_new_primary()

    retried = Counter(_retry_until_accepted(api, index) for index in refused)
    received = wait_until(lambda: _subjects(smtp_server, EMAILS), timeout=60)
    assert set(received) == {f"ha-{i}" for i in range(EMAILS)}
    assert max(received.values()) == 1, [s for s, n in received.items() if n > 1]
    after_kill = [r.at for r in smtp_server.received if r.at > killed_at]
    resumed = min(after_kill) - killed_at
    assert resumed < 15
    print(
        "sentinel failover: "
        + json.dumps(
            {
                "statuses": statuses,
                "retried": retried,
                "slowest_post_s": round(slowest, 2),
                "delivery_resumed_s": round(resumed, 2),
            }
        )
    )


def test_a_post_that_no_replica_confirms_answers_503_and_its_retry_is_safe(
    api_factory, sentinels, ha_env
):
    api = api_factory(load_settings({**ha_env, "REDIS_ACK_TIMEOUT_MS": "500"}))
    assert _post(api, 0)[0] == 202
    replicas = sentinels.redis_ports[1:]
    for port in replicas:
        sentinels.pause(port)
    try:
        status, took, response = _post(api, 1)
    finally:
        for port in replicas:
            sentinels.resume(port)
    assert status == 503
    assert response.json["error"]["code"] == "queue_unavailable"
    assert response.headers["Retry-After"]
    assert took < 3
    retry_status, _, retry = _post(api, 1)
    assert retry_status == 200  # the job was kept: the retry finds it, and waits again
    assert retry.json["id"].startswith("em_")


def test_the_cli_reaches_redis_through_the_sentinels(sentinels, ha_env):
    listed = run_postbox(ha_env, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sentinels.password not in listed.stdout + listed.stderr


def _retry_until_accepted(api: Any, index: int) -> int:
    """Post again with the same key until accepted (a client honouring Retry-After, fast)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, _, response = _post(api, index)
        if status in {200, 202}:
            return status
        assert status == 503, response.json
        time.sleep(0.5)
    pytest.fail(f"email {index} was refused for 30 s after the failover")


def _subjects(smtp_server: Any, expected: int) -> Counter[str] | None:
    counts = Counter(str(r.message["Subject"]) for r in list(smtp_server.received))
    return counts if sum(counts.values()) >= expected else None
