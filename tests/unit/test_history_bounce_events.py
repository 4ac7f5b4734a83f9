"""The history keeps the suppression and bounce events as what they say: a bounce report
after the relay's 250 leaves the email sent and marks its recipient bounced."""

from __future__ import annotations

from postbox.history.records import Batch
from postbox.queue.events import Event


def _event(kind: str, seq: int, **data: object) -> Batch:
    """The rows of one event alone."""
    batch = Batch()
    event = Event(f"1767605412345-{seq}", kind, "em_1", "example.com", {"email_id": "em_1", **data})
    batch.add(event, "{}")
    return batch


def test_a_bounce_leaves_the_email_sent_and_its_recipient_bounced() -> None:
    bounced = _event("email.bounced", 2, to=["gone@example.org"], recipient="gone@example.org")

    assert bounced.emails["em_1"]["status"] == "sent"
    [row] = bounced.recipients.values()
    assert (row["address"], row["status"]) == ("gone@example.org", "bounced")


def test_an_email_sent_to_nobody_is_suppressed() -> None:
    suppressed = _event("email.suppressed", 1, to=["gone@example.org"])

    assert suppressed.emails["em_1"]["status"] == "suppressed"
    assert [r["status"] for r in suppressed.recipients.values()] == ["suppressed"]
