"""The dead-letter view over HTTP and the CLI, with dead letters made the real way: emails to
a recipient the SMTP server refuses, delivered by a real worker process."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from postbox.config import load_settings
from tests.support import email_payload, run_postbox, wait_until

FAILED = "bull:email:failed"
BAD = "bad@example.org"
BUSY = "busy@example.org"
REJECT = pytest.mark.smtp_replies(rcpt={BAD: "550 5.1.1 no such user"})
REJECT_AND_DEFER = pytest.mark.smtp_replies(
    rcpt={BAD: "550 5.1.1 no such user", BUSY: "450 4.2.1 mailbox busy"}
)


def post_emails(api: Any, count: int, to: str = BAD, tag: str = "") -> list[dict[str, Any]]:
    """Post `count` distinct emails to `to`; their 202 bodies."""
    bodies = []
    for index in range(count):
        response = api.post("/v1/emails", json=email_payload(to=to, subject=f"{tag}#{index}"))
        assert response.status_code == 202, response.json
        bodies.append(response.json)
    return bodies


def wait_dead(redis_client: Any, count: int) -> None:
    wait_until(lambda: redis_client.zcard(FAILED) == count)


def newest_first(redis_client: Any) -> list[str]:
    """The failed set as Redis orders it: score, then id, both descending."""
    return list(redis_client.zrevrange(FAILED, 0, -1))


def list_page(api: Any, query: str = "") -> dict[str, Any]:
    response = api.get(f"/v1/dead-letters{query}")
    assert response.status_code == 200, response.json
    return dict(response.json)


def run_cli(service_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_postbox(service_env, "dlq", *args)


@REJECT
def test_rejected_email_is_a_dead_letter_after_one_attempt(api, smtp_server, worker_factory):
    [posted] = post_emails(api, 1, tag="rejected")
    worker_factory()

    page = wait_until(lambda: (p := list_page(api))["data"] and p)
    [entry] = page["data"]
    assert page["next_cursor"] is None
    assert entry["id"] == posted["id"]
    assert entry["message_id"] == posted["message_id"]
    assert entry["attempts"] == 1
    assert entry["error_class"] == "rejected"
    assert "550 5.1.1 no such user" in entry["reason"]
    assert entry["from"] == "Sender <sender@example.com>"
    assert entry["to"] == [BAD]
    assert entry["subject"] == "rejected#0"
    assert entry["failed_at"].endswith("+00:00")
    assert smtp_server.received == []


@REJECT
def test_retried_dead_letter_is_delivered_with_its_id_and_message_id(
    api, smtp_server, worker_factory, redis_client
):
    [posted] = post_emails(api, 1)
    worker_factory()
    wait_dead(redis_client, 1)

    smtp_server.handler.rcpt_replies.clear()
    response = api.post(f"/v1/dead-letters/{posted['id']}/retry")
    assert response.status_code == 202
    assert response.json == {"id": posted["id"], "status": "queued"}

    [received] = wait_until(lambda: smtp_server.received)
    assert received.rcpt_tos == [BAD]
    assert received.message["Message-ID"] == posted["message_id"]
    status = wait_until(
        lambda: (s := api.get(f"/v1/emails/{posted['id']}").json)["status"] == "sent" and s
    )
    assert status["id"] == posted["id"]
    assert status["attempts"] == 1  # a retry starts with a full budget
    assert list_page(api)["data"] == []
    assert api.post(f"/v1/dead-letters/{posted['id']}/retry").status_code == 404


@REJECT
def test_pages_hold_each_dead_letter_once_while_others_come_and_go(
    api, smtp_server, worker_factory, redis_client
):
    post_emails(api, 25, tag="first")
    worker_factory()
    wait_dead(redis_client, 25)
    expected = newest_first(redis_client)

    first = list_page(api, "?limit=10")
    # A new dead letter and a discarded one between pages shift no later page.
    [late] = post_emails(api, 1, tag="late")
    wait_dead(redis_client, 26)
    for gone in (expected[0], expected[15]):  # one already seen, one not yet
        assert api.client.delete(f"/v1/dead-letters/{gone}", headers=api.auth).status_code == 204
    second = list_page(api, f"?limit=10&cursor={first['next_cursor']}")
    third = list_page(api, f"?limit=10&cursor={second['next_cursor']}")

    seen = [entry["id"] for page in (first, second, third) for entry in page["data"]]
    assert seen == expected[:15] + expected[16:]
    assert late["id"] not in seen
    assert [len(p["data"]) for p in (first, second, third)] == [10, 10, 4]
    assert third["next_cursor"] is None
    assert list_page(api, "?limit=1")["data"][0]["id"] == late["id"]


@REJECT
def test_equal_failure_times_page_by_id_and_offset_pages_too(
    api, smtp_server, worker_factory, redis_client
):
    post_emails(api, 12)
    worker_factory()
    wait_dead(redis_client, 12)
    # Force ties in the failed time so that page boundaries fall inside them.
    ids = sorted(redis_client.zrange(FAILED, 0, -1))
    redis_client.zadd(FAILED, {job_id: 1_700_000_000_000 + i // 5 for i, job_id in enumerate(ids)})
    expected = newest_first(redis_client)

    seen: list[str] = []
    query = "?limit=3"
    while True:
        page = list_page(api, query)
        seen += [entry["id"] for entry in page["data"]]
        if page["next_cursor"] is None:
            break
        query = f"?limit=3&cursor={page['next_cursor']}"
    assert seen == expected
    by_offset = list_page(api, "?limit=4&offset=5")
    assert [entry["id"] for entry in by_offset["data"]] == expected[5:9]


@REJECT_AND_DEFER
def test_error_class_filter_and_retry_of_one_class(
    api_factory, service_env, smtp_server, worker_factory, redis_client
):
    api = api_factory(load_settings({**service_env, "EMAIL_MAX_ATTEMPTS": "1"}))
    rejected = {body["id"] for body in post_emails(api, 3, to=BAD, tag="r")}
    deferred = {body["id"] for body in post_emails(api, 2, to=BUSY, tag="d")}
    worker_factory()
    wait_dead(redis_client, 5)

    temporary = list_page(api, "?error_class=temporary")["data"]
    assert {entry["id"] for entry in temporary} == deferred
    assert all("450 4.2.1 mailbox busy" in entry["reason"] for entry in temporary)
    assert {e["id"] for e in list_page(api, "?error_class=rejected")["data"]} == rejected
    assert list_page(api, "?error_class=stalled")["data"] == []

    smtp_server.handler.rcpt_replies.pop(BUSY)
    response = api.post("/v1/dead-letters/retry", json={"error_class": "temporary"})
    assert response.status_code == 202
    assert response.json == {"retried": 2}
    wait_until(lambda: len(smtp_server.received) == 2)
    assert {entry["id"] for entry in list_page(api)["data"]} == rejected

    response = api.post("/v1/dead-letters/retry")  # no body: every dead letter
    assert response.json == {"retried": 3}
    wait_dead(redis_client, 3)  # refused again, once each


@REJECT_AND_DEFER
def test_retry_sends_only_to_recipients_the_relay_has_not_accepted(
    api_factory, service_env, smtp_server, worker_factory, redis_client
):
    api = api_factory(load_settings({**service_env, "EMAIL_MAX_ATTEMPTS": "1"}))
    response = api.post("/v1/emails", json=email_payload(to=["ok@example.org", BUSY, BAD]))
    posted = response.json
    worker_factory()
    wait_dead(redis_client, 1)
    [first] = smtp_server.received
    assert first.rcpt_tos == ["ok@example.org"]

    # The operator fixes both mailboxes: the retry tries the deferred and the refused one.
    smtp_server.handler.rcpt_replies.clear()
    assert api.post(f"/v1/dead-letters/{posted['id']}/retry").status_code == 202
    sent = wait_until(
        lambda: (s := api.get(f"/v1/emails/{posted['id']}").json)["status"] == "sent" and s
    )
    [_, second] = smtp_server.received
    assert sorted(second.rcpt_tos) == [BAD, BUSY]
    assert second.message["Message-ID"] == posted["message_id"]
    assert sent["delivery"]["accepted"] == sorted([BAD, BUSY, "ok@example.org"])


@REJECT
def test_delete_discards_the_dead_letter_and_its_journal(
    api, smtp_server, worker_factory, redis_client
):
    [posted] = post_emails(api, 1)
    worker_factory()
    wait_dead(redis_client, 1)
    job_id = posted["id"]
    assert redis_client.exists(f"postbox:email:journal:{job_id}")

    response = api.client.delete(f"/v1/dead-letters/{job_id}", headers=api.auth)
    assert response.status_code == 204
    assert response.data == b""
    assert redis_client.zcard(FAILED) == 0
    assert not redis_client.exists(f"bull:email:{job_id}", f"postbox:email:journal:{job_id}")
    assert api.get(f"/v1/emails/{job_id}").status_code == 404
    again = api.client.delete(f"/v1/dead-letters/{job_id}", headers=api.auth)
    assert again.status_code == 404
    assert again.json["error"]["code"] == "not_found"


def test_emails_that_are_not_dead_letters_cannot_be_retried_or_deleted(api, redis_client):
    [queued] = post_emails(api, 1, to="rcpt@example.org")  # no worker: it stays queued
    for email_id in (queued["id"], "em_" + "0" * 64, "not-an-id"):
        assert api.post(f"/v1/dead-letters/{email_id}/retry").status_code == 404
        delete = api.client.delete(f"/v1/dead-letters/{email_id}", headers=api.auth)
        assert delete.status_code == 404
    assert api.get(f"/v1/emails/{queued['id']}").json["status"] == "queued"
    assert api.post("/v1/dead-letters/retry", json={}).json == {"retried": 0}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=ten", "limit"),
        ("?offset=-1", "offset"),
        ("?cursor=not-a-cursor", "cursor"),
        ("?cursor=WzEsMl0&offset=3", "offset"),
        ("?error_class=nosuch", "error_class"),
        ("?colour=blue", "colour"),
    ],
)
def test_bad_list_parameters_are_422_naming_the_field(api, query, field):
    response = api.get(f"/v1/dead-letters{query}")
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["fields"]


def test_bad_retry_filters_are_rejected(api):
    unknown = api.post("/v1/dead-letters/retry", json={"error_class": "nosuch"})
    assert unknown.status_code == 422
    assert "error_class" in unknown.json["error"]["fields"]
    extra = api.post("/v1/dead-letters/retry", json={"error_class": "rejected", "x": 1})
    assert extra.status_code == 422
    assert "x" in extra.json["error"]["fields"]


def test_dead_letters_need_the_api_key(api):
    assert api.client.get("/v1/dead-letters").status_code == 401


@REJECT
def test_cli_lists_retries_and_purges(api, service_env, smtp_server, worker_factory, redis_client):
    posted = post_emails(api, 3, tag="cli")
    worker_factory()
    wait_dead(redis_client, 3)
    ids = newest_first(redis_client)

    listed = run_cli(service_env, "list", "--json", "--error-class", "rejected")
    assert listed.returncode == 0, listed.stderr
    assert [entry["id"] for entry in json.loads(listed.stdout)["data"]] == ids
    table = run_cli(service_env, "list", "--limit", "2")
    assert table.returncode == 0, table.stderr
    assert "CLASS" in table.stdout and ids[0] in table.stdout and ids[2] not in table.stdout
    assert "--cursor" in table.stdout

    smtp_server.handler.rcpt_replies.clear()
    retried = run_cli(service_env, "retry", ids[0])
    assert retried.returncode == 0, retried.stderr
    assert f"requeued {ids[0]}" in retried.stdout
    [received] = wait_until(lambda: smtp_server.received)
    message_ids = {body["id"]: body["message_id"] for body in posted}
    assert received.message["Message-ID"] == message_ids[ids[0]]

    purged = run_cli(service_env, "purge", "--all", "--error-class", "rejected")
    assert purged.returncode == 0, purged.stderr
    assert "discarded 2 dead letter(s)" in purged.stdout
    assert redis_client.zcard(FAILED) == 0
    assert run_cli(service_env, "list").stdout.strip() == "No dead letters."

    missing = run_cli(service_env, "purge", ids[1])
    assert missing.returncode == 1
    assert f"not a dead letter: {ids[1]}" in missing.stderr
    assert run_cli(service_env, "retry").returncode == 2  # neither ids nor --all
