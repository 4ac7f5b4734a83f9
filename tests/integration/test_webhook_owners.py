"""Webhook endpoints follow their owner keys: a key's new domains reach its endpoints when an
API process starts, a removed key's endpoints stop taking events (and come back with the
key), and one key cannot make endpoints without bound. Flask app and real Redis."""

from __future__ import annotations

from typing import Any

from postbox.api.webhooks import MAX_WEBHOOKS_PER_KEY, sync_owners_at_start
from postbox.config import key_digest, load_settings
from postbox.webhooks.endpoints import OWNER_KEY_GONE
from tests.support import API_KEY, TEST_ENCRYPTION_KEY

HOOKS = "/v1/webhooks"
PUBLIC_URL = "https://93.184.215.14/hooks/postbox"
ADMIN_KEY = "admin-key-0123456789abcdef"


def _api(api_factory: Any, service_env: dict[str, str], keys: str) -> Any:
    env = {"ENCRYPTION_KEY": TEST_ENCRYPTION_KEY, "API_KEYS": keys}
    return api_factory(load_settings({**service_env, **env}))


def _restricted(domains: str) -> str:
    """API_KEYS with the test's key restricted to `domains` and an unrestricted admin key."""
    return f"sha256:{key_digest(API_KEY)}@{domains},{ADMIN_KEY}"


def _endpoint(api: Any, endpoint_id: str) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    found = api.get(f"{HOOKS}/{endpoint_id}", headers=admin)
    assert found.status_code == 200, found.json
    body: dict[str, Any] = found.json
    return body


def test_a_keys_new_domains_reach_its_endpoints_at_start(api_factory, service_env):
    before = _api(api_factory, service_env, _restricted("example.com"))
    made = before.post(HOOKS, json={"url": PUBLIC_URL, "events": ["*"]}).json
    assert made["domains"] == ["example.com"]

    after = _api(api_factory, service_env, _restricted("example.org|example.net"))
    sync_owners_at_start(after.app)

    assert _endpoint(after, made["id"])["domains"] == ["example.org", "example.net"]


def test_a_removed_keys_endpoints_are_disabled_and_return_with_the_key(api_factory, service_env):
    with_key = _api(api_factory, service_env, _restricted("example.com"))
    made = with_key.post(HOOKS, json={"url": PUBLIC_URL, "events": ["*"]}).json

    without_key = _api(api_factory, service_env, ADMIN_KEY)
    sync_owners_at_start(without_key.app)
    gone = _endpoint(without_key, made["id"])
    assert (gone["enabled"], gone["disabled_reason"]) == (False, OWNER_KEY_GONE)

    sync_owners_at_start(with_key.app)
    back = _endpoint(with_key, made["id"])
    assert (back["enabled"], back["disabled_reason"]) == (True, None)


def test_an_endpoint_disabled_for_another_reason_stays_disabled(api_factory, service_env):
    api = _api(api_factory, service_env, _restricted("example.com"))
    made = api.post(HOOKS, json={"url": PUBLIC_URL, "events": ["*"]}).json
    patched = api.client.patch(f"{HOOKS}/{made['id']}", json={"enabled": False}, headers=api.auth)
    assert patched.status_code == 200

    sync_owners_at_start(api.app)

    assert _endpoint(api, made["id"])["enabled"] is False


def test_one_key_may_own_only_so_many_endpoints(api_factory, service_env):
    api = _api(api_factory, service_env, _restricted("example.com"))
    for _ in range(MAX_WEBHOOKS_PER_KEY):
        assert api.post(HOOKS, json={"url": PUBLIC_URL, "events": ["*"]}).status_code == 201

    refused = api.post(HOOKS, json={"url": PUBLIC_URL, "events": ["*"]})

    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "webhook_limit_reached"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    other = api.post(HOOKS, json={"url": PUBLIC_URL, "events": ["*"]}, headers=admin)
    assert other.status_code == 201
