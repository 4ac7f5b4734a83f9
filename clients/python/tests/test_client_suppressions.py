"""The suppression list through `Postbox` and `AsyncPostbox`, against one real `postbox
serve`: add (new, then already there), list with filters and pages, remove, the errors,
and a lost answer to an add and to a remove."""

from __future__ import annotations

import asyncio

import pytest
from lossy_proxy import LossyProxy
from postbox_client import AsyncPostbox, NotFound, Postbox, RetryPolicy, ValidationError

from tests.integration.serving import Process
from tests.support import API_KEY

QUICK = RetryPolicy(backoff=0.05)


def test_the_suppression_list_through_both_clients(postbox: Process) -> None:
    added_listed_and_removed(postbox)
    bad_input_is_a_validation_error(postbox)
    lost_answers_are_retried_to_the_same_end(postbox)
    asyncio.run(the_async_client_does_the_same(postbox))


def added_listed_and_removed(postbox: Process) -> None:
    with Postbox(postbox.base_url, API_KEY) as client:
        [entry] = client.suppress("Ann@Example.org", reason="unsubscribe", note="by phone")
        assert entry["address"] == "Ann@example.org"  # the domain normalised, not the local part
        assert (entry["reason"], entry["note"], entry["scope"]) == ("unsubscribe", "by phone", "*")
        again = client.suppress(entry["address"], reason="unsubscribe")  # 200: already there
        assert [e["created_at"] for e in again] == [entry["created_at"]]
        client.suppress("bob@example.org")  # manual by default
        assert [e["reason"] for e in client.suppressions()["data"]] == ["unsubscribe", "manual"]
        [manual] = client.suppressions(reason="manual")["data"]
        assert manual["address"] == "bob@example.org" and manual["expires_at"] is None
        assert client.suppressions(address="bob@example.org")["data"] == [manual]
        first = client.suppressions(limit=1)
        assert first["data"] == [entry] and first["next_cursor"]
        rest = client.suppressions(limit=1, cursor=first["next_cursor"])
        assert rest["data"] == [manual]
        client.unsuppress("bob@example.org")
        with pytest.raises(NotFound) as absent:
            client.unsuppress("bob@example.org")
        assert "address" in absent.value.fields
        client.unsuppress(entry["address"])
        assert client.suppressions() == {"data": [], "next_cursor": None}


def bad_input_is_a_validation_error(postbox: Process) -> None:
    with Postbox(postbox.base_url, API_KEY) as client:
        with pytest.raises(ValidationError) as reason:
            client.suppress("ann@example.org", reason="hard_bounce")  # type: ignore[arg-type]
        assert "reason" in reason.value.fields
        with pytest.raises(ValidationError) as address:
            client.suppress("not an address")
        assert "address" in address.value.fields
        with pytest.raises(ValidationError) as cursor:
            client.suppressions(cursor="not-a-cursor")
        assert "cursor" in cursor.value.fields


def lost_answers_are_retried_to_the_same_end(postbox: Process) -> None:
    proxy = LossyProxy(postbox.port or 0, lose=1)
    try:
        with Postbox(proxy.base_url, API_KEY, retries=QUICK) as client:
            # The add reached Postbox, its answer did not: the retry finds it there (200).
            [entry] = client.suppress("carol@example.org")
            assert entry["reason"] == "manual"
            # The remove's answer is lost: its retry's 404 means the first one did the work.
            proxy.lose_next(1)
            client.unsuppress("carol@example.org")
            assert client.suppressions()["data"] == []
    finally:
        proxy.close()
    adds = [r for r in proxy.requests if r.startswith(b"POST /v1/suppressions")]
    removes = [r for r in proxy.requests if r.startswith(b"DELETE /v1/suppressions/")]
    assert len(adds) == 2 and len(removes) == 2


async def the_async_client_does_the_same(postbox: Process) -> None:
    async with AsyncPostbox(postbox.base_url, API_KEY) as client:
        [entry] = await client.suppress("dan@example.org", note="asked")
        page = await client.suppressions(address="dan@example.org")
        assert page == {"data": [entry], "next_cursor": None}
        await client.unsuppress("dan@example.org")
        with pytest.raises(NotFound):
            await client.unsuppress("dan@example.org")
        assert (await client.suppressions(reason="manual"))["data"] == []
