"""Redis memory: how full it is (for the stats and readiness), and one log line per period
of refused writes (not one per refused request).

With `maxmemory-policy noeviction` (the setting Postbox needs: an evicting Redis can drop
jobs) a Redis at `maxmemory` refuses every command that may grow memory, with an `OOM` reply.
Reads, DEL and the workers' completions that free memory still run.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis.asyncio as redis

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
                "Redis is out of memory (maxmemory): refusing new emails with 503 queue_full "
                "until it accepts writes again"
            )

    def accepted(self) -> None:
        """A write went through."""
        if not self._refused:
            return
        with self._lock:
            refused, self._refused = self._refused, 0
        if refused:
            logger.warning("Redis accepts writes again after %d refused requests", refused)
