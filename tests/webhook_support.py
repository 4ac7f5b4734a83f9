"""Helpers for webhook delivery tests: endpoints made through the real store, events added to
the stream in its layout, and `postbox webhooks dispatch` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis

from postbox.queue.events import register_consumer
from postbox.queue.keys import PostboxKeys
from postbox.webhooks.endpoints import CONSUMER_GROUP, Endpoint, EndpointStore
from postbox.webhooks.secret_box import SecretBox
from tests.support import TEST_ENCRYPTION_KEY, wait_until

T = TypeVar("T")
KEYS = PostboxKeys("email")


def with_store(redis_url: str, action: Callable[[EndpointStore], Awaitable[T]]) -> T:
    """Run `action` on the real endpoint store in a fresh event loop."""

    async def main() -> T:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await action(EndpointStore(client, "email", SecretBox(TEST_ENCRYPTION_KEY)))
        finally:
            await client.aclose()

    return asyncio.run(main())


def create_endpoint(
    redis_url: str, url: str, events: tuple[str, ...] = ("*",), domains: tuple[str, ...] = ()
) -> tuple[Endpoint, str]:
    """An endpoint as the API makes one (its consumer group registered); it and its secret.
    The URL is not checked: a test may name one that resolves to a forbidden address."""
    return with_store(redis_url, lambda store: store.create(url, events, "", "", domains))


def register_group(redis_url: str) -> None:
    """Register the dispatchers' consumer group (as making the first endpoint does)."""

    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await register_consumer(client, "email", CONSUMER_GROUP)
        finally:
            await client.aclose()

    asyncio.run(main())


def add_event(
    client: Any,
    kind: str = "email.sent",
    email: str = "em_1",
    domain: str = "example.com",
    **data: Any,
) -> str:
    """Append one event to the stream in the layout the emission points write; its entry id."""
    payload = {"email_id": email, "attempt": 1, **data}
    fields = {"type": kind, "email": email, "domain": domain, "data": json.dumps(payload)}
    return str(client.xadd(KEYS.events(), fields))


def attempts_log(client: Any, endpoint_id: str) -> list[dict[str, Any]]:
    """The endpoint's logged attempts, oldest first."""
    return [
        json.loads(line) for line in reversed(client.lrange(KEYS.webhook_log(endpoint_id), 0, -1))
    ]


class DispatcherProcess:
    """A real `postbox webhooks dispatch` process."""

    def __init__(self, env: dict[str, str], log_path: Path, cwd: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "postbox", "webhooks", "dispatch"],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, endpoints: int) -> None:
        """Wait until it has loaded `endpoints` enabled endpoints (and started their senders)."""
        wait_until(lambda: f": {endpoints} enabled" in self.log(), timeout=20)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
