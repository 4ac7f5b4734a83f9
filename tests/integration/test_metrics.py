"""Prometheus metrics of the API under gunicorn and of the worker processes, scraped over
HTTP from real `postbox serve` and `postbox worker` processes."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from postbox.dev.ports import free_port
from tests.integration.serving import get, get_json, post_json, scrape, start, total, wait_serving
from tests.support import email_payload, wait_until

REQUESTS = 30
BAD = "bad@example.org"


def test_api_metrics_under_three_gunicorn_processes_count_every_request_once(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **service_env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "3",
        "START_EMAIL_WORKER": "false",
        "TMPDIR": str(tmp_path),  # where `postbox serve` makes its metrics folders
    }
    api = start("api", ["serve"], env, tmp_path, port)
    try:
        wait_serving(api)
        # All three processes have started once each has registered itself.
        wait_until(lambda: _api_processes(api.base_url) == 3, timeout=15)
        for index in range(3):
            status, _ = post_json(f"{api.base_url}/v1/emails", email_payload(subject=f"#{index}"))
            assert status == 202
        metrics_url = f"{api.base_url}/metrics"
        before = total(scrape(metrics_url), "flask_http_request_total")
        # Concurrent requests on fresh connections, so the three processes share them; with
        # gunicorn's shared listening socket a process may win every accept of one round,
        # so rounds go on (rarely needed) until at least two processes have served some.
        readyz = f"{api.base_url}/readyz"
        sent = 0
        while sent < REQUESTS or len(_request_counters(tmp_path)) < 2:
            assert sent < 5 * REQUESTS, "the requests were not spread over the processes"
            with ThreadPoolExecutor(10) as pool:
                statuses = list(
                    pool.map(lambda _, url=readyz: get(url, key=None)[0], range(REQUESTS))
                )
            assert statuses == [200] * REQUESTS
            sent += REQUESTS
        for _ in range(6):  # each scrape may be answered by any of the processes
            samples = scrape(metrics_url)
            assert total(samples, "flask_http_request_total") - before == sent
            counted = total(
                samples, "flask_http_request_duration_seconds_count", url_rule="/readyz"
            )
            assert counted == sent
            depth = [
                key
                for key in samples
                if key[0] == "postbox_queue_jobs" and ("state", "waiting") in key[1]
            ]
            assert len(depth) == 1, "queue depth must be exported once, not per process"
            assert samples[depth[0]] == 3
            assert total(samples, "postbox_redis_up") == 1
    finally:
        code = api.stop()
    assert code == 0, api.log_tail()
    assert not list(tmp_path.glob("postbox-metrics-*")), "metrics folders left behind"


def _request_counters(tmp_path: Path) -> list[Path]:
    """The API processes' counter files: one per process that has served a request."""
    return list(tmp_path.glob("postbox-metrics-*/api/counter_*.db"))


def _api_processes(base_url: str) -> int:
    stats = get_json(f"{base_url}/v1/queue/stats")
    return int(stats["cluster"]["roles"]["api"]["processes"])


def _worker_samples(url: str) -> Any:
    try:
        return scrape(url)
    except OSError:
        return None


@pytest.mark.smtp_replies(rcpt={BAD: "550 5.1.1 no such user"})
@pytest.mark.parametrize("processes", [1, 2])
def test_worker_metrics_count_sends_and_failures(
    api: Any, service_env: dict[str, str], tmp_path: Path, processes: int
) -> None:
    sent, failed = 12, 3
    for index in range(sent):
        assert api.post("/v1/emails", json=email_payload(subject=f"ok {index}")).status_code == 202
    for index in range(failed):
        payload = email_payload(to=BAD, subject=f"bad {index}")
        assert api.post("/v1/emails", json=payload).status_code == 202
    port = free_port()
    env = {
        **service_env,
        "METRICS_PORT": str(port),
        "HOST": "127.0.0.1",
        "TMPDIR": str(tmp_path),
        "LOG_FORMAT": "json",
    }
    worker = start("worker", ["worker", "--processes", str(processes)], env, tmp_path)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        samples = wait_until(
            lambda: (
                (s := _worker_samples(url))
                and total(s, "postbox_emails_total") == sent + failed
                and total(s, "postbox_emails_in_progress") == 0
                # Every process has started taking jobs (one may have sent them all).
                and total(s, "postbox_worker_concurrency") == 100 * processes
                and s
            ),
            timeout=30,
        )
        assert total(samples, "postbox_emails_total", outcome="sent") == sent
        assert total(samples, "postbox_emails_total", outcome="failed", reason="rejected") == failed
        assert total(samples, "postbox_smtp_replies_total", code="250") == sent
        assert total(samples, "postbox_smtp_replies_total", code="550") == failed
        assert total(samples, "postbox_send_seconds_count") == sent + failed
        assert total(samples, "postbox_worker_concurrency") == 100 * processes
        assert total(samples, "postbox_smtp_pool_size") == 8 * processes
        assert 1 <= total(samples, "postbox_smtp_connections_open") <= 8 * processes
        assert total(samples, "postbox_smtp_reconnects_total") == 0
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()
    assert not list(tmp_path.glob("postbox-metrics-*")), "metrics folders left behind"
    _check_json_log(worker.log_path.read_text(), sent)


def _check_json_log(text: str, sent: int) -> None:
    """Every line is JSON with the instance; a job's lines carry its email (= job) id."""
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(line["instance"] == "test" for line in lines)
    sent_lines = [line for line in lines if " sent on attempt " in line["message"]]
    assert len(sent_lines) == sent
    for line in sent_lines:
        assert line["email_id"] == line["job_id"] == line["message"].split()[1]
