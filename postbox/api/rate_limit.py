"""The per-key API rate limit (`API_RATE_LIMIT`), kept in Redis with the `limits` package.

Every `/v1` request costs 1 as it arrives, before its body is read, so malformed requests
count too; a valid batch then costs one more per email beyond the first, before anything
is enqueued. A request over the limit gets 429 with `Retry-After`; every answer to a known
key carries the IETF draft headers `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (seconds until the whole quota is back).

Strategy: the sliding-window counter. It keeps two integers per key whatever the limit, and
a batch of 500 is one INCRBY; the moving window the workers use would keep one list entry
per email counted (6000 entries for `6000/minute`, 500 pushes for one batch). The counter
is approximate (it assumes the previous window's requests were spread evenly), which is
fine for protecting the API from a runaway client; the workers' send limit protects the
relay's contract and stays exact.

Storage: a synchronous redis-py pool per process. The views are synchronous, so this is one
blocking round trip (two with the headers' numbers) on the request's own thread; going
through the queue gateway's event loop would add a thread hop to every request and tie
`limits` to the queue code. The pool is made lazily, in the process that uses it (gunicorn
forks after the app is built), and fails as fast as the gateway: Redis down means 503.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask import Blueprint, Response, g
from limits import RateLimitItem
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from postbox.api.auth import current_key
from postbox.config import RedisSettings, Settings
from postbox.errors import RateLimited, ValidationFailed
from postbox.per_process import PerProcess
from postbox.queue.connection import api_sync_pool, redis_reachable
from postbox.queue.keys import PostboxKeys

# (previous count, its seconds to live, current count, its seconds to live), as limits reads it.
Window = tuple[int, float, int, float]


@dataclass(frozen=True)
class Quota:
    """Where a key stands: its limit, what is left, and when all of it is back."""

    limit: int
    window_seconds: int
    remaining: int
    reset_seconds: float

    def headers(self) -> dict[str, str]:
        """The draft-ietf-httpapi-ratelimit-headers fields."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_seconds)),
            "RateLimit-Policy": f"{self.limit};w={self.window_seconds}",
        }


class ApiRateLimiter:
    """Counts each API key's requests (emails, for a batch) against one limit."""

    def __init__(self, settings: Settings) -> None:
        self.item: RateLimitItem | None = settings.api.rate_limit
        self._storage = PerProcess(lambda: _storage(settings.redis))

    @property
    def enabled(self) -> bool:
        """True when `API_RATE_LIMIT` sets a limit."""
        return self.item is not None

    def charge(self, key_id: str, cost: int) -> Quota:
        """Count `cost` for `key_id`; `RateLimited` (429) if that would go over the limit."""
        assert self.item is not None, "charge() needs a configured limit"
        item, storage = self.item, self._storage.get()
        with redis_reachable():
            allowed = SlidingWindowCounterRateLimiter(storage).hit(item, key_id, cost=cost)
            window = storage.get_sliding_window(item.key_for(key_id), item.get_expiry())
        quota = _quota(item, window)
        if allowed:
            return quota
        wait = seconds_until_room(item.amount, item.get_expiry(), cost, window)
        raise RateLimited(
            f"This API key is over its rate limit of {item}; retry later.",
            {"Authorization": [f"Rate limit {item} reached for this key."]},
            {**quota.headers(), "Retry-After": str(max(1, math.ceil(wait)))},
        )


def _storage(settings: RedisSettings) -> RedisStorage:
    return RedisStorage(
        settings.url,
        connection_pool=api_sync_pool(settings),
        key_prefix=PostboxKeys(settings.queue_name).api_rate_prefix(),
    )


def _quota(item: RateLimitItem, window: Window) -> Quota:
    previous, previous_ttl, current, _ = window
    expiry = item.get_expiry()
    used = math.floor(previous * previous_ttl / expiry) + current
    return Quota(
        limit=item.amount,
        window_seconds=expiry,
        remaining=max(0, item.amount - used),
        reset_seconds=seconds_until_room(item.amount, expiry, item.amount, window),
    )


def seconds_until_room(limit: int, expiry: int, cost: int, window: Window) -> float:
    """Seconds until `cost` more fits under `limit`, if nothing else is counted meanwhile.

    The counter allows a hit while floor(previous * weight) + current + cost <= limit, where
    the previous window's weight falls from 1 to 0 over the current window's remaining life
    (both keys expire together). If the current count alone leaves no room, wait for the
    current window to end: it then becomes the previous one and decays in turn.
    """
    previous, previous_ttl, current, current_ttl = window
    room = limit - cost - current
    if room >= 0:
        return max(0.0, previous_ttl - (room + 1) * expiry / previous) if previous else 0.0
    ends_in = max(0.0, current_ttl - expiry)
    return ends_in + max(0.0, expiry - (limit - cost + 1) * expiry / current)


def register_rate_limit(blueprint: Blueprint, limiter: ApiRateLimiter) -> None:
    """Charge every request to `blueprint` and add the quota headers to its answers."""
    if not limiter.enabled:
        return
    blueprint.before_request(lambda: _charge_request(limiter))
    blueprint.after_request(_add_headers)


def charge_batch(limiter: ApiRateLimiter, emails: int) -> None:
    """Charge a valid batch for its emails beyond the first (the request itself paid one)."""
    if limiter.item is None:
        return
    if emails > limiter.item.amount:
        raise ValidationFailed(
            f"A batch of {emails} emails can never fit this key's rate limit of "
            f"{limiter.item}; send it in smaller batches.",
            {"emails": [f"More than {limiter.item.amount} emails for this key's rate limit."]},
        )
    if emails > 1:
        g.quota = limiter.charge(current_key().key_id, emails - 1)


def _charge_request(limiter: ApiRateLimiter) -> None:
    g.quota = limiter.charge(current_key().key_id, 1)


def _add_headers(response: Response) -> Response:
    quota: Quota | None = g.get("quota")
    if quota is not None and "RateLimit-Limit" not in response.headers:
        response.headers.update(quota.headers())
    return response
