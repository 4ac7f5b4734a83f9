"""`/v1/webhooks/{id}/deliveries`, `.../retry`, `.../replay` and `.../test` through the Flask
app, with a real dispatcher process delivering to a real receiver that verifies signatures;
the stats' `webhooks` block; and another tenant's endpoint answering 404."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from postbox.config import key_digest, load_settings
from tests.support import API_KEY, run_postbox, wait_until
from tests.webhook_support import add_event

OTHER_KEY = "tenant-b-key-0123456789"


@pytest.fixture
def hooks(api_factory, service_env):
    return api_factory(load_settings({**service_env, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}))


def make_endpoint(api: Any, url: str) -> tuple[str, str]:
    created = api.post("/v1/webhooks", json={"url": url, "events": ["*"]})
    assert created.status_code == 201, created.json
    return created.json["id"], created.json["secret"]


def deliveries(api: Any, endpoint_id: str, query: str = "") -> dict[str, Any]:
    answer = api.get(f"/v1/webhooks/{endpoint_id}/deliveries{query}")
    assert answer.status_code == 200, answer.json
    return dict(answer.json)


def _counts(listed: dict[str, Any]) -> tuple[int, int]:
    return listed["pending"], listed["failed"]


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def test_attempts_are_listed_and_a_failed_delivery_can_be_retried(
    hooks, receiver, redis_client, dispatcher_factory
):
    endpoint_id, secret = make_endpoint(hooks, receiver.url("hook"))
    route = receiver.route("hook", [secret], answers=[(400, {})])
    dispatcher_factory().wait_ready(1)
    refused = add_event(redis_client, "email.queued", email="em_1")
    wait_until(lambda: deliveries(hooks, endpoint_id)["failed"] == 1)
    add_event(redis_client, "email.sent", email="em_2")
    wait_until(lambda: len(deliveries(hooks, endpoint_id)["data"]) == 2)

    listed = deliveries(hooks, endpoint_id)
    newest, oldest = listed["data"]
    assert (newest["type"], newest["status"], newest["outcome"]) == ("email.sent", 200, "delivered")
    assert oldest["event_id"] == f"evt_{refused}"
    assert (oldest["status"], oldest["outcome"], oldest["error"]) == (400, "failed", "HTTP 400: no")
    assert oldest["latency_ms"] >= 0 and oldest["next_retry_at"] is None
    assert (listed["pending"], listed["failed"]) == (0, 1)
    [failed] = deliveries(hooks, endpoint_id, "?state=failed")["data"]
    assert failed["delivery_id"] == f"{endpoint_id}:evt_{refused}"
    assert (failed["attempts"], failed["last_status"]) == (1, 400)

    retried = hooks.post(f"/v1/webhooks/{endpoint_id}/deliveries/{failed['delivery_id']}/retry")
    assert retried.status_code == 202
    wait_until(lambda: route.ids().count(f"evt_{refused}") == 1)  # answered 200 this time
    assert route.ids(status=None).count(f"evt_{refused}") == 2  # the same webhook-id again
    assert all(r.verified for r in route.received)
    # Delivered once its outcome is written (a delivery still pending may be retried).
    wait_until(lambda: _counts(deliveries(hooks, endpoint_id)) == (0, 0))
    again = hooks.post(f"/v1/webhooks/{endpoint_id}/deliveries/{failed['delivery_id']}/retry")
    assert again.status_code == 404 and list(again.json["error"]["fields"]) == ["delivery_id"]


def test_replay_delivers_a_span_again_with_the_same_ids(
    hooks, receiver, redis_client, dispatcher_factory
):
    endpoint_id, secret = make_endpoint(hooks, receiver.url("hook"))
    route = receiver.route("hook", [secret])
    dispatcher_factory().wait_ready(1)
    first = add_event(redis_client, email="em_1")
    second = add_event(redis_client, email="em_2")
    time.sleep(0.05)
    later = add_event(redis_client, email="em_3")
    wait_until(lambda: len(route.received) == 3)

    ms = int(second.partition("-")[0])
    span = {"since": iso(int(first.partition("-")[0]) / 1000), "until": iso(ms / 1000 + 0.001)}
    replayed = hooks.post(f"/v1/webhooks/{endpoint_id}/replay", json=span)
    assert replayed.status_code == 202, replayed.json
    assert replayed.json == {"replayed": 2, "read": 2, "complete": True, "resume_since": None}
    wait_until(lambda: len(route.received) == 5)
    assert sorted(route.ids()[3:]) == sorted([f"evt_{first}", f"evt_{second}"])
    assert f"evt_{later}" not in route.ids()[3:]
    assert all(r.verified for r in route.received)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"until": "2025-01-01T00:00:00Z"}, "since"),
        ({"since": "2025-01-01T00:00:00Z"}, "until"),
        ({"since": "yesterday", "until": "2025-01-01T00:00:00Z"}, "since"),
        ({"since": "2025-01-01T00:00:00", "until": "2025-01-02T00:00:00Z"}, "since"),
        ({"since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"}, "until"),
        ({"since": "2025-01-01T00:00:00Z", "until": "2025-01-02T00:00:00Z", "x": 1}, "x"),
    ],
)
def test_a_bad_replay_span_is_422_naming_the_field(hooks, receiver, body, field):
    endpoint_id, _ = make_endpoint(hooks, receiver.url("hook"))
    answer = hooks.post(f"/v1/webhooks/{endpoint_id}/replay", json=body)
    assert answer.status_code == 422, answer.json
    assert list(answer.json["error"]["fields"]) == [field]


def test_a_future_replay_is_refused(hooks, receiver):
    endpoint_id, _ = make_endpoint(hooks, receiver.url("hook"))
    soon = datetime.now(UTC) + timedelta(hours=1)
    body = {"since": soon.isoformat(), "until": (soon + timedelta(hours=1)).isoformat()}
    answer = hooks.post(f"/v1/webhooks/{endpoint_id}/replay", json=body)
    assert answer.status_code == 422 and list(answer.json["error"]["fields"]) == ["since"]


def test_the_test_event_is_delivered_signed(hooks, receiver, dispatcher_factory):
    endpoint_id, secret = make_endpoint(hooks, receiver.url("hook"))
    route = receiver.route("hook", [secret])
    dispatcher_factory().wait_ready(1)

    sent = hooks.post(f"/v1/webhooks/{endpoint_id}/test")
    assert sent.status_code == 202
    assert sent.json["delivery_id"] == f"{endpoint_id}:{sent.json['event_id']}"
    [received] = wait_until(lambda: route.received)
    assert received.verified and received.webhook_id == sent.json["event_id"]
    assert received.payload["type"] == "webhook.test"
    assert received.payload["data"]["endpoint_id"] == endpoint_id


def test_another_tenants_endpoint_is_404_on_every_delivery_route(api_factory, service_env):
    keys = f"sha256:{key_digest(API_KEY)}@example.com,sha256:{key_digest(OTHER_KEY)}@example.org"
    env = {**service_env, "API_KEYS": keys, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}
    api = api_factory(load_settings(env))
    mine, _ = make_endpoint(api, "http://127.0.0.1:9/hook")
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    span = {"since": "2025-01-01T00:00:00Z", "until": "2025-01-02T00:00:00Z"}
    answers = [
        api.get(f"/v1/webhooks/{mine}/deliveries", headers=other),
        api.post(f"/v1/webhooks/{mine}/deliveries/{mine}:evt_1-0/retry", headers=other),
        api.post(f"/v1/webhooks/{mine}/replay", json=span, headers=other),
        api.post(f"/v1/webhooks/{mine}/test", headers=other),
    ]
    assert [a.status_code for a in answers] == [404] * 4
    assert deliveries(api, mine)["data"] == []  # nothing was queued by the other tenant


def test_queue_stats_show_the_webhook_block(hooks, receiver, redis_client, dispatcher_factory):
    endpoint_id, secret = make_endpoint(hooks, receiver.url("hook"))
    receiver.route("hook", [secret], answers=[(400, {}), (503, {})])
    dispatcher_factory().wait_ready(1)
    for index in range(3):
        add_event(redis_client, email=f"em_{index}")
    wait_until(lambda: hooks.get("/v1/queue/stats").json["webhooks"]["outcomes"].get("2xx") == 2)

    block = hooks.get("/v1/queue/stats").json["webhooks"]
    assert block["endpoints"] == 1 and block["enabled"] == 1
    assert block["failed"] == 1 and block["pending"] == 0
    assert block["outcomes"] == {"2xx": 2, "4xx": 1, "5xx": 1}
    assert block["backlog"] == {"stream": 0, "due": 0, "waiting": 0}
    assert endpoint_id


def test_the_cli_lists_an_endpoints_attempts_and_failed_deliveries(
    hooks, receiver, redis_client, dispatcher_factory, service_env
):
    endpoint_id, secret = make_endpoint(hooks, receiver.url("hook"))
    receiver.route("hook", [secret], answers=[(400, {})])
    dispatcher_factory().wait_ready(1)
    entry = add_event(redis_client, "email.failed", email="em_1")
    wait_until(lambda: deliveries(hooks, endpoint_id)["failed"] == 1)

    table = run_cli(service_env, "deliveries", endpoint_id)
    assert table.returncode == 0, table.stderr
    assert f"{endpoint_id}: 0 pending, 1 failed" in table.stdout
    assert f"evt_{entry}" in table.stdout and "HTTP 400: no" in table.stdout
    listed = run_cli(service_env, "deliveries", endpoint_id, "--state", "failed", "--json")
    [failed] = json.loads(listed.stdout)["data"]
    assert failed["delivery_id"] == f"{endpoint_id}:evt_{entry}"
    unknown = run_cli(service_env, "deliveries", "wh_" + "x" * 22)
    assert unknown.returncode == 1 and "No webhook" in unknown.stderr


def run_cli(service_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_postbox(service_env, "webhooks", *args)
