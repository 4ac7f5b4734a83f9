"""Moving a deployment's queue to another Redis: from one Redis to a Redis Cluster, or
between any two (`postbox queue migrate --from OLD_URL`; README "High availability and
sharding").

The jobs are not moved: the old Redis must be drained first. A BullMQ job is more than its
hash (its place in `wait`/`delayed`/`active`, its lock, its attempt count, its log), an
active one is owned by a worker that will complete it on the Redis it took it from, and
the key names change on the way to a cluster (`bull:email:*` to `bull:{email}:*`): a copy
taken while workers still run could send an email twice or not at all. Once nothing is
waiting, delayed, active or dead-lettered there, the state that outlives the jobs is
Postbox's own `postbox:<queue>:*` keys: the idempotency records (which keep a client's
retry of an email accepted on the old Redis from being sent again), the suppression list,
webhook endpoints and deliveries, VERP tokens, bounce reports, the event stream. Those are
copied with DUMP/RESTORE, each with its remaining time to live; a key already on the
target is kept. Per-process entries (the instance registry, readiness probes, send marks)
are not copied: the processes on the target make their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis
from bullmq import Queue
from redis.exceptions import ResponseError

# Every state in which a job is not finished; a dead letter (`failed`) would be lost.
UNFINISHED = ("waiting", "active", "delayed", "prioritized", "paused", "waiting-children", "failed")
# `postbox:<queue>:<suffix>` keys that belong to one running process or one moment.
_TRANSIENT = (
    "instance:",
    "instances",
    "readiness",
    "sending:",
    "history:waiting:lock",
    "history:retention-lease",
    "replication-mark",
)


@dataclass(frozen=True)
class Copied:
    """What a copy did."""

    copied: int
    already_there: int
    skipped: int


async def unfinished_jobs(client: redis.Redis, queue_name: str) -> dict[str, int]:
    """The states that still hold jobs on `client`'s Redis, with their counts."""
    queue = Queue(queue_name, {"connection": client})
    counts = await queue.getJobCounts(*UNFINISHED)
    return {state: int(counts[state]) for state in UNFINISHED if int(counts.get(state, 0))}


async def copy_postbox_keys(
    source: redis.Redis, source_queue: str, target: redis.Redis, target_queue: str
) -> Copied:
    """Copy every lasting `postbox:<source_queue>:*` key to `postbox:<target_queue>:*`.

    Both clients must not decode replies (DUMP is binary)."""
    prefix = f"postbox:{source_queue}:"
    copied = already_there = skipped = 0
    async for raw in source.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
        suffix = raw.decode()[len(prefix) :]
        if suffix.startswith(_TRANSIENT):
            skipped += 1
            continue
        dumped = await source.dump(raw)
        ttl_ms = await source.pttl(raw)
        if dumped is None or ttl_ms == -2:
            continue  # expired since the scan saw it
        try:
            await target.restore(f"postbox:{target_queue}:{suffix}", max(ttl_ms, 0), dumped)
        except ResponseError as exc:
            if not str(exc).startswith("BUSYKEY"):
                raise
            already_there += 1
            continue
        copied += 1
    return Copied(copied, already_there, skipped)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)
