"""The relays a worker delivers through, each with its own connection pool, circuit breaker
and rate limit, tried in order: failover when the relay, not the email, is the problem.

A send fails over to the next relay only when nothing of the message can have reached the
first: connection refused or lost before the content was written, a timeout before DATA's
354, a TLS failure of a peer that went away, 421, a refused login (`RelayUnavailable`), or a
relay that cannot be used as configured (`RelayMisconfigured`) while another relay remains.
Never after a reply about the email (4xx or 5xx to MAIL, RCPT or DATA: the email's problem,
which another relay would answer alike), and never once the content was written
(`OutcomeUnknown`: the first relay may have it). A relay whose breaker is open is skipped
without a try, so a dead primary costs one fast failure per breaker period, not one per
email; when every relay is down the last error is raised and the processor postpones the
email without spending an attempt. The consumer pauses only when every relay's breaker is
open (`_AllOpen`): one relay down must not stop the mail the others can carry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from postbox.config.relays import RelaySettings
from postbox.config.routes import Route as RouteSettings
from postbox.errors import (
    DeliveryError,
    OutcomeUnknown,
    RelayMisconfigured,
    RelayUnavailable,
)
from postbox.queue.relay_health import RelayState
from postbox.workers.circuit import Pausable, RelayCircuit
from postbox.workers.metrics import WorkerMetrics
from postbox.workers.rate_limit import SendRateLimiter
from postbox.workers.smtp_pool import SendResult, SmtpPool

Ready = Callable[[], Awaitable[None]]


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one per relay
class Relay:
    """One relay as a worker uses it."""

    settings: RelaySettings
    pool: SmtpPool
    circuit: RelayCircuit

    @property
    def name(self) -> str:
        """The relay's name in SMTP_RELAYS (`default` without it)."""
        return self.settings.name


# The relays one email's recipients are tried through, in order (SMTP_ROUTES).
Route = tuple[Relay, ...]


@dataclass(frozen=True)
class Delivery:
    """What a relay answered, and which relay it was."""

    relay: str
    result: SendResult


class Relays:
    """Every relay of this worker, in SMTP_RELAYS order."""

    def __init__(
        self,
        settings: Sequence[RelaySettings],
        limiter: SendRateLimiter,
        metrics: WorkerMetrics,
        routes: Sequence[RouteSettings] = (),
    ) -> None:
        self.all: Route = tuple(_relay(one, metrics) for one in settings)
        by_name = {relay.name: relay for relay in self.all}
        self._routes = [(rule, tuple(by_name[name] for name in rule.relays)) for rule in routes]
        self._limiter = limiter
        self._direct = len(self.all) == 1 and not limiter.limits_relay(self.all[0].name)
        self._gate = _AllOpen(len(self.all))
        for relay in self.all:
            relay.circuit.pauses(self._gate)

    @property
    def routed(self) -> bool:
        """True when SMTP_ROUTES sends some recipients through some relays only."""
        return bool(self._routes)

    def split(self, sender: str, recipients: list[str]) -> list[tuple[Route, list[str]]]:
        """The recipients grouped by the route each takes (its first matching rule, else
        every relay), in the order the routes first appear."""
        sender_domain = sender.rpartition("@")[2].lower()
        parts: dict[Route, list[str]] = {}
        for recipient in recipients:
            domain = recipient.rpartition("@")[2].lower()
            route = next(
                (relays for rule, relays in self._routes if rule.matches(sender_domain, domain)),
                self.all,
            )
            parts.setdefault(route, []).append(recipient)
        return list(parts.items())

    def pauses(self, target: Pausable) -> None:
        """Pause `target` (the consumer) while every relay's breaker is open."""
        self._gate.target = target

    async def send(
        self,
        sender: str,
        recipients: list[str],
        message: str,
        ready: Ready,
        mail_options: Sequence[str] = (),
        *,
        route: Route | None = None,
    ) -> Delivery:
        """Deliver through the first relay of `route` (default: every relay) that can take
        it; raises a `DeliveryError` (the last relay's `RelayUnavailable` when none could)."""
        if self._direct:
            # One relay and no limit of its own (the default): nothing to wrap.
            return await self._send_through_only_relay(
                sender, recipients, message, ready, mail_options
            )
        readied = False

        def ready_for(relay: Relay) -> Ready:
            async def ready_once() -> None:
                # The job's lock and the global limits once per email, the relay's limit on
                # each relay tried.
                nonlocal readied
                if not readied:
                    await ready()
                    readied = True
                await self._limiter.acquire_relay(relay.name)

            return ready_once

        down: RelayUnavailable | None = None
        relays = route or self.all
        for index, relay in enumerate(relays):
            if relay.circuit.is_open:
                down = relay.circuit.outage()
                continue
            try:
                result = await relay.pool.send(
                    sender, recipients, message, ready_for(relay), mail_options
                )
            except RelayMisconfigured as exc:
                if index == len(relays) - 1:
                    relay.circuit.record_success()  # it answered; the settings are wrong
                    raise
                relay.circuit.record_failure(exc, postponed=False)
                down = RelayUnavailable(f"relay {relay.name}: {exc}", exc.smtp_code)
                continue
            except RelayUnavailable as exc:
                relay.circuit.record_failure(exc, postponed=index == len(relays) - 1)
                down = exc
                continue
            except OutcomeUnknown:
                raise  # no answer, and the relay may have the message: no failover
            except DeliveryError as exc:
                relay.circuit.record_success()
                exc.relay = relay.name
                raise
            relay.circuit.record_success()
            return Delivery(relay.name, result)
        assert down is not None  # there is at least one relay
        raise down

    async def _send_through_only_relay(
        self,
        sender: str,
        recipients: list[str],
        message: str,
        ready: Ready,
        mail_options: Sequence[str],
    ) -> Delivery:
        [relay] = self.all
        try:
            result = await relay.pool.send(sender, recipients, message, ready, mail_options)
        except RelayUnavailable as exc:
            relay.circuit.record_failure(exc)
            raise
        except OutcomeUnknown:
            raise
        except DeliveryError as exc:
            relay.circuit.record_success()
            exc.relay = relay.name
            raise
        relay.circuit.record_success()
        return Delivery(relay.name, result)

    def states(self) -> list[RelayState]:
        """Each relay as this worker sees it, for its heartbeat entry."""
        return [relay.circuit.state() for relay in self.all]

    async def close(self) -> None:
        """Stop probing and quit every idle connection (on shutdown)."""
        for relay in self.all:
            await relay.circuit.close()

    async def close_pools(self) -> None:
        """Quit every idle connection, once the active jobs are done."""
        for relay in self.all:
            await relay.pool.close()


def _relay(settings: RelaySettings, metrics: WorkerMetrics) -> Relay:
    relay_metrics = metrics.for_relay(settings.name)
    pool = SmtpPool(settings.smtp, relay_metrics)
    circuit = RelayCircuit(
        pool.probe, address=settings.address, metrics=relay_metrics, name=settings.name
    )
    return Relay(settings, pool, circuit)


class _AllOpen:
    """Pauses the consumer while every relay's breaker is open, resumes it when one closes."""

    def __init__(self, relays: int) -> None:
        self._relays = relays
        self._open = 0
        self.target: Pausable | None = None

    async def pause(self) -> None:
        self._open += 1
        if self._open == self._relays and self.target is not None:
            await self.target.pause()

    def resume(self) -> None:
        if self._open == self._relays and self.target is not None:
            self.target.resume()
        self._open -= 1
