"""The peer: the same drain with a Node BullMQ + nodemailer worker, against the same Redis
and sink, so Postbox's rate can be given as a ratio of a plain Node set-up measured in the
same run on the same machine.

It runs as one process (the first round's peer) or as several against the same queue, each
with its own concurrency and connection pool: the way a Node user fills a machine that has
more than one core.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from bench import queues
from bench.drain import DrainResult, Setup, measure
from bench.processes import Child
from bench.services import ROOT

PEERS_DIR = ROOT / "bench" / ".peers"
READY = "peer worker ready"


@dataclass(frozen=True)
class PeerShape:
    """How the peer runs: processes, BullMQ concurrency and nodemailer pool per process."""

    label: str
    processes: int = 1
    concurrency: int = 50
    max_connections: int = 10


ONE_PROCESS = PeerShape("node-peer")
# Issue 21: two processes, concurrency 100 and 10 pooled connections each.
TWO_PROCESSES = PeerShape("node-peer-2proc", processes=2, concurrency=100)


def drain_peer(
    setup: Setup,
    jobs: list[dict[str, str]],
    shape: PeerShape = ONE_PROCESS,
    backoff_ms: int = queues.PLAIN_BACKOFF_MS,
) -> DrainResult:
    """Prefill `jobs` (plain `{from, to, subject, text}`) and drain them with
    bench/peers/worker.mjs run as `shape` says."""
    if not (PEERS_DIR / "node_modules" / "bullmq").is_dir():
        raise RuntimeError("the Node peer is not installed: run bash bench/setup.sh --peers")
    queue = f"drain-{shape.label}"
    queues.fill_plain(setup.redis.url, queue, jobs, True, backoff_ms)
    # Node resolves bullmq and nodemailer from the script's folder, so it runs from there.
    script = PEERS_DIR / "worker.mjs"
    shutil.copyfile(ROOT / "bench" / "peers" / "worker.mjs", script)
    env = {
        **os.environ,
        "QUEUE_NAME": queue,
        "REDIS_PORT": str(setup.redis.port),
        "REDIS_PASSWORD": setup.redis.password,
        "SMTP_PORT": str(setup.sink.port),
        "CONCURRENCY": str(shape.concurrency),
        "MAX_CONNECTIONS": str(shape.max_connections),
    }
    node = shutil.which("node") or "node"
    children: list[Child] = []
    try:
        for index in range(shape.processes):
            log = setup.work_dir / f"worker-{shape.label}-{index}.log"
            children.append(Child([node, str(script)], env, log))
        for child in children:
            child.wait_for_log(READY, 1, timeout=30)
        dims = (shape.processes, shape.concurrency)
        return measure(setup, children, queue, len(jobs), shape.label, dims)
    finally:
        for child in children:
            child.stop()
