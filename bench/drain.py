"""Drain: how fast a worker empties a prefilled queue into the sink, and at what CPU cost.

The queue is filled and paused before the worker starts, so start-up (imports, connecting)
is neither timed nor counted as CPU: the clock and the CPU counters start when the queue is
resumed. The rate runs from the resume to BullMQ's last `completed` event (Postbox removes
sent jobs; for the Node peer, which keeps them, from the first `processedOn` to the last
`finishedOn`), the CPU from /proc for the whole process tree (a supervisor and its worker
children), and the memory from each worker process's high-water mark.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench import proc_stats, queues
from bench.processes import WORKER_READY, Child, postbox_env, start_worker
from bench.services import BenchRedis, SmtpSink
from postbox.config import load_settings
from postbox.queue.producer import PreparedEmail


@dataclass(frozen=True)
class DrainResult:
    """One drain run's figures."""

    label: str
    processes: int
    concurrency: int
    jobs: int
    completed: int
    failed: int
    seconds: float
    emails_per_s: float
    cpu_s_per_1000: float
    redis_cpu_s_per_1000: float
    sink_cpu_s_per_1000: float
    redis_commands_per_email: float
    redis_scripts_per_email: float
    machine_busy_percent: float
    other_load_cores: float
    peak_rss_mb: float
    sink_received: int | None

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return dict(self.__dict__)


class Relay(Protocol):
    """What a drain needs of the SMTP server it delivers to (smtp-sink, or bench/relay.py)."""

    @property
    def port(self) -> int: ...

    @property
    def pid(self) -> int: ...

    def messages_received(self) -> int | None: ...


@dataclass(frozen=True)
class Setup:
    """What every drain run shares: the servers and where logs go."""

    redis: BenchRedis
    sink: SmtpSink | Relay
    work_dir: Path


@dataclass(frozen=True)
class _Reading:
    """Counters at one moment of a drain."""

    cpu: proc_stats.CpuMark
    redis_calls: tuple[int, int]
    sink_messages: int | None


def _read(setup: Setup, children: Sequence[Child]) -> _Reading:
    cpu = proc_stats.mark([c.pid for c in children], setup.redis.pid, setup.sink.pid)
    return _Reading(cpu, setup.redis.calls(), setup.sink.messages_received())


def measure(
    setup: Setup,
    children: Sequence[Child],
    queue: str,
    total: int,
    label: str,
    shape: tuple[int, int],
    settle: Callable[[], None] | None = None,
    helpers: Sequence[int] = (),
) -> DrainResult:
    """Resume `queue`, wait until `total` jobs finished, stop `children` (one supervisor,
    or several peer processes); `shape` is (processes, concurrency per process). `settle`,
    if given, waits for work that follows the jobs (events to deliver, to record) before the
    CPU is read, so its cost counts too; the rate is the jobs' alone. `helpers` are the
    run's own other processes (a webhook receiver, a database): not counted as others."""
    redis = setup.redis
    roots = [*(c.pid for c in children), redis.pid, setup.sink.pid, *helpers]
    other = proc_stats.OtherLoad(roots)
    before = _read(setup, children)
    resumed_at = queues.redis_now(_client(redis))
    queues.resume(redis.url, queue)
    # A hang guard: a loaded machine drained the realistic relay at 30 emails/s.
    wait_finished(redis, queue, total, timeout=max(120.0, total / 20))
    if settle is not None:
        settle()
    after = _read(setup, children)
    other_cores = other.cores()
    trees = [pid for c in children for pid in proc_stats.tree(c.pid)]
    workers = [pid for pid in trees if not proc_stats.children(pid)]
    peak_rss = max(proc_stats.peak_rss_mb(pid) for pid in workers)
    for child in children:
        child.stop()
    started, finished = queues.completion_span(_client(redis), queue, resumed_at)
    return DrainResult(
        label=label,
        processes=shape[0],
        concurrency=shape[1],
        jobs=total,
        completed=redis.completed(queue),
        failed=redis.failed(queue),
        seconds=round(finished - started, 2),
        emails_per_s=round(redis.completed(queue) / max(finished - started, 1e-9), 1),
        other_load_cores=other_cores,
        peak_rss_mb=round(peak_rss, 1),
        **_per_email(before, after, total),
    )


def _per_email(before: _Reading, after: _Reading, total: int) -> dict[str, Any]:
    """What the drain cost per email (CPU per 1,000) and how busy the machine was."""
    b, a = before.cpu, after.cpu
    machine = (a.machine_busy - b.machine_busy) / max(a.machine_total - b.machine_total, 1e-9)
    received = None
    if after.sink_messages is not None:
        received = after.sink_messages - (before.sink_messages or 0)
    return {
        "cpu_s_per_1000": round((a.tree - b.tree) / total * 1000, 3),
        "redis_cpu_s_per_1000": round((a.redis - b.redis) / total * 1000, 3),
        "sink_cpu_s_per_1000": round((a.sink - b.sink) / total * 1000, 3),
        "redis_commands_per_email": round(
            (after.redis_calls[0] - before.redis_calls[0]) / total, 1
        ),
        "redis_scripts_per_email": round((after.redis_calls[1] - before.redis_calls[1]) / total, 1),
        "machine_busy_percent": round(100 * machine, 1),
        "sink_received": received,
    }


def _client(redis: BenchRedis) -> Any:
    assert redis.client is not None
    return redis.client


def wait_finished(redis: BenchRedis, queue: str, total: int, timeout: float) -> None:
    """Poll until `total` jobs of `queue` are completed or failed."""
    deadline = time.monotonic() + timeout
    while redis.completed(queue) + redis.failed(queue) < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"queue {queue}: not drained within {timeout:.0f} s")
        time.sleep(0.05)


@dataclass(frozen=True)
class DrainHooks:
    """What a drain with features on does around the plain one: before the queue is filled
    and after (given the queue's name; the worker is not started yet), and `settle` (see
    `measure`)."""

    before_fill: Callable[[str], None] | None = None
    after_fill: Callable[[str], None] | None = None
    settle: Callable[[], None] | None = None
    # Log lines of the worker's other children (dispatcher, recorder) to wait for, once each.
    ready_logs: tuple[str, ...] = ()
    # The run's own other processes, once the queue is filled (see `measure`).
    helpers: Callable[[], list[int]] | None = None


def drain_postbox(
    setup: Setup,
    emails: list[PreparedEmail],
    label: str,
    processes: int | None,
    **extra_env: str,
) -> DrainResult:
    """Drain `emails` with `postbox worker` (its defaults, or `--processes N`), with
    `extra_env` added to its environment."""
    return drain_postbox_hooked(setup, emails, label, processes, DrainHooks(), extra_env)


def drain_postbox_hooked(
    setup: Setup,
    emails: list[PreparedEmail],
    label: str,
    processes: int | None,
    hooks: DrainHooks,
    extra_env: dict[str, str],
) -> DrainResult:
    """`drain_postbox`, with `hooks` around it."""
    queue = f"drain-{label}"
    env = postbox_env(setup.redis.url, queue, setup.sink.port, **extra_env)
    settings = load_settings(env)
    if hooks.before_fill is not None:
        hooks.before_fill(queue)
    queues.fill_postbox(settings, emails, paused=True)
    if hooks.after_fill is not None:
        hooks.after_fill(queue)
    args = [] if processes is None else ["--processes", str(processes)]
    child = start_worker(env, args, setup.work_dir / f"worker-{label}.log")
    count = processes or settings.worker.processes
    try:
        child.wait_for_log(WORKER_READY, count, timeout=60)
        for line in hooks.ready_logs:
            child.wait_for_log(line, 1, timeout=60)
        time.sleep(0.2)  # let the just-started workers settle into their blocking fetch
        shape = (count, settings.worker.concurrency)
        helpers = hooks.helpers() if hooks.helpers is not None else []
        return measure(setup, [child], queue, len(emails), label, shape, hooks.settle, helpers)
    finally:
        child.stop()
