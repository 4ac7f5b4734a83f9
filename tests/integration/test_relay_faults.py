"""Relay faults that are nobody's email's fault: a refused SMTP password and a stalled relay.

Both postpone every email without spending an attempt, pause the worker while it probes,
and show in `GET /v1/queue/stats` (the workers' heartbeats carry their relay state) within
a heartbeat, with an advice entry; once the relay works again, everything is delivered
without a manual retry.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from postbox.dev.ports import free_port
from tests.integration.serving import scrape, total
from tests.support import wait_until

USER, PASSWORD = "postbox", "right-password-4f2a"
WRONG_PASSWORD = "wrong-password-9c1e"
FAST_BEAT = {"INSTANCE_HEARTBEAT_SECONDS": "1"}


def _post(api: Any, count: int, tag: str) -> list[str]:
    emails = [
        {"from": "s@example.com", "to": f"r{i}@example.org", "subject": f"{tag}-{i}", "text": "x"}
        for i in range(count)
    ]
    response = api.post("/v1/emails/batch", json={"emails": emails})
    assert response.status_code == 202
    return [item["id"] for item in response.json["data"]]


def _stats(api: Any) -> dict[str, Any]:
    stats: dict[str, Any] = api.get("/v1/queue/stats").json
    return stats


def _advice(stats: dict[str, Any], code: str) -> dict[str, Any] | None:
    return next((a for a in stats["advice"] if a["code"] == code), None)


def _worker_relays(stats: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        entry["relay"]
        for entry in stats["instances"]
        if entry.get("role") == "worker" and entry["health"] != "gone" and "relay" in entry
    ]


def _metrics_env(tmp_path: Path) -> tuple[dict[str, str], str]:
    port = free_port()
    env = {"METRICS_PORT": str(port), "HOST": "127.0.0.1", "TMPDIR": str(tmp_path)}
    return env, f"http://127.0.0.1:{port}/metrics"


def _scraped(url: str) -> Any:
    try:
        return scrape(url)
    except OSError:
        return None


@pytest.mark.smtp_auth(USER, PASSWORD)
def test_refused_smtp_password_postpones_every_email_until_a_worker_has_the_right_one(
    api, smtp_server, worker_factory, tmp_path
):
    ids = _post(api, 30, "auth")
    metrics_env, metrics_url = _metrics_env(tmp_path)
    wrong = worker_factory(
        SMTP_USERNAME=USER, SMTP_PASSWORD=WRONG_PASSWORD, **FAST_BEAT, **metrics_env
    )

    # The worker pauses like in an outage: circuit open, probing, the refusal named.
    stats = wait_until(
        lambda: (
            (s := _stats(api))["relay"]["config_error"]
            and _advice(s, "relay_config_error")
            and any(r["circuit"] == "open" and r["probes"] >= 1 for r in _worker_relays(s))
            and s
        ),
        timeout=30,
    )
    config_error = stats["relay"]["config_error"]
    assert config_error.startswith("SMTP authentication refused: 535 5.7.8")
    advice = _advice(stats, "relay_config_error")
    assert "SMTP_PASSWORD" in advice["message"]
    assert config_error in advice["message"]
    [relay] = _worker_relays(stats)
    assert relay["error_class"] == "auth"
    assert relay["postponed"] >= 1
    assert WRONG_PASSWORD not in json.dumps(stats)
    samples = wait_until(lambda: _scraped(metrics_url), timeout=10)
    assert total(samples, "postbox_relay_errors_total", reason="auth") >= 3
    assert total(samples, "postbox_relay_errors_total", reason="unavailable") == 0
    assert total(samples, "postbox_emails_total", outcome="failed") == 0

    # No email failed or spent an attempt, and the relay got nothing.
    assert stats["counts"]["failed"] == 0
    assert stats["dead_letters"]["by_class"] == {}
    for email_id in ids:
        status = api.get(f"/v1/emails/{email_id}").json
        assert status["status"] != "failed"
        assert status["attempts"] == 0
    assert smtp_server.received == []
    wrong.stop()
    assert WRONG_PASSWORD not in wrong.log()
    assert "refused the SMTP credentials" in wrong.log()

    # The right password, a fresh worker, and nothing else: every email goes out.
    worker_factory(SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD, **FAST_BEAT)
    wait_until(lambda: len(smtp_server.received) == 30, timeout=40)
    stats = wait_until(
        lambda: (s := _stats(api))["counts"]["completed"] == 30 and _worker_relays(s) and s,
        timeout=20,
    )
    assert stats["counts"]["failed"] == 0
    assert stats["relay"]["config_error"] is None
    assert [a["code"] for a in stats["advice"] if a["code"].startswith("relay_")] == []
    for email_id in ids:
        assert api.get(f"/v1/emails/{email_id}").json["attempts"] == 1


def test_stalled_relay_is_probed_at_once_and_advised_within_a_heartbeat(
    api, smtp_server, worker_factory
):
    first = _post(api, 20, "before")
    # One connection and many jobs: during the stall every send holds the connection for
    # its whole timeout, one after the other. A probe waiting for that connection would
    # run only after all of them (38 jobs x 2 s); a probe of its own runs within seconds.
    worker_factory(
        SMTP_POOL_SIZE="1",
        SMTP_TIMEOUT_SECONDS="2",
        EMAIL_WORKER_CONCURRENCY="40",
        **FAST_BEAT,
    )
    wait_until(lambda: len(smtp_server.received) == 20, timeout=30)
    smtp_server.handler.stalled = True
    stalled_at = time.monotonic()
    during = _post(api, 200, "during")

    stats = wait_until(lambda: (s := _stats(api)) and _advice(s, "relay_unavailable") and s)
    advised_after = time.monotonic() - stalled_at
    advice = _advice(stats, "relay_unavailable")
    assert f"{smtp_server.host}:{smtp_server.port}" in advice["message"]
    assert "postponed, not failed" in advice["message"]
    # Three sends time out one after the other (3 x 2 s), then one heartbeat (1 s).
    assert advised_after < 15, advised_after
    wait_until(
        lambda: any(r["probes"] >= 1 for r in _worker_relays(_stats(api))),
        timeout=max(1.0, 20 - (time.monotonic() - stalled_at)),
    )
    probed_after = time.monotonic() - stalled_at
    time.sleep(max(0.0, 20 - (time.monotonic() - stalled_at)))
    smtp_server.handler.stalled = False

    wait_until(lambda: len(smtp_server.received) >= 220, timeout=60)
    stats = wait_until(
        lambda: (s := _stats(api))["counts"]["completed"] == 220 and s["advice"] == [] and s,
        timeout=20,
    )
    assert stats["counts"]["failed"] == 0
    for email_id in first[:1] + during[:5]:
        assert api.get(f"/v1/emails/{email_id}").json["attempts"] == 1
    figures = {"advised_after_s": round(advised_after, 1), "probed_after_s": round(probed_after, 1)}
    print("relay-stall:", json.dumps(figures))


def test_relay_outage_is_advised_within_a_heartbeat_and_clears_after_it(
    api, smtp_server, worker_factory
):
    worker_factory(**FAST_BEAT)
    _post(api, 10, "before")
    wait_until(lambda: len(smtp_server.received) == 10, timeout=30)
    smtp_server.stop()
    stopped_at = time.monotonic()
    _post(api, 50, "during")

    stats = wait_until(lambda: (s := _stats(api)) and _advice(s, "relay_unavailable") and s)
    advised_after = time.monotonic() - stopped_at
    # Refused connections trip the circuit at once; the next heartbeat (1 s) carries it.
    assert advised_after < 5, advised_after
    assert stats["relay"]["workers"]["workers_down"] == 1
    assert "Connection" in stats["relay"]["workers"]["last_error"]
    assert stats["relay"]["config_error"] is None
    time.sleep(3)
    smtp_server.start()

    wait_until(lambda: len(smtp_server.received) >= 60, timeout=40)
    stats = wait_until(
        lambda: (s := _stats(api))["counts"]["completed"] == 60 and s["advice"] == [] and s,
        timeout=20,
    )
    assert stats["counts"]["failed"] == 0
    assert stats["relay"]["workers"]["workers_down"] == 0
