"""Temporary failures are retried with backoff; 5xx recipients are recorded, never retried."""

from __future__ import annotations

import pytest

from tests.support import email_payload, wait_until


def _status(api, email_id: str) -> dict:
    return api.get(f"/v1/emails/{email_id}").json


@pytest.mark.smtp_replies(data=["451 4.3.0 Try again later", "452 4.3.1 Insufficient storage"])
def test_4xx_twice_then_250_is_delivered_once_with_every_attempt_recorded(
    api, smtp_server, worker_factory
):
    created = api.post("/v1/emails", json=email_payload()).json
    worker_factory()
    sent = wait_until(lambda: (s := _status(api, created["id"]))["status"] == "sent" and s)

    assert len(smtp_server.received) == 1
    assert sent["attempts"] == 3
    outcomes = [(a["attempt"], a["outcome"], a.get("smtp_code")) for a in sent["history"]]
    assert outcomes == [(1, "temporary", 451), (2, "temporary", 452), (3, "sent", None)]
    assert sent["history"][0]["error"] == "451 4.3.0 Try again later"
    assert all(a["instance"].startswith("test-") for a in sent["history"])


@pytest.mark.smtp_replies(rcpt={"bad@example.org": "550 5.1.1 No such user"})
def test_mixed_recipients_deliver_to_the_accepted_and_record_the_refused(
    api, smtp_server, worker_factory
):
    payload = email_payload(to=["one@example.org", "bad@example.org"], cc="two@example.org")
    created = api.post("/v1/emails", json=payload).json
    worker_factory()
    sent = wait_until(lambda: (s := _status(api, created["id"]))["status"] == "sent" and s)

    [received] = smtp_server.received
    assert sorted(received.rcpt_tos) == ["one@example.org", "two@example.org"]
    assert sent["attempts"] == 1
    assert sent["delivery"]["accepted"] == ["one@example.org", "two@example.org"]
    assert sent["delivery"]["refused"] == {"bad@example.org": "550 5.1.1 No such user"}


@pytest.mark.smtp_replies(rcpt={"busy@example.org": "450 4.2.1 Mailbox busy"})
def test_a_deferred_recipient_is_retried_alone(api, smtp_server, worker_factory):
    payload = email_payload(to=["one@example.org", "busy@example.org"])
    created = api.post("/v1/emails", json=payload).json
    worker_factory(EMAIL_BACKOFF_MS="1500")

    wait_until(lambda: smtp_server.received)
    smtp_server.handler.rcpt_replies.clear()  # the mailbox frees up
    sent = wait_until(lambda: (s := _status(api, created["id"]))["status"] == "sent" and s)

    assert [r.rcpt_tos for r in smtp_server.received] == [
        ["one@example.org"],
        ["busy@example.org"],
    ]
    assert sent["attempts"] == 2
    assert sent["delivery"]["accepted"] == ["busy@example.org", "one@example.org"]
    first, second = smtp_server.received
    assert first.message["Message-ID"] == second.message["Message-ID"] == created["message_id"]
