"""`POST /v1/emails/{id}/cancel`: call back an email no worker has taken yet.

The cancel is one Lua call (postbox/queue/cancel.py), atomic with respect to a worker
taking the email: 200 `canceled`, or 409 naming the status it has (sending, sent, failed).
Canceling a canceled email answers 200 again, so a client may retry.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from postbox.api.extension import state
from postbox.errors import EmailStateConflict, NotFound
from postbox.queue.cancel import EmailCanceler
from postbox.queue.contract import EmailStatus
from postbox.queue.job_ids import is_job_id

bp = Blueprint("lifecycle", __name__)


@bp.post("/emails/<email_id>/cancel")
def cancel_email(email_id: str) -> dict[str, Any]:
    """Cancel a queued, scheduled or retrying email."""
    unknown = NotFound(f"No email with id {email_id!r}.", {"id": ["Unknown email id."]})
    if not is_job_id(email_id):
        raise unknown
    gateway = state().gateway
    name = state().settings.redis.queue_name
    outcome = gateway.with_client(lambda client: EmailCanceler(client, name).cancel(email_id))
    if outcome.result == "canceled":
        return {"id": email_id, "status": str(EmailStatus.CANCELED)}
    view = gateway.lookup(email_id)
    if view is None:
        raise unknown
    if view.status is EmailStatus.CANCELED:
        return {"id": email_id, "status": str(EmailStatus.CANCELED)}
    raise EmailStateConflict(
        f"The email is {view.status}: it can no longer be canceled.",
        {"status": [str(view.status)]},
    )
