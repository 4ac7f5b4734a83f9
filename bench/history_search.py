"""Search latency over a large history: p50/p99 of GET /v1/emails' queries in PostgreSQL.

A private PostgreSQL cluster (postbox/dev/postgres_server.py) gets `--emails` records
(default 1,000,000) made in the database itself with generate_series: 30 days of emails,
each to 2 of 50,000 recipients, with 2 of 200 tags, a status and a sender of 20. Then each
kind of search (by recipient, by tag, by time range, by status and tag) runs `--queries`
times with random values, a page of 50 with its recipients, as `search()` does it for the
API; the figures are the wall time of each call.

    .venv/bin/python -m bench.history_search [--emails 1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

from postbox.config.history import HistorySettings
from postbox.dev.postgres_server import PostgresServer
from postbox.history.database import create_history_engine
from postbox.history.migrations import migrate
from postbox.history.search import EmailQuery, search

DAY_MS = 86_400_000
END_MS = 1_764_000_000_000
START_MS = END_MS - 30 * DAY_MS
RECIPIENTS = 50_000
TAGS = 200
# Each email's status; its tag rows carry it too (migration 0004). Status and tag are
# correlated (n % 5 and n % 200): for 3 tags in 5 no email is failed, the hard case of a
# status within a tag, where a page must find that nothing matches.
STATUS = "(ARRAY['sent','sent','sent','failed','queued'])[1 + n % 5]"

_FILL = [
    f"""
    INSERT INTO history_emails
    SELECT 'em_' || md5(n::text), '<' || n || '@example.com>',
      'sender' || (n % 20) || '@example.com', 'example.com', 'Subject ' || n,
      '["t' || (n % {TAGS}) || '", "t' || ((n * 7) % {TAGS}) || '"]',
      'k' || (n % 3), {STATUS}, 0, 1,
      {START_MS} + (n::bigint * {30 * DAY_MS} / :emails),
      NULL, 0, NULL, NULL, NULL, '250 OK'
    FROM generate_series(1, :emails) AS n
    """,
    f"""
    INSERT INTO history_recipients
    SELECT 'em_' || md5(n::text), 'user' || ((n::bigint * r) % {RECIPIENTS}) || '@example.org',
      {START_MS} + (n::bigint * {30 * DAY_MS} / :emails), 'accepted', 0, '250 OK'
    FROM generate_series(1, :emails) AS n, (VALUES (1), (7919)) AS m(r)
    ON CONFLICT DO NOTHING
    """,
    f"""
    INSERT INTO history_tags (email_id, tag, created_ms, status, status_seq)
    SELECT 'em_' || md5(n::text), 't' || ((n::bigint * r) % {TAGS}),
      {START_MS} + (n::bigint * {30 * DAY_MS} / :emails), {STATUS}, 0
    FROM generate_series(1, :emails) AS n, (VALUES (1), (7)) AS m(r)
    ON CONFLICT DO NOTHING
    """,
]


def _fill(engine: Engine, emails: int) -> float:
    started = time.monotonic()
    with engine.begin() as connection:
        for statement in _FILL:
            connection.execute(text(statement), {"emails": emails})
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    return time.monotonic() - started


def _queries(rng: random.Random) -> dict[str, Callable[[], EmailQuery]]:
    def window() -> EmailQuery:
        since = rng.randrange(START_MS, END_MS - DAY_MS)
        return EmailQuery(since_ms=since, until_ms=since + DAY_MS)

    return {
        "by_recipient": lambda: EmailQuery(to=f"user{rng.randrange(RECIPIENTS)}@example.org"),
        "by_tag": lambda: EmailQuery(tag=f"t{rng.randrange(TAGS)}"),
        "by_time_range_1_day": window,
        "by_status_and_tag": lambda: EmailQuery(status="failed", tag=f"t{rng.randrange(TAGS)}"),
    }


def _time(engine: Engine, make: Callable[[], EmailQuery], count: int) -> dict[str, float]:
    seconds = []
    for _ in range(count):
        query = make()
        started = time.perf_counter()
        search(engine, query)
        seconds.append(time.perf_counter() - started)
    ranked = sorted(seconds)
    return {
        "p50_ms": round(statistics.median(ranked) * 1000, 2),
        "p99_ms": round(ranked[min(len(ranked) - 1, int(len(ranked) * 0.99))] * 1000, 2),
    }


def run(emails: int, queries: int) -> dict[str, Any]:
    """One measurement; its figures."""
    postgres = PostgresServer()
    try:
        postgres.init()
        postgres.start()
        url = postgres.create_database("search")
        engine = create_history_engine(HistorySettings(database_url=url))
        migrate(engine)
        fill_seconds = _fill(engine, emails)
        rng = random.Random(16)
        figures = {name: _time(engine, make, queries) for name, make in _queries(rng).items()}
        engine.dispose()
    finally:
        postgres.remove()
    return {
        "emails": emails,
        "queries_each": queries,
        "fill_seconds": round(fill_seconds, 1),
        **figures,
        "load_average": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--emails", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(run(args.emails, args.queries), indent=2))


if __name__ == "__main__":
    main()
