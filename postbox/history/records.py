"""From delivery events to history rows: what each event says about its email (pure).

Every event carries the email's sender, recipients and tags, so any one of them makes a
complete enough row, whichever arrives first (a batch taken over from a dead recorder can be
older than one already written). Each row is merged by rules that give the same result in
any order, here within a batch and in SQL against what is stored (writer.py):
- the status, its reply and each recipient's outcome come from the event with the highest
  sequence (`status_seq`);
- `created_ms`, the acceptance time and search order, is the earliest event's time;
- each tag row carries its email's status by the same rule (every email event carries the
  tags; a bounce report's, which may not, leaves the email sent as it was);
- `attempts` is the highest attempt seen;
- facts that only some events carry (subject, key id, sent or failed time) keep the first
  value written; `send_at` is the newest queued or scheduled event's (it may be moved).
Events are rows too, keyed by their stream id: written once, however often they are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from postbox.queue import events
from postbox.queue.events import Event

CANCELED = events.CANCELED

# The email status each event leaves behind.
STATUS_OF = {
    events.QUEUED: "queued",
    events.SCHEDULED: "scheduled",
    events.SENT: "sent",
    events.DEFERRED: "retrying",
    events.FAILED: "failed",
    events.RETRIED: "queued",
    CANCELED: "canceled",
    events.SUPPRESSED: "suppressed",
    # A report after the relay's 250: the email was sent; its recipient carries the report.
    events.BOUNCED: "sent",
    events.COMPLAINED: "sent",
}
# Each recipient's outcome after an event that does not name them one by one.
RECIPIENT_STATUS_OF = {
    events.QUEUED: "pending",
    events.SCHEDULED: "pending",
    events.DEFERRED: "deferred",
    events.FAILED: "failed",
    events.RETRIED: "pending",
    CANCELED: "canceled",
    events.SUPPRESSED: "suppressed",
    events.BOUNCED: "bounced",
    events.COMPLAINED: "complained",
}
FIRST_WRITTEN = (
    "message_id",
    "subject",
    "key_id",
    "sent_ms",
    "failed_ms",
    "canceled_ms",
)

# The events that say when an email is to go (`send_at`): the newest wins (a rescheduled
# email); the other events do not carry it.
PLANNED = (events.QUEUED, events.SCHEDULED)
Row = dict[str, Any]


def event_ms(event: Event) -> int:
    """When the event was written (ms), from its stream id."""
    return int(event.id.partition("-")[0])


def email_row(event: Event, ms: int, seq: int) -> Row:
    """The email's row as this event alone tells it (`ms`, `seq`: its time and sequence)."""
    data, kind = event.data, event.type
    return {
        "id": event.email_id,
        "message_id": data.get("message_id"),
        "sender": data.get("from", ""),
        "domain": event.domain,
        "subject": data.get("subject"),
        "tags": json.dumps(data.get("tags") or []),
        "key_id": data.get("key_id"),
        "status": STATUS_OF.get(kind, "queued"),
        "status_seq": seq,
        "attempts": int(data.get("attempt") or 0),
        "created_ms": ms,
        "send_at": data.get("send_at"),
        "send_at_seq": seq if kind in PLANNED else 0,
        "sent_ms": ms if kind == events.SENT else None,
        "failed_ms": ms if kind == events.FAILED else None,
        "canceled_ms": ms if kind == CANCELED else None,
        "reply": data.get("reply"),
    }


def recipient_rows(event: Event, ms: int, seq: int) -> list[Row]:
    """Each recipient's outcome as this event tells it, with the relay that accepted it
    (email.sent names it per recipient when the email was split over relays)."""
    answers: dict[str, tuple[str, str | None, str | None]] = {}
    if event.type == events.SENT:
        for item in event.data.get("recipients") or []:
            accepted = item["status"] == "accepted"
            relay = (item.get("relay") or event.data.get("relay")) if accepted else None
            answers[item["address"]] = (item["status"], item.get("reply"), relay)
    else:
        outcome = RECIPIENT_STATUS_OF.get(event.type, "pending")
        for address in event.data.get("to") or []:
            answers[address] = (outcome, event.data.get("reply"), None)
    email_id = event.email_id
    return [
        {
            "email_id": email_id,
            "address": address,
            "created_ms": ms,
            "status": status,
            "status_seq": seq,
            "reply": reply,
            "relay": relay,
        }
        for address, (status, reply, relay) in answers.items()
    ]


def event_row(event: Event, raw_data: str, ms: int) -> Row:
    """The event itself, for the email's timeline."""
    return {
        "id": event.event_id,
        "email_id": event.email_id,
        "type": event.type,
        "at_ms": ms,
        "data": raw_data,
    }


def merge_email(old: Row, new: Row) -> Row:
    """Two rows of one email merged (writer.py does the same in SQL)."""
    merged = dict(old)
    if new["status_seq"] > old["status_seq"]:
        for name in ("status", "status_seq", "reply"):
            merged[name] = new[name]
    if new["send_at_seq"] > old["send_at_seq"]:
        merged["send_at"], merged["send_at_seq"] = new["send_at"], new["send_at_seq"]
    merged["created_ms"] = min(old["created_ms"], new["created_ms"])
    merged["attempts"] = max(old["attempts"], new["attempts"])
    for name in FIRST_WRITTEN:
        if merged[name] is None:
            merged[name] = new[name]
    return merged


def merge_recipient(old: Row, new: Row) -> Row:
    """Two rows of one recipient merged. The relay is the one an event named: a later
    event (a bounce report) names none, and a recipient accepted once is never sent again."""
    merged = dict(new if new["status_seq"] > old["status_seq"] else old)
    merged["created_ms"] = min(old["created_ms"], new["created_ms"])
    merged["relay"] = old["relay"] if old["relay"] is not None else new["relay"]
    return merged


@dataclass
class Batch:
    """The rows of a batch of events, one per email, recipient, tag and event."""

    emails: dict[str, Row] = field(default_factory=dict)
    recipients: dict[tuple[str, str], Row] = field(default_factory=dict)
    tags: dict[tuple[str, str], Row] = field(default_factory=dict)
    events: dict[str, Row] = field(default_factory=dict)
    bodies: dict[str, Row] = field(default_factory=dict)

    def add_body(self, email_id: str, message: str) -> None:
        """Keep an email's rendered message (EMAIL_HISTORY_BODIES), if the batch has it."""
        row = self.emails.get(email_id)
        if row is not None:
            self.bodies[email_id] = {
                "email_id": email_id,
                "created_ms": row["created_ms"],
                "message": message,
            }

    def add(self, event: Event, raw_data: str) -> None:
        """Fold one event into the batch."""
        email_id, ms, seq = event.email_id, event_ms(event), event.sequence
        row = email_row(event, ms, seq)
        old = self.emails.get(email_id)
        self.emails[email_id] = merge_email(old, row) if old else row
        for recipient in recipient_rows(event, ms, seq):
            key = (email_id, recipient["address"])
            previous = self.recipients.get(key)
            self.recipients[key] = merge_recipient(previous, recipient) if previous else recipient
        status = self.emails[email_id]["status"], self.emails[email_id]["status_seq"]
        for tag in event.data.get("tags") or []:
            key = (email_id, tag)
            earlier = self.tags.get(key)
            self.tags[key] = {
                "email_id": email_id,
                "tag": tag,
                "created_ms": min(ms, earlier["created_ms"]) if earlier else ms,
                "status": status[0],
                "status_seq": status[1],
            }
        self.events[event.event_id] = event_row(event, raw_data, ms)

    def __len__(self) -> int:
        return len(self.events)
