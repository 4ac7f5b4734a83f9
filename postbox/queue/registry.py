"""The cluster registry: every API and worker process says in Redis that it is alive.

Each process (a gunicorn process of an API instance, a worker process) refreshes its entry
every `heartbeat_seconds` (10 s). Key layout, for queue `email`:

    postbox:email:instance:<id>         JSON entry of one live process; expires 3 heartbeats
                                         (30 s) after the last one, so a killed process leaves
    postbox:email:instances              sorted set: <id> scored by its last heartbeat (ms)
    postbox:email:instances:last         hash: <id> -> its last entry, to describe it once gone
    postbox:email:history:waiting        list of "<ms>:<waiting count>", newest first, capped
    postbox:email:history:waiting:lock   held for one interval by the process that sampled

`<id>` is `<INSTANCE_ID>-<pid>`, the name BullMQ also gives a worker's connections. Health
comes from the age of the last heartbeat: `healthy` under 1.5 intervals (15 s), `slow` while
the entry lives, `gone` once it has expired; 6 intervals (60 s) after the last heartbeat the
process is dropped from the sorted set. Times are Redis' own clock (`TIME` inside the
script), so hosts whose clocks disagree still agree on ages.

A worker's entry also carries `relay`, the relay as that worker sees it (circuit open or
not, since when, the last error: postbox/queue/relay_health.py), so the stats and the advice
report an outage or a refused password within one heartbeat.

The heartbeat also samples the queue's waiting count, once per interval across the whole
cluster (whoever takes the lock), for the capacity advice's "for 5 minutes" rules: no
extra round trip, and nothing at all on the delivery path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as redis

from postbox import __version__
from postbox.queue.connection import UNAVAILABLE_ERRORS
from postbox.queue.keys import PostboxKeys

logger = logging.getLogger(__name__)

TTL_BEATS = 3
HEALTHY_BEATS = 1.5
FORGET_BEATS = 6
HISTORY_SAMPLES = 60  # 10 minutes at one sample per 10 s

# KEYS: entry, seen set, last entries, waiting history, sample lock, BullMQ wait list.
# ARGV: id, entry JSON, ttl (s), forget after (ms), history length, interval (ms).
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
local forgotten = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[4]))
if #forgotten > 0 then
  redis.call('ZREM', KEYS[2], unpack(forgotten))
  redis.call('HDEL', KEYS[3], unpack(forgotten))
end
if redis.call('SET', KEYS[5], '1', 'PX', ARGV[6], 'NX') then
  redis.call('LPUSH', KEYS[4], now .. ':' .. redis.call('LLEN', KEYS[6]))
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[5]) - 1)
end
"""


@dataclass(frozen=True)
class InstanceInfo:
    """What a process says about itself; `active` and `processed` change between beats."""

    id: str
    instance: str
    role: str
    host: str
    pid: int
    version: str
    concurrency: int
    started_at: str
    heartbeat_seconds: float


def this_process(
    instance_id: str, role: str, concurrency: int, heartbeat_seconds: float
) -> InstanceInfo:
    """The entry of the calling process."""
    pid = os.getpid()
    return InstanceInfo(
        id=f"{instance_id}-{pid}",
        instance=instance_id,
        role=role,
        host=socket.gethostname(),
        pid=pid,
        version=__version__,
        concurrency=concurrency,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        heartbeat_seconds=heartbeat_seconds,
    )


# Returns (active, processed) at the time of a beat.
Counts = Callable[[], tuple[int, int]]
# Returns more fields of the entry at the time of a beat (a worker's `relay` state).
Extra = Callable[[], Mapping[str, Any]]


class InstanceRegistry:
    """Writes this process's entry and reads everybody's."""

    def __init__(self, client: redis.Redis, queue_name: str, heartbeat_seconds: float) -> None:
        self._client = client
        self._keys = PostboxKeys(queue_name)
        self._wait_list = self._keys.bull("wait")
        self.heartbeat_seconds = heartbeat_seconds
        self._beat = client.register_script(_BEAT)

    async def beat(
        self,
        info: InstanceInfo,
        active: int,
        processed: int,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Refresh `info`'s entry (one round trip); `extra` fields go into it as they are."""
        fields = {**asdict(info), "active": active, "processed": processed, **(extra or {})}
        entry = json.dumps(fields)
        keys = self._keys
        interval_ms = int(self.heartbeat_seconds * 1000)
        await self._beat(
            keys=[
                keys.instance(info.id),
                keys.instances_seen(),
                keys.instances_last(),
                keys.waiting_history(),
                keys.waiting_sample_lock(),
                self._wait_list,
            ],
            args=[
                info.id,
                entry,
                max(1, round(self.heartbeat_seconds * TTL_BEATS)),
                interval_ms * FORGET_BEATS,
                HISTORY_SAMPLES,
                interval_ms,
            ],
        )

    async def leave(self, info: InstanceInfo) -> None:
        """Remove the entry at once: a process that stops on purpose is not `gone`."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.instance(info.id))
            pipe.zrem(self._keys.instances_seen(), info.id)
            pipe.hdel(self._keys.instances_last(), info.id)
            await pipe.execute()

    async def run(self, info: InstanceInfo, counts: Counts, extra: Extra | None = None) -> None:
        """Beat every interval until cancelled; Redis being away only skips beats."""
        while True:
            try:
                await self.beat(info, *counts(), extra() if extra is not None else None)
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("Heartbeat skipped, Redis unreachable: %s", type(exc).__name__)
            await asyncio.sleep(self.heartbeat_seconds)

    @asynccontextmanager
    async def registered(
        self, info: InstanceInfo, counts: Counts, extra: Extra | None = None
    ) -> AsyncIterator[None]:
        """Beat in the background while the block runs, then leave."""
        beating = asyncio.create_task(self.run(info, counts, extra), name="heartbeat")
        try:
            yield
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            try:
                await self.leave(info)
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("Could not leave the registry (%s); the entry will expire", exc)

    async def snapshot(self) -> ClusterSnapshot:
        """Every process seen recently, with its health, and the waiting-count history."""
        keys = self._keys
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.zrange(keys.instances_seen(), 0, -1, withscores=True)
            pipe.lrange(keys.waiting_history(), 0, -1)
            (seconds, micros), seen, history = await pipe.execute()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        forget_ms = self.heartbeat_seconds * FORGET_BEATS * 1000
        recent = sorted((key, int(at)) for key, at in seen if now_ms - at < forget_ms)
        if not recent:
            return ClusterSnapshot(now_ms, [], [_sample(item) for item in history])
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.mget([keys.instance(key) for key, _ in recent])
            pipe.hmget(keys.instances_last(), [key for key, _ in recent])
            live, last = await pipe.execute()
        instances = [
            _view(key, entry, last_entry, (now_ms - at) / 1000, self.heartbeat_seconds)
            for (key, at), entry, last_entry in zip(recent, live, last, strict=True)
        ]
        return ClusterSnapshot(now_ms, instances, [_sample(item) for item in history])


@dataclass(frozen=True)
class ClusterSnapshot:
    """The registry as read at `now_ms` (Redis' clock)."""

    now_ms: int
    instances: list[dict[str, Any]]
    # (ms, waiting count), newest first.
    waiting_history: list[tuple[int, int]]


def health(age_seconds: float, alive: bool, heartbeat_seconds: float) -> str:
    """`healthy`, `slow` (heartbeats late, entry still there) or `gone` (entry expired)."""
    if not alive:
        return "gone"
    return "healthy" if age_seconds < heartbeat_seconds * HEALTHY_BEATS else "slow"


def _view(
    key: str, live: str | None, last: str | None, age: float, heartbeat_seconds: float
) -> dict[str, Any]:
    """A live process's entry, or the last one a gone process wrote."""
    raw = live or last
    entry: dict[str, Any] = json.loads(raw) if raw else {"id": key}
    interval = float(entry.get("heartbeat_seconds", heartbeat_seconds))
    entry["health"] = health(age, live is not None, interval)
    entry["last_seen_seconds"] = round(age, 1)
    return entry


def _sample(item: str) -> tuple[int, int]:
    at, _, count = item.partition(":")
    return int(at), int(count)


_TOTALS = ("processes", "concurrency", "active", "processed")


def cluster_totals(instances: list[dict[str, Any]]) -> dict[str, Any]:
    """Process counts per health, and per role the sums over live processes."""
    by_health = {"healthy": 0, "slow": 0, "gone": 0}
    roles = {role: dict.fromkeys(_TOTALS, 0) for role in ("api", "worker")}
    for entry in instances:
        by_health[entry["health"]] += 1
        if entry["health"] == "gone" or entry["role"] not in roles:
            continue
        totals = roles[entry["role"]]
        totals["processes"] += 1
        for name in ("concurrency", "active", "processed"):
            totals[name] += int(entry[name])
    return {"processes": by_health, "roles": roles}
