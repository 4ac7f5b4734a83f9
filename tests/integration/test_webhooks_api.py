"""`/v1/webhooks` through the Flask app with the real Redis: secrets shown once and kept
encrypted, the SSRF rule, ENCRYPTION_KEY required, and one tenant never reaching another's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from postbox.config import key_digest, load_settings
from postbox.queue.keys import PostboxKeys
from postbox.webhooks.secret_box import SecretBox
from tests.support import API_KEY, TEST_ENCRYPTION_KEY

KEY = TEST_ENCRYPTION_KEY
HOOKS = "/v1/webhooks"
PUBLIC_URL = "https://93.184.215.14/hooks/postbox"
OTHER_KEY = "tenant-b-key-0123456789"
KEYS = PostboxKeys("email")


def _api(api_factory: Any, service_env: dict[str, str], **env: str) -> Any:
    defaults = {"ENCRYPTION_KEY": KEY, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "false"}
    return api_factory(load_settings({**service_env, **defaults, **env}))


@pytest.fixture
def hooks(api_factory, service_env):
    return _api(api_factory, service_env)


def _create(api: Any, headers: dict[str, str] | None = None, **body: Any) -> Any:
    payload = {"url": PUBLIC_URL, "events": ["*"], **body}
    return api.post(HOOKS, json=payload, headers=headers)


def _call(api: Any, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any):
    return getattr(api.client, method)(path, headers={**api.auth, **(headers or {})}, **kw)


def test_create_answers_201_with_the_secret_which_is_never_shown_again(hooks, redis_client):
    created = _create(hooks, events=["email.sent", "email.failed"], description="orders")

    assert created.status_code == 201
    body = created.json
    secret = body.pop("secret")
    assert secret.startswith("whsec_")
    assert body["id"].startswith("wh_")
    assert body == {
        "id": body["id"],
        "url": PUBLIC_URL,
        "events": ["email.sent", "email.failed"],
        "description": "orders",
        "enabled": True,
        "disabled_reason": None,
        "domains": [],
        "created_at": body["created_at"],
    }
    one = hooks.get(f"{HOOKS}/{body['id']}")
    listed = hooks.get(HOOKS)
    assert one.status_code == 200 and one.json == body
    assert listed.json == {"data": [body]}
    for answer in (one, listed):
        assert secret not in answer.get_data(as_text=True)
    stored = redis_client.hgetall(KEYS.webhook(body["id"]))
    assert secret not in json.dumps(stored)
    assert secret.removeprefix("whsec_") not in json.dumps(stored)
    assert SecretBox(KEY).decrypt(stored["secret"], body["id"]) == secret


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://93.184.215.14/hook"}, "url"),
        ({"url": "http://127.0.0.1:8000/hook"}, "url"),
        ({"url": "https://127.0.0.1/hook"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({"url": "https://169.254.169.254/latest/meta-data/"}, "url"),
        ({"url": "https://localhost:8443/hook"}, "url"),  # a name resolving to loopback
        ({"url": "https://user:pw@93.184.215.14/"}, "url"),
        ({"url": 42}, "url"),
        ({"events": ["email.opened"]}, "events"),
        ({"events": []}, "events"),
        ({"events": ["*", "email.sent"]}, "events"),
        ({"events": "email.sent"}, "events"),
        ({"description": "x" * 501}, "description"),
        ({"secret": "whsec_mine"}, "secret"),
    ],
)
def test_bad_input_is_422_naming_the_field(hooks, redis_client, body, field):
    answer = _create(hooks, **body)

    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["code"] == "validation_error"
    assert list(answer.json["error"]["fields"]) == [field]
    assert not redis_client.exists(KEYS.webhooks())


def test_private_urls_are_accepted_when_the_setting_allows_them(api_factory, service_env):
    api = _api(api_factory, service_env, WEBHOOK_ALLOW_PRIVATE_NETWORKS="true")
    for url in ("http://127.0.0.1:8000/hook", "http://localhost/hook"):
        assert _create(api, url=url).status_code == 201


def test_without_an_encryption_key_creating_answers_503_and_changes_nothing(
    api_factory, service_env, redis_client
):
    api = _api(api_factory, service_env, ENCRYPTION_KEY="")
    created = _create(api)
    rotated = api.post(f"{HOOKS}/wh_{'a' * 22}/rotate-secret")

    for answer in (created, rotated):
        assert answer.status_code == 503
        assert answer.json["error"]["code"] == "encryption_key_missing"
        assert "ENCRYPTION_KEY" in answer.json["error"]["message"]
    assert redis_client.keys("*") == []
    assert api.get(HOOKS).json == {"data": []}


def test_patch_changes_the_endpoint_and_refuses_bad_fields(hooks):
    endpoint = _create(hooks).json

    patched = _call(
        hooks,
        "patch",
        f"{HOOKS}/{endpoint['id']}",
        json={"events": ["email.sent"], "description": "new", "enabled": False},
    )
    assert patched.status_code == 200
    assert (patched.json["events"], patched.json["description"]) == (["email.sent"], "new")
    assert patched.json["enabled"] is False
    assert patched.json["disabled_reason"] == "disabled through the API"
    assert patched.json["url"] == PUBLIC_URL

    enabled = _call(hooks, "patch", f"{HOOKS}/{endpoint['id']}", json={"enabled": True})
    assert enabled.json["enabled"] is True and enabled.json["disabled_reason"] is None
    for body, field in (
        ({"url": "https://10.0.0.1/"}, "url"),
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": 1}, "enabled"),
        ({}, "_schema"),
        ({"domains": ["other.org"]}, "domains"),
    ):
        refused = _call(hooks, "patch", f"{HOOKS}/{endpoint['id']}", json=body)
        assert refused.status_code == 422, body
        assert list(refused.json["error"]["fields"]) == [field]
    assert hooks.get(f"{HOOKS}/{endpoint['id']}").json == enabled.json


def test_rotate_returns_a_new_secret_once_and_delete_removes_the_endpoint(hooks, redis_client):
    endpoint = _create(hooks).json
    first = SecretBox(KEY).decrypt(
        redis_client.hget(KEYS.webhook(endpoint["id"]), "secret"), endpoint["id"]
    )

    rotated = hooks.post(f"{HOOKS}/{endpoint['id']}/rotate-secret")

    assert rotated.status_code == 200
    assert rotated.json["id"] == endpoint["id"]
    assert rotated.json["secret"].startswith("whsec_") and rotated.json["secret"] != first
    assert rotated.json["previous_secret_expires_at"].endswith("Z")
    stored = redis_client.hgetall(KEYS.webhook(endpoint["id"]))
    assert SecretBox(KEY).decrypt(stored["previous_secret"], endpoint["id"]) == first
    assert rotated.json["secret"] not in json.dumps(stored)

    assert _call(hooks, "delete", f"{HOOKS}/{endpoint['id']}").status_code == 204
    assert _call(hooks, "delete", f"{HOOKS}/{endpoint['id']}").status_code == 404
    assert hooks.get(f"{HOOKS}/{endpoint['id']}").status_code == 404
    assert hooks.post(f"{HOOKS}/{endpoint['id']}/rotate-secret").status_code == 404
    assert not redis_client.exists(KEYS.webhook(endpoint["id"]))


def test_unknown_ids_are_404(hooks):
    for method, path in (
        ("get", f"{HOOKS}/wh_{'b' * 22}"),
        ("get", f"{HOOKS}/not-an-id"),
        ("delete", f"{HOOKS}/wh_{'b' * 22}"),
        ("post", f"{HOOKS}/nope/rotate-secret"),
    ):
        answer = _call(hooks, method, path)
        assert answer.status_code == 404, path
        assert answer.json["error"]["fields"] == {"id": ["No such webhook."]}
    missing = _call(hooks, "patch", f"{HOOKS}/wh_{'b' * 22}", json={"description": "x"})
    assert missing.status_code == 404


def test_a_restricted_key_reaches_only_its_own_endpoints(api_factory, service_env):
    keys = f"sha256:{key_digest(API_KEY)}@example.com,{OTHER_KEY}"
    api = _api(api_factory, service_env, API_KEYS=keys)
    unrestricted = {"Authorization": f"Bearer {OTHER_KEY}"}

    own = _create(api).json
    theirs = _create(api, headers=unrestricted).json

    assert own["domains"] == ["example.com"]
    assert theirs["domains"] == []
    assert [e["id"] for e in api.get(HOOKS).json["data"]] == [own["id"]]
    listed_by_admin = api.get(HOOKS, headers=unrestricted).json["data"]
    assert [e["id"] for e in listed_by_admin] == [own["id"], theirs["id"]]
    foreign = f"{HOOKS}/{theirs['id']}"
    assert api.get(foreign).status_code == 404
    assert _call(api, "patch", foreign, json={"url": PUBLIC_URL + "x"}).status_code == 404
    assert api.post(f"{foreign}/rotate-secret").status_code == 404
    assert _call(api, "delete", foreign).status_code == 404
    assert api.get(foreign, headers=unrestricted).json["url"] == PUBLIC_URL
    # The unrestricted key may manage the restricted key's endpoint.
    patched = _call(
        api,
        "patch",
        f"{HOOKS}/{own['id']}",
        headers=unrestricted,
        json={"description": "by the admin"},
    )
    assert patched.status_code == 200
    assert patched.json["domains"] == ["example.com"]


def test_two_restricted_keys_do_not_see_each_other(api_factory, service_env):
    keys = f"sha256:{key_digest(API_KEY)}@example.com,sha256:{key_digest(OTHER_KEY)}@example.org"
    api = _api(api_factory, service_env, API_KEYS=keys)
    other = {"Authorization": f"Bearer {OTHER_KEY}"}

    mine = _create(api).json
    theirs = _create(api, headers=other).json

    assert [e["id"] for e in api.get(HOOKS).json["data"]] == [mine["id"]]
    assert [e["id"] for e in api.get(HOOKS, headers=other).json["data"]] == [theirs["id"]]
    assert api.get(f"{HOOKS}/{mine['id']}", headers=other).status_code == 404


def test_secrets_never_reach_the_logs(hooks, caplog):
    caplog.set_level("DEBUG")
    created = _create(hooks).json
    rotated = hooks.post(f"{HOOKS}/{created['id']}/rotate-secret").json

    for secret in (created["secret"], rotated["secret"]):
        assert secret not in caplog.text
        assert secret.removeprefix("whsec_") not in caplog.text


def _dashboard_overview(api: Any, key: str) -> dict[str, Any]:
    client = api.app.test_client()
    signed = client.post("/dashboard/login", data={"key": key})
    assert signed.status_code == 302
    overview = client.get("/dashboard/api/overview")
    assert overview.status_code == 200
    return dict(overview.json)


def test_the_dashboard_lists_the_endpoints_the_signed_in_key_may_see(api_factory, service_env):
    keys = f"sha256:{key_digest(API_KEY)}@example.com,{OTHER_KEY}"
    api = _api(api_factory, service_env, API_KEYS=keys)
    own = _create(api, description="mine").json
    theirs = _create(api, headers={"Authorization": f"Bearer {OTHER_KEY}"}).json
    _call(
        api,
        "patch",
        f"{HOOKS}/{theirs['id']}",
        headers={"Authorization": f"Bearer {OTHER_KEY}"},
        json={"enabled": False},
    )

    restricted = _dashboard_overview(api, API_KEY)["webhooks"]
    admin = _dashboard_overview(api, OTHER_KEY)["webhooks"]

    assert [(w["id"], w["description"], w["enabled"]) for w in restricted] == [
        (own["id"], "mine", True)
    ]
    assert [(w["id"], w["enabled"], w["disabled_reason"]) for w in admin] == [
        (own["id"], True, None),
        (theirs["id"], False, "disabled through the API"),
    ]
    assert all("secret" not in w for w in restricted + admin)
