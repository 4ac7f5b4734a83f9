"""Sort aiosmtplib's errors into temporary (retry later) and permanent (dead letter).

The same split as dramatiq's Retries middleware, by SMTP reply class: 4xx may pass on another
attempt, 5xx on MAIL, RCPT or DATA will not. Failures of the relay itself (connection
refused or lost, timeouts, 421 "service not available") are `RelayUnavailable`: the email is
not at fault, so they postpone it without spending an attempt.

A relay that cannot be used as configured (SMTP_SECURITY asks for TLS it does not offer, or
its certificate does not verify) is `RelayMisconfigured`: permanent, so the emails become
dead letters of class `config` that show in the queue stats, and nothing is ever sent in
plain text instead. Fix the configuration, then requeue them with
`postbox dlq retry --all --error-class config`.

A relay that refuses the credentials (535 to AUTH, 534 or 538 for the mechanism, 530
"authentication required" when none were given, or no AUTH offered at all while
SMTP_USERNAME is set) is `RelayAuthFailed`, an outage as far as the emails go: every email
would fail alike and none is at fault, so they are postponed, the worker pauses and probes,
and a worker restarted with the right password delivers them without a manual retry.
"""

from __future__ import annotations

import ssl

import aiosmtplib

from postbox.errors import (
    DeliveryError,
    PermanentDeliveryError,
    RelayAuthFailed,
    RelayMisconfigured,
    RelayUnavailable,
    TemporaryDeliveryError,
)

SERVICE_NOT_AVAILABLE = 421
AUTH_REQUIRED = 530
# RFC 4954: mechanism too weak, credentials invalid, encryption required for the mechanism.
AUTH_REFUSED = frozenset({534, 535, 538})
# TLS failures that mean the peer went away rather than that TLS is set up wrongly.
_TRANSIENT_TLS_ERRORS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


def classify(exc: Exception) -> DeliveryError:
    """The Postbox error for an exception raised while talking to the relay."""
    login = _login_problem(exc)
    if login is not None:
        return login
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return from_reply(exc.code, exc.message)
    misconfigured = _tls_misconfiguration(exc)
    if misconfigured is not None:
        return misconfigured
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return _not_supported(exc)
    if isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError):
        return RelayUnavailable(f"Relay unreachable: {type(exc).__name__}: {exc}")
    return TemporaryDeliveryError(f"Unexpected error talking to the relay: {exc!r}")


def from_reply(code: int, message: str) -> DeliveryError:
    """The error for one negative SMTP reply."""
    text = f"{code} {message}".strip()
    if code == SERVICE_NOT_AVAILABLE:
        return RelayUnavailable(text, code)
    if code == AUTH_REQUIRED:
        return RelayAuthFailed(
            f"SMTP authentication required by the relay: {text}; set SMTP_USERNAME and "
            "SMTP_PASSWORD",
            code,
        )
    if code in AUTH_REFUSED:
        return RelayAuthFailed(f"SMTP authentication refused: {text}", code)
    if 500 <= code < 600:
        return PermanentDeliveryError(text, code)
    return TemporaryDeliveryError(text, code)


def _login_problem(exc: Exception) -> DeliveryError | None:
    """The error for a login that failed in a way `from_reply` cannot tell from the code."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError) and exc.code < 500:
        # 454 "temporary authentication failure": the relay's trouble, not the password's.
        text = f"{exc.code} {exc.message}"
        return RelayUnavailable(f"SMTP authentication failed for now: {text}", exc.code)
    if type(exc) is aiosmtplib.SMTPException and "AUTH extension" in str(exc):
        # aiosmtplib checks EHLO before logging in: "The SMTP AUTH extension is not supported".
        return RelayAuthFailed(
            "SMTP authentication impossible: SMTP_USERNAME is set but the relay does not offer AUTH"
        )
    return None


def is_permanent(code: int) -> bool:
    """True for a reply code that no later attempt will change."""
    return 500 <= code < 600


def _tls_misconfiguration(exc: Exception) -> RelayMisconfigured | None:
    """The configuration error behind `exc`, if TLS to the relay cannot work as configured."""
    if type(exc) is aiosmtplib.SMTPException and "STARTTLS" in str(exc):
        # aiosmtplib checks EHLO before upgrading: "SMTP STARTTLS extension not supported".
        return RelayMisconfigured(
            "SMTP_SECURITY=starttls but the relay does not offer STARTTLS; "
            "nothing was sent without TLS"
        )
    cause = _ssl_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return RelayMisconfigured(
            f"The relay's TLS certificate did not verify ({cause.verify_message}); "
            "set SMTP_CA_FILE to the CA that signed it, or fix SMTP_HOST"
        )
    if cause is not None and not isinstance(cause, _TRANSIENT_TLS_ERRORS):
        # `reason` is OpenSSL's short code (WRONG_VERSION_NUMBER); not every SSLError has one.
        reason = getattr(cause, "reason", None) or cause
        return RelayMisconfigured(f"TLS with the relay failed: {reason}")
    return None


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The `ssl.SSLError` that `exc` is or wraps (aiosmtplib wraps it on connect)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None or isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _not_supported(exc: aiosmtplib.SMTPNotSupported) -> PermanentDeliveryError:
    if "SMTPUTF8" in str(exc):
        return PermanentDeliveryError(
            "The relay does not offer SMTPUTF8, which this email's non-ASCII address needs"
        )
    return PermanentDeliveryError(f"The relay does not support what is needed: {exc}")
