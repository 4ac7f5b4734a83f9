"""`AsyncPostbox` against a real `postbox serve`, and the retry after a real 429."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from lossy_proxy import LossyProxy
from postbox_client import (
    AsyncPostbox,
    NotFound,
    Postbox,
    RateLimited,
    RetryPolicy,
    TransportError,
    ValidationError,
)

from postbox.dev.ports import free_port
from tests.conftest import SmtpServer
from tests.integration.serving import Process
from tests.support import API_KEY, wait_until

SENDER = "shop@example.com"
QUICK = RetryPolicy(backoff=0.05)


async def wait_sent(client: AsyncPostbox, email_id: str) -> None:
    deadline = time.monotonic() + 30
    while (await client.get(email_id))["status"] != "sent":
        assert time.monotonic() < deadline, "not sent within 30 s"
        await asyncio.sleep(0.1)


def test_async_client_sends_batches_and_reads(postbox: Process, smtp_server: SmtpServer) -> None:
    async def scenario() -> None:
        async with AsyncPostbox(postbox.base_url, API_KEY) as client:
            sends = [
                client.send(from_=SENDER, to=f"r{i}@example.org", subject=f"S{i}", text="t")
                for i in range(5)
            ]
            accepted = await asyncio.gather(*sends)
            assert len({a["id"] for a in accepted}) == 5
            batch = await client.send_batch(
                [{"from": SENDER, "to": "b@example.org", "subject": "B", "text": "b"}]
            )
            for email_id in [a["id"] for a in accepted] + [batch[0]["id"]]:
                await wait_sent(client, email_id)
            with pytest.raises(ValidationError) as invalid:
                await client.send(from_=SENDER, to="x@example.org", subject="S")
            assert invalid.value.code == "validation_error" and invalid.value.fields
            with pytest.raises(NotFound):
                await client.retry_dead_letter("em_" + "1" * 64)
        # The async client retries the same way: a lost answer, then the same key again.
        proxy = LossyProxy(postbox.port or 0, lose=1)
        try:
            async with AsyncPostbox(proxy.base_url, API_KEY, retries=QUICK) as client:
                lost = await client.send(from_=SENDER, to="l@example.org", subject="L", text="t")
                assert lost["duplicate"] is True
                await wait_sent(client, lost["id"])
        finally:
            proxy.close()
        async with AsyncPostbox(f"http://127.0.0.1:{free_port()}", API_KEY, retries=QUICK) as gone:
            with pytest.raises(TransportError):
                await gone.queue_stats()

    asyncio.run(scenario())
    assert len(smtp_server.received) == 7


def test_a_429_is_retried_after_its_retry_after(postbox_factory: Callable[..., Process]) -> None:
    server = postbox_factory(API_RATE_LIMIT="2 per 3 seconds")
    counter = LossyProxy(server.port or 0, lose=0)  # loses nothing: counts the requests
    with Postbox(counter.base_url, API_KEY) as client:
        started = time.monotonic()
        ids = [
            client.send(from_=SENDER, to="ann@example.org", subject=f"S{i}", text="t")["id"]
            for i in range(3)
        ]
        # The third was over the limit: answered 429 with Retry-After (1-3 s), then retried.
        assert time.monotonic() - started >= 0.9
        assert len(set(ids)) == 3
        assert len(counter.requests) == 4
    counter.close()
    patient_not = RetryPolicy(max_retries=0)
    with Postbox(server.base_url, API_KEY, retries=patient_not) as client:
        wait_until(lambda: _burst_refused(client), timeout=10)


def _burst_refused(client: Postbox) -> bool:
    try:
        for _ in range(3):
            client.queue_stats()
    except RateLimited as refused:
        assert refused.code == "rate_limited" and refused.retry_after is not None
        return True
    return False
