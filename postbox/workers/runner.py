"""One worker process from start to exit; the only owner of its event loop.

Shutdown follows saq's start/stop: SIGTERM or SIGINT sets an event, the worker stops taking
jobs, the active ones finish within the grace period, connections close, the process exits 0.
A second signal cancels what is still running. Meanwhile the process keeps its entry in the
cluster registry fresh (postbox/queue/registry.py) and counts into the metrics it is given.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import redis.asyncio as redis
from prometheus_client import CollectorRegistry

from postbox.config import Settings
from postbox.config.relays import configured_relays
from postbox.metrics import exposition_registry, serve_metrics
from postbox.queue.connection import worker_client
from postbox.queue.consumer import EmailConsumer
from postbox.queue.delivery_settings import delivery_settings
from postbox.queue.journal import SendJournal
from postbox.queue.registry import InstanceRegistry, this_process
from postbox.workers.metrics import WorkerMetrics
from postbox.workers.processor import EmailProcessor
from postbox.workers.rate_limit import SendRateLimiter
from postbox.workers.relays import Relays
from postbox.workers.suppression_gate import SuppressionGate
from postbox.workers.verp_sender import verp_sender

logger = logging.getLogger(__name__)


class WorkerRunner:
    """Builds a worker's collaborators, runs it until a signal, and tears it down."""

    def __init__(self, settings: Settings, metrics: WorkerMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._stop = asyncio.Event()
        self._force = asyncio.Event()

    async def run(self) -> None:
        """Process jobs until SIGTERM/SIGINT, then shut down gracefully."""
        self._install_signal_handlers()
        settings = self._settings
        client = worker_client(settings.redis)
        info = this_process(
            settings.instance_id, "worker", settings.worker.concurrency, settings.heartbeat_seconds
        )
        name = info.id
        consumer, relays, processor = self._build(client, name)
        if not await consumer.start(self._stop):
            await relays.close_pools()
            await client.aclose(close_connection_pool=True)
            logger.info("Worker %s stopped before Redis answered", name)
            return
        self._metrics.concurrency.set(settings.worker.concurrency)
        instances = InstanceRegistry(client, settings.redis.queue_name, settings.heartbeat_seconds)
        delivery = delivery_settings(settings)  # what the stats show as the settings in use
        async with instances.registered(
            info,
            lambda: (consumer.active_count, processor.processed),
            lambda: {**_relay_entries(relays), "delivery": delivery},
        ):
            logger.info(
                "Worker %s taking jobs from %r (concurrency %d, relays %s)",
                name,
                settings.redis.queue_name,
                settings.worker.concurrency,
                ", ".join(
                    f"{r.name} {r.settings.address} pool {r.settings.smtp.pool_size}"
                    for r in relays.all
                ),
            )
            await self._stop.wait()
            logger.info("Stopping: no new jobs; waiting for %d active", consumer.active_count)
            await relays.close()
            await consumer.close(settings.worker.shutdown_grace_seconds, self._force)
        await relays.close_pools()
        await client.aclose(close_connection_pool=True)
        logger.info("Worker %s stopped", name)

    def _build(
        self, client: redis.Redis, name: str
    ) -> tuple[EmailConsumer, Relays, EmailProcessor]:
        settings = self._settings
        journal = SendJournal(
            client, settings.redis.queue_name, settings.dedup_window_seconds, settings.redis.ack
        )
        limiter = SendRateLimiter(settings, client)
        relays = Relays(configured_relays(settings), limiter, self._metrics, settings.routes)
        gate = SuppressionGate(
            client, settings.redis.queue_name, settings.dedup_window_seconds, settings.suppressions
        )
        processor = EmailProcessor(
            relays,
            journal,
            limiter,
            instance_id=name,
            metrics=self._metrics,
            suppressions=gate,
            verp=verp_sender(settings, client, relays),
        )
        consumer = EmailConsumer(settings, client, processor.process, name)
        relays.pauses(consumer)
        return consumer, relays, processor

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


def _relay_entries(relays: Relays) -> dict[str, Any]:
    """The heartbeat's relay fields: `relays`, each relay's state in order, and `relay`, the
    first relay whose circuit is not closed (else the first), which the single-relay stats
    and advice read."""
    states = relays.states()
    troubled = next((state for state in states if state["circuit"] != "closed"), states[0])
    return {"relay": troubled, "relays": states}


def run_worker(settings: Settings) -> None:
    """Run one worker process to completion on a fresh uvloop event loop.

    With METRICS_PORT set (a lone worker; a supervisor serves its children's metrics
    itself and does not pass the port on), the metrics are served from this process.
    """
    import uvloop  # noqa: PLC0415  (only worker processes need it)

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    port = settings.worker.metrics_port
    with serve_metrics(settings.api.host, port, exposition_registry(registry)):
        uvloop.run(WorkerRunner(settings, metrics).run())
