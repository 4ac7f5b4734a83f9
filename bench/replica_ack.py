"""`python -m bench.replica_ack [--rate R] [--seconds S] [--drain N]`: what
REDIS_ACK_REPLICAS costs.

`POST /v1/emails` at a fixed rate (open loop, bench/api_load.py) against `postbox serve
--no-worker` behind Sentinel (postbox/dev/sentinels.py: a primary, two replicas, three
Sentinels on loopback), once with REDIS_ACK_REPLICAS=0 and once with 1; then a drain of N
emails by one `postbox worker` process into smtp-sink (bench/drain.py) on a primary with two
replicas, with each value. Prints one JSON line per run. Not part of `bench/run.sh`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from bench import api_load
from bench.drain import Setup, drain_postbox
from bench.emails import prepare_many
from bench.processes import API_KEY, postbox_env, start_api
from bench.services import BenchRedis, SmtpSink
from postbox.dev.ports import free_port, wait_for_port
from postbox.dev.redis_server import redis_server_binary
from postbox.dev.sentinels import SentinelGroup
from postbox.supervisor import stop_processes


def measure(work_dir: Path, rate: float, seconds: float) -> list[dict[str, object]]:
    """One run per REDIS_ACK_REPLICAS value, on one Sentinel group."""
    group = SentinelGroup(work_dir / "ha", secrets.token_hex(12), secrets.token_hex(12))
    group.start()
    results = []
    try:
        for ack in (0, 1):
            env = postbox_env("", f"ack{ack}", free_port(), **group.env())
            env["REDIS_ACK_REPLICAS"] = str(ack)
            port = free_port()
            api = start_api(env, port, work_dir / f"api-ack{ack}.log")
            try:
                run = uvloop.run(
                    api_load.single_sends(port, API_KEY, f"ack{ack}", rate, seconds, True)
                )
            finally:
                api.stop()
            results.append({"ack_replicas": ack, **run.to_json()})
    finally:
        group.stop()
    return results


def drains(work_dir: Path, count: int) -> list[dict[str, object]]:
    """Drain `count` emails once per REDIS_ACK_REPLICAS value, on a primary with two
    replicas."""
    redis, sink = BenchRedis(work_dir), SmtpSink(work_dir, "sink")
    redis.start()
    sink.start()
    replicas = [_replica(work_dir / f"replica-{i}", redis) for i in range(2)]
    try:
        _wait_replicas(redis, len(replicas))
        emails = prepare_many("ack", count)
        setup = Setup(redis, sink, work_dir)
        return [
            {
                "ack_replicas": ack,
                **drain_postbox(setup, emails, f"ack{ack}", 1, **_ack(ack)).to_json(),
            }
            for ack in (0, 1)
        ]
    finally:
        stop_processes(replicas, timeout=10)
        sink.stop()
        redis.stop()


def _ack(replicas: int) -> dict[str, str]:
    return {"REDIS_ACK_REPLICAS": str(replicas)}


def _replica(directory: Path, primary: BenchRedis) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True)
    port = free_port()
    password = primary.password
    args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--dir", str(directory), "--save", "", "--requirepass", password]
    args += ["--masterauth", password, "--replicaof", "127.0.0.1", str(primary.port)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", port, timeout=10)
    return process


def _wait_replicas(redis: BenchRedis, count: int) -> None:
    assert redis.client is not None
    deadline = time.monotonic() + 20
    while int(redis.client.info("replication")["connected_slaves"]) < count:
        if time.monotonic() > deadline:
            raise TimeoutError("the replicas did not connect")
        time.sleep(0.1)


def main() -> None:
    """Parse the arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--drain", type=int, default=5000, help="emails per drain (0: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ack-") as tmp:
        results = measure(Path(tmp), args.rate, args.seconds) if args.seconds else []
        if args.drain:
            results += drains(Path(tmp), args.drain)
        for result in results:
            print(json.dumps(result), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
