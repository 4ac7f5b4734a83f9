"""One recorder process from start to exit; the only owner of its event loop.

`postbox worker` (and `postbox serve` with workers) runs it as one supervised child beside
the worker processes when DATABASE_URL is set, unless HISTORY_RECORDER=false; `postbox
emails record` runs it alone. It applies the schema migrations first (waiting, without
stopping, while the database cannot be reached), then records events and, while it holds
the retention lease, deletes expired records every minute.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import redis.asyncio as redis
from sqlalchemy import Engine

from postbox.config import Settings
from postbox.errors import HistoryUnavailable
from postbox.history.database import create_history_engine
from postbox.history.migrations import migrate
from postbox.history.recorder import Recorder
from postbox.history.retention import RetentionLease, cutoff_ms, delete_before
from postbox.queue.connection import UNAVAILABLE_ERRORS, worker_client

logger = logging.getLogger(__name__)

RETRY_SECONDS = 2.0
RETENTION_SECONDS = 60.0


class RecorderRunner:
    """Builds a recorder, runs it until a signal, and tears it down."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Record until SIGTERM/SIGINT, then finish the batch being written and exit."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        engine = create_history_engine(self._settings.history)
        client = worker_client(self._settings.redis)
        consumer = f"{self._settings.instance_id}-{os.getpid()}"
        recorder = Recorder(
            client,
            engine,
            self._settings.redis.queue_name,
            consumer,
            claim_idle_ms=self._settings.history.claim_idle_ms,
            keep_events_seconds=self._settings.webhook_delivery.events_retention_seconds,
            store_bodies=self._settings.history.store_bodies,
        )
        try:
            await recorder.start()  # events are written from now on, even before migrating
            if await self._migrated(engine):
                await asyncio.gather(recorder.run(self._stop), self._retention(client, engine))
        finally:
            await client.aclose(close_connection_pool=True)
            engine.dispose()

    async def _migrated(self, engine: Engine) -> bool:
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(migrate, engine)
                return True
            except HistoryUnavailable as exc:
                logger.warning("History database unavailable, retrying: %s", exc)
                await _pause(self._stop, RETRY_SECONDS)
        return False

    async def _retention(self, client: redis.Redis, engine: Engine) -> None:
        lease = RetentionLease(client, self._settings.redis.queue_name)
        days = self._settings.history.days
        while not self._stop.is_set():
            try:
                if await lease.acquire():
                    gone = await asyncio.to_thread(delete_before, engine, cutoff_ms(days))
                    if gone:
                        logger.info("History retention: deleted %d emails over %d days", gone, days)
            except HistoryUnavailable as exc:
                logger.warning("History retention postponed: %s", exc)
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("History retention cannot reach Redis: %s", exc)
            await _pause(self._stop, RETENTION_SECONDS)

    def _on_signal(self, signum: int) -> None:
        logger.info("Received %s", signal.Signals(signum).name)
        self._stop.set()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return


def run_recorder(settings: Settings) -> None:
    """Run one recorder process to completion on a fresh uvloop event loop."""
    import uvloop  # noqa: PLC0415  (only long-running processes need it)

    if not settings.history.enabled:
        logger.warning("No DATABASE_URL: no email history is kept, so no recorder runs")
        return
    uvloop.run(RecorderRunner(settings).run())
