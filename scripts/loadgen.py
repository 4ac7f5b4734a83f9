#!/usr/bin/env python3
"""Load generator for Postbox: many distinct emails across several API instances, some re-sent.

    .venv/bin/python scripts/loadgen.py --base-url http://127.0.0.1:8080 \
        --base-url http://127.0.0.1:8081 --api-key "$KEY" --count 5000 --resend-fraction 0.1

Email `i` goes to base URL `i mod n`; a chosen `resend-fraction` of them is sent a second
time, with the same Idempotency-Key and body, to the *next* base URL, right after the first
answer. That second send must come back `200` with `"duplicate": true` and the same id: it
checks that deduplication holds across instances, not only inside one process. Against a
`docker compose` deployment, pass the load balancer's URL once (every request then goes
through nginx to some API replica).

Prints one JSON summary on stdout. Exits 1 if any request got a non-2xx answer or none at
all, if a re-send came back with another id, or if `--wait` ran out before the queue drained.

Standard library only (http.client, threads), so it runs with any Python 3.11 and needs
nothing installed: http.client rather than urllib.request because it keeps connections
alive, which matters at thousands of requests per second on a small machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# A server may close an idle keep-alive connection just as we reuse it. These mean the
# request never reached a handler, so sending it again on a fresh connection is safe (and
# with an Idempotency-Key it would be harmless anyway).
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
_PENDING_STATES = ("waiting", "active", "delayed", "prioritized")
_MAX_ERROR_SAMPLES = 10


@dataclass(frozen=True)
class Reply:
    """One HTTP exchange as the load generator saw it."""

    base_url: str
    status: int  # 0: no HTTP answer at all
    body: dict[str, Any]
    error: str | None = None
    retried: bool = False


@dataclass
class Tally:
    """Counts for the summary; updated from many threads under one lock."""

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    errors: int = 0
    retried: int = 0
    id_mismatches: int = 0
    error_samples: list[str] = field(default_factory=list)
    # Errors by kind: "503 overloaded" (shed by the API's admission control), "502", ...,
    # "no answer": a shed request is the API protecting itself, a 502 a lost request.
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    per_base_url: dict[str, dict[str, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, reply: Reply) -> None:
        with self.lock:
            self.sent += 1
            self.retried += reply.retried
            counts = self.per_base_url.setdefault(
                reply.base_url, {"sent": 0, "accepted": 0, "duplicates": 0, "errors": 0}
            )
            counts["sent"] += 1
            if reply.status == 202:
                self.accepted += 1
                counts["accepted"] += 1
            elif reply.status == 200:
                self.duplicates += 1
                counts["duplicates"] += 1
            else:
                self.errors += 1
                counts["errors"] += 1
                kind = _error_kind(reply)
                self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
                self._sample(f"{reply.base_url}: {reply.error or reply.status} {reply.body}")

    def mismatch(self, detail: str) -> None:
        with self.lock:
            self.id_mismatches += 1
            self._sample(detail)

    def _sample(self, text: str) -> None:
        if len(self.error_samples) < _MAX_ERROR_SAMPLES:
            self.error_samples.append(text[:300])


def _error_kind(reply: Reply) -> str:
    if reply.status == 0:
        return "no answer"
    error = reply.body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return f"{reply.status} {code}" if code else str(reply.status)


class Client:
    """Keep-alive HTTP connections, one per (thread, base URL)."""

    def __init__(self, api_key: str, timeout: float) -> None:
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._timeout = timeout
        self._local = threading.local()

    def request(
        self, base_url: str, method: str, path: str, body: Any = None, headers: Any = None
    ) -> Reply:
        """One request; a stale keep-alive connection is replaced and the request re-sent."""
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {**self._headers, **(headers or {})}
        retried = False
        for attempt in (1, 2):
            connection, fresh = self._connection(base_url)
            try:
                connection.request(method, path, payload, all_headers)
                response = connection.getresponse()
                raw = response.read()
            except _STALE_CONNECTION as exc:
                self._drop(base_url)
                if attempt == 1 and not fresh:
                    retried = True
                    continue
                return Reply(base_url, 0, {}, f"{type(exc).__name__}: {exc}", retried)
            except (OSError, http.client.HTTPException) as exc:
                self._drop(base_url)
                return Reply(base_url, 0, {}, f"{type(exc).__name__}: {exc}", retried)
            if response.getheader("Connection", "").lower() == "close":
                self._drop(base_url)
            return Reply(base_url, response.status, _json_or_text(raw), None, retried)
        raise AssertionError("unreachable")

    def _connection(self, base_url: str) -> tuple[http.client.HTTPConnection, bool]:
        pool: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        if base_url in pool:
            return pool[base_url], False
        parts = urlsplit(base_url)
        factory = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        pool[base_url] = factory(parts.netloc, timeout=self._timeout)
        return pool[base_url], True

    def _drop(self, base_url: str) -> None:
        pool: dict[str, http.client.HTTPConnection] = self._local.__dict__.get("pool", {})
        connection = pool.pop(base_url, None)
        if connection is not None:
            connection.close()


def _json_or_text(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"text": raw[:200].decode(errors="replace")}
    return parsed if isinstance(parsed, dict) else {"json": parsed}


@dataclass(frozen=True)
class Plan:
    """What to send: the run's id, the targets, and which emails get a second send."""

    run_id: str
    base_urls: tuple[str, ...]
    count: int
    resend: frozenset[int]
    recipient: str

    def email(self, index: int) -> dict[str, Any]:
        """The body of email `index`: its subject names the run and the index."""
        return {
            "from": "Postbox loadgen <loadgen@example.com>",
            "to": self.recipient.format(i=index),
            "subject": f"loadgen {self.run_id} #{index}",
            "text": f"Message {index} of load-generator run {self.run_id}.",
            "tags": ["loadgen"],
        }

    def key(self, index: int) -> str:
        return f"loadgen-{self.run_id}-{index}"


def send_one(client: Client, plan: Plan, tally: Tally, index: int) -> None:
    """Send email `index`; if chosen, send it again to the next base URL and check the id."""
    body = plan.email(index)
    headers = {"Idempotency-Key": plan.key(index)}
    targets = plan.base_urls
    first = client.request(targets[index % len(targets)], "POST", "/v1/emails", body, headers)
    tally.add(first)
    if index not in plan.resend:
        return
    again = client.request(targets[(index + 1) % len(targets)], "POST", "/v1/emails", body, headers)
    tally.add(again)
    both_answered = first.status in (200, 202) and again.status in (200, 202)
    if both_answered and (again.status != 200 or again.body.get("id") != first.body.get("id")):
        tally.mismatch(
            f"re-send of #{index}: {again.status} id {again.body.get('id')} "
            f"(first: {first.status} id {first.body.get('id')})"
        )


def wait_for_drain(client: Client, base_url: str, timeout: float) -> dict[str, Any]:
    """Poll the queue stats until nothing is waiting, active or delayed (or `timeout`)."""
    started = time.monotonic()
    counts: dict[str, Any] = {}
    while time.monotonic() - started < timeout:
        reply = client.request(base_url, "GET", "/v1/queue/stats")
        counts = reply.body.get("counts", {}) if reply.status == 200 else {}
        if counts and not any(counts.get(state, 0) for state in _PENDING_STATES):
            return {"drained": True, "counts": counts}
        time.sleep(0.25)
    return {"drained": False, "counts": counts}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Send everything, optionally wait for the queue to drain, and build the summary."""
    base_urls = tuple(url.rstrip("/") for url in args.base_url)
    rng = random.Random(args.seed)  # noqa: S311  (a reproducible choice, not a secret)
    resend_count = round(args.count * args.resend_fraction)
    plan = Plan(
        run_id=args.run_id or uuid.uuid4().hex[:12],
        base_urls=base_urls,
        count=args.count,
        resend=frozenset(rng.sample(range(args.count), resend_count)),
        recipient=args.to,
    )
    client = Client(args.api_key, args.timeout)
    tally = Tally()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="loadgen") as pool:
        for future in [pool.submit(send_one, client, plan, tally, i) for i in range(args.count)]:
            future.result()
    elapsed = time.monotonic() - started
    summary: dict[str, Any] = {
        "run_id": plan.run_id,
        "base_urls": list(base_urls),
        "count": args.count,
        "resent": resend_count,
        "sent": tally.sent,
        "accepted": tally.accepted,
        "duplicates": tally.duplicates,
        "errors": tally.errors,
        "errors_by_kind": tally.errors_by_kind,
        "id_mismatches": tally.id_mismatches,
        "retried_connections": tally.retried,
        "elapsed_seconds": round(elapsed, 3),
        "rate_per_second": round(tally.sent / elapsed, 1) if elapsed else None,
        "per_base_url": tally.per_base_url,
        "error_samples": tally.error_samples,
    }
    if args.wait:
        drain = wait_for_drain(client, base_urls[0], args.wait)
        total = time.monotonic() - started
        drain["seconds_since_start"] = round(total, 3)
        drain["emails_per_second"] = round(args.count / total, 1) if drain["drained"] else None
        summary["drain"] = drain
    return summary


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return number


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Send distinct emails round-robin across Postbox API instances, "
        "re-send some to another instance, and print a JSON summary."
    )
    parser.add_argument(
        "--base-url", action="append", required=True, help="An API base URL; repeat for several."
    )
    parser.add_argument("--api-key", required=True, help="A key from the servers' API_KEYS.")
    parser.add_argument("--count", type=_positive, default=1000, help="Distinct emails to send.")
    parser.add_argument(
        "--resend-fraction", type=_fraction, default=0.1, help="Share re-sent (0-1)."
    )
    parser.add_argument("--concurrency", type=_positive, default=24, help="Requests in flight.")
    parser.add_argument("--timeout", type=float, default=30.0, help="Seconds per request.")
    parser.add_argument(
        "--to",
        default="rcpt+{i}@example.org",
        help="Recipient; {i} is the email's index. Use an address your test inbox accepts.",
    )
    parser.add_argument("--run-id", help="Tag for subjects and keys (default: random).")
    parser.add_argument("--seed", type=int, default=0, help="Chooses which emails are re-sent.")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="Then poll /v1/queue/stats until the queue is drained, up to SECONDS.",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    summary = run(args)
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    failed = summary["errors"] or summary["id_mismatches"]
    drained = summary.get("drain", {}).get("drained", True)
    return 1 if failed or not drained else 0


if __name__ == "__main__":
    sys.exit(main())
