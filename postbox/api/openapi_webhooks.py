"""The webhook part of the OpenAPI document: the `/v1/webhooks` operations, and every event
payload a receiver gets (components `EmailSentEvent`, ... and `WebhookEvent`, one of them by
`type`), listed under `x-webhooks` as OpenAPI 3.1 lists webhooks."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from postbox.api import webhook_responses
from postbox.api.openapi_parts import answers, json_content
from postbox.api.webhook_responses import EVENT_PAYLOADS, payload_schema
from postbox.api.webhooks import MAX_WEBHOOKS_PER_KEY, CreateWebhookSchema, UpdateWebhookSchema

ENDPOINT_ID = {
    "in": "path",
    "name": "endpoint_id",
    "required": True,
    "schema": {"type": "string"},
    "description": "The webhook's id (`wh_` and 22 URL-safe characters).",
}
READ_ERRORS = ("400", "401", "429", "503")
WRITE_ERRORS = ("400", "401", "413", "415", "422", "429", "503")
KEY_NEEDED = {
    "503": "ENCRYPTION_KEY is not set (`encryption_key_missing`: nothing was changed), or "
    "Redis is unreachable or full (`queue_unavailable`, `queue_full`); see Retry-After."
}
LIMIT_REACHED = (
    f"The key already owns {MAX_WEBHOOKS_PER_KEY} endpoints, the most allowed"
    " (`webhook_limit_reached`)."
)
_RESPONSES = ("Webhook", "WebhookCreated", "WebhookList", "SecretRotated")
SIGNATURE_HEADERS = [
    {
        "in": "header",
        "name": "webhook-id",
        "required": True,
        "schema": {"type": "string"},
        "description": "The event id (`evt_...`): the same on every retry; deduplicate by it.",
    },
    {
        "in": "header",
        "name": "webhook-timestamp",
        "required": True,
        "schema": {"type": "integer"},
        "description": "Unix seconds when this attempt was signed.",
    },
    {
        "in": "header",
        "name": "webhook-signature",
        "required": True,
        "schema": {"type": "string"},
        "description": "`v1,<base64 HMAC-SHA256>`, space-separated; two during the 24 hours "
        "after a secret rotation. Verify with the `standardwebhooks` library.",
    },
]


def add_components(spec: APISpec) -> None:
    """The request, answer and event payload schemas."""
    spec.components.schema("WebhookCreate", schema=CreateWebhookSchema)
    spec.components.schema("WebhookUpdate", schema=UpdateWebhookSchema)
    for name in _RESPONSES:
        spec.components.schema(name, schema=getattr(webhook_responses, f"{name}Schema"))
    for event_type, (name, data) in EVENT_PAYLOADS.items():
        spec.components.schema(name, schema=payload_schema(event_type, data))
    refs = {t: f"#/components/schemas/{name}" for t, (name, _) in EVENT_PAYLOADS.items()}
    spec.components.schema(
        "WebhookEvent",
        {
            "description": "What a webhook receives: one event, signed (Standard Webhooks).",
            "oneOf": [{"$ref": ref} for ref in refs.values()],
            "discriminator": {"propertyName": "type", "mapping": refs},
        },
    )


def add_paths(spec: APISpec) -> None:
    """The `/v1/webhooks` operations."""
    spec.path("/v1/webhooks", operations={"post": _create(), "get": _list()})
    spec.path(
        "/v1/webhooks/{endpoint_id}",
        operations={"get": _get(), "patch": _update(), "delete": _delete()},
    )
    spec.path("/v1/webhooks/{endpoint_id}/rotate-secret", operations={"post": _rotate()})


def finish(document: dict[str, Any]) -> None:
    """What apispec cannot say: a PATCH names at least one field; the events themselves."""
    document["components"]["schemas"]["WebhookUpdate"]["minProperties"] = 1
    document["x-webhooks"] = {
        event_type: {
            "post": {
                "summary": f"{event_type}: sent to every endpoint subscribed to it",
                "parameters": SIGNATURE_HEADERS,
                "requestBody": {"required": True, "content": json_content(name)},
                "responses": {
                    "2XX": {"description": "Received; any other answer is retried."},
                    "410": {"description": "Gone: the endpoint is disabled."},
                },
            }
        }
        for event_type, (name, _) in EVENT_PAYLOADS.items()
    }


def _create() -> dict[str, Any]:
    return {
        "summary": "Make a webhook endpoint; the answer holds its signing secret, shown once",
        "operationId": "createWebhook",
        "requestBody": {"required": True, "content": json_content("WebhookCreate")},
        "responses": answers(
            "201",
            "Made; `secret` is not shown again.",
            "WebhookCreated",
            (*WRITE_ERRORS, "409"),
            {**KEY_NEEDED, "409": LIMIT_REACHED},
        ),
    }


def _list() -> dict[str, Any]:
    return {
        "summary": "The webhook endpoints this key may see (a restricted key: its own)",
        "operationId": "listWebhooks",
        "responses": answers("200", "The endpoints, oldest first.", "WebhookList", READ_ERRORS),
    }


def _get() -> dict[str, Any]:
    return {
        "summary": "One webhook endpoint",
        "operationId": "getWebhook",
        "parameters": [ENDPOINT_ID],
        "responses": answers("200", "The endpoint.", "Webhook", (*READ_ERRORS, "404")),
    }


def _update() -> dict[str, Any]:
    return {
        "summary": "Change a webhook's URL, events, description, or whether it is enabled",
        "operationId": "updateWebhook",
        "parameters": [ENDPOINT_ID],
        "requestBody": {"required": True, "content": json_content("WebhookUpdate")},
        "responses": answers("200", "The endpoint as changed.", "Webhook", (*WRITE_ERRORS, "404")),
    }


def _delete() -> dict[str, Any]:
    return {
        "summary": "Delete a webhook endpoint and the deliveries still waiting for it",
        "operationId": "deleteWebhook",
        "parameters": [ENDPOINT_ID],
        "responses": answers("204", "Deleted.", None, (*READ_ERRORS, "404")),
    }


def _rotate() -> dict[str, Any]:
    return {
        "summary": "A new signing secret, shown once; the old one signs beside it for 24 hours",
        "operationId": "rotateWebhookSecret",
        "parameters": [ENDPOINT_ID],
        "responses": answers(
            "200", "The new secret.", "SecretRotated", (*READ_ERRORS, "404"), KEY_NEEDED
        ),
    }
