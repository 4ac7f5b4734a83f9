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
