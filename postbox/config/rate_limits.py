"""Rate limits as configured, parsed once: `100/second`, `1000 per minute;20/second`.

The syntax is the `limits` package's (several limits separated by `;`, `,` or `|`), and so
are the parsed items: the worker's and the API's limiters take them as they are, and nothing
else parses a rate-limit string again.
"""

from __future__ import annotations

from dataclasses import dataclass

from limits import RateLimitItem, parse_many

OFF = frozenset({"off", "none"})


@dataclass(frozen=True)
class RateLimit:
    """One configured limit value: its text, as given, and every limit it holds."""

    text: str
    items: tuple[RateLimitItem, ...]

    def __str__(self) -> str:
        return self.text

    @property
    def per_second(self) -> float:
        """The sends per second allowed on average (the tightest of its limits)."""
        return min(item.amount / item.get_expiry() for item in self.items)


def parse_rate_limit(value: str) -> RateLimit:
    """`value` parsed; `ValueError` saying what a rate limit looks like."""
    try:
        items = tuple(parse_many(value))
    except ValueError:
        raise ValueError("not a rate limit such as 100/second or 1000 per minute") from None
    return RateLimit(value, items)


def parse_domain_rate_limits(value: str) -> tuple[tuple[str, RateLimit], ...]:
    """`gmail.com=20/second,yahoo.com=10/second` as (domain, limit) pairs."""
    pairs = []
    for item in value.split(","):
        domain, sep, limit = item.strip().partition("=")
        if not sep or not domain.strip():
            raise ValueError(f"{item.strip()!r} is not domain=limit")
        pairs.append((domain.strip().lower(), parse_rate_limit(limit.strip())))
    return tuple(pairs)


def parse_api_rate_limit(value: str) -> RateLimitItem | None:
    """One limit (`100/second`), or `off`/`none` for no per-key limit."""
    if value.lower() in OFF:
        return None
    try:
        [item] = parse_many(value)
    except ValueError:
        raise ValueError("not one rate limit such as 100/second, or off") from None
    return item
