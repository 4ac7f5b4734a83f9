"""The printed table, the target checks and the JSON file of one run.

Targets are the issue's, set for the 2-core machine: on another core count they are still
checked, and the report says the machine differs.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.services import ROOT

TARGET_CORES = 2
# Other processes' CPU (in cores) above which a phase's figures count as disturbed.
QUIET_CORES = 0.15


@dataclass(frozen=True)
class Target:
    """One target and how this run did against it."""

    name: str
    wanted: str
    measured: float | None
    passed: bool | None  # None: not measured in this run
    disturbed: bool = False  # other processes took CPU while it was measured

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return dict(self.__dict__)


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def meta(quick: bool, peers: bool) -> dict[str, Any]:
    """Where and when: the machine's core count, the commit, the run's options."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD") or "unknown",
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "quick": quick,
        "peers": peers,
    }


def write_json(results: dict[str, Any], output_dir: Path) -> Path:
    """Write `results` to OUTPUT_DIR/<date>-<commit>[-quick].json and return the path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    info = results["meta"]
    suffix = "-quick" if info["quick"] else ""
    path = output_dir / f"{info['date'][:10]}-{info['git_commit'][:7]}{suffix}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def _row(cells: list[str], widths: list[int]) -> str:
    first, *rest = cells
    right = "".join(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))
    return "  " + first.ljust(widths[0]) + right


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) + 2 for i in range(len(header))]
    return [title, _row(header, widths), *(_row(r, widths) for r in rows), ""]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def peer_runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The Node peer's drains of this run: one process, then two (none without --peers)."""
    return [results[key] for key in ("peer", "peer_2proc") if results.get(key)]


def drain_lines(results: dict[str, Any]) -> list[str]:
    """The drain table, with the ratios to the Node peer when it ran."""
    runs = [*results["drain"], *peer_runs(results)]
    rows = [
        [
            r["label"],
            str(r["processes"]),
            str(r["concurrency"]),
            _num(r["emails_per_s"]),
            f"{r['cpu_s_per_1000']:.2f}",
            f"{r['redis_cpu_s_per_1000']:.2f}",
            f"{r['redis_commands_per_email']:.0f}/{r['redis_scripts_per_email']:.0f}",
            f"{r['machine_busy_percent']:.0f}%",
            f"{r['other_load_cores']:.2f}",
            _num(r["peak_rss_mb"], 1),
            f"{r['completed']:,}/{r['jobs']:,}",
            "-" if r["sink_received"] is None else f"{r['sink_received']:,}",
        ]
        for r in runs
    ]
    header = ["worker", "procs", "conc", "emails/s", "CPU s/1k", "Redis s/1k", "Redis cmd/lua"]
    header += ["machine busy", "others", "RSS MB"]
    lines = _table("Drain: prefilled jobs -> smtp-sink", [*header, "done", "at sink"], rows)
    if results["drain_notes"]:
        lines[-1:-1] = [f"  {note}" for note in results["drain_notes"]]
    for key, name in (("", "Node peer"), ("_2proc", "Node peer, 2 processes")):
        ratio = results.get(f"drain_ratio_vs_peer{key}")
        if ratio is not None:
            lines.insert(-1, f"  Postbox (defaults) / {name}: {ratio:.2f}x")
    return lines


def relay_lines(results: dict[str, Any]) -> list[str]:
    """The realistic relay's table (--peers only)."""
    relay = results.get("relay")
    if not relay:
        return []
    rows = [
        [
            r["label"],
            str(r["processes"]),
            str(r["pool_per_process"]),
            str(r["connections_max_open"]),
            _num(r["emails_per_s"]),
            f"{r['cpu_s_per_1000']:.2f}",
            f"{r['redis_cpu_s_per_1000']:.2f}",
            f"{r['completed']:,}+{r['failed']:,}/{r['jobs']:,}",
            f"{r['relay_accepted']:,}",
            f"{r['relay_deferred']:,}/{r['relay_rejected']:,}",
            f"{r['other_load_cores']:.2f}",
        ]
        for r in relay["runs"]
    ]
    header = ["worker", "procs", "pool", "conns max", "emails/s", "CPU s/1k", "Redis s/1k"]
    header += ["sent+dead/jobs", "relay took", "4xx/5xx", "others"]
    lines = _table("Drain: prefilled jobs -> realistic relay (bench/relay.py)", header, rows)
    lines.insert(-1, f"  {relay['note']}")
    return lines


def features_lines(results: dict[str, Any]) -> list[str]:
    """The features-on drain's table (--peers only)."""
    features = results.get("features_on")
    if not features:
        return []
    rows = [
        [
            _features_label(r),
            _num(r["emails_per_s"]),
            f"{r['cpu_s_per_1000']:.3f}",
            f"{r['redis_cpu_s_per_1000']:.3f}",
            f"{r['cpu_ms_per_email_all_in']:.3f}",
            f"{r['completed']:,}/{r['jobs']:,}",
            f"{r['webhook_ids']:,}",
            str(r["events_behind"]),
            _ms(r["settle_seconds"]),
            f"{r['other_load_cores']:.2f}",
        ]
        for r in features["runs"]
    ]
    header = ["worker", "emails/s", "worker ms/email", "Redis ms/email", "all in ms"]
    header += ["done", "webhooks", "events behind", "settle s", "others"]
    lines = _table("Drain: every feature on -> smtp-sink", header, rows)
    peer = results.get("peer_2proc")
    drain = results["drain"][0]
    for r in features["runs"]:
        if r.get("history_only"):
            ratio = r["emails_per_s"] / drain["emails_per_s"]
            name = f"history only ({r['database']}) / defaults drain"
            lines.insert(-1, f"  {name}: {ratio:.2f}")
            continue
        if peer and peer["emails_per_s"]:
            ratio = r["emails_per_s"] / peer["emails_per_s"]
            limited = " + rate limiter" if r.get("rate_limit") else ""
            name = f"features on ({r['database']}){limited}"
            lines.insert(-1, f"  {name} / Node peer, 2 processes: {ratio:.2f}x")
    lines[-1:-1] = [f"  {note}" for note in features["notes"]]
    return lines


def _features_label(run: dict[str, Any]) -> str:
    if run.get("history_only"):
        return f"history only, {run['database']}"
    return f"defaults, {run['database']}" + (", rate-limited" if run.get("rate_limit") else "")


def api_lines(results: dict[str, Any]) -> list[str]:
    """The single-send and batch tables."""
    singles = [
        [
            _num(r["offered_rate"]),
            _num(r["achieved_rate"]),
            str(r["ok"]),
            str(r["errors"]),
            *(_ms(r["latency_ms"][p]) for p in ("p50", "p95", "p99", "max")),
            _ms(r["dispatch_lag_ms"]["p99"]),
            f"{r['other_load_cores']:.2f}",
        ]
        for r in results["api"]["single"]
    ]
    header = ["offered/s", "achieved/s", "ok", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    lines = _table(
        "API: POST /v1/emails, open loop (latency from scheduled send)",
        [*header, "gen lag p99", "others"],
        singles,
    )
    batches = [
        [
            str(r["batch_size"]),
            str(r["requests"]),
            _num(r["emails_per_s"]),
            _ms(r["latency_ms"]["p50"]),
            _ms(r["latency_ms"]["p99"]),
            f"{r['other_load_cores']:.2f}",
        ]
        for r in results["api"]["batch"]
    ]
    title = f"API: POST /v1/emails/batch, closed loop, {_batch_senders(results)} senders"
    header = ["batch size", "requests", "emails/s", "p50 ms", "p99 ms", "others"]
    return lines + _table(title, header, batches)


def _batch_senders(results: dict[str, Any]) -> str:
    return ", ".join(sorted({str(r["concurrency"]) for r in results["api"]["batch"]}))


def e2e_lines(results: dict[str, Any]) -> list[str]:
    """The end-to-end and memory tables."""
    e = results["e2e"]
    row = [
        _num(e["rate"]),
        str(e["sent"]),
        str(e["delivered"]),
        _ms(e["latency_ms"]["p50"]),
        _ms(e["latency_ms"]["p99"]),
        _ms(e["api_latency_ms"]["p50"]),
        _ms(e["api_latency_ms"]["p99"]),
        f"{e['other_load_cores']:.2f}",
    ]
    header = ["rate/s", "sent", "delivered", "p50 ms", "p99 ms", "API p50", "API p99", "others"]
    memory = results["memory"]
    stages = e["stages_ms"]
    split = ", ".join(
        f"{name.replace('_', ' ')} {_ms(stages[name]['p50'])}/{_ms(stages[name]['p99'])}"
        for name in ("post_to_enqueued", "enqueued_to_arrival")
    )
    return [
        *_table("End to end: POST -> arrival at smtp-sink", header, [row])[:-1],
        f"  stages p50/p99 ms (job timestamp, 1 ms steps): {split}",
        f"  Redis per email (API + worker): {e['redis_commands_per_email']:g} commands,"
        f" {e['redis_scripts_per_email']:g} script calls",
        "",
        "Memory: peak RSS (VmHWM) of one process under load",
        f"  API (gunicorn worker): {memory['api_peak_rss_mb']:.1f} MB    "
        f"worker: {memory['worker_peak_rss_mb']:.1f} MB",
        "",
    ]


def target_lines(results: dict[str, Any]) -> list[str]:
    """Each target with PASS, FAIL or n/a."""
    cores = results["meta"]["cores"]
    note = "" if cores == TARGET_CORES else f" (set for {TARGET_CORES} cores; this has {cores})"
    lines = [f"Targets{note}"]
    for t in results["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t["passed"]]
        mark = "*" if t["disturbed"] else " "
        measured = _num(t["measured"], 2)
        lines.append(f"  [{verdict}]{mark}{t['name']}: {t['wanted']}; measured {measured}")
    if any(t["disturbed"] for t in results["targets"]):
        lines.append("  * measured while other processes used the machine: not a clean verdict")
    return lines


def other_load(results: dict[str, Any]) -> float:
    """The most CPU (in cores) that processes outside the benchmark took in any phase."""
    phases = [*results["drain"], *peer_runs(results)]
    for key in ("relay", "features_on"):
        phases += results[key]["runs"] if results.get(key) else []
    phases += [*results["api"]["single"], *results["api"]["batch"], results["e2e"]]
    return max(float(phase["other_load_cores"]) for phase in phases)


def _warning(results: dict[str, Any]) -> list[str]:
    worst = other_load(results)
    if worst < QUIET_CORES:
        return []
    return [
        f"WARNING: other processes on this machine used up to {worst:.2f} cores during a",
        "measurement (column 'others'); those figures are lower than a quiet machine gives.",
        "",
    ]


def render(results: dict[str, Any]) -> str:
    """The whole printed report."""
    info = results["meta"]
    dirty = " (with uncommitted changes)" if info["git_dirty"] else ""
    head = [
        f"Postbox benchmark  {info['date']}  commit {info['git_commit'][:10]}{dirty}",
        f"{info['cores']} cores, Python {info['python']}, {'quick' if info['quick'] else 'full'}"
        " run",
        "",
        *_warning(results),
    ]
    body = drain_lines(results) + relay_lines(results) + features_lines(results)
    body += api_lines(results) + e2e_lines(results)
    return "\n".join(head + body + target_lines(results))
