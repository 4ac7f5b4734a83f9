"""A worker started before its Redis waits for it and then delivers: it used to exit with
a traceback (the start's first Redis call was not waited out) and be restarted by its
supervisor with a growing delay."""

from __future__ import annotations

import time
from pathlib import Path

from postbox.config import load_settings
from postbox.dev.redis_server import RedisServer
from tests.support import email_payload, wait_until


def test_a_worker_started_before_redis_waits_and_delivers(
    service_env, tmp_path: Path, api_factory, smtp_server, worker_factory
) -> None:
    redis = RedisServer(tmp_path / "redis")  # its port is chosen; nothing listens yet
    env = {**service_env, "REDIS_URL": redis.url}
    worker = worker_factory(**env)
    wait_until(lambda: "Worker waits for Redis" in worker.log(), timeout=30)
    time.sleep(2)  # a few more tries
    assert "exited with code" not in worker.log()
    assert "Traceback" not in worker.log()
    redis.start()
    try:
        api = api_factory(load_settings(env))
        assert api.post("/v1/emails", json=email_payload()).status_code == 202
        wait_until(lambda: len(smtp_server.received) == 1, timeout=30)
        assert "taking jobs from" in worker.log()
    finally:
        worker.stop()
        redis.stop()
