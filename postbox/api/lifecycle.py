"""`POST /v1/emails/{id}/cancel` and `PATCH /v1/emails/{id}` `{send_at}`: call back, or
move, an email no worker has taken yet.

Each is one Lua call (postbox/queue/cancel.py, reschedule.py), atomic with respect to a
worker taking the email: 200, or 409 naming the status it has (sending, sent, failed).
Canceling a canceled email answers 200 again, so a client may retry.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint
from marshmallow import Schema, ValidationError, fields, validates

from postbox.api.body import read_json_object
from postbox.api.extension import state
from postbox.api.schemas import MAX_SCHEDULE_DAYS
from postbox.errors import EmailStateConflict, NotFound
from postbox.queue.cancel import EmailCanceler
from postbox.queue.contract import EmailStatus
from postbox.queue.job_ids import is_job_id
from postbox.queue.reschedule import EmailRescheduler, RescheduleOutcome

bp = Blueprint("lifecycle", __name__)


class RescheduleSchema(Schema):
    """The body of `PATCH /v1/emails/{id}`: the new time, or null for now."""

    send_at = fields.AwareDateTime(format="iso", required=True, allow_none=True)

    @validates("send_at")
    def _within_a_year(self, value: datetime | None, **kwargs: object) -> None:
        if value and value - datetime.now(UTC) > timedelta(days=MAX_SCHEDULE_DAYS):
            raise ValidationError(f"Must be within {MAX_SCHEDULE_DAYS} days.")


_reschedule = RescheduleSchema()


def _unknown(email_id: str) -> NotFound:
    return NotFound(f"No email with id {email_id!r}.", {"id": ["Unknown email id."]})


def _too_late(email_id: str, action: str) -> EmailStateConflict | NotFound:
    """409 with the email's status now (a worker took it, or it is done), or 404."""
    view = state().gateway.lookup(email_id)
    if view is None:
        return _unknown(email_id)
    return EmailStateConflict(
        f"The email is {view.status}: it can no longer be {action}.",
        {"status": [str(view.status)]},
    )


@bp.patch("/emails/<email_id>")
def reschedule_email(email_id: str) -> dict[str, Any]:
    """Move a scheduled (or queued) email to `send_at`, or make it due now (null)."""
    send_at = _reschedule.load(read_json_object())["send_at"]
    if not is_job_id(email_id):
        raise _unknown(email_id)
    settings = state().settings
    window = settings.dedup_window_seconds

    def move(client: Any) -> Awaitable[RescheduleOutcome]:
        return EmailRescheduler(client, settings.redis.queue_name, window).move(email_id, send_at)

    outcome = state().gateway.with_client(move)
    if outcome.result != "moved":
        raise _too_late(email_id, "moved")
    status = EmailStatus.SCHEDULED if outcome.send_at else EmailStatus.QUEUED
    return {"id": email_id, "status": str(status), "send_at": outcome.send_at}


@bp.post("/emails/<email_id>/cancel")
def cancel_email(email_id: str) -> dict[str, Any]:
    """Cancel a queued, scheduled or retrying email."""
    if not is_job_id(email_id):
        raise _unknown(email_id)
    name = state().settings.redis.queue_name
    outcome = state().gateway.with_client(
        lambda client: EmailCanceler(client, name).cancel(email_id)
    )
    canceled = {"id": email_id, "status": str(EmailStatus.CANCELED)}
    if outcome.result == "canceled":
        return canceled
    refusal = _too_late(email_id, "canceled")
    if isinstance(refusal, EmailStateConflict) and refusal.fields["status"] == ["canceled"]:
        return canceled  # canceled before: a retried cancel
    raise refusal
