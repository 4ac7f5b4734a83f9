"""New deliveries made on request: a replay of the stream's events of a span (after an
outage on the receiver's side), and the `webhook.test` event.

A replayed event keeps its id, so it is delivered with the same `webhook-id` as before and a
receiver that already has it can drop it. The stream keeps events until every consumer group
has acknowledged them (postbox/queue/events.py), so a replay finds only what is still there.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import cast

import orjson
import redis.asyncio as redis

from postbox.queue.keys import PostboxKeys
from postbox.webhooks.deliveries import NewDelivery, delivery_id, enqueue, iso_ms
from postbox.webhooks.endpoints import Endpoint
from postbox.webhooks.fan_out import event_body

TEST_EVENT = "webhook.test"
# A replay is one API call: it reads at most this many events (then says where it stopped).
MAX_REPLAYED = 100_000
_PAGE = 1000


@dataclass(frozen=True)
class ReplayResult:
    """How many events a replay queued, of how many read; where it stopped if it did."""

    replayed: int
    read: int
    resume_since_ms: int | None


async def replay(
    client: redis.Redis, queue_name: str, endpoint: Endpoint, since_ms: int, until_ms: int
) -> ReplayResult:
    """Queue, due now, every event of `since_ms`..`until_ms` (inclusive) that `endpoint`
    wants, as fresh deliveries with the events' own ids."""
    keys = PostboxKeys(queue_name)
    start, replayed, read = str(since_ms), 0, 0
    while read < MAX_REPLAYED:
        entries = cast(
            list[tuple[str, dict[str, str]]],
            await client.xrange(keys.events(), start, str(until_ms), count=_PAGE),
        )
        if not entries:
            return ReplayResult(replayed, read, None)
        read += len(entries)
        wanted = [d for d in (_delivery(endpoint, i, f) for i, f in entries) if d is not None]
        await _enqueue_all(client, keys, endpoint.id, wanted)
        replayed += len(wanted)
        start = "(" + entries[-1][0]
    last_ms = int(start[1:].partition("-")[0])
    return ReplayResult(replayed, read, last_ms if last_ms < until_ms else None)


def _delivery(endpoint: Endpoint, entry_id: str, fields: dict[str, str]) -> NewDelivery | None:
    """The delivery of one entry if the endpoint wants it (and it is a readable event)."""
    try:
        if not endpoint.wants(fields["type"], fields["domain"]):
            return None
        body = event_body(entry_id, fields["type"], fields["data"])
        return NewDelivery(f"evt_{entry_id}", fields["type"], fields["email"], body)
    except (KeyError, ValueError):
        return None


async def _enqueue_all(
    client: redis.Redis, keys: PostboxKeys, endpoint_id: str, news: list[NewDelivery]
) -> None:
    if not news:
        return
    now = int(time.time() * 1000)
    async with client.pipeline(transaction=True) as pipe:
        for new in news:
            enqueue(pipe, keys, endpoint_id, new, now, again=True)
        await pipe.execute()


async def send_test(client: redis.Redis, queue_name: str, endpoint_id: str) -> tuple[str, str]:
    """Queue a `webhook.test` event for the endpoint, due now; its event and delivery ids."""
    now = int(time.time() * 1000)
    event_id = "evt_test_" + secrets.token_urlsafe(12)
    payload = {
        "type": TEST_EVENT,
        "timestamp": iso_ms(now),
        "data": {"endpoint_id": endpoint_id, "message": "A test event from Postbox."},
    }
    new = NewDelivery(event_id, TEST_EVENT, "", orjson.dumps(payload).decode())
    await _enqueue_all(client, PostboxKeys(queue_name), endpoint_id, [new])
    return event_id, delivery_id(endpoint_id, event_id)
