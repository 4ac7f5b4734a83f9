"""The consuming side of the queue: a tuned bullmq worker behind a bullmq-free interface.

Handlers see an `EmailJob`, return a `Completion` and raise Postbox errors; this module turns
a permanent failure into bullmq's `UnrecoverableError` (no more attempts) and a `Postponed`
into a delay that spends no attempt. The tuning (postbox/queue/_engine/__init__.py says
what was measured): a pooled client shared by both of the worker's connections,
capabilities primed so sub-second blocks work, and the run loop of `_engine/slot_worker.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from bullmq import Job
from bullmq.custom_errors import DelayedError, UnrecoverableError

from postbox.config import Settings
from postbox.errors import AttemptFailed, DeliveryError, PermanentDeliveryError, Postponed
from postbox.logs import email_id
from postbox.queue._engine.script_call import ScriptCall
from postbox.queue._engine.slot_worker import SlotWorker
from postbox.queue.connection import UNAVAILABLE_ERRORS
from postbox.queue.contract import EmailJobData, failure_reason

logger = logging.getLogger(__name__)

# How long an idle worker blocks on Redis before looking again; below the client's timeout.
DRAIN_DELAY_SECONDS = 5
# How soon a fetch is tried again while Redis is unreachable (bullmq's default, 15 s, left
# deliveries waiting ~12 s after Redis returned).
RUN_RETRY_DELAY_MS = 500
# How often a worker started before its Redis looks for it again.
START_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class EmailJob:
    """One job as a handler sees it.

    `ran_before` is False only on a job's very first run. BullMQ counts every start (`ats`),
    this one included, before handing the job out: a first run sees 1, and a re-run after a
    crash, retry, postponement or dead-letter requeue (which keeps `ats`) sees more.

    `confirm_lock` is awaited right before the SMTP transaction: it returns once this worker
    holds the job's lock for at least as long as a send may take (`send_needs_ms`), waiting
    while Redis is unreachable, and raises `LockLost` otherwise (the handler lets it through:
    the job is then neither sent nor completed, and spends no attempt).
    """

    id: str
    data: EmailJobData
    attempt: int
    max_attempts: int
    ran_before: bool
    confirm_lock: Callable[[], Awaitable[None]]
    backoff_ms: int = 1000


@dataclass(frozen=True)
class Completion:
    """A handler's success: the job's result, and writes that go with its completion (the
    send journal's settle), in the same Redis transaction, right after it."""

    result: dict[str, Any]
    writes: Sequence[ScriptCall] = ()


def retry_delay_ms(job_id: str, attempt: int, base_ms: int) -> int:
    """How long after a failed `attempt` the next one runs: exponential from `base_ms`, with
    up to -50 % jitter so retries of a burst do not hit the relay together. The jitter is
    drawn from the job id and attempt, so the worker can say when in the `email.deferred`
    event before BullMQ computes the same delay."""
    jitter = random.Random(f"{job_id}:{attempt}").uniform(0.5, 1.0)  # noqa: S311
    return int(base_ms * 2 ** (attempt - 1) * jitter)


def jittered_exponential(attempts_made: int, kind: str, err: object, job: Any) -> int:
    """BullMQ backoff strategy (`retry_delay_ms` for the job's `backoff.delay`)."""
    return retry_delay_ms(job.id, attempts_made, _backoff_ms(job.opts))


def _backoff_ms(opts: dict[str, Any]) -> int:
    return int((opts.get("backoff") or {}).get("delay", 1000))


Handler = Callable[[EmailJob], Awaitable[Completion]]


def send_needs_ms(settings: Settings) -> int:
    """The lock time a send may take, which a job must have left for its send to start.

    One transaction waits for the relay up to SMTP_TIMEOUT_SECONDS per reply; a lock shorter
    than that would refuse every send, so at most half the lock duration is asked for (with
    the defaults, 15 s of a 30 s lock). Right after the confirmation the lock has almost its
    whole duration left: this refuses only when the confirmation itself was slow.
    """
    return int(min(settings.smtp.timeout_seconds * 1000, settings.worker.lock_duration_ms / 2))


class EmailConsumer:
    """Runs a bullmq worker on the current event loop until `close`."""

    def __init__(
        self, settings: Settings, client: redis.Redis, handler: Handler, name: str
    ) -> None:
        self._handler = handler
        worker_settings = settings.worker
        self._worker = SlotWorker(
            settings.redis.queue_name,
            self._process,
            {
                "connection": client,
                "concurrency": worker_settings.concurrency,
                "drainDelay": DRAIN_DELAY_SECONDS,
                "lockDuration": worker_settings.lock_duration_ms,
                "stalledInterval": worker_settings.stalled_interval_ms,
                "maxStalledCount": worker_settings.max_stalled_count,
                "runRetryDelay": RUN_RETRY_DELAY_MS,
                "name": name,
                "settings": {"backoffStrategy": jittered_exponential},
            },
            send_needs_ms(settings),
            settings.worker.send_mark_seconds * 1000,
            ack=settings.redis.ack,
        )
        self._run_task: asyncio.Task[None] | None = None

    @property
    def active_count(self) -> int:
        """Jobs being processed right now."""
        return len(self._worker.jobs)

    async def pause(self) -> None:
        """Stop fetching new jobs; active ones carry on."""
        await self._worker.pause(do_not_wait_active=True)

    def resume(self) -> None:
        """Fetch jobs again after `pause`."""
        self._worker.resume()

    async def start(self, stop: asyncio.Event) -> bool:
        """Prime the connections' capabilities once Redis answers, then start taking jobs;
        False if `stop` was set first.

        A worker started before its Redis (a host's boot order, a compose file without
        health checks) waits for it, as it waits out an outage later: it exited with a
        traceback and was restarted by its supervisor with a growing delay.
        """
        while not stop.is_set():
            try:
                await self._worker.blockingRedisConnection.getRedisVersion()
                await self._worker.redisConnection.getRedisVersion()
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("Worker waits for Redis: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), START_RETRY_SECONDS)
                continue
            self._run_task = asyncio.create_task(self._worker.run(), name="bullmq-worker")
            return True
        return False

    async def close(self, grace_seconds: float, cancel_now: asyncio.Event) -> None:
        """Stop taking jobs and let active ones finish; cancel them after the grace period
        or as soon as `cancel_now` is set."""
        closing = asyncio.ensure_future(self._worker.close())
        cancel_wait = asyncio.ensure_future(cancel_now.wait())
        await asyncio.wait(
            {closing, cancel_wait}, timeout=grace_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        cancel_wait.cancel()
        if not closing.done():
            logger.warning("Cancelling %d active jobs", self.active_count)
            await self._worker.close(force=True)
            await closing
        if self._run_task is not None:
            await self._run_task

    async def _process(self, job: Job, token: str) -> Completion:
        # Each job runs in its own task: the id stays on this job's log lines only.
        email_id.set(job.id)
        email_job = EmailJob(
            job.id,
            job.data,
            job.attemptsMade + 1,
            job.opts.get("attempts", 1),
            ran_before=job.attemptsStarted > 1,
            confirm_lock=functools.partial(self._worker.confirm_lock, job.id, token),
            backoff_ms=_backoff_ms(job.opts),
        )
        try:
            return await self._handler(email_job)
        except PermanentDeliveryError as exc:
            raise UnrecoverableError(failure_reason(exc.error_class, str(exc))) from exc
        except DeliveryError as exc:
            raise AttemptFailed(failure_reason(exc.error_class, str(exc))) from exc
        except Postponed as exc:
            await job.moveToDelayed(exc.until_ms, token)
            raise DelayedError(str(exc)) from exc
