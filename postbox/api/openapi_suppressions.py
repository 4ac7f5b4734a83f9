"""The suppression part of the OpenAPI document: `/v1/suppressions` and its entries."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from marshmallow import Schema, fields, validate

from postbox.api.openapi_parts import answers
from postbox.api.suppressions import AddSuppressionSchema, SuppressionQuerySchema
from postbox.suppressions.entries import Reason

READ_ERRORS = ("400", "401", "422", "429", "503")
WRITE_ERRORS = ("400", "401", "413", "415", "422", "429", "503")
ADDRESS = {
    "in": "path",
    "name": "address",
    "required": True,
    "schema": {"type": "string"},
    "description": "The address (matched normalised: domain case and IDN form do not matter).",
}


class SuppressionSchema(Schema):
    """One entry: an address no email (in `scope`) is sent to."""

    address = fields.String(required=True)
    scope = fields.String(
        required=True,
        metadata={"description": "`*` (every email) or the sender domain it applies to."},
    )
    reason = fields.String(required=True, validate=validate.OneOf(list(Reason)))
    created_at = fields.String(required=True)
    email_id = fields.String(
        required=True, allow_none=True, metadata={"description": "The email that caused it."}
    )
    evidence = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The relay's reply or the DSN's diagnostic code."},
    )
    note = fields.String(required=True)
    expires_at = fields.String(required=True, allow_none=True)


class SuppressionListSchema(Schema):
    """`GET /v1/suppressions`."""

    data = fields.List(fields.Nested(SuppressionSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class SuppressionAddedSchema(Schema):
    """`POST /v1/suppressions`: the entries in the key's scope (one per sender domain)."""

    data = fields.List(fields.Nested(SuppressionSchema), required=True)


_ENTRY = {
    "address": "ann@example.org",
    "scope": "*",
    "reason": "unsubscribe",
    "created_at": "2026-01-05T09:30:12+00:00",
    "email_id": None,
    "evidence": None,
    "note": "asked by phone",
    "expires_at": None,
}
ADD_EXAMPLES = {
    "unsubscribe": {
        "summary": "Stop mail to an address that asked",
        "value": {"address": "ann@example.org", "reason": "unsubscribe", "note": "by phone"},
    }
}


def add_components(spec: APISpec) -> None:
    """The request and answer schemas, each answer with its example."""
    spec.components.schema("SuppressionAdd", schema=AddSuppressionSchema)
    spec.components.schema("Suppression", {"example": _ENTRY}, schema=SuppressionSchema)
    spec.components.schema(
        "SuppressionList",
        {"example": {"data": [_ENTRY], "next_cursor": None}},
        schema=SuppressionListSchema,
    )
    spec.components.schema(
        "SuppressionAdded", {"example": {"data": [_ENTRY]}}, schema=SuppressionAddedSchema
    )


def add_paths(spec: APISpec) -> None:
    """The `/v1/suppressions` operations."""
    spec.path("/v1/suppressions", operations={"get": _list(), "post": _add()})
    spec.path("/v1/suppressions/{address}", operations={"delete": _remove()})
    spec.path("/v1/inbound/ses", operations={"post": _ses()})


_OUTCOME = {
    "type": "object",
    "required": ["outcome"],
    "properties": {"outcome": {"type": "string"}},
    "additionalProperties": False,
}
_SNS_ERRORS = {
    "400": "Not an SNS message (fields named).",
    "403": "The signature does not verify, the certificate is not an SNS one, or the topic "
    "is not in SES_SNS_TOPIC_ARNS: nothing was changed.",
}


def _ses() -> dict[str, Any]:
    return {
        "summary": "Amazon SES bounce and complaint notifications, delivered by SNS",
        "description": "Authenticated by the SNS message signature, not by an API key. "
        "Needs BOUNCE_DOMAIN: a notification is matched by the VERP envelope sender.",
        "operationId": "sesNotification",
        "security": [],
        # SNS posts its JSON message as text/plain.
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        "responses": answers(
            "200", "Verified; what was done.", _OUTCOME, ("400", "403", "413"), _SNS_ERRORS
        ),
    }


def _list() -> dict[str, Any]:
    return {
        "summary": "The suppression list in address order (a restricted key: its scope)",
        "operationId": "listSuppressions",
        "parameters": [{"in": "query", "schema": SuppressionQuerySchema}],
        "responses": answers("200", "One page.", "SuppressionList", READ_ERRORS),
    }


def _add() -> dict[str, Any]:
    return {
        "summary": "Suppress an address (manual or unsubscribe), in the key's scope",
        "operationId": "addSuppression",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/SuppressionAdd"},
                    "examples": ADD_EXAMPLES,
                }
            },
        },
        "responses": {
            **answers("201", "Added.", "SuppressionAdded", WRITE_ERRORS),
            **answers("200", "It was suppressed already.", "SuppressionAdded", ()),
        },
    }


def _remove() -> dict[str, Any]:
    return {
        "summary": "Remove an address's entries in the key's scope",
        "operationId": "removeSuppression",
        "parameters": [ADDRESS],
        "responses": answers("204", "Removed.", None, (*READ_ERRORS, "404")),
    }
