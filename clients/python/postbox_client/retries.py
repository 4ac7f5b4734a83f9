"""When to retry a call, and how long to wait first.

Retried: a connection that could not be made (the request never left), any transport
failure of a call that is safe to repeat (reads, and sends, which carry an idempotency key
reused on every retry), and the answers in which Postbox says "not now": 429 and 503,
after their `Retry-After` when they give one. A 503 that waiting cannot fix
(`encryption_key_missing`: the server lacks its configuration) is not retried.

Waits double from `backoff` with jitter (a random half to all of the doubled delay), so
many clients that failed together do not retry together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRYABLE_STATUSES = frozenset({429, 503})
# 503s that no amount of waiting fixes.
PERMANENT_CODES = frozenset({"encryption_key_missing"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a client retries.

    `max_retries` retries after the first try; waits start near `backoff` seconds and
    double up to `max_backoff`; a `Retry-After` longer than `max_retry_after` is not
    waited for (the error is raised at once, with its `retry_after`).
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, retry: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry number `retry` (0 for the first), or None to stop."""
        if retry >= self.max_retries:
            return None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            # A little jitter on top, so clients told the same moment spread out.
            return retry_after + random.uniform(0, self.backoff)  # noqa: S311 - not a secret
        ceiling = min(self.max_backoff, self.backoff * 2**retry)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - not a secret


def transport_error_retryable(exc: httpx.TransportError, idempotent: bool) -> bool:
    """True when repeating the request cannot do the work twice."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True  # the request was never sent
    return idempotent


def answer_retryable(status: int, code: str) -> bool:
    """True for the answers that mean "nothing was done, try again later"."""
    return status in RETRYABLE_STATUSES and code not in PERMANENT_CODES


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The answer's `Retry-After` in seconds (a number or an HTTP date), if it has one."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
