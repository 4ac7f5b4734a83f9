"""A Python client for Postbox: send email, read statuses and dead letters, manage
the suppression list and webhooks, verify webhook deliveries.

    from postbox_client import Postbox
    postbox = Postbox("http://localhost:8080", "your-api-key")
    postbox.send(from_="shop@example.com", to="ann@example.org", subject="Hi", text="Hello")
"""

from __future__ import annotations

from postbox_client.async_client import AsyncPostbox
from postbox_client.client import Postbox
from postbox_client.errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
    Conflict,
    IdempotencyConflict,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PostboxError,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    UnsupportedMediaType,
    ValidationError,
    WebhookVerificationError,
)
from postbox_client.retries import RetryPolicy
from postbox_client.types import (
    Accepted,
    BatchResult,
    DeadLetter,
    DeadLetterPage,
    EmailStatus,
    Requeued,
    Suppression,
    SuppressionPage,
    UserReason,
    Webhook,
)
from postbox_client.version import VERSION as __version__
from postbox_client.webhooks import verify_webhook

__all__ = [
    "Accepted",
    "ApiError",
    "AsyncPostbox",
    "AuthenticationError",
    "BadRequest",
    "BatchResult",
    "Conflict",
    "DeadLetter",
    "DeadLetterPage",
    "EmailStatus",
    "IdempotencyConflict",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "Postbox",
    "PostboxError",
    "RateLimited",
    "Requeued",
    "RetryPolicy",
    "ServiceUnavailable",
    "Suppression",
    "SuppressionPage",
    "TransportError",
    "UnsupportedMediaType",
    "UserReason",
    "ValidationError",
    "Webhook",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]
