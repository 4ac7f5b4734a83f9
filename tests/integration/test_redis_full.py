"""Redis out of memory (`maxmemory`, `noeviction`): every POST is a 503 `queue_full` with
Retry-After, logged once, and no idempotency claim outlives a refused add, so the client's
retry after memory is freed is a new email, delivered."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis as sync_redis

from postbox.config import load_settings
from postbox.dev.redis_server import RedisServer
from postbox.queue.keys import PostboxKeys
from tests.support import email_payload, wait_until

FILLER = "x" * 65_536
TEXT = "x" * 1000
KEYS = PostboxKeys("email")


@pytest.fixture
def private_redis(tmp_path) -> Iterator[tuple[RedisServer, sync_redis.Redis]]:
    """A Redis of this test's own: its memory limit is the test's to change."""
    server = RedisServer(tmp_path / "redis", password="full-test")
    server.start()
    client = sync_redis.Redis.from_url(server.url, decode_responses=True)
    yield server, client
    client.close()
    server.stop()


def fill(client: sync_redis.Redis) -> int:
    """Set maxmemory a little above what is used, write filler keys until Redis refuses,
    then lower maxmemory 1 MB below use (so the few KB that client buffers and the worker's
    completions free do not bring it back under); how many fillers went in."""
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) + 4_000_000))
    count = 0
    while True:
        try:
            client.set(f"filler:{count}", FILLER)
        except sync_redis.exceptions.OutOfMemoryError:
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", str(used - 1_000_000))
            return count
        count += 1


def claims(client: sync_redis.Redis) -> set[str]:
    return {key.rsplit(":", 1)[1] for key in client.scan_iter(KEYS.idempotency("*"))}


def test_full_redis_answers_queue_full_once_logged_and_the_retry_is_delivered(
    private_redis, api_factory, service_env, worker_factory, smtp_server, caplog
):
    server, client = private_redis
    api = api_factory(load_settings({**service_env, "REDIS_URL": server.url}))
    worker_factory(REDIS_URL=server.url)
    assert api.post("/v1/emails", json=email_payload(subject="before")).status_code == 202
    wait_until(lambda: len(smtp_server.received) == 1, timeout=30)

    fillers = fill(client)
    key = {"Idempotency-Key": "order-full-1"}
    payload = email_payload(subject="while full")
    with caplog.at_level(logging.INFO):
        answers = [api.post("/v1/emails", json=payload, headers=key) for _ in range(3)]
    for answer in answers:
        assert answer.status_code == 503
        assert answer.json["error"]["code"] == "queue_full"
        assert int(answer.headers["Retry-After"]) > 0
    refused_logs = [r for r in caplog.records if "out of memory" in r.getMessage()]
    assert len(refused_logs) == 1
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert len(claims(client)) == 1  # only the "before" email's

    ready = api.client.get("/readyz")
    assert (ready.status_code, ready.json["redis"]) == (503, "full")
    stats = api.get("/v1/queue/stats").json
    assert stats["redis"]["full"] is True
    assert stats["redis"]["maxmemory"] > 0
    assert "redis_full" in [advice["code"] for advice in stats["advice"]]

    client.delete(*[f"filler:{i}" for i in range(fillers)])
    caplog.clear()
    with caplog.at_level(logging.INFO):
        retried = api.post("/v1/emails", json=payload, headers=key)
    assert retried.status_code == 202, retried.json
    assert retried.json["duplicate"] is False
    assert [r for r in caplog.records if "accepts writes again" in r.getMessage()]
    assert api.client.get("/readyz").status_code == 200
    wait_until(lambda: any(r.message["Subject"] == "while full" for r in smtp_server.received))


def test_a_refused_add_releases_only_the_claims_it_made(private_redis, api_factory, service_env):
    server, client = private_redis
    api = api_factory(load_settings({**service_env, "REDIS_URL": server.url}))
    old = {**email_payload(subject="old"), "idempotency_key": "old"}
    assert api.post("/v1/emails/batch", json={"emails": [old]}).status_code == 202
    [old_id] = claims(client)

    # bullmq's add script INCRs the queue's id counter first: a non-integer there makes Redis
    # refuse every add (as maxmemory does, but at a moment the test chooses).
    client.set(KEYS.bull("id"), "not a number")
    new = {**email_payload(subject="new"), "idempotency_key": "new"}
    refused = api.post("/v1/emails/batch", json={"emails": [old, new, new]})
    assert refused.status_code >= 500
    assert claims(client) == {old_id}  # the duplicate's claim was not this call's to undo

    client.delete(KEYS.bull("id"))
    again = api.post("/v1/emails/batch", json={"emails": [old, new]})
    assert again.status_code == 202
    assert [item["duplicate"] for item in again.json["data"]] == [True, False]
    assert len(claims(client)) == 2


def test_intake_stops_short_of_maxmemory_so_queued_emails_still_go_out(
    private_redis, api_factory, service_env, worker_factory, smtp_server
):
    server, client = private_redis
    env = {
        **service_env,
        "REDIS_URL": server.url,
        "REDIS_INTAKE_MEMORY_PERCENT": "70",
        # The test's Redis is tiny: 1,000 jobs kept whole would hold most of it.
        "EMAIL_KEEP_COMPLETED_JOBS": "0",
    }
    api = api_factory(load_settings(env))
    client.config_set("maxmemory-policy", "noeviction")
    # Room for the worker's connections too (their buffers count: ~1 MB for 30 of them).
    client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) + 30_000_000))

    accepted = 0
    for batch in range(400):  # no worker yet: the emails pile up in Redis
        emails = [
            email_payload(
                to=f"r{batch}-{i}@example.org", subject=f"pile {batch} {i}", text="x" * 1000
            )
            for i in range(100)
        ]
        answer = api.post("/v1/emails/batch", json={"emails": emails})
        if answer.status_code == 503:
            assert answer.json["error"]["code"] == "queue_full"
            break
        assert answer.status_code == 202
        accepted += len(emails)
    else:
        pytest.fail("intake never stopped")
    assert accepted > 0
    client.set("room-left", "1")  # Redis itself still takes writes: it is not at maxmemory

    worker_factory(REDIS_URL=server.url)
    wait_until(lambda: len(smtp_server.received) == accepted, timeout=60)
    after = api.post("/v1/emails", json=email_payload(subject="after the pile"))
    assert after.status_code == 202
    wait_until(lambda: len(smtp_server.received) == accepted + 1, timeout=30)
