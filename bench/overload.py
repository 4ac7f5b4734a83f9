"""Overload: one `postbox serve` offered far more POSTs than it can take, open loop.

`python -m bench.overload [--rate 3000] [--seconds 10] [--processes 1] [--web-concurrency N]`
starts a private Redis and `postbox serve --no-worker` (WEB_CONCURRENCY its default unless
given), sends `rate` distinct single emails per second for `seconds`, and prints one row:
answers per status, how many took over 1 s or got none, the accepted requests' latency,
and whether Redis holds exactly the accepted emails (a request answered 503 or timed out
must not be queued). Latency counts from each request's scheduled send (no coordinated
omission), over as many connections as the load needs, so requests queue at the server,
not in the client.

The generator (`bench.open_loop`: non-blocking sockets on one epoll) offers 3,000
requests/s from one process for ~0.3 of a core; `--processes` generators can share the
schedule (generator k of N sends requests k, k + N, k + 2N, ... at their scheduled times
from one common start). Each reports how late it started its requests (`dispatch_lag_ms`:
a late generator is no server's latency; `accepted_from_send_ms` leaves it out), its TCP
connect times (`connect_ms`: a SYN dropped by a full accept queue is resent after 1 s) and
the CPU it used, which the server did not have: the row gives both, and the server's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.emails import payload_bytes
from bench.open_loop import Answer, OpenLoop
from bench.proc_stats import tree_cpu_seconds
from bench.processes import API_KEY, postbox_env, start_api
from bench.services import BenchRedis
from bench.stats import percentiles
from postbox.dev.ports import free_port

QUEUE = "overload"
ANSWER_BOUND_SECONDS = 1.0
# Time the generator processes get to fork and connect before the first scheduled send.
START_MARGIN_SECONDS = 0.5
# Generators run at normal priority by default (OVERLOAD_GENERATOR_NICE to change it). At
# nice 10, any other load on the machine starved the generator: it read answers seconds
# late (dispatch lag p99 3-7 s with the load average at 6), which showed as the server's
# latency. The epoll generator needs ~0.35 core at 3,000 requests/s; the row gives it.
NICENESS = int(os.environ.get("OVERLOAD_GENERATOR_NICE", "0"))


@dataclass(frozen=True)
class Share:
    """Generator `index` of `count`: it sends requests index, index + count, ... ."""

    index: int = 0
    count: int = 1


def offer(
    port: int,
    rate: float,
    seconds: float,
    api_key: str = API_KEY,
    timeout: float = 10.0,
    share: Share = Share(),
    start: float | None = None,
    tag: str = "overload",
) -> list[Answer]:
    """POST this share of `rate * seconds` distinct emails (their content from `tag`), the
    whole scheduled at `rate` per second from `start` (monotonic; default: now), each
    bounded by `timeout`."""
    indices = range(share.index, int(rate * seconds), share.count)
    bodies = [payload_bytes(tag, index) for index in indices]
    start = time.monotonic() + 0.05 if start is None else start
    loop = OpenLoop("127.0.0.1", port, api_key, "/v1/emails", timeout)
    loop.run(bodies, [index / rate for index in indices], start)
    return [replace(answer, index=indices[answer.index]) for answer in loop.answers]


def generate(
    port: int, rate: float, seconds: float, share: Share, start: float
) -> tuple[list[Answer], float]:
    """One generator process's answers and the CPU seconds it spent getting them."""
    if NICENESS:
        os.nice(NICENESS)
    before = _own_cpu_seconds()
    answers = offer(port, rate, seconds, share=share, start=start)
    return answers, _own_cpu_seconds() - before


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def offer_from(processes: int, port: int, rate: float, seconds: float) -> dict[str, Any]:
    """`offer` split over `processes` generators (forked: no import cost before the start);
    every answer, and the generators' CPU seconds."""
    start = time.monotonic() + START_MARGIN_SECONDS  # one system-wide clock on Linux
    jobs = [(port, rate, seconds, Share(index, processes), start) for index in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        results = pool.starmap(generate, jobs, chunksize=1)
    return {
        "answers": [answer for answers, _ in results for answer in answers],
        "cpu_seconds": sum(cpu for _, cpu in results),
    }


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
        # What a generator that ran late added is no server's latency: the same, from the send.
        "accepted_from_send_ms": percentiles(
            [a.latency - a.lag for a in answers if a.status == "202"]
        ),
        # New connections' TCP connect times: a SYN a full accept queue dropped waits 1 s.
        "connect_ms": percentiles([a.connect for a in answers if a.connect]),
        "all_latency_ms": percentiles([a.latency for a in answers]),
        "dispatch_lag_ms": percentiles([a.lag for a in answers]),
    }


def queued_not_accepted(client: Any, answers: list[Answer]) -> dict[str, Any]:
    """The emails Redis holds whose request was not answered 202: what their client saw
    (status), and when (ms from the scheduled send; how long its connect took)."""
    by_index = {answer.index: answer for answer in answers}
    accepted = {index for index, answer in by_index.items() if answer.status == "202"}
    found: list[Answer] = []
    for job_id in client.lrange(f"bull:{QUEUE}:wait", 0, -1):
        data = client.hget(f"bull:{QUEUE}:{job_id}", "data")
        index = int(json.loads(data)["summary"]["subject"].rsplit(" ", 1)[1])
        if index not in accepted:
            found.append(by_index[index])
    return {
        "statuses": dict(Counter(a.status for a in found)),
        "latency_ms": percentiles([a.latency for a in found]),
        "connect_ms": percentiles([a.connect for a in found]),
    }


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat)."""
    fields = [int(part) for part in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start Redis and one API, overload it; the row without the arguments."""
    extra = {} if args.web_concurrency is None else {"WEB_CONCURRENCY": str(args.web_concurrency)}
    with tempfile.TemporaryDirectory() as work:
        redis = BenchRedis(Path(work))
        redis.start()
        port = free_port()
        env = postbox_env(redis.url, QUEUE, free_port(), **extra)
        api = start_api(env, port, Path(work) / "api.log")
        try:
            server_before, busy_before = tree_cpu_seconds(api.pid), machine_busy_seconds()
            began = time.monotonic()
            offered = offer_from(args.processes, port, args.rate, args.seconds)
            wall = time.monotonic() - began
            server_cpu = tree_cpu_seconds(api.pid) - server_before
            busy = machine_busy_seconds() - busy_before
            row = summary(offered["answers"])
            assert redis.client is not None
            time.sleep(1)  # a request still being served when its client gave up
            row["queued"] = int(redis.client.llen(f"bull:{QUEUE}:wait"))
            row["queued_equals_accepted"] = row["queued"] == row["accepted"]
            row["queued_not_accepted"] = queued_not_accepted(redis.client, offered["answers"])
        finally:
            api.stop()
            redis.stop()
    row["cpu_cores"] = {
        "server": round(server_cpu / wall, 2),
        "generators": round(offered["cpu_seconds"] / wall, 2),
        "machine": round(busy / wall, 2),
    }
    row["wall_s"] = round(wall, 2)
    return row


def main() -> None:
    """Parse the arguments, measure, print the row."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=3000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=1, help="generator processes")
    parser.add_argument("--web-concurrency", type=int, help="WEB_CONCURRENCY (default: serve's)")
    args = parser.parse_args()
    row = measure(args)
    print(
        json.dumps(
            {
                "rate": args.rate,
                "seconds": args.seconds,
                "generator_processes": args.processes,
                "web_concurrency": args.web_concurrency or "default",
                **row,
            }
        )
    )


if __name__ == "__main__":
    main()
