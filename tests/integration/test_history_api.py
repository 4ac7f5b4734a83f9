"""The history through the API: search, an email after the queue forgot it, erasure, the
key's scope, and what an instance without DATABASE_URL says."""

from __future__ import annotations

import hashlib

import pytest

from postbox.config import load_settings
from postbox.dev.ports import free_port
from tests.integration.test_history_recorder import recording
from tests.support import API_KEY, email_payload, wait_until

OTHER_KEY = "other-key-0123456789abcdef"


def _posted(api, n: int, subject: str, **overrides) -> list[str]:
    return [
        api.post("/v1/emails", json=email_payload(subject=f"{subject} {i}", **overrides)).json["id"]
        for i in range(n)
    ]


def _search(api, query: str, key: str = API_KEY) -> list[dict]:
    found: list[dict] = []
    cursor = ""
    while True:
        answer = api.get(f"/v1/emails?{query}&limit=3{cursor}", {"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.json
        found += answer.json["data"]
        if answer.json["next_cursor"] is None:
            return found
        cursor = f"&cursor={answer.json['next_cursor']}"


@pytest.fixture
def scoped_api(api_factory, pg_history_env):
    """The API with a second key that may only send from example.net (PostgreSQL only: the
    SQLite path is the same code, run by the store and recorder tests)."""
    digest = hashlib.sha256(OTHER_KEY.encode()).hexdigest()
    env = {**pg_history_env, "API_KEYS": f"{API_KEY},sha256:{digest}@example.net"}
    return api_factory(load_settings(env))


def test_search_show_and_erase_through_the_api(
    scoped_api, pg_history_env, redis_client, worker_factory
) -> None:
    api = scoped_api
    worker_factory(**pg_history_env)
    wait_until(lambda: recording(redis_client))
    ann = _posted(api, 4, to=["ann@example.org"], tags=["reset"], subject="Reset")
    bob = _posted(api, 3, to=["bob@example.org"], tags=["welcome"], subject="Hi")
    mine = api.post(
        "/v1/emails",
        json=email_payload(**{"from": "x@example.net"}, to=["ann@example.org"]),
        headers={"Authorization": f"Bearer {OTHER_KEY}"},
    ).json["id"]
    wait_until(lambda: len(_search(api, "status=sent")) == 8, timeout=60)

    to_ann = _search(api, "to=ann@example.org")
    assert {e["id"] for e in to_ann} == {*ann, mine}
    assert [e["accepted_at"] for e in to_ann] == sorted(
        (e["accepted_at"] for e in to_ann), reverse=True
    )
    assert {e["id"] for e in _search(api, "tag=welcome")} == set(bob)
    assert [e["id"] for e in _search(api, "to=ann@example.org", OTHER_KEY)] == [mine]
    first = _search(api, "tag=reset")[0]
    assert first["status"] == "sent" and first["subject"] == "Reset 3"
    assert first["to"] == [{"address": "ann@example.org", "status": "accepted",
                            "reply": first["to"][0]["reply"], "relay": "default"}]  # fmt: skip

    redis_client.flushall()  # the queue forgets everything; the history does not
    shown = api.get(f"/v1/emails/{ann[0]}")
    assert shown.status_code == 200, shown.json
    assert shown.json["source"] == "history"
    assert [e["type"] for e in shown.json["events"]] == ["email.queued", "email.sent"]
    hidden = api.get(f"/v1/emails/{ann[0]}", {"Authorization": f"Bearer {OTHER_KEY}"})
    assert hidden.status_code == 404

    erased = api.client.delete(
        "/v1/emails?to=ann@example.org", headers={"Authorization": f"Bearer {OTHER_KEY}"}
    )
    assert erased.json == {"to": "ann@example.org", "deleted": 1}
    erased = api.client.delete("/v1/emails?to=ann@example.org", headers=api.auth)
    assert erased.json == {"to": "ann@example.org", "deleted": 4}
    assert _search(api, "to=ann@example.org") == []
    assert api.get(f"/v1/emails/{ann[0]}").status_code == 404
    assert len(_search(api, "status=sent")) == 3


def test_bad_search_parameters_are_422_naming_the_field(api_factory, tmp_path, service_env):
    env = {**service_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'history.db'}"}
    api = api_factory(load_settings(env))
    for query, field in (
        ("limit=101", "limit"),
        ("status=lost", "status"),
        ("since=yesterday", "since"),
        ("cursor=bm9wZQ", "cursor"),
    ):
        answer = api.get(f"/v1/emails?{query}")
        assert answer.status_code == 422, (query, answer.json)
        assert field in str(answer.json), (query, answer.json)
    assert api.client.delete("/v1/emails", headers=api.auth).status_code == 422


def test_without_database_url_no_history_is_said(api, settings) -> None:
    assert api.get("/v1/queue/stats").json["history"]["enabled"] is False
    answer = api.get("/v1/emails?to=ann@example.org")
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "history_disabled"
    assert api.get("/v1/emails/em_unknown").status_code == 404


def test_an_unreachable_database_is_503_not_500(api_factory, service_env) -> None:
    closed = f"postgresql://postbox@127.0.0.1:{free_port()}/postbox"
    api = api_factory(load_settings({**service_env, "DATABASE_URL": closed}))
    for _ in range(2):  # the second fails at once, without waiting on a connection
        answer = api.get("/v1/emails?to=ann@example.org")
        assert answer.status_code == 503, answer.json
        assert answer.json["error"]["code"] == "history_unavailable"
        assert answer.headers["Retry-After"] == "5"
    assert api.post("/v1/emails", json=email_payload()).status_code == 202  # delivery goes on
