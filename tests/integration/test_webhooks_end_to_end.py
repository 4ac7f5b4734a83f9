"""Webhooks end to end: emails posted to the API, delivered by a worker, their events sent by
a dispatcher to a real receiver that verifies every signature; faults on the way lose none."""

from __future__ import annotations

import signal
from collections import defaultdict
from typing import Any

from postbox.config import load_settings
from postbox.config.api_keys import config_entry
from postbox.dev.ports import free_port
from postbox.dev.redis_server import RedisServer
from tests.support import email_payload, sent_count, wait_until
from tests.webhook_support import create_endpoint

BATCH = 500
# A SIGKILLed worker never reports: short locks and send marks let its jobs' re-runs start
# within seconds (the defaults, 30 s and 120 s, would only slow the test down).
CRASH_ENV = {
    "EMAIL_LOCK_DURATION_MS": "5000",
    "EMAIL_STALLED_INTERVAL_MS": "2000",
    "EMAIL_SEND_MARK_SECONDS": "3",
}


def _post_batches(api: Any, count: int, tag: str, sender: str = "s@example.com") -> set[str]:
    ids: set[str] = set()
    for first in range(0, count, BATCH):
        emails = [
            email_payload(**{"from": sender}, to=f"r{i}@example.org", subject=f"{tag} {i}")
            for i in range(first, min(first + BATCH, count))
        ]
        response = api.post("/v1/emails/batch", json={"emails": emails})
        assert response.status_code == 202, response.json
        ids |= {item["id"] for item in response.json["data"]}
    return ids


def _events_by_email(route: Any) -> dict[str, list[dict[str, Any]]]:
    """The verified events each email got, in sequence order, one per webhook-id."""
    seen: set[str] = set()
    by_email: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for received in route.received:
        if received.verified and received.status == 200 and received.webhook_id not in seen:
            seen.add(received.webhook_id)
            payload = received.payload
            by_email[payload["data"]["email_id"]].append(payload)
    for events in by_email.values():
        events.sort(key=lambda e: e["data"]["sequence"])
    return by_email


def _types(by_email: dict[str, list[dict[str, Any]]], email_id: str) -> list[str]:
    return [event["type"] for event in by_email.get(email_id, [])]


def _queued_and_sent(route: Any, ids: set[str]) -> bool:
    """Every email in `ids` got exactly its email.queued, then its email.sent."""
    by_email = _events_by_email(route)
    return all(_types(by_email, i) == ["email.queued", "email.sent"] for i in ids)


def test_every_email_of_2000_has_its_queued_and_sent_events(
    api, redis_url, redis_client, smtp_server, worker_factory, dispatcher_factory, receiver
):
    endpoint, secret = create_endpoint(redis_url, receiver.url("all"))
    route = receiver.route("all", [secret])
    dispatcher_factory()
    ids = _post_batches(api, 2000, "e2e")
    worker_factory()

    wait_until(lambda: _queued_and_sent(route, ids), timeout=90)
    assert all(r.verified for r in route.received)
    duplicates = len(route.received) - len({r.webhook_id for r in route.received})
    print(f"{len(route.received)} deliveries for {2 * len(ids)} events, {duplicates} repeated")
    assert sent_count(redis_client) == 2000
    assert endpoint.id


def test_a_worker_killed_right_after_completing_loses_no_sent_event(
    api, redis_url, redis_client, smtp_server, worker_factory, dispatcher_factory, receiver
):
    _, secret = create_endpoint(redis_url, receiver.url("all"))
    route = receiver.route("all", [secret])
    dispatcher_factory()
    ids = _post_batches(api, 600, "kill")
    first = worker_factory(**CRASH_ENV)
    wait_until(lambda: sent_count(redis_client) >= 150, timeout=60)
    first.signal(signal.SIGKILL)
    first.wait(timeout=10)
    worker_factory(**CRASH_ENV)

    wait_until(
        lambda: all("email.sent" in _types(_events_by_email(route), i) for i in ids), timeout=60
    )
    assert sent_count(redis_client) == 600


def test_a_redis_restart_with_aof_loses_no_event(
    api_factory, service_env, dispatcher_factory, worker_factory, receiver, smtp_server, tmp_path
):
    redis = RedisServer(tmp_path / "aof", port=free_port(), appendonly=True, password="aof-test")
    redis.start()
    try:
        env = {**service_env, "REDIS_URL": redis.url}
        api = api_factory(load_settings(env))
        _, secret = create_endpoint(redis.url, receiver.url("all"))
        route = receiver.route("all", [secret])
        dispatcher_factory(REDIS_URL=redis.url)
        ids = _post_batches(api, 600, "aof")
        worker_factory(REDIS_URL=redis.url)
        wait_until(lambda: len(route.received) >= 300, timeout=60)
        redis.stop()
        redis.start()
        wait_until(lambda: _queued_and_sent(route, ids), timeout=60)
    finally:
        redis.stop()


def test_an_endpoint_of_a_restricted_key_gets_only_its_domains_events(
    api_factory, service_env, dispatcher_factory, worker_factory, receiver, smtp_server
):
    tenant, other = "tenant-key-0123456789abcdef", "other-key-0123456789abcdef"
    keys = f"{config_entry(tenant, ('tenant.example',))},{config_entry(other)}"
    env = {**service_env, "API_KEYS": keys, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}
    api = api_factory(load_settings(env))

    def as_key(key: str, path: str, body: dict[str, Any]) -> Any:
        return api.client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})

    routes = {}
    for name, key in (("tenant", tenant), ("all", other)):
        made = as_key(key, "/v1/webhooks", {"url": receiver.url(name), "events": ["*"]})
        assert made.status_code == 201, made.json
        routes[name] = receiver.route(name, [made.json["secret"]])
    dispatcher_factory()
    own = [
        as_key(
            tenant, "/v1/emails", email_payload(**{"from": "a@tenant.example"}, subject=f"o{i}")
        ).json["id"]
        for i in range(3)
    ]
    foreign = [
        as_key(
            other, "/v1/emails", email_payload(**{"from": "b@other.example"}, subject=f"f{i}")
        ).json["id"]
        for i in range(3)
    ]
    worker_factory()

    # The unrestricted key's endpoint gets all six; the tenant's only its own three.
    everything = own + foreign
    wait_until(
        lambda: all("email.sent" in _types(_events_by_email(routes["all"]), i) for i in everything)
    )
    wait_until(
        lambda: all("email.sent" in _types(_events_by_email(routes["tenant"]), i) for i in own)
    )
    assert {r.payload["data"]["email_id"] for r in routes["tenant"].received} == set(own)
