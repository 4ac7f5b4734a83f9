"""What Redis keeps of a sent email for the dedup window: its compact record, nothing else.

Measured with a real worker: the bytes Redis' used memory grows by per sent email, and what
the API still answers about a sent email (status, a duplicate POST, a reused key) once its
job is gone."""

from __future__ import annotations

import redis as sync_redis

from postbox.config import load_settings
from tests.support import email_payload, sent_count, sent_records, wait_until

BUDGET_BYTES_PER_EMAIL = 300
# Enough emails first for BullMQ's event stream (~10,000 entries, 3 per email) to reach its
# cap, so what grows after it is what each email leaves.
WARM_UP = 4000
MEASURED = 5000


def _kept_memory(client: sync_redis.Redis) -> int:
    """Redis' used memory but for its clients' buffers, which come and go with the traffic
    of the moment (they moved a 5,000-email reading by up to 100 bytes an email)."""
    memory = client.info("memory")
    return int(memory["used_memory"]) - int(memory["mem_clients_normal"])


def _post(api, start: int, count: int) -> None:
    for first in range(start, start + count, 500):
        emails = [
            email_payload(to=f"m{i}@example.org", subject=f"memory {i}")
            for i in range(first, min(first + 500, start + count))
        ]
        assert api.post("/v1/emails/batch", json={"emails": emails}).status_code == 202


def test_a_sent_email_leaves_at_most_300_bytes_in_redis(
    api, redis_client: sync_redis.Redis, smtp_server, worker_factory
):
    worker_factory()
    _post(api, 0, WARM_UP)
    wait_until(lambda: sent_count(redis_client) == WARM_UP, timeout=120)
    before = _kept_memory(redis_client)

    _post(api, WARM_UP, MEASURED)
    wait_until(lambda: sent_count(redis_client) == WARM_UP + MEASURED, timeout=120)
    wait_until(lambda: not redis_client.keys("postbox:email:journal:*"), timeout=10)
    per_email = (_kept_memory(redis_client) - before) / MEASURED

    print(f"redis memory per sent email: {per_email:.0f} bytes")
    assert per_email <= BUDGET_BYTES_PER_EMAIL
    assert len(sent_records(redis_client)) == WARM_UP + MEASURED
    # Only the newest completed jobs stay whole (EMAIL_KEEP_COMPLETED_JOBS, 1,000).
    assert redis_client.zcard("bull:email:completed") == 1000
    assert not redis_client.keys("postbox:email:sending:*")


def test_a_sent_email_is_still_known_once_its_job_is_gone(
    api_factory, service_env, redis_client: sync_redis.Redis, smtp_server, worker_factory
):
    api = api_factory(load_settings({**service_env, "EMAIL_KEEP_COMPLETED_JOBS": "0"}))
    payload = email_payload(subject="kept as a record")
    headers = {"Idempotency-Key": "record-1"}
    first = api.post("/v1/emails", json=payload, headers=headers)
    assert first.status_code == 202
    email_id = first.json["id"]
    worker_factory()
    wait_until(lambda: sent_count(redis_client) == 1, timeout=30)
    assert not redis_client.exists(f"bull:email:{email_id}")

    status = api.get(f"/v1/emails/{email_id}")
    assert status.status_code == 200
    assert status.json["status"] == "sent"
    assert status.json["attempts"] == 1
    # The test relay answers DATA with "250 2.0.0 Message accepted": its enhanced code stays.
    assert status.json["delivery"]["smtp_reply"] == "2.0.0"
    assert status.json["finished_at"]

    again = api.post("/v1/emails", json=payload, headers=headers)
    assert again.status_code == 200
    assert again.json["duplicate"] is True and again.json["status"] == "sent"
    conflict = api.post("/v1/emails", json={**payload, "subject": "other"}, headers=headers)
    assert conflict.status_code == 409
    stats = api.get("/v1/queue/stats").json
    assert stats["counts"]["completed"] == 1
    assert stats["throughput"]["sent"] == 1
    # Nothing was sent twice, and the duplicate did not bring the job back.
    assert len(smtp_server.received) == 1
    assert not redis_client.exists(f"bull:email:{email_id}")
