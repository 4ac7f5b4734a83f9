"""PostgreSQL stopped for 20 s under load: delivery goes on, the history waits, and once the
database is back it is complete, with nothing twice."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from postbox.config.history import HistorySettings
from postbox.dev.postgres_server import PostgresServer
from postbox.history import schema
from postbox.history.database import create_history_engine
from tests.integration.test_history_recorder import count, recording, statuses
from tests.support import email_payload, sent_count, wait_until

OUTAGE_SECONDS = 20


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, since the test stops it."""
    server = PostgresServer()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def outage_engine(own_postgres: PostgresServer) -> Iterator[tuple[str, Engine]]:
    url = own_postgres.create_database("outage")
    engine = create_history_engine(HistorySettings(database_url=url))
    yield url, engine
    engine.dispose()


def test_postgresql_down_delays_history_never_delivery(
    api, service_env, redis_client, worker_factory, own_postgres, outage_engine
) -> None:
    url, engine = outage_engine
    worker = worker_factory(**service_env, DATABASE_URL=url)
    wait_until(lambda: recording(redis_client))
    ids = [
        api.post("/v1/emails", json=email_payload(subject=f"a{i}")).json["id"] for i in range(40)
    ]
    wait_until(lambda: statuses(engine) == dict.fromkeys(ids, "sent"), timeout=30)

    own_postgres.stop()
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < OUTAGE_SECONDS:
        ids += [
            api.post("/v1/emails", json=email_payload(subject=f"b{n}-{i}")).json["id"]
            for i in range(5)
        ]
        n += 1
        time.sleep(0.25)
    # Every email posted during the outage was delivered during it.
    wait_until(lambda: sent_count(redis_client) == len(ids), timeout=15)
    assert time.monotonic() - started < OUTAGE_SECONDS + 15
    own_postgres.start()

    wait_until(lambda: statuses(engine) == dict.fromkeys(ids, "sent"), timeout=60)
    assert count(engine, schema.events) == 2 * len(ids)
    assert count(engine, schema.recipients) == len(ids)
    assert "History delayed" in _recorder_log(worker.log())


def _recorder_log(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if "history" in line.lower())
