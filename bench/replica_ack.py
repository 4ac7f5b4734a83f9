"""`python -m bench.replica_ack [--rate R] [--seconds S]`: what REDIS_ACK_REPLICAS costs.

`POST /v1/emails` at a fixed rate (open loop, bench/api_load.py) against `postbox serve
--no-worker` behind Sentinel (postbox/dev/sentinels.py: a primary, two replicas, three
Sentinels on loopback), once with REDIS_ACK_REPLICAS=0 and once with 1; prints one JSON line
per run. Not part of `bench/run.sh`: it starts six Redis processes of its own.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from pathlib import Path

import uvloop

from bench import api_load
from bench.processes import API_KEY, postbox_env, start_api
from postbox.dev.ports import free_port
from postbox.dev.sentinels import SentinelGroup


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


def main() -> None:
    """Parse the arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ack-") as tmp:
        for result in measure(Path(tmp), args.rate, args.seconds):
            print(json.dumps(result), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
