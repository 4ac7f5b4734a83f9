"""Outages and crashes lose nothing: SMTP down for 30 s, workers SIGKILLed, Redis restarted."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter

import pytest
import redis as sync_redis

from postbox.config import load_settings
from postbox.dev.redis_server import RedisServer
from tests.support import wait_until


def _emails(count: int, tag: str) -> list[dict]:
    return [
        {"from": "s@example.com", "to": f"r{i}@example.org", "subject": f"{tag}-{i}", "text": "x"}
        for i in range(count)
    ]


def _post_all(api, emails: list[dict]) -> set[str]:
    """Enqueue in batches; the Message-IDs of everything accepted."""
    accepted = set()
    for start in range(0, len(emails), 500):
        response = api.post("/v1/emails/batch", json={"emails": emails[start : start + 500]})
        assert response.status_code == 202
        accepted |= {item["message_id"] for item in response.json["data"]}
    return accepted


def _received_ids(smtp_server) -> Counter:
    return Counter(r.message["Message-ID"] for r in list(smtp_server.received))


def _report(name: str, figures: dict) -> None:
    print(f"{name}: {json.dumps(figures)}")


def test_smtp_outage_of_30_seconds_ends_with_everything_delivered(api, smtp_server, worker_factory):
    accepted = _post_all(api, _emails(300, "before"))
    worker_factory(SMTP_TIMEOUT_SECONDS="5")
    wait_until(lambda: len(smtp_server.received) >= 50)

    smtp_server.stop()
    stopped = time.time()
    accepted |= _post_all(api, _emails(100, "during"))
    time.sleep(max(0.0, 30 - (time.time() - stopped)))
    smtp_server.start()
    outage = time.time() - stopped

    wait_until(lambda: set(_received_ids(smtp_server)) >= accepted, timeout=60)
    recovered = time.time() - stopped - outage
    received = _received_ids(smtp_server)
    counts = wait_until(
        lambda: (c := api.get("/v1/queue/stats").json["counts"])["completed"] == 400 and c
    )
    assert counts["failed"] == 0
    assert api.get("/v1/dead-letters").json["data"] == []
    duplicates = sum(n - 1 for n in received.values())
    _report(
        "smtp-outage",
        {
            "outage_s": round(outage, 1),
            "recovered_after_s": round(recovered, 1),
            "emails": len(accepted),
            "duplicates": duplicates,
        },
    )
    # Only a message whose 250 was lost in the outage itself can be sent again.
    assert duplicates <= 8


@pytest.mark.smtp_delay(0.01)
def test_sigkilled_worker_loses_no_email(api, smtp_server, worker_factory):
    # Send marks shorter than the lock: a SIGKILLed worker never reports, so its re-runs wait
    # for nothing (journal.py); the default (120 s) would only slow this test down.
    env = {
        "EMAIL_LOCK_DURATION_MS": "5000",
        "EMAIL_STALLED_INTERVAL_MS": "2000",
        "EMAIL_SEND_MARK_SECONDS": "3",
    }
    accepted = _post_all(api, _emails(2000, "crash"))
    steady = worker_factory(**env)
    victim = worker_factory(**env)
    kills = 0
    for threshold in (300, 800, 1300):
        wait_until(lambda t=threshold: len(smtp_server.received) >= t, timeout=60)
        victim.signal(signal.SIGKILL)
        victim.wait(timeout=10)
        kills += 1
        victim = worker_factory(**env)

    wait_until(lambda: set(_received_ids(smtp_server)) >= accepted, timeout=120)
    wait_until(lambda: api.get("/v1/queue/stats").json["counts"]["completed"] == 2000, timeout=30)
    received = _received_ids(smtp_server)
    duplicates = sum(n - 1 for n in received.values())
    assert api.get("/v1/queue/stats").json["counts"]["failed"] == 0
    _report(
        "worker-sigkill", {"emails": 2000, "kills": kills, "missing": 0, "duplicates": duplicates}
    )
    assert steady.process.poll() is None
    # The journal leaves one window: a kill after the relay took the message and before the
    # worker journalled its 250. Here the relay takes 10 ms to commit (smtp_delay), so a kill
    # can catch each of the SMTP pool's 8 connections in that window, and no more.
    assert duplicates <= kills * 8


def test_redis_restart_under_load_loses_nothing_accepted(
    api_factory, service_env, smtp_server, worker_factory, tmp_path
):
    redis = RedisServer(tmp_path / "aof-redis", appendonly=True, password="aof-test")
    redis.start()
    env = {**service_env, "REDIS_URL": redis.url}
    api = api_factory(load_settings(env))
    worker = worker_factory(REDIS_URL=redis.url)
    accepted: set[str] = set()
    refused = 0
    done = threading.Event()

    def produce() -> None:
        nonlocal refused
        for index, email in enumerate(_emails(600, "aof")):
            response = api.post("/v1/emails", json=email)
            if response.status_code == 202:
                accepted.add(response.json["message_id"])
            else:
                assert response.status_code == 503
                refused += 1
            if index % 10 == 0:
                time.sleep(0.05)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_until(lambda: len(smtp_server.received) >= 100, timeout=30)
        redis.stop()  # SIGTERM: Redis writes its AOF and exits
        time.sleep(2)
        redis.start()
        producer.join(timeout=120)
        assert done.is_set()
        wait_until(lambda: set(_received_ids(smtp_server)) >= accepted, timeout=90)
        client = sync_redis.Redis.from_url(redis.url)
        assert client.zcard("bull:email:failed") == 0
        client.close()
    finally:
        # The worker first: stopped after its Redis, it waited out its 30 s stop timeout.
        worker.stop()
        redis.stop()
    received = _received_ids(smtp_server)
    _report(
        "redis-restart",
        {
            "accepted": len(accepted),
            "refused_503": refused,
            "delivered": len(set(received) & accepted),
            "duplicates": sum(n - 1 for n in received.values()),
        },
    )
