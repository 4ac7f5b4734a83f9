"""Every Redis client Postbox makes, and what "Redis is unreachable" means.

Tuned as measured with bullmq 3.4.4 and redis-py 8 (postbox/queue/_engine/__init__.py).

The API's client fails fast (short connect and pool timeouts, each call bounded as a whole by
the gateway) so a request answers 503 instead of hanging while Redis is away. It retries a
command once, at once, on a connection error: after a Redis restart every pooled connection
is dead, and without that retry each answered one 503 (issue 19), however long Redis had
been back. Replaying is safe for the API's commands: adding a job is keyed by its id.
The worker's client is a pool without a read timeout (so an idle worker's BZPOPMIN never
races one, and no timeout is armed per command).

Every pool goes to REDIS_URL, or, with REDIS_SENTINELS, to whichever Redis the Sentinels
name primary when a connection is opened (`_engine/sentinel_pools.py`): a failover breaks
the connections to the old primary, and the next ones go to the new one, in every process
(API, workers, rate limiters, registry, dashboard, CLI) without a restart. With
REDIS_URL=redis+cluster://..., every pool goes to the cluster master serving the queue's
hash tag, found the same way on every new connection (`_engine/slot_pools.py`).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis as sync_redis
import redis.asyncio as redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, MasterDownError, OutOfMemoryError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from postbox.config import RedisSettings
from postbox.errors import QueueFull, QueueUnavailable
from postbox.queue._engine import sentinel_pools, slot_pools
from postbox.queue._engine.hiredis_packing import pack_with_hiredis

API_TIMEOUT_SECONDS = 2.0
POOL_SIZE = 32
# The API's synchronous pool serves one gunicorn process's threads (16 each).
SYNC_POOL_SIZE = 16
# Probe an idle connection after 10 s, every 5 s, and give up after 3 unanswered probes.
_KEEPALIVE = {socket.TCP_KEEPIDLE: 10, socket.TCP_KEEPINTVL: 5, socket.TCP_KEEPCNT: 3}

# Errors that mean "Redis is not reachable right now", as opposed to a bad command. A
# primary demoted by a failover answers writes with READONLY, and a replica cut off from its
# primary answers MASTERDOWN: both pass once the clients reach the new primary.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    MasterDownError,
    ConnectionError,
    TimeoutError,
)


@contextmanager
def redis_reachable() -> Iterator[None]:
    """Turn Redis being unreachable inside the block into `QueueUnavailable` (the API's 503,
    the CLI's one-line error), and Redis refusing a write for want of memory into
    `QueueFull` (a bullmq script's refusal comes as the same `OOM` reply)."""
    try:
        yield
    except OutOfMemoryError as exc:
        raise QueueFull("Redis is out of memory (maxmemory): it refuses writes") from exc
    except UNAVAILABLE_ERRORS as exc:
        raise QueueUnavailable(f"Redis is unreachable: {type(exc).__name__}") from exc


def api_client(settings: RedisSettings, max_connections: int = POOL_SIZE) -> redis.Redis:
    """A pooled client that gives up within about two seconds when Redis cannot be reached.

    Reads have no timeout of their own: arming one per read cost ~8 % of the API's CPU at
    batch intake. A Redis that took the connection but stopped answering is cut off by the
    caller's bound on the whole call instead (`gateway.CALL_TIMEOUT_SECONDS`, which cancels
    the call and so drops the connection; the next one is a new connect, bounded here).
    """
    pool = _pool(
        settings,
        max_connections=max_connections,
        timeout=API_TIMEOUT_SECONDS,
        socket_connect_timeout=API_TIMEOUT_SECONDS,
        socket_timeout=None,
        # Calls outside a view (the heartbeat, the CLI) have no caller's bound: keepalive
        # ends a connection whose peer vanished.
        socket_keepalive=True,
        socket_keepalive_options=_KEEPALIVE,
        decode_responses=True,
        # One retry on a fresh connection, no backoff: Redis really away still answers 503
        # within the bounds above. (redis-py 8 keeps retries on the pool's connections; a
        # `retry=` beside `connection_pool=` would be ignored.)
        retry=AsyncRetry(NoBackoff(), 1),
    )
    return redis.Redis(connection_pool=pack_with_hiredis(pool))


def api_sync_pool(settings: RedisSettings) -> sync_redis.BlockingConnectionPool:
    """A thread-safe pool for the API's synchronous calls, failing as fast as `api_client`.

    Retries live on the pool's connections (redis-py runs commands through `conn.retry`).
    """
    options: dict[str, Any] = {
        "max_connections": SYNC_POOL_SIZE,
        "timeout": API_TIMEOUT_SECONDS,
        "socket_connect_timeout": API_TIMEOUT_SECONDS,
        "socket_timeout": API_TIMEOUT_SECONDS,
        "retry": sync_redis.retry.Retry(NoBackoff(), 1),
    }
    if settings.sentinel is not None:
        return sentinel_pools.sync_primary_pool(settings.sentinel, **options)
    if settings.cluster is not None:
        return slot_pools.sync_owner_pool(settings.cluster, settings.queue_name, **options)
    return sync_redis.BlockingConnectionPool.from_url(settings.url, **options)


def worker_client(settings: RedisSettings) -> redis.Redis:
    """A pooled client without retries of its own: commands are not replayed blindly (a
    replayed bullmq script could take a second job). Who needs to ride out a Redis restart
    retries at a level that knows what is safe: bullmq's fetch loop, `completions.py`.

    It has no read timeout: arming one per command cost ~10 % of a worker's CPU (asyncio
    timeouts), and every blocking call the worker makes bounds itself. A peer that vanished
    without closing the connection is found by TCP keepalive within about 25 s instead.

    The pool is bounded (`POOL_SIZE`; job slots wait for a connection past it) so a worker
    process keeps to ~33 Redis connections. Unbounded, its 100 job slots held ~100 each for
    ~11 % more drain throughput; redis-py's plain pool never closes them.
    """
    pool = _pool(
        settings,
        max_connections=POOL_SIZE,
        socket_connect_timeout=5,
        socket_timeout=None,
        socket_keepalive=True,
        socket_keepalive_options=_KEEPALIVE,
        decode_responses=True,
    )
    return redis.Redis(connection_pool=pack_with_hiredis(pool))


def binary_client(settings: RedisSettings) -> redis.Redis:
    """A small pool whose replies are bytes, not text: for DUMP and RESTORE
    (`postbox queue migrate`)."""
    pool = _pool(
        settings,
        max_connections=4,
        timeout=API_TIMEOUT_SECONDS,
        socket_connect_timeout=API_TIMEOUT_SECONDS,
        socket_timeout=30,
    )
    return redis.Redis(connection_pool=pool)


def _pool(settings: RedisSettings, **options: Any) -> redis.ConnectionPool:
    """A bounded asyncio pool to the primary: at REDIS_URL, where the Sentinels say, or
    the cluster master serving the queue's hash tag."""
    if settings.sentinel is not None:
        return sentinel_pools.primary_pool(settings.sentinel, **options)
    if settings.cluster is not None:
        return slot_pools.owner_pool(settings.cluster, settings.queue_name, **options)
    return redis.BlockingConnectionPool.from_url(settings.url, **options)
