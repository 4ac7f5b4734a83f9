"""What the API and the CLI show of an endpoint's deliveries: its recent attempts (the log),
the deliveries that ended failed, those still pending, and their counts."""

from __future__ import annotations

import json
from typing import Any, cast

import redis.asyncio as redis

from postbox.queue.keys import PostboxKeys
from postbox.webhooks.deliveries import iso_ms

LISTED_STATES = ("attempts", "failed", "pending")
_FIELDS = ("event", "type", "attempts", "last_status", "last_error", "next_at")


async def recent_attempts(
    client: redis.Redis, queue_name: str, endpoint_id: str, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    """The endpoint's latest attempts, newest first: delivery and event id, type, HTTP
    status, latency, error, outcome and the next retry."""
    log = PostboxKeys(queue_name).webhook_log(endpoint_id)
    lines = cast(list[str], await client.lrange(log, offset, offset + limit - 1))
    return [json.loads(line) for line in lines]


async def listed_deliveries(
    client: redis.Redis, queue_name: str, endpoint_id: str, *, state: str, limit: int, offset: int
) -> list[dict[str, Any]]:
    """The endpoint's `failed` deliveries (newest first) or `pending` ones (soonest due
    first), each with its attempts so far and last outcome."""
    keys = PostboxKeys(queue_name)
    last = offset + limit - 1
    if state == "failed":
        listed = await client.zrevrange(keys.webhook_failed(endpoint_id), offset, last, True)
    else:
        listed = await client.zrange(keys.webhook_due(endpoint_id), offset, last, withscores=True)
    found = cast(list[tuple[str, float]], listed)
    async with client.pipeline(transaction=False) as pipe:
        for did, _ in found:
            pipe.hmget(keys.webhook_delivery(did), list(_FIELDS))
        rows: list[list[str | None]] = await pipe.execute() if found else []
    return [
        _delivery(did, score, state, row)
        for (did, score), row in zip(found, rows, strict=True)
        if row[0] is not None
    ]


def _delivery(did: str, score: float, state: str, row: list[str | None]) -> dict[str, Any]:
    event, kind, attempts, status, error, next_at = row
    return {
        "delivery_id": did,
        "event_id": event,
        "type": kind,
        "state": state,
        "attempts": int(attempts or 0),
        "last_status": int(status) if status else None,
        "last_error": error or None,
        "failed_at": iso_ms(score) if state == "failed" else None,
        "next_attempt_at": iso_ms(float(next_at)) if state == "pending" and next_at else None,
    }


async def delivery_counts(client: redis.Redis, queue_name: str, endpoint_id: str) -> dict[str, int]:
    """How many of the endpoint's deliveries are pending and how many failed."""
    keys = PostboxKeys(queue_name)
    async with client.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.webhook_due(endpoint_id))
        pipe.zcard(keys.webhook_failed(endpoint_id))
        pending, failed = await pipe.execute()
    return {"pending": int(pending), "failed": int(failed)}


async def delivery_summaries(
    client: redis.Redis, queue_name: str, endpoint_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Per endpoint, its last attempt's status, outcome and time, and how many of its
    deliveries are pending and failed (the dashboard's webhook list), in one round trip."""
    if not endpoint_ids:
        return {}
    keys = PostboxKeys(queue_name)
    async with client.pipeline(transaction=False) as pipe:
        for endpoint_id in endpoint_ids:
            pipe.lindex(keys.webhook_log(endpoint_id), 0)
            pipe.zcard(keys.webhook_due(endpoint_id))
            pipe.zcard(keys.webhook_failed(endpoint_id))
        found = await pipe.execute()
    summaries = {}
    for index, endpoint_id in enumerate(endpoint_ids):
        line, pending, failed = found[3 * index : 3 * index + 3]
        last = json.loads(line) if line else {}
        summaries[endpoint_id] = {
            "last_status": last.get("status"),
            "last_outcome": last.get("outcome"),
            "last_at": last.get("at"),
            "pending": int(pending),
            "failures": int(failed),
        }
    return summaries
