"""One worker process from start to exit; the only owner of its event loop.

Shutdown follows saq's start/stop: SIGTERM or SIGINT sets an event, the worker stops taking
jobs, the active ones finish within the grace period, connections close, the process exits 0.
A second signal cancels what is still running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import redis.asyncio as redis

from postbox.config import Settings
from postbox.queue.connection import worker_client
from postbox.queue.consumer import EmailConsumer
from postbox.queue.journal import SendJournal
from postbox.workers.circuit import RelayCircuit
from postbox.workers.processor import EmailProcessor
from postbox.workers.rate_limit import SendRateLimiter
from postbox.workers.smtp_pool import SmtpPool

logger = logging.getLogger(__name__)


class WorkerRunner:
    """Builds a worker's collaborators, runs it until a signal, and tears it down."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stop = asyncio.Event()
        self._force = asyncio.Event()

    async def run(self) -> None:
        """Process jobs until SIGTERM/SIGINT, then shut down gracefully."""
        self._install_signal_handlers()
        settings = self._settings
        client = worker_client(settings.redis)
        pool = SmtpPool(settings.smtp)
        name = f"{settings.instance_id}-{os.getpid()}"
        consumer, circuit = self._build(client, pool, name)
        await consumer.start()
        logger.info(
            "Worker %s taking jobs from %r (concurrency %d, SMTP %s:%d, pool %d)",
            name,
            settings.redis.queue_name,
            settings.worker.concurrency,
            settings.smtp.host,
            settings.smtp.port,
            settings.smtp.pool_size,
        )
        await self._stop.wait()
        logger.info("Stopping: no new jobs; waiting for %d active", consumer.active_count)
        await circuit.close()
        await consumer.close(settings.worker.shutdown_grace_seconds, self._force)
        await pool.close()
        await client.aclose(close_connection_pool=True)
        logger.info("Worker %s stopped", name)

    def _build(
        self, client: redis.Redis, pool: SmtpPool, name: str
    ) -> tuple[EmailConsumer, RelayCircuit]:
        settings = self._settings
        journal = SendJournal(client, settings.redis.queue_name, settings.dedup_window_seconds)
        limiter = SendRateLimiter(settings, client)
        circuit = RelayCircuit(pool.probe)
        processor = EmailProcessor(pool, journal, limiter, circuit, name)
        consumer = EmailConsumer(settings, client, processor.process, name)
        circuit.pauses(consumer)
        return consumer, circuit

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)

    def _on_signal(self, signum: int) -> None:
        if self._stop.is_set():
            logger.warning("Second %s: cancelling active jobs", signal.Signals(signum).name)
            self._force.set()
            return
        logger.info("Received %s", signal.Signals(signum).name)
        self._stop.set()


def run_worker(settings: Settings) -> None:
    """Run one worker process to completion on a fresh uvloop event loop."""
    import uvloop  # noqa: PLC0415  (only worker processes need it)

    uvloop.run(WorkerRunner(settings).run())
