"""The retry policy's decisions and waits (pure logic: no server)."""

from __future__ import annotations

import httpx
from postbox_client.retries import (
    RetryPolicy,
    answer_retryable,
    retry_after_seconds,
    transport_error_retryable,
)


def test_waits_double_with_jitter_and_stop_after_the_budget() -> None:
    policy = RetryPolicy(max_retries=3, backoff=1.0, max_backoff=3.0)
    for retry, (low, high) in enumerate([(0.5, 1.0), (1.0, 2.0), (1.5, 3.0)]):
        waits = {policy.delay(retry, None) for _ in range(50)}
        assert all(w is not None and low <= w <= high for w in waits)
        assert len(waits) > 1  # jittered
    assert policy.delay(3, None) is None


def test_retry_after_is_honoured_unless_too_long() -> None:
    policy = RetryPolicy(backoff=0.1, max_retry_after=30)
    wait = policy.delay(0, 5.0)
    assert wait is not None and 5.0 <= wait <= 5.1
    assert policy.delay(0, 31.0) is None


def test_only_answers_that_mean_not_now_are_retried() -> None:
    assert answer_retryable(429, "rate_limited")
    assert answer_retryable(503, "overloaded")
    assert answer_retryable(503, "queue_unavailable")
    assert not answer_retryable(503, "encryption_key_missing")
    assert not answer_retryable(500, "internal_error")
    assert not answer_retryable(422, "validation_error")


def test_a_request_that_may_have_arrived_is_retried_only_when_idempotent() -> None:
    assert transport_error_retryable(httpx.ConnectError("refused"), idempotent=False)
    assert not transport_error_retryable(httpx.ReadTimeout("slow"), idempotent=False)
    assert transport_error_retryable(httpx.ReadTimeout("slow"), idempotent=True)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    def answer(value: str) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": value})

    assert retry_after_seconds(answer("7")) == 7.0
    assert retry_after_seconds(answer("Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0
    assert retry_after_seconds(answer("soon")) is None
    assert retry_after_seconds(httpx.Response(503)) is None
