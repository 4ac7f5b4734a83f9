"""Redis clients for the two sides, tuned as ../shared/BULLMQ-NOTES.md measured.

The API's client fails fast (one try, short timeouts) so a request answers 503 instead of
hanging while Redis is away. The worker's client is a blocking pool whose read timeout sits
well above the BZPOPMIN block time, so an idle worker does not reconnect in a loop.
"""

from __future__ import annotations

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from postbox.config import RedisSettings

API_TIMEOUT_SECONDS = 2.0
WORKER_SOCKET_TIMEOUT_SECONDS = 30.0
POOL_SIZE = 32

# Errors that mean "Redis is not reachable right now", as opposed to a bad command.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ConnectionError,
    TimeoutError,
)


def api_client(settings: RedisSettings) -> redis.Redis:
    """A pooled client that gives up within about two seconds."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.url,
        max_connections=POOL_SIZE,
        timeout=API_TIMEOUT_SECONDS,
        socket_connect_timeout=API_TIMEOUT_SECONDS,
        socket_timeout=API_TIMEOUT_SECONDS,
        decode_responses=True,
    )
    return redis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 1))


def worker_client(settings: RedisSettings) -> redis.Redis:
    """A pooled client that rides out short Redis restarts with capped exponential retries."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.url,
        max_connections=POOL_SIZE,
        socket_connect_timeout=5,
        socket_timeout=WORKER_SOCKET_TIMEOUT_SECONDS,
        socket_keepalive=True,
        health_check_interval=15,
        decode_responses=True,
    )
    retry = Retry(ExponentialBackoff(cap=2, base=0.1), 5)
    return redis.Redis(
        connection_pool=pool,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError, BusyLoadingError],
    )
