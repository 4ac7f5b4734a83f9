"""Internationalised addresses (RFC 6531): kept as written, sent with SMTPUTF8 when the relay
offers it, and a permanent, clearly named failure when it does not."""

from __future__ import annotations

from email import message_from_string, policy
from typing import Any

from tests.support import email_payload, wait_until
from tests.tls_support import running_relay

INTERNATIONAL = email_payload(
    **{"from": "Zoë <zoë@example.com>"},
    to=["Jörg <jörg@Bücher.de>", "plain@example.org"],
    subject="Grüße",
)


def _finished(api, email_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = api.get(f"/v1/emails/{email_id}").json
        return status if status["status"] in {"sent", "failed"} else None

    result: dict[str, Any] = wait_until(done)
    return result


def test_international_address_is_delivered_with_smtputf8_as_written(api, worker_factory):
    created = api.post("/v1/emails", json=INTERNATIONAL).json
    with running_relay(smtputf8=True) as relay:
        worker_factory(**relay.env())
        status = _finished(api, created["id"])

        assert status["status"] == "sent"
        [received] = relay.received
    assert received.mail_from == "zoë@example.com"
    assert received.rcpt_tos == ["jörg@xn--bcher-kva.de", "plain@example.org"]
    headers = received.data.split(b"\r\n\r\n")[0]
    assert "From: Zoë <zoë@example.com>".encode() in headers  # UTF-8, not an encoded word
    # UTF-8 headers (RFC 6532): parse the text, not bytes (which the parser takes as ASCII).
    message = message_from_string(received.data.decode("utf-8"), policy=policy.default)
    assert [a.addr_spec for a in message["To"].addresses] == [
        "jörg@xn--bcher-kva.de",
        "plain@example.org",
    ]
    assert message["Subject"] == "Grüße"


def test_relay_without_smtputf8_fails_the_email_for_good_naming_smtputf8(api, worker_factory):
    created = api.post("/v1/emails", json=INTERNATIONAL).json
    with running_relay(smtputf8=False) as relay:
        worker_factory(**relay.env())
        status = _finished(api, created["id"])

        assert relay.received == []
    assert status["status"] == "failed"
    assert status["error_class"] == "rejected"
    assert "SMTPUTF8" in status["last_error"]
    assert status["attempts"] == 1


def test_ascii_email_needs_no_smtputf8(api, worker_factory, smtp_server):
    created = api.post("/v1/emails", json=email_payload(to="joerg@bücher.de")).json
    worker_factory()

    assert _finished(api, created["id"])["status"] == "sent"
    [received] = smtp_server.received
    assert received.rcpt_tos == ["joerg@xn--bcher-kva.de"]
    assert received.data.isascii()
