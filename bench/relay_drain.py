"""The realistic-relay rows: Postbox and the Node peer against bench/relay.py (30 ms per
transaction, 3 % of recipients greylisted once, 1 % refused for good), with the same number
of connections on both sides.

Every email goes to its own address, so the refusals fall on 4 % of the emails, the same
ones for every sender (the relay decides by address). A greylisted email is retried after a
backoff: the bench sets it short (EMAIL_BACKOFF_MS, and the peer's BullMQ backoff, 100 ms)
so the drain ends with its retries instead of waiting seconds for them. Each run gets a
fresh relay, so greylisting and the connection counts start from nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import relay
from bench.drain import DrainResult, Setup, drain_postbox
from bench.emails import peer_job, prepare_many
from bench.peer import PeerShape, drain_peer
from bench.processes import postbox_env
from bench.relay import RealisticRelay
from postbox.config import load_settings

BACKOFF_MS = 100
# The README gives the rule (a process delivers at most SMTP_POOL_SIZE / the relay's time
# per message), not a number: at 30 ms, 32 connections allow about 1,000 emails/s per
# process, about what one process drains against smtp-sink on this machine.
RECOMMENDED_POOL = 32


@dataclass(frozen=True)
class _Run:
    label: str
    pool: int | None  # SMTP_POOL_SIZE / nodemailer maxConnections; None: Postbox's default
    node: bool = False


def _note(processes: int, default_pool: int) -> str:
    return (
        f"relay: {relay.DELAY_MS} ms per transaction, {relay.DEFER_PERCENT} % of recipients"
        f" 4xx once (greylisting), {relay.REJECT_PERCENT} % 5xx; backoff {BACKOFF_MS} ms"
        f" (EMAIL_BACKOFF_MS; the peer's BullMQ backoff the same) so retries end the drain;"
        f" {processes} processes each side, pool {default_pool} (Postbox's default) and"
        f" {RECOMMENDED_POOL} per process; the peer's BullMQ retries 5xx too (it cannot tell)"
    )


def _row(result: DrainResult, counts: dict[str, Any], pool: int) -> dict[str, Any]:
    return {
        **result.to_json(),
        "pool_per_process": pool,
        "connections_max_open": counts["max_open"],
        "relay_accepted": counts["accepted"],
        "relay_deferred": counts["deferred"],
        "relay_rejected": counts["rejected"],
        # Every email ended sent or dead-lettered, and the relay took each sent one.
        "all_ended": result.completed + result.failed == result.jobs,
    }


def run_relay_rows(setup: Setup, tag: str, jobs: int) -> dict[str, Any]:
    """Postbox (defaults, then RECOMMENDED_POOL) and the peer (2 processes, same pools)."""
    settings = load_settings(postbox_env(setup.redis.url, "x", 25))
    processes, default_pool = settings.worker.processes, settings.smtp.pool_size
    plan = [
        _Run("relay-defaults", None),
        _Run(f"relay-pool{RECOMMENDED_POOL}", RECOMMENDED_POOL),
        _Run(f"relay-node-pool{default_pool}", default_pool, node=True),
        _Run(f"relay-node-pool{RECOMMENDED_POOL}", RECOMMENDED_POOL, node=True),
    ]
    emails = prepare_many(f"{tag}-relay", jobs, recipients=jobs)
    rows = []
    for run in plan:
        server = RealisticRelay(setup.work_dir, run.label)
        server.start()
        try:
            here = Setup(setup.redis, server, setup.work_dir)
            pool = run.pool or default_pool
            if run.node:
                shape = PeerShape(run.label, processes, 100, pool)
                peer_jobs = [peer_job(f"{tag}-{run.label}", i, jobs) for i in range(jobs)]
                result = drain_peer(here, peer_jobs, shape, BACKOFF_MS)
            else:
                extra = {"EMAIL_BACKOFF_MS": str(BACKOFF_MS)}
                if run.pool:
                    extra["SMTP_POOL_SIZE"] = str(run.pool)
                result = drain_postbox(here, emails, run.label, None, **extra)
            rows.append(_row(result, server.counts(), pool))
        finally:
            server.stop()
    return {"runs": rows, "note": _note(processes, default_pool)}
