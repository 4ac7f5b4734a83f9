"""The worker's Redis traffic per email, counted by Redis itself: while busy, finishing a job
also takes the next one; while idle, an arriving email wakes one job slot, not all of them."""

from __future__ import annotations

import redis as sync_redis

from postbox.queue.connection import POOL_SIZE
from tests.support import email_payload, wait_until

SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro")


def _script_calls(client: sync_redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in SCRIPT_COMMANDS)


def test_a_busy_worker_makes_under_three_script_calls_per_email(
    api, redis_client, smtp_server, worker_factory
):
    emails = [email_payload(to=f"busy{i}@example.org") for i in range(500)]
    assert api.post("/v1/emails/batch", json={"emails": emails}).status_code == 202
    before = _script_calls(redis_client)

    worker = worker_factory()  # one process, 100 job slots
    wait_until(lambda: len(smtp_server.received) == 500, timeout=60)

    # Per email: the lock confirmation before the send (shared by the sends that reach it
    # together: ~0.5 per email here), the send journal, then the completion that also takes
    # the next job (in one round trip). Each slot's first fetch and the heartbeats add a little.
    per_email = (_script_calls(redis_client) - before) / 500
    print(f"busy worker: {per_email:.2f} script calls per email")
    assert per_email < 3
    # Its 100 slots share a bounded pool; redis-py keeps every connection it opened.
    # Only this worker's: bullmq names them after the worker (instance id and pid), and the
    # session's Redis may still hold connections of earlier tests' workers.
    own = f"-{worker.process.pid}"
    worker_connections = [
        c
        for c in redis_client.client_list()
        if c["name"].startswith("bull:") and c["name"].endswith(own)
    ]
    print(f"busy worker: {len(worker_connections)} Redis connections")
    assert len(worker_connections) <= POOL_SIZE


def test_an_idle_worker_takes_trickling_emails_without_a_fetch_storm(
    api, redis_client, smtp_server, worker_factory
):
    worker_factory()  # one process, 100 job slots, all idle
    assert api.post("/v1/emails", json=email_payload(subject="warm-up")).status_code == 202
    wait_until(lambda: len(smtp_server.received) == 1)
    before = _script_calls(redis_client)

    for n in range(20):
        assert api.post("/v1/emails", json=email_payload(subject=f"n{n}")).status_code == 202
        wait_until(lambda n=n: len(smtp_server.received) == n + 2)

    # Per email, the API's claim and add, and the worker's wake-up fetch, one more slot's
    # empty fetch, the journal and the completion: 6. Waking every idle slot would be ~100.
    per_email = (_script_calls(redis_client) - before) / 20
    print(f"idle worker: {per_email:.1f} script calls per trickling email")
    assert per_email <= 10
