"""The payloads the real event stream produces match the schemas the OpenAPI document gives
receivers: every event type, made the real way (API, worker, SMTP replies, dead-letter retry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postbox.api.webhook_responses import EVENT_PAYLOADS, payload_schema
from postbox.config import load_settings
from postbox.queue.events import EVENT_TYPES, parse_entry
from postbox.queue.keys import PostboxKeys
from tests.support import email_payload, wait_until

KEYS = PostboxKeys("email")
BAD = "bad@example.org"
BUSY = "busy@example.org"


@pytest.mark.smtp_replies(rcpt={BAD: "550 5.1.1 no such user", BUSY: "450 4.2.1 busy"})
def test_every_event_type_matches_its_documented_payload(
    api_factory, service_env, redis_client, smtp_server, worker_factory
):
    api = api_factory(load_settings({**service_env, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}))
    # A closed local port: whatever delivers the events sends nothing anywhere real.
    created = api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/", "events": ["*"]})
    assert created.status_code == 201, created.json  # registers the stream's consumer group
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for payload in (
        email_payload(to="ok@example.org", tags=["t1"]),
        email_payload(to=BAD),
        email_payload(to=BUSY),
        email_payload(send_at=later, subject="later"),
        email_payload(send_at=later, subject="canceled"),
    ):
        posted = api.post("/v1/emails", json=payload)
        assert posted.status_code == 202
    assert api.post(f"/v1/emails/{posted.json['id']}/cancel").status_code == 200
    worker_factory(EMAIL_MAX_ATTEMPTS="2")
    wait_until(lambda: redis_client.zcard("bull:email:failed") == 2)
    for email_id in redis_client.zrange("bull:email:failed", 0, -1):
        assert api.post(f"/v1/dead-letters/{email_id}/retry").status_code == 202

    def seen() -> set[str]:
        return {fields["type"] for _, fields in redis_client.xrange(KEYS.events())}

    wait_until(lambda: seen() >= set(EVENT_TYPES))
    for entry_id, fields in redis_client.xrange(KEYS.events()):
        event = parse_entry(entry_id, fields)
        schema = payload_schema(event.type, EVENT_PAYLOADS[event.type][1])()
        schema.load(event.payload())  # raises, naming the field, if it drifted
