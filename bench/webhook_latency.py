"""From `POST /v1/emails` to the endpoint receiving that email's `email.sent`.

    .venv/bin/python -m bench.webhook_latency [--rate 200] [--seconds 10]

`postbox serve --no-worker` and `postbox worker` (its defaults: worker processes and the
dispatcher) run on a private Redis and smtp-sink, with one endpoint subscribed to `*` on the
fast local receiver (bench/webhook_receiver.py), which notes when each email's first
`email.sent` arrives. Emails are posted open loop at `--rate` after a second of warm-up; the
latency of each runs from its scheduled send to that arrival. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import uvloop

from bench import webhook_receiver
from bench.e2e import post_at_rate
from bench.emails import payload, payload_bytes
from bench.processes import WORKER_READY, postbox_env, start_api, start_worker
from bench.services import BenchRedis, SmtpSink
from bench.stats import percentiles
from bench.webhook_drain import KEY, subscribe_all
from postbox.api.schemas import EmailSchema
from postbox.config import load_settings
from postbox.dev.ports import free_port
from postbox.queue.keys import PostboxKeys
from postbox.queue.producer import prepare_email

QUEUE = "latency"


def _arrivals(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/sent", timeout=5) as answer:
        found: dict[str, float] = json.loads(answer.read())
        return found


def run(rate: float, seconds: float) -> dict[str, Any]:
    """One measurement at `rate` for `seconds`; its figures."""
    with tempfile.TemporaryDirectory(prefix="postbox-bench-webhook-latency-") as tmp:
        work_dir = Path(tmp)
        redis, sink = BenchRedis(work_dir), SmtpSink(work_dir, "sink")
        redis.start()
        sink.start()
        hook_port, api_port = free_port(), free_port()
        extra = {"ENCRYPTION_KEY": KEY, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}
        env = postbox_env(redis.url, QUEUE, sink.port, **extra)
        url = f"http://127.0.0.1:{hook_port}/hook"
        secret = asyncio.run(subscribe_all(redis.url, QUEUE, url, KEY))
        receiver = webhook_receiver.start(hook_port, secret, work_dir / "receiver.log")
        api = start_api(env, api_port, work_dir / "api.log")
        worker = start_worker(env, [], work_dir / "worker.log")
        try:
            worker.wait_for_log(WORKER_READY, load_settings(env).worker.processes, timeout=60)
            warm = [payload_bytes("warm", i) for i in range(int(rate))]
            uvloop.run(post_at_rate(api_port, warm, rate))
            bodies = [payload_bytes("latency", i) for i in range(int(rate * seconds))]
            posted = uvloop.run(post_at_rate(api_port, bodies, rate))
            schema = EmailSchema()
            ids = [
                prepare_email(schema.load(payload("latency", i)), None).job_id
                for i in range(len(bodies))
            ]
            deadline = time.monotonic() + 30
            while len(found := _arrivals(hook_port)) < len(ids) + len(warm):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            written = _written_at(redis)
        finally:
            worker.stop()
            api.stop()
            receiver.terminate()
            receiver.wait(timeout=10)
            sink.stop()
            redis.stop()
    sent_at = dict(zip(ids, posted.sent_at, strict=True))
    latencies = [found[i] - sent_at[i] for i in ids if i in found]
    return {
        "rate": rate,
        "posted": posted.sent,
        "accepted": posted.ok,
        "events_received": len(latencies),
        "post_to_sent_event_ms": percentiles(latencies),
        "api_latency_ms": posted.latency_ms,
        "stages_ms": _stages(sent_at, written, found),
    }


def _written_at(redis: BenchRedis) -> dict[str, dict[str, float]]:
    """When each email's `email.queued` and first `email.sent` were written to the event
    stream (its entry ids' milliseconds, on Redis' clock: this machine's), by email id."""
    assert redis.client is not None
    written: dict[str, dict[str, float]] = {"email.queued": {}, "email.sent": {}}
    for entry_id, fields in redis.client.xrange(PostboxKeys(QUEUE).events()):
        kind = written.get(fields.get("type", ""))
        if kind is not None:
            kind.setdefault(fields["email"], int(entry_id.split("-")[0]) / 1000)
    return written


def _stages(
    sent_at: dict[str, float], written: dict[str, dict[str, float]], received: dict[str, float]
) -> dict[str, dict[str, float | None]]:
    """The latency split where the event stream saw each email: the API's part (POST to
    `email.queued`, 1 ms steps), the worker's (to `email.sent`, the SMTP transaction
    included) and the dispatcher's (from `email.sent` written to received)."""
    queued, sent = written["email.queued"], written["email.sent"]
    both = [i for i in sent_at if i in queued and i in sent and i in received]
    return {
        "post_to_queued": percentiles([queued[i] - sent_at[i] for i in both]),
        "queued_to_sent": percentiles([sent[i] - queued[i] for i in both]),
        "sent_to_received": percentiles([received[i] - sent[i] for i in both]),
    }


def main() -> None:
    """Parse the options, measure, print."""
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_latency", description=__doc__)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    print(json.dumps(run(args.rate, args.seconds), indent=2))


if __name__ == "__main__":
    main()
