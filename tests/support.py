"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

API_KEY = "test-key-0123456789abcdef"


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
