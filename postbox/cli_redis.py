"""How a command-line command reaches Redis: a fresh event loop and client per command, and
Redis being unreachable ending the command with one line that names REDIS_URL (its password
masked)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click
import redis.asyncio as redis

from postbox.config import Settings
from postbox.errors import QueueUnavailable
from postbox.queue.connection import api_client, redis_reachable

T = TypeVar("T")


def run_with_redis(settings: Settings, action: Callable[[redis.Redis], Awaitable[T]]) -> T:
    """Run `action` with a client of its own, closed after; see `run_command`."""

    async def run() -> T:
        client = api_client(settings.redis)
        try:
            return await action(client)
        finally:
            await client.aclose(close_connection_pool=True)

    return run_command(settings, run)


def run_command(settings: Settings, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main()` in a fresh event loop; Redis unreachable or full ends the command."""
    try:
        with redis_reachable():
            return asyncio.run(main())
    except QueueUnavailable as exc:
        raise click.ClickException(f"{exc} (REDIS_URL={settings.redis.safe_url})") from exc
