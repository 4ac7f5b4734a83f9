"""TLS and extension problems with the relay are sorted as the operator needs them."""

from __future__ import annotations

import ssl

import aiosmtplib
import pytest

from postbox.errors import (
    PermanentDeliveryError,
    RelayAuthFailed,
    RelayMisconfigured,
    RelayUnavailable,
)
from postbox.workers.failures import classify


def _verify_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "unable to get local issuer certificate"
    return error


def _wrapped(inner: Exception) -> aiosmtplib.SMTPConnectError:
    try:
        raise aiosmtplib.SMTPConnectError(f"Error connecting: {inner}") from inner
    except aiosmtplib.SMTPConnectError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (aiosmtplib.SMTPException("SMTP STARTTLS extension not supported by server."), "STARTTLS"),
        (_verify_error(), "unable to get local issuer certificate"),
        (_wrapped(_verify_error()), "SMTP_CA_FILE"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "TLS"),
    ],
)
def test_tls_that_cannot_work_as_configured_is_a_config_error(exc, words):
    error = classify(exc)

    assert isinstance(error, RelayMisconfigured)
    assert error.error_class == "config"
    assert words in str(error)


def test_a_connection_cut_during_the_handshake_is_an_outage():
    error = classify(_wrapped(ssl.SSLEOFError(8, "EOF occurred in violation of protocol")))

    assert isinstance(error, RelayUnavailable)


def test_smtputf8_not_offered_is_permanent_and_says_so():
    error = classify(aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server"))

    assert type(error) is PermanentDeliveryError
    assert error.error_class == "rejected"
    assert "SMTPUTF8" in str(error)


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (
            aiosmtplib.SMTPAuthenticationError(535, "5.7.8 Authentication credentials invalid"),
            "SMTP authentication refused: 535 5.7.8",
        ),
        (aiosmtplib.SMTPAuthenticationError(534, "5.7.9 Mechanism too weak"), "534"),
        (aiosmtplib.SMTPAuthenticationError(538, "5.7.11 Encryption required"), "538"),
        (
            aiosmtplib.SMTPSenderRefused(530, "5.7.0 Authentication required", "s@example.com"),
            "SMTP_USERNAME and SMTP_PASSWORD",
        ),
        (
            aiosmtplib.SMTPException("The SMTP AUTH extension is not supported by this server."),
            "does not offer AUTH",
        ),
    ],
)
def test_refused_credentials_postpone_like_an_outage_and_say_so(exc, words):
    error = classify(exc)

    assert isinstance(error, RelayAuthFailed)
    assert isinstance(error, RelayUnavailable)  # postponed, no attempt spent
    assert error.error_class == "auth"
    assert words in str(error)


def test_a_temporary_authentication_failure_is_an_outage_not_a_password_problem():
    error = classify(aiosmtplib.SMTPAuthenticationError(454, "4.7.0 Temporary failure"))

    assert type(error) is RelayUnavailable
    assert error.smtp_code == 454
