"""The webhook dispatcher's throughput: events per second delivered to a local receiver.

A private Redis holds `--events` events (in the stream's layout, with a realistic `data`)
for `--endpoints` endpoints subscribed to `*`, all on one fast local receiver
(bench/webhook_receiver.py, its own process). Then one `postbox webhooks dispatch` process
starts (or `--dispatchers N`), and the clock runs from the receiver's first request to its
last. CPU is the dispatchers', Redis' and the receiver's over that span, per delivery.

    .venv/bin/python -m bench.webhooks [--events 30000] [--endpoints 1] [--dispatchers 1]
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
import urllib.request
from pathlib import Path
from typing import Any

import redis as sync_redis
import redis.asyncio as aioredis

from bench import webhook_receiver
from bench.proc_stats import cpu_seconds
from bench.services import ROOT, BenchRedis
from postbox.dev.ports import free_port
from postbox.queue.keys import PostboxKeys
from postbox.webhooks.endpoints import EndpointStore
from postbox.webhooks.secret_box import SecretBox

KEY = secrets.token_hex(32)
KEYS = PostboxKeys("email")


def _data(index: int) -> str:
    return json.dumps(
        {
            "email_id": f"em_{index:064x}",
            "message_id": f"<{index:032x}@example.com>",
            "from": "orders@example.com",
            "to": ["someone@example.org"],
            "tags": {"kind": "receipt"},
            "attempt": 1,
            "recipients": [
                {"address": "someone@example.org", "status": "accepted", "reply": "250 2.0.0 OK"}
            ],
            "reply": "250 2.0.0 OK queued",
        }
    )


async def _endpoints(url: str, count: int, redis_url: str) -> str:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = EndpointStore(client, "email", SecretBox(KEY))
    secret = ""
    for _ in range(count):
        endpoint, made = await store.create(url, ("*",))
        secret = secret or made
        # One receiver checks one secret: give every endpoint the first one's.
        await client.hset(
            KEYS.webhook(endpoint.id), "secret", SecretBox(KEY).encrypt(secret, endpoint.id)
        )
    await client.aclose()
    return secret


def _fill(client: sync_redis.Redis, events: int) -> None:
    for start in range(0, events, 1000):
        with client.pipeline(transaction=False) as pipe:
            for index in range(start, min(events, start + 1000)):
                fields = {
                    "type": "email.sent",
                    "email": f"em_{index}",
                    "domain": "example.com",
                    "data": _data(index),
                }
                pipe.xadd(KEYS.events(), fields)
            pipe.execute()


def _count(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as answer:
        found: dict[str, Any] = json.loads(answer.read())
        return found


def _dispatchers(count: int, redis_url: str) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "ENCRYPTION_KEY": KEY,
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "postbox", "webhooks", "dispatch"]
    return [subprocess.Popen(command, env=env, cwd=ROOT) for _ in range(count)]


def _profile(pid: int, path: str) -> None:
    """py-spy's record of one dispatcher for 5 s (bench/requirements.txt)."""
    spy = str(Path(sys.executable).parent / "py-spy")
    record = [spy, "record", "-p", str(pid), "-d", "5", "-o", path, "-r", "100"]
    subprocess.Popen([*record, "--nonblocking", "-f", "speedscope"])


def _measure(
    port: int, expected: int, redis: BenchRedis, pids: dict[str, list[int]], profile: str | None
) -> dict[str, Any]:
    """Wait for the first delivery, then for the last; the figures in between (so the
    dispatchers' start-up is not counted)."""
    while (first := _count(port))["requests"] == 0:
        time.sleep(0.01)
    cpu_first = {name: sum(map(cpu_seconds, each)) for name, each in pids.items()}
    calls_first = redis.calls()
    load_first = os.getloadavg()[0]
    if profile:
        _profile(pids["dispatchers"][0], profile)
    deadline = time.monotonic() + 300
    while (found := _count(port))["requests"] < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    counted = max(1, found["requests"] - first["requests"])
    cpu = {name: sum(map(cpu_seconds, each)) - cpu_first[name] for name, each in pids.items()}
    calls = [now - before for now, before in zip(redis.calls(), calls_first, strict=True)]
    span = found["last"] - found["first"]
    return {
        "delivered": found["requests"],
        "distinct_ids": found["ids"],
        "bad_signatures": found["bad"],
        "seconds": round(span, 2),
        "per_second": round(found["requests"] / span) if span else None,
        "redis_calls_per_delivery": {
            "commands": round(calls[0] / counted, 2),
            "scripts": round(calls[1] / counted, 3),
        },
        "cpu_ms_per_delivery": {name: round(v * 1000 / counted, 3) for name, v in cpu.items()},
        # Others share this machine: a load above the benchmark's own (~2) means slower figures.
        "load_average": [round(load_first, 2), round(os.getloadavg()[0], 2)],
    }


def run(events: int, endpoints: int, dispatchers: int, profile: str | None) -> dict[str, Any]:
    """One measurement; its figures."""
    with tempfile.TemporaryDirectory(prefix="postbox-bench-webhooks-") as tmp:
        redis = BenchRedis(Path(tmp))
        redis.start()
        port = free_port()
        started: list[subprocess.Popen[bytes]] = []
        try:
            secret = asyncio.run(_endpoints(f"http://127.0.0.1:{port}/hook", endpoints, redis.url))
            started.append(webhook_receiver.start(port, secret, Path(tmp) / "receiver.log"))
            assert redis.client is not None
            _fill(redis.client, events)
            started += _dispatchers(dispatchers, redis.url)
            pids = {
                "dispatchers": [p.pid for p in started[1:]],
                "redis": [redis.pid],
                "receiver": [started[0].pid],
            }
            figures = _measure(port, events * endpoints, redis, pids, profile)
        finally:
            for process in started:
                process.terminate()
                process.wait(timeout=30)
            redis.stop()
    return {"events": events, "endpoints": endpoints, "dispatchers": dispatchers, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--endpoints", type=int, default=1)
    parser.add_argument("--dispatchers", type=int, default=1, help="Dispatcher processes.")
    parser.add_argument("--profile", metavar="JSON", help="py-spy (speedscope) of one.")
    args = parser.parse_args()
    print(json.dumps(run(args.events, args.endpoints, args.dispatchers, args.profile), indent=2))


if __name__ == "__main__":
    main()
