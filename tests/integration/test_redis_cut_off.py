"""A worker cut off from Redis mid-send sends nothing twice and starts no SMTP transaction
until Redis answers again; when it does, deliveries resume at once and every attempt is in
the job's history. The network is cut with a TCP proxy between the worker and Redis
(tests/tcp_proxy.py); the API talks to Redis directly."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from tests.support import sent_count, sent_records, wait_until
from tests.tcp_proxy import proxied_url

# Enough that the worker is busy at the cut (300 sent, its 100 job slots and 8 connections
# full) and after it (the rest waiting); what a cut can double is bounded by those slots and
# connections, not by the total (1,500 before: only the drain after the cut was longer).
EMAILS = 900


def _post_all(api, count: int, tag: str) -> set[str]:
    accepted = set()
    for start in range(0, count, 500):
        emails = [
            {"from": "s@example.com", "to": f"r{i}@example.org", "subject": f"{tag}-{i}"}
            | {"text": "x"}
            for i in range(start, min(start + 500, count))
        ]
        response = api.post("/v1/emails/batch", json={"emails": emails})
        assert response.status_code == 202
        accepted |= {item["message_id"] for item in response.json["data"]}
    return accepted


def _received(smtp_server) -> Counter:
    return Counter(r.message["Message-ID"] for r in list(smtp_server.received))


# Issue 13 asks for 15 s and 60 s with the default 30 s lock: one cut within the lock, one
# that outlasts it (twice over). What the second proves is the lock running out during the
# cut, not the minute itself: every other delay the worker has is under a second (its retry
# backoff stops growing at 0.5 s) or over two minutes (EMAIL_SEND_MARK_SECONDS), so a 15 s
# cut of a 5 s lock (three times over, the stalled-job check every second) takes the same
# path as 60 s of a 30 s lock, 45 s sooner and with no wait of up to 30 s for the check.
CUTS = {
    "15s-within-the-30s-lock": {},
    "15s-three-5s-locks": {"EMAIL_LOCK_DURATION_MS": "5000", "EMAIL_STALLED_INTERVAL_MS": "1000"},
}
CUT_SECONDS = 15


@pytest.mark.timeout(180)
@pytest.mark.smtp_delay(0.02)
@pytest.mark.parametrize("lock", list(CUTS.values()), ids=list(CUTS))
def test_redis_unreachable_sends_nothing_twice(
    api, redis_client, redis_url, redis_proxy, smtp_server, worker_factory, lock
):
    # Past the lock, the worker's own stalled-job check re-runs its jobs, and their journals
    # (written once Redis is back) say they were sent.
    accepted = _post_all(api, EMAILS, "cut")
    worker_factory(REDIS_URL=proxied_url(redis_url, redis_proxy), **lock)
    wait_until(lambda: len(smtp_server.received) >= 300, timeout=60)

    redis_proxy.cut("refuse")
    cut_at = time.time()
    time.sleep(CUT_SECONDS)
    redis_proxy.restore()
    back_at = time.time()

    wait_until(lambda: set(_received(smtp_server)) >= accepted, timeout=90)
    wait_until(lambda: sent_count(redis_client) == EMAILS, timeout=90)
    received = list(smtp_server.received)
    # A transaction already past its lock confirmation at the cut (one per SMTP connection,
    # 8) may start just after it; none later.
    started_after_cut = [r for r in received if cut_at < r.started_at < back_at]
    started_while_cut = [r for r in started_after_cut if r.started_at > cut_at + 0.5]
    resumed_after = min(r.started_at for r in received if r.started_at >= back_at) - back_at
    duplicates = sum(n - 1 for n in _received(smtp_server).values())
    # Each sent email's record (what Redis keeps of it once its job is removed) says sent,
    # on its first attempt: an outage costs none.
    records = sent_records(redis_client)
    unrecorded = EMAILS - len(records)
    extra_attempts = sum(record.attempts > 1 for record in records.values())
    print(
        f"redis-cut-{CUT_SECONDS}s, lock {lock.get('EMAIL_LOCK_DURATION_MS', 30000)} ms:",
        json.dumps(
            {
                "emails": EMAILS,
                "sent_before_cut": sum(r.at < cut_at for r in received),
                "duplicates": duplicates,
                "started_after_cut": len(started_after_cut),
                "started_while_cut": len(started_while_cut),
                "resumed_after_s": round(resumed_after, 2),
                "all_sent_after_s": round(max(r.at for r in received) - back_at, 2),
                "sent_without_record": unrecorded,
                "sent_after_more_than_one_attempt": extra_attempts,
            }
        ),
    )
    assert duplicates == 0
    assert len(started_after_cut) <= 8
    assert started_while_cut == []
    assert resumed_after < 2
    assert redis_client.zcard("bull:email:failed") == 0
    assert unrecorded == 0
    assert extra_attempts == 0


@pytest.mark.smtp_delay(0.02)
def test_worker_partitioned_past_its_lock_sends_nothing_another_worker_sends(
    api, redis_client, redis_url, redis_proxy, smtp_server, worker_factory
):
    env = {"EMAIL_LOCK_DURATION_MS": "3000", "EMAIL_STALLED_INTERVAL_MS": "1000"}
    accepted = _post_all(api, EMAILS, "partition")
    worker_factory(**env)
    worker_factory(REDIS_URL=proxied_url(redis_url, redis_proxy), **env)
    wait_until(lambda: len(smtp_server.received) >= 300, timeout=60)

    redis_proxy.cut("blackhole")
    time.sleep(8)
    redis_proxy.restore()

    wait_until(lambda: set(_received(smtp_server)) >= accepted, timeout=90)
    wait_until(lambda: sent_count(redis_client) == EMAILS, timeout=30)
    duplicates = sum(n - 1 for n in _received(smtp_server).values())
    print("redis-partition-8s:", json.dumps({"emails": EMAILS, "duplicates": duplicates}))
    assert redis_client.zcard("bull:email:failed") == 0
    # The sends already under way when the partition began got their 250 while the lock was
    # good, but their journal writes could not reach Redis before the lock ran out. Their
    # send marks make the other worker's re-runs wait for those writes, which arrive when the
    # partition heals. (Without the lock check every active job was sent twice, 100 here;
    # with the check and no mark, 8 or 9: one per SMTP connection.)
    assert duplicates == 0
