"""The webhook dispatcher: reads the event stream, fans each event out to the endpoints
that want it, and runs one sender per endpoint.

It reads through the consumer group `webhooks` (one consumer per process: instance id and
pid), so any number of dispatchers share the stream, each entry going to one of them. The
fan-out (postbox/webhooks/fan_out.py) writes a batch's deliveries and acknowledges its
entries in one script call, so nothing is lost between the two (at least once), and only if
the endpoints' version is still the one it read them at: an endpoint made or changed
meanwhile makes it reload and start again. Every few seconds a dispatcher also takes over the
entries another one read and did not acknowledge for 30 s (XAUTOCLAIM: it died), trims
what every group has acknowledged, and measures the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as redis
from redis.exceptions import ResponseError

from postbox.config import Settings
from postbox.errors import EncryptionKeyMissing, SecretUnreadable
from postbox.queue.connection import UNAVAILABLE_ERRORS
from postbox.queue.events import register_consumer, trim_acknowledged
from postbox.queue.keys import PostboxKeys
from postbox.webhooks.attempts import Attempt
from postbox.webhooks.deliveries import DeliveryQueue
from postbox.webhooks.endpoints import CONSUMER_GROUP, Endpoint, EndpointStore
from postbox.webhooks.fan_out import FanOut, Lease
from postbox.webhooks.http_client import EndpointClient
from postbox.webhooks.metrics import DispatcherMetrics
from postbox.webhooks.secret_box import SecretBox
from postbox.webhooks.senders import MAX_CHAIN, EndpointSender, OutcomeWriter
from postbox.webhooks.signing import Signer
from postbox.webhooks.stats import backlog

logger = logging.getLogger(__name__)

READ_COUNT = 1000
READ_BLOCK_MS = 1000
ROOM_WAIT_SECONDS = 0.1
# An entry read and not acknowledged this long belongs to a dead dispatcher (a live one
# acknowledges within one fan-out, milliseconds).
CLAIM_IDLE_MS = 30_000
MAINTENANCE_SECONDS = 5.0
SECRETS_REFRESH_SECONDS = 60.0
# Consumers that have read nothing for this long and hold no entry are dead ones' names.
FORGET_CONSUMER_MS = 3_600_000
LEASE_SLACK_SECONDS = 5.0


class Dispatcher:
    """One process's dispatcher: the stream's consumer and the endpoints' senders."""

    def __init__(
        self, settings: Settings, client: redis.Redis, metrics: DispatcherMetrics, consumer: str
    ) -> None:
        self._settings = settings
        self._delivery = settings.webhook_delivery
        self._client = client
        self._metrics = metrics
        self._consumer = consumer
        self._queue_name = settings.redis.queue_name
        self._keys = PostboxKeys(self._queue_name)
        key = settings.webhooks.encryption_key
        self._store = EndpointStore(client, self._queue_name, SecretBox(key) if key else None)
        # Long enough for a chain of attempts that all time out, and some slack: a shorter
        # lease would send deliveries twice, a longer one delays a dead dispatcher's.
        lease = self._delivery.timeout_seconds * MAX_CHAIN + LEASE_SLACK_SECONDS
        self._queue = DeliveryQueue(client, self._queue_name, self._delivery.retry_schedule, lease)
        self._outcomes = OutcomeWriter(self._queue, self._retries_due)
        self._fan_out_writer = FanOut(client, self._queue_name)
        self._fan_outs = 0
        self._room_freed = asyncio.Event()
        self._senders: dict[str, EndpointSender] = {}
        self._endpoints: list[Endpoint] = []
        self._version = -1
        self._fan_out_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._warned_no_key = False

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until `stop` is set, then let the requests in flight finish."""
        await self._start(stop)
        writer = asyncio.create_task(self._outcomes.run(), name="webhook outcomes")
        reader = asyncio.create_task(self._read_loop(stop), name="webhook fan-out")
        upkeep = asyncio.create_task(self._maintenance_loop(stop), name="webhook upkeep")
        logger.info("Webhook dispatcher %s reading %r", self._consumer, self._keys.events())
        await stop.wait()
        await asyncio.wait([reader, upkeep], timeout=READ_BLOCK_MS / 1000 + 2)
        for task in (reader, upkeep):
            task.cancel()
        grace = self._delivery.timeout_seconds + 1
        await asyncio.gather(*(s.stop(grace) for s in self._senders.values()))
        writer.cancel()
        await self._outcomes.flush(give_up_after=5)
        logger.info("Webhook dispatcher %s stopped", self._consumer)

    async def _start(self, stop: asyncio.Event) -> None:
        """Load the endpoints and start their senders (deliveries may be waiting from
        before), once Redis answers."""
        while not stop.is_set():
            try:
                await self._reload_if_changed()
                await self._measure_backlog()
                return
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("Webhook dispatcher waits for Redis: %s", exc)
                await asyncio.sleep(1)

    async def _reload_if_changed(self) -> None:
        async with self._fan_out_lock:
            version = await self._store.version()
            if version != self._version:
                await self._reload(version)

    # ------------------------------------------------------------ reading the stream

    async def _read_loop(self, stop: asyncio.Event) -> None:
        own_pending = False
        while not stop.is_set():
            try:
                entries = await self._read(own_pending, await self._room_to_read(stop))
                own_pending = own_pending and bool(entries)
                if entries:
                    await self._fan_out(entries)
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("Webhook dispatcher cannot reach Redis: %s", exc)
                own_pending = True  # read but maybe not fanned out: take them again first
                await asyncio.sleep(1)

    async def _room_to_read(self, stop: asyncio.Event) -> int:
        """How many entries to read next: as many as the roomiest sender can take straight
        from the fan-out (so a backlog drains without claims), once it can take a few.
        While every sender is full the entries wait in the stream, where they cost least.
        (A sender that is slow fills up alone: the others' room keeps the reading going.)"""
        low = self._delivery.concurrency  # a round of requests: reads stay batched
        while self._senders and not stop.is_set():
            room = max(sender.room() for sender in self._senders.values())
            if room >= low:
                return min(room, READ_COUNT)
            self._room_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room_freed.wait(), ROOM_WAIT_SECONDS)
        return READ_COUNT

    async def _read(self, own_pending: bool, count: int) -> list[tuple[str, dict[str, str]]]:
        """The next entries for this consumer (first those it read and did not acknowledge,
        after an error); none (after a pause) while there is no group: then no endpoint
        exists, or the first one is being made."""
        try:
            found = await self._client.xreadgroup(
                CONSUMER_GROUP,
                self._consumer,
                {self._keys.events(): "0" if own_pending else ">"},
                count=count,
                block=None if own_pending else READ_BLOCK_MS,
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._register_if_needed()
            return []
        streams = cast(list[tuple[str, list[tuple[str, dict[str, str]]]]], found)
        return streams[0][1] if streams else []

    async def _register_if_needed(self) -> None:
        if await self._client.zcard(self._keys.webhooks()):
            await register_consumer(self._client, self._queue_name, CONSUMER_GROUP)
        else:
            await asyncio.sleep(READ_BLOCK_MS / 1000)

    async def _fan_out(self, entries: Sequence[tuple[str, dict[str, str]]]) -> None:
        """Write the deliveries of `entries` and acknowledge them, in one script call made
        with the endpoints as they are when it runs."""
        async with self._fan_out_lock:
            while True:
                now = int(time.time() * 1000)
                result = await self._fan_out_writer.write(
                    entries, self._endpoints, self._version, now, self._lease(now)
                )
                if result is not None:
                    break
                await self._reload(await self._store.version())
        for endpoint_id, handed in result.handed.items():
            sender = self._senders.get(endpoint_id)
            if sender is not None:  # else they come due when their lease ends
                sender.take(handed)
        for endpoint_id in result.due:
            sender = self._senders.get(endpoint_id)
            if sender is not None:
                sender.wake()

    def _lease(self, now_ms: int) -> Lease:
        """What this fan-out may lease to the local senders: what each has room for."""
        self._fan_outs += 1
        return Lease(
            {endpoint_id: sender.room() for endpoint_id, sender in self._senders.items()},
            f"{self._consumer}/fan-out/{self._fan_outs}",
            now_ms + self._queue.lease_ms,
        )

    # ------------------------------------------------------------ endpoints and senders

    async def _reload(self, version: int) -> None:
        """Take the endpoints as they are now: start senders for new enabled ones, update
        the others (URL, secrets after a rotation), stop those disabled or deleted."""
        endpoints = [e for e in await self._store.all() if e.enabled]
        self._endpoints = endpoints
        self._version = version
        wanted = {e.id: e for e in endpoints}
        for endpoint_id in list(self._senders):
            if endpoint_id not in wanted:
                self._later(self._senders.pop(endpoint_id).stop(self._delivery.timeout_seconds))
        for endpoint in endpoints:
            await self._keep_sending(endpoint)
        logger.info("Webhook endpoints (version %d): %d enabled", version, len(endpoints))

    async def _keep_sending(self, endpoint: Endpoint) -> None:
        signer = await self._signer(endpoint.id)
        sender = self._senders.get(endpoint.id)
        if signer is None:
            return
        if sender is not None:
            sender.endpoint, sender.signer = endpoint, signer
            return
        client = EndpointClient(
            self._delivery.timeout_seconds,
            self._delivery.concurrency,
            self._settings.webhooks.allow_private_networks,
        )
        sender = EndpointSender(
            endpoint,
            signer,
            self._queue,
            self._outcomes,
            client,
            concurrency=self._delivery.concurrency,
            consumer=self._consumer,
            metrics=self._metrics,
            on_gone=self._gone,
            on_room=self._room_freed.set,
        )
        self._senders[endpoint.id] = sender
        sender.start()

    async def _signer(self, endpoint_id: str) -> Signer | None:
        """The endpoint's signer, or None (logged) when its secrets cannot be read: its
        deliveries wait in its queue until they can."""
        try:
            secrets = await self._store.signing_secrets(endpoint_id)
        except EncryptionKeyMissing:
            if not self._warned_no_key:
                logger.error("ENCRYPTION_KEY is not set: webhook deliveries wait until it is")
                self._warned_no_key = True
            return None
        except SecretUnreadable:
            logger.error(
                "The secret of webhook %s does not decrypt with ENCRYPTION_KEY", endpoint_id
            )
            return None
        return Signer(secrets) if secrets else None

    def _retries_due(self, retries: dict[str, int]) -> None:
        for endpoint_id, due_ms in retries.items():
            sender = self._senders.get(endpoint_id)
            if sender is not None:
                sender.retry_at(due_ms)

    def _gone(self, endpoint: Endpoint, attempt: Attempt) -> None:
        logger.warning("Webhook %s answered 410 Gone: disabling it", endpoint.id)
        reason = f"The receiver answered 410 Gone ({attempt.error})"[:200]
        self._later(self._store.disable(endpoint.id, reason))

    def _later(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------ upkeep

    async def _maintenance_loop(self, stop: asyncio.Event) -> None:
        refreshed = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), MAINTENANCE_SECONDS)
            if stop.is_set():
                return
            try:
                await self._maintain()
                if time.monotonic() - refreshed > SECRETS_REFRESH_SECONDS:
                    refreshed = time.monotonic()
                    await self._refresh_secrets()
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("Webhook upkeep cannot reach Redis: %s", exc)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise

    async def _maintain(self) -> None:
        await self._reload_if_changed()
        await self._take_over_dead_entries()
        await trim_acknowledged(
            self._client, self._queue_name, self._delivery.events_retention_seconds
        )
        await self._forget_dead_consumers()
        await self._measure_backlog()

    async def _measure_backlog(self) -> None:
        self._metrics.backlog.set((await backlog(self._client, self._queue_name)).waiting)

    async def _take_over_dead_entries(self) -> None:
        start = "0-0"
        for _ in range(10):
            found = await self._client.xautoclaim(
                self._keys.events(),
                CONSUMER_GROUP,
                self._consumer,
                CLAIM_IDLE_MS,
                start,
                count=READ_COUNT,
            )
            start, entries = found[0], found[1]
            if entries:
                logger.info("Took over %d events of a dead webhook dispatcher", len(entries))
                await self._fan_out(entries)
            if start == "0-0":
                return

    async def _forget_dead_consumers(self) -> None:
        consumers = await self._client.xinfo_consumers(self._keys.events(), CONSUMER_GROUP)
        for consumer in consumers:
            if consumer["pending"] == 0 and consumer["idle"] > FORGET_CONSUMER_MS:
                await self._client.xgroup_delconsumer(
                    self._keys.events(), CONSUMER_GROUP, consumer["name"]
                )

    async def _refresh_secrets(self) -> None:
        """A rotated secret's predecessor stops signing when it expires, without a change
        to the endpoint that would reload it."""
        for endpoint_id, sender in list(self._senders.items()):
            signer = await self._signer(endpoint_id)
            if signer is not None:
                sender.signer = signer
