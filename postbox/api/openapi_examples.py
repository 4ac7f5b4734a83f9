"""Examples for the OpenAPI document: a request body for every operation that takes one,
and the answers to them, as `/docs` shows them.

Each request example is sent as it is by tests/integration/test_openapi_examples.py, which
checks that it gets the operation's documented success status and an answer with the
example answer's fields: an example that stops validating fails the tests.
"""

from __future__ import annotations

import base64
from typing import Any

from postbox.api.openapi_schema_examples import add_schema_examples

_SHOP = "Shop <shop@example.com>"
_RECEIPT = base64.b64encode(b"Order 1234: 2 items, 24.00 EUR\n").decode()
_EMAIL_ID = "em_" + "6f1c" * 16

REQUESTS: dict[str, dict[str, dict[str, Any]]] = {
    "sendEmail": {
        "minimal": {
            "summary": "A text email",
            "value": {
                "from": _SHOP,
                "to": "ann@example.org",
                "subject": "Your order",
                "text": "Thanks for your order!",
            },
        },
        "full": {
            "summary": "HTML and text, several recipients, headers, an attachment, tags",
            "value": {
                "from": _SHOP,
                "to": ["Ann <ann@example.org>", "bob@example.org"],
                "cc": "orders@example.com",
                "bcc": ["audit@example.com"],
                "reply_to": "support@example.com",
                "subject": "Your order 1234",
                "text": "Thanks for your order! Your receipt is attached.",
                "html": "<p>Thanks for your order! Your receipt is attached.</p>",
                "headers": {"X-Order-Id": "1234"},
                "attachments": [
                    {"filename": "receipt.txt", "content": _RECEIPT, "content_type": "text/plain"}
                ],
                "tags": ["order", "receipt"],
            },
        },
    },
    "sendBatch": {
        "two": {
            "summary": "Two emails, each with its own idempotency key",
            "value": {
                "emails": [
                    {
                        "from": _SHOP,
                        "to": "ann@example.org",
                        "subject": "Your order 1234",
                        "text": "Thanks, Ann!",
                        "idempotency_key": "order-1234",
                    },
                    {
                        "from": _SHOP,
                        "to": "bob@example.org",
                        "subject": "Your order 1235",
                        "html": "<p>Thanks, Bob!</p>",
                        "idempotency_key": "order-1235",
                    },
                ]
            },
        }
    },
    "retryDeadLetters": {
        "by_class": {
            "summary": "Requeue the dead letters of one error class",
            "value": {"error_class": "temporary"},
        },
        "all": {"summary": "Requeue every dead letter", "value": {}},
    },
    "createWebhook": {
        "crm": {
            "summary": "Sent and failed emails, to a CRM",
            "value": {
                "url": "https://crm.example.com/hooks/postbox",
                "events": ["email.sent", "email.failed"],
                "description": "CRM",
            },
        }
    },
    "updateWebhook": {
        "everything": {
            "summary": "Take every event, and turn the endpoint back on",
            "value": {"events": ["*"], "enabled": True},
        }
    },
    "replayWebhookEvents": {
        "an_hour": {
            "summary": "Deliver again the events of one hour",
            "value": {"since": "2026-01-05T09:00:00Z", "until": "2026-01-05T10:00:00Z"},
        }
    },
}

_ACCEPTED = {
    "id": _EMAIL_ID,
    "message_id": "<6f1c6f1c@example.com>",
    "status": "queued",
    "duplicate": False,
}
_INVALID = {
    "error": {
        "code": "validation_error",
        "message": "The request has invalid fields.",
        # Address lists name the item: `to` given as one string is item 0.
        "fields": {"to": {"0": ["Not a valid email address."]}},
    }
}
# The answers shown beside the requests: (operation, status) -> body.
ANSWERS: dict[tuple[str, str], Any] = {
    ("sendEmail", "202"): _ACCEPTED,
    ("sendEmail", "200"): {**_ACCEPTED, "status": "sent", "duplicate": True},
    ("sendEmail", "422"): _INVALID,
    ("sendBatch", "202"): {"data": [{"index": 0, **_ACCEPTED}]},
    ("retryDeadLetters", "202"): {"retried": 2},
    ("createWebhook", "201"): {
        "id": "wh_3q2Jx0bY1m5Vv9cKp4sT7w",
        "url": "https://crm.example.com/hooks/postbox",
        "events": ["email.sent", "email.failed"],
        "description": "CRM",
        "enabled": True,
        "disabled_reason": None,
        "domains": [],
        "created_at": "2026-01-05T09:30:12Z",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    },
}


def add_examples(document: dict[str, Any]) -> None:
    """Put the examples into `document`'s operations (by operationId), and one on each
    answer schema (openapi_schema_examples.py)."""
    add_schema_examples(document)
    for operations in document["paths"].values():
        for operation in operations.values():
            name = operation.get("operationId")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and name in REQUESTS:
                body["examples"] = REQUESTS[name]
            for status, answer in operation.get("responses", {}).items():
                content = answer.get("content", {}).get("application/json")
                if content is not None and (name, status) in ANSWERS:
                    content["example"] = ANSWERS[(name, status)]
