"""Capacity advice: what an operator should do, from the live numbers of the queue stats.

Pure functions over `Figures` (no Redis), so each rule is unit-tested on made-up numbers.
Every piece of advice names the figure that triggered it, its value and the threshold.

The one rule with a duration, "waiting > 100 for 5 minutes", reads the waiting-count
history that the processes' heartbeats sample into Redis every 10 s (postbox/queue/
registry.py): the backlog counts as lasting when the samples cover the whole 5 minutes and
none of them, nor the count now, is at or below 100. A burst that the workers clear within
a few minutes is not a reason to add workers, and neither is a backlog that waits for the
relay.

The relay rules read what the live workers publish in their heartbeats
(postbox/queue/relay_health.py): a worker whose circuit is open (or half open, after a
probe and before a send got through) is down on the relay, so the advice names an outage,
a stall or a refused password within one heartbeat, while the emails are still postponed
and long before any would show in the failure rate. A relay that cannot be used as
configured (TLS that cannot be agreed on, a certificate that does not verify) fails its
emails as dead letters of class `config` instead, and the newest dead letters show it. Each
relay advice says what to check for the error at hand (relay_hints.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from postbox.queue.relay_hints import what_to_check

WAITING_THRESHOLD = 100
WAITING_SECONDS = 300
# The oldest sample of the 5 minutes may be this much younger than the window's start.
COVERAGE_SLACK_MS = 30_000
FAILURE_RATE_PERCENT = 1.0
# Below this many finished emails in the last minute a failure rate says little.
MIN_FINISHED = 20
SATURATION = 0.9
# Past this share of maxmemory, warn before Redis starts refusing new emails.
MEMORY_HIGH = 0.9


@dataclass(frozen=True)
class RelayFigures:
    """The relay as the live workers see it (the stats' `relay.workers`)."""

    address: str | None = None
    down_workers: int = 0
    down_seconds: float | None = None
    last_error: str | None = None
    auth_refused_workers: int = 0
    auth_error: str | None = None
    # With several relays (SMTP_RELAYS): the first one down (its name, address, seconds,
    # error), and those still up, which carry the mail meanwhile.
    down_relay: dict[str, Any] | None = None
    up_relays: tuple[str, ...] = ()
    # Dead letters of class `config` among the newest, and the newest one's reason.
    config_dead_letters: int = 0
    config_error: str | None = None


@dataclass(frozen=True)
class Figures:
    """The numbers the rules read, taken from one stats answer."""

    now_ms: int
    waiting: int
    # (ms, waiting count) samples, any order.
    waiting_history: list[tuple[int, int]]
    sent_last_minute: int
    failed_last_minute: int
    live_workers: int
    gone_processes: int
    rate_limit_per_second: float | None
    relay: RelayFigures = field(default_factory=RelayFigures)
    redis_used_memory: int = 0
    # 0: Redis has no memory limit.
    redis_maxmemory: int = 0
    redis_full: bool = False


@dataclass(frozen=True)
class Advice:
    """One thing to do, and the figure behind it."""

    code: str
    message: str
    figure: str
    value: float
    threshold: float

    def to_json(self) -> dict[str, Any]:
        """The entry under `advice` in the stats."""
        return asdict(self)


def figures(stats: dict[str, Any], now_ms: int, rate_limit_per_second: float | None) -> Figures:
    """The figures of a `queue_stats` answer."""
    cluster = stats["cluster"]
    relay = stats["relay"]["workers"]
    relays = stats["relay"].get("relays", [])
    down = [r for r in relays if r["workers_down"]]
    dead_letters = stats.get("dead_letters", {})
    return Figures(
        now_ms=now_ms,
        waiting=stats["counts"]["waiting"],
        waiting_history=[(s["at_ms"], s["waiting"]) for s in stats["waiting_history"]],
        sent_last_minute=stats["throughput"]["sent"],
        failed_last_minute=stats["throughput"]["failed"],
        live_workers=cluster["roles"]["worker"]["processes"],
        gone_processes=cluster["processes"]["gone"],
        rate_limit_per_second=rate_limit_per_second,
        relay=RelayFigures(
            address=relay["address"],
            down_workers=relay["workers_down"],
            down_seconds=relay["down_seconds"],
            last_error=relay["last_error"],
            auth_refused_workers=relay["workers_auth_refused"],
            auth_error=relay["auth_error"],
            down_relay=down[0] if down and len(relays) > 1 else None,
            up_relays=tuple(r["name"] for r in relays if not r["workers_down"]),
            config_dead_letters=dead_letters.get("by_class", {}).get("config", 0),
            config_error=dead_letters.get("latest_config_error"),
        ),
        redis_used_memory=stats.get("redis", {}).get("used_memory", 0),
        redis_maxmemory=stats.get("redis", {}).get("maxmemory", 0),
        redis_full=stats.get("redis", {}).get("full", False),
    )


def advise(found: Figures) -> list[Advice]:
    """Every rule that applies, most urgent first."""
    rules = (
        _redis_memory,
        _relay_config_error,
        _relay_unavailable,
        _relay_misconfigured,
        _no_workers,
        _rate_limit_saturated,
        _add_workers,
        _check_relay,
        _processes_gone,
    )
    return [advice for rule in rules if (advice := rule(found)) is not None]


def _redis_memory(found: Figures) -> Advice | None:
    limit = found.redis_maxmemory
    if limit <= 0:
        return None
    share = round(found.redis_used_memory / limit, 3)
    if found.redis_full:
        return Advice(
            "redis_full",
            "Redis is at maxmemory and refuses new emails (503 queue_full): raise maxmemory, "
            "or free memory (workers draining the queue, a shorter EMAIL_DEDUP_WINDOW_SECONDS "
            "keeps fewer finished jobs).",
            "redis_memory_share",
            share,
            1.0,
        )
    if share < MEMORY_HIGH:
        return None
    return Advice(
        "redis_memory_high",
        f"Redis uses {share:.0%} of maxmemory; at 100 % it refuses new emails: raise "
        "maxmemory or free memory.",
        "redis_memory_share",
        share,
        MEMORY_HIGH,
    )


def _relay_config_error(found: Figures) -> Advice | None:
    relay = found.relay
    if relay.auth_refused_workers == 0:
        return None
    if relay.down_relay is not None and relay.up_relays:
        name = relay.down_relay["name"]
        return Advice(
            "relay_config_error",
            f"Relay {name} ({relay.down_relay['address']}) refuses the SMTP credentials "
            f"({relay.auth_error}): mail is flowing through {_names(relay.up_relays)} only. "
            f"Fix the user or password in relay {name}'s URL (SMTP_RELAYS) and restart the "
            "workers.",
            "workers_auth_refused",
            relay.auth_refused_workers,
            0,
        )
    return Advice(
        "relay_config_error",
        f"The relay {relay.address} refuses the SMTP credentials ({relay.auth_error}): "
        f"{relay.auth_refused_workers} worker(s) paused; emails are postponed, not failed. "
        "Fix SMTP_USERNAME / SMTP_PASSWORD and restart the workers.",
        "workers_auth_refused",
        relay.auth_refused_workers,
        0,
    )


def _relay_unavailable(found: Figures) -> Advice | None:
    relay = found.relay
    if relay.down_workers <= relay.auth_refused_workers:
        return None
    seconds = relay.down_seconds or 0.0
    down = relay.down_relay
    if down is not None and relay.up_relays:
        seconds = down["down_seconds"] or 0.0
        return Advice(
            "relay_unavailable",
            f"Relay {down['name']} ({down['address']}) unreachable for {_duration(seconds)} "
            f"({down['last_error']}): mail is flowing through {_names(relay.up_relays)} only. "
            + what_to_check(down["last_error"], down["address"]),
            "relay_down_seconds",
            seconds,
            0,
        )
    return Advice(
        "relay_unavailable",
        f"Relay {relay.address} unreachable for {seconds:.0f} s ({relay.last_error}): emails "
        "are postponed, not failed; the workers probe it and resume by themselves. "
        + what_to_check(relay.last_error, relay.address),
        "relay_down_seconds",
        seconds,
        0,
    )


def _relay_misconfigured(found: Figures) -> Advice | None:
    relay = found.relay
    if relay.config_dead_letters == 0:
        return None
    return Advice(
        "relay_misconfigured",
        f"{relay.config_dead_letters} of the newest dead letters failed because the relay "
        f"cannot be used as configured ({relay.config_error}); nothing of them was sent. "
        f"{what_to_check(relay.config_error)} Then requeue them: "
        "`postbox dlq retry --all --error-class config`.",
        "config_dead_letters",
        relay.config_dead_letters,
        0,
    )


def _names(relays: tuple[str, ...]) -> str:
    return " and ".join(relays)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _no_workers(found: Figures) -> Advice | None:
    if found.waiting == 0 or found.live_workers > 0:
        return None
    return Advice(
        "no_workers",
        f"{found.waiting} emails are waiting and no worker is running: start `postbox worker`.",
        "waiting",
        found.waiting,
        0,
    )


def _rate_limit_saturated(found: Figures) -> Advice | None:
    limit = found.rate_limit_per_second
    if limit is None or not is_rate_limited(found):
        return None
    rate = round(found.sent_last_minute / 60, 2)
    return Advice(
        "rate_limit_saturated",
        f"Rate limit saturated ({rate}/s sent, limit {limit:g}/s): the limit, not the "
        "workers, bounds throughput. Raise EMAIL_RATE_LIMIT if the relay allows it; more "
        "workers will not help.",
        "sent_per_second",
        rate,
        round(limit * SATURATION, 2),
    )


def is_rate_limited(found: Figures) -> bool:
    """True when emails wait while sends run at (nearly) the global rate limit."""
    limit = found.rate_limit_per_second
    return (
        limit is not None
        and found.waiting > 0
        and found.sent_last_minute / 60 >= limit * SATURATION
    )


def _add_workers(found: Figures) -> Advice | None:
    if found.live_workers == 0 or is_rate_limited(found) or found.relay.down_workers:
        # No workers has its own advice; a rate limit or a relay down is what holds the
        # backlog, and more workers would change neither.
        return None
    lowest = sustained_minimum(found.waiting_history, found.now_ms, WAITING_SECONDS)
    if lowest is None or min(lowest, found.waiting) <= WAITING_THRESHOLD:
        return None
    return Advice(
        "add_workers",
        f"More than {WAITING_THRESHOLD} emails have been waiting for "
        f"{WAITING_SECONDS // 60} minutes (never fewer than {lowest}): add workers.",
        "waiting_min_5m",
        lowest,
        WAITING_THRESHOLD,
    )


def sustained_minimum(history: list[tuple[int, int]], now_ms: int, seconds: int) -> int | None:
    """The lowest sampled count of the last `seconds`, or None when the samples do not
    cover that span (too young a history, or sampling stopped)."""
    start = now_ms - seconds * 1000
    window = [(at, count) for at, count in history if at >= start]
    if not window or min(at for at, _ in window) > start + COVERAGE_SLACK_MS:
        return None
    return min(count for _, count in window)


def _check_relay(found: Figures) -> Advice | None:
    finished = found.sent_last_minute + found.failed_last_minute
    if finished < MIN_FINISHED:
        return None
    rate = round(100 * found.failed_last_minute / finished, 2)
    if rate <= FAILURE_RATE_PERCENT:
        return None
    return Advice(
        "check_relay",
        f"{rate} % of the last minute's emails failed ({found.failed_last_minute} of "
        f"{finished}): check the SMTP relay and the dead letters' reasons.",
        "failure_rate_percent",
        rate,
        FAILURE_RATE_PERCENT,
    )


def _processes_gone(found: Figures) -> Advice | None:
    if found.gone_processes == 0:
        return None
    return Advice(
        "processes_gone",
        f"{found.gone_processes} process(es) stopped sending heartbeats without leaving: "
        "check for crashes or killed containers.",
        "gone_processes",
        found.gone_processes,
        0,
    )
