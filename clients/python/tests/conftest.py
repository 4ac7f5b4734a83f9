"""Fixtures of the client's tests: a real `postbox serve` (API, worker, webhook dispatcher)
on the services that tests/conftest.py starts (Redis, an SMTP server), whose fixtures are
reused here by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from postbox.dev.ports import free_port
from tests.conftest import (  # noqa: F401 - fixtures, found by name
    redis_client,
    redis_server,
    redis_url,
    service_env,
    smtp_server,
)
from tests.integration.serving import Process, start, wait_serving


@pytest.fixture
def postbox_factory(
    service_env: dict[str, str],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> Iterator[Callable[..., Process]]:
    """Start `postbox serve` (one gunicorn process, one worker, a webhook dispatcher) with
    `env` over the test's environment; each is stopped, and must exit 0, at the end."""
    made: list[Process] = []

    def make(**env: str) -> Process:
        port = free_port()
        full = {
            **service_env,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_CONCURRENCY": "1",
            "EMAIL_WORKER_PROCESSES": "1",
            "EMAIL_MAX_ATTEMPTS": "1",
            "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
            "TMPDIR": str(tmp_path),
            **env,
        }
        made.append(start(f"serve-{len(made)}", ["serve"], full, tmp_path, port))
        wait_serving(made[-1])
        return made[-1]

    yield make
    for process in made:
        assert process.stop() == 0, process.log_tail()


@pytest.fixture
def postbox(postbox_factory: Callable[..., Process]) -> Process:
    """One `postbox serve` with the test defaults."""
    return postbox_factory()
