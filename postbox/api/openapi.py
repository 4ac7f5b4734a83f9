"""`GET /openapi.json`: an OpenAPI 3 description of the API, built from the schemas.

It is generated with apispec from the same marshmallow schemas that validate requests (and
from those of postbox/api/responses.py for the answers), so it cannot drift from them, and
the fuzz tests (schemathesis) run against it. No key is needed
to read it: it describes the API, it holds nothing about this instance.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint
from marshmallow import fields

from postbox import __version__
from postbox.api import openapi_deliveries, openapi_history, openapi_webhooks, responses
from postbox.api.dead_letters import ListQuerySchema, RetryFilterSchema
from postbox.api.openapi_examples import add_examples
from postbox.api.openapi_parts import answers as _answers
from postbox.api.openapi_parts import json_content as _json
from postbox.api.schemas import (
    MAX_HEADERS,
    Base64Field,
    BatchSchema,
    BoundedList,
    EmailSchema,
    HeaderDict,
    HeaderText,
    MailboxField,
    MailboxListField,
)
from postbox.message.attachments import CONTENT_TYPE_PATTERN
from postbox.message.header_text import SINGLE_LINE_PATTERN

bp = Blueprint("openapi", __name__)

_ADDRESS = {
    "type": "string",
    "format": "email",
    "description": "user@example.com or Name <user@example.com>; IDN domains and "
    "non-ASCII local parts (sent with SMTPUTF8) are accepted.",
}
_SINGLE_LINE_FIELDS = frozenset({"filename", "idempotency_key"})
# An email needs a body: a non-empty text or html.
_BODY_REQUIRED = [
    {"required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}},
    {"required": ["html"], "properties": {"html": {"type": "string", "minLength": 1}}},
]
_SEND_ERRORS = ("400", "401", "403", "409", "413", "415", "422", "429", "503")
_READ_ERRORS = ("400", "401", "429", "503")
_EMAIL_ID = {
    "in": "path",
    "name": "email_id",
    "required": True,
    "schema": {"type": "string"},
    "description": "The email's id (`em_` and 64 hex digits).",
}
_RESPONSE_SCHEMAS = (
    "Accepted",
    "EmailStatus",
    "DeadLetterPage",
    "Requeued",
    "RequeuedMany",
    "QueueStats",
    "Health",
)


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    """The OpenAPI document."""
    return openapi_document()


@cache
def openapi_document() -> dict[str, Any]:
    """The document, built once per process."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="Postbox",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[plugin],
        info={"description": "Send email through a queue with retries and no duplicates."},
    )
    _map_fields(plugin)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Email", schema=EmailSchema)
    spec.components.schema("Batch", schema=BatchSchema)
    spec.components.schema("Error", _ERROR)
    for name in _RESPONSE_SCHEMAS:
        spec.components.schema(name, schema=getattr(responses, f"{name}Schema"))
    openapi_webhooks.add_components(spec)
    openapi_deliveries.add_components(spec)
    openapi_history.add_components(spec)
    _add_paths(spec)
    openapi_history.add_paths(spec)
    openapi_webhooks.add_paths(spec)
    openapi_deliveries.add_paths(spec)
    document: dict[str, Any] = spec.to_dict()
    openapi_webhooks.finish(document)
    openapi_history.finish(document)
    for name in ("Email", "BatchItem"):
        document["components"]["schemas"][name]["anyOf"] = _BODY_REQUIRED
    document["security"] = [{"bearer": []}]
    add_examples(document)
    return document


def _map_fields(plugin: MarshmallowPlugin) -> None:
    converter = plugin.converter
    assert converter is not None  # set when the plugin is registered with a spec
    # apispec is untyped.
    converter.map_to_openapi_type(MailboxField, fields.String)  # type: ignore[no-untyped-call]
    converter.map_to_openapi_type(MailboxListField, None, None)  # type: ignore[no-untyped-call]
    converter.add_attribute_function(_custom_field_properties)  # type: ignore[no-untyped-call]


def _custom_field_properties(self: Any, field: fields.Field[Any], **kwargs: Any) -> dict[str, Any]:
    """Limits the custom fields enforce themselves, which apispec cannot see."""
    return _address_properties(field) or _text_properties(field) or _size_properties(field)


def _address_properties(field: fields.Field[Any]) -> dict[str, Any]:
    if isinstance(field, MailboxField):
        return dict(_ADDRESS)
    if isinstance(field, MailboxListField):
        items = {"type": "array", "items": _ADDRESS, "minItems": 1 if field.required else 0}
        return {"oneOf": [_ADDRESS, items]}
    return {}


def _text_properties(field: fields.Field[Any]) -> dict[str, Any]:
    if isinstance(field, Base64Field):
        return {"format": "byte"}
    if isinstance(field, HeaderText) or field.name in _SINGLE_LINE_FIELDS:
        return {"pattern": SINGLE_LINE_PATTERN}
    if field.name == "content_type":
        return {"pattern": CONTENT_TYPE_PATTERN, "description": "Not multipart/* or message/*."}
    return {}


def _size_properties(field: fields.Field[Any]) -> dict[str, Any]:
    if isinstance(field, BoundedList):
        return {"maxItems": field.max_items}
    if isinstance(field, HeaderDict):
        return {"maxProperties": MAX_HEADERS}
    return {}


_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object"},
            },
        }
    },
}
_BATCH_RESULT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "array",
            "items": {"type": "object", "required": ["index", "id"]},
        }
    },
}


def _add_paths(spec: APISpec) -> None:
    spec.path("/v1/emails", operations={"post": _send_operation()})
    spec.path("/v1/emails/batch", operations={"post": _batch_operation()})
    spec.path("/v1/emails/{email_id}", operations={"get": _get_email()})
    spec.path("/v1/queue/stats", operations={"get": _stats()})
    spec.path("/v1/dead-letters", operations={"get": _list_dead_letters()})
    spec.path("/v1/dead-letters/retry", operations={"post": _retry_all()})
    spec.path("/v1/dead-letters/{email_id}/retry", operations={"post": _retry_one()})
    spec.path("/v1/dead-letters/{email_id}", operations={"delete": _discard()})
    spec.path("/healthz", operations={"get": _probe("The process is up.", ready=False)})
    spec.path("/readyz", operations={"get": _probe("Redis answers.", ready=True)})


def _accepted(schema: dict[str, Any] | str) -> dict[str, Any]:
    answers = _answers("202", "Accepted and queued.", schema, _SEND_ERRORS)
    duplicate = {"description": "A duplicate: already accepted.", "content": _json(schema)}
    return {"202": answers.pop("202"), "200": duplicate, **answers}


def _send_operation() -> dict[str, Any]:
    return {
        "summary": "Send one email",
        "operationId": "sendEmail",
        "parameters": [
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        ],
        "requestBody": {"required": True, "content": _json("Email")},
        "responses": _accepted("Accepted"),
    }


def _batch_operation() -> dict[str, Any]:
    return {
        "summary": "Send up to 500 emails",
        "operationId": "sendBatch",
        "requestBody": {"required": True, "content": _json("Batch")},
        "responses": _accepted(_BATCH_RESULT),
    }


def _get_email() -> dict[str, Any]:
    return {
        "summary": "Status of one email: attempts, last error, the relay's replies",
        "operationId": "getEmail",
        "parameters": [_EMAIL_ID],
        "responses": _answers("200", "The email's status.", "EmailStatus", (*_READ_ERRORS, "404")),
    }


def _stats() -> dict[str, Any]:
    return {
        "summary": "Jobs per state, throughput, the cluster's processes, capacity advice",
        "operationId": "queueStats",
        "responses": _answers("200", "The queue's numbers.", "QueueStats", _READ_ERRORS),
    }


def _list_dead_letters() -> dict[str, Any]:
    return {
        "summary": "Failed emails, newest first, a page at a time",
        "operationId": "listDeadLetters",
        "parameters": [{"in": "query", "schema": ListQuerySchema}],
        "responses": _answers("200", "One page.", "DeadLetterPage", (*_READ_ERRORS, "422")),
    }


def _retry_all() -> dict[str, Any]:
    return {
        "summary": "Requeue every dead letter, or those of one error class",
        "operationId": "retryDeadLetters",
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": RetryFilterSchema}},
        },
        "responses": _answers(
            "202", "How many were requeued.", "RequeuedMany", (*_READ_ERRORS, "415", "422")
        ),
    }


def _retry_one() -> dict[str, Any]:
    return {
        "summary": "Requeue one dead letter with a full attempt budget",
        "operationId": "retryDeadLetter",
        "parameters": [_EMAIL_ID],
        "responses": _answers("202", "Requeued.", "Requeued", (*_READ_ERRORS, "404")),
    }


def _discard() -> dict[str, Any]:
    return {
        "summary": "Discard one dead letter for good",
        "operationId": "discardDeadLetter",
        "parameters": [_EMAIL_ID],
        "responses": _answers("204", "Discarded.", None, (*_READ_ERRORS, "404")),
    }


def _probe(description: str, ready: bool) -> dict[str, Any]:
    answers = _answers("200", description, "Health", ())
    if ready:
        answers["503"] = {
            "description": "Redis is unreachable or refuses writes (full).",
            "content": _json("Health"),
        }
    return {"summary": description, "security": [], "responses": answers}
