"""A connection lost after the message was written is an unknown outcome, never an instant
resend; one lost before anything of the message reached the relay is resent at once.

Each relay counts what it received: a relay that commits a message and then drops the
connection before answering the final `.` must get it once in that attempt, and again only
on the EMAIL_BACKOFF_MS schedule, with the attempt history saying the outcome was unknown.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from postbox.config import load_settings
from postbox.dev.ports import free_port
from tests.integration.serving import scrape, total
from tests.relay_support import DroppingHandler, HangingUpHandler, relay
from tests.support import email_payload, wait_until

BACKOFF_MS = 3000


@pytest.fixture
def api(api_factory, service_env):
    """The API, enqueuing with a backoff long enough to tell a retry from a resend."""
    return api_factory(load_settings({**service_env, "EMAIL_BACKOFF_MS": str(BACKOFF_MS)}))


def _worker_env(port: int, tmp_path: Path) -> tuple[dict[str, str], str]:
    metrics_port = free_port()
    env = {
        "SMTP_PORT": str(port),
        "SMTP_POOL_SIZE": "1",  # one connection: the second message reuses it
        "METRICS_PORT": str(metrics_port),
        "HOST": "127.0.0.1",
        "TMPDIR": str(tmp_path),
    }
    return env, f"http://127.0.0.1:{metrics_port}/metrics"


def _post(api: Any, to: str) -> str:
    response = api.post("/v1/emails", json=email_payload(to=[to]))
    assert response.status_code == 202, response.json
    email_id: str = response.json["id"]
    return email_id


def _to(server: Any, address: str) -> list[float]:
    """When the relay took each message for `address`."""
    return [r.at for r in server.received if address in r.rcpt_tos]


def test_relay_that_hangs_up_after_the_message_gets_it_once_then_again_after_the_backoff(
    api, worker_factory, tmp_path
):
    handler = HangingUpHandler()
    with relay(handler) as server:
        env, metrics_url = _worker_env(server.port, tmp_path)
        worker_factory(**env)
        _post(api, "warm@example.org")
        wait_until(lambda: _to(server, "warm@example.org"), timeout=30)
        handler.hang_ups = 1
        email_id = _post(api, "lost@example.org")

        [first] = wait_until(lambda: _to(server, "lost@example.org"), timeout=30)
        status = wait_until(
            lambda: (s := api.get(f"/v1/emails/{email_id}").json)["history"] and s, timeout=10
        )
        assert status["status"] == "retrying"
        [attempt] = status["history"]
        assert attempt["outcome"] == "unknown_outcome"
        assert attempt["attempt"] == 1
        assert "Outcome unknown" in attempt["error"]
        # Not sent again on a new connection within the attempt: the second copy comes
        # only with the next attempt, after the backoff (jittered down to half at most).
        time.sleep(0.5)
        assert len(_to(server, "lost@example.org")) == 1

        sent = wait_until(
            lambda: (s := api.get(f"/v1/emails/{email_id}").json)["status"] == "sent" and s,
            timeout=30,
        )
        first_again, second = _to(server, "lost@example.org")
        assert first_again == first
        assert second - first >= BACKOFF_MS / 2000
        assert [a["outcome"] for a in sent["history"]] == ["unknown_outcome", "sent"]
        assert sent["attempts"] == 2
        samples = scrape(metrics_url)
        assert (
            total(samples, "postbox_emails_total", outcome="retried", reason="unknown_outcome") == 1
        )
        assert total(samples, "postbox_emails_total", outcome="postponed") == 0


def test_relay_that_drops_before_the_message_gets_it_at_once_on_a_new_connection_once(
    api, worker_factory, tmp_path
):
    handler = DroppingHandler()
    with relay(handler) as server:
        env, metrics_url = _worker_env(server.port, tmp_path)
        worker_factory(**env)
        _post(api, "warm@example.org")
        wait_until(lambda: _to(server, "warm@example.org"), timeout=30)
        handler.drops = 1
        posted = time.time()
        email_id = _post(api, "again@example.org")

        sent = wait_until(
            lambda: (s := api.get(f"/v1/emails/{email_id}").json)["status"] == "sent" and s,
            timeout=30,
        )
        [at] = _to(server, "again@example.org")
        assert at - posted < BACKOFF_MS / 2000  # at once, not on the retry schedule
        assert sent["attempts"] == 1
        assert [a["outcome"] for a in sent["history"]] == ["sent"]
        time.sleep(0.5)
        assert len(_to(server, "again@example.org")) == 1
        samples = scrape(metrics_url)
        assert total(samples, "postbox_smtp_reconnects_total") == 1
        assert total(samples, "postbox_emails_total", outcome="retried") == 0
