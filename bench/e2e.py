"""End to end: from a `POST /v1/emails` to the message's arrival at the SMTP sink.

Emails are posted at a fixed rate (open loop) through the running API while `postbox
worker` (its defaults) delivers them to a second smtp-sink that dumps each message to a
file. `bench.arrivals` time-stamps each file as smtp-sink closes it; the Subject inside
names the request, whose scheduled send time is the start of its latency. The job's
BullMQ `timestamp` (set by the API when it creates the job, in millisecond steps) splits
that latency into the API's part and the queue-and-worker part.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from bench import proc_stats
from bench.api_load import OpenLoopResult, open_loop
from bench.emails import payload_bytes
from bench.http_client import Client
from bench.processes import API_KEY, WORKER_READY, Child, postbox_env, start_worker
from bench.services import BenchRedis, SmtpSink
from bench.stats import percentiles
from postbox.config import load_settings

ARRIVAL_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class E2eResult:
    """Latency from POST to SMTP arrival at one rate."""

    rate: float
    sent: int
    accepted: int
    delivered: int
    latency_ms: dict[str, float | None]
    api_latency_ms: dict[str, float | None]
    stages_ms: dict[str, dict[str, float | None]]
    redis_commands_per_email: float
    redis_scripts_per_email: float
    worker_peak_rss_mb: float
    other_load_cores: float

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return dict(self.__dict__)


async def post_at_rate(port: int, bodies: list[bytes], rate: float) -> OpenLoopResult:
    """POST each body to /v1/emails at `rate` per second (open loop)."""
    client = Client("127.0.0.1", port, API_KEY)
    try:
        return await open_loop(client, "/v1/emails", bodies, rate)
    finally:
        client.close()


def _wait_for_files(directory: Path, count: int) -> None:
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_SECONDS
    while sum(1 for p in directory.iterdir() if not p.name.startswith(".")) < count:
        if time.monotonic() > deadline:
            return  # the shortfall shows as delivered < accepted
        time.sleep(0.1)


def _arrivals(directory: Path, arrivals_file: Path, tag: str) -> dict[int, tuple[float, str]]:
    """Per request index (from the dumped message's Subject): when it arrived, and the job
    id's part that its Message-ID carries (`<40 hex digits@domain>`)."""
    subject = re.compile(rf"^Subject: {re.escape(tag)} (\d+)\r?$", re.MULTILINE)
    message_id = re.compile(r"^Message-ID: <([0-9a-f]{40})@", re.MULTILINE)
    arrived = {}
    for line in arrivals_file.read_text().splitlines():
        name, at = line.split()
        text = (directory / name).read_text(errors="replace")
        index, mid = subject.search(text), message_id.search(text)
        if index and mid:
            arrived[int(index.group(1))] = (float(at), mid.group(1))
    return arrived


def _enqueued_at(redis: BenchRedis, queue: str) -> dict[str, float]:
    """When the API created each job (the time of BullMQ's `added` event, millisecond
    steps; sent jobs are removed, their events stay), by the job id's first 40 digits."""
    assert redis.client is not None
    created = {}
    for event_id, fields in redis.client.xrange(f"bull:{queue}:events"):
        if fields.get("event") == "added":
            created[fields["jobId"][3:43]] = int(event_id.split("-")[0]) / 1000
    return created


@dataclass(frozen=True)
class _Measured:
    posted: OpenLoopResult
    calls: tuple[int, int]
    other_cores: float
    worker_rss: float


def _measure(
    api_pid: int,
    port: int,
    redis: BenchRedis,
    worker: Child,
    helper_pids: list[int],
    bodies: list[bytes],
    rate: float,
    dump: Path,
) -> _Measured:
    """Post `bodies` at `rate` after one unmeasured second; wait for their arrival."""
    warm = [payload_bytes("warm-up", i) for i in range(int(rate))]
    uvloop.run(post_at_rate(port, warm, rate))  # connections, first-use set-up in each process
    _wait_for_files(dump, len(warm))
    other = proc_stats.OtherLoad([api_pid, redis.pid, worker.pid, *helper_pids])
    calls_before = redis.calls()
    posted = uvloop.run(post_at_rate(port, bodies, rate))
    _wait_for_files(dump, len(warm) + len(bodies))
    calls_after = redis.calls()
    leaves = [p for p in proc_stats.tree(worker.pid) if not proc_stats.children(p)]
    return _Measured(
        posted,
        (calls_after[0] - calls_before[0], calls_after[1] - calls_before[1]),
        other.cores(),
        max(proc_stats.peak_rss_mb(p) for p in leaves),
    )


def run_e2e(
    api_pid: int,
    port: int,
    redis: BenchRedis,
    queue: str,
    work_dir: Path,
    tag: str,
    rate: float,
    seconds: float,
) -> E2eResult:
    """Post `rate` emails/s for `seconds` to the API (`api_pid` on `port`, enqueueing into
    `queue`) while `postbox worker` delivers them, and time each one's arrival."""
    dump = work_dir / "e2e-dump"
    sink = SmtpSink(work_dir, "sink-e2e", dump)
    sink.start()
    arrivals_file = work_dir / "e2e-arrivals.txt"
    argv = [sys.executable, "-m", "bench.arrivals", str(dump), str(arrivals_file)]
    watcher = Child(argv, dict(os.environ), work_dir / "arrivals.log")
    env = postbox_env(redis.url, queue, sink.port)
    worker = start_worker(env, [], work_dir / "worker-e2e.log")
    bodies = [payload_bytes(tag, i) for i in range(int(rate * seconds))]
    try:
        while not (dump / ".watching").exists():
            time.sleep(0.02)
        worker.wait_for_log(WORKER_READY, load_settings(env).worker.processes, timeout=60)
        measured = _measure(
            api_pid, port, redis, worker, [sink.pid, watcher.pid], bodies, rate, dump
        )
    finally:
        worker.stop()
        watcher.stop()
        sink.stop()
    return _result(measured, _arrivals(dump, arrivals_file, tag), _enqueued_at(redis, queue))


def _result(
    measured: _Measured, arrivals: dict[int, tuple[float, str]], created: dict[str, float]
) -> E2eResult:
    sent_at = measured.posted.sent_at
    arrived = {i: at for i, (at, _) in arrivals.items()}
    enqueued = {i: created[mid] for i, (_, mid) in arrivals.items() if mid in created}
    both = list(enqueued)
    count = len(sent_at)
    return E2eResult(
        rate=measured.posted.offered_rate,
        sent=measured.posted.sent,
        accepted=measured.posted.ok,
        delivered=len(arrived),
        latency_ms=percentiles([at - sent_at[i] for i, at in arrived.items()]),
        api_latency_ms=measured.posted.latency_ms,
        stages_ms={
            "post_to_enqueued": percentiles([enqueued[i] - sent_at[i] for i in both]),
            "enqueued_to_arrival": percentiles([arrived[i] - enqueued[i] for i in both]),
        },
        redis_commands_per_email=round(measured.calls[0] / count, 1),
        redis_scripts_per_email=round(measured.calls[1] / count, 1),
        worker_peak_rss_mb=round(measured.worker_rss, 1),
        other_load_cores=measured.other_cores,
    )
