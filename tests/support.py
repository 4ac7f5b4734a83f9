"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from postbox.queue.keys import PostboxKeys
from postbox.queue.records import SentRecord, parse_record

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key-0123456789abcdef"
TEST_ENCRYPTION_KEY = "7a" * 32


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def email_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "from": "Sender <sender@example.com>",
        "to": ["rcpt@example.org"],
        "subject": "Hello",
        "text": "Hello there.",
    }
    payload.update(overrides)
    return payload


def sent_count(client: Any, queue: str = "email") -> int:
    """Emails sent, by the counter the completions keep (sent jobs are removed)."""
    return int(client.get(PostboxKeys(queue).sent_total()) or 0)


def sent_records(client: Any, queue: str = "email") -> dict[str, SentRecord]:
    """Every sent email's compact record, by job id."""
    prefix = PostboxKeys(queue).idempotency("")
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    values = client.mget(keys) if keys else []
    found = {
        key.removeprefix(prefix): parse_record(value)
        for key, value in zip(keys, values, strict=True)
    }
    return {job_id: record for job_id, record in found.items() if record is not None}


def run_postbox(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m postbox ARGS` to its end, with `env` over the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "postbox", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
