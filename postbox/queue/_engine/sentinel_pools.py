"""Bounded connection pools to whichever Redis the Sentinels name primary right now.

redis-py's `SentinelConnectionPool` (asyncio and sync) asks the Sentinels for the primary's
address each time it opens a connection, drops its idle connections when the answer
changes, and turns a `READONLY` reply (a primary demoted under us) into a connection error;
but it is built on the plain `ConnectionPool`, which raises once exhausted. Every Postbox
pool is a `BlockingConnectionPool` (callers wait for a connection past the bound), so these
classes put the Sentinel pool in front of the blocking one: its `__init__` and `reset`
run first, then the blocking pool's.

Written against redis-py 8.1 (`redis/asyncio/sentinel.py`, `redis/sentinel.py`).
"""

from __future__ import annotations

from typing import Any

import redis as sync_redis
import redis.asyncio as redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.sentinel import Sentinel as SyncSentinel
from redis.sentinel import SentinelConnectionPool as SyncSentinelConnectionPool

from postbox.config import SentinelSettings

# Each Sentinel query is tiny; one that does not answer in this long is skipped for the next.
SENTINEL_TIMEOUT_SECONDS = 1.0


class _BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """asyncio: connections to the current primary, waiting for one past the bound."""

    async def aclose(self) -> None:
        """Close the connections, and the Sentinel manager's own to the Sentinels (which
        redis-py leaves to whoever made the manager: here, this pool)."""
        await super().aclose()
        await self.sentinel_manager.aclose()


class _SyncBlockingSentinelPool(SyncSentinelConnectionPool, sync_redis.BlockingConnectionPool):
    """Threads: connections to the current primary, waiting for one past the bound."""


def primary_pool(sentinel: SentinelSettings, **options: Any) -> redis.ConnectionPool:
    """An asyncio pool to the primary, with `options` as `BlockingConnectionPool` takes."""
    # redis-py leaves its Sentinel classes unannotated.
    manager = Sentinel(list(sentinel.nodes), sentinel_kwargs=_sentinel_kwargs(sentinel))  # type: ignore[no-untyped-call]
    return _BlockingSentinelPool(  # type: ignore[no-untyped-call]
        sentinel.master, manager, password=sentinel.redis_password, **options
    )


def sync_primary_pool(
    sentinel: SentinelSettings, **options: Any
) -> sync_redis.BlockingConnectionPool:
    """A thread-safe pool to the primary, with `options` as `BlockingConnectionPool` takes."""
    manager = SyncSentinel(list(sentinel.nodes), sentinel_kwargs=_sentinel_kwargs(sentinel))  # type: ignore[no-untyped-call]
    return _SyncBlockingSentinelPool(  # type: ignore[no-untyped-call]
        sentinel.master, manager, password=sentinel.redis_password, **options
    )


def _sentinel_kwargs(sentinel: SentinelSettings) -> dict[str, Any]:
    return {
        "password": sentinel.password,
        "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS,
        "socket_timeout": SENTINEL_TIMEOUT_SECONDS,
    }
