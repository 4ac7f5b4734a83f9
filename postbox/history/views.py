"""History records as the API and the CLI show them, read by email id."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from postbox.history import schema
from postbox.history.database import unavailable_as_error


@dataclass(frozen=True)
class EmailRecord:
    """One email's history record."""

    row: dict[str, Any]
    recipients: list[dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None  # the rendered message, with EMAIL_HISTORY_BODIES

    @property
    def id(self) -> str:
        """The email id (the job id while it was queued)."""
        return str(self.row["id"])

    @property
    def created_ms(self) -> int:
        """When it was accepted (ms): the search order."""
        return int(self.row["created_ms"])

    def to_json(self, with_events: bool = False) -> dict[str, Any]:
        """The JSON of GET /v1/emails (and, with its events, of GET /v1/emails/{id})."""
        row = self.row
        body: dict[str, Any] = {
            "id": row["id"],
            "status": row["status"],
            "message_id": row["message_id"],
            "from": row["sender"],
            "to": self.recipients,
            "subject": row["subject"],
            "tags": json.loads(row["tags"]),
            "key_id": row["key_id"],
            "attempts": row["attempts"],
            "accepted_at": iso_ms(row["created_ms"]),
            "send_at": row["send_at"],
            "sent_at": iso_ms(row["sent_ms"]),
            "failed_at": iso_ms(row["failed_ms"]),
            "canceled_at": iso_ms(row["canceled_ms"]),
            "last_reply": row["reply"],
            "source": "history",
        }
        if with_events:
            body["events"] = self.events
        if self.message is not None:
            body["message"] = self.message
        return body


def iso_ms(ms: int | None) -> str | None:
    """ISO 8601 UTC with milliseconds, or None."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def find_record(engine: Engine, email_id: str) -> EmailRecord | None:
    """The record of `email_id`, with its events, or None."""
    with unavailable_as_error(), engine.connect() as connection:
        found = load_records(connection, [email_id], with_events=True)
        bodies = schema.bodies
        query = select(bodies.c.message).where(bodies.c.email_id == email_id)
        message = connection.execute(query).scalar_one_or_none()
    if not found:
        return None
    return dataclasses.replace(found[0], message=message)


def load_records(connection: Connection, ids: list[str], with_events: bool) -> list[EmailRecord]:
    """The records of `ids`, in that order (ids without a record are left out)."""
    if not ids:
        return []
    emails, recipients, events = schema.emails, schema.recipients, schema.events
    rows = {
        row["id"]: dict(row)
        for row in connection.execute(select(emails).where(emails.c.id.in_(ids))).mappings()
    }
    per_email: dict[str, list[dict[str, Any]]] = {email_id: [] for email_id in rows}
    query = select(recipients).where(recipients.c.email_id.in_(ids))
    for recipient in connection.execute(query.order_by(recipients.c.address)).mappings():
        per_email[recipient["email_id"]].append(
            {"address": recipient["address"], "status": recipient["status"],
             "reply": recipient["reply"], "relay": recipient["relay"]}
        )  # fmt: skip
    timelines: dict[str, list[dict[str, Any]]] = {email_id: [] for email_id in rows}
    if with_events:
        query = select(events).where(events.c.email_id.in_(ids)).order_by(events.c.at_ms)
        for event in connection.execute(query).mappings():
            timelines[event["email_id"]].append(
                {"id": event["id"], "type": event["type"], "at": iso_ms(event["at_ms"]),
                 "data": json.loads(event["data"])}
            )  # fmt: skip
    return [
        EmailRecord(rows[email_id], per_email[email_id], timelines[email_id])
        for email_id in ids
        if email_id in rows
    ]
