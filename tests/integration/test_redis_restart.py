"""The API rides out a Redis restart: pooled connections to the old server are retried once
on a fresh one, instead of answering 503 on each dead connection (issue 19: 29 `503`s in
the 13 s after a `docker restart` of Redis, 8 more two minutes later on untouched replicas).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from postbox.config import Settings, load_settings
from postbox.dev.redis_server import RedisServer
from tests.conftest import ApiClient
from tests.support import email_payload

REQUESTS = 24


def test_api_answers_at_once_when_redis_is_back(
    service_env: dict[str, str], tmp_path: Path, api_factory: Callable[[Settings], ApiClient]
) -> None:
    redis = RedisServer(tmp_path / "redis", appendonly=True)
    redis.start()
    try:
        api = api_factory(load_settings({**service_env, "REDIS_URL": redis.url}))

        def send(index: int) -> int:
            reply = api.post("/v1/emails", json=email_payload(subject=f"restart #{index}"))
            return int(reply.status_code)

        with ThreadPoolExecutor(8) as pool:  # several pooled connections
            assert set(pool.map(send, range(REQUESTS))) == {202}
        redis.stop()
        redis.start()
        with ThreadPoolExecutor(8) as pool:
            after = list(pool.map(send, range(REQUESTS, 2 * REQUESTS)))
        assert after.count(503) == 0, after
        assert set(after) == {202}
    finally:
        redis.stop()
