"""Sort aiosmtplib's errors into temporary (retry later) and permanent (dead letter).

The same split as dramatiq's Retries middleware, by SMTP reply class: 4xx, timeouts and lost
connections may pass on another attempt; 5xx on MAIL, RCPT or DATA will not.
"""

from __future__ import annotations

import aiosmtplib

from postbox.errors import DeliveryError, PermanentDeliveryError, TemporaryDeliveryError


def classify(exc: Exception) -> DeliveryError:
    """The Postbox error for an exception raised while talking to the relay."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return _recipients_refused(exc)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return from_reply(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return TemporaryDeliveryError(f"Timed out talking to the relay: {exc}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentDeliveryError(f"The relay does not support what is needed: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException | OSError):
        return TemporaryDeliveryError(f"Connection to the relay failed: {exc}")
    return TemporaryDeliveryError(f"Unexpected error talking to the relay: {exc!r}")


def from_reply(code: int, message: str) -> DeliveryError:
    """The error for one negative SMTP reply."""
    text = f"{code} {message}".strip()
    if 500 <= code < 600:
        return PermanentDeliveryError(text, code)
    return TemporaryDeliveryError(text, code)


def _recipients_refused(exc: aiosmtplib.SMTPRecipientsRefused) -> DeliveryError:
    replies = [(r.code, f"{r.recipient}: {r.code} {r.message}") for r in exc.recipients]
    text = "All recipients refused: " + "; ".join(reply for _, reply in replies)
    if all(500 <= code < 600 for code, _ in replies):
        return PermanentDeliveryError(text, replies[0][0])
    return TemporaryDeliveryError(text, min(code for code, _ in replies))
