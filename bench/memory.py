"""`python -m bench.memory [--emails N]`: Redis memory per sent email within the dedup window.

Its own Redis and smtp-sink (bash bench/setup.sh unpacks it), then `postbox worker` with its
defaults: a warm-up of 4,000 emails fills what is shared and bounded (BullMQ's event stream,
the 1,000 completed jobs kept whole), then N more are queued and sent. The growth of Redis'
`used_memory` (less the clients' buffers) divided by N is what each sent email costs for the
dedup window; one JSON row.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.drain import wait_finished
from bench.emails import prepare_many
from bench.processes import WORKER_READY, postbox_env, start_worker
from bench.queues import fill_postbox
from bench.services import BenchRedis, SmtpSink
from postbox.config import load_settings

QUEUE = "memory"
WARM_UP = 4000


def measure(emails: int, work_dir: Path) -> dict[str, float]:
    """Bytes of Redis memory per sent email, after `WARM_UP` emails, over `emails` more."""
    redis, sink = BenchRedis(work_dir), SmtpSink(work_dir, "sink")
    redis.start()
    sink.start()
    env = postbox_env(redis.url, QUEUE, sink.port)
    settings = load_settings(env)
    worker = start_worker(env, [], work_dir / "worker.log")
    try:
        worker.wait_for_log(WORKER_READY, settings.worker.processes, timeout=60)
        fill_postbox(settings, prepare_many("warm-up", WARM_UP), paused=False)
        wait_finished(redis, QUEUE, WARM_UP, timeout=120)
        assert redis.client is not None
        before = _kept_memory(redis.client)
        fill_postbox(settings, prepare_many("measured", emails), paused=False)
        wait_finished(redis, QUEUE, WARM_UP + emails, timeout=max(120.0, emails / 200))
        time.sleep(1)  # the last completions' writes
        after = _kept_memory(redis.client)
    finally:
        worker.stop()
        sink.stop()
        redis.stop()
    per_email = (after - before) / emails
    return {
        "emails": emails,
        "bytes_per_sent_email": round(per_email, 1),
        "used_memory_before_mb": round(before / 2**20, 1),
        "used_memory_after_mb": round(after / 2**20, 1),
        "mb_per_million_emails_a_day": round(per_email * 1_000_000 / 2**20, 1),
    }


def _kept_memory(client: Any) -> int:
    """Used memory but for the clients' buffers, which come and go with the traffic."""
    memory = client.info("memory")
    return int(memory["used_memory"]) - int(memory["mem_clients_normal"])


def main() -> None:
    """Parse the arguments, measure, print one JSON row."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postbox-bench-memory-") as work_dir:
        print(json.dumps(measure(args.emails, Path(work_dir))))


if __name__ == "__main__":
    main()
