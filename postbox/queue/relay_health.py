"""The relay as the workers see it: the state each worker publishes in its heartbeat, and
the summary of the live workers' states that the queue stats and the advice read.

Why from the workers: only a worker talks to the relay, so only it knows whether the relay
answers and whether the credentials work; the API's own SMTP settings say neither. Each
worker's registry entry (postbox/queue/registry.py) carries a `RelayState` under `relay`,
fresh at every heartbeat, so an outage, a stall or a refused password shows in
`GET /v1/queue/stats` within one heartbeat of the worker's circuit opening.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

CircuitState = Literal["closed", "open", "half_open"]


class RelayState(TypedDict):
    """One worker's view of the relay at its last heartbeat."""

    name: str  # in SMTP_RELAYS; `default` without it
    address: str  # host:port the worker sends to
    # `open`: paused and probing; `half_open`: a probe passed, no send has yet.
    circuit: CircuitState
    down_since: str | None  # ISO time of the first failure of the current run
    down_seconds: float | None  # the same as a duration at the beat (immune to clock skew)
    consecutive_failures: int  # sends and probes that failed since the relay last worked
    postponed: int  # emails postponed since the relay last worked
    probes: int  # probes finished (passed or failed) since the relay last worked
    last_error: str | None
    error_class: str | None  # `unavailable` or `auth`


def relay_summary(instances: list[dict[str, Any]]) -> dict[str, Any]:
    """What the live workers report about the relay, for the stats' `relay` block: how many
    are down on it, for how long (the longest), the error behind it, and a refused login."""
    states = [
        (entry["relay"], float(entry["last_seen_seconds"]))
        for entry in instances
        if entry.get("role") == "worker" and entry["health"] != "gone" and "relay" in entry
    ]
    down = [(state, age) for state, age in states if state["circuit"] != "closed"]
    longest = max(down, key=lambda item: (item[0]["down_seconds"] or 0) + item[1], default=None)
    auth = [state for state, _ in down if state["error_class"] == "auth"]
    return {
        "workers_reporting": len(states),
        "workers_down": len(down),
        "workers_auth_refused": len(auth),
        "address": longest[0]["address"] if longest else None,
        "down_seconds": round((longest[0]["down_seconds"] or 0) + longest[1], 1)
        if longest
        else None,
        "last_error": longest[0]["last_error"] if longest else None,
        "auth_error": _named(auth[0]) if auth else None,
        "postponed": sum(state["postponed"] for state, _ in states),
    }


def _named(state: RelayState) -> str | None:
    """The state's error, with the relay's name when there are several (SMTP_RELAYS)."""
    name = state.get("name", "default")
    error = state["last_error"]
    return error if name == "default" or error is None else f"relay {name}: {error}"
