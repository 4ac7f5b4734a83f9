"""The synchronous face of the queue for the API: one per process, safe after fork.

Each request thread gets its own event loop, Redis client and bullmq `Queue`, made on first
use in the thread and process that use them (gunicorn forks after the app is built), so a
call runs on the caller's thread with no hand-off (portal.py says what a hand-off cost). The
registry heartbeat runs between requests, on a loop thread of its own. Redis being unreachable
becomes `QueueUnavailable`, and Redis out of memory `QueueFull`; the API answers both with 503.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import redis.asyncio as redis
from bullmq import Queue

from postbox.config import Settings
from postbox.errors import QueueFull
from postbox.per_process import PerProcess, PerThread
from postbox.queue import dead_letters
from postbox.queue.connection import (
    API_TIMEOUT_SECONDS,
    UNAVAILABLE_ERRORS,
    api_client,
    redis_reachable,
)
from postbox.queue.contract import default_job_options
from postbox.queue.dead_letters import DeadLetterPage
from postbox.queue.keys import PostboxKeys
from postbox.queue.memory import IntakeRoom, WriteRefusals, memory_info
from postbox.queue.portal import LoopThread, ThreadLoop
from postbox.queue.producer import EmailProducer, Enqueued, PreparedEmail
from postbox.queue.registry import Counts, InstanceInfo, InstanceRegistry
from postbox.queue.screening import IntakeScreen
from postbox.queue.stats import job_counts, queue_stats
from postbox.queue.status import EmailView, lookup_email

T = TypeVar("T")
# A call makes a few Redis round trips; past this bound it is cancelled (dropping its
# connection) and the view answers 503. Reads have no timeout of their own (connection.py).
CALL_TIMEOUT_SECONDS = API_TIMEOUT_SECONDS * 3
READINESS_PROBE_MS = 10_000
THREAD_POOL_SIZE = 8


class _Resources:
    """What one thread holds (or the heartbeat's loop thread): its loop and the clients
    living on it."""

    def __init__(self, settings: Settings, loop: ThreadLoop | LoopThread) -> None:
        self.loop = loop
        self.client: redis.Redis = self.loop.call(_make_client(settings), timeout=5)
        self.queue = Queue(
            settings.redis.queue_name,
            {
                "connection": self.client,
                "defaultJobOptions": default_job_options(
                    settings.worker.max_attempts,
                    settings.worker.backoff_ms,
                    settings.keep_completed_jobs,
                ),
            },
        )
        self.producer = EmailProducer(
            self.queue, self.client, settings.dedup_window_seconds, settings.redis.ack
        )
        self.intake = IntakeRoom(self.client, settings.redis.intake_memory_percent)
        self.registry = InstanceRegistry(
            self.client, settings.redis.queue_name, settings.heartbeat_seconds
        )
        self.member: InstanceInfo | None = None
        self.heartbeat: concurrent.futures.Future[None] | None = None


async def _enqueue(
    resources: _Resources, emails: Sequence[PreparedEmail], screen: IntakeScreen | None
) -> Enqueued:
    await resources.intake.ensure(sum(len(email.data["message"]) for email in emails))
    return await resources.producer.enqueue(emails, screen)


async def _make_client(settings: Settings) -> redis.Redis:
    # Built on its loop so its pool binds to that loop; a thread makes one call at a time
    # (a few concurrent lookups at most), so its pool is small.
    return api_client(settings.redis, THREAD_POOL_SIZE)


class QueueGateway:
    """Blocking calls into the queue, each bounded in time."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resources = PerThread(lambda: _Resources(settings, ThreadLoop()))
        self._background = PerProcess(lambda: _Resources(settings, LoopThread()))
        self._refusals = WriteRefusals()

    def _call(self, make: Callable[[_Resources], Awaitable[T]]) -> T:
        resources = self._resources.get()

        async def run() -> T:
            return await make(resources)

        with redis_reachable():
            return resources.loop.call(run(), CALL_TIMEOUT_SECONDS)

    def enqueue(
        self, emails: Sequence[PreparedEmail], screen: IntakeScreen | None = None
    ) -> Enqueued:
        """Enqueue `emails` (one `add`, or one `addBulk` for several) as `screen` leaves
        them; `QueueFull` when Redis is out of memory (logged once per period of refusals,
        not per request)."""
        try:
            results = self._call(lambda r: _enqueue(r, emails, screen))
        except QueueFull:
            self._refusals.refused()
            raise
        self._refusals.accepted()
        return results

    def lookup(self, job_id: str) -> EmailView | None:
        """The status of one email, or None if unknown."""
        return self._call(lambda r: lookup_email(r.queue, job_id))

    def lookup_many(self, job_ids: Sequence[str]) -> list[EmailView | None]:
        """The status of several emails, looked up concurrently."""
        return self._call(lambda r: _gather([lookup_email(r.queue, i) for i in job_ids]))

    def stats(self) -> dict[str, Any]:
        """Queue-wide counts, workers, throughput, the registered processes, and Redis's
        memory (under `redis`)."""
        stats = self._call(lambda r: queue_stats(r.queue, r.registry))
        stats["redis"] = self._call(lambda r: memory_info(r.client))
        return stats

    def counts(self) -> dict[str, int]:
        """Jobs per state (one round trip), for the metrics' queue depth."""
        return self._call(lambda r: job_counts(r.queue))

    def shared_secret(self) -> str:
        """A random secret shared by every instance through Redis, made by the first to ask
        (signs dashboard sessions when SECRET_KEY is not set)."""
        key = PostboxKeys(self._settings.redis.queue_name).dashboard_secret()
        return self._call(lambda r: _shared_secret(r.client, key))

    def start_heartbeat(self, info: InstanceInfo, counts: Counts) -> None:
        """Keep this process's registry entry fresh, from a loop thread, until `close`."""
        resources = self._background.get()
        assert isinstance(resources.loop, LoopThread)
        resources.member = info
        resources.heartbeat = resources.loop.spawn(resources.registry.run(info, counts))

    def list_dead_letters(
        self, limit: int, cursor: str | None, offset: int, error_class: str | None
    ) -> DeadLetterPage:
        """One page of failed emails, newest first; `InvalidCursor` for a foreign cursor."""
        return self._call(
            lambda r: dead_letters.list_dead_letters(r.queue, limit, cursor, offset, error_class)
        )

    def retry_dead_letter(self, job_id: str) -> bool:
        """Requeue one failed email; False if it is not a dead letter."""
        return self._call(lambda r: dead_letters.retry_dead_letter(r.queue, job_id))

    def retry_dead_letters(self, error_class: str | None) -> int:
        """Requeue every failed email (of `error_class`, if given); how many were."""
        return self._call(lambda r: dead_letters.retry_dead_letters(r.queue, error_class))

    def discard_dead_letter(self, job_id: str) -> bool:
        """Delete one failed email; False if it is not a dead letter."""
        return self._call(lambda r: dead_letters.discard_dead_letter(r.queue, job_id))

    def with_client(self, make: Callable[[redis.Redis], Awaitable[T]]) -> T:
        """Run `make(client)` on the loop thread, bounded in time like every call here: for
        the modules beside the queue that keep their own keys (webhook endpoints)."""
        return self._call(lambda r: make(r.client))

    def ping(self) -> bool:
        """True when Redis answers."""
        return bool(self._call(lambda r: r.client.ping()))

    def probe_write(self) -> None:
        """Write one short-lived key: `QueueFull` when Redis refuses writes (the readiness
        that matters to an API whose every POST writes)."""
        key = PostboxKeys(self._settings.redis.queue_name).readiness_probe()
        self._call(lambda r: r.client.set(key, "1", px=READINESS_PROBE_MS))

    def close(self) -> None:
        """Leave the registry, release this process's connections, stop its loops."""
        background = self._background.take()
        if background is not None and isinstance(background.loop, LoopThread):
            background.loop.stop(_close(background))
        for resources in self._resources.take_all():
            if isinstance(resources.loop, ThreadLoop):
                with contextlib.suppress(RuntimeError, *UNAVAILABLE_ERRORS):
                    resources.loop.close(_close(resources))


async def _gather(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    return list(await asyncio.gather(*coros))


async def _shared_secret(client: redis.Redis, key: str) -> str:
    fresh = secrets.token_urlsafe(48)
    existing = await client.set(key, fresh, nx=True, get=True)
    return str(existing or fresh)


async def _close(resources: _Resources) -> None:
    if resources.heartbeat is not None and resources.member is not None:
        resources.heartbeat.cancel()
        with contextlib.suppress(*UNAVAILABLE_ERRORS):
            await resources.registry.leave(resources.member)
    await resources.client.aclose(close_connection_pool=True)
