"""A relay the workers cannot use gets advice that says what to check: a real refused port
(nothing listens: emails postponed, the circuit open) and a real server that speaks plain
SMTP to a worker set for TLS from the first byte (a TLS mismatch: `config` dead letters)."""

from __future__ import annotations

from typing import Any

from postbox.dev.ports import free_port
from tests.support import email_payload, wait_until
from tests.tls_support import running_relay

FAST_BEAT = {"INSTANCE_HEARTBEAT_SECONDS": "1"}


def _post(api: Any, count: int) -> list[str]:
    ids = []
    for i in range(count):
        response = api.post("/v1/emails", json={**email_payload(), "subject": f"hint-{i}"})
        assert response.status_code == 202
        ids.append(response.json["id"])
    return ids


def _advice(api: Any, code: str) -> dict[str, Any] | None:
    advice = api.get("/v1/queue/stats").json["advice"]
    return next((a for a in advice if a["code"] == code), None)


def test_refused_port_advice_says_nothing_listens_there(api, worker_factory):
    port = free_port()
    ids = _post(api, 3)  # three refused sends open the circuit
    worker_factory(SMTP_HOST="127.0.0.1", SMTP_PORT=str(port), **FAST_BEAT)

    advice = wait_until(lambda: _advice(api, "relay_unavailable"), timeout=30)
    assert "Connection refused" in advice["message"]
    assert f"Nothing accepts connections at 127.0.0.1:{port}" in advice["message"]
    assert "SMTP_HOST and SMTP_PORT" in advice["message"]
    assert _advice(api, "relay_misconfigured") is None
    assert api.get(f"/v1/emails/{ids[0]}").json["status"] != "failed"  # postponed


def test_tls_to_a_plain_relay_advice_says_check_smtp_security(api, worker_factory):
    with running_relay() as plain:
        ids = _post(api, 2)
        worker_factory(**plain.env(SMTP_SECURITY="tls"), **FAST_BEAT)

        advice = wait_until(lambda: _advice(api, "relay_misconfigured"), timeout=30)
        assert advice["value"] >= 1
        assert "WRONG_VERSION_NUMBER" in advice["message"]
        assert "Check SMTP_SECURITY against the relay's port" in advice["message"]
        assert "postbox dlq retry --all --error-class config" in advice["message"]
        assert plain.received == []  # nothing went in plain text instead
        statuses = [api.get(f"/v1/emails/{i}").json for i in ids]
        assert {(s["status"], s["error_class"]) for s in statuses} == {("failed", "config")}
