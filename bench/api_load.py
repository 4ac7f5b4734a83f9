"""Load on the HTTP API: an open-loop generator for single sends, a closed loop for batches.

The open loop sends request i at start + i / rate whether or not earlier requests have
been answered, and measures each latency from that scheduled moment. A closed loop (or a
latency taken from the actual send) would slow down with the server and hide its queueing:
coordinated omission. How late the generator itself dispatched is reported separately, so
a saturated load generator cannot pass for a slow server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.emails import batch_bytes, payload_bytes
from bench.http_client import Client
from bench.stats import percentiles

REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass
class OpenLoopResult:
    """What one fixed-rate run measured."""

    offered_rate: float
    sent: int
    ok: int
    errors: int
    achieved_rate: float
    latency_ms: dict[str, float | None]
    dispatch_lag_ms: dict[str, float | None]
    statuses: dict[str, int]
    connections: int
    sent_at: list[float] = field(repr=False, default_factory=list)
    other_load_cores: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The JSON form (without the per-request send times)."""
        return {
            "offered_rate": self.offered_rate,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "achieved_rate": round(self.achieved_rate, 1),
            "latency_ms": self.latency_ms,
            "dispatch_lag_ms": self.dispatch_lag_ms,
            "statuses": self.statuses,
            "connections": self.connections,
            "other_load_cores": self.other_load_cores,
        }


async def open_loop(client: Client, path: str, bodies: list[bytes], rate: float) -> OpenLoopResult:
    """POST each body at its scheduled time, `rate` per second; `sent_at` holds each
    request's scheduled wall-clock time (for matching arrivals end to end)."""
    # perf_counter, not loop.time(): uvloop's clock has millisecond steps.
    clock = time.perf_counter
    wall_offset = time.time() - clock()
    start = clock() + 0.05
    latencies: list[float] = []
    lags: list[float] = []
    statuses: Counter[str] = Counter()
    finished: list[float] = []

    async def one(body: bytes, scheduled: float) -> None:
        lags.append(clock() - scheduled)
        try:
            response = await asyncio.wait_for(client.post(path, body), REQUEST_TIMEOUT_SECONDS)
            statuses[str(response.status)] += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            statuses[type(exc).__name__] += 1
            return
        done = clock()
        finished.append(done)
        if 200 <= response.status < 300:
            latencies.append(done - scheduled)

    tasks = []
    for index, body in enumerate(bodies):
        scheduled = start + index / rate
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(body, scheduled)))
    await asyncio.gather(*tasks)
    ok = len(latencies)
    span = (max(finished) - start) if finished else 0.0
    return OpenLoopResult(
        offered_rate=rate,
        sent=len(bodies),
        ok=ok,
        errors=len(bodies) - ok,
        achieved_rate=ok / span if span else 0.0,
        latency_ms=percentiles(latencies),
        dispatch_lag_ms=percentiles(lags),
        statuses=dict(statuses),
        connections=client.opened,
        sent_at=[wall_offset + start + index / rate for index in range(len(bodies))],
    )


@dataclass
class BatchResult:
    """What one closed-loop batch run measured."""

    batch_size: int
    concurrency: int
    requests: int
    emails_accepted: int
    seconds: float
    emails_per_s: float
    requests_per_s: float
    latency_ms: dict[str, float | None]
    statuses: dict[str, int]
    other_load_cores: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {**self.__dict__, "emails_per_s": round(self.emails_per_s, 1)}


def _accepted(body: bytes) -> int:
    items = json.loads(body).get("data", [])
    return sum(1 for item in items if "error" not in item and not item.get("duplicate"))


async def batch_loop(
    client: Client, tag: str, size: int, concurrency: int, seconds: float
) -> BatchResult:
    """`concurrency` senders each POST distinct batches of `size` back to back for
    `seconds`; counts the emails the API accepted as new."""
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    counter = iter(range(1_000_000))
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    accepted = 0

    async def sender() -> None:
        nonlocal accepted
        while clock() < deadline:
            body = batch_bytes(tag, next(counter) * size, size)
            sent = clock()
            response = await client.post("/v1/emails/batch", body)
            latencies.append(clock() - sent)
            statuses[str(response.status)] += 1
            if 200 <= response.status < 300:
                accepted += _accepted(response.body)

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    elapsed = clock() - start
    return BatchResult(
        batch_size=size,
        concurrency=concurrency,
        requests=len(latencies),
        emails_accepted=accepted,
        seconds=round(elapsed, 2),
        emails_per_s=accepted / elapsed,
        requests_per_s=round(len(latencies) / elapsed, 1),
        latency_ms=percentiles(latencies),
        statuses=dict(statuses),
    )


async def single_sends(
    port: int, api_key: str, tag: str, rate: float, seconds: float, warm_up: bool
) -> OpenLoopResult:
    """`POST /v1/emails` at `rate` for `seconds`; first, if asked, one second at that rate
    unmeasured (gunicorn workers build their queue client on first use)."""
    client = Client("127.0.0.1", port, api_key)
    try:
        if warm_up:
            warm = [payload_bytes(f"{tag}-warm", i) for i in range(int(rate))]
            await open_loop(client, "/v1/emails", warm, rate)
        bodies = [payload_bytes(tag, i) for i in range(int(rate * seconds))]
        return await open_loop(client, "/v1/emails", bodies, rate)
    finally:
        client.close()


async def batches(
    port: int, api_key: str, tag: str, size: int, seconds: float, concurrency: int
) -> BatchResult:
    """`POST /v1/emails/batch` with batches of `size`."""
    client = Client("127.0.0.1", port, api_key)
    try:
        return await batch_loop(client, tag, size, concurrency, seconds)
    finally:
        client.close()
