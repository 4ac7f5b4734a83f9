"""A recorder that has read a batch and loses Redis while it lingers for more writes that
batch at once, instead of leaving it pending until a takeover 30 s after Redis is back.
The network is cut with a TCP proxy between the recorder and Redis (tests/tcp_proxy.py);
the events are written to Redis directly, the history to SQLite."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import Engine, func, select

from postbox.config.history import HistorySettings
from postbox.history import recorder as recorder_module
from postbox.history import schema
from postbox.history.database import create_history_engine
from postbox.history.migrations import migrate
from postbox.history.recorder import CONSUMER_GROUP, Recorder
from postbox.queue.keys import PostboxKeys
from tests.tcp_proxy import TcpProxy, proxied_url

KEYS = PostboxKeys("email")
EMAILS = 5
# Long enough to cut the network inside it, once the first read is seen pending.
LINGER_SECONDS = 3.0


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = create_history_engine(HistorySettings(database_url=f"sqlite:///{tmp_path}/h.db"))
    migrate(made)
    yield made
    made.dispose()


def _queued_event(n: int) -> dict[str, str]:
    data = {
        "email_id": f"e{n}",
        "message_id": f"<m{n}@example.com>",
        "from": "sender@example.com",
        "to": [f"user{n}@example.org"],
        "tags": [],
        "attempt": 0,
    }
    return {"type": "email.queued", "email": f"e{n}", "domain": "example.com"} | {
        "data": json.dumps(data)
    }


def _emails(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(schema.emails)).scalar_one())


async def _pending(client: aioredis.Redis) -> int:
    summary = await client.xpending(KEYS.events(), CONSUMER_GROUP)
    return int(summary["pending"])


async def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return False


def test_a_batch_read_before_redis_went_away_is_written_at_once(
    engine: Engine, redis_url: str, redis_proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_module, "LINGER_SECONDS", LINGER_SECONDS)

    async def run() -> bool:
        direct = aioredis.Redis.from_url(redis_url, decode_responses=True)
        proxied = aioredis.Redis.from_url(
            proxied_url(redis_url, redis_proxy), decode_responses=True
        )
        recorder = Recorder(proxied, engine, "email", "cut-test")
        stop = asyncio.Event()
        await recorder.start()
        running = asyncio.ensure_future(recorder.run(stop))
        try:
            for n in range(EMAILS):
                await direct.xadd(KEYS.events(), _queued_event(n))

            async def read() -> bool:
                return await _pending(direct) == EMAILS

            assert await _until(read, 10), "the recorder never read the events"
            redis_proxy.cut()

            async def written() -> bool:
                return await asyncio.to_thread(_emails, engine) == EMAILS

            # Before: nothing until Redis was back and 30 s had passed.
            return await _until(written, LINGER_SECONDS + 5)
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)
            await direct.aclose()
            await proxied.aclose()

    assert asyncio.run(run()), "the batch read before the cut was not written while Redis was away"
