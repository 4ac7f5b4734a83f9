"""A circuit breaker for the relay: during an outage, stop taking jobs and probe instead.

After `threshold` consecutive failures of the relay itself (refused, timed out, 421), the
worker pauses fetching, then tries a fresh connection with a growing pause (1 s, 2 s, ... up
to 10 s) until one succeeds, and resumes. Jobs that hit the outage are postponed by a few
seconds, never failed, so an outage of any length ends with every email delivered; while
the worker is paused, postponed jobs simply wait in the delayed set.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from postbox.errors import DeliveryError

logger = logging.getLogger(__name__)


class Pausable(Protocol):
    """What the circuit pauses: the consumer taking jobs."""

    async def pause(self) -> None: ...

    def resume(self) -> None: ...


class RelayCircuit:
    """Counts relay failures; opens (pausing the worker) and recovers by probing."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[None]],
        *,
        threshold: int = 3,
        first_delay: float = 1.0,
        max_delay: float = 10.0,
    ) -> None:
        self._probe = probe
        self._target: Pausable | None = None
        self._threshold = threshold
        self._first_delay = first_delay
        self._max_delay = max_delay
        self.failures = 0
        self._recovery: asyncio.Task[None] | None = None

    def pauses(self, target: Pausable) -> None:
        """Pause and resume `target` (the consumer) when the circuit opens and closes."""
        self._target = target

    @property
    def is_open(self) -> bool:
        """True while the worker is paused waiting for the relay."""
        return self._recovery is not None and not self._recovery.done()

    def record_success(self) -> None:
        """The relay answered (whatever it said)."""
        self.failures = 0

    def record_failure(self) -> None:
        """The relay could not be used; open the circuit at the threshold."""
        self.failures += 1
        if self.failures >= self._threshold and not self.is_open:
            self._recovery = asyncio.create_task(self._recover(), name="relay-recovery")

    def retry_at_ms(self) -> int:
        """When a job that met the outage should run again: soon (1-5 s, spread out)."""
        return int((time.time() + random.uniform(1.0, 5.0)) * 1000)  # noqa: S311

    async def _recover(self) -> None:
        logger.warning("Relay unavailable (%d failures in a row): pausing", self.failures)
        if self._target is not None:
            await self._target.pause()
        delay = self._first_delay
        while True:
            await asyncio.sleep(delay)
            try:
                await self._probe()
            except DeliveryError as exc:
                logger.warning("Relay still unavailable (%s); next probe in %.0f s", exc, delay)
                delay = min(self._max_delay, delay * 2)
                continue
            break
        self.failures = 0
        logger.info("Relay reachable again: resuming")
        if self._target is not None:
            self._target.resume()

    async def close(self) -> None:
        """Stop probing (on shutdown)."""
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
