"""SIGTERM while jobs are active: the worker finishes them all, then exits 0."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support import wait_until


# Each send takes 1 s and 10 connections serve 50 jobs: all 50 stay active for a while.
@pytest.mark.smtp_delay(1.0)
def test_sigterm_with_50_active_jobs_delivers_all_and_exits_0(
    api, smtp_server, worker_factory, redis_client
):
    emails = [
        {"from": "s@example.com", "to": "r@example.org", "subject": f"n{i}", "text": "x"}
        for i in range(50)
    ]
    assert api.post("/v1/emails/batch", json={"emails": emails}).status_code == 202
    worker = worker_factory(EMAIL_WORKER_CONCURRENCY="50", SMTP_POOL_SIZE="10")

    wait_until(lambda: redis_client.llen("bull:email:active") == 50, timeout=20)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, worker.log()

    assert sorted(r.message["Subject"] for r in smtp_server.received) == sorted(
        f"n{i}" for i in range(50)
    )
    counts = api.get("/v1/queue/stats").json["counts"]
    assert counts["completed"] == 50 and counts["active"] == 0 and counts["waiting"] == 0
    assert "Stopping: no new jobs; waiting for 50 active" in worker.log()


def test_supervised_workers_restart_after_a_crash(api, smtp_server, worker_factory, redis_client):
    supervisor = worker_factory(["--processes", "2"])
    wait_until(lambda: len(_worker_clients(redis_client)) == 2, timeout=20)
    victim = sorted(_worker_clients(redis_client))[0]
    pid = int(victim.rsplit("-", 1)[1])
    os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: len(clients := _worker_clients(redis_client)) == 2 and victim not in clients,
        timeout=20,
    )
    api.post(
        "/v1/emails",
        json={
            "from": "s@example.com",
            "to": "r@example.org",
            "subject": "after crash",
            "text": "x",
        },
    )
    wait_until(lambda: smtp_server.received, timeout=20)
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait(timeout=60) == 0, supervisor.log()


def _worker_clients(redis_client) -> set[str]:
    names = {c.get("name", "") for c in redis_client.client_list()}
    return {n.removeprefix("bull:email:w:") for n in names if n.startswith("bull:email:w:")}
