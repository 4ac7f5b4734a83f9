"""Postbox's own exceptions.

PostboxError
├── ConfigError          a setting in the environment is unusable
├── QueueUnavailable     Redis cannot be reached (or answered too slowly)
└── DeliveryError        one attempt to hand a message to the relay failed
    ├── TemporaryDeliveryError   worth another attempt (4xx on MAIL/RCPT/DATA)
    │   └── RelayUnavailable     the relay itself is down (refused, timed out, 421)
    └── PermanentDeliveryError   no attempt will succeed (5xx on MAIL/RCPT/DATA)
        └── RelayMisconfigured   the relay cannot be used as configured (TLS required but
                                 not offered, an untrusted certificate)

Each delivery error has an `error_class`: the word that starts a dead letter's reason
("rejected: 550 5.1.1 no such user") and that the dead-letter view filters by.
"""

from __future__ import annotations

from typing import ClassVar


class PostboxError(Exception):
    """Raised for every failure Postbox itself detects."""


class ConfigError(PostboxError):
    """Raised when an environment variable holds a value Postbox cannot use."""


class QueueUnavailable(PostboxError):
    """Raised when Redis, which holds the queue, cannot be reached in time."""


class DeliveryError(PostboxError):
    """Raised when one attempt to deliver a message to the SMTP relay fails."""

    error_class: ClassVar[str] = "internal"

    def __init__(self, message: str, smtp_code: int | None = None) -> None:
        super().__init__(message)
        self.smtp_code = smtp_code


class TemporaryDeliveryError(DeliveryError):
    """Raised when the relay failed in a way another attempt may get past."""

    error_class = "temporary"


class RelayUnavailable(TemporaryDeliveryError):
    """Raised when the relay cannot be reached or says it is not available (421)."""

    error_class = "unavailable"


class PermanentDeliveryError(DeliveryError):
    """Raised when the relay refused the message for good."""

    error_class = "rejected"


class RelayMisconfigured(PermanentDeliveryError):
    """Raised when the connection to the relay cannot be made as configured (no STARTTLS
    where it is required, a certificate that does not verify): an operator must act."""

    error_class = "config"
