"""Global and per-domain send limits hold across worker processes, and postpone, not fail."""

from __future__ import annotations

import time

from tests.support import wait_until


def _batch(api, count: int, domain: str, tag: str) -> None:
    emails = [
        {"from": "s@example.com", "to": f"user{i}@{domain}", "subject": f"{tag}{i}", "text": "x"}
        for i in range(count)
    ]
    assert api.post("/v1/emails/batch", json={"emails": emails}).status_code == 202


def _busiest_window(times: list[float], seconds: float = 1.0) -> int:
    times = sorted(times)
    start, busiest = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest


def test_global_limit_holds_across_three_worker_processes(api, smtp_server, worker_factory):
    # The three processes are up before the emails are: on a loaded machine their start-up
    # (imports, connections) starved this server's thread for most of a second, and the
    # sends of two windows reached it as one (37 in a second in a CI run).
    worker_factory(["--processes", "3"], EMAIL_RATE_LIMIT="20/second")
    wait_until(lambda: len(api.get("/v1/queue/stats").json["workers"]) == 3, timeout=60)
    _batch(api, 200, "example.org", "n")
    started = time.time()
    wait_until(lambda: len(smtp_server.received) == 200, timeout=60)
    elapsed = time.time() - started

    # The moving window admits a send right before its SMTP transaction starts. The server
    # stamps MAIL FROM and the end of DATA a few ms later, and not always equally later: on a
    # 2-core machine also running Redis, three workers and this server, a process descheduled
    # between admission and MAIL shifts its sends by tens of ms (seen up to ~60 ms). Windows
    # 100 ms short of a second must hold the limit at MAIL. The end of DATA comes after the
    # body crossed and the server read it, which spreads more (23 in 0.9 s seen once in a
    # full CI run): 200 ms short there. The run's length (200 sends at 20/s need at least
    # 9 s) bounds the average rate exactly.
    started_at = [r.started_at for r in smtp_server.received]
    arrived_at = [r.at for r in smtp_server.received]
    print(
        f"busiest second: {_busiest_window(started_at)} transactions started, "
        f"{_busiest_window(arrived_at)} arrived; in 0.9 s {_busiest_window(started_at, 0.9)}"
        f", in 0.8 s {_busiest_window(arrived_at, 0.8)} arrived"
    )
    assert _busiest_window(started_at, 0.9) <= 20
    assert _busiest_window(arrived_at, 0.8) <= 20
    assert elapsed >= 9
    stats = api.get("/v1/queue/stats").json
    assert stats["counts"]["failed"] == 0
    assert stats["counts"]["completed"] == 200
    print(f"200 emails at 20/second over 3 processes took {elapsed:.1f} s")


def test_domain_limit_slows_only_its_domain(api, smtp_server, worker_factory):
    _batch(api, 10, "slow.example", "slow")
    _batch(api, 100, "fast.example", "fast")
    started = time.time()
    worker_factory(EMAIL_DOMAIN_RATE_LIMITS="slow.example=2/second")

    wait_until(lambda: sum("fast" in r.message["Subject"] for r in smtp_server.received) == 100)
    fast_done = time.time() - started
    wait_until(lambda: len(smtp_server.received) == 110, timeout=30)
    slow_done = time.time() - started

    slow = [r.started_at for r in smtp_server.received if "slow" in r.message["Subject"]]
    assert _busiest_window(slow, 0.9) <= 2
    assert fast_done < 3
    assert slow_done >= 4
    assert api.get("/v1/queue/stats").json["counts"]["failed"] == 0
