"""Delivery events: each state change of an email is one entry in the event stream, written
by the call that makes the change true, read here straight from Redis as consumers read it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis as sync_redis
import redis.asyncio as redis

from postbox.config import load_settings
from postbox.queue import events
from postbox.queue.events import Event, parse_entry
from postbox.queue.keys import PostboxKeys
from tests.support import email_payload, sent_count, wait_until

KEYS = PostboxKeys("email")
BAD = "bad@example.org"
BUSY = "busy@example.org"
FAILED = "bull:email:failed"


def _register(redis_url: str) -> None:
    async def run() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await events.register_consumer(client, "email", "test")
        finally:
            await client.aclose()

    asyncio.run(run())


def _stream(client: sync_redis.Redis) -> list[Event]:
    return [parse_entry(entry_id, fields) for entry_id, fields in client.xrange(KEYS.events())]


def _of(stream: list[Event], email_id: str) -> list[str]:
    return [event.type for event in stream if event.email_id == email_id]


@pytest.fixture
def consumer(redis_url: str) -> None:
    _register(redis_url)


def test_no_consumer_no_events(api, redis_client, smtp_server, worker_factory) -> None:
    assert api.post("/v1/emails", json=email_payload()).status_code == 202
    worker_factory()
    wait_until(lambda: sent_count(redis_client) == 1)
    assert not redis_client.exists(KEYS.events())


def test_queued_then_sent_with_the_relay_reply(
    api, consumer, redis_client, smtp_server, worker_factory
) -> None:
    posted = api.post("/v1/emails", json=email_payload(tags=["welcome"])).json
    # A duplicate POST changes nothing, so it writes no event.
    assert api.post("/v1/emails", json=email_payload(tags=["welcome"])).status_code == 200
    worker_factory()
    wait_until(lambda: len(_of(_stream(redis_client), posted["id"])) == 2)

    queued, sent = [e for e in _stream(redis_client) if e.email_id == posted["id"]]
    assert (queued.type, sent.type) == ("email.queued", "email.sent")
    assert queued.sequence < sent.sequence
    assert sent.domain == "example.com"
    data = sent.payload()["data"]
    assert data["email_id"] == posted["id"]
    assert data["message_id"] == posted["message_id"]
    assert data["from"] == "sender@example.com"
    assert data["to"] == ["rcpt@example.org"]
    assert data["tags"] == ["welcome"]
    assert data["attempt"] == 1
    assert data["recipients"] == [
        {"address": "rcpt@example.org", "status": "accepted", "reply": data["reply"]}
    ]
    assert data["reply"] == "2.0.0 Message accepted"  # the test relay's answer to DATA
    assert data["sequence"] == sent.sequence
    assert sent.event_id == f"evt_{sent.id}"
    assert sent.payload()["timestamp"].endswith("Z")
    # Never the message itself.
    assert "Hello there." not in json.dumps(sent.payload())
    assert queued.data["send_at"] is None and queued.data["attempt"] == 0


def test_a_future_send_is_scheduled(api, consumer, redis_client) -> None:
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    posted = api.post("/v1/emails", json=email_payload(send_at=send_at)).json
    [scheduled] = [e for e in _stream(redis_client) if e.email_id == posted["id"]]
    assert scheduled.type == "email.scheduled"
    assert scheduled.data["send_at"] is not None


@pytest.mark.smtp_replies(rcpt={BAD: "550 5.1.1 no such user", BUSY: "450 4.2.1 mailbox busy"})
def test_deferred_then_failed_then_retried(
    api_factory, service_env, consumer, redis_client, smtp_server, worker_factory
) -> None:
    settings = load_settings({**service_env, "EMAIL_MAX_ATTEMPTS": "2", "EMAIL_BACKOFF_MS": "200"})
    api = api_factory(settings)
    busy = api.post("/v1/emails", json=email_payload(to=BUSY, subject="busy")).json
    bad = api.post("/v1/emails", json=email_payload(to=BAD, subject="bad")).json
    worker_factory()
    wait_until(lambda: redis_client.zcard(FAILED) == 2, timeout=30)

    stream = _stream(redis_client)
    assert _of(stream, bad["id"]) == ["email.queued", "email.failed"]
    assert _of(stream, busy["id"]) == ["email.queued", "email.deferred", "email.failed"]
    deferred = next(e for e in stream if e.type == "email.deferred")
    assert deferred.data["error_class"] == "temporary"
    assert "450" in deferred.data["reply"]
    next_at = datetime.fromisoformat(deferred.data["next_attempt_at"])
    assert abs(next_at - datetime.now(UTC)) < timedelta(seconds=30)
    failed = next(e for e in stream if e.type == "email.failed" and e.email_id == bad["id"])
    assert failed.data["error_class"] == "rejected" and "550" in failed.data["reply"]

    smtp_server.handler.rcpt_replies.clear()
    assert api.post(f"/v1/dead-letters/{bad['id']}/retry").status_code == 202
    wait_until(lambda: _of(_stream(redis_client), bad["id"])[-1] == "email.sent", timeout=30)
    assert _of(_stream(redis_client), bad["id"]) == [
        "email.queued",
        "email.failed",
        "email.retried",
        "email.sent",
    ]


def test_trim_keeps_what_a_group_has_not_acknowledged(
    api, consumer, redis_url: str, redis_client
) -> None:
    for index in range(5):
        api.post("/v1/emails", json=email_payload(subject=f"trim {index}"))
    entries = redis_client.xreadgroup("test", "reader", {KEYS.events(): ">"}, count=3)
    [(_, read)] = entries
    redis_client.xack(KEYS.events(), "test", read[0][0], read[1][0])

    async def trim() -> Any:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await events.trim_acknowledged(client, "email")
        finally:
            await client.aclose()

    oldest = asyncio.run(trim())
    remaining = [entry_id for entry_id, _ in redis_client.xrange(KEYS.events())]
    # The third entry was read but not acknowledged; the last two not read at all.
    assert oldest == read[2][0]
    assert len(remaining) == 3 and remaining[0] == read[2][0]


def test_trim_keeps_acknowledged_events_for_the_retention(
    api, consumer, redis_url: str, redis_client
) -> None:
    for index in range(3):
        api.post("/v1/emails", json=email_payload(subject=f"kept {index}"))
    [(_, read)] = redis_client.xreadgroup("test", "reader", {KEYS.events(): ">"})
    redis_client.xack(KEYS.events(), "test", *[entry_id for entry_id, _ in read])

    async def trim(keep_seconds: float) -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await events.trim_acknowledged(client, "email", keep_seconds)
        finally:
            await client.aclose()

    asyncio.run(trim(60))
    assert redis_client.xlen(KEYS.events()) == 3  # read by all, but within the hour kept
    asyncio.run(trim(0))
    assert redis_client.xlen(KEYS.events()) == 0


def test_queued_after_redis_lost_its_scripts(api, consumer, redis_client) -> None:
    """The API's add skips redis-py's SCRIPT EXISTS check; when Redis lost its scripts (a
    restart, SCRIPT FLUSH) the transaction is redone: the job is added once, with its event."""
    first = api.post("/v1/emails", json=email_payload(subject="before")).json
    redis_client.script_flush()
    posted = api.post("/v1/emails", json=email_payload(subject="after"))
    assert posted.status_code == 202
    stream = _stream(redis_client)
    assert _of(stream, first["id"]) == ["email.queued"]
    assert _of(stream, posted.json["id"]) == ["email.queued"]
    assert redis_client.exists(KEYS.bull(posted.json["id"]))
    assert redis_client.llen("bull:email:wait") == 2
