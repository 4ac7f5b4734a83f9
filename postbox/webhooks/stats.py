"""Webhook numbers for `GET /v1/queue/stats` and the backlog gauge: endpoints, what waits
for delivery, what failed, and the attempts' outcomes by status class."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as redis
from redis.exceptions import ResponseError

from postbox.queue.keys import PostboxKeys
from postbox.webhooks.endpoints import CONSUMER_GROUP

# Counted one by one when Redis cannot tell a group's lag; past this the count stops.
LAG_COUNT_LIMIT = 100_000


@dataclass(frozen=True)
class Backlog:
    """Events not yet fanned out to the endpoints (read or not), and deliveries of enabled
    endpoints that are due now."""

    stream: int
    due: int

    @property
    def waiting(self) -> int:
        """Everything that waits for a dispatcher."""
        return self.stream + self.due


async def backlog(client: redis.Redis, queue_name: str) -> Backlog:
    """What waits for the dispatchers now."""
    counts = await _endpoint_counts(client, PostboxKeys(queue_name))
    due = sum(c["due"] for c in counts if c["enabled"])
    return Backlog(await _stream_backlog(client, PostboxKeys(queue_name)), due)


async def webhook_stats(client: redis.Redis, queue_name: str) -> dict[str, Any]:
    """The `webhooks` block of the queue stats."""
    keys = PostboxKeys(queue_name)
    counts = await _endpoint_counts(client, keys)
    stream = await _stream_backlog(client, keys)
    due = sum(c["due"] for c in counts if c["enabled"])
    outcomes = cast(dict[str, str], await client.hgetall(keys.webhook_outcomes()))
    return {
        "endpoints": len(counts),
        "enabled": sum(1 for c in counts if c["enabled"]),
        "backlog": {"stream": stream, "due": due, "waiting": stream + due},
        "pending": sum(c["pending"] for c in counts),
        "failed": sum(c["failed"] for c in counts),
        "outcomes": {name: int(count) for name, count in sorted(outcomes.items())},
    }


async def _endpoint_counts(client: redis.Redis, keys: PostboxKeys) -> list[dict[str, Any]]:
    ids = cast(list[str], await client.zrange(keys.webhooks(), 0, -1))
    if not ids:
        return []
    now = int(time.time() * 1000)
    async with client.pipeline(transaction=False) as pipe:
        for endpoint_id in ids:
            pipe.hget(keys.webhook(endpoint_id), "enabled")
            pipe.zcount(keys.webhook_due(endpoint_id), "-inf", now)
            pipe.zcard(keys.webhook_due(endpoint_id))
            pipe.zcard(keys.webhook_failed(endpoint_id))
        found = await pipe.execute()
    return [
        {"enabled": enabled == "1", "due": due, "pending": pending, "failed": failed}
        for enabled, due, pending, failed in zip(*[iter(found)] * 4, strict=True)
    ]


async def _stream_backlog(client: redis.Redis, keys: PostboxKeys) -> int:
    """Entries the `webhooks` group has not read, plus those read and not acknowledged."""
    try:
        groups = await client.xinfo_groups(keys.events())
    except ResponseError:  # no stream yet
        return 0
    for group in groups:
        if group["name"] == CONSUMER_GROUP:
            lag = group.get("lag")
            if lag is None:
                lag = await _count_after(client, keys.events(), group["last-delivered-id"])
            return int(lag) + int(group["pending"])
    return 0


async def _count_after(client: redis.Redis, stream: str, entry_id: str) -> int:
    after = await client.xrange(stream, f"({entry_id}", "+", count=LAG_COUNT_LIMIT)
    return len(cast(list[Any], after))
