"""`seconds_until_room`: when a refused request would fit under the sliding-window counter.

The counter admits `cost` while floor(previous * previous_ttl / expiry) + current + cost is at
most the limit. Each case is checked against that rule directly: not admitted just before
the computed time, admitted just after (with nothing else counted meanwhile).
"""

from __future__ import annotations

import math

import pytest

from postbox.api.rate_limit import seconds_until_room

EXPIRY = 60
STEP = 0.01


def _admits(limit: int, cost: int, window: tuple[int, float, int, float], at: float) -> bool:
    """Whether the counter admits `cost` `at` seconds from now."""
    previous, previous_ttl, current, current_ttl = window
    ends_in = current_ttl - EXPIRY
    if at >= ends_in:  # the current window has become the previous one
        previous, previous_ttl, current = current, ends_in + EXPIRY - at, 0
    else:
        previous_ttl -= at
    weight = max(0.0, previous_ttl) / EXPIRY
    return math.floor(previous * weight) + current + cost <= limit


@pytest.mark.parametrize(
    ("limit", "cost", "window"),
    [
        (10, 1, (0, 0.0, 10, 2 * EXPIRY - 1)),  # a burst used it all, 1 s ago
        (10, 1, (10, 55.0, 2, EXPIRY + 55)),  # last window full, this one 5 s old
        (10, 4, (10, 30.0, 3, EXPIRY + 30)),  # both windows in use
        (10, 10, (4, 50.0, 6, EXPIRY + 50)),  # a whole quota: the RateLimit-Reset question
        (3, 1, (0, 0.0, 3, 2 * EXPIRY)),  # "3 per 2 seconds" style: nothing before rollover
    ],
)
def test_room_appears_exactly_when_computed(limit, cost, window):
    wait = seconds_until_room(limit, EXPIRY, cost, window)

    assert wait > 0
    assert not _admits(limit, cost, window, wait - STEP)
    assert _admits(limit, cost, window, wait + STEP)


def test_no_wait_when_there_is_room():
    assert seconds_until_room(10, EXPIRY, 3, (5, 30.0, 2, EXPIRY + 30)) == 0.0
    assert seconds_until_room(10, EXPIRY, 1, (0, 0.0, 0, 0.0)) == 0.0
