"""Redis behind Sentinel: the API, the workers and the CLI find the primary through the
Sentinels, follow a failover without a restart, and with REDIS_ACK_REPLICAS=1 lose no email
they acknowledged when the primary is SIGKILLed (postbox/dev/sentinels.py starts the six
processes)."""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postbox.config import load_settings
from postbox.dev.sentinels import SentinelGroup
from postbox.queue.gateway import CALL_TIMEOUT_SECONDS
from tests.support import email_payload, run_postbox, wait_until

EMAILS = 300
KILL_AT = 100
# Seconds between posts: ~25 emails/s, so the failover happens mid-stream.
POST_INTERVAL = 0.03


@pytest.fixture
def sentinels() -> Iterator[SentinelGroup]:
    # Not under tmp_path: pytest prunes old numbered temp folders, and another pytest run
    # on this machine doing so mid-test took a resyncing replica's folder away.
    with tempfile.TemporaryDirectory(prefix="postbox-sentinels-") as folder:
        group = SentinelGroup(Path(folder), secrets.token_hex(12), secrets.token_hex(12))
        group.start()
        yield group
        group.stop()


@pytest.fixture
def ha_env(service_env: dict[str, str], sentinels: SentinelGroup) -> dict[str, str]:
    return {
        **service_env,
        **sentinels.env(),
        "REDIS_ACK_REPLICAS": "1",
        # Both rate limiters keep their windows in Redis too, through the same pools.
        "API_RATE_LIMIT": "100000/minute",
        "EMAIL_RATE_LIMIT": "1000/second",
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
        if status == 202:
            assert response.headers["RateLimit-Limit"] == "100000"
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
    # The first email posted after the kill to be delivered: the new primary's work.
    posted_after = [r.at for r in smtp_server.received if _index(r) >= KILL_AT]
    resumed = min(posted_after) - killed_at
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


@pytest.mark.parametrize("ack", [0, 1])
def test_emails_taken_while_the_replicas_lag_are_lost_in_a_failover_unless_acked(
    sentinels, api_factory, worker_factory, smtp_server, ha_env, ack
):
    # Replicas that fall behind (frozen here) and then a primary crash: what the primary took
    # meanwhile is not on the replica promoted in its place.
    env = {**ha_env, "REDIS_ACK_REPLICAS": str(ack), "REDIS_ACK_TIMEOUT_MS": "300"}
    api = api_factory(load_settings(env))
    # The worker runs throughout: with 1 it must not send what the replicas do not hold
    # (an add that got 503), since the retry after the failover is a new job there.
    worker_factory(**env)
    assert all(_post(api, index)[0] == 202 for index in range(5))
    wait_until(lambda: _subjects(smtp_server, 5))
    replicas = sentinels.redis_ports[1:]
    sentinels.cut_off_replicas()
    lagging = {index: _post(api, index)[2] for index in range(5, 10)}
    sentinels.kill(sentinels.first_primary)
    for port in replicas:
        sentinels.resume(port)
    sentinels.wait_new_primary()
    accepted = {i: r.json["id"] for i, r in lagging.items() if r.status_code == 202}
    kept = [i for i, job_id in accepted.items() if _known(api, job_id)]

    for index in [i for i, r in lagging.items() if r.status_code == 503]:
        _retry_until_accepted(api, index)
    if ack:
        assert accepted == {}  # each got 503; its retry was kept, and delivered
        # A send held back while no replica answered may wait out its lock and the
        # stalled-job check (5 s each here) before it runs again.
        wait_until(lambda: _subjects(smtp_server, 10), timeout=45)
        time.sleep(1)  # a second send of any, if there were one
        assert _subjects(smtp_server, 10) == Counter({f"ha-{i}": 1 for i in range(10)})
    else:
        assert len(accepted) == 5
        assert kept == []  # answered 202, and gone with the primary
    print(
        f"ack={ack}: {len(accepted)} of 5 posts answered 202 while the replicas lagged,"
        f" {len(accepted) - len(kept)} of them lost"
    )


@pytest.mark.smtp_delay(1.5)
def test_a_completion_no_replica_confirmed_is_replayed_on_the_new_primary_not_resent(
    sentinels, api_factory, worker_factory, smtp_server, ha_env
):
    # The email is sent while the replicas are cut off, so its completion and journal reach
    # only the primary, which is then killed. The worker keeps waiting for a replica, loses
    # the connection, and replays the completion on the promoted replica: no second send.
    env = {**ha_env, "REDIS_ACK_TIMEOUT_MS": "300", "EMAIL_SEND_MARK_SECONDS": "1"}
    api = api_factory(load_settings(env))
    worker_factory(**env)
    status, _, response = _post(api, 0)
    assert status == 202
    job_id = response.json["id"]
    wait_until(lambda: _status(api, job_id) == "sending")
    time.sleep(0.5)  # its lock confirmed and its send mark set, the relay is taking DATA
    sentinels.cut_off_replicas()
    wait_until(lambda: smtp_server.received)
    time.sleep(0.5)  # the completion reaches the primary alone
    sentinels.kill(sentinels.first_primary)
    for port in sentinels.redis_ports[1:]:
        sentinels.resume(port)
    sentinels.wait_new_primary()
    wait_until(lambda: _status(api, job_id) == "sent", timeout=30)
    time.sleep(2)  # a stalled re-run, if the completion were lost, would send by now
    assert len(smtp_server.received) == 1


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
        batch = api.post("/v1/emails/batch", json={"emails": [email_payload(subject="b")]})
    finally:
        for port in replicas:
            sentinels.resume(port)
    assert status == 503
    assert response.json["error"]["code"] == "queue_unavailable"
    assert response.headers["Retry-After"]
    assert took < 3
    assert batch.status_code == 503
    retry_status, _, retry = _post(api, 1)
    assert retry_status == 200  # the job was kept: the retry finds it, and waits again
    assert retry.json["id"].startswith("em_")
    assert api.get("/v1/queue/stats").json["counts"]["waiting"] == 3  # the batch's too


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


def _known(api: Any, job_id: str) -> bool:
    """Whether the current primary knows the email `job_id`."""
    return bool(api.get(f"/v1/emails/{job_id}").status_code == 200)


def _status(api: Any, job_id: str) -> str | None:
    response = api.get(f"/v1/emails/{job_id}")
    return str(response.json["status"]) if response.status_code == 200 else None


def _index(received: Any) -> int:
    return int(str(received.message["Subject"]).removeprefix("ha-"))


def _subjects(smtp_server: Any, expected: int) -> Counter[str] | None:
    counts = Counter(str(r.message["Subject"]) for r in list(smtp_server.received))
    return counts if sum(counts.values()) >= expected else None
