"""Sort aiosmtplib's errors into temporary (retry later) and permanent (dead letter).

The same split as dramatiq's Retries middleware, by SMTP reply class: 4xx may pass on another
attempt, 5xx on MAIL, RCPT or DATA will not. Failures of the relay itself (connection
refused or lost, timeouts, 421 "service not available") are `RelayUnavailable`: the email is
not at fault, so they postpone it without spending an attempt.
"""

from __future__ import annotations

import aiosmtplib

from postbox.errors import (
    DeliveryError,
    PermanentDeliveryError,
    RelayUnavailable,
    TemporaryDeliveryError,
)

SERVICE_NOT_AVAILABLE = 421


def classify(exc: Exception) -> DeliveryError:
    """The Postbox error for an exception raised while talking to the relay."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return from_reply(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentDeliveryError(f"The relay does not support what is needed: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError):
        return RelayUnavailable(f"Relay unreachable: {type(exc).__name__}: {exc}")
    return TemporaryDeliveryError(f"Unexpected error talking to the relay: {exc!r}")


def from_reply(code: int, message: str) -> DeliveryError:
    """The error for one negative SMTP reply."""
    text = f"{code} {message}".strip()
    if code == SERVICE_NOT_AVAILABLE:
        return RelayUnavailable(text, code)
    if 500 <= code < 600:
        return PermanentDeliveryError(text, code)
    return TemporaryDeliveryError(text, code)


def is_permanent(code: int) -> bool:
    """True for a reply code that no later attempt will change."""
    return 500 <= code < 600
