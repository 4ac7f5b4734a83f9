"""A recorder that has read a batch and loses Redis while it lingers for more writes that
batch at once, instead of leaving it pending until a takeover 30 s after Redis is back.
The network is cut with a TCP proxy between the recorder and Redis (tests/tcp_proxy.py);
the events are written to Redis directly, the history to SQLite."""

from __future__ import annotations

import asyncio
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
from tests.support import wait_until
from tests.tcp_proxy import TcpProxy, proxied_url
from tests.webhook_support import add_event

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


def _email_data(n: int) -> dict[str, object]:
    return {
        "message_id": f"<m{n}@example.com>",
        "from": "sender@example.com",
        "to": [f"user{n}@example.org"],
        "tags": [],
    }


def _emails(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(schema.emails)).scalar_one())


def test_a_batch_read_before_redis_went_away_is_written_at_once(
    engine: Engine,
    redis_url: str,
    redis_client,
    redis_proxy: TcpProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recorder_module, "LINGER_SECONDS", LINGER_SECONDS)

    def read() -> bool:
        return int(redis_client.xpending(KEYS.events(), CONSUMER_GROUP)["pending"]) == EMAILS

    def written() -> bool:
        return _emails(engine) == EMAILS

    async def run() -> None:
        proxied = aioredis.Redis.from_url(
            proxied_url(redis_url, redis_proxy), decode_responses=True
        )
        recorder = Recorder(proxied, engine, "email", "cut-test")
        stop = asyncio.Event()
        await recorder.start()  # the group exists: the events below are the recorder's
        for n in range(EMAILS):
            add_event(redis_client, "email.queued", email=f"e{n}", **_email_data(n))
        running = asyncio.ensure_future(recorder.run(stop))
        try:
            await asyncio.to_thread(wait_until, read, 10)
            redis_proxy.cut()
            # Before: nothing until Redis was back and 30 s had passed.
            await asyncio.to_thread(wait_until, written, LINGER_SECONDS + 5)
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)
            await proxied.aclose()

    asyncio.run(run())
