"""The durable delivery queue of each webhook endpoint: what is due, in flight, failed.

A delivery is one event for one endpoint, id `<endpoint id>:<event id>`, kept in the hash
`webhook-delivery:<id>` (event id, type, email id, the signed body, attempts, last status and
error, next attempt) while it is pending or failed. Per endpoint:
- `due`: pending deliveries scored by when they are due (ms). A sender *claims* due ones with
  a lease: the claim script re-scores them to now + lease and stamps a token, so if its
  dispatcher dies they come due again and another takes them over (at least once);
- `failed`: deliveries that ended failed (a final 4xx, or every retry spent), scored by when;
  kept, listed, and retryable;
- `log`: the last 1,000 attempts (JSON), newest first, for the API and the dashboard.

Outcomes are written by one script call for a whole batch of attempts (`settle`). Only the
lease holder's outcome changes a delivery (its token must still be on it): a sender whose
lease ran out and was taken over may still have delivered (a duplicate, with the same
`webhook-id`), but it cannot undo the new holder's state.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as redis
from redis.asyncio.client import Pipeline

from postbox.queue.keys import PostboxKeys
from postbox.webhooks.attempts import Attempt, Verdict

LOG_LENGTH = 1000
JITTER = 0.10
# A receiver's Retry-After delays only its own deliveries; past a day it is taken as a day.
MAX_RETRY_AFTER_SECONDS = 86_400.0
_BODY_FIELDS = ("event", "type", "email", "body", "attempts")

# KEYS[1]: due set. ARGV: now ms, lease-until ms, how many, token, delivery key prefix.
# Returns when the next delivery comes due (ms; '' for none), then per claimed delivery its
# id and the _BODY_FIELDS; a due id whose delivery is gone (its endpoint deleted) is dropped.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {''}
for _, id in ipairs(ids) do
  local key = ARGV[5] .. id
  local f = redis.call('HMGET', key, 'event', 'type', 'email', 'body', 'attempts')
  if f[4] then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('HSET', key, 'lease', ARGV[4])
    table.insert(out, id)
    for i = 1, 5 do table.insert(out, f[i] or '') end
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
local soonest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if soonest[2] then out[1] = soonest[2] end
return out
"""

# KEYS[1]: outcome counters. ARGV[1]: now ms; [2]: log entries kept; [3]: delivery key
# prefix; [4]: n, then n (status class, count) pairs; then per endpoint its due, failed and
# log keys, the count m of its attempts, m times 7 values (delivery id, token, verdict: d, r
# or f, attempts, status, error, next ms), and the m log lines, oldest first.
_SETTLE = """
local n = tonumber(ARGV[4])
for i = 5, 4 + 2 * n, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
local i = 5 + 2 * n
while i <= #ARGV do
  local due, failed, log, m = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  for a = i, i + 7 * (m - 1), 7 do
    local id, token, verdict, attempts, status, err, next_ms = unpack(ARGV, a, a + 6)
    local key = ARGV[3] .. id
    if redis.call('HGET', key, 'lease') == token then
      if verdict == 'd' then
        redis.call('ZREM', due, id)
        redis.call('DEL', key)
      else
        redis.call('HSET', key, 'attempts', attempts, 'last_status', status,
          'last_error', err, 'next_at', next_ms, 'lease', '')
        if verdict == 'r' then
          redis.call('ZADD', due, 'XX', next_ms, id)
        else
          redis.call('ZREM', due, id)
          redis.call('ZADD', failed, ARGV[1], id)
        end
      end
    end
  end
  i = i + 7 * m
  redis.call('LPUSH', log, unpack(ARGV, i, i + m - 1))
  redis.call('LTRIM', log, 0, tonumber(ARGV[2]) - 1)
  i = i + m
end
return 1
"""

# KEYS: due, failed, delivery. ARGV: delivery id, now ms. A failed delivery comes due now
# with a fresh schedule; a pending one not in flight comes due now; 0 when it is neither.
_RETRY = """
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[3], 'attempts', 0, 'next_at', ARGV[2], 'lease', '')
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  return 1
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if (redis.call('HGET', KEYS[3], 'lease') or '') == '' then
  redis.call('HSET', KEYS[3], 'next_at', ARGV[2])
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
return 1
"""


@dataclass(frozen=True)
class NewDelivery:
    """An event to deliver: its id (the `webhook-id`), type, email and the JSON body."""

    event_id: str
    type: str
    email_id: str
    body: str


@dataclass(frozen=True)
class Claimed:
    """A delivery this sender holds the lease of; `attempts` were made before this one."""

    id: str
    endpoint_id: str
    event_id: str
    type: str
    email_id: str
    body: str
    attempts: int
    token: str


@dataclass(frozen=True)
class Claim:
    """What one claim took, and when the endpoint's next delivery comes due (ms; None when
    it has none): the sender sleeps until then unless new deliveries wake it."""

    deliveries: list[Claimed]
    next_due_ms: float | None


def delivery_id(endpoint_id: str, event_id: str) -> str:
    """The id of an event's delivery to an endpoint."""
    return f"{endpoint_id}:{event_id}"


def iso_ms(ms: float) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC with milliseconds and `Z` (what
    `datetime.isoformat` gives, a quarter faster: it runs for every event)."""
    whole = int(ms)
    t = time.gmtime(whole // 1000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031
        *(t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec),
        whole % 1000,
    )


def enqueue(
    pipe: Pipeline,
    keys: PostboxKeys,
    endpoint_id: str,
    new: NewDelivery,
    due_ms: int,
    *,
    again: bool = False,
) -> None:
    """Add to `pipe` the writes that make `new` due for `endpoint_id` at `due_ms`, as a
    fresh delivery; `again` (a replay) also takes it out of the failed set."""
    did = delivery_id(endpoint_id, new.event_id)
    pipe.hset(
        keys.webhook_delivery(did),
        mapping={
            "event": new.event_id,
            "type": new.type,
            "email": new.email_id,
            "body": new.body,
            "attempts": 0,
            "last_status": "",
            "last_error": "",
            "next_at": due_ms,
            "lease": "",
        },
    )
    pipe.zadd(keys.webhook_due(endpoint_id), {did: due_ms})
    if again:
        pipe.zrem(keys.webhook_failed(endpoint_id), did)


class DeliveryQueue:
    """Claims and settles the deliveries of every endpoint of one queue."""

    def __init__(
        self,
        client: redis.Redis,
        queue_name: str,
        schedule: Sequence[float],
        lease_seconds: float,
    ) -> None:
        self._client = client
        self._keys = PostboxKeys(queue_name)
        self._schedule = tuple(schedule)
        self.lease_ms = int(lease_seconds * 1000)
        self._claim = client.register_script(_CLAIM)
        self._settle = client.register_script(_SETTLE)

    async def claim(self, endpoint_id: str, limit: int, token: str) -> Claim:
        """Up to `limit` due deliveries of `endpoint_id`, oldest due first, leased to
        `token` (they come due again when the lease ends unless settled)."""
        now = int(time.time() * 1000)
        prefix = self._keys.webhook_delivery("")
        args: list[str | int] = [now, now + self.lease_ms, limit, token, prefix]
        soonest, *flat = await self._claim(keys=[self._keys.webhook_due(endpoint_id)], args=args)
        claimed = [
            Claimed(did, endpoint_id, event, kind, email, body, int(attempts or 0), token)
            for did, event, kind, email, body, attempts in _chunks(flat, 6)
        ]
        return Claim(claimed, float(soonest) if soonest else None)

    async def settle(self, done: Sequence[tuple[Claimed, Attempt]]) -> dict[str, int]:
        """Record a batch of attempts: delivered ones go, retryable ones come due again per
        the schedule (or the receiver's Retry-After), the rest end failed; each is logged.
        Returns, per endpoint with retries, when the first of them comes due (ms)."""
        if not done:
            return {}
        now = int(time.time() * 1000)
        classes = Counter(attempt.status_class for _, attempt in done)
        args: list[Any] = [now, LOG_LENGTH, self._keys.webhook_delivery(""), len(classes)]
        for name, count in classes.items():
            args += [name, count]
        by_endpoint: dict[str, list[tuple[Claimed, Attempt]]] = {}
        for item in done:
            by_endpoint.setdefault(item[0].endpoint_id, []).append(item)
        retries: dict[str, int] = {}
        for endpoint_id, items in by_endpoint.items():
            args += self._endpoint_args(endpoint_id, items, now, retries)
        await self._settle(keys=[self._keys.webhook_outcomes()], args=args)
        return retries

    def _endpoint_args(
        self,
        endpoint_id: str,
        items: list[tuple[Claimed, Attempt]],
        now: int,
        retries: dict[str, int],
    ) -> list[Any]:
        keys = self._keys
        args: list[Any] = [
            keys.webhook_due(endpoint_id),
            keys.webhook_failed(endpoint_id),
            keys.webhook_log(endpoint_id),
            len(items),
        ]
        lines = []
        at = iso_ms(now)
        for claimed, attempt in items:
            next_ms = self._next_attempt_ms(claimed, attempt, now)
            if next_ms is not None:
                retries[endpoint_id] = min(retries.get(endpoint_id, next_ms), next_ms)
            verdict = _verdict(attempt, next_ms)
            args += [
                claimed.id,
                claimed.token,
                verdict,
                claimed.attempts + 1,
                "" if attempt.status is None else attempt.status,
                attempt.error,
                "" if next_ms is None else next_ms,
            ]
            lines.append(_log_line(claimed, attempt, verdict, next_ms, at))
        return args + lines

    def _next_attempt_ms(self, claimed: Claimed, attempt: Attempt, now: int) -> int | None:
        delay = self.retry_delay(claimed.attempts + 1, attempt)
        return None if delay is None else now + int(delay * 1000)

    def retry_delay(self, attempts: int, attempt: Attempt) -> float | None:
        """Seconds until the next attempt after `attempts` made, or None when there is to
        be none (delivered, a final failure, or the schedule spent). A Retry-After is
        honoured up to a day; otherwise ±10 % jitter spreads a
        receiver's returning load. After a 410 the delivery stays pending the same way: its
        endpoint is disabled, and it goes out if the endpoint is enabled again."""
        retryable = attempt.verdict in {Verdict.RETRY, Verdict.GONE}
        if not retryable or attempts > len(self._schedule):
            return None
        if attempt.retry_after is not None:
            return min(max(attempt.retry_after, 0.0), MAX_RETRY_AFTER_SECONDS)
        base = self._schedule[attempts - 1]
        return base * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 (not a secret)


async def retry_delivery(client: redis.Redis, queue_name: str, endpoint_id: str, did: str) -> bool:
    """Make a failed or pending delivery due now; False if it is neither (delivered, or
    unknown). A failed one starts a fresh retry schedule."""
    keys = PostboxKeys(queue_name)
    script = client.register_script(_RETRY)
    now = int(time.time() * 1000)
    found = await script(
        keys=[
            keys.webhook_due(endpoint_id),
            keys.webhook_failed(endpoint_id),
            keys.webhook_delivery(did),
        ],
        args=[did, now],
    )
    return bool(found)


def _verdict(attempt: Attempt, next_ms: int | None) -> str:
    if attempt.verdict is Verdict.DELIVERED:
        return "d"
    return "f" if next_ms is None else "r"


_OUTCOMES = {"d": "delivered", "r": "retrying", "f": "failed"}


def _log_line(
    claimed: Claimed, attempt: Attempt, verdict: str, next_ms: int | None, at: str
) -> bytes:
    """One attempt as the log keeps it (and the API shows it)."""
    outcome = "endpoint_disabled" if attempt.verdict is Verdict.GONE else _OUTCOMES[verdict]
    return orjson.dumps(
        {
            "delivery_id": claimed.id,
            "event_id": claimed.event_id,
            "type": claimed.type,
            "attempt": claimed.attempts + 1,
            "status": attempt.status,
            "outcome": outcome,
            "latency_ms": round(attempt.seconds * 1000, 1),
            "error": attempt.error or None,
            "next_retry_at": None if next_ms is None else iso_ms(next_ms),
            "at": at,
        }
    )


def _chunks(flat: Sequence[str], size: int) -> list[tuple[str, ...]]:
    return [tuple(flat[i : i + size]) for i in range(0, len(flat), size)]
