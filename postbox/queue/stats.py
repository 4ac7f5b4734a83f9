"""Queue-wide numbers for `GET /v1/queue/stats`: counts per state, workers, throughput."""

from __future__ import annotations

import time
from typing import Any

from bullmq import Queue

STATES = ("waiting", "active", "delayed", "prioritized", "paused", "completed", "failed")
THROUGHPUT_WINDOW_SECONDS = 60


async def queue_stats(queue: Queue) -> dict[str, Any]:
    """Counts per state, the workers connected to the queue, and the last minute's output.

    Throughput comes free from BullMQ's sorted sets: `completed` and `failed` are scored by
    the time each job finished.
    """
    counts = await queue.getJobCounts(*STATES)
    now_ms = int(time.time() * 1000)
    since = now_ms - THROUGHPUT_WINDOW_SECONDS * 1000
    async with queue.client.pipeline(transaction=False) as pipe:
        pipe.zcount(queue.keys["completed"], since, now_ms)
        pipe.zcount(queue.keys["failed"], since, now_ms)
        sent, failed = await pipe.execute()
    return {
        "queue": queue.name,
        "counts": {state: int(counts.get(state, 0)) for state in STATES},
        "workers": await _workers(queue),
        "throughput": {
            "window_seconds": THROUGHPUT_WINDOW_SECONDS,
            "sent": int(sent),
            "failed": int(failed),
            "sent_per_second": round(int(sent) / THROUGHPUT_WINDOW_SECONDS, 2),
        },
    }


async def _workers(queue: Queue) -> list[dict[str, Any]]:
    """One entry per worker instance (a worker holds several Redis connections)."""
    instances: dict[str, dict[str, Any]] = {}
    prefix = f"{queue.qualifiedName}:w:"
    for client in await queue.get_workers():
        name = str(client.get("rawname", "")).removeprefix(prefix)
        if name and name not in instances:
            instances[name] = {"instance": name, "address": client.get("addr")}
    return sorted(instances.values(), key=lambda worker: worker["instance"])
