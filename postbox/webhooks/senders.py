"""Per-endpoint senders, and the writer that records their outcomes in batches.

Each enabled endpoint has its own sender task, HTTP connections and `WEBHOOK_CONCURRENCY`
slots, so an endpoint that is slow or down holds only its own slots: every other endpoint's
deliveries go on as before. A sender claims due deliveries (as many as it has free slots,
once at least half are free, so the Redis work is batched), sends them, and hands each
outcome to the `OutcomeWriter`, which writes all that piled up in one script call. The
deliveries of one email claimed together go out one after another, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable

from postbox.queue.connection import UNAVAILABLE_ERRORS
from postbox.webhooks.attempts import Attempt, Verdict
from postbox.webhooks.deliveries import Claimed, DeliveryQueue
from postbox.webhooks.endpoints import Endpoint
from postbox.webhooks.http_client import EndpointClient
from postbox.webhooks.metrics import DispatcherMetrics
from postbox.webhooks.signing import Signer

logger = logging.getLogger(__name__)

# Longest sleep of an idle sender: deliveries made elsewhere (another dispatcher's fan-out,
# a retry, replay or test through the API) are picked up within this.
IDLE_POLL_SECONDS = 2.0
REDIS_PAUSE_SECONDS = 1.0
SETTLE_BATCH = 500
SETTLE_GATHER_SECONDS = 0.01
# Deliveries of one email sent one after another, at most; the lease (dispatcher.py) covers
# this many timeouts.
MAX_CHAIN = 2


class OutcomeWriter:
    """Collects attempts' outcomes and writes them in batches: while one write is in
    flight the next batch piles up, so the writes per second stay few at any rate."""

    def __init__(self, queue: DeliveryQueue, on_retries: Callable[[dict[str, int]], None]) -> None:
        self._queue = queue
        self._on_retries = on_retries
        self._pending: list[tuple[Claimed, Attempt]] = []
        self._ready = asyncio.Event()

    def add(self, claimed: Claimed, attempt: Attempt) -> None:
        """Queue one outcome for the next write."""
        self._pending.append((claimed, attempt))
        self._ready.set()

    async def run(self) -> None:
        """Write outcomes as they come, until cancelled, gathering a few milliseconds'
        worth per write: Redis answers so fast that writing each at once made one script
        call per attempt. (An outcome written late only delays its retry a little; the
        attempt itself was made.)"""
        while True:
            await self._ready.wait()
            if len(self._pending) < SETTLE_BATCH:
                await asyncio.sleep(SETTLE_GATHER_SECONDS)
            await self.flush()

    async def flush(self, give_up_after: float | None = None) -> None:
        """Write everything collected; while Redis is away keep trying (a delivery whose
        outcome is lost is only sent again when its lease ends), up to `give_up_after` s."""
        deadline = None if give_up_after is None else time.monotonic() + give_up_after
        while self._pending:
            self._ready.clear()
            batch, self._pending = self._pending[:SETTLE_BATCH], self._pending[SETTLE_BATCH:]
            try:
                retries = await self._queue.settle(batch)
            except UNAVAILABLE_ERRORS as exc:
                self._pending = batch + self._pending
                if deadline is not None and time.monotonic() > deadline:
                    logger.error("Dropped %d webhook outcomes: %s", len(self._pending), exc)
                    self._pending = []
                    return
                logger.warning("Cannot record webhook outcomes (%s); retrying", exc)
                await asyncio.sleep(REDIS_PAUSE_SECONDS)
                continue
            if retries:
                self._on_retries(retries)


class EndpointSender:
    """Sends one endpoint's due deliveries, `concurrency` requests at a time."""

    def __init__(
        self,
        endpoint: Endpoint,
        signer: Signer,
        queue: DeliveryQueue,
        outcomes: OutcomeWriter,
        client: EndpointClient,
        *,
        concurrency: int,
        consumer: str,
        metrics: DispatcherMetrics,
        on_gone: Callable[[Endpoint, Attempt], None],
        on_room: Callable[[], None],
    ) -> None:
        self.endpoint = endpoint
        self.signer = signer
        self._queue = queue
        self._outcomes = outcomes
        self._client = client
        self._concurrency = concurrency
        self._tokens = (f"{consumer}/{n}" for n in itertools.count())
        self._metrics = metrics
        self._on_gone = on_gone
        self._on_room = on_room
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._chains: set[asyncio.Task[None]] = set()
        self._handed: list[Claimed] = []
        self._in_flight = 0
        self._retry_at_ms: float | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sending."""
        self._task = asyncio.create_task(self._run(), name=f"sender {self.endpoint.id}")

    def wake(self) -> None:
        """New deliveries are due: claim them now rather than at the next poll."""
        self._wake.set()

    def room(self) -> int:
        """How many deliveries the fan-out may hand this sender directly (leased to it as
        it writes them, saving their claim): a round of slots beyond those in use, so that
        none waits long enough here for its lease to run out."""
        if self._stopping:
            return 0
        return max(0, 2 * self._concurrency - self._in_flight - len(self._handed))

    def take(self, handed: list[Claimed]) -> None:
        """Send these deliveries, already leased to this process, before claiming more."""
        self._handed.extend(handed)
        self._wake.set()

    def retry_at(self, due_ms: float) -> None:
        """A retry comes due at `due_ms`: claim then (a short schedule's retries would
        otherwise wait for the next poll)."""
        if self._retry_at_ms is None or due_ms < self._retry_at_ms:
            self._retry_at_ms = due_ms
            self._wake.set()

    async def stop(self, grace: float) -> None:
        """Stop claiming; give the requests in flight `grace` seconds, then cancel them
        (their deliveries come due again when their leases end)."""
        self._stopping = True
        self._wake.set()
        self._slot_freed.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=grace)
        if self._chains:
            await asyncio.wait(self._chains, timeout=grace)
        for task in [self._task, *self._chains]:
            if task is not None:
                task.cancel()
        await self._client.close()

    async def _run(self) -> None:
        low_water = max(1, self._concurrency // 2)
        while not self._stopping:
            free = self._concurrency - self._in_flight
            if self._handed and free > 0:
                batch, self._handed = self._handed[:free], self._handed[free:]
                for chain in _chains(batch):
                    self._spawn(chain)
                continue
            if free < low_water or self._handed:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            self._wake.clear()  # before the claim: a wake-up during it is not lost
            try:
                claim = await self._queue.claim(self.endpoint.id, free, next(self._tokens))
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("Cannot claim deliveries of %s: %s", self.endpoint.id, exc)
                await asyncio.sleep(REDIS_PAUSE_SECONDS)
                continue
            for chain in _chains(claim.deliveries):
                self._spawn(chain)
            if len(claim.deliveries) < free:
                await self._idle(claim.next_due_ms)

    async def _idle(self, next_due_ms: float | None) -> None:
        """Sleep until the next delivery comes due, a retry does, new deliveries are made
        (`wake`), or the poll."""
        now_ms = time.time() * 1000
        if self._retry_at_ms is not None and self._retry_at_ms <= now_ms:
            self._retry_at_ms = None
        waits = [IDLE_POLL_SECONDS * 1000]
        waits += [ms - now_ms for ms in (next_due_ms, self._retry_at_ms) if ms is not None]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, min(waits)) / 1000)

    def _spawn(self, chain: list[Claimed]) -> None:
        self._in_flight += 1
        task = asyncio.create_task(self._send_chain(chain))
        self._chains.add(task)
        task.add_done_callback(self._chain_done)

    def _chain_done(self, task: asyncio.Task[None]) -> None:
        self._chains.discard(task)
        self._in_flight -= 1
        self._slot_freed.set()
        self._on_room()
        if not task.cancelled() and task.exception() is not None:
            logger.error("Webhook sender of %s failed", self.endpoint.id, exc_info=task.exception())

    async def _send_chain(self, chain: list[Claimed]) -> None:
        for claimed in chain:
            if self._stopping:
                return
            attempt = await self._send(claimed)
            self._metrics.attempted(attempt)
            self._outcomes.add(claimed, attempt)
            if attempt.verdict is Verdict.GONE:
                self._stopping = True
                self._on_gone(self.endpoint, attempt)
            elif attempt.verdict is not Verdict.DELIVERED:
                logger.info(
                    "Webhook %s to %s: attempt %d %s (%s)",
                    claimed.event_id,
                    self.endpoint.id,
                    claimed.attempts + 1,
                    attempt.verdict,
                    attempt.error,
                )

    async def _send(self, claimed: Claimed) -> Attempt:
        headers = self.signer.headers(claimed.event_id, claimed.body, time.time())
        return await self._client.post(self.endpoint.url, claimed.body.encode(), headers)


def _chains(claimed: list[Claimed]) -> list[list[Claimed]]:
    """The claimed deliveries grouped by email, each group in claim (due) order, at most
    `MAX_CHAIN` long (the lease covers that many attempts one after another)."""
    open_chains: dict[str, list[Claimed]] = {}
    chains: list[list[Claimed]] = []
    for delivery in claimed:
        chain = open_chains.get(delivery.email_id) if delivery.email_id else None
        if chain is None or len(chain) >= MAX_CHAIN:
            chain = []
            chains.append(chain)
            if delivery.email_id:
                open_chains[delivery.email_id] = chain
        chain.append(delivery)
    return chains
