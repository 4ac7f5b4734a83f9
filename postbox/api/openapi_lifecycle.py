"""The OpenAPI part of an email's lifecycle (postbox/api/lifecycle.py): canceling one no
worker has taken, and moving a scheduled one."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from marshmallow import Schema, fields

from postbox.api.lifecycle import RescheduleSchema
from postbox.api.openapi_parts import answers, json_content

_ERRORS = ("400", "401", "404", "409", "429", "503")
_WRITE_ERRORS = (*_ERRORS, "413", "415", "422")
_EMAIL_ID = {
    "in": "path",
    "name": "email_id",
    "required": True,
    "schema": {"type": "string"},
    "description": "The email's id (`em_` and 64 hex digits).",
}
_TOO_LATE = {
    "409": "A worker has taken the email, or it is done (`email_state_conflict`; `fields.status`"
    " names its status now)."
}


class LifecycleAnswerSchema(Schema):
    """The email after a cancel or a move."""

    id = fields.String(required=True)
    status = fields.String(required=True)
    send_at = fields.String(allow_none=True, metadata={"description": "Moves only; null: now."})


def add_components(spec: APISpec) -> None:
    """The request and answer schemas."""
    spec.components.schema("Reschedule", schema=RescheduleSchema)
    spec.components.schema("LifecycleAnswer", schema=LifecycleAnswerSchema)


def add_paths(spec: APISpec) -> None:
    """`PATCH /v1/emails/{email_id}` and `POST /v1/emails/{email_id}/cancel`."""
    spec.path("/v1/emails/{email_id}", operations={"patch": _reschedule()})
    spec.path("/v1/emails/{email_id}/cancel", operations={"post": _cancel()})


def _reschedule() -> dict[str, Any]:
    return {
        "summary": "Move a scheduled or queued email to `send_at`, or make it due now (null)",
        "operationId": "rescheduleEmail",
        "parameters": [_EMAIL_ID],
        "requestBody": {"required": True, "content": json_content("Reschedule")},
        "responses": answers("200", "Moved.", "LifecycleAnswer", _WRITE_ERRORS, _TOO_LATE),
    }


def _cancel() -> dict[str, Any]:
    return {
        "summary": "Cancel a queued, scheduled or retrying email: it is never delivered",
        "operationId": "cancelEmail",
        "parameters": [_EMAIL_ID],
        "responses": answers(
            "200", "Canceled (again, for a retried cancel).", "LifecycleAnswer", _ERRORS, _TOO_LATE
        ),
    }
