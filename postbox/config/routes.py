"""`SMTP_ROUTES`: which relays, in which order, carry mail for a recipient (or sender) domain.

    SMTP_ROUTES=gmail.com|googlemail.com=bulk>primary,from:news.example.com=bulk,*=primary>backup

Each rule is `domains=relay>relay...`: `|`-separated recipient domains (`from:` before a
domain makes it a sender domain; `*` matches every address), then the relays to try in
order, named as in SMTP_RELAYS. A recipient takes the first rule that matches its domain or
the email's sender domain; without a matching rule (or without SMTP_ROUTES) it takes every
relay in SMTP_RELAYS order. An email whose recipients take different routes is sent as one
transaction per route (postbox/workers/relays.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from postbox.errors import ConfigError

_SENDER = "from:"
_DOMAIN = re.compile(r"^(\*|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)$")


@dataclass(frozen=True)
class Route:
    """One rule: the domains it matches and the relays it sends through, in order."""

    recipient_domains: frozenset[str]
    sender_domains: frozenset[str]
    relays: tuple[str, ...]

    def matches(self, sender_domain: str, recipient_domain: str) -> bool:
        """True when this rule takes a recipient of `recipient_domain` from `sender_domain`."""
        return (
            "*" in self.recipient_domains
            or recipient_domain in self.recipient_domains
            or sender_domain in self.sender_domains
        )


def load_routes(environ: Mapping[str, str], relay_names: Sequence[str]) -> tuple[Route, ...]:
    """The rules of SMTP_ROUTES; raises `ConfigError` naming SMTP_ROUTES and the rule."""
    value = (environ.get("SMTP_ROUTES") or "").strip()
    if not value:
        return ()
    rules = [item.strip() for item in value.split(",") if item.strip()]
    return tuple(_route(number, rule, relay_names) for number, rule in enumerate(rules, 1))


def _route(number: int, rule: str, relay_names: Sequence[str]) -> Route:
    domains, sep, relays = rule.partition("=")
    names = tuple(name.strip().lower() for name in relays.split(">"))
    entries = [entry.strip().lower() for entry in domains.split("|")]
    if not sep or not all(names) or not all(entries):
        raise ConfigError(f"SMTP_ROUTES rule {number} {rule!r} is not domain|domain=relay>relay")
    unknown = [name for name in names if name not in relay_names]
    if unknown:
        raise ConfigError(
            f"SMTP_ROUTES rule {number} names relay {unknown[0]!r}, which SMTP_RELAYS does "
            f"not define (it has {', '.join(relay_names)})"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"SMTP_ROUTES rule {number} names a relay twice")
    senders = {entry.removeprefix(_SENDER) for entry in entries if entry.startswith(_SENDER)}
    recipients = {entry for entry in entries if not entry.startswith(_SENDER)}
    bad = sorted(domain for domain in senders | recipients if not _DOMAIN.match(domain))
    if bad or "*" in senders:
        raise ConfigError(f"SMTP_ROUTES rule {number}: {(bad or ['*'])[0]!r} is not a domain")
    return Route(frozenset(recipients), frozenset(senders), names)
