"""The suppression list enforced twice: at intake (single and batch sends leave suppressed
recipients out, an email left with nobody is not queued) and in a real worker right before
the transaction (an address suppressed after acceptance gets nothing)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as redis

from postbox.config import key_digest, load_settings
from postbox.queue import events
from postbox.queue.events import parse_entry
from postbox.queue.keys import PostboxKeys
from tests.support import API_KEY, email_payload, sent_count, wait_until

KEYS = PostboxKeys("email")
GONE = "gone@example.org"
OK = "ok@example.org"
OTHER_KEY = "tenant-b-key-0123456789"


@pytest.fixture
def consumer(redis_url: str) -> None:
    async def run() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await events.register_consumer(client, "email", "test")
        finally:
            await client.aclose()

    asyncio.run(run())


def _suppress(api: Any, address: str, key: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    assert api.post("/v1/suppressions", json={"address": address}, headers=headers).status_code in (
        200,
        201,
    )


def _events(redis_client: Any, email_id: str) -> list[Any]:
    found = [parse_entry(i, f) for i, f in redis_client.xrange(KEYS.events())]
    return [event for event in found if event.email_id == email_id]


def test_a_suppressed_recipient_is_left_out_and_the_others_get_the_email(
    api, redis_client, smtp_server, worker_factory
):
    _suppress(api, GONE)

    answer = api.post("/v1/emails", json=email_payload(to=[OK, "Gone@EXAMPLE.org"], cc=[GONE]))
    worker_factory()
    wait_until(lambda: sent_count(redis_client) == 1)

    assert answer.status_code == 202
    assert answer.json["status"] == "queued"
    assert answer.json["suppressed"] == [GONE]
    [received] = smtp_server.received
    assert received.rcpt_tos == [OK, "Gone@example.org"]  # the local part is case-sensitive
    assert GONE in received.message["Cc"]  # headers stay as written


def test_an_email_with_every_recipient_suppressed_is_accepted_not_queued(
    api, consumer, redis_client
):
    _suppress(api, GONE)

    answer = api.post("/v1/emails", json=email_payload(to=[GONE]))
    again = api.post("/v1/emails", json=email_payload(to=[GONE]))
    email_id = answer.json["id"]
    status = api.get(f"/v1/emails/{email_id}")

    assert answer.status_code == 202
    assert answer.json == {
        "id": email_id,
        "message_id": answer.json["message_id"],
        "status": "suppressed",
        "duplicate": False,
        "suppressed": [GONE],
    }
    assert again.json["status"] == "suppressed"
    assert not redis_client.exists(KEYS.bull(email_id))
    assert redis_client.llen(KEYS.bull("wait")) == 0
    assert status.status_code == 200
    assert status.json["status"] == "suppressed"
    assert status.json["delivery"]["suppressed"] == [GONE]
    [event] = _events(redis_client, email_id)  # once, though posted twice
    assert event.type == "email.suppressed"
    assert event.data["to"] == [GONE]


def test_a_batch_answers_per_item(api, redis_client):
    _suppress(api, GONE)

    answer = api.post(
        "/v1/emails/batch",
        json={
            "emails": [
                email_payload(to=[GONE]),
                email_payload(to=[OK, GONE]),
                email_payload(to=[OK]),
            ]
        },
    )

    assert answer.status_code == 202
    items = answer.json["data"]
    assert [(i["index"], i["status"], i["suppressed"]) for i in items] == [
        (0, "suppressed", [GONE]),
        (1, "queued", [GONE]),
        (2, "queued", []),
    ]
    assert redis_client.llen(KEYS.bull("wait")) == 2


def test_a_scoped_entry_suppresses_only_emails_from_its_sender_domains(
    api_factory, service_env, redis_client
):
    keys = f"sha256:{key_digest(API_KEY)}@example.com,sha256:{key_digest(OTHER_KEY)}@example.net"
    api = api_factory(load_settings({**service_env, "API_KEYS": keys}))
    _suppress(api, GONE)  # by the example.com key: only its emails skip GONE

    mine = api.post("/v1/emails", json=email_payload(to=[GONE]))
    theirs = api.post(
        "/v1/emails",
        json=email_payload(to=[GONE], **{"from": "shop@example.net"}),
        headers={"Authorization": f"Bearer {OTHER_KEY}"},
    )

    assert mine.json["status"] == "suppressed"
    assert theirs.json["status"] == "queued"
    assert theirs.json["suppressed"] == []


def test_the_worker_skips_an_address_suppressed_after_acceptance(
    api, consumer, redis_client, smtp_server, worker_factory
):
    nobody = api.post("/v1/emails", json=email_payload(to=[GONE], subject="one")).json
    partly = api.post("/v1/emails", json=email_payload(to=[OK, GONE], subject="two")).json
    assert nobody["suppressed"] == [] and nobody["status"] == "queued"
    _suppress(api, GONE)

    worker_factory()
    wait_until(lambda: sent_count(redis_client) == 1)
    wait_until(lambda: api.get(f"/v1/emails/{nobody['id']}").json["status"] == "suppressed")
    time.sleep(0.3)

    [received] = smtp_server.received
    assert received.rcpt_tos == [OK]
    types = [e.type for e in _events(redis_client, nobody["id"])]
    assert types == ["email.queued", "email.suppressed"]
    [sent] = [e for e in _events(redis_client, partly["id"]) if e.type == "email.sent"]
    assert {r["address"]: r["status"] for r in sent.data["recipients"]} == {
        OK: "accepted",
        GONE: "suppressed",
    }
    view = api.get(f"/v1/emails/{partly['id']}").json
    assert view["status"] == "sent"
    assert view["delivery"]["suppressed"] == [GONE]
    assert sent_count(redis_client) == 1  # the one sent to nobody is not counted as sent
