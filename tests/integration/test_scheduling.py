"""`send_at` in the future makes a delayed job: shown as scheduled, delivered after, not before."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.support import email_payload, wait_until


def test_email_with_future_send_at_is_delivered_after_it(api, smtp_server, worker_factory):
    worker_factory()
    send_at = datetime.now(UTC) + timedelta(seconds=3)
    response = api.post("/v1/emails", json=email_payload(send_at=send_at.isoformat()))
    assert response.status_code == 202
    assert response.json["status"] == "scheduled"
    assert api.get(f"/v1/emails/{response.json['id']}").json["status"] == "scheduled"

    [received] = wait_until(lambda: smtp_server.received, timeout=30)
    assert received.at >= send_at.timestamp()
    assert received.at < send_at.timestamp() + 5
    assert api.get(f"/v1/emails/{response.json['id']}").json["status"] == "sent"


def test_send_at_in_the_past_sends_now(api, smtp_server, worker_factory):
    worker_factory()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    response = api.post("/v1/emails", json=email_payload(send_at=past))
    assert response.json["status"] == "queued"
    started = time.time()
    wait_until(lambda: smtp_server.received, timeout=10)
    assert time.time() - started < 5
