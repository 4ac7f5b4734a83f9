"""An example of every schema Postbox answers with, for the OpenAPI document (`/docs` shows
each beside its answers). tests/integration/test_openapi_examples.py validates each against
its schema, and fails for an answer schema that has none.
"""

from __future__ import annotations

from typing import Any

_EMAIL_ID = "em_" + "6f1c" * 16
_MESSAGE_ID = "<6f1c6f1c@example.com>"
_WEBHOOK_ID = "wh_3q2Jx0bY1m5Vv9cKp4sT7w"
_AT = "2026-01-05T09:30:12Z"
_WEBHOOK = {
    "id": _WEBHOOK_ID,
    "url": "https://crm.example.com/hooks/postbox",
    "events": ["email.sent", "email.failed"],
    "description": "CRM",
    "enabled": True,
    "disabled_reason": None,
    "domains": [],
    "created_at": _AT,
}
_DEAD_LETTER = {
    "id": _EMAIL_ID,
    "failed_at": _AT,
    "error_class": "rejected",
    "reason": "rejected: 550 5.1.1 <ann@example.org>: no such user",
    "attempts": 1,
    "message_id": _MESSAGE_ID,
    "from": "shop@example.com",
    "to": ["ann@example.org"],
    "subject": "Your order 1234",
}
_NO_ONE = {"processes": 0, "concurrency": 0, "active": 0, "processed": 0}
# An idle instance, as it answers (lists shortened to nothing).
_QUEUE_STATS = {
    "queue": "email",
    "at_ms": 1767605412345,
    "counts": {
        "waiting": 0,
        "active": 0,
        "delayed": 0,
        "prioritized": 0,
        "paused": 0,
        "completed": 120,
        "failed": 2,
    },
    "workers": [],
    "throughput": {
        "window_seconds": 60,
        "sent": 120,
        "failed": 2,
        "sent_per_second": 2.0,
        "per_minute": {"sent": [0] * 9 + [120], "failed": [0] * 9 + [2]},
    },
    "dead_letters": {"sampled": 2, "by_class": {"rejected": 2}, "latest_config_error": None},
    "instances": [],
    "cluster": {
        "processes": {"healthy": 0, "slow": 0, "gone": 0},
        "roles": {"api": _NO_ONE, "worker": _NO_ONE},
    },
    "waiting_history": [],
    "redis": {
        "used_memory": 1261768,
        "maxmemory": 0,
        "maxmemory_policy": "noeviction",
        "full": False,
    },
    "settings": {
        "worker_concurrency": 100,
        "max_attempts": 5,
        "rate_limit": None,
        "domain_rate_limits": {},
        "dedup_window_seconds": 86400,
    },
    "relay": {
        "host": "smtp.example.net",
        "port": 587,
        "security": "starttls",
        "custom_ca": False,
        "pool_size": 10,
        "config_error": None,
        "workers": {
            "workers_reporting": 0,
            "workers_down": 0,
            "workers_auth_refused": 0,
            "address": None,
            "down_seconds": None,
            "last_error": None,
            "auth_error": None,
            "postponed": 0,
        },
        "relays": [
            {
                "name": "default",
                "address": "smtp.example.net:587",
                "status": "healthy",
                "workers_reporting": 1,
                "workers_down": 0,
                "down_seconds": None,
                "last_error": None,
                "error_class": None,
                "postponed": 0,
                "sends": 120,
                "failures": 2,
            }
        ],
    },
    "webhooks": {
        "endpoints": 1,
        "enabled": 1,
        "backlog": {"stream": 0, "due": 0, "waiting": 0},
        "pending": 0,
        "failed": 0,
        "outcomes": {},
    },
    "history": {"enabled": True, "days": 30, "bodies": False},
    "advice": [],
}

SCHEMAS: dict[str, Any] = {
    "Accepted": {
        "id": _EMAIL_ID,
        "message_id": _MESSAGE_ID,
        "status": "queued",
        "duplicate": False,
    },
    "EmailStatus": {
        "id": _EMAIL_ID,
        "status": "sent",
        "attempts": 1,
        "message_id": _MESSAGE_ID,
        "subject": "Your order 1234",
        "to": ["ann@example.org"],
        "tags": ["order"],
        "send_at": None,
        "accepted_at": "2026-01-05T09:30:11Z",
        "finished_at": _AT,
        "last_error": None,
        "error_class": None,
        "delivery": {
            "smtp_reply": "250 2.0.0 Ok: queued as 4C1F2",
            "relay": "default",
            "accepted": ["ann@example.org"],
            "refused": {},
            "relays": {"ann@example.org": "default"},
        },
        "history": [{"at": _AT, "outcome": "sent", "smtp_code": 250}],
    },
    "DeadLetterPage": {"data": [_DEAD_LETTER], "next_cursor": None},
    "Requeued": {"id": _EMAIL_ID, "status": "queued"},
    "RequeuedMany": {"retried": 2},
    "QueueStats": _QUEUE_STATS,
    "Health": {"status": "ok", "redis": "ok"},
    "LifecycleAnswer": {"id": _EMAIL_ID, "status": "scheduled", "send_at": "2027-01-05T09:00:00Z"},
    "Webhook": _WEBHOOK,
    "WebhookCreated": {**_WEBHOOK, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    "WebhookList": {"data": [_WEBHOOK]},
    "SecretRotated": {
        "id": _WEBHOOK_ID,
        "secret": "whsec_9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ",
        "previous_secret_expires_at": "2026-01-06T09:30:12Z",
    },
    "WebhookDeliveryList": {
        "data": [
            {
                "delivery_id": "dl_1767605412345-0",
                "event_id": "evt_1767605412345-0",
                "type": "email.sent",
                "attempt": 1,
                "status": 200,
                "outcome": "delivered",
                "latency_ms": 41.5,
                "error": None,
                "next_retry_at": None,
                "at": _AT,
            }
        ],
        "state": "attempts",
        "pending": 0,
        "failed": 0,
    },
    "WebhookDeliveryRetried": {"delivery_id": "dl_1767605412345-0", "state": "pending"},
    "WebhookReplayStarted": {"replayed": 42, "read": 120, "complete": True, "resume_since": None},
    "WebhookTestQueued": {
        "event_id": "evt_1767605412346-0",
        "delivery_id": "dl_1767605412346-0",
        "type": "webhook.test",
    },
    "HistoryPage": {
        "data": [
            {
                "id": _EMAIL_ID,
                "status": "sent",
                "message_id": _MESSAGE_ID,
                "from": "shop@example.com",
                "to": [
                    {
                        "address": "ann@example.org",
                        "status": "accepted",
                        "reply": "250 2.0.0 Ok: queued as 4C1F2",
                        "relay": "default",
                    }
                ],
                "subject": "Your order 1234",
                "tags": ["order"],
                "key_id": "k_7f3a9c",
                "attempts": 1,
                "accepted_at": "2026-01-05T09:30:11Z",
                "send_at": None,
                "sent_at": _AT,
                "failed_at": None,
                "canceled_at": None,
                "last_reply": "250 2.0.0 Ok: queued as 4C1F2",
                "source": "api",
            }
        ],
        "next_cursor": None,
    },
    "HistoryErased": {"to": "ann@example.org", "deleted": 3},
    "Error": {
        "error": {
            "code": "not_found",
            "message": "No webhook with id 'wh_3q2Jx0bY1m5Vv9cKp4sT7w'.",
            "fields": {"id": ["No such webhook."]},
        }
    },
}


def add_schema_examples(document: dict[str, Any]) -> None:
    """Put each example on its component schema."""
    schemas = document["components"]["schemas"]
    for name, example in SCHEMAS.items():
        if name in schemas:
            schemas[name]["example"] = example
