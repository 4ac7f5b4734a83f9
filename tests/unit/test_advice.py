"""Capacity advice rules on made-up numbers (postbox/queue/advice.py)."""

from __future__ import annotations

from dataclasses import replace

from postbox.queue.advice import Figures, RelayFigures, advise, sustained_minimum
from postbox.queue.relay_health import relay_summary

NOW = 1_000_000_000
QUIET = Figures(
    now_ms=NOW,
    waiting=0,
    waiting_history=[],
    sent_last_minute=600,
    failed_last_minute=0,
    live_workers=2,
    gone_processes=0,
    rate_limit_per_second=None,
)


def history(counts: list[int], every_s: int = 10) -> list[tuple[int, int]]:
    """Samples ending now, oldest first, `every_s` apart."""
    start = NOW - (len(counts) - 1) * every_s * 1000
    return [(start + i * every_s * 1000, count) for i, count in enumerate(counts)]


def codes(figures: Figures) -> list[str]:
    return [advice.code for advice in advise(figures)]


def test_quiet_queue_needs_nothing() -> None:
    assert advise(QUIET) == []


def test_backlog_over_100_for_five_minutes_says_add_workers_with_the_lowest_count() -> None:
    found = replace(QUIET, waiting=300, waiting_history=history([150 + i for i in range(31)]))
    [advice] = advise(found)
    assert advice.code == "add_workers"
    assert advice.figure == "waiting_min_5m"
    assert (advice.value, advice.threshold) == (150, 100)
    assert "add workers" in advice.message


def test_backlog_that_dipped_or_is_too_young_is_no_reason_to_add_workers() -> None:
    dipped = [500] * 31
    dipped[10] = 90
    assert codes(replace(QUIET, waiting=300, waiting_history=history(dipped))) == []
    young = history([500] * 12)  # two minutes of samples
    assert codes(replace(QUIET, waiting=300, waiting_history=young)) == []
    cleared_now = history([500] * 31)
    assert codes(replace(QUIET, waiting=40, waiting_history=cleared_now)) == []


def test_sustained_minimum_needs_samples_covering_the_window() -> None:
    assert sustained_minimum(history([200] * 31), NOW, 300) == 200
    assert sustained_minimum(history([200] * 31)[5:], NOW, 300) is None
    assert sustained_minimum([], NOW, 300) is None


def test_failure_rate_over_one_percent_says_check_the_relay() -> None:
    [advice] = advise(replace(QUIET, sent_last_minute=190, failed_last_minute=10))
    assert advice.code == "check_relay"
    assert (advice.figure, advice.value, advice.threshold) == ("failure_rate_percent", 5.0, 1.0)
    assert codes(replace(QUIET, sent_last_minute=990, failed_last_minute=10)) == []
    # Too few emails to say anything.
    assert codes(replace(QUIET, sent_last_minute=5, failed_last_minute=5)) == []


def test_saturated_rate_limit_is_named_instead_of_more_workers() -> None:
    found = replace(
        QUIET,
        waiting=5000,
        waiting_history=history([4000] * 31),
        sent_last_minute=6000,
        rate_limit_per_second=100.0,
    )
    [advice] = advise(found)
    assert advice.code == "rate_limit_saturated"
    assert (advice.value, advice.threshold) == (100.0, 90.0)
    assert "the limit, not the workers" in advice.message


def test_waiting_emails_without_workers_and_gone_processes() -> None:
    found = replace(QUIET, waiting=7, live_workers=0, gone_processes=1)
    assert codes(found) == ["no_workers", "processes_gone"]


RELAY_DOWN = RelayFigures(
    address="smtp.example.net:587",
    down_workers=2,
    down_seconds=42.0,
    last_error="Relay unreachable: ConnectionRefusedError: [Errno 111] Connection refused",
)


def test_a_worker_down_on_the_relay_says_emails_are_postponed_not_failed() -> None:
    [advice] = advise(replace(QUIET, relay=RELAY_DOWN))
    assert advice.code == "relay_unavailable"
    assert (advice.figure, advice.value, advice.threshold) == ("relay_down_seconds", 42.0, 0)
    assert "smtp.example.net:587 unreachable for 42 s" in advice.message
    assert "postponed, not failed" in advice.message
    assert "Connection refused" in advice.message


def test_a_backlog_behind_a_relay_outage_is_no_reason_to_add_workers() -> None:
    found = replace(QUIET, waiting=300, waiting_history=history([500] * 31), relay=RELAY_DOWN)
    assert codes(found) == ["relay_unavailable"]


def test_refused_credentials_say_fix_the_password_rather_than_wait_for_the_relay() -> None:
    refused = RelayFigures(
        address="smtp.example.net:587",
        down_workers=1,
        down_seconds=12.0,
        last_error="SMTP authentication refused: 535 5.7.8 Authentication credentials invalid",
        auth_refused_workers=1,
        auth_error="SMTP authentication refused: 535 5.7.8 Authentication credentials invalid",
    )
    [advice] = advise(replace(QUIET, relay=refused))
    assert advice.code == "relay_config_error"
    assert (advice.figure, advice.value) == ("workers_auth_refused", 1)
    assert "535 5.7.8" in advice.message
    assert "SMTP_PASSWORD" in advice.message
    # Another worker down for another reason is named too.
    both = replace(refused, down_workers=2)
    assert codes(replace(QUIET, relay=both)) == ["relay_config_error", "relay_unavailable"]


def _worker(health: str, circuit: str, error_class: str | None, down: float | None) -> dict:
    relay = {
        "address": "relay:25",
        "circuit": circuit,
        "down_since": None,
        "down_seconds": down,
        "consecutive_failures": 3 if down else 0,
        "postponed": 5 if down else 0,
        "probes": 1,
        "last_error": f"{error_class} error" if error_class else None,
        "error_class": error_class,
    }
    return {"role": "worker", "health": health, "last_seen_seconds": 0.5, "relay": relay}


def test_relay_summary_reads_live_workers_only_and_the_longest_outage() -> None:
    summary = relay_summary(
        [
            _worker("healthy", "closed", None, None),
            _worker("healthy", "open", "unavailable", 10.0),
            _worker("slow", "half_open", "auth", 30.0),
            _worker("gone", "open", "unavailable", 99.0),
            {"role": "api", "health": "healthy", "last_seen_seconds": 0.1},
        ]
    )
    assert summary["workers_reporting"] == 3
    assert summary["workers_down"] == 2
    assert summary["workers_auth_refused"] == 1
    assert summary["down_seconds"] == 30.5  # as published, plus the heartbeat's age
    assert summary["auth_error"] == summary["last_error"] == "auth error"
    assert summary["postponed"] == 10


def test_redis_at_maxmemory_says_it_refuses_new_emails() -> None:
    full = replace(QUIET, redis_used_memory=1010, redis_maxmemory=1000, redis_full=True)
    [advice] = advise(full)
    assert advice.code == "redis_full"
    assert (advice.figure, advice.value, advice.threshold) == ("redis_memory_share", 1.01, 1.0)
    assert "maxmemory" in advice.message


def test_redis_near_maxmemory_warns_and_no_limit_says_nothing() -> None:
    high = replace(QUIET, redis_used_memory=950, redis_maxmemory=1000)
    assert codes(high) == ["redis_memory_high"]
    assert codes(replace(QUIET, redis_used_memory=800, redis_maxmemory=1000)) == []
    assert codes(replace(QUIET, redis_used_memory=10**9, redis_maxmemory=0)) == []
