"""Settings of webhook delivery (the dispatcher): timeouts, the retry schedule, concurrency,
and whether `postbox worker` runs a dispatcher beside its workers.

Kept beside settings.py, which reads them in `load_settings` like every other setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Seconds after each failed attempt: 5 s to 12 h, about 27 h in all, so a receiver down for a
# day still gets every event. Each wait is jittered by ±10 % (postbox/webhooks/deliveries.py).
DEFAULT_RETRY_SCHEDULE = (
    5.0,
    30.0,
    120.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    43200.0,
)


@dataclass(frozen=True)
class WebhookDeliverySettings:
    """How events are delivered to webhook endpoints."""

    timeout_seconds: float = 10.0
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    # Requests in flight per endpoint, in each dispatcher process.
    concurrency: int = 16
    # `postbox worker` (and `serve` with workers) also runs one dispatcher process.
    run_dispatcher: bool = True
    # How long the event stream keeps events every consumer has taken, for replays.
    events_retention_seconds: int = 3600
    # How a dispatcher process lowers its CPU priority: "idle" (Linux's SCHED_IDLE: it
    # runs on CPU time nothing else wants) or a niceness of 0-19 (os.nice). On cores it
    # shares with workers, sending email comes first and events catch up when there is
    # room (the stream keeps every event until it is taken; none is dropped). Not "idle" by
    # default: a dispatcher started on a saturated host stays in its start-up for as long,
    # and one stopped in that window (a scale-down) did not exit cleanly in the compose test.
    nice: int | Literal["idle"] = 10


def parse_retry_schedule(value: str) -> tuple[float, ...]:
    """`5,30,120`: seconds before each retry (fractions allowed), at least one, none negative."""
    try:
        delays = tuple(float(item) for item in value.split(","))
    except ValueError:
        raise ValueError("must be seconds separated by commas, such as 5,30,120") from None
    if any(not 0 <= delay <= 7 * 86400 for delay in delays):
        raise ValueError("each delay must be from 0 to 604800 seconds")
    return delays
