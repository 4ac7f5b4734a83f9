"""Where a draining worker spends its CPU: `python -m bench.profile [--jobs N] [--processes N]`.

Sets up a drain like the benchmark's (private Redis, smtp-sink, jobs rendered as the API
would), attaches py-spy to `postbox worker` while it drains, and prints the functions that
hold the most samples: by own time (the frame on top of the stack) and in total (anywhere
on the stack). Idle samples (waiting in epoll) are left out by py-spy, so the percentages
are shares of the worker's busy time. The raw collapsed stacks are kept for a closer look
(speedscope and flamegraph tools read them).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import queues
from bench.drain import wait_finished
from bench.emails import prepare_many
from bench.processes import WORKER_READY, postbox_env, start_worker
from bench.services import BenchRedis, SmtpSink
from postbox.config import load_settings

PY_SPY = Path(sys.executable).parent / "py-spy"
SAMPLE_RATE = 250


def collapsed(path: Path) -> Counter[str]:
    """Sample counts per stack from py-spy's raw (collapsed) output."""
    stacks: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        # A line cut short when py-spy stopped has no count.
        if stack and count.isdigit() and not _idle(stack):
            stacks[stack] += int(count)
    return stacks


def _idle(stack: str) -> bool:
    # An executor thread blocked on its work queue, which py-spy counts as busy.
    return stack.rsplit(";", 1)[-1].startswith("_worker (concurrent/futures/thread.py")


def _function(frame: str) -> str:
    # "name (module/file.py:123)" -> "name (module/file.py)": one entry per function.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


# Which library a frame belongs to, by the path py-spy shows; first match wins.
_LIBRARIES = (
    ("aiosmtplib/", "aiosmtplib (SMTP client)"),
    ("redis/", "redis-py (Redis client)"),
    ("bullmq/", "bullmq (queue client)"),
    ("postbox/", "postbox"),
    ("logging/", "logging"),
    ("json/", "json"),
    ("email/", "email (stdlib)"),
    ("asyncio/", "asyncio / uvloop (event loop)"),
    ("uvloop/", "asyncio / uvloop (event loop)"),
)


def _library(frame: str) -> str | None:
    where = frame.partition(" (")[2]
    return next((name for prefix, name in _LIBRARIES if prefix in where), None)


def _is_socket_write(frame: str) -> bool:
    return frame.startswith(("StreamWriter.write", "SMTPProtocol.write "))


def by_library(stacks: Counter[str]) -> Counter[str]:
    """Samples per library of the innermost frame that belongs to a known one; a Redis or
    SMTP sample also names the first caller outside that client (bullmq or postbox)."""
    owners: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        libraries = [_library(f) for f in frames]
        known = [lib for lib in libraries if lib is not None]
        owner = known[-1] if known else "other"
        if frames and _is_socket_write(frames[-1]):
            # uvloop writes at once: the time is the send() system call on loopback.
            owner = "socket writes: " + ("SMTP" if "aiosmtplib/" in frames[-1] else "Redis")
        elif owner.startswith("redis-py"):
            callers = [lib for lib in known if lib in ("postbox", "bullmq (queue client)")]
            owner += f", called by {callers[-1].split()[0]}" if callers else ""
        owners[owner] += count
    return owners


# The steps of one job, by the function that does each (samples anywhere below it count).
_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("take a job when idle (bullmq moveToActive)", ("Worker.getNextJob (",)),
    ("read the send journal (re-runs only)", ("SendJournal.load (",)),
    ("send over SMTP (SmtpPool.send)", ("SmtpPool.send (",)),
    ("  of which rate limits (SendRateLimiter.acquire)", ("SendRateLimiter.acquire (",)),
    (
        "journal + complete + fetch next (SlotWorker._complete, shared pipelines _run_all)",
        ("SlotWorker._complete (", "SlotWorker._run_all ("),
    ),
    ("log lines (logging)", ("Logger._log (",)),
)


def steps(stacks: Counter[str]) -> list[tuple[str, int]]:
    """Samples under each step of a job's life."""
    return [
        (label, sum(n for stack, n in stacks.items() if any(m in stack for m in markers)))
        for label, markers in _STEPS
    ]


def summary(stacks: Counter[str], top: int) -> str:
    """The top functions by own and by total samples, in percent of all samples."""
    total = sum(stacks.values()) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = [_function(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        own[frames[-1]] += count
        for function in set(frames):
            inclusive[function] += count
    lines = [f"{total:,} busy samples at {SAMPLE_RATE}/s", "", "steps of a job:"]
    step_samples = steps(stacks)
    lines += [f"  {100 * n / total:5.1f}%  {label}" for label, n in step_samples]
    # An indented step is part of the one above it.
    rest = total - sum(n for label, n in step_samples if not label.startswith(" "))
    lines.append(f"  {100 * rest / total:5.1f}%  the rest: event loop, bullmq's run loop, parsing")
    lines += ["", "own time by library:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in by_library(stacks).most_common()]
    lines += ["", "own time by function:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "total time (function and what it calls):"]
    roots = max(inclusive.values(), default=0)  # the start-up frames every full stack holds
    shown = [(f, n) for f, n in inclusive.most_common() if n < roots][:top]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in shown]
    return "\n".join(lines)


def _record(pid: int, out: Path) -> subprocess.Popen[bytes]:
    argv = [str(PY_SPY), "record", "--pid", str(pid), "--subprocesses", "--rate"]
    # Not --nonblocking: reading a running process's frames cuts most asyncio stacks
    # short (seen here: 15 % whole stacks against 99 % when py-spy pauses the process).
    argv += [str(SAMPLE_RATE), "--format", "raw", "--output", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile(jobs: int, processes: int | None, out_dir: Path, top: int) -> str:
    """Drain `jobs` emails under py-spy and return the summary."""
    work_dir = Path(tempfile.mkdtemp(prefix="postbox-profile-"))
    redis, sink = BenchRedis(work_dir), SmtpSink(work_dir, "sink")
    redis.start()
    sink.start()
    try:
        env = postbox_env(redis.url, "profile", sink.port)
        settings = load_settings(env)
        queues.fill_postbox(settings, prepare_many("profile", jobs), paused=True)
        args = [] if processes is None else ["--processes", str(processes)]
        worker = start_worker(env, args, work_dir / "worker.log")
        worker.wait_for_log(WORKER_READY, processes or settings.worker.processes, timeout=60)
        spy = _record(worker.pid, out_dir / "profile.raw.txt")
        time.sleep(1.0)  # py-spy attaches
        queues.resume(redis.url, "profile")
        wait_finished(redis, "profile", jobs, timeout=300)
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
        worker.stop()
    finally:
        sink.stop()
        redis.stop()
    return summary(collapsed(out_dir / "profile.raw.txt"), top)


def main() -> None:
    """Parse the options, profile, print the summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=1, help="0: the worker's defaults")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--output", type=Path, help="folder for the raw stacks (default: temp)")
    args = parser.parse_args()
    output = args.output or Path(tempfile.mkdtemp(prefix="postbox-profile-out-"))
    output.mkdir(parents=True, exist_ok=True)
    print(profile(args.jobs, args.processes or None, output, args.top))
    print(f"\nstacks: {output / 'profile.raw.txt'}")


if __name__ == "__main__":
    main()
