"""The drain with webhooks on, against the drain without, in the same run.

    .venv/bin/python -m bench.webhook_drain [--jobs 30000] [--rounds 2]

Each round drains the same emails twice with `postbox worker` (its defaults): once with no
endpoint (no consumer, so no events are written and no dispatcher runs), once with one
endpoint subscribed to `*` on a fast local receiver (bench/webhook_receiver.py), the
worker's own dispatcher child delivering `email.queued` and `email.sent` while the workers
drain. The rate is bench/drain.py's (first `processedOn` to last `finishedOn`). After the
drain a `postbox webhooks dispatch` delivers what is left, so the run also checks that every
event arrived: two distinct `webhook-id`s per email. Prints one JSON line per drain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench import webhook_receiver
from bench.drain import Setup, drain_postbox
from bench.emails import prepare_many
from bench.services import ROOT, BenchRedis, SmtpSink
from bench.webhooks import _count
from postbox.dev.ports import free_port
from postbox.webhooks.endpoints import EndpointStore
from postbox.webhooks.secret_box import SecretBox

KEY = secrets.token_hex(32)
DELIVERY_TIMEOUT_SECONDS = 300


async def subscribe_all(redis_url: str, queue: str, url: str, key: str) -> str:
    """Create an endpoint at `url` for every event of `queue` (its secret sealed with
    `key`, the dispatcher's ENCRYPTION_KEY); its signing secret."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        _, secret = await EndpointStore(client, queue, SecretBox(key)).create(url, ("*",))
    finally:
        await client.aclose()
    return secret


def _env(redis_url: str, queue: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "QUEUE_NAME": queue,
        "ENCRYPTION_KEY": KEY,
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "LOG_LEVEL": "warning",
    }


def _hooked_drain(setup: Setup, emails: list[Any], label: str) -> dict[str, Any]:
    """A drain with one endpoint taking every event; the figures, and the deliveries."""
    queue = f"drain-{label}"  # drain_postbox's queue for `label`
    port = free_port()
    secret = asyncio.run(
        subscribe_all(setup.redis.url, queue, f"http://127.0.0.1:{port}/hook", KEY)
    )
    receiver = webhook_receiver.start(port, secret, setup.work_dir / f"receiver-{label}.log")
    finisher: subprocess.Popen[bytes] | None = None
    try:
        extra = {"ENCRYPTION_KEY": KEY, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}
        result = drain_postbox(setup, emails, label, None, **extra).to_json()
        during = _count(port)["requests"]
        command = [sys.executable, "-m", "postbox", "webhooks", "dispatch"]
        finisher = subprocess.Popen(command, env=_env(setup.redis.url, queue), cwd=ROOT)
        deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
        while (found := _count(port))["ids"] < 2 * len(emails) and time.monotonic() < deadline:
            time.sleep(0.2)
        result["deliveries"] = {
            "delivered_during_drain": during,
            "distinct_ids": found["ids"],
            "expected": 2 * len(emails),
            "bad_signatures": found["bad"],
        }
        return result
    finally:
        for process in (finisher, receiver):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


def run(jobs: int, rounds: int) -> list[dict[str, Any]]:
    """`rounds` pairs of drains; one result each."""
    results = []
    with tempfile.TemporaryDirectory(prefix="postbox-bench-webhook-drain-") as tmp:
        work_dir = Path(tmp)
        redis, sink = BenchRedis(work_dir), SmtpSink(work_dir, "sink")
        redis.start()
        sink.start()
        try:
            setup = Setup(redis, sink, work_dir)
            emails = prepare_many("webhook-drain", jobs)
            for index in range(rounds):
                plain = drain_postbox(setup, emails, f"plain-{index}", None)
                results.append({"webhooks": False, **plain.to_json()})
                print(json.dumps(results[-1]), flush=True)
                results.append({"webhooks": True, **_hooked_drain(setup, emails, f"hooks-{index}")})
                print(json.dumps(results[-1]), flush=True)
        finally:
            sink.stop()
            redis.stop()
    return results


def main() -> None:
    """Parse the options, run, print each drain as it ends and the ratios at the end."""
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_drain", description=__doc__)
    parser.add_argument("--jobs", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results = run(args.jobs, args.rounds)
    for plain, hooked in zip(results[::2], results[1::2], strict=True):
        ratio = hooked["emails_per_s"] / plain["emails_per_s"]
        print(
            f"with webhooks / without: {ratio:.2f} ({hooked['emails_per_s']:,.0f} vs "
            f"{plain['emails_per_s']:,.0f} emails/s)"
        )


if __name__ == "__main__":
    main()
