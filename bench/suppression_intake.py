"""`python -m bench.suppression_intake [--seconds S] [--rounds N]`: batch intake with an empty
suppression list and with 100,000 entries, alternating (ABBA) in one run so the machine's
noise falls on both, plus the time of `postbox suppressions import` for those 100,000 lines.

The same API process (`postbox serve --no-worker`) serves every round; batches of 500
distinct emails by 4 closed-loop senders, as the main bench's batch row. The list's entries
are other addresses than the emails', so every lookup is the usual miss.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from bench import api_load
from bench.processes import API_KEY, postbox_env, start_api
from bench.services import ROOT, BenchRedis
from postbox.dev.ports import free_port
from postbox.queue.keys import PostboxKeys

QUEUE = "supp"
ENTRIES = 100_000
BATCH_SIZE = 500
CONCURRENCY = 4


def _import(env: dict[str, str], work_dir: Path) -> float:
    """Import ENTRIES addresses with the command line; its wall time (start-up included)."""
    path = work_dir / "list.csv"
    lines = ["address,reason,note"] + [
        f"gone{n}@example{n % 97}.org,,bench" for n in range(ENTRIES)
    ]
    path.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    argv = [sys.executable, "-m", "postbox", "suppressions", "import", str(path)]
    subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)
    return time.monotonic() - started


def _round(port: int, tag: str, seconds: float) -> float:
    result = uvloop.run(api_load.batches(port, API_KEY, tag, BATCH_SIZE, seconds, CONCURRENCY))
    return result.emails_per_s


def main() -> None:
    """Run the rounds and print one line per round, then the two means."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postbox-bench-") as tmp:
        work_dir = Path(tmp)
        redis = BenchRedis(work_dir)
        redis.start()
        env = postbox_env(redis.url, QUEUE, 25)
        port = free_port()
        api = start_api(env, port, work_dir / "api.log")
        try:
            _round(port, "warm", 1.0)
            took = _import(env, work_dir)
            keys = PostboxKeys(QUEUE)
            assert redis.client is not None
            saved = redis.client.hgetall(keys.suppressions())
            print(f"import of {ENTRIES:,} addresses: {took:.1f} s", flush=True)
            rates: dict[str, list[float]] = {"none": [], "100k": []}
            # ABBA order, and every round on an emptied Redis (no worker drains the queue,
            # and a growing one slowed later rounds): neither side gets the later slots.
            for n in range(args.rounds):
                for label in ("none", "100k") if n % 2 == 0 else ("100k", "none"):
                    redis.client.flushdb()
                    if label == "100k":
                        redis.client.hset(keys.suppressions(), mapping=saved)
                    rates[label].append(_round(port, f"{label}{n}", args.seconds))
                    print(f"round {n} {label}: {rates[label][-1]:,.0f}/s", flush=True)
        finally:
            api.stop()
            redis.stop()
    none, full = (sum(v) / len(v) for v in rates.values())
    print(
        f"batch intake, emails/s: no list {none:,.0f}, 100,000 entries {full:,.0f} "
        f"({(full / none - 1) * 100:+.1f} %)"
    )


if __name__ == "__main__":
    main()
