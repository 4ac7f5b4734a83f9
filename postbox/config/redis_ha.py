"""Redis high availability: finding the primary through Sentinel, and acknowledging only
what replicas hold.

    REDIS_SENTINELS=sentinel-0:26379,sentinel-1:26379,sentinel-2:26379
    REDIS_SENTINEL_MASTER=mymaster        # the name the Sentinels monitor
    REDIS_SENTINEL_PASSWORD=...           # if the Sentinels require one (secret)
    REDIS_PASSWORD=...                    # the primary's and replicas' own (secret)
    REDIS_ACK_REPLICAS=1                  # 202 only once this many replicas hold the email
    REDIS_ACK_TIMEOUT_MS=1000             # how long to wait for them before answering 503

REDIS_SENTINELS replaces REDIS_URL (setting both is an error naming them): with a URL the
primary's address is fixed, with Sentinels it is asked for on every new connection, so a
failover is followed without a restart. Kept beside settings.py, which reads them in
`load_settings` like every other setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The API answers every call within `gateway.CALL_TIMEOUT_SECONDS` (6 s); the wait for
# replicas must leave room in it for the rest of the call.
MAX_ACK_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class SentinelSettings:
    """Where the Sentinels are and which primary they watch for us."""

    nodes: tuple[tuple[str, int], ...]
    master: str = "mymaster"
    password: str | None = field(default=None, repr=False)
    # AUTH for the primary and replicas themselves (not the Sentinels).
    redis_password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """Where the queue is, for log lines and error messages (no secrets)."""
        nodes = ",".join(f"{host}:{port}" for host, port in self.nodes)
        return f"sentinel://{nodes}/{self.master}"


@dataclass(frozen=True)
class ReplicaAck:
    """How many replicas must hold a write before it counts as done (0: none)."""

    replicas: int = 0
    timeout_ms: int = 1000


def parse_sentinels(value: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` into pairs; `ValueError` saying which entry is wrong."""
    nodes = []
    for entry in (item.strip() for item in value.split(",")):
        if not entry:
            continue
        host, colon, port = entry.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{entry!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError("names no Sentinel (use host:port,host:port)")
    return tuple(nodes)


def parse_ack_timeout_ms(value: str) -> int:
    """Milliseconds, from 1 to `MAX_ACK_TIMEOUT_MS`."""
    number = int(value)
    if not 0 < number <= MAX_ACK_TIMEOUT_MS:
        raise ValueError(f"must be from 1 to {MAX_ACK_TIMEOUT_MS}")
    return number
