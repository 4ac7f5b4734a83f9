"""`GET /openapi.json`: an OpenAPI 3 description of the API, built from the schemas.

It is generated with apispec from the same marshmallow schemas that validate requests, so it
cannot drift from them, and the fuzz tests (schemathesis) run against it. No key is needed
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
from postbox.api.openapi_operations import add_operations
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

bp = Blueprint("openapi", __name__)

_ADDRESS = {
    "type": "string",
    "format": "email",
    "description": "user@example.com or Name <user@example.com>; IDN domains and "
    "non-ASCII local parts (sent with SMTPUTF8) are accepted.",
}
# One line of text: what `header_text.line_problem` lets through, as a JSON Schema pattern.
_SINGLE_LINE = "^[^\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f\\u2028\\u2029]*$"
_SINGLE_LINE_FIELDS = frozenset({"filename", "idempotency_key"})
_MIME_TYPE = "^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}$"
# An email needs a body: a non-empty text or html.
_BODY_REQUIRED = [
    {"required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}},
    {"required": ["html"], "properties": {"html": {"type": "string", "minLength": 1}}},
]
_ERROR_STATUSES = {
    "400": "The body or a header cannot be read (bad JSON, repeated key, bad header).",
    "401": "No valid API key.",
    "403": "The key may not send from this address.",
    "409": "The idempotency key was used with another payload.",
    "413": "The body is larger than MAX_REQUEST_BYTES.",
    "415": "The body is not JSON.",
    "422": "A field is invalid.",
    "429": "The key is over its rate limit; see Retry-After.",
    "503": "Redis is unreachable; retry.",
}


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
    spec.components.schema("Accepted", _ACCEPTED)
    spec.components.schema("Error", _ERROR)
    spec.path("/v1/emails", operations={"post": _send_operation()})
    spec.path("/v1/emails/batch", operations={"post": _batch_operation()})
    add_operations(spec)
    document: dict[str, Any] = spec.to_dict()
    for name in ("Email", "BatchItem"):
        document["components"]["schemas"][name]["anyOf"] = _BODY_REQUIRED
    document["security"] = [{"bearer": []}]
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
        return {"pattern": _SINGLE_LINE}
    if field.name == "content_type":
        return {"pattern": _MIME_TYPE, "description": "Not multipart/* or message/*."}
    return {}


def _size_properties(field: fields.Field[Any]) -> dict[str, Any]:
    if isinstance(field, BoundedList):
        return {"maxItems": field.max_items}
    if isinstance(field, HeaderDict):
        return {"maxProperties": MAX_HEADERS}
    return {}


_ACCEPTED = {
    "type": "object",
    "required": ["id", "message_id", "status", "duplicate"],
    "properties": {
        "id": {"type": "string", "pattern": "^em_[0-9a-f]{64}$"},
        "message_id": {"type": "string"},
        "status": {"type": "string"},
        "duplicate": {"type": "boolean"},
    },
}
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


def _json(schema: dict[str, Any] | str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"} if isinstance(schema, str) else schema
    return {"application/json": {"schema": ref}}


def _responses(accepted: dict[str, Any] | str) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "202": {"description": "Accepted and queued.", "content": _json(accepted)},
        "200": {"description": "A duplicate: already accepted.", "content": _json(accepted)},
    }
    for status, description in _ERROR_STATUSES.items():
        responses[status] = {"description": description, "content": _json("Error")}
    return responses


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
        "responses": _responses("Accepted"),
    }


def _batch_operation() -> dict[str, Any]:
    return {
        "summary": "Send up to 500 emails",
        "operationId": "sendBatch",
        "requestBody": {"required": True, "content": _json("Batch")},
        "responses": _responses(_BATCH_RESULT),
    }
