"""The webhook delivery settings: defaults, parsing, and one error naming each bad variable."""

from __future__ import annotations

import pytest

from postbox.config import load_settings
from postbox.errors import ConfigError


def test_defaults():
    delivery = load_settings({}).webhook_delivery

    assert delivery.timeout_seconds == 10.0
    assert delivery.concurrency == 16
    assert delivery.run_dispatcher is True
    assert delivery.nice == 10
    assert delivery.retry_schedule[:4] == (5.0, 30.0, 120.0, 600.0)
    assert 26 * 3600 < sum(delivery.retry_schedule) < 28 * 3600  # about a day of retries


def test_values_are_parsed_fractions_included():
    delivery = load_settings(
        {
            "WEBHOOK_TIMEOUT_SECONDS": "2.5",
            "WEBHOOK_RETRY_SCHEDULE": "0.2, 0.2,1",
            "WEBHOOK_CONCURRENCY": "4",
            "WEBHOOK_DISPATCHER": "false",
            "WEBHOOK_DISPATCHER_NICE": "0",
        }
    ).webhook_delivery

    assert delivery.timeout_seconds == 2.5
    assert delivery.retry_schedule == (0.2, 0.2, 1.0)
    assert delivery.concurrency == 4
    assert delivery.run_dispatcher is False
    assert delivery.nice == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEBHOOK_RETRY_SCHEDULE", "5,,30"),
        ("WEBHOOK_RETRY_SCHEDULE", "5,-1"),
        ("WEBHOOK_RETRY_SCHEDULE", "soon"),
        ("WEBHOOK_RETRY_SCHEDULE", "nan"),
        ("WEBHOOK_RETRY_SCHEDULE", "1e9"),
        ("WEBHOOK_TIMEOUT_SECONDS", "0"),
        ("WEBHOOK_CONCURRENCY", "0"),
        ("WEBHOOK_DISPATCHER", "maybe"),
        ("WEBHOOK_DISPATCHER_NICE", "20"),
        ("WEBHOOK_DISPATCHER_NICE", "-1"),
        ("WEBHOOK_DISPATCHER_NICE", "low"),
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(ConfigError, match=f"^{name} has value"):
        load_settings({name: value})


@pytest.mark.parametrize(("value", "nice"), [("idle", "idle"), (" IDLE", "idle"), ("19", 19)])
def test_the_dispatcher_priority_is_idle_or_a_niceness(value, nice):
    assert load_settings({"WEBHOOK_DISPATCHER_NICE": value}).webhook_delivery.nice == nice
