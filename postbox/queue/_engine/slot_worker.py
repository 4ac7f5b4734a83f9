"""A bullmq `Worker` with a leaner run loop: long-lived slots that chain jobs.

bullmq 3.4's Python `Worker.run` fetches every job with a `moveToActive` call of its own,
completes it with `fetch_next=False`, and re-arms `asyncio.wait` over every in-flight task
on each turn. Once the queue runs dry, all free slots call `moveToActive` whenever one job
arrives: 72 script calls per email were measured at 200 emails/s with concurrency 100.

Here each of the `concurrency` slots is one task that lives as long as the worker:
- completing a job fetches the next one in the same Lua call (`moveToFinished` with
  fetchNext, as the Node worker does), so a busy slot makes one script call per job;
- completions share transactions (`completions.py`): those that come while one is in flight
  go together in the next, each followed by its handler's own writes (the send journal's
  settle), so a busy
  worker needs few Redis connections and fewer round trips than emails; a processed job is
  never failed by its completion;
- while the queue is drained, one slot blocks on Redis for all; a slot that gets a job wakes
  one idle slot, so a burst fans out and a lone arrival costs two fetches, not a hundred.
- before each send the processor confirms the job's lock (`confirm_lock`, `locks.py`); a
  job whose lock is lost (`LockLost`) is neither completed nor failed: the stalled-job check
  hands it to whoever owns it now, and the attempt is not spent.
Pausing, closing, lock renewal and the stalled-job check are bullmq's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from bullmq import Job, Worker
from bullmq.custom_errors import DelayedError
from bullmq.scripts import raw2NextJobData
from bullmq.timer import Timer

from postbox.config import ReplicaAck
from postbox.errors import LockLost
from postbox.queue._engine.completions import Completions
from postbox.queue._engine.locks import LockConfirmations
from postbox.queue._engine.script_call import ScriptCall
from postbox.queue.keys import PostboxKeys

logger = logging.getLogger(__name__)


class Completion(Protocol):
    """What a processor returns on success (postbox.queue.consumer.Completion): the job's
    result, and writes that go right after the completion, in its transaction."""

    @property
    def result(self) -> dict[str, Any]: ...

    @property
    def writes(self) -> Sequence[ScriptCall]: ...


Processor = Callable[[Job, str], Awaitable[Completion]]


class SlotWorker(Worker):  # type: ignore[misc]  # bullmq has no type hints
    """A bullmq worker whose processor returns a `Completion`; it starts when `run` is
    awaited (never on its own, as bullmq's autorun would)."""

    def __init__(
        self,
        name: str,
        processor: Processor,
        opts: dict[str, Any],
        send_needs_ms: int,
        send_mark_ms: int,
        *,
        ack: ReplicaAck | None = None,
    ) -> None:
        """`send_needs_ms`: the lock time a send may take; less left, and it does not start.
        `send_mark_ms`: how long a send mark outlives its lock confirmation (journal.py).
        `ack`: the replicas each completion waits for (REDIS_ACK_REPLICAS)."""
        super().__init__(name, processor, {**opts, "autorun": False})
        self._idle: deque[asyncio.Future[None]] = deque()
        mark = PostboxKeys(name).replication_mark()
        self._completions = Completions(self.client, mark, ack)
        self._locks = LockConfirmations(self, send_needs_ms, send_mark_ms, ack)

    async def confirm_lock(self, job_id: str, token: str) -> None:
        """Extend the job's lock before a send; raises `LockLost` if it is not this
        worker's for long enough (waits while Redis is unreachable)."""
        await self._locks.confirm(job_id, token)

    async def run(self) -> None:
        """Run the slots until the worker closes."""
        await self._ensure_client_names()
        self.lockManager.start()
        interval = self.opts["stalledInterval"] / 1000
        self.stalledCheckTimer = Timer(interval, self.runStalledJobsCheck, self.emit)
        self.running = True
        slots = [asyncio.ensure_future(self._slot(n)) for n in range(self.opts["concurrency"])]
        self.processing = set(slots)
        try:
            await asyncio.gather(*slots, return_exceptions=True)
        finally:
            self.running = False
            for slot in slots:
                slot.cancel()
            self.stalledCheckTimer.stop()
            await self.lockManager.close()

    async def pause(self, do_not_wait_active: bool = True) -> None:
        """Stop taking jobs; active ones carry on. (bullmq's wait for active jobs would wait
        for the slots, which live as long as the worker.)"""
        await super().pause(do_not_wait_active=True)

    async def close(self, force: bool = False) -> None:
        """Close as bullmq does, after waking idle slots so they can see it."""
        self.closing = True
        self._wake(len(self._idle))
        await super().close(force)

    async def _slot(self, number: int) -> None:
        fetches = 0
        while not self.closing:
            if self.paused:
                await self.resume_event.wait()
                continue
            fetches += 1
            token = f"{self.id}:{number}:{fetches}"
            job = await self._fetch(token)
            while job is not None:
                job = await self._run(job, token)

    async def _fetch(self, token: str) -> Job | None:
        """The next job, or None to look again (woken, paused, closing or drained)."""
        if self.drained and self.waiting is not None:
            # Another slot is blocked on Redis and will wake this one when jobs come.
            woken = asyncio.get_running_loop().create_future()
            self._idle.append(woken)
            await woken
            return None
        try:
            job = await self.retryIfFailed(
                lambda: self.getNextJob(token),
                {"delay_in_ms": self.opts["runRetryDelay"], "only_emit_error": True},
            )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # pause() or close() cancelled the wait on Redis, not this slot (bullmq lets
            # that through when the worker was resumed before the wait saw it).
            return None
        if job is not None:
            self._wake(1)
        return job

    def _wake(self, count: int) -> None:
        while count > 0 and self._idle:
            woken = self._idle.popleft()
            if not woken.done():
                woken.set_result(None)
                count -= 1

    async def _run(self, job: Job, token: str) -> Job | None:
        """Process `job` and complete it; returns the next job the completion fetched."""
        self.jobs.add((job, token))
        self.lockManager.track_job(job.id, token, int(time.time() * 1000))
        try:
            try:
                completion = await self.processor(job, token)
            except DelayedError:
                return None
            except LockLost as exc:
                logger.warning("Job %s left unsent and uncompleted: %s", job.id, exc)
                return None
            except Exception as err:
                await self._fail(job, token, err)
                return None
            if self.forceClosing:
                return None
            return await self._complete(job, token, completion)
        finally:
            self.jobs.discard((job, token))
            self.lockManager.untrack_job(job.id)
            self._locks.forget(job.id)

    async def _complete(self, job: Job, token: str, completion: Completion) -> Job | None:
        """Complete a processed job; never fails it (see `completions.py`)."""
        fetch_next = not (self.closing or self.paused)
        remove = job.opts.get("removeOnComplete", False)
        scripts = self.scripts
        keys, args = scripts.moveToCompletedArgs(job, completion.result, remove, token, fetch_next)
        finish = ScriptCall(scripts.commands["moveToFinished"], keys, args)
        try:
            raw = await self._completions.complete([finish, *completion.writes])
        except Exception as exc:
            logger.error("Job %s was processed but could not be completed: %s", job.id, exc)
            return None
        if isinstance(raw, int) and raw < 0:
            # Completed by an earlier try of a replayed pipeline, or its lock expired and the
            # stalled-job check gave it to another worker, whose re-run reads the journal.
            error = scripts.finishedErrors({"code": raw, "jobId": job.id, "command": "complete"})
            logger.warning("Job %s was processed; its completion was refused: %s", job.id, error)
            return None
        job_data, job_id, limit_until, delay_until = raw2NextJobData(raw)
        return await self.nextJobFromJobData(
            job_data, job_id, limit_until or 0, delay_until or 0, token
        )

    async def _fail(self, job: Job, token: str, err: Exception) -> None:
        try:
            if not self.forceClosing:
                await job.moveToFailed(err, token)
            self.emit("failed", job, err)
        except Exception as exc:  # the job stays active; the stalled check returns it
            self.emit("error", exc, job)
