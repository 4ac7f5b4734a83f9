"""Filling, pausing and reading the benchmark's queues.

Postbox jobs go through `EmailProducer`, with the job options the API's gateway sets, so
they are exactly what `POST /v1/emails/batch` would have enqueued (500 per `addBulk`). The
Node peer's jobs are plain `{from, to, subject, text}` with the equivalent options (same
attempts and retention; BullMQ's own exponential backoff, which no job here ever uses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis as sync_redis
import redis.asyncio as redis
from bullmq import Queue

from postbox.config import Settings
from postbox.queue.contract import default_job_options
from postbox.queue.keys import PostboxKeys
from postbox.queue.producer import EmailProducer, PreparedEmail

BULK = 500
# The first retry delay of the peer's jobs (BullMQ's exponential backoff), as Postbox's.
PLAIN_BACKOFF_MS = 2000


def _postbox_queue(settings: Settings, client: redis.Redis) -> Queue:
    options = default_job_options(
        settings.worker.max_attempts, settings.worker.backoff_ms, settings.keep_completed_jobs
    )
    return Queue(settings.redis.queue_name, {"connection": client, "defaultJobOptions": options})


async def _with_queue(
    url: str, make: Callable[[redis.Redis], Queue], action: Callable[[Queue, redis.Redis], Any]
) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    queue = make(client)
    try:
        await action(queue, client)
    finally:
        await queue.close()
        await client.aclose()


def fill_postbox(settings: Settings, emails: Sequence[PreparedEmail], paused: bool) -> None:
    """Enqueue `emails` into the settings' queue as the API would; pause the queue first if
    asked, so a worker can start up without taking jobs yet."""

    async def fill(queue: Queue, client: redis.Redis) -> None:
        if paused:
            await queue.pause()
        producer = EmailProducer(queue, client, settings.dedup_window_seconds)
        for start in range(0, len(emails), BULK):
            await producer.enqueue(emails[start : start + BULK])

    asyncio.run(
        _with_queue(settings.redis.url, lambda c: _postbox_queue(settings, c), fill),
    )


def fill_plain(
    url: str,
    queue_name: str,
    jobs: Sequence[dict[str, str]],
    paused: bool,
    backoff_ms: int = PLAIN_BACKOFF_MS,
) -> None:
    """Enqueue plain jobs named `send` for the Node peer."""
    options = {
        "attempts": 5,
        "backoff": {"type": "exponential", "delay": backoff_ms},
        "removeOnComplete": {"age": 24 * 3600},
        "removeOnFail": False,
    }

    async def fill(queue: Queue, client: redis.Redis) -> None:
        if paused:
            await queue.pause()
        for start in range(0, len(jobs), BULK):
            chunk = jobs[start : start + BULK]
            await queue.addBulk([{"name": "send", "data": job, "opts": options} for job in chunk])

    asyncio.run(_with_queue(url, lambda c: Queue(queue_name, {"connection": c}), fill))


def resume(url: str, queue_name: str) -> None:
    """Let workers take the queue's jobs."""

    async def run(queue: Queue, client: redis.Redis) -> None:
        await queue.resume()

    asyncio.run(_with_queue(url, lambda c: Queue(queue_name, {"connection": c}), run))


def redis_now(client: sync_redis.Redis) -> float:
    """Redis' clock, in Unix seconds (the clock BullMQ's stamps and event ids use)."""
    seconds, micros = client.time()
    return float(seconds) + micros / 1e6


def completion_span(
    client: sync_redis.Redis, queue_name: str, resumed_at: float
) -> tuple[float, float]:
    """(first job started, last job finished), in Unix seconds: the drain's true duration,
    whatever the polling interval. For a queue that keeps its completed jobs (the Node
    peer), BullMQ's own `processedOn`/`finishedOn` stamps; Postbox keeps only the newest
    completed jobs whole, so for its queues the drain runs from the resume of the queue (the
    workers wait on it, started) to the newest `completed` event of BullMQ's event stream."""
    ids = cast(list[str], client.zrange(f"bull:{queue_name}:completed", 0, -1))
    if client.exists(PostboxKeys(queue_name).sent_total()):
        events = client.xrevrange(f"bull:{queue_name}:events", count=500)
        done = [int(i.split("-")[0]) for i, f in events if f.get("event") == "completed"]
        return resumed_at, max(done) / 1000
    started, finished = float("inf"), 0.0
    for start in range(0, len(ids), 2000):
        pipe = client.pipeline(transaction=False)
        for job_id in ids[start : start + 2000]:
            pipe.hmget(f"bull:{queue_name}:{job_id}", "processedOn", "finishedOn")
        for processed_on, finished_on in pipe.execute():
            started = min(started, float(processed_on) / 1000)
            finished = max(finished, float(finished_on) / 1000)
    return started, finished
