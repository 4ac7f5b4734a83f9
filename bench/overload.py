"""Overload: one `postbox serve` offered far more POSTs than it can take, open loop.

`python -m bench.overload [--rate 3000] [--seconds 10] [--processes 1]` starts a private
Redis and `postbox serve --no-worker`, sends `rate` distinct single emails per second for
`seconds`, and prints one row: answers per status, how many took over 1 s or got none, the
accepted requests' latency, and whether Redis holds exactly the accepted emails (a request
answered 503 or timed out must not be queued). Latency counts from each request's
scheduled send (no coordinated omission), over as many connections as the load needs, so
requests queue at the server, not in the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.emails import payload_bytes
from bench.http_client import Client, StaleConnection
from bench.processes import API_KEY, postbox_env, start_api
from bench.services import BenchRedis
from bench.stats import percentiles
from postbox.dev.ports import free_port

QUEUE = "overload"
ANSWER_BOUND_SECONDS = 1.0
# How late the generator itself started each request (a saturated generator is no server's
# latency), from the last `offer`.
lags: list[float] = []


@dataclass(frozen=True)
class Answer:
    """One request's fate: an HTTP status (or the client error's name), its error code,
    whether it carried Retry-After, and seconds from its scheduled send."""

    status: str
    code: str | None
    retry_after: bool
    latency: float


async def offer(
    port: int, rate: float, seconds: float, api_key: str = API_KEY, timeout: float = 10.0
) -> list[Answer]:
    """POST `rate * seconds` distinct emails at `rate` per second, each bounded by `timeout`."""
    client = Client("127.0.0.1", port, api_key, limit=int(rate * timeout) + 1)
    clock = time.perf_counter
    start = clock() + 0.05
    answers: list[Answer] = []
    lags.clear()

    async def one(body: bytes, scheduled: float) -> None:
        lags.append(clock() - scheduled)
        try:
            reply = await asyncio.wait_for(client.post("/v1/emails", body), timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, StaleConnection) as exc:
            answers.append(Answer(type(exc).__name__, None, False, clock() - scheduled))
            return
        code = None if reply.status < 400 else json.loads(reply.body)["error"]["code"]
        retry = b"retry-after" in reply.headers
        answers.append(Answer(str(reply.status), code, retry, clock() - scheduled))

    tasks = []
    try:
        for index in range(int(rate * seconds)):
            scheduled = start + index / rate
            if (delay := scheduled - clock()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(payload_bytes("overload", index), scheduled)))
        await asyncio.gather(*tasks)
    finally:
        client.close()
    return answers


def summary(answers: list[Answer]) -> dict[str, Any]:
    """Counts per status and code, the slow and unanswered, the accepted's latency."""
    accepted = [a.latency for a in answers if a.status == "202"]
    return {
        "sent": len(answers),
        "statuses": dict(Counter(a.status for a in answers)),
        "codes": dict(Counter(a.code for a in answers if a.code)),
        "over_1s": sum(1 for a in answers if a.latency > ANSWER_BOUND_SECONDS),
        "unanswered": sum(1 for a in answers if not a.status.isdigit()),
        "errors_without_retry_after": sum(
            1 for a in answers if a.status == "503" and not a.retry_after
        ),
        "accepted": len(accepted),
        "accepted_latency_ms": percentiles(accepted),
        "all_latency_ms": percentiles([a.latency for a in answers]),
        "dispatch_lag_ms": percentiles(lags),
    }


def main() -> None:
    """Start Redis and one API, overload it, print the row."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=3000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=1, help="WEB_CONCURRENCY")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        redis = BenchRedis(Path(work))
        redis.start()
        port = free_port()
        env = postbox_env(redis.url, QUEUE, free_port(), WEB_CONCURRENCY=str(args.processes))
        api = start_api(env, port, Path(work) / "api.log")
        try:
            row = summary(asyncio.run(offer(port, args.rate, args.seconds)))
            assert redis.client is not None
            time.sleep(1)  # a request still being served when its client gave up
            row["queued"] = int(redis.client.llen(f"bull:{QUEUE}:wait"))
            row["queued_equals_accepted"] = row["queued"] == row["accepted"]
        finally:
            api.stop()
            redis.stop()
    print(json.dumps({"rate": args.rate, "seconds": args.seconds, **row}))


if __name__ == "__main__":
    main()
