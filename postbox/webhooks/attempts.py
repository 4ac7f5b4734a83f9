"""What one delivery attempt came to, as the HTTP client classifies the receiver's answer and
the delivery queue records it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    """What an attempt means for its delivery."""

    DELIVERED = "delivered"  # 2xx
    RETRY = "retry"  # 408, 429, 5xx, a timeout, a connection error: try again later
    FAILED = "failed"  # another 4xx, a refused address: no later attempt will do better
    GONE = "gone"  # 410: the receiver is no more; the endpoint is disabled


@dataclass(frozen=True)
class Attempt:
    """One attempt's outcome: the HTTP status, or without an answer why not (`no_answer`:
    `timeout`, `connection`, or `refused` for a forbidden address); a short error text ("" when
    delivered); how long it took; and the receiver's Retry-After in seconds."""

    verdict: Verdict
    status: int | None
    error: str
    seconds: float
    retry_after: float | None = None
    no_answer: str = ""

    @property
    def status_class(self) -> str:
        """`2xx` ... `5xx` for an answer, else why there was none."""
        if self.status is not None:
            return f"{self.status // 100}xx"
        return self.no_answer or "connection"
