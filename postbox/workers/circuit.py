"""A circuit breaker for one relay: during its outage, skip it (stop taking jobs when it is
the last one up) and probe it instead.

After `threshold` consecutive failures of the relay itself (refused, timed out, 421, a
refused login), the worker pauses fetching, then tries a fresh connection with a growing
pause (1 s, 2 s, ... up to 10 s) until one succeeds, and resumes. Jobs that hit the outage
are postponed by a few seconds, never failed, so an outage of any length ends with every
email delivered; while the worker is paused, postponed jobs simply wait in the delayed set.

A passed probe leaves the circuit half open: jobs flow again, but the failure count stays
until a send gets an answer, so a relay that greets and then stalls on the message trips
the circuit again at its first failed send instead of after three more. `state()` is what
the worker publishes in its heartbeat (postbox/queue/relay_health.py). With several relays
each has its own circuit, and the worker pauses only when all are open (workers/relays.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from postbox.errors import DeliveryError, RelayAuthFailed, RelayUnavailable
from postbox.queue.relay_health import CircuitState, RelayState
from postbox.queue.relay_hints import what_to_check
from postbox.workers.metrics import RelayMetrics

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
        address: str,
        metrics: RelayMetrics,
        name: str = "default",
        threshold: int = 3,
        first_delay: float = 1.0,
        max_delay: float = 10.0,
    ) -> None:
        self._probe = probe
        self._address = address
        self._name = name
        self._metrics = metrics
        self._target: Pausable | None = None
        self._threshold = threshold
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._recovery: asyncio.Task[None] | None = None
        # Since the worker started, for the stats: transactions the relay answered, and
        # failed uses of it (sends and probes).
        self.sends = 0
        self.failures_total = 0
        self._reset()

    def _reset(self) -> None:
        self.failures = 0
        self._failing_since: float | None = None
        self._last_error: DeliveryError | None = None
        self._postponed = 0
        self._probes = 0

    def pauses(self, target: Pausable) -> None:
        """Pause and resume `target` (the consumer) when the circuit opens and closes."""
        self._target = target

    @property
    def is_open(self) -> bool:
        """True while the worker is paused waiting for the relay."""
        return self._recovery is not None and not self._recovery.done()

    def record_success(self) -> None:
        """The relay answered (whatever it said)."""
        self.sends += 1
        if self.failures:
            self._reset()

    def record_failure(self, error: DeliveryError, *, postponed: bool = True) -> None:
        """A send could not use the relay (its email postponed, or failed over to another
        relay); open the circuit at the threshold."""
        self._failed(error)
        self._postponed += postponed
        if self.failures >= self._threshold and not self.is_open:
            self._recovery = asyncio.create_task(self._recover(), name="relay-recovery")

    def _failed(self, error: DeliveryError) -> None:
        if self.failures == 0:
            self._failing_since = time.time()
        self.failures += 1
        self.failures_total += 1
        self._last_error = error
        self._metrics.relay_error(error.error_class)

    def outage(self) -> RelayUnavailable:
        """The error for a send that skipped this relay because its circuit is open."""
        error = self._last_error
        if isinstance(error, RelayUnavailable):
            return type(error)(str(error), error.smtp_code)
        return RelayUnavailable(f"Relay {self._name} is down: {error}")

    def state(self) -> RelayState:
        """The relay as this worker sees it now, for its heartbeat entry."""
        since = self._failing_since
        error = self._last_error
        return {
            "name": self._name,
            "address": self._address,
            "circuit": self._circuit(),
            "down_since": _iso(since) if since is not None else None,
            "down_seconds": round(time.time() - since, 1) if since is not None else None,
            "consecutive_failures": self.failures,
            "postponed": self._postponed,
            "probes": self._probes,
            "last_error": str(error) if error is not None else None,
            "error_class": error.error_class if error is not None else None,
            "sends": self.sends,
            "failures": self.failures_total,
        }

    def _circuit(self) -> CircuitState:
        if self.is_open:
            return "open"
        return "half_open" if self.failures >= self._threshold else "closed"

    async def _recover(self) -> None:
        self._log_opening()
        if self._target is not None:
            await self._target.pause()
        delay = self._first_delay
        while True:
            await asyncio.sleep(delay)
            try:
                await self._probe()
            except DeliveryError as exc:
                self._probes += 1
                self._failed(exc)
                delay = min(self._max_delay, delay * 2)
                logger.warning(
                    "Relay %s still unavailable (%s); next probe in %.0f s", self._name, exc, delay
                )
                continue
            break
        self._probes += 1
        logger.info("Relay %s reachable again", self._name)
        if self._target is not None:
            self._target.resume()

    def _log_opening(self) -> None:
        if isinstance(self._last_error, RelayAuthFailed):
            logger.error(
                "Relay %s (%s) refused the SMTP credentials (%s): its emails are postponed or "
                "go to another relay, not failed. Fix SMTP_USERNAME/SMTP_PASSWORD (or the "
                "relay's URL in SMTP_RELAYS) and restart the worker.",
                self._name,
                self._address,
                self._last_error,
            )
            return
        logger.warning(
            "Relay %s (%s) unavailable (%d failures in a row, the last: %s): probing. %s",
            self._name,
            self._address,
            self.failures,
            self._last_error,
            what_to_check(str(self._last_error), self._address),
        )

    async def close(self) -> None:
        """Stop probing (on shutdown)."""
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)


def retry_at_ms() -> int:
    """When a job that met an outage should run again: soon (1-5 s, spread out)."""
    return int((time.time() + random.uniform(1.0, 5.0)) * 1000)  # noqa: S311


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
