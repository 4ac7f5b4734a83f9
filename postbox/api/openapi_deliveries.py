"""The OpenAPI part of an endpoint's deliveries (postbox/api/webhook_deliveries.py): listing
them, retrying one, replaying a span, the test event; their answers' schemas are here too."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from marshmallow import Schema, fields, validate

from postbox.api.openapi_parts import answers, json_content
from postbox.api.openapi_webhooks import ENDPOINT_ID, READ_ERRORS, WRITE_ERRORS
from postbox.api.webhook_deliveries import MAX_LIMIT, MAX_OFFSET, ReplaySchema
from postbox.webhooks.delivery_records import LISTED_STATES

_Str = fields.String
_Int = fields.Integer
OUTCOMES = ("delivered", "retrying", "failed", "endpoint_disabled")


def _nullable() -> fields.String:
    return fields.String(required=True, allow_none=True)


class WebhookDeliveryAttemptSchema(Schema):
    """One attempt, as the endpoint's log keeps it."""

    delivery_id = _Str(required=True)
    event_id = _Str(required=True)
    type = _Str(required=True)
    attempt = _Int(required=True)
    status = _Int(required=True, allow_none=True)
    outcome = _Str(required=True, validate=validate.OneOf(OUTCOMES))
    latency_ms = fields.Float(required=True)
    error = _nullable()
    next_retry_at = _nullable()
    at = _Str(required=True)


class WebhookDeliverySchema(Schema):
    """A delivery that failed for good or is pending, with its last outcome."""

    delivery_id = _Str(required=True)
    event_id = _Str(required=True)
    type = _Str(required=True)
    state = _Str(required=True, validate=validate.OneOf(("failed", "pending")))
    attempts = _Int(required=True)
    last_status = _Int(required=True, allow_none=True)
    last_error = _nullable()
    failed_at = _nullable()
    next_attempt_at = _nullable()


class WebhookDeliveryRetriedSchema(Schema):
    """`POST .../deliveries/{delivery_id}/retry`."""

    delivery_id = _Str(required=True)
    state = _Str(required=True)


class WebhookReplayStartedSchema(Schema):
    """`POST .../replay`: how many events were queued again, of how many read."""

    replayed = _Int(required=True)
    read = _Int(required=True)
    complete = fields.Boolean(required=True)
    resume_since = _nullable()


class WebhookTestQueuedSchema(Schema):
    """`POST .../test`."""

    event_id = _Str(required=True)
    delivery_id = _Str(required=True)
    type = _Str(required=True)


_SCHEMAS = (
    WebhookDeliveryAttemptSchema,
    WebhookDeliverySchema,
    WebhookDeliveryRetriedSchema,
    WebhookReplayStartedSchema,
    WebhookTestQueuedSchema,
)
_LIST = {
    "type": "object",
    "additionalProperties": False,
    "required": ["data", "state", "pending", "failed"],
    "properties": {
        "data": {
            "type": "array",
            "items": {
                "oneOf": [
                    {"$ref": "#/components/schemas/WebhookDeliveryAttempt"},
                    {"$ref": "#/components/schemas/WebhookDelivery"},
                ]
            },
        },
        "state": {"type": "string", "enum": list(LISTED_STATES)},
        "pending": {"type": "integer"},
        "failed": {"type": "integer"},
    },
}


def add_components(spec: APISpec) -> None:
    """The request and answer schemas."""
    spec.components.schema("WebhookReplay", schema=ReplaySchema)
    for schema in _SCHEMAS:
        spec.components.schema(schema.__name__.removesuffix("Schema"), schema=schema)
    spec.components.schema("WebhookDeliveryList", _LIST)


def add_paths(spec: APISpec) -> None:
    """The delivery operations of `/v1/webhooks/{endpoint_id}`."""
    base = "/v1/webhooks/{endpoint_id}"
    spec.path(f"{base}/deliveries", operations={"get": _list()})
    spec.path(f"{base}/deliveries/{{delivery_id}}/retry", operations={"post": _retry()})
    spec.path(f"{base}/replay", operations={"post": _replay()})
    spec.path(f"{base}/test", operations={"post": _test()})


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"in": "query", "name": name, "schema": schema, "description": description}


def _list() -> dict[str, Any]:
    return {
        "summary": "A webhook's recent delivery attempts, or its failed or pending deliveries",
        "operationId": "listWebhookDeliveries",
        "parameters": [
            ENDPOINT_ID,
            _query(
                "state",
                {"type": "string", "enum": list(LISTED_STATES), "default": "attempts"},
                "`attempts` (the last 1,000, newest first), `failed`, or `pending`.",
            ),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "At most."),
            _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}, "Skip."),
        ],
        "responses": answers(
            "200", "The deliveries.", "WebhookDeliveryList", (*READ_ERRORS, "404", "422")
        ),
    }


def _retry() -> dict[str, Any]:
    delivery_id = {**ENDPOINT_ID, "name": "delivery_id", "description": "`<webhook>:<event>`."}
    return {
        "summary": "Make a failed (fresh retry schedule) or pending delivery due now",
        "operationId": "retryWebhookDelivery",
        "parameters": [ENDPOINT_ID, delivery_id],
        "responses": answers(
            "202",
            "Due now.",
            "WebhookDeliveryRetried",
            (*READ_ERRORS, "404"),
            {"404": _NO_DELIVERY},
        ),
    }


_NO_DELIVERY = "No such webhook (for this key), or the delivery is neither failed nor pending."


def _replay() -> dict[str, Any]:
    return {
        "summary": "Deliver again the events of a span that this webhook takes, same ids",
        "operationId": "replayWebhookEvents",
        "parameters": [ENDPOINT_ID],
        "requestBody": {"required": True, "content": json_content("WebhookReplay")},
        "responses": answers(
            "202", "Queued again.", "WebhookReplayStarted", (*WRITE_ERRORS, "404")
        ),
    }


def _test() -> dict[str, Any]:
    return {
        "summary": "Send a webhook.test event, signed like every delivery",
        "operationId": "testWebhook",
        "parameters": [ENDPOINT_ID],
        "responses": answers("202", "Queued.", "WebhookTestQueued", (*READ_ERRORS, "404")),
    }
