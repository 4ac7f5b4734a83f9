"""Fixtures of the history tests (imported by conftest.py): a private PostgreSQL cluster for
the session, and a fresh history database per test, in PostgreSQL and in SQLite."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from postbox.dev.postgres_server import PostgresServer

_names = itertools.count()
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (the Redis fixture's pattern)."""
    server = PostgresServer()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty PostgreSQL database for this test."""
    return postgres_server.create_database(f"history_{next(_names)}")


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty history database for this test: once in PostgreSQL, once in SQLite."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


class RecorderProcess:
    """A real `postbox emails record` process."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "postbox", "emails", "record"],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: a recorder that dies mid-batch."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture
def history_env(service_env: dict[str, str], database_url: str) -> dict[str, str]:
    """The services' environment with this test's history database."""
    return {**service_env, "DATABASE_URL": database_url, "HISTORY_CLAIM_IDLE_SECONDS": "1"}


@pytest.fixture
def pg_history_env(service_env: dict[str, str], postgres_url: str) -> dict[str, str]:
    """The same with a PostgreSQL database only (for tests whose SQLite run adds nothing)."""
    return {**service_env, "DATABASE_URL": postgres_url, "HISTORY_CLAIM_IDLE_SECONDS": "1"}


@pytest.fixture
def recorder_factory(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], RecorderProcess]]:
    """Start `postbox emails record` processes; each is stopped at the end of the test."""
    made: list[RecorderProcess] = []

    def start(env: dict[str, str]) -> RecorderProcess:
        made.append(RecorderProcess(env, tmp_path / f"recorder-{len(made)}.log"))
        return made[-1]

    yield start
    for recorder in made:
        recorder.stop()
