"""The synchronous feed: a relay's 5xx saying a mailbox does not exist suppresses that
recipient (hard_bounce, with the email and the reply as evidence), in the email's scope;
policy refusals (5.7.x) do not, unless configured. Real worker, real SMTP server."""

from __future__ import annotations

import pytest

from postbox.config import key_digest, load_settings
from tests.support import API_KEY, email_payload, wait_until

GONE = "gone@example.org"
SPAM = "strict@example.org"
OK = "ok@example.org"
REPLIES = {GONE: "550 5.1.1 <gone@example.org>: User unknown", SPAM: "550 5.7.1 Spam"}


def _entries(api, **query: str) -> list[dict]:
    path = "/v1/suppressions" + (
        "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    )
    return api.get(path).json["data"]


@pytest.mark.smtp_replies(rcpt=REPLIES)
def test_a_mailbox_that_does_not_exist_is_suppressed_and_not_tried_again(
    api, redis_client, smtp_server, worker_factory
):
    first = api.post("/v1/emails", json=email_payload(to=[OK, GONE, SPAM])).json
    worker_factory(SUPPRESS_ON_HARD_REFUSALS="true")
    wait_until(lambda: api.get(f"/v1/emails/{first['id']}").json["status"] == "sent")

    [entry] = _entries(api)
    assert entry["address"] == GONE
    assert entry["reason"] == "hard_bounce"
    assert entry["scope"] == "*"
    assert entry["email_id"] == first["id"]
    assert "5.1.1" in entry["evidence"]
    second = api.post("/v1/emails", json=email_payload(to=[GONE, OK], subject="again")).json
    assert second["suppressed"] == [GONE]


@pytest.mark.smtp_replies(rcpt=REPLIES)
def test_policy_refusals_suppress_when_configured(
    api_factory, service_env, smtp_server, worker_factory
):
    api = api_factory(load_settings(service_env))
    email = api.post("/v1/emails", json=email_payload(to=[SPAM])).json
    worker_factory(SUPPRESS_ON_HARD_REFUSALS="true", SUPPRESS_ON_POLICY_REFUSALS="true")
    wait_until(lambda: _entries(api))

    [entry] = _entries(api)
    assert (entry["address"], entry["reason"], entry["email_id"]) == (
        SPAM,
        "hard_bounce",
        email["id"],
    )


@pytest.mark.smtp_replies(rcpt=REPLIES)
def test_an_automatic_entry_takes_the_scope_of_a_restricted_key(
    api_factory, service_env, smtp_server, worker_factory
):
    keys = f"sha256:{key_digest(API_KEY)}@example.com"
    api = api_factory(load_settings({**service_env, "API_KEYS": keys}))
    api.post("/v1/emails", json=email_payload(to=[GONE]))
    worker_factory(API_KEYS=keys, SUPPRESS_ON_HARD_REFUSALS="true")
    wait_until(lambda: _entries(api))

    [entry] = _entries(api)
    assert entry["scope"] == "example.com"


@pytest.mark.smtp_replies(rcpt=REPLIES)
def test_the_feed_can_be_turned_off(api, smtp_server, worker_factory):
    email = api.post("/v1/emails", json=email_payload(to=[GONE, OK])).json
    worker_factory(SUPPRESS_ON_HARD_REFUSALS="false")
    wait_until(lambda: api.get(f"/v1/emails/{email['id']}").json["status"] == "sent")

    assert _entries(api) == []
