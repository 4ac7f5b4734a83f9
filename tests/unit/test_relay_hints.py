"""What to check for each way a relay cannot be used, from the error texts the workers
produce (postbox/workers/failures.py over aiosmtplib's and the OS's messages), and the
advice for `config` dead letters, and the worker's log line when a relay's circuit opens."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from postbox.errors import RelayUnavailable
from postbox.queue.advice import Figures, RelayFigures, advise
from postbox.queue.relay_hints import what_to_check
from postbox.workers.circuit import RelayCircuit
from postbox.workers.metrics import WorkerMetrics

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


def test_a_circuit_that_opens_logs_what_to_check(caplog: pytest.LogCaptureFixture) -> None:
    async def still_down() -> None:
        raise RelayUnavailable("Relay unreachable: [Errno 111] Connection refused")

    async def three_refusals() -> None:
        metrics = WorkerMetrics(CollectorRegistry()).for_relay("primary")
        circuit = RelayCircuit(still_down, address=ADDRESS, metrics=metrics, name="primary")
        for _ in range(3):
            circuit.record_failure(RelayUnavailable("Relay unreachable: Connection refused"))
        await asyncio.sleep(0)  # the recovery task logs, then waits for its first probe
        await circuit.close()

    with caplog.at_level(logging.WARNING, logger="postbox.workers.circuit"):
        asyncio.run(three_refusals())
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"Relay primary ({ADDRESS}) unavailable (3 failures in a row")
    assert f"Nothing accepts connections at {ADDRESS}" in line
