"""Redis memory: how full it is (for the stats and readiness), the room new emails must
leave the workers, and one log line per period of refused writes (not one per request).

With `maxmemory-policy noeviction` (the setting Postbox needs: an evicting Redis can drop
jobs) a Redis at `maxmemory` refuses every command that may grow memory, with an `OOM` reply.
Reads, DEL and the workers' completions that free memory still run.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis.asyncio as redis

from postbox.errors import QueueFull

logger = logging.getLogger(__name__)


async def memory_info(client: redis.Redis) -> dict[str, Any]:
    """`used_memory`, `maxmemory` (0: no limit), the policy, and whether Redis is full.

    Full is Redis's own test: used memory, less what it does not count for eviction
    (replication and AOF buffers), above `maxmemory`.
    """
    info = await client.info("memory")
    used = int(info.get("used_memory", 0))
    limit = int(info.get("maxmemory", 0))
    counted = used - int(info.get("mem_not_counted_for_evict", 0))
    return {
        "used_memory": used,
        "maxmemory": limit,
        "maxmemory_policy": str(info.get("maxmemory_policy", "")),
        "full": limit > 0 and counted > limit,
    }


class IntakeRoom:
    """Refuses new emails while Redis uses `percent` of its maxmemory or more.

    At maxmemory Redis refuses the workers' writes too, so nothing queued moves (and
    delivering is what frees memory); stopping intake a little earlier keeps that room for
    them. While there is room, Redis is asked again after `CHECK_SECONDS` or once this
    process has queued `CHECK_BYTES` of messages since it last asked, whichever comes first;
    once there is none, on every request (so intake resumes as soon as memory is freed).
    """

    CHECK_SECONDS = 1.0
    CHECK_BYTES = 1 << 20

    def __init__(self, client: redis.Redis, percent: int) -> None:
        self._client = client
        self._share = percent / 100
        self._checked_at = float("-inf")
        self._unchecked = 0
        self._full: str | None = None

    async def ensure(self, incoming_bytes: int) -> None:
        """Raise `QueueFull` while Redis is past the intake share of its maxmemory;
        `incoming_bytes`: the size of the messages about to be queued."""
        now = time.monotonic()
        self._unchecked += incoming_bytes
        stale = now - self._checked_at >= self.CHECK_SECONDS or self._unchecked >= self.CHECK_BYTES
        if self._full or stale:
            self._checked_at, self._unchecked = now, 0
            self._full = _past(await memory_info(self._client), self._share)
        if self._full:
            raise QueueFull(self._full)


def _past(memory: dict[str, Any], share: float) -> str | None:
    limit = memory["maxmemory"]
    if not limit or (memory["used_memory"] < limit * share and not memory["full"]):
        return None
    return (
        f"Redis uses {memory['used_memory'] / limit:.0%} of maxmemory; new emails are refused "
        f"until it is under {share:.0%}"
    )


class WriteRefusals:
    """Logs when Redis starts refusing this process's writes, and when it accepts them again,
    with how many requests were refused in between."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refused = 0

    def refused(self) -> None:
        """A write was refused for want of memory."""
        with self._lock:
            self._refused += 1
            first = self._refused == 1
        if first:
            logger.warning(
                "Redis is (nearly) out of memory (maxmemory): refusing new emails with 503 "
                "queue_full until it accepts writes again"
            )

    def accepted(self) -> None:
        """A write went through."""
        if not self._refused:
            return
        with self._lock:
            refused, self._refused = self._refused, 0
        if refused:
            logger.warning("Redis accepts writes again after %d refused requests", refused)
