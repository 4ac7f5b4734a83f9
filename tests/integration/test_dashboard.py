"""The dashboard in a real browser (headless Chromium driven by Playwright), against a real
`postbox serve` (two gunicorn processes and a worker), Redis and SMTP server.

Sign in with the API key, see the counts, the throughput and the processes, then press
`Retry` on a dead letter: it goes back to the queue and is delivered. Screenshots of the
page are saved in the test's tmp dir (`dashboard.png`, `dashboard-after-retry.png`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from postbox.dev.ports import free_port
from tests.conftest import SmtpServer
from tests.integration.serving import Process, post_json, start, wait_serving
from tests.support import API_KEY, email_payload, sent_count, wait_until

BAD = "bad@example.org"


@pytest.fixture
def server(service_env: dict[str, str], tmp_path: Path) -> Iterator[Process]:
    port = free_port()
    env = {
        **service_env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "EMAIL_WORKER_PROCESSES": "1",
        "INSTANCE_HEARTBEAT_SECONDS": "2",
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "TMPDIR": str(tmp_path),
    }
    process = start("serve", ["serve"], env, tmp_path, port)
    try:
        wait_serving(process)
        yield process
    finally:
        assert process.stop() == 0, process.log_tail()


def sign_in(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/dashboard/")
    expect(page).to_have_url(f"{base_url}/dashboard/login")
    page.fill("#key", "not-the-key-0123456789")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("not a valid API key")
    page.fill("#key", API_KEY)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base_url}/dashboard/")


@pytest.mark.smtp_replies(rcpt={BAD: "550 5.1.1 no such user"})
def test_dashboard_shows_the_queue_and_retries_a_dead_letter(
    server: Process, browser: Browser, smtp_server: SmtpServer, redis_client: Any, tmp_path: Path
) -> None:
    for index in range(3):
        status, _ = post_json(f"{server.base_url}/v1/emails", email_payload(subject=f"ok {index}"))
        assert status == 202
    status, dead = post_json(f"{server.base_url}/v1/emails", email_payload(to=BAD))
    assert status == 202
    # A closed local port: nothing is ever sent anywhere real.
    hook = {"url": "http://127.0.0.1:9/in", "events": ["email.sent"], "description": "crm"}
    status, _ = post_json(f"{server.base_url}/v1/webhooks", hook)
    assert status == 201
    wait_until(lambda: redis_client.zcard("bull:email:failed") == 1)
    wait_until(lambda: sent_count(redis_client) == 3)

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, server.base_url)
    expect(page.locator("#count-completed")).to_have_text("3")
    expect(page.locator("#count-failed")).to_have_text("1")
    expect(page.locator("#throughput-summary")).to_contain_text("3 sent and 1 failed")
    processes = page.locator("#instances tbody tr")
    expect(processes).to_have_count(3)  # two gunicorn processes and one worker
    expect(page.locator("#instances")).to_contain_text("healthy")
    row = page.locator(f"#dead-letters tr[data-id='{dead['id']}']")
    expect(row).to_contain_text("550 5.1.1 no such user")
    expect(page.locator("#webhooks tbody")).to_contain_text("http://127.0.0.1:9/in")
    expect(page.locator("#webhooks tbody")).to_contain_text("email.sent")
    expect(page.locator("#webhooks tbody")).to_contain_text("enabled")
    page.screenshot(path=tmp_path / "dashboard.png", full_page=True)

    # The relay takes the address now; the retry must bring the email back and deliver it.
    smtp_server.handler.rcpt_replies.clear()
    row.get_by_role("button", name="Retry").click()
    wait_until(lambda: any(BAD in r.rcpt_tos for r in smtp_server.received), timeout=20)
    expect(page.locator("#count-failed")).to_have_text("0")
    expect(page.locator("#count-completed")).to_have_text("4")
    expect(page.locator("#dead-letters")).to_contain_text("No dead letters.")
    page.screenshot(path=tmp_path / "dashboard-after-retry.png", full_page=True)


def test_dashboard_calls_need_a_session_and_a_csrf_token(server: Process, browser: Browser) -> None:
    page = browser.new_page()
    anonymous = page.request.get(f"{server.base_url}/dashboard/api/overview")
    assert anonymous.status == 401
    sign_in(page, server.base_url)
    assert page.request.get(f"{server.base_url}/dashboard/api/overview").status == 200
    forged = page.request.post(f"{server.base_url}/dashboard/api/dead-letters/em_{'0' * 64}/retry")
    assert forged.status == 403
    # The session is for the dashboard only: /v1 still wants a Bearer key.
    assert page.request.get(f"{server.base_url}/v1/queue/stats").status == 401


def test_a_session_is_honoured_by_a_process_that_has_not_served_the_dashboard_yet(
    api_factory: Any, settings: Any
) -> None:
    """Flask opens the session before any hook runs: a fresh process must already know the
    shared secret, or a signed-in user is sent back to the login form."""
    first, second = api_factory(settings), api_factory(settings)
    signed_in = first.client.post("/dashboard/login", data={"key": API_KEY})
    assert signed_in.status_code == 302
    cookie = first.client.get_cookie("postbox_session", path="/dashboard")
    assert cookie is not None
    second.client.set_cookie("postbox_session", cookie.value, path="/dashboard")
    page = second.client.get("/dashboard/")
    assert page.status_code == 200
