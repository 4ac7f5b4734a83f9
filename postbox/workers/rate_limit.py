"""Send rate limits shared by every worker process, kept in Redis with the `limits` package.

The moving-window strategy is exact: no window of the limit's length ever holds more sends
than the limit (a fixed window lets twice the limit through around a boundary; the sliding
counter approximates). It costs one Lua call per limit per send, and none at all when no
limit is configured. A send over a limit is postponed to when the window has room again,
plus jitter so waiting jobs do not all wake at once; it spends no attempt.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import redis.asyncio as redis
from limits import RateLimitItem, parse, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from postbox.config import Settings
from postbox.queue.consumer import Postponed


class SendRateLimiter:
    """Checks the global and per-recipient-domain limits before each send."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        worker = settings.worker
        self._global = parse(worker.rate_limit) if worker.rate_limit else None
        self._domains = {domain: parse(limit) for domain, limit in worker.domain_rate_limits}
        storage = RedisStorage(
            "async+" + settings.redis.url,
            implementation="redispy",
            # limits types **options narrowly; it passes connection_pool on to redis-py.
            connection_pool=client.connection_pool,  # type: ignore[arg-type]
            key_prefix=f"postbox:{settings.redis.queue_name}:rate",
        )
        self._limiter = MovingWindowRateLimiter(storage)

    @property
    def enabled(self) -> bool:
        """True when any limit is configured."""
        return self._global is not None or bool(self._domains)

    async def acquire(self, recipients: Iterable[str]) -> None:
        """Count one send, or raise `Postponed` if a limit is reached.

        Domain limits are taken first: a domain over its limit then costs the others nothing.
        """
        checks = [(self._domains[d], d) for d in _domains(recipients) if d in self._domains]
        if self._global is not None:
            checks.append((self._global, "global"))
        for item, key in checks:
            if not await self._limiter.hit(item, key):
                raise Postponed(await self._retry_at_ms(item, key), f"rate limit {item} ({key})")

    async def _retry_at_ms(self, item: RateLimitItem, key: str) -> int:
        stats = await self._limiter.get_window_stats(item, key)
        jitter = random.uniform(0, item.get_expiry())  # noqa: S311
        return int((stats.reset_time + jitter) * 1000)


def _domains(recipients: Iterable[str]) -> list[str]:
    return sorted({r.rpartition("@")[2].lower() for r in recipients})


def per_second(limit: str | None) -> float | None:
    """The sends per second that `limit` allows on average (the tightest of several)."""
    if not limit:
        return None
    return min(item.amount / item.get_expiry() for item in parse_many(limit))
