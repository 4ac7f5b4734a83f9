"""Queue-wide numbers for `GET /v1/queue/stats`: counts per state, workers, throughput,
and the processes of the cluster registry."""

from __future__ import annotations

import time
from typing import Any

from bullmq import Queue

from postbox.queue.contract import split_failure_reason
from postbox.queue.journal import SENT_BUCKET_SECONDS
from postbox.queue.keys import PostboxKeys
from postbox.queue.registry import InstanceRegistry, cluster_totals

STATES = ("waiting", "active", "delayed", "prioritized", "paused", "completed", "failed")
THROUGHPUT_WINDOW_SECONDS = 60
THROUGHPUT_MINUTES = 10
# Newest dead letters read for the per-class counts: enough to show what is failing now,
# bounded so the stats stay one cheap round trip however large the dead-letter view grows.
DEAD_LETTER_SAMPLE = 200


async def queue_stats(queue: Queue, registry: InstanceRegistry) -> dict[str, Any]:
    """Counts per state, the workers connected to the queue, recent output, and every API
    and worker process in the cluster registry with its health.

    Throughput, the last minute and each of the last few: sent emails from the counters the
    completions keep (10-second spans: a sent job itself is removed), failed ones from
    BullMQ's `failed` set, scored by the time each job failed.
    """
    counts = await job_counts(queue)
    snapshot = await registry.snapshot()
    sent, failed = await _finished_per_minute(queue, int(time.time() * 1000))
    return {
        "queue": queue.name,
        "at_ms": snapshot.now_ms,
        "counts": counts,
        "workers": await _workers(queue),
        "throughput": {
            "window_seconds": THROUGHPUT_WINDOW_SECONDS,
            "sent": sent[-1],
            "failed": failed[-1],
            "sent_per_second": round(sent[-1] / THROUGHPUT_WINDOW_SECONDS, 2),
            "per_minute": {"sent": sent, "failed": failed},
        },
        "dead_letters": await _recent_dead_letters(queue),
        "instances": snapshot.instances,
        "cluster": cluster_totals(snapshot.instances),
        "waiting_history": [
            {"at_ms": at, "waiting": waiting} for at, waiting in reversed(snapshot.waiting_history)
        ],
    }


async def job_counts(queue: Queue) -> dict[str, int]:
    """How many jobs are in each state; `completed` counts every email sent (BullMQ keeps
    only the newest completed jobs whole), from the counter the completions keep."""
    counts = await queue.getJobCounts(*STATES)
    found = {state: int(counts.get(state, 0)) for state in STATES}
    sent = int(await queue.client.get(PostboxKeys(queue.name).sent_total()) or 0)
    found["completed"] = max(found["completed"], sent)
    return found


async def _finished_per_minute(queue: Queue, now_ms: int) -> tuple[list[int], list[int]]:
    """Emails sent and failed in each of the last `THROUGHPUT_MINUTES` minutes, oldest
    first; the last entry is the minute up to `now_ms` (for sent: to its 10-second span)."""
    window = THROUGHPUT_WINDOW_SECONDS * 1000
    keys = PostboxKeys(queue.name)
    per_minute = THROUGHPUT_WINDOW_SECONDS // SENT_BUCKET_SECONDS
    newest = now_ms // 1000 // SENT_BUCKET_SECONDS
    spans = range(newest - THROUGHPUT_MINUTES * per_minute + 1, newest + 1)
    async with queue.client.pipeline(transaction=False) as pipe:
        pipe.mget([keys.sent_bucket(span) for span in spans])
        for back in range(THROUGHPUT_MINUTES - 1, -1, -1):
            end = now_ms - back * window
            pipe.zcount(queue.keys["failed"], f"({end - window}", end)
        buckets, *failed = await pipe.execute()
    counts = [int(count or 0) for count in buckets]
    sent = [sum(counts[start : start + per_minute]) for start in range(0, len(counts), per_minute)]
    return sent, [int(count) for count in failed]


async def _recent_dead_letters(queue: Queue) -> dict[str, Any]:
    """Error classes of the newest dead letters, and the newest `config` reason: a relay that
    cannot be used as configured (no STARTTLS, an untrusted certificate) shows here."""
    ids = await queue.client.zrevrange(queue.keys["failed"], 0, DEAD_LETTER_SAMPLE - 1)
    async with queue.client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(queue.toKey(job_id), "failedReason")
        reasons = await pipe.execute() if ids else []
    by_class: dict[str, int] = {}
    config_error: str | None = None
    for reason in reasons:
        error_class, text = split_failure_reason(reason)
        by_class[error_class] = by_class.get(error_class, 0) + 1
        if error_class == "config" and config_error is None:
            config_error = text
    return {"sampled": len(ids), "by_class": by_class, "latest_config_error": config_error}


async def _workers(queue: Queue) -> list[dict[str, Any]]:
    """One entry per worker instance (a worker holds several Redis connections)."""
    instances: dict[str, dict[str, Any]] = {}
    prefix = f"{queue.qualifiedName}:w:"
    for client in await queue.get_workers():
        name = str(client.get("rawname", "")).removeprefix(prefix)
        if name and name not in instances:
            instances[name] = {"instance": name, "address": client.get("addr")}
    return sorted(instances.values(), key=lambda worker: worker["instance"])
