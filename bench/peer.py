"""The peer: the same drain with a Node BullMQ + nodemailer worker, against the same Redis
and sink, so Postbox's rate can be given as a ratio of a plain Node set-up measured in the
same run on the same machine."""

from __future__ import annotations

import os
import shutil

from bench import queues
from bench.drain import DrainResult, Setup, measure
from bench.emails import peer_job
from bench.processes import Child
from bench.services import ROOT

PEERS_DIR = ROOT / "bench" / ".peers"
CONCURRENCY = 50
MAX_CONNECTIONS = 10
READY = "peer worker ready"


def drain_peer(setup: Setup, tag: str, total: int) -> DrainResult:
    """Prefill `total` plain jobs of about 1 KB and drain them with bench/peers/worker.mjs."""
    if not (PEERS_DIR / "node_modules" / "bullmq").is_dir():
        raise RuntimeError("the Node peer is not installed: run bash bench/setup.sh --peers")
    queue = "drain-peer"
    queues.fill_plain(setup.redis.url, queue, [peer_job(tag, i) for i in range(total)], True)
    # Node resolves bullmq and nodemailer from the script's folder, so it runs from there.
    script = PEERS_DIR / "worker.mjs"
    shutil.copyfile(ROOT / "bench" / "peers" / "worker.mjs", script)
    env = {
        **os.environ,
        "QUEUE_NAME": queue,
        "REDIS_PORT": str(setup.redis.port),
        "REDIS_PASSWORD": setup.redis.password,
        "SMTP_PORT": str(setup.sink.port),
        "CONCURRENCY": str(CONCURRENCY),
        "MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    node = shutil.which("node") or "node"
    child = Child([node, str(script)], env, setup.work_dir / "worker-peer.log")
    try:
        child.wait_for_log(READY, 1, timeout=30)
        return measure(setup, child, queue, total, "node-peer", (1, CONCURRENCY))
    finally:
        child.stop()
