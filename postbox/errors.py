"""Postbox's own exceptions.

PostboxError
├── ConfigError          a setting in the environment is unusable
├── QueueUnavailable     Redis cannot be reached (or answered too slowly)
└── DeliveryError        one attempt to hand a message to the relay failed
    ├── TemporaryDeliveryError   worth another attempt (4xx, timeouts, disconnects)
    └── PermanentDeliveryError   no attempt will succeed (5xx on MAIL/RCPT/DATA)
"""

from __future__ import annotations


class PostboxError(Exception):
    """Raised for every failure Postbox itself detects."""


class ConfigError(PostboxError):
    """Raised when an environment variable holds a value Postbox cannot use."""


class QueueUnavailable(PostboxError):
    """Raised when Redis, which holds the queue, cannot be reached in time."""


class DeliveryError(PostboxError):
    """Raised when one attempt to deliver a message to the SMTP relay fails."""

    def __init__(self, message: str, smtp_code: int | None = None) -> None:
        super().__init__(message)
        self.smtp_code = smtp_code


class TemporaryDeliveryError(DeliveryError):
    """Raised when the relay failed in a way another attempt may get past."""


class PermanentDeliveryError(DeliveryError):
    """Raised when the relay refused the message for good."""
