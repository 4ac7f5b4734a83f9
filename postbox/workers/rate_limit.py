"""Send rate limits shared by every worker process, kept in Redis with the `limits` package.

The moving-window strategy is exact: no window of the limit's length ever holds more sends
than the limit (a fixed window lets twice the limit through around a boundary; the sliding
counter approximates). A send over a limit is postponed to when the window has room again,
plus jitter so waiting jobs do not all wake at once; it spends no attempt. No limit
configured costs nothing.

Admission is a group commit: the sends of one process that reach a limit while its previous
check is still in flight are admitted together by the next check, one Lua call stamping them
all (`cost=n`). At full load, when a check costs most, the batches grow; at low load a check
admits one send, as before. Each stamp still lands just before its send, so the window stays
exact; a batch that does not fit whole is split at the room the window has left.

Stamps come from Redis' clock, not the caller's (`_RedisClockStorage`): limits keeps the
window as a list in arrival order and looks only at the entry `limit` places back, so a stamp
taken by a process that was then descheduled before its call reached Redis landed out of
order, and the window let one more through (22 sends in a second at 20/second, three worker
processes on a loaded 2-core machine).
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import redis.asyncio as redis
from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from postbox.config import Settings
from postbox.errors import Postponed
from postbox.group_commit import GroupCommit
from postbox.queue.keys import PostboxKeys

# limits' acquire_moving_window.lua (limits 5.8), the entries stamped with Redis' TIME.
# KEYS[1]: the window's list. ARGV: limit, expiry (s), amount.
_ACQUIRE_ON_REDIS_CLOCK = """
local now = redis.call('TIME')
local timestamp = tonumber(now[1]) + tonumber(now[2]) / 1000000
local limit, expiry, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if amount > limit then
  return false
end
local entry = redis.call('LINDEX', KEYS[1], limit - amount)
if entry and tonumber(entry) >= timestamp - expiry then
  return false
end
local stamp = string.format('%.6f', timestamp)
for i = 1, amount, 5000 do
  local entries = {}
  for j = i, math.min(i + 4999, amount) do
    entries[#entries + 1] = stamp
  end
  redis.call('LPUSH', KEYS[1], unpack(entries))
end
redis.call('LTRIM', KEYS[1], 0, limit - 1)
redis.call('EXPIRE', KEYS[1], expiry)
return true
"""


class _RedisClockStorage(RedisStorage):
    """limits' Redis storage, whose moving-window entries carry Redis' time."""

    def __init__(self, uri: str, client: redis.Redis, key_prefix: str) -> None:
        super().__init__(
            uri,
            implementation="redispy",
            # limits types **options narrowly; it passes connection_pool on to redis-py.
            connection_pool=client.connection_pool,  # type: ignore[arg-type]
            key_prefix=key_prefix,
        )
        self._key_prefix = key_prefix
        self._acquire = client.register_script(_ACQUIRE_ON_REDIS_CLOCK)

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Stamp `amount` entries if they fit in the window (what limits' own does)."""
        window = f"{self._key_prefix}:{key}"
        return bool(await self._acquire(keys=[window], args=[limit, expiry, amount]))


class SendRateLimiter:
    """Checks the global and per-recipient-domain limits before each send."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        worker = settings.worker
        storage = _RedisClockStorage(
            "async+" + settings.redis.url,
            client,
            PostboxKeys(settings.redis.queue_name).send_rate_prefix(),
        )
        limiter = MovingWindowRateLimiter(storage)
        self._global = [
            _Limit(limiter, item, "global")
            for item in (worker.rate_limit.items if worker.rate_limit else ())
        ]
        self._domains = {
            domain: [_Limit(limiter, item, domain) for item in limit.items]
            for domain, limit in worker.domain_rate_limits
        }
        # `rate_limit=` in a relay's URL (SMTP_RELAYS); a domain name holds no ':'.
        self._relays = {
            relay.name: [_Limit(limiter, item, f"relay:{relay.name}") for item in limit.items]
            for relay in settings.relays
            if (limit := relay.rate_limit) is not None
        }

    @property
    def enabled(self) -> bool:
        """True when a global or a domain limit is configured."""
        return bool(self._global or self._domains)

    def limits_relay(self, relay: str) -> bool:
        """True when `relay` has a rate limit of its own."""
        return relay in self._relays

    async def acquire_relay(self, relay: str) -> None:
        """Count one send through `relay`, or raise `Postponed` if its limit is reached."""
        for limit in self._relays.get(relay, ()):
            if not await limit.admit():
                raise Postponed(await limit.retry_at_ms(), f"rate limit {limit}")

    async def acquire(self, recipients: Iterable[str]) -> None:
        """Count one send, or raise `Postponed` if a limit is reached.

        Domain limits are taken first: a domain over its limit then costs the others nothing.
        """
        checks = [limit for d in _domains(recipients) for limit in self._domains.get(d, ())]
        for limit in [*checks, *self._global]:
            if not await limit.admit():
                raise Postponed(await limit.retry_at_ms(), f"rate limit {limit}")


class _Limit:
    """One limit and its group commit: sends that wait while a check is in flight go
    together."""

    def __init__(self, limiter: MovingWindowRateLimiter, item: RateLimitItem, key: str) -> None:
        self._limiter = limiter
        self._item = item
        self._key = key
        self._checks: GroupCommit[None, bool] = GroupCommit(self._check)

    def __str__(self) -> str:
        return f"{self._item} ({self._key})"

    async def admit(self) -> bool:
        """True when this send fits in the window (and is counted), False when it does not."""
        return await self._checks.submit(None)

    async def retry_at_ms(self) -> int:
        """When the window has room again, plus jitter so waiting sends do not wake at once."""
        stats = await self._limiter.get_window_stats(self._item, self._key)
        jitter = random.uniform(0, self._item.get_expiry())  # noqa: S311
        return int((stats.reset_time + jitter) * 1000)

    async def _check(self, sends: list[None]) -> list[bool]:
        room = await self._admit(len(sends))
        return [index < room for index in range(len(sends))]

    async def _admit(self, count: int) -> int:
        """Stamp up to `count` sends; returns how many fit."""
        if await self._limiter.hit(self._item, self._key, cost=count):
            return count
        if count == 1:
            return 0
        stats = await self._limiter.get_window_stats(self._item, self._key)
        room = min(int(stats.remaining), count)
        if room > 0 and await self._limiter.hit(self._item, self._key, cost=room):
            return room
        return 0


def _domains(recipients: Iterable[str]) -> list[str]:
    return sorted({r.rpartition("@")[2].lower() for r in recipients})
