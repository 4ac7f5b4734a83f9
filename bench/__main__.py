"""`python -m bench [--peers] [--quick]`: run every measurement, print the table, write JSON.

Run it through `bash bench/run.sh`, which first sets up what it needs. Each run starts its
own Redis and smtp-sink in a temporary folder and stops them at the end; nothing it starts
outlives it. Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

import uvloop

from bench import api_load, proc_stats, report, targets
from bench.drain import DrainResult, Setup, drain_postbox
from bench.e2e import run_e2e
from bench.emails import peer_job, prepare_many
from bench.features_on import run_features_rows
from bench.peer import ONE_PROCESS, TWO_PROCESSES, drain_peer
from bench.plan import FULL, QUICK, Plan
from bench.processes import API_KEY, postbox_env, start_api
from bench.relay_drain import run_relay_rows
from bench.services import ROOT, BenchRedis, SmtpSink
from postbox.config import load_settings
from postbox.dev.ports import free_port

API_QUEUE = "api"
# A global send limit far above any drain rate here: it never postpones, so the drain shows
# what checking it costs (a real deployment sets one to its relay's limit).
FAR_RATE_LIMIT = "20000/second"


def progress(message: str) -> None:
    """One line of progress on stderr, so stdout holds only the report."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _drains(setup: Setup, plan: Plan, tag: str) -> tuple[list[DrainResult], list[str]]:
    """Postbox with its defaults, then 1 and 2 processes (unless the defaults are that)."""
    progress(f"rendering {plan.drain_jobs:,} emails as the API would")
    emails = prepare_many(tag, plan.drain_jobs)
    default_processes = load_settings(
        postbox_env(setup.redis.url, "x", setup.sink.port)
    ).worker.processes
    results, notes = [], []
    for label, processes in (("defaults", None), ("1-process", 1), ("2-processes", 2)):
        if processes == default_processes:
            notes.append(f"{label}: the same as defaults on this machine (not run twice)")
            continue
        progress(f"drain: postbox worker {label}, {len(emails):,} jobs")
        results.append(drain_postbox(setup, emails, label, processes))
    progress(f"drain: postbox worker defaults with EMAIL_RATE_LIMIT={FAR_RATE_LIMIT}")
    results.append(
        drain_postbox(setup, emails, "rate-limited", None, EMAIL_RATE_LIMIT=FAR_RATE_LIMIT)
    )
    return results, notes


def _single_sends(
    port: int, ours: list[int], plan: Plan, tag: str
) -> list[api_load.OpenLoopResult]:
    results = []
    for index, rate in enumerate(plan.rates):
        progress(f"POST /v1/emails at {rate:g} req/s for {plan.rate_seconds:g} s")
        other = proc_stats.OtherLoad(ours)
        result = uvloop.run(
            api_load.single_sends(
                port, API_KEY, f"{tag}-one-{rate:g}", rate, plan.rate_seconds, index == 0
            )
        )
        result.other_load_cores = other.cores()
        results.append(result)
    return results


def _batches(port: int, ours: list[int], plan: Plan, tag: str) -> list[api_load.BatchResult]:
    results = []
    for size in plan.batch_sizes:
        progress(f"POST /v1/emails/batch with {size} emails for {plan.batch_seconds:g} s")
        other = proc_stats.OtherLoad(ours)
        result = uvloop.run(
            api_load.batches(
                port,
                API_KEY,
                f"{tag}-batch-{size}",
                size,
                plan.batch_seconds,
                plan.batch_concurrency,
            )
        )
        result.other_load_cores = other.cores()
        results.append(result)
    return results


def _api_phase(setup: Setup, plan: Plan, tag: str) -> dict[str, Any]:
    """End to end first (the API's queue is empty then), then load on the API alone."""
    env = postbox_env(setup.redis.url, API_QUEUE, setup.sink.port)
    port = free_port()
    progress("starting the API (postbox serve --no-worker)")
    api = start_api(env, port, setup.work_dir / "api.log")
    try:
        progress(f"end to end: {plan.e2e_rate:g} emails/s for {plan.e2e_seconds:g} s")
        e2e = run_e2e(
            api.pid,
            port,
            setup.redis,
            API_QUEUE,
            setup.work_dir,
            f"{tag}-e2e",
            plan.e2e_rate,
            plan.e2e_seconds,
        )
        singles = _single_sends(port, [api.pid, setup.redis.pid], plan, tag)
        batches = _batches(port, [api.pid, setup.redis.pid], plan, tag)
        leaves = [p for p in proc_stats.tree(api.pid) if not proc_stats.children(p)]
        api_rss = max(proc_stats.peak_rss_mb(p) for p in leaves)
    finally:
        api.stop()
    return {"e2e": e2e, "singles": singles, "batches": batches, "api_rss": api_rss}


def run(plan: Plan, peers: bool, work_dir: Path) -> dict[str, Any]:
    """Start the servers, measure everything, and return the results as JSON data."""
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    redis, sink = BenchRedis(work_dir), SmtpSink(work_dir, "sink")
    redis.start()
    sink.start()
    setup = Setup(redis, sink, work_dir)
    try:
        drains, notes = _drains(setup, plan, tag)
        peer_runs = _peers(setup, plan, tag) if peers else {}
        extra_rows: dict[str, Any] = {"relay": None, "features_on": None}
        if peers:
            progress(f"drain: realistic relay, Postbox and the Node peer, {plan.relay_jobs:,} jobs")
            extra_rows["relay"] = run_relay_rows(setup, tag, plan.relay_jobs)
            progress(f"drain: every feature on, {plan.features_jobs:,} jobs")
            extra_rows["features_on"] = run_features_rows(
                setup, tag, plan.features_jobs, plan.suppressions
            )
        api = _api_phase(setup, plan, tag)
    finally:
        sink.stop()
        redis.stop()
    results = _results(plan, peers, drains, notes, peer_runs, api)
    results.update(extra_rows)
    results["targets"] = [t.to_json() for t in targets.evaluate(results)]
    return results


def _peers(setup: Setup, plan: Plan, tag: str) -> dict[str, DrainResult]:
    """The Node peer as one process (the first round's) and as two (issue 21)."""
    found = {}
    for key, shape in (("peer", ONE_PROCESS), ("peer_2proc", TWO_PROCESSES)):
        progress(f"drain: Node peer {shape.label} (bullmq + nodemailer), {plan.drain_jobs:,} jobs")
        jobs = [peer_job(f"{tag}-{shape.label}", i) for i in range(plan.drain_jobs)]
        found[key] = drain_peer(setup, jobs, shape)
    return found


def _ratio(ours: DrainResult, peer: DrainResult | None) -> float | None:
    if peer is None or not peer.emails_per_s:
        return None
    return round(ours.emails_per_s / peer.emails_per_s, 3)


def _results(
    plan: Plan,
    peers: bool,
    drains: list[DrainResult],
    notes: list[str],
    peer_runs: dict[str, DrainResult],
    api: dict[str, Any],
) -> dict[str, Any]:
    defaults = drains[0]
    e2e = api["e2e"]
    peer, peer_2proc = peer_runs.get("peer"), peer_runs.get("peer_2proc")
    results: dict[str, Any] = {
        "meta": {**report.meta(plan is QUICK, peers), "plan": plan.__dict__},
        "drain": [d.to_json() for d in drains],
        "drain_notes": notes,
        "peer": peer.to_json() if peer else None,
        "drain_ratio_vs_peer": _ratio(defaults, peer),
        "peer_2proc": peer_2proc.to_json() if peer_2proc else None,
        "drain_ratio_vs_peer_2proc": _ratio(defaults, peer_2proc),
        "api": {
            "single": [r.to_json() for r in api["singles"]],
            "batch": [r.to_json() for r in api["batches"]],
        },
        "e2e": e2e.to_json(),
        "memory": {
            "api_peak_rss_mb": round(api["api_rss"], 1),
            "worker_peak_rss_mb": max([e2e.worker_peak_rss_mb, *(d.peak_rss_mb for d in drains)]),
        },
    }
    return results


def _exit_on_term(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through every `finally`, which stops what this run started.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run, print the report and write the JSON file."""
    signal.signal(signal.SIGTERM, _exit_on_term)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--peers", action="store_true", help="also drain with the Node peer")
    parser.add_argument("--quick", action="store_true", help="a much smaller run (smoke test)")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results", help="folder for the JSON"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs' temporary folder")
    args = parser.parse_args(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="postbox-bench-"))
    started = time.monotonic()
    try:
        results = run(QUICK if args.quick else FULL, args.peers, work_dir)
    finally:
        if args.keep:
            progress(f"logs kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    path = report.write_json(results, args.output)
    print(report.render(results))
    print(f"\nJSON: {path}  ({results['meta']['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
