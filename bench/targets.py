"""The issue's targets, checked against one run's results."""

from __future__ import annotations

from typing import Any

from bench.report import QUIET_CORES, Target

PEER_RATIO_AIM = 1.75
# Issue 21: against the Node peer run as two processes, in the same run.
TWO_PROCESS_RATIO = 3.0
ALL_IN_CPU_MS = 0.25
RATE_LIMITED_RATIO = 1.5  # features on and EMAIL_RATE_LIMIT too
# Issue 16: the drain with the history on (and nothing else) against the defaults drain.
HISTORY_ON_RATIO = 0.9
SINGLE_RATE = 500
SINGLE_P99_MS = 25.0
BATCH_EMAILS_PER_S = 10_000
E2E_P50_MS = 15.0
WORKER_RSS_MB = 150.0


def _at_most(
    name: str, wanted: str, measured: float | None, limit: float, disturbed: bool
) -> Target:
    passed = None if measured is None else measured <= limit
    return Target(name, wanted, measured, passed, disturbed)


def _disturbed(*phases: dict[str, Any] | None) -> bool:
    """True when other processes took CPU during any of these measurements."""
    return any(p is not None and p["other_load_cores"] >= QUIET_CORES for p in phases)


def _single_send(single: dict[str, Any] | None) -> Target:
    """p99 within the limit, and every request answered with a 2xx."""
    name = f"POST /v1/emails p99 at {SINGLE_RATE} req/s"
    wanted = f"<= {SINGLE_P99_MS:g} ms, no errors"
    if single is None:
        return Target(name, wanted, None, None)
    p99 = single["latency_ms"]["p99"]
    passed = p99 is not None and p99 <= SINGLE_P99_MS and single["errors"] == 0
    return Target(name, wanted, p99, passed, _disturbed(single))


def _beats_two_process_peer(
    name: str,
    ours: dict[str, Any] | None,
    peer: dict[str, Any] | None,
    wanted_ratio: float = TWO_PROCESS_RATIO,
) -> Target:
    """At least `wanted_ratio` times the 2-process peer's rate (None: either missing)."""
    wanted = f">= {wanted_ratio:g}x the 2-process peer's rate"
    if ours is None or peer is None or not peer["emails_per_s"]:
        return Target(name, wanted, None, None)
    ratio = ours["emails_per_s"] / peer["emails_per_s"]
    return Target(name, wanted, round(ratio, 3), ratio >= wanted_ratio, _disturbed(ours, peer))


def _features_on(results: dict[str, Any]) -> list[Target]:
    """Issue 21's drain targets, for each database the features-on drain recorded into."""
    found: list[Target] = []
    features = results.get("features_on")
    peer = results.get("peer_2proc")
    for run in features["runs"] if features else []:
        if run.get("history_only"):
            found.append(_history_on(run, results["drain"][0]))
            continue
        name = f"drain, features on ({run['database']})"
        if run.get("rate_limit"):
            found.append(
                _beats_two_process_peer(
                    f"{name} + rate limiter, vs the 2-process peer", run, peer, RATE_LIMITED_RATIO
                )
            )
            continue
        found.append(_beats_two_process_peer(f"{name}, vs the 2-process peer", run, peer))
        found.append(
            _at_most(
                f"{name}, worker + Redis CPU per email",
                f"<= {ALL_IN_CPU_MS:g} ms all in",
                run["cpu_ms_per_email_all_in"],
                ALL_IN_CPU_MS,
                _disturbed(run),
            )
        )
    return found


def _history_on(run: dict[str, Any], drain: dict[str, Any]) -> Target:
    """Issue 16: the drain with the history recorded is at least 90 % of the drain without."""
    ratio = run["emails_per_s"] / drain["emails_per_s"] if drain["emails_per_s"] else None
    return Target(
        f"drain, history only ({run['database']}), vs the defaults drain",
        f">= {HISTORY_ON_RATIO:g}x the same run's drain without history",
        None if ratio is None else round(ratio, 3),
        None if ratio is None else ratio >= HISTORY_ON_RATIO,
        _disturbed(run, drain),
    )


def _relay_ends(results: dict[str, Any]) -> list[Target]:
    """Against the realistic relay, every email ends sent (the relay took it) or dead."""
    relay = results.get("relay")
    if not relay:
        return []
    runs = relay["runs"]
    ended = all(r["all_ended"] and r["relay_accepted"] == r["completed"] for r in runs)
    done = sum(r["completed"] + r["failed"] for r in runs)
    name = "realistic relay: every email sent or dead-lettered"
    wanted = "completed + failed = jobs, and the relay took each sent one"
    return [Target(name, wanted, done, ended)]


def evaluate(results: dict[str, Any]) -> list[Target]:
    """Each target with its measured value and whether it passed (None: not measured)."""
    ratio = results["drain_ratio_vs_peer"]
    peer = results["peer"]
    # Judged on the rates themselves: the printed ratio is rounded.
    beats_peer = (
        None if peer is None else results["drain"][0]["emails_per_s"] >= peer["emails_per_s"]
    )
    single = next((r for r in results["api"]["single"] if r["offered_rate"] == SINGLE_RATE), None)
    batches = results["api"]["batch"]
    best_batch = max((b["emails_per_s"] for b in batches), default=None)
    drains, e2e = results["drain"], results["e2e"]
    return [
        Target(
            "drain, defaults, vs the Node peer",
            f">= 1.00x the peer's rate (aim {PEER_RATIO_AIM}x)",
            ratio,
            beats_peer,
            _disturbed(drains[0], peer),
        ),
        _beats_two_process_peer(
            "drain, defaults, vs the 2-process Node peer", drains[0], results.get("peer_2proc")
        ),
        *_features_on(results),
        *_relay_ends(results),
        _single_send(single),
        Target(
            "batch intake (best batch size)",
            f">= {BATCH_EMAILS_PER_S:,} emails/s",
            best_batch,
            None if best_batch is None else best_batch >= BATCH_EMAILS_PER_S,
            _disturbed(*batches),
        ),
        _at_most(
            f"end to end p50 at {e2e['rate']:g} emails/s",
            f"<= {E2E_P50_MS:g} ms",
            e2e["latency_ms"]["p50"],
            E2E_P50_MS,
            _disturbed(e2e),
        ),
        _at_most(
            "worker peak RSS",
            f"<= {WORKER_RSS_MB:g} MB",
            results["memory"]["worker_peak_rss_mb"],
            WORKER_RSS_MB,
            _disturbed(*drains, e2e),
        ),
    ]
