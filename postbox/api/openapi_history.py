"""The OpenAPI part of the email history (postbox/api/history.py): searching it and erasing
an address; the answers' schemas are here too."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from marshmallow import Schema, fields

from postbox.api.history import STATUSES
from postbox.api.openapi_parts import answers
from postbox.history.search import MAX_LIMIT

_Str = fields.String
_ERRORS = ("401", "422", "429", "503")


def _nullable() -> fields.String:
    return fields.String(required=True, allow_none=True)


class HistoryRecipientSchema(Schema):
    """One recipient's outcome: pending, accepted, refused, deferred, failed or canceled."""

    address = _Str(required=True)
    status = _Str(required=True)
    reply = _nullable()
    relay = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The relay that accepted it (SMTP_RELAYS' name), or null."},
    )


class HistoryEmailSchema(Schema):
    """One email as the history keeps it (`events` only on `GET /v1/emails/{email_id}`)."""

    id = _Str(required=True)
    status = _Str(required=True)
    message_id = _nullable()
    sender = _Str(required=True, data_key="from")
    to = fields.List(fields.Nested(HistoryRecipientSchema), required=True)
    subject = _nullable()
    tags = fields.List(_Str(), required=True)
    key_id = _nullable()
    attempts = fields.Integer(required=True)
    accepted_at = _Str(required=True)
    send_at = _nullable()
    sent_at = _nullable()
    failed_at = _nullable()
    canceled_at = _nullable()
    last_reply = _nullable()
    source = _Str(required=True)
    events = fields.List(fields.Dict())
    message = _Str(metadata={"description": "The rendered message (EMAIL_HISTORY_BODIES)."})


class HistoryPageSchema(Schema):
    """`GET /v1/emails`: newest first."""

    data = fields.List(fields.Nested(HistoryEmailSchema), required=True)
    next_cursor = _nullable()


class HistoryErasedSchema(Schema):
    """`DELETE /v1/emails?to=`."""

    to = _Str(required=True)
    deleted = fields.Integer(required=True)


def add_components(spec: APISpec) -> None:
    """The answers' schemas."""
    for schema in (HistoryRecipientSchema, HistoryEmailSchema, HistoryPageSchema):
        spec.components.schema(schema.__name__.removesuffix("Schema"), schema=schema)
    spec.components.schema("HistoryErased", schema=HistoryErasedSchema)


def add_paths(spec: APISpec) -> None:
    """`GET` and `DELETE /v1/emails` (beside the `POST` of openapi.py)."""
    spec.path("/v1/emails", operations={"get": _search(), "delete": _erase()})


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"in": "query", "name": name, "schema": schema, "description": description}


def _search() -> dict[str, Any]:
    text = {"type": "string"}
    moment = {"type": "string", "format": "date-time"}
    return {
        "summary": "Search the email history (EMAIL_HISTORY_DAYS), newest first",
        "operationId": "searchEmails",
        "parameters": [
            _query("to", text, "A recipient address."),
            _query("from", text, "The envelope sender."),
            _query("status", {"type": "string", "enum": list(STATUSES)}, "The current status."),
            _query("tag", text, "A tag."),
            _query("since", moment, "Accepted at or after."),
            _query("until", moment, "Accepted before."),
            _query("cursor", text, "`next_cursor` of the previous page."),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "At most."),
        ],
        "responses": answers("200", "A page.", "HistoryPage", _ERRORS, {"503": _NO_HISTORY}),
    }


_NO_HISTORY = "No DATABASE_URL (`history_disabled`), or the database is unreachable."


def _erase() -> dict[str, Any]:
    return {
        "summary": "Erase the history records of every email to an address (privacy requests)",
        "operationId": "eraseEmails",
        "parameters": [
            {
                **_query("to", {"type": "string", "format": "email"}, "The address."),
                "required": True,
            }
        ],
        "responses": answers("200", "Erased.", "HistoryErased", _ERRORS, {"503": _NO_HISTORY}),
    }


def finish(document: dict[str, Any]) -> None:
    """`GET /v1/emails/{email_id}` answers from the history once the queue forgot the email."""
    answer = document["paths"]["/v1/emails/{email_id}"]["get"]["responses"]["200"]
    answer["description"] += " From the history (`source: history`) once the queue forgot it."
    answer["content"]["application/json"]["schema"] = {
        "anyOf": [
            {"$ref": "#/components/schemas/EmailStatus"},
            {"$ref": "#/components/schemas/HistoryEmail"},
        ]
    }
