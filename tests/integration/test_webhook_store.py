"""The endpoint store against a real Redis: layout, secrets at rest, rotation, deletion."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from postbox.errors import EncryptionKeyMissing
from postbox.queue.keys import PostboxKeys
from postbox.webhooks.endpoints import Endpoint, EndpointStore
from postbox.webhooks.secret_box import SecretBox

T = TypeVar("T")
KEYS = PostboxKeys("email")
BOX = SecretBox("3c" * 32)


def run(redis_url: str, action: Callable[[EndpointStore], Awaitable[T]], box=BOX) -> T:
    """Run one store call on a fresh loop and client (the store is asyncio)."""

    async def main() -> T:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await action(EndpointStore(client, "email", box))
        finally:
            await client.aclose()

    return asyncio.run(main())


def create(redis_url: str, **kw: Any) -> tuple[Endpoint, str]:
    args = {"url": "https://hooks.example.com/in", "events": ("*",), **kw}
    return run(redis_url, lambda store: store.create(**args))


def test_create_keeps_the_endpoint_and_only_an_encrypted_secret(redis_url, redis_client):
    endpoint, secret = create(
        redis_url,
        events=("email.sent", "email.failed", "email.sent"),
        description="orders",
        owner="abc123",
        domains=("example.com",),
    )

    assert secret.startswith("whsec_")
    assert endpoint.events == ("email.sent", "email.failed")
    stored = redis_client.hgetall(KEYS.webhook(endpoint.id))
    assert secret not in json.dumps(stored)
    assert secret.removeprefix("whsec_") not in json.dumps(stored)
    assert BOX.decrypt(stored["secret"], endpoint.id) == secret
    assert json.loads(stored["domains"]) == ["example.com"]
    assert stored["owner"] == "abc123" and stored["enabled"] == "1"
    assert redis_client.zrange(KEYS.webhooks(), 0, -1) == [endpoint.id]
    assert run(redis_url, lambda s: s.get(endpoint.id)) == endpoint
    assert run(redis_url, lambda s: s.all()) == [endpoint]
    assert run(redis_url, lambda s: s.signing_secrets(endpoint.id)) == [secret]
    assert run(redis_url, lambda s: s.version()) == 1


def test_creating_an_endpoint_registers_the_webhooks_consumer_group(redis_url, redis_client):
    assert not redis_client.exists(KEYS.event_consumers())
    create(redis_url)
    create(redis_url)  # a second creation finds the group there and is fine
    assert redis_client.smembers(KEYS.event_consumers()) == {"webhooks"}
    groups = redis_client.xinfo_groups(KEYS.events())
    assert [group["name"] for group in groups] == ["webhooks"]


def test_without_a_box_nothing_that_needs_a_secret_is_done(redis_url, redis_client):
    with pytest.raises(EncryptionKeyMissing):
        run(redis_url, lambda s: s.create("https://a.example/", ("*",)), box=None)
    assert redis_client.keys("*") == []


def test_wants_follows_events_domains_and_enabled(redis_url):
    scoped, _ = create(redis_url, events=("email.sent",), domains=("example.com",))
    everything, _ = create(redis_url)

    assert scoped.wants("email.sent", "example.com")
    assert not scoped.wants("email.sent", "other.org")
    assert not scoped.wants("email.failed", "example.com")
    assert everything.wants("email.failed", "other.org")
    run(redis_url, lambda s: s.disable(everything.id, "410 Gone from the receiver"))
    disabled = run(redis_url, lambda s: s.get(everything.id))
    assert disabled is not None and not disabled.enabled
    assert disabled.disabled_reason == "410 Gone from the receiver"
    assert not disabled.wants("email.failed", "other.org")


def test_update_changes_fields_and_enabling_clears_the_reason(redis_url):
    endpoint, _ = create(redis_url)
    run(redis_url, lambda s: s.disable(endpoint.id, "410 Gone"))
    before = run(redis_url, lambda s: s.version())

    changed = run(
        redis_url,
        lambda s: s.update(
            endpoint.id, url="https://b.example/x", events=("email.sent",), enabled=True
        ),
    )

    assert changed is not None
    assert (changed.url, changed.events, changed.enabled) == (
        "https://b.example/x",
        ("email.sent",),
        True,
    )
    assert changed.disabled_reason is None
    assert changed.description == endpoint.description
    assert run(redis_url, lambda s: s.version()) == before + 1


def test_updates_and_rotations_of_a_missing_endpoint_create_nothing(redis_url, redis_client):
    missing = "wh_" + "x" * 22
    assert run(redis_url, lambda s: s.update(missing, url="https://a.example/")) is None
    assert run(redis_url, lambda s: s.rotate_secret(missing)) is None
    run(redis_url, lambda s: s.disable(missing, "gone"))
    assert run(redis_url, lambda s: s.get("../../etc")) is None
    assert redis_client.keys("*") == []


def test_rotation_signs_with_both_secrets_until_the_old_one_expires(redis_url, redis_client):
    endpoint, first = create(redis_url)

    rotated = run(redis_url, lambda s: s.rotate_secret(endpoint.id))
    assert rotated is not None
    second, until = rotated
    assert second != first and until.endswith("Z")
    assert run(redis_url, lambda s: s.signing_secrets(endpoint.id)) == [second, first]

    redis_client.hset(KEYS.webhook(endpoint.id), "previous_until_ms", "1")  # 24 h later
    assert run(redis_url, lambda s: s.signing_secrets(endpoint.id)) == [second]
    assert first not in json.dumps(redis_client.hgetall(KEYS.webhook(endpoint.id)))


def test_delete_removes_the_endpoint_and_its_deliveries(redis_url, redis_client):
    endpoint, _ = create(redis_url)
    kept, _ = create(redis_url)
    delivery = f"{endpoint.id}:evt_1-0"
    redis_client.zadd(KEYS.webhook_due(endpoint.id), {delivery: 1})
    redis_client.zadd(KEYS.webhook_failed(endpoint.id), {f"{endpoint.id}:evt_2-0": 1})
    redis_client.hset(KEYS.webhook_delivery(delivery), "attempts", "1")
    redis_client.lpush(KEYS.webhook_log(endpoint.id), "{}")

    assert run(redis_url, lambda s: s.delete(endpoint.id)) is True
    assert run(redis_url, lambda s: s.delete(endpoint.id)) is False

    assert run(redis_url, lambda s: s.all()) == [kept]
    for key in (
        KEYS.webhook(endpoint.id),
        KEYS.webhook_due(endpoint.id),
        KEYS.webhook_failed(endpoint.id),
        KEYS.webhook_log(endpoint.id),
        KEYS.webhook_delivery(delivery),
    ):
        assert not redis_client.exists(key), key
