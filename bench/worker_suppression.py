"""What the worker's side of issue 15 costs per email, in one run:

    .venv/bin/python -m bench.worker_suppression [--emails 3000] [--rounds 2]

Each round drains the same rendered emails (bench/emails.py's text) with one worker process
(its default concurrency) into smtp-sink, once per variant, the order reversed every other
round so the machine's noise falls on every variant alike:

- `no-check`: the look-up before the send skipped (`SuppressionGate.suppressed` answers no
  one without asking Redis, patched in this module's worker process: a build without it);
- `check`: the worker as shipped, a list of 100,000 entries (all misses, as usual);
- `verp`: the same with `BOUNCE_DOMAIN` set (a token write and an HMAC per recipient);
- `check-3rcpt` and `verp-3rcpt`: emails to three recipients, one transaction against three.

CPU is the worker process's, from /proc, between the queue's resume and its last job
(bench/drain.py), and Redis' and smtp-sink's apart; the figures to compare are CPU-ms per
email within a run, with the load average printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import queues
from bench.drain import DrainResult, Setup, measure
from bench.emails import SENDER, TEXT
from bench.processes import WORKER_READY, Child, postbox_env
from bench.services import BenchRedis, SmtpSink
from bench.suppression_intake import ENTRIES, _import
from postbox.api.schemas import EmailSchema
from postbox.config import load_settings
from postbox.queue import keys as queue_keys
from postbox.queue.producer import PreparedEmail, prepare_email

BOUNCE_DOMAIN = "bounces.bench.example"
ENCRYPTION_KEY = "5c" * 32
# variant: (recipients per email, skip the check, VERP on)
VARIANTS: dict[str, tuple[int, bool, bool]] = {
    "no-check": (1, True, False),
    "check": (1, False, False),
    "verp": (1, False, True),
    "check-3rcpt": (3, False, False),
    "verp-3rcpt": (3, False, True),
}


def _emails(count: int, recipients: int) -> list[PreparedEmail]:
    schema = EmailSchema()
    payloads = (
        {
            "from": SENDER,
            "to": [f"rcpt{(i * recipients + n) % 1000}@example.org" for n in range(recipients)],
            "subject": f"supp {i}",
            "text": TEXT,
        }
        for i in range(count)
    )
    return [prepare_email(schema.load(p), None) for p in payloads]


def _drain(setup: Setup, emails: list[PreparedEmail], label: str, list_: dict[str, str]) -> Any:
    _, skip, verp = VARIANTS[label]
    queue = f"w-{label}"
    extra = {"WEBHOOK_DISPATCHER": "false", "EMAIL_WORKER_PROCESSES": "1"}
    if verp:
        extra |= {"BOUNCE_DOMAIN": BOUNCE_DOMAIN, "ENCRYPTION_KEY": ENCRYPTION_KEY}
    env = postbox_env(setup.redis.url, queue, setup.sink.port, **extra)
    settings = load_settings(env)
    assert setup.redis.client is not None
    setup.redis.client.flushdb()
    setup.redis.client.hset(queue_keys.PostboxKeys(queue).suppressions(), mapping=list_)
    queues.fill_postbox(settings, emails, paused=True)
    argv = [sys.executable, "-m", "bench.worker_suppression", "--worker"]
    child = Child(argv + (["--skip-check"] if skip else []), env, setup.work_dir / f"{label}.log")
    try:
        child.wait_for_log(WORKER_READY, 1, timeout=60)
        time.sleep(0.2)
        shape = (1, settings.worker.concurrency)
        result: DrainResult = measure(setup, [child], queue, len(emails), label, shape)
    finally:
        child.stop()
    assert result.completed == len(emails) and result.failed == 0, result
    return result


def _worker(skip_check: bool) -> None:
    """This module's worker process: `postbox worker`, the look-up patched out if asked."""
    from postbox.cli import cli  # noqa: PLC0415
    from postbox.workers.suppression_gate import SuppressionGate  # noqa: PLC0415

    if skip_check:

        async def nobody(self: SuppressionGate, job: Any, pending: list[str]) -> list[str]:
            return []

        SuppressionGate.suppressed = nobody  # type: ignore[method-assign]
    cli(["worker", "--processes", "1"])


def main() -> None:
    """Run the rounds; one JSON line per drain, then CPU-ms per email by variant."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--emails", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip-check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.skip_check)
        return
    emails = {n: _emails(args.emails, n) for n in (1, 3)}
    cpu: dict[str, list[float]] = {label: [] for label in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="postbox-bench-") as tmp:
        work_dir = Path(tmp)
        redis, sink = BenchRedis(work_dir), SmtpSink(work_dir, "sink")
        redis.start()
        sink.start()
        try:
            template = "w-template"
            _import(postbox_env(redis.url, template, sink.port), work_dir)
            assert redis.client is not None
            list_ = redis.client.hgetall(queue_keys.PostboxKeys(template).suppressions())
            assert len(list_) >= ENTRIES, len(list_)
            setup = Setup(redis, sink, work_dir)
            for n in range(args.rounds):
                order = list(VARIANTS) if n % 2 == 0 else list(reversed(VARIANTS))
                for label in order:
                    result = _drain(setup, emails[VARIANTS[label][0]], label, list_)
                    load = os.getloadavg()[0]
                    print(json.dumps({**result.to_json(), "round": n, "load1": load}), flush=True)
                    cpu[label].append(result.cpu_s_per_1000)
        finally:
            sink.stop()
            redis.stop()
    for label, values in cpu.items():
        print(f"{label}: worker CPU-ms per email {', '.join(f'{v:.3f}' for v in values)}")


if __name__ == "__main__":
    main()
