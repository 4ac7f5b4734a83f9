"""The OpenAPI document describes every webhook route and every event payload."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from postbox.api.openapi import openapi_document
from postbox.api.webhook_responses import EVENT_PAYLOADS, payload_schema
from postbox.queue.events import EVENT_TYPES

COMMON = {
    "email_id": "em_" + "a" * 64,
    "message_id": "<a@example.com>",
    "from": "shop@example.com",
    "to": ["rcpt@example.org"],
    "tags": ["welcome"],
    "attempt": 1,
    "sequence": 1764590000123000,
}
SAMPLES: dict[str, dict[str, Any]] = {
    "email.queued": {**COMMON, "attempt": 0, "send_at": None, "subject": "Hi", "key_id": "ab12"},
    "email.scheduled": {
        **COMMON,
        "attempt": 0,
        "send_at": "2026-01-01T09:00:00.000Z",
        "subject": "Hi",
        "key_id": None,
    },
    "email.sent": {
        **COMMON,
        "recipients": [
            {"address": "rcpt@example.org", "status": "accepted", "reply": "250 OK"},
            {"address": "x@example.org", "status": "refused", "reply": "550 5.1.1 no"},
        ],
        "reply": "250 2.0.0 queued as 123",
    },
    "email.deferred": {
        **COMMON,
        "error_class": "temporary",
        "reply": "451 4.3.0 try later",
        "next_attempt_at": "2026-01-01T09:00:05.000Z",
    },
    "email.failed": {**COMMON, "error_class": "rejected", "reply": "550 5.1.1 no such user"},
    "email.retried": {**COMMON, "attempt": 0},
    "email.canceled": {**COMMON, "attempt": 0},
}


def test_every_webhook_route_is_documented() -> None:
    paths = openapi_document()["paths"]
    assert set(paths["/v1/webhooks"]) == {"get", "post"}
    assert set(paths["/v1/webhooks/{endpoint_id}"]) == {"get", "patch", "delete"}
    assert set(paths["/v1/webhooks/{endpoint_id}/rotate-secret"]) == {"post"}
    create = paths["/v1/webhooks"]["post"]["responses"]
    assert "encryption_key_missing" in create["503"]["description"]


def test_every_event_type_has_a_documented_payload() -> None:
    document = openapi_document()
    assert set(EVENT_TYPES) | {"webhook.test"} == set(document["x-webhooks"])
    schemas = document["components"]["schemas"]
    for event_type in EVENT_TYPES:
        name = EVENT_PAYLOADS[event_type][0]
        assert schemas[name]["properties"]["type"]["enum"] == [event_type]
        assert set(schemas[name]["required"]) == {"type", "timestamp", "data"}
    mapping = schemas["WebhookEvent"]["discriminator"]["mapping"]
    assert set(mapping) == set(EVENT_TYPES) | {"webhook.test"}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_the_payload_schemas_take_the_documented_shape_and_nothing_else(event_type: str) -> None:
    schema = payload_schema(event_type, EVENT_PAYLOADS[event_type][1])()
    payload = {"type": event_type, "timestamp": "2026-01-01T09:00:00.123Z"}
    schema.load({**payload, "data": SAMPLES[event_type]})
    with pytest.raises(ValidationError):
        schema.load({**payload, "data": {**SAMPLES[event_type], "text": "the body"}})
    with pytest.raises(ValidationError):
        schema.load({**payload, "type": "email.other", "data": SAMPLES[event_type]})
