"""TLS to the relay: certificates and host names are verified, and TLS is never given up.

A relay whose certificate does not verify, or that does not offer STARTTLS when
SMTP_SECURITY=starttls asks for it, gets nothing (not even in plain text): the email becomes
a dead letter of class `config`, and the queue stats show the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import email_payload, wait_until
from tests.tls_support import PrivateCa, make_ca, running_relay


@pytest.fixture
def ca(tmp_path: Path) -> PrivateCa:
    return make_ca(tmp_path)


def _finished(api, email_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = api.get(f"/v1/emails/{email_id}").json
        return status if status["status"] in {"sent", "failed"} else None

    result: dict[str, Any] = wait_until(done)
    return result


def _send(api, worker_factory, env: dict[str, str]) -> dict[str, Any]:
    created = api.post("/v1/emails", json=email_payload()).json
    worker_factory(**env)
    return _finished(api, created["id"])


def _assert_config_dead_letter(api, status: dict[str, Any], words: str) -> None:
    assert status["status"] == "failed"
    assert status["error_class"] == "config"
    assert words in status["last_error"]
    assert status["attempts"] == 1
    [dead] = api.get("/v1/dead-letters?error_class=config").json["data"]
    assert dead["id"] == status["id"]
    stats = api.get("/v1/queue/stats").json
    assert stats["dead_letters"]["by_class"] == {"config": 1}
    assert words in stats["relay"]["config_error"]


def test_starttls_relay_with_a_certificate_from_an_unknown_ca_gets_nothing(api, worker_factory, ca):
    with running_relay(starttls=ca.server_context("127.0.0.1")) as relay:
        status = _send(api, worker_factory, relay.env(SMTP_SECURITY="starttls"))

        assert relay.received == []
    _assert_config_dead_letter(api, status, "certificate did not verify")


def test_starttls_relay_is_trusted_with_its_ca_file(api, worker_factory, ca):
    with running_relay(starttls=ca.server_context("127.0.0.1", "localhost")) as relay:
        env = relay.env(SMTP_SECURITY="starttls", SMTP_CA_FILE=str(ca.ca_file))
        status = _send(api, worker_factory, env)

        # The server requires STARTTLS before MAIL: accepting the email proves TLS was on.
        assert status["status"] == "sent"
        [received] = relay.received
        assert received.message["Subject"] == "Hello"


def test_implicit_tls_relay_is_refused_without_its_ca_and_used_with_it(api, worker_factory, ca):
    with running_relay(implicit_tls=ca.server_context("127.0.0.1")) as relay:
        created = api.post("/v1/emails", json=email_payload(subject="Without")).json
        without_ca = worker_factory(**relay.env(SMTP_SECURITY="tls"))
        assert _finished(api, created["id"])["error_class"] == "config"
        assert relay.received == []
        without_ca.stop()

        env = relay.env(SMTP_SECURITY="tls", SMTP_CA_FILE=str(ca.ca_file))
        created = api.post("/v1/emails", json=email_payload(subject="With the CA")).json
        worker_factory(**env)
        assert _finished(api, created["id"])["status"] == "sent"
        assert [r.message["Subject"] for r in relay.received] == ["With the CA"]


def test_certificate_for_another_host_name_is_refused_even_from_a_trusted_ca(
    api, worker_factory, ca
):
    with running_relay(starttls=ca.server_context("mail.example.com")) as relay:
        env = relay.env(SMTP_SECURITY="starttls", SMTP_CA_FILE=str(ca.ca_file))
        status = _send(api, worker_factory, env)

        assert relay.received == []
    _assert_config_dead_letter(api, status, "certificate did not verify")
    assert "mismatch" in status["last_error"] or "match" in status["last_error"]


def test_relay_without_starttls_under_starttls_is_a_configuration_error(
    api, worker_factory, smtp_server
):
    status = _send(api, worker_factory, {"SMTP_SECURITY": "starttls"})

    assert smtp_server.received == []  # never fell back to plain text
    _assert_config_dead_letter(api, status, "does not offer STARTTLS")
