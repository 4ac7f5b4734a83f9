"""The per-endpoint delivery queue on a real Redis: claims with a lease, outcomes, the retry
schedule, the failed set, the capped log, and the retry of one delivery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as redis

from postbox.queue.keys import PostboxKeys
from postbox.webhooks.attempts import Attempt, Verdict
from postbox.webhooks.deliveries import DeliveryQueue, NewDelivery, enqueue, retry_delivery
from postbox.webhooks.delivery_records import delivery_counts, listed_deliveries, recent_attempts

T = TypeVar("T")
EP = "wh_AAAAAAAAAAAAAAAAAAAAAA"
KEYS = PostboxKeys("email")
OK = Attempt(Verdict.DELIVERED, 200, "", 0.01)
BUSY = Attempt(Verdict.RETRY, 503, "HTTP 503", 0.02)
BAD = Attempt(Verdict.FAILED, 400, "HTTP 400: no", 0.01)


def run(redis_url: str, action: Callable[[redis.Redis], Awaitable[T]]) -> T:
    async def main() -> T:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await action(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


async def add(client: redis.Redis, count: int, due_ms: int | None = None) -> None:
    async with client.pipeline(transaction=True) as pipe:
        for index in range(count):
            new = NewDelivery(f"evt_{index}-0", "email.sent", f"em_{index}", f'{{"n":{index}}}')
            enqueue(pipe, KEYS, EP, new, due_ms or int(time.time() * 1000))
        await pipe.execute()


def queue(client: redis.Redis, schedule: tuple[float, ...] = (5, 30), lease: float = 30):
    return DeliveryQueue(client, "email", schedule, lease)


def test_claim_leases_due_deliveries_once_until_settled(redis_url):
    async def scenario(client: redis.Redis) -> Any:
        await add(client, 3)
        q = queue(client)
        first = await q.claim(EP, 2, "a")
        second = await q.claim(EP, 10, "b")
        third = await q.claim(EP, 10, "c")
        return first, second, third

    first, second, third = run(redis_url, scenario)
    assert [d.event_id for d in first.deliveries] == ["evt_0-0", "evt_1-0"]
    assert first.deliveries[0].body == '{"n":0}' and first.deliveries[0].attempts == 0
    assert [d.event_id for d in second.deliveries] == ["evt_2-0"]
    assert third.deliveries == []
    # All three are leased: the next comes due when the first lease ends (~30 s).
    assert third.next_due_ms is not None
    assert 25_000 < third.next_due_ms - time.time() * 1000 <= 30_000


def test_an_expired_lease_is_claimed_again(redis_url):
    async def scenario(client: redis.Redis) -> Any:
        await add(client, 1)
        q = queue(client, lease=0.2)
        first = await q.claim(EP, 5, "dead")
        await asyncio.sleep(0.3)
        return first, await q.claim(EP, 5, "alive")

    first, again = run(redis_url, scenario)
    assert [d.id for d in again.deliveries] == [d.id for d in first.deliveries]
    assert again.deliveries[0].token == "alive"


def test_delivered_goes_retry_comes_due_later_final_failure_is_kept(redis_url, redis_client):
    async def scenario(client: redis.Redis) -> Any:
        await add(client, 3)
        q = queue(client)
        claim = await q.claim(EP, 3, "t")
        ok, busy, bad = claim.deliveries
        await q.settle([(ok, OK), (busy, BUSY), (bad, BAD)])
        return ok, busy, bad

    ok, busy, bad = run(redis_url, scenario)
    assert not redis_client.exists(KEYS.webhook_delivery(ok.id))
    retry_at = redis_client.zscore(KEYS.webhook_due(EP), busy.id)
    assert 4_400 <= retry_at - time.time() * 1000 <= 5_500  # 5 s ± 10 %
    assert redis_client.hget(KEYS.webhook_delivery(busy.id), "attempts") == "1"
    assert redis_client.zrange(KEYS.webhook_due(EP), 0, -1) == [busy.id]
    assert redis_client.zrange(KEYS.webhook_failed(EP), 0, -1) == [bad.id]
    assert redis_client.hgetall(KEYS.webhook_outcomes()) == {"2xx": "1", "5xx": "1", "4xx": "1"}


def test_the_schedule_spent_ends_failed(redis_url, redis_client):
    async def scenario(client: redis.Redis) -> list[str]:
        await add(client, 1)
        q = queue(client, schedule=(0, 0))
        outcomes = []
        for _ in range(3):
            [claimed] = (await q.claim(EP, 1, "t")).deliveries
            await q.settle([(claimed, BUSY)])
            outcomes.append((await recent_attempts(client, "email", EP, 1))[0]["outcome"])
        return outcomes

    assert run(redis_url, scenario) == ["retrying", "retrying", "failed"]
    [failed] = redis_client.zrange(KEYS.webhook_failed(EP), 0, -1)
    assert redis_client.hget(KEYS.webhook_delivery(failed), "attempts") == "3"


def test_retry_after_is_honoured_up_to_a_day(redis_url, redis_client):
    async def scenario(client: redis.Redis) -> None:
        await add(client, 2)
        q = queue(client, schedule=(1, 60))
        first, second = (await q.claim(EP, 2, "t")).deliveries
        slow = Attempt(Verdict.RETRY, 429, "HTTP 429", 0.01, retry_after=20)
        huge = Attempt(Verdict.RETRY, 429, "HTTP 429", 0.01, retry_after=10 * 86_400)
        await q.settle([(first, slow), (second, huge)])

    run(redis_url, scenario)
    now = time.time() * 1000
    scores = dict(redis_client.zrange(KEYS.webhook_due(EP), 0, -1, withscores=True))
    assert 19_000 < scores[f"{EP}:evt_0-0"] - now <= 20_000
    assert 86_399_000 < scores[f"{EP}:evt_1-0"] - now <= 86_400_000


def test_a_taken_over_lease_cannot_change_the_delivery(redis_url, redis_client):
    async def scenario(client: redis.Redis) -> None:
        await add(client, 1)
        q = queue(client, lease=0.1)
        [stale] = (await q.claim(EP, 1, "stale")).deliveries
        await asyncio.sleep(0.2)
        [current] = (await q.claim(EP, 1, "current")).deliveries
        await q.settle([(stale, OK)])  # delivered too late: a duplicate, but no say
        assert await client.exists(KEYS.webhook_delivery(current.id))
        await q.settle([(current, BUSY)])

    run(redis_url, scenario)
    [pending] = redis_client.zrange(KEYS.webhook_due(EP), 0, -1)
    assert redis_client.hget(KEYS.webhook_delivery(pending), "attempts") == "1"
    assert len(redis_client.lrange(KEYS.webhook_log(EP), 0, -1)) == 2  # both attempts logged


def test_the_log_keeps_the_last_thousand_attempts(redis_url, redis_client):
    async def scenario(client: redis.Redis) -> None:
        await add(client, 1010)
        q = queue(client)
        claimed = (await q.claim(EP, 2000, "t")).deliveries
        await q.settle([(d, OK) for d in claimed])

    run(redis_url, scenario)
    assert redis_client.llen(KEYS.webhook_log(EP)) == 1000
    assert redis_client.zcard(KEYS.webhook_due(EP)) == 0


def test_retry_makes_a_failed_delivery_due_now_with_a_fresh_schedule(redis_url, redis_client):
    async def scenario(client: redis.Redis) -> Any:
        await add(client, 2)
        q = queue(client)
        bad, busy = (await q.claim(EP, 2, "t")).deliveries
        await q.settle([(bad, BAD), (busy, BUSY)])
        failed_before = await listed_deliveries(
            client, "email", EP, state="failed", limit=10, offset=0
        )
        retried = [
            await retry_delivery(client, "email", EP, bad.id),
            await retry_delivery(client, "email", EP, busy.id),
            await retry_delivery(client, "email", EP, f"{EP}:evt_9-0"),
        ]
        again = await q.claim(EP, 5, "u")
        return failed_before, retried, again, await delivery_counts(client, "email", EP)

    failed_before, retried, again, counts = run(redis_url, scenario)
    assert [(d["event_id"], d["attempts"], d["last_status"]) for d in failed_before] == [
        ("evt_0-0", 1, 400)
    ]
    assert retried == [True, True, False]
    assert sorted((d.event_id, d.attempts) for d in again.deliveries) == [
        ("evt_0-0", 0),
        ("evt_1-0", 1),
    ]
    assert counts == {"pending": 2, "failed": 0}


def test_recent_attempts_are_newest_first_with_what_the_api_shows(redis_url):
    async def scenario(client: redis.Redis) -> list[dict[str, Any]]:
        await add(client, 2)
        q = queue(client)
        first, second = (await q.claim(EP, 2, "t")).deliveries
        await q.settle([(first, BUSY)])
        await q.settle([(second, OK)])
        return await recent_attempts(client, "email", EP, 10)

    newest, oldest = run(redis_url, scenario)
    assert newest["event_id"] == "evt_1-0" and newest["status"] == 200
    assert newest["outcome"] == "delivered" and newest["next_retry_at"] is None
    assert oldest["delivery_id"] == f"{EP}:evt_0-0"
    assert oldest["type"] == "email.sent" and oldest["attempt"] == 1
    assert oldest["error"] == "HTTP 503" and oldest["latency_ms"] == 20.0
    assert oldest["next_retry_at"].endswith("Z") and oldest["at"].endswith("Z")
