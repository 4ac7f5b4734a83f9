"""Commands packed in C for redis-py's asyncio connections.

redis-py's synchronous client packs commands with hiredis; its asyncio client packs them in
Python, which took ~6 % of a draining worker's CPU (py-spy: `pack_command` and its
`Encoder.encode`). These connection classes pack with redis-py's own hiredis serializer:
the same bytes and the same `DataError`s (tests/unit/test_hiredis_packing.py).
"""

from __future__ import annotations

import redis.asyncio as redis
from redis.asyncio.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection
from redis.connection import HiredisRespSerializer
from redis.typing import EncodableT
from redis.utils import HIREDIS_AVAILABLE

_SERIALIZER = HiredisRespSerializer()


class _HiredisPacking:
    """Mixed into an asyncio connection class ahead of it."""

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        """One command in the Redis protocol."""
        # redis-py annotates `pack(*args: List)`; it takes the arguments, as here.
        packed: list[bytes] = _SERIALIZER.pack(*args)  # type: ignore[arg-type]
        return packed


class HiredisConnection(_HiredisPacking, redis.Connection):
    """TCP."""


class HiredisSSLConnection(_HiredisPacking, redis.SSLConnection):
    """TLS (`rediss://`)."""


class HiredisUnixConnection(_HiredisPacking, redis.UnixDomainSocketConnection):
    """Unix socket (`unix://`)."""


class HiredisSentinelConnection(_HiredisPacking, SentinelManagedConnection):
    """TCP to the primary the Sentinels name (postbox/queue/_engine/sentinel_pools.py)."""


class HiredisSentinelSSLConnection(_HiredisPacking, SentinelManagedSSLConnection):
    """TLS to the primary the Sentinels name."""


_REPLACEMENTS: dict[type[redis.connection.AbstractConnection], type] = {
    redis.Connection: HiredisConnection,
    redis.SSLConnection: HiredisSSLConnection,
    redis.UnixDomainSocketConnection: HiredisUnixConnection,
    SentinelManagedConnection: HiredisSentinelConnection,
    SentinelManagedSSLConnection: HiredisSentinelSSLConnection,
}


def pack_with_hiredis(pool: redis.ConnectionPool) -> redis.ConnectionPool:
    """`pool`, making its connections (of the class its URL chose) pack with hiredis, when
    hiredis is installed (requirements.txt pins it)."""
    if HIREDIS_AVAILABLE:
        pool.connection_class = _REPLACEMENTS.get(pool.connection_class, pool.connection_class)
    return pool
