"""The webhook HTTP client against a real receiver: how each answer is classified, the
timeout, the 64 KiB read limit, no redirects, and private addresses refused at connection
time unless allowed."""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate

import pytest

from postbox.webhooks.attempts import Attempt, Verdict
from postbox.webhooks.http_client import EndpointClient, parse_retry_after
from tests.webhook_receiver import Receiver, Route


def unsigned(receiver: Receiver, name: str, **how: object) -> Route:
    """A route that takes requests without checking signatures (none are made here)."""
    return receiver.route(name, verify=False, **how)


def post(url: str, allow_private: bool = True, timeout: float = 5.0) -> Attempt:
    async def main() -> Attempt:
        client = EndpointClient(timeout, 4, allow_private)
        try:
            return await client.post(url, b'{"type":"x"}', {"webhook-id": "evt_1-0"})
        finally:
            await client.close()

    return asyncio.run(main())


def test_2xx_is_delivered(receiver):
    route = unsigned(receiver, "ok")
    attempt = post(receiver.url("ok"))
    assert attempt.verdict is Verdict.DELIVERED
    assert (attempt.status, attempt.error, attempt.status_class) == (200, "", "2xx")
    assert [r.webhook_id for r in route.received] == ["evt_1-0"]


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (410, Verdict.GONE),
        (400, Verdict.FAILED),
        (404, Verdict.FAILED),
        (302, Verdict.FAILED),
    ],
)
def test_each_status_gets_its_verdict(receiver, status, verdict):
    unsigned(receiver, "r", answers=[(status, {"Location": receiver.url("elsewhere")})])
    attempt = post(receiver.url("r"))
    assert (attempt.verdict, attempt.status) == (verdict, status)
    assert attempt.error.startswith(f"HTTP {status}")


def test_a_redirect_to_a_private_address_is_not_followed(receiver):
    target = unsigned(receiver, "private")
    unsigned(receiver, "r", answers=[(307, {"Location": receiver.url("private")})])
    attempt = post(receiver.url("r"))
    assert attempt.verdict is Verdict.FAILED
    assert "redirects are not followed" in attempt.error
    assert target.received == []


def test_retry_after_seconds_and_http_date(receiver):
    later = formatdate(time.time() + 120, usegmt=True)
    unsigned(receiver, "s", answers=[(429, {"Retry-After": "7"})])
    unsigned(receiver, "d", answers=[(503, {"Retry-After": later})])
    assert post(receiver.url("s")).retry_after == 7.0
    assert 110 < (post(receiver.url("d")).retry_after or 0) <= 120
    assert parse_retry_after("soon") is None


def test_no_answer_within_the_timeout_retries(receiver):
    unsigned(receiver, "slow", delay=2.0)
    started = time.monotonic()
    attempt = post(receiver.url("slow"), timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert attempt.verdict is Verdict.RETRY and attempt.status is None
    assert attempt.status_class == "timeout"
    assert attempt.error == "timeout: no answer within 0.5 s"


def test_at_most_64_kib_of_an_answer_is_read(receiver):
    # The body never ends: reading it to its end would run into the timeout.
    unsigned(receiver, "endless", answers=[(500, {})], endless=True)
    attempt = post(receiver.url("endless"), timeout=3)
    assert (attempt.verdict, attempt.status) == (Verdict.RETRY, 500)
    assert attempt.seconds < 1
    assert len(attempt.error) < 300


def test_a_closed_port_is_a_connection_error():
    attempt = post("http://127.0.0.1:9/x")
    assert attempt.verdict is Verdict.RETRY and attempt.status_class == "connection"
    assert attempt.error.startswith("connection: cannot connect to 127.0.0.1:9")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "169.254.169.254", "[::1]"])
def test_private_addresses_are_refused_at_connection_time(receiver, host):
    route = unsigned(receiver, "ok")
    attempt = post(receiver.url("ok", host=host), allow_private=False)
    assert attempt.verdict is Verdict.RETRY and attempt.status_class == "refused"
    assert "forbidden address" in attempt.error
    assert route.received == []


def test_private_addresses_are_allowed_when_the_setting_says_so(receiver):
    route = unsigned(receiver, "ok")
    assert post(receiver.url("ok", host="localhost")).verdict is Verdict.DELIVERED
    assert len(route.received) == 1
