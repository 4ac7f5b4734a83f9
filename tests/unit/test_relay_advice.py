"""Several relays in the stats and the advice: each relay's state from the workers'
heartbeats, and advice that names the relay that is down and the ones carrying the mail."""

from __future__ import annotations

from typing import Any

from postbox.queue.advice import advise, figures
from postbox.queue.relay_health import relay_summary, relays_summary


def _state(name: str, circuit: str = "closed", **extra: Any) -> dict[str, Any]:
    failing = circuit != "closed"
    return {
        "name": name,
        "address": f"smtp.{name}.example:587",
        "circuit": circuit,
        "down_since": None,
        "down_seconds": 130.0 if failing else None,
        "consecutive_failures": 5 if failing else 0,
        "postponed": 0,
        "probes": 4 if failing else 0,
        "last_error": "Relay unreachable: ConnectionRefusedError" if failing else None,
        "error_class": "unavailable" if failing else None,
        "sends": 10,
        "failures": 5 if failing else 0,
        **extra,
    }


def _worker(*states: dict[str, Any]) -> dict[str, Any]:
    troubled = next((s for s in states if s["circuit"] != "closed"), states[0])
    return {
        "role": "worker",
        "health": "healthy",
        "last_seen_seconds": 0.5,
        "relay": troubled,
        "relays": list(states),
    }


def _stats(instances: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "counts": {"waiting": 0},
        "waiting_history": [],
        "throughput": {"sent": 600, "failed": 0},
        "cluster": {"roles": {"worker": {"processes": 2}}, "processes": {"gone": 0}},
        "relay": {"workers": relay_summary(instances), "relays": relays_summary(instances)},
    }


def test_each_relay_has_its_state_and_totals_over_the_workers():
    instances = [
        _worker(_state("primary"), _state("backup", "open")),
        _worker(_state("primary"), _state("backup", "half_open")),
    ]
    primary, backup = relays_summary(instances)
    assert (primary["name"], primary["status"], primary["sends"]) == ("primary", "healthy", 20)
    assert (backup["status"], backup["workers_down"], backup["failures"]) == ("open", 2, 10)
    assert backup["last_error"] == "Relay unreachable: ConnectionRefusedError"
    assert backup["down_seconds"] == 130.5


def test_a_relay_down_beside_a_healthy_one_is_advised_by_name():
    instances = [_worker(_state("primary"), _state("backup", "open"))]
    [advice] = advise(figures(_stats(instances), 0, None))
    assert advice.code == "relay_unavailable"
    assert advice.message.startswith(
        "Relay backup (smtp.backup.example:587) unreachable for 2 min "
        "(Relay unreachable: ConnectionRefusedError): mail is flowing through primary only."
    )


def test_a_refused_login_on_one_relay_names_it_and_the_relay_carrying_the_mail():
    refused = _state(
        "primary",
        "open",
        last_error="SMTP authentication refused: 535 5.7.8 bad",
        error_class="auth",
    )
    [advice] = advise(figures(_stats([_worker(refused, _state("backup"))]), 0, None))
    assert advice.code == "relay_config_error"
    assert "Relay primary (smtp.primary.example:587) refuses the SMTP credentials" in (
        advice.message
    )
    assert "mail is flowing through backup only" in advice.message


def test_the_single_default_relay_keeps_its_advice():
    [advice] = advise(figures(_stats([_worker(_state("default", "open"))]), 0, None))
    assert advice.code == "relay_unavailable"
    assert "emails are postponed, not failed" in advice.message
