"""The per-key API rate limit: 429 with a Retry-After that is right, batches cost per email,
each key has its own quota, and Redis being down is a 503, never a 500."""

from __future__ import annotations

import time

from postbox.config import load_settings
from postbox.dev.ports import free_port
from postbox.dev.redis_server import RedisServer
from tests.support import API_KEY, email_payload

SEND = "/v1/emails"
BATCH = "/v1/emails/batch"
OTHER_KEY = "another-key-0123456789abcdef"


def _api(api_factory, service_env, limit: str, **env: str):
    return api_factory(load_settings({**service_env, "API_RATE_LIMIT": limit, **env}))


def _batch(count: int, tag: str) -> dict:
    return {"emails": [email_payload(subject=f"{tag} {i}") for i in range(count)]}


def _jobs(redis_client) -> int:
    return len([k for k in redis_client.keys("bull:email:*") if k.split(":")[-1].startswith("em_")])


def test_burst_over_the_limit_gets_429_and_retry_after_is_when_it_fits_again(
    api_factory, service_env
):
    api = _api(api_factory, service_env, "3 per 2 seconds")
    answers = [api.post(SEND, json=email_payload(subject=f"burst {i}")) for i in range(4)]
    refused_at = time.monotonic()

    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    refused = answers[-1]
    assert refused.json["error"]["code"] == "rate_limited"
    assert "Authorization" in refused.json["error"]["fields"]
    retry_after = int(refused.headers["Retry-After"])
    assert retry_after == 2
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Policy"] == "3;w=2"

    # Shortly before Retry-After the key is still over its limit; just after, it is not.
    time.sleep(max(0.0, refused_at + retry_after - 0.6 - time.monotonic()))
    assert api.post(SEND, json=email_payload(subject="too soon")).status_code == 429
    time.sleep(max(0.0, refused_at + retry_after + 0.1 - time.monotonic()))
    assert api.post(SEND, json=email_payload(subject="in time")).status_code == 202


def test_a_batch_costs_one_per_email_and_an_over_limit_batch_enqueues_nothing(
    api_factory, service_env, redis_client
):
    api = _api(api_factory, service_env, "10/minute")

    first = api.post(BATCH, json=_batch(8, "first"))
    assert first.status_code == 202
    assert first.headers["RateLimit-Remaining"] == "2"

    second = api.post(BATCH, json=_batch(3, "second"))  # 1 at the door, then 2 more: 11 > 10
    assert second.status_code == 429
    assert second.headers["Retry-After"]
    assert _jobs(redis_client) == 8

    last = api.post(SEND, json=email_payload(subject="last"))
    assert last.status_code == 202
    assert last.headers["RateLimit-Remaining"] == "0"
    assert api.post(SEND, json=email_payload(subject="one more")).status_code == 429


def test_a_batch_larger_than_the_limit_itself_is_refused_as_invalid(api_factory, service_env):
    api = _api(api_factory, service_env, "10/minute")

    response = api.post(BATCH, json=_batch(11, "big"))

    assert response.status_code == 422
    assert "emails" in response.json["error"]["fields"]


def test_each_key_has_its_own_quota(api_factory, service_env):
    api = _api(api_factory, service_env, "2/minute", API_KEYS=f"{API_KEY},{OTHER_KEY}")
    other = {"Authorization": f"Bearer {OTHER_KEY}"}

    assert [api.post(SEND, json=email_payload(subject=str(i))).status_code for i in range(3)] == [
        202,
        202,
        429,
    ]
    response = api.post(SEND, json=email_payload(subject="other key"), headers=other)

    assert response.status_code == 202
    assert response.headers["RateLimit-Remaining"] == "1"


def test_every_v1_answer_carries_the_quota_and_unauthenticated_ones_do_not(
    api_factory, service_env
):
    api = _api(api_factory, service_env, "100/minute")

    stats = api.get("/v1/queue/stats")
    anonymous = api.client.get("/v1/queue/stats")

    assert stats.status_code == 200
    assert stats.headers["RateLimit-Limit"] == "100"
    assert stats.headers["RateLimit-Remaining"] == "99"
    assert int(stats.headers["RateLimit-Reset"]) <= 60
    assert anonymous.status_code == 401
    assert "RateLimit-Limit" not in anonymous.headers


def test_redis_down_is_a_503_not_a_500(api_factory, service_env, tmp_path):
    redis = RedisServer(tmp_path / "redis", port=free_port(), password="rate-limit-test")
    redis.start()
    api = _api(api_factory, service_env, "100/second", REDIS_URL=redis.url)
    assert api.post(SEND, json=email_payload(subject="before")).status_code == 202

    redis.stop()
    down = api.post(SEND, json=email_payload(subject="during"))

    assert down.status_code == 503
    assert down.json["error"]["code"] == "queue_unavailable"
    assert down.headers["Retry-After"]
