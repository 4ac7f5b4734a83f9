"""`python -m bench.suppression_intake [--seconds S] [--rounds N]`: batch intake with an empty
suppression list and with 100,000 entries, alternating (ABBA) in one run so the machine's
noise falls on both, plus the time of `postbox suppressions import` for those 100,000 lines.

The same API process (`postbox serve --no-worker`) serves every round; batches of 500
distinct emails by 4 closed-loop senders, as the main bench's batch row. The list's entries
are other addresses than the emails', so every lookup is the usual miss.

`--without DIR` adds a third variant, `off`: a second API process, started from the
checkout DIR, whose intake has no suppression check (patched out), so the check's whole
cost shows beside the build without it, in the same run (rounds in rotating order).
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


def _order(labels: list[str], n: int) -> list[str]:
    """Round `n`'s order: each label takes every slot as often (ABBA for two, rotated and
    reversed for three), so the machine's drift falls on all of them."""
    turned = labels[n % len(labels) :] + labels[: n % len(labels)]
    return turned if n % 2 == 0 else turned[::-1]


def main() -> None:
    """Run the rounds and print one line per round, then the means."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--without", type=Path, help="a checkout with the check patched out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postbox-bench-") as tmp:
        work_dir = Path(tmp)
        redis = BenchRedis(work_dir)
        redis.start()
        env = postbox_env(redis.url, QUEUE, 25)
        ports = {"none": free_port()}
        apis = [start_api(env, ports["none"], work_dir / "api.log")]
        if args.without:
            ports["off"] = free_port()
            apis.append(start_api(env, ports["off"], work_dir / "off.log", args.without.resolve()))
        ports["100k"] = ports["none"]
        try:
            for port in set(ports.values()):
                _round(port, "warm", 1.0)
            took = _import(env, work_dir)
            keys = PostboxKeys(QUEUE)
            assert redis.client is not None
            saved = redis.client.hgetall(keys.suppressions())
            print(f"import of {ENTRIES:,} addresses: {took:.1f} s", flush=True)
            rates: dict[str, list[float]] = {label: [] for label in ports}
            # Every round on an emptied Redis (no worker drains the queue, and a growing one
            # slowed later rounds), in an order that gives no side the later slots.
            for n in range(args.rounds):
                for label in _order(list(ports), n):
                    redis.client.flushdb()
                    if label == "100k":
                        redis.client.hset(keys.suppressions(), mapping=saved)
                    rates[label].append(_round(ports[label], f"{label}{n}", args.seconds))
                    print(f"round {n} {label}: {rates[label][-1]:,.0f}/s", flush=True)
        finally:
            for api in apis:
                api.stop()
            redis.stop()
    means = {label: sum(v) / len(v) for label, v in rates.items()}
    base = means.get("off", means["none"])
    print(
        "batch intake, emails/s: "
        + ", ".join(
            f"{label} {mean:,.0f} ({(mean / base - 1) * 100:+.1f} %)"
            for label, mean in means.items()
        )
        + f" (against {'the build without the check' if 'off' in means else 'no list'})"
    )


if __name__ == "__main__":
    main()
