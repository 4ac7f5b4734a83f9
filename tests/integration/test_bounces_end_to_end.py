"""Bounces end to end, every part a real process: the API, a worker sending with VERP to a
relay of the test's own that accepts and then sends a DSN to `postbox bounces`, a webhook
dispatcher and receiver. Then what a forger, junk and oversized mail can do: nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postbox.api.webhook_responses import EVENT_PAYLOADS, payload_schema
from postbox.bounces.verp import VerpSigner
from postbox.config import load_settings
from postbox.queue.keys import PostboxKeys
from tests.bounce_support import DOMAIN, BounceListener, BouncingRelay, dsn_for, send_to
from tests.support import TEST_ENCRYPTION_KEY, email_payload, wait_until
from tests.webhook_support import create_endpoint

KEYS = PostboxKeys("email")
GONE = "nobody@example.org"  # the Final-Recipient of the corpus's Postfix DSN
OK = "ok@example.org"
SIGNER = VerpSigner(TEST_ENCRYPTION_KEY, DOMAIN)


@pytest.fixture
def bounce_env(service_env: dict[str, str]) -> dict[str, str]:
    return {**service_env, "BOUNCE_DOMAIN": DOMAIN, "BOUNCE_MAX_MESSAGE_BYTES": "65536"}


@pytest.fixture
def listener(bounce_env: dict[str, str], tmp_path: Path) -> Iterator[BounceListener]:
    made = BounceListener(bounce_env, tmp_path / "bounces.log")
    yield made
    assert made.stop() == 0, made.log()
    assert "Traceback" not in made.log()


@pytest.fixture
def relay(listener: BounceListener) -> Iterator[BouncingRelay]:
    made = BouncingRelay(listener.port, bounce={GONE})
    made.start()
    yield made
    made.stop()


def _bounced_events(route: Any, email_id: str) -> list[dict[str, Any]]:
    return [
        r.payload
        for r in route.received
        if r.verified
        and r.payload["type"] == "email.bounced"
        and r.payload["data"]["email_id"] == email_id
    ]


def test_a_dsn_after_the_relays_250_bounces_suppresses_and_stops_the_next_email(
    api_factory,
    bounce_env,
    redis_url,
    relay,
    listener,
    worker_factory,
    dispatcher_factory,
    receiver,
):
    api = api_factory(load_settings(bounce_env))
    endpoint, secret = create_endpoint(redis_url, receiver.url("all"))
    route = receiver.route("all", [secret])
    dispatcher_factory()
    worker_factory(**{**bounce_env, "SMTP_PORT": str(relay.port)})

    first = api.post("/v1/emails", json=email_payload(to=[GONE, OK])).json
    wait_until(lambda: _bounced_events(route, first["id"]), timeout=40)

    # One transaction per recipient, each from its own VERP address.
    assert sorted(rcpts[0] for _, rcpts in relay.received) == [GONE, OK]
    senders = {rcpts[0]: sender for sender, rcpts in relay.received}
    assert senders[GONE] == SIGNER.address(first["id"], GONE)
    assert senders[OK] == SIGNER.address(first["id"], OK) != senders[GONE]
    # The listener writes the bounce (and its event) before it answers the DSN's DATA, so
    # the event can reach the webhook before the relay has read that 250.
    wait_until(lambda: relay.dsn_replies, timeout=10)
    assert [code for code, _ in relay.dsn_replies] == [250]
    [event] = _bounced_events(route, first["id"])
    payload_schema("email.bounced", EVENT_PAYLOADS["email.bounced"][1])().load(event)
    assert event["data"]["recipient"] == GONE
    assert (event["data"]["bounce_type"], event["data"]["status"]) == ("hard", "5.1.1")
    view = api.get(f"/v1/emails/{first['id']}").json
    assert view["delivery"]["bounced"][GONE]["bounce_type"] == "hard"
    assert "User unknown" in view["delivery"]["bounced"][GONE]["diagnostic"]
    [entry] = api.get("/v1/suppressions").json["data"]
    assert (entry["address"], entry["reason"], entry["email_id"]) == (
        GONE,
        "hard_bounce",
        first["id"],
    )

    second = api.post("/v1/emails", json=email_payload(to=[GONE], subject="again")).json
    assert second["status"] == "suppressed"
    assert len(relay.received) == 2  # no transaction for the second email
    assert endpoint.id


def _sent_email(api: Any, relay: BouncingRelay, to: str) -> tuple[str, str]:
    email = api.post("/v1/emails", json=email_payload(to=[to])).json
    wait_until(lambda: any(rcpts == [to] for _, rcpts in relay.received), timeout=30)
    return email["id"], next(sender for sender, rcpts in relay.received if rcpts == [to])


def test_forged_junk_and_oversized_reports_change_nothing(
    api_factory, bounce_env, relay, listener, worker_factory, redis_client
):
    api = api_factory(load_settings(bounce_env))
    worker_factory(**{**bounce_env, "SMTP_PORT": str(relay.port)})
    email_id, verp = _sent_email(api, relay, OK)
    token = SIGNER.token_in(verp)
    assert token is not None
    forged = [
        # A well-formed token no one made here (right format, wrong HMAC).
        f"bounces+{'a' * 24}@{DOMAIN}",
        # A real token's letters changed: its HMAC no longer matches anything.
        f"bounces+{token[:-1]}{'b' if token[-1] != 'b' else 'c'}@{DOMAIN}",
        # Another deployment's token for the same email and recipient.
        VerpSigner("11" * 32, DOMAIN).address(email_id, OK),
    ]
    for address in forged:
        assert send_to(listener.port, "", address, dsn_for(address))[0] == 250
    junk = [b"", b"\x00\xff garbage\r\n", dsn_for(verp)[:700], b"Subject: hi\r\n\r\nnot a DSN"]
    for raw in junk:
        assert send_to(listener.port, "x@mx.test", verp, raw)[0] == 250
    too_big = dsn_for(verp) + (b"x" * 78 + b"\r\n") * 1000
    assert send_to(listener.port, "", verp, too_big)[0] == 552
    assert send_to(listener.port, "", "postmaster@example.com", dsn_for(verp))[0] == 550

    assert api.get("/v1/suppressions").json["data"] == []
    assert not redis_client.exists(KEYS.bounces(email_id))
    assert "bounce of" not in listener.log()


def test_a_report_can_only_suppress_the_recipient_its_token_names(
    api_factory, bounce_env, relay, listener, worker_factory
):
    # A recipient who got an email knows its VERP sender; a DSN they forge with it, naming
    # someone else, can at most suppress their own address.
    api = api_factory(load_settings(bounce_env))
    worker_factory(**{**bounce_env, "SMTP_PORT": str(relay.port)})
    email_id, verp = _sent_email(api, relay, OK)
    victim = dsn_for(verp).replace(GONE.encode(), b"victim@example.net")

    assert send_to(listener.port, "", verp, victim)[0] == 250
    wait_until(lambda: api.get("/v1/suppressions").json["data"])

    [entry] = api.get("/v1/suppressions").json["data"]
    assert (entry["address"], entry["email_id"]) == (OK, email_id)


def test_a_complaint_suppresses_and_a_soft_bounce_only_records(
    api_factory, bounce_env, relay, listener, worker_factory
):
    api = api_factory(load_settings(bounce_env))
    worker_factory(**{**bounce_env, "SMTP_PORT": str(relay.port)})
    angry_id, angry_verp = _sent_email(api, relay, "angry@mailbox.example")
    slow_id, slow_verp = _sent_email(api, relay, "slow@example.net")
    # An ARF report goes to a feedback address; the original's Return-Path has the token.
    arf = dsn_for(angry_verp, "arf_complaint.eml")
    delayed = dsn_for(slow_verp, "postfix_delayed.eml")

    assert send_to(listener.port, "", f"fbl@{DOMAIN}", arf)[0] == 250
    assert send_to(listener.port, "", slow_verp, delayed)[0] == 250
    wait_until(lambda: api.get("/v1/suppressions").json["data"])

    [entry] = api.get("/v1/suppressions").json["data"]
    assert (entry["address"], entry["reason"]) == ("angry@mailbox.example", "complaint")
    complained = api.get(f"/v1/emails/{angry_id}").json["delivery"]["bounced"]
    assert complained["angry@mailbox.example"]["event"] == "email.complained"
    slow = api.get(f"/v1/emails/{slow_id}").json["delivery"]["bounced"]["slow@example.net"]
    assert (slow["bounce_type"], slow["status"]) == ("soft", "4.4.1")
