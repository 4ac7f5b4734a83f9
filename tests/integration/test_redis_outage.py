"""Redis unreachable or hung: the API answers 503 in bounded time with a JSON error, and
recovers by itself."""

from __future__ import annotations

import os
import signal
import time

from postbox.config import load_settings
from postbox.dev.ports import free_port
from postbox.dev.redis_server import RedisServer
from postbox.queue.gateway import CALL_TIMEOUT_SECONDS
from tests.support import email_payload


def test_api_answers_503_while_redis_is_down_and_recovers(api_factory, service_env, tmp_path):
    redis = RedisServer(tmp_path / "redis", port=free_port(), password="outage-test")
    redis.start()
    api = api_factory(load_settings({**service_env, "REDIS_URL": redis.url}))
    assert api.post("/v1/emails", json=email_payload(subject="before")).status_code == 202

    redis.stop()
    started = time.monotonic()
    down = api.post("/v1/emails", json=email_payload(subject="during"))
    assert time.monotonic() - started < 5
    assert down.status_code == 503
    assert down.json["error"]["code"] == "queue_unavailable"
    assert down.headers["Retry-After"]
    assert api.client.get("/readyz").status_code == 503
    assert api.client.get("/healthz").status_code == 200

    redis.start()
    try:
        assert api.client.get("/readyz").status_code == 200
        assert api.post("/v1/emails", json=email_payload(subject="after")).status_code == 202
    finally:
        redis.stop()


def test_api_answers_503_when_redis_stops_answering_and_recovers(
    api_factory, service_env, tmp_path
):
    # A stopped process still has its connections accepted by the kernel; nothing answers.
    redis = RedisServer(tmp_path / "redis", port=free_port(), password="hang-test")
    redis.start()
    try:
        api = api_factory(load_settings({**service_env, "REDIS_URL": redis.url}))
        assert api.post("/v1/emails", json=email_payload(subject="before")).status_code == 202
        assert redis.pid is not None
        os.kill(redis.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            hung = api.post("/v1/emails", json=email_payload(subject="during"))
            elapsed = time.monotonic() - started
        finally:
            os.kill(redis.pid, signal.SIGCONT)
        assert hung.status_code == 503
        assert hung.json["error"]["code"] == "queue_unavailable"
        assert elapsed < CALL_TIMEOUT_SECONDS + 1
        assert api.post("/v1/emails", json=email_payload(subject="after")).status_code == 202
    finally:
        redis.stop()
