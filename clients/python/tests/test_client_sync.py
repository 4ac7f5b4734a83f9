"""`Postbox` against a real `postbox serve`: send, read, dead letters, webhooks, errors, and
a lost answer retried; one server for all of them (each starts in seconds on a busy
machine), each part in its own function."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lossy_proxy import LossyProxy
from postbox_client import (
    AuthenticationError,
    IdempotencyConflict,
    NotFound,
    Postbox,
    RetryPolicy,
    TransportError,
    ValidationError,
)

from postbox.dev.ports import free_port
from tests.conftest import SmtpServer
from tests.integration.serving import Process
from tests.support import API_KEY, wait_until

SENDER = "Shop <shop@example.com>"
BAD = "nobody@example.org"


def status_of(client: Postbox, email_id: str, wanted: str) -> Any:
    return wait_until(lambda: client.get(email_id)["status"] == wanted, timeout=30)


@pytest.mark.smtp_replies(rcpt={BAD: "550 5.1.1 no such user"})
def test_the_client_against_a_real_postbox(
    postbox_factory: Callable[..., Process], smtp_server: SmtpServer, tmp_path: Path
) -> None:
    postbox = postbox_factory(DATABASE_URL=f"sqlite:///{tmp_path / 'history.db'}")
    send_read_and_dead_letters_round_trip(postbox, smtp_server)
    cancel_reschedule_and_search(postbox)
    errors_carry_the_code_and_the_fields(postbox)
    webhooks_are_managed_and_the_secret_shown_once(postbox)
    a_lost_answer_is_retried_with_the_same_key_and_sent_once(postbox, smtp_server)


def send_read_and_dead_letters_round_trip(postbox: Process, smtp_server: SmtpServer) -> None:
    with Postbox(postbox.base_url, API_KEY) as client:
        accepted = client.send(
            from_=SENDER,
            to="ann@example.org",
            subject="Your order",
            text="Thanks!",
            html="<p>Thanks!</p>",
            attachments=[{"filename": "receipt.txt", "content": b"Total: 24.00 EUR\n"}],
            tags=["order"],
        )
        assert accepted["status"] == "queued" and accepted["duplicate"] is False
        assert accepted["id"].startswith("em_")
        status_of(client, accepted["id"], "sent")
        [message] = [m.message for m in smtp_server.received]
        assert message["Subject"] == "Your order"
        [receipt] = message.iter_attachments()
        assert receipt.get_content() == "Total: 24.00 EUR\n"
        later = client.send(
            from_=SENDER,
            to="ann@example.org",
            subject="Later",
            text="t",
            send_at=datetime.now(UTC) + timedelta(hours=1),
        )
        assert later["status"] == "scheduled"
        assert client.get(accepted["id"])["attempts"] == 1

        again = client.send(
            from_=SENDER, to="bob@example.org", subject="S", text="t", idempotency_key="order-1"
        )
        same = client.send(
            from_=SENDER, to="bob@example.org", subject="S", text="t", idempotency_key="order-1"
        )
        assert same["id"] == again["id"] and same["duplicate"] is True
        with pytest.raises(IdempotencyConflict) as conflict:
            client.send(
                from_=SENDER,
                to="bob@example.org",
                subject="Other",
                text="t",
                idempotency_key="order-1",
            )
        assert conflict.value.code == "idempotency_conflict"
        assert "Idempotency-Key" in conflict.value.fields

        batch = client.send_batch(
            [
                {"from": SENDER, "to": f"r{i}@example.org", "subject": "B", "text": "b"}
                for i in range(3)
            ]
        )
        assert [item["index"] for item in batch] == [0, 1, 2]
        assert len({item["id"] for item in batch}) == 3

        failed = client.send(from_=SENDER, to=BAD, subject="Nope", text="x")
        status_of(client, failed["id"], "failed")
        page = client.dead_letters()
        [dead] = page["data"]
        assert dead["id"] == failed["id"] and dead["error_class"] == "rejected"
        assert "550" in dead["reason"]
        assert client.retry_dead_letter(failed["id"])["id"] == failed["id"]
        status_of(client, failed["id"], "failed")
        client.discard_dead_letter(failed["id"])
        assert client.dead_letters()["data"] == []
        assert client.queue_stats()["queue"] == "email"


def cancel_reschedule_and_search(postbox: Process) -> None:
    with Postbox(postbox.base_url, API_KEY) as client:
        later = datetime.now(UTC) + timedelta(hours=1)
        email = client.send(
            from_=SENDER, to="carol@example.org", subject="Later", text="t", send_at=later
        )
        moved = client.reschedule(email["id"], later + timedelta(hours=1))
        assert moved["status"] == "scheduled"
        assert client.cancel(email["id"])["status"] == "canceled"
        assert client.cancel(email["id"])["status"] == "canceled"  # safe to repeat
        found = wait_until(lambda: client.search(to="carol@example.org")["data"], timeout=30)
        assert [item["id"] for item in found] == [email["id"]]
        sent = client.search(status="sent", limit=1)
        assert len(sent["data"]) == 1 and sent["data"][0]["status"] == "sent"
        assert client.erase_history("carol@example.org") == 1


def errors_carry_the_code_and_the_fields(postbox: Process) -> None:
    with Postbox(postbox.base_url, API_KEY) as client:
        with pytest.raises(ValidationError) as invalid:
            client.send(from_=SENDER, to="not an address", subject="S", text="t")
        assert invalid.value.status_code == 422
        assert invalid.value.code == "validation_error"
        assert "to" in invalid.value.fields
        with pytest.raises(NotFound) as missing:
            client.get("em_" + "0" * 64)
        assert missing.value.code == "not_found"
    with Postbox(postbox.base_url, "wrong-key-0123456789") as stranger:
        with pytest.raises(AuthenticationError) as refused:
            stranger.send(from_=SENDER, to="ann@example.org", subject="S", text="t")
        assert refused.value.code == "unauthorized"


def webhooks_are_managed_and_the_secret_shown_once(postbox: Process) -> None:
    with Postbox(postbox.base_url, API_KEY) as client:
        made = client.create_webhook("http://127.0.0.1:9/hooks", ["email.sent"], description="CRM")
        assert made["secret"].startswith("whsec_")
        assert [w["id"] for w in client.list_webhooks()] == [made["id"]]
        assert "secret" not in client.get_webhook(made["id"])
        assert client.update_webhook(made["id"], enabled=False)["enabled"] is False
        assert client.rotate_webhook_secret(made["id"])["secret"] != made["secret"]
        assert client.webhook_deliveries(made["id"])["data"] == []
        client.delete_webhook(made["id"])
        with pytest.raises(NotFound):
            client.get_webhook(made["id"])


def a_lost_answer_is_retried_with_the_same_key_and_sent_once(
    postbox: Process, smtp_server: SmtpServer
) -> None:
    proxy = LossyProxy(postbox.port or 0, lose=1)
    try:
        with Postbox(proxy.base_url, API_KEY, retries=RetryPolicy(backoff=0.05)) as client:
            accepted = client.send(from_=SENDER, to="ann@example.org", subject="Lost", text="t")
            # The first answer was lost after Postbox queued the email: the retry is its
            # duplicate, with the same key, and the email goes out once.
            assert accepted["duplicate"] is True
            status_of(client, accepted["id"], "sent")
            # A DELETE whose answer is lost: its retry finds nothing, which is its success.
            made = client.create_webhook("http://127.0.0.1:9/hooks")
            proxy.lose_next(1)
            client.delete_webhook(made["id"])
            assert client.list_webhooks() == []
    finally:
        proxy.close()
    keys = [
        line
        for r in proxy.requests
        for line in r.split(b"\r\n")
        if line.lower().startswith(b"idempotency-key:")
    ]
    assert len(keys) >= 2 and len(set(keys[:2])) == 1, keys
    assert [m.message["Subject"] for m in smtp_server.received].count("Lost") == 1


def test_an_unreachable_server_is_a_transport_error_after_the_retries() -> None:
    with (
        Postbox(
            f"http://127.0.0.1:{free_port()}", API_KEY, retries=RetryPolicy(backoff=0.01)
        ) as client,
        pytest.raises(TransportError),
    ):
        client.get("em_" + "0" * 64)
