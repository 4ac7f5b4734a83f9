"""TLS and extension problems with the relay are sorted as the operator needs them."""

from __future__ import annotations

import ssl

import aiosmtplib
import pytest

from postbox.errors import PermanentDeliveryError, RelayMisconfigured, RelayUnavailable
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
