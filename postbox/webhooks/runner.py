"""One dispatcher process from start to exit; the only owner of its event loop.

`postbox worker` (and `postbox serve` with workers) runs it as one supervised child beside the
worker processes, unless WEBHOOK_DISPATCHER=false; `postbox webhooks dispatch` runs it alone.
Its budget is its own process: a slow receiver holds its own sender's slots, never a worker's
job slots. SIGTERM or SIGINT stops reading the stream and lets the requests in flight finish;
a second signal cancels them (their deliveries come due again when their leases end).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Literal

from prometheus_client import CollectorRegistry

from postbox.config import Settings
from postbox.metrics import exposition_registry, serve_metrics
from postbox.queue.connection import worker_client
from postbox.webhooks.dispatcher import Dispatcher
from postbox.webhooks.metrics import DispatcherMetrics

logger = logging.getLogger(__name__)


class DispatcherRunner:
    """Builds a dispatcher, runs it until a signal, and tears it down."""

    def __init__(self, settings: Settings, metrics: DispatcherMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._stop = asyncio.Event()
        self._main: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Dispatch until SIGTERM/SIGINT, then shut down gracefully."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        client = worker_client(self._settings.redis)
        consumer = f"{self._settings.instance_id}-{os.getpid()}"
        dispatcher = Dispatcher(self._settings, client, self._metrics, consumer)
        self._main = asyncio.create_task(dispatcher.run(self._stop))
        try:
            await self._main
        except asyncio.CancelledError:
            logger.warning("Webhook dispatcher %s cancelled", consumer)
        finally:
            await client.aclose(close_connection_pool=True)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stop.is_set():
            logger.warning("Second %s: cancelling webhook requests in flight", name)
            if self._main is not None:
                self._main.cancel()
            return
        logger.info("Received %s", name)
        self._stop.set()


def run_dispatcher(settings: Settings) -> None:
    """Run one dispatcher process to completion on a fresh uvloop event loop; with
    METRICS_PORT set (run alone), its metrics are served from this process."""
    import uvloop  # noqa: PLC0415  (only dispatcher and worker processes need it)

    _lower_priority(settings.webhook_delivery.nice)
    registry = CollectorRegistry()
    metrics = DispatcherMetrics(registry)
    port = settings.worker.metrics_port
    with serve_metrics(settings.api.host, port, exposition_registry(registry)):
        uvloop.run(DispatcherRunner(settings, metrics).run())


def _lower_priority(nice: int | Literal["idle"]) -> None:
    """Email delivery first on shared cores (config/webhook_delivery.py): SCHED_IDLE, or a
    niceness."""
    if nice == "idle":
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except OSError as exc:  # a sandbox that forbids the call
            logger.warning("SCHED_IDLE refused (%s): the dispatcher runs at niceness 19", exc)
            nice = 19
    os.nice(nice)
