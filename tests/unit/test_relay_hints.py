"""What to check for each way a relay cannot be used, from the error texts the workers
produce (postbox/workers/failures.py over aiosmtplib's and the OS's messages), and the
advice for `config` dead letters."""

from __future__ import annotations

import pytest

from postbox.queue.advice import Figures, RelayFigures, advise
from postbox.queue.relay_hints import what_to_check

ADDRESS = "smtp.example.net:587"


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            "Relay unreachable: SMTPConnectError: Error connecting to smtp.example.net on port "
            "587: [Errno 111] Connection refused",
            f"Nothing accepts connections at {ADDRESS}",
        ),
        (
            "Relay unreachable: SMTPConnectError: Error connecting to relay.invalid on port 25: "
            "[Errno -2] Name or service not known",
            "host name does not resolve",
        ),
        (
            "Relay unreachable: SMTPConnectError: Error connecting to mailpit on port 1025: "
            "[Errno -3] Temporary failure in name resolution",
            "host name does not resolve",
        ),
        (
            "Relay unreachable: SMTPConnectTimeoutError: Timed out connecting to "
            "smtp.example.net on port 587",
            f"Connections to {ADDRESS} time out",
        ),
        ("TLS with the relay failed: WRONG_VERSION_NUMBER", "Check SMTP_SECURITY"),
        (
            "The relay's TLS certificate did not verify (unable to get local issuer "
            "certificate); set SMTP_CA_FILE to the CA that signed it, or fix SMTP_HOST",
            "SMTP_CA_FILE",
        ),
        ("SMTP authentication refused: 535 5.7.8 Bad credentials", "SMTP_PASSWORD"),
        (
            "Relay unreachable: OSError: [Errno 101] Network is unreachable",
            f"no route to {ADDRESS}",
        ),
        ("Relay unreachable: SMTPServerDisconnected: Unexpected EOF", "the network to it"),
        (None, "the network to it"),
    ],
)
def test_each_failure_points_at_its_setting(error: str | None, words: str) -> None:
    assert words in what_to_check(error, ADDRESS)


def _figures(**relay: object) -> Figures:
    return Figures(
        now_ms=0,
        waiting=0,
        waiting_history=[],
        sent_last_minute=0,
        failed_last_minute=0,
        live_workers=1,
        gone_processes=0,
        rate_limit_per_second=None,
        relay=RelayFigures(**relay),  # type: ignore[arg-type]
    )


def test_config_dead_letters_are_advised_with_what_to_check_and_the_requeue() -> None:
    [advice] = advise(
        _figures(config_dead_letters=3, config_error="TLS with the relay failed: BAD")
    )
    assert (advice.code, advice.value) == ("relay_misconfigured", 3)
    assert "(TLS with the relay failed: BAD)" in advice.message
    assert "Check SMTP_SECURITY" in advice.message
    assert advice.message.endswith("`postbox dlq retry --all --error-class config`.")
    assert advise(_figures()) == []


def test_an_unreachable_relay_is_advised_with_what_to_check() -> None:
    refused = "Relay unreachable: [Errno 111] Connection refused"
    [advice] = advise(
        _figures(address=ADDRESS, down_workers=1, down_seconds=26.0, last_error=refused)
    )
    assert advice.code == "relay_unavailable"
    assert f"unreachable for 26 s ({refused})" in advice.message
    assert f"Nothing accepts connections at {ADDRESS}" in advice.message
