"""The relay as the workers see it: the state each worker publishes in its heartbeat, and
the summary of the live workers' states that the queue stats and the advice read.

Why from the workers: only a worker talks to the relay, so only it knows whether the relay
answers and whether the credentials work; the API's own SMTP settings say neither. Each
worker's registry entry (postbox/queue/registry.py) carries a `RelayState` under `relay`,
fresh at every heartbeat, so an outage, a stall or a refused password shows in
`GET /v1/queue/stats` within one heartbeat of the worker's circuit opening.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

CircuitState = Literal["closed", "open", "half_open"]
RelayStatus = Literal["healthy", "failing", "open"]


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
    error_class: str | None  # `unavailable`, `auth` or `config`
    sends: NotRequired[int]  # transactions the relay answered since the worker started
    failures: NotRequired[int]  # failed sends and probes since the worker started


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


def relays_summary(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each relay (SMTP_RELAYS order) as the live workers see it, for the stats'
    `relay.relays`: `open` when a worker's breaker is open on it, `failing` when one counts
    failures, else `healthy`; its sends and failures summed over the workers."""
    by_name: dict[str, list[tuple[RelayState, float]]] = {}
    for entry in instances:
        if entry.get("role") != "worker" or entry["health"] == "gone":
            continue
        states = entry.get("relays") or ([entry["relay"]] if "relay" in entry else [])
        for state in states:
            by_name.setdefault(state.get("name", "default"), []).append(
                (state, float(entry["last_seen_seconds"]))
            )
    return [_relay_entry(name, states) for name, states in by_name.items()]


def _relay_entry(name: str, states: list[tuple[RelayState, float]]) -> dict[str, Any]:
    down = [(state, age) for state, age in states if state["circuit"] != "closed"]
    failing = [state for state, _ in states if state["consecutive_failures"]]
    status: RelayStatus = (
        "open"
        if any(state["circuit"] == "open" for state, _ in down)
        else "failing"
        if down or failing
        else "healthy"
    )
    longest = max(down, key=lambda item: (item[0]["down_seconds"] or 0) + item[1], default=None)
    latest = longest[0] if longest else (failing[0] if failing else None)
    return {
        "name": name,
        "address": states[0][0]["address"],
        "status": status,
        "workers_reporting": len(states),
        "workers_down": len(down),
        "down_seconds": round((longest[0]["down_seconds"] or 0) + longest[1], 1)
        if longest
        else None,
        "last_error": latest["last_error"] if latest else None,
        "error_class": latest["error_class"] if latest else None,
        "postponed": sum(state["postponed"] for state, _ in states),
        "sends": sum(state.get("sends", 0) for state, _ in states),
        "failures": sum(state.get("failures", 0) for state, _ in states),
    }
