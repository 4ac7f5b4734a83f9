"""Group-commit admission: concurrent sends of one process share one check, and a check
that does not fit whole admits exactly the room the window has left."""

from __future__ import annotations

import asyncio
import time

import limits.aio.storage.redis.redispy as limits_redis
import redis as sync_redis
import redis.asyncio as redis
import uvloop

from postbox.config import load_settings
from postbox.errors import Postponed
from postbox.queue.connection import worker_client
from postbox.workers.rate_limit import SendRateLimiter


def _limiter_outcomes(redis_url: str, limit: str, sends: int) -> list[bool | Postponed]:
    """Run `sends` concurrent acquisitions in one process; True for each one admitted."""
    settings = load_settings({"REDIS_URL": redis_url, "EMAIL_RATE_LIMIT": limit})

    async def run() -> list[bool | Postponed]:
        client: redis.Redis = worker_client(settings.redis)
        limiter = SendRateLimiter(settings, client)

        async def one(n: int) -> bool | Postponed:
            try:
                await limiter.acquire([f"user{n}@example.com"])
            except Postponed as postponed:
                return postponed
            return True

        try:
            return list(await asyncio.gather(*(one(n) for n in range(sends))))
        finally:
            await client.aclose(close_connection_pool=True)

    return uvloop.run(run())


def _script_calls(client: sync_redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


def test_concurrent_sends_share_one_check(redis_url: str, redis_client: sync_redis.Redis) -> None:
    before = _script_calls(redis_client)

    outcomes = _limiter_outcomes(redis_url, "1000/minute", 50)

    assert outcomes == [True] * 50
    assert _script_calls(redis_client) - before <= 2
    (window,) = redis_client.keys("postbox:*rate*")
    assert redis_client.llen(window) == 50  # one stamp per send, none lost to batching


def test_a_batch_larger_than_the_room_left_admits_exactly_the_room(redis_url: str) -> None:
    outcomes = _limiter_outcomes(redis_url, "5/minute", 8)

    assert outcomes.count(True) == 5
    postponed = [p for p in outcomes if isinstance(p, Postponed)]
    assert len(postponed) == 3
    now_ms = time.time() * 1000
    assert all(p.until_ms > now_ms for p in postponed)


def test_every_limit_of_a_multi_limit_setting_is_enforced(redis_url: str) -> None:
    # The second, tighter limit binds: the worker used to enforce only the first one.
    outcomes = _limiter_outcomes(redis_url, "1000/minute;3/hour", 6)

    assert outcomes.count(True) == 3
    assert sum(isinstance(p, Postponed) for p in outcomes) == 3


class _ClockBehind:
    """The `time` module as a host whose clock runs a minute behind would see it."""

    @staticmethod
    def time() -> float:
        return time.time() - 60


def test_a_worker_whose_clock_runs_behind_still_counts_against_the_limit(
    redis_url: str, monkeypatch
) -> None:
    # Stamped with the caller's clock, a lagging host's sends looked a minute old to every
    # other host, which then sent a whole limit's worth more in the same second.
    with monkeypatch.context() as patch:
        patch.setattr(limits_redis, "time", _ClockBehind)
        assert _limiter_outcomes(redis_url, "5/second", 5) == [True] * 5

    outcomes = _limiter_outcomes(redis_url, "5/second", 5)
    assert not any(outcome is True for outcome in outcomes)
    time.sleep(1.1)
    assert _limiter_outcomes(redis_url, "5/second", 5) == [True] * 5
