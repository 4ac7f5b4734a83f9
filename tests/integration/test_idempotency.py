"""A retried or duplicated POST, on any instance, never sends twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support import email_payload, wait_until


def test_same_key_posted_20_times_through_two_instances_is_sent_once(
    api_factory, settings, smtp_server, worker_factory
):
    first, second = api_factory(settings), api_factory(settings)
    payload = email_payload(subject="Only once")
    headers = {"Idempotency-Key": "order-1234-receipt"}

    def post(index: int):
        instance = first if index % 2 == 0 else second
        response = instance.post("/v1/emails", json=payload, headers=headers)
        return response.status_code, response.json["id"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(post, range(20)))

    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 19 + [202]
    assert len({job_id for _, job_id in results}) == 1

    worker_factory()
    wait_until(lambda: first.get(f"/v1/emails/{results[0][1]}").json["status"] == "sent")
    # Posting again after delivery is still the same email, not a new send.
    again = second.post("/v1/emails", json=payload, headers=headers)
    assert again.status_code == 200
    assert again.json["status"] == "sent"
    assert again.json["duplicate"] is True
    assert [r.message["Subject"] for r in smtp_server.received] == ["Only once"]


def test_identical_content_without_key_is_a_duplicate(api):
    first = api.post("/v1/emails", json=email_payload())
    second = api.post("/v1/emails", json=email_payload())
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json["id"] == second.json["id"]
    assert api.get("/v1/queue/stats").json["counts"]["waiting"] == 1


def test_normalised_addresses_make_the_same_message(api):
    first = api.post("/v1/emails", json=email_payload(to="Rcpt@EXAMPLE.org"))
    second = api.post("/v1/emails", json=email_payload(to=["  Rcpt@example.ORG "]))
    assert first.json["id"] == second.json["id"]
    assert second.status_code == 200


def test_same_key_with_other_payload_is_a_conflict(api):
    headers = {"Idempotency-Key": "signup-42"}
    assert api.post("/v1/emails", json=email_payload(), headers=headers).status_code == 202
    response = api.post("/v1/emails", json=email_payload(subject="Other"), headers=headers)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "idempotency_conflict"
    assert "Idempotency-Key" in response.json["error"]["fields"]
    assert api.get("/v1/queue/stats").json["counts"]["waiting"] == 1


def test_batch_with_repeated_items_enqueues_each_distinct_email_once(
    api, smtp_server, worker_factory
):
    a, b = email_payload(subject="A"), email_payload(subject="B")
    keyed = {**email_payload(subject="C"), "idempotency_key": "c-1"}
    response = api.post("/v1/emails/batch", json={"emails": [a, b, a, keyed, keyed, b]})
    assert response.status_code == 202
    items = response.json["data"]
    assert [item["index"] for item in items] == list(range(6))
    assert [item["duplicate"] for item in items] == [False, False, True, False, True, True]
    assert items[0]["id"] == items[2]["id"] and items[1]["id"] == items[5]["id"]
    assert api.get("/v1/queue/stats").json["counts"]["waiting"] == 3

    worker_factory()
    wait_until(lambda: len(smtp_server.received) >= 3)
    wait_until(lambda: api.get("/v1/queue/stats").json["counts"]["completed"] == 3)
    assert sorted(r.message["Subject"] for r in smtp_server.received) == ["A", "B", "C"]


def test_batch_item_reusing_a_key_with_other_content_reports_a_conflict(api):
    keyed = {**email_payload(subject="C"), "idempotency_key": "c-1"}
    clash = {**email_payload(subject="D"), "idempotency_key": "c-1"}
    response = api.post("/v1/emails/batch", json={"emails": [keyed, clash]})
    assert response.status_code == 202
    created, conflict = response.json["data"]
    assert created["duplicate"] is False
    assert conflict["error"]["code"] == "idempotency_conflict"
    assert api.get("/v1/queue/stats").json["counts"]["waiting"] == 1


def test_a_duplicate_of_an_email_lost_between_claim_and_add_is_enqueued(api, redis_client):
    """An API process that dies after claiming the id but before adding loses nothing."""
    first = api.post("/v1/emails", json=email_payload()).json
    # Simulate the crash window: the claim exists but the job does not.
    redis_client.delete(f"bull:email:{first['id']}")
    redis_client.delete("bull:email:wait")
    retried = api.post("/v1/emails", json=email_payload())
    assert retried.status_code == 200
    assert api.get(f"/v1/emails/{first['id']}").json["status"] == "queued"
