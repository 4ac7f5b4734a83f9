"""The history in the dashboard, in headless Chromium against a real `postbox serve`: search
by recipient and status, page on, open an email and read its recipients' outcomes and its
timeline. The records are written straight into the history (SQLite), so the test needs no
deliveries: the pipeline's part is proven by the recorder tests; here it is the pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from postbox.config import load_settings
from postbox.config.history import HistorySettings
from postbox.dev.ports import free_port
from postbox.history.database import create_history_engine
from postbox.history.migrations import migrate
from postbox.history.records import Batch
from postbox.history.writer import write_batch
from postbox.queue.events import Event
from tests.integration.serving import Process, start, wait_serving
from tests.integration.test_dashboard import sign_in
from tests.support import API_KEY

BASE_MS = 1_764_000_000_000
ANN = "ann@example.org"


def _event(n: int, kind: str, ms: int, **extra: Any) -> tuple[Event, str]:
    data = {
        "email_id": f"em_{n:04d}",
        "from": "shop@example.com",
        "to": [ANN if n % 2 else "bob@example.org", "audit@example.net"],
        "tags": ["reset" if n % 3 == 0 else "receipt"],
        "attempt": extra.pop("attempt", 0),
        **extra,
    }
    return Event(f"{ms}-0", kind, f"em_{n:04d}", "example.com", data), json.dumps(data)


def _history(n: int) -> list[tuple[Event, str]]:
    """Queued; then sent (one recipient refused) for even n, deferred then failed for odd."""
    ms = BASE_MS + n * 60_000
    queued = _event(n, "email.queued", ms, subject=f"Order {n}", key_id="k1")
    if n % 2 == 0:
        to = ["bob@example.org", "audit@example.net"]
        recipients = [
            {"address": to[0], "status": "accepted", "reply": "250 2.0.0 queued"},
            {"address": to[1], "status": "refused", "reply": "550 5.1.1 unknown"},
        ]
        return [queued, _event(n, "email.sent", ms + 900, attempt=1, recipients=recipients)]
    deferred = _event(n, "email.deferred", ms + 500, attempt=1, reply="451 4.3.0 busy")
    return [queued, deferred, _event(n, "email.failed", ms + 900, attempt=2, reply="554 no")]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A SQLite history with 40 emails in it."""
    url = f"sqlite:///{tmp_path / 'history.db'}"
    engine = create_history_engine(HistorySettings(database_url=url))
    migrate(engine)
    batch = Batch()
    for event, raw in (item for n in range(40) for item in _history(n)):
        batch.add(event, raw)
    write_batch(engine, batch)
    engine.dispose()
    return url


@pytest.fixture
def server(service_env: dict[str, str], database_url: str, tmp_path: Path) -> Iterator[Process]:
    port = free_port()
    env = {**service_env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1",
           "DATABASE_URL": database_url, "HISTORY_RECORDER": "false"}  # fmt: skip
    process = start("serve", ["serve", "--no-worker"], env, tmp_path, port)
    try:
        wait_serving(process)
        yield process
    finally:
        assert process.stop() == 0, process.log_tail()


def test_search_an_address_page_on_and_read_an_email(
    server: Process, browser: Browser, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, server.base_url)
    page.click("#history-link")
    expect(page.locator("#results tbody tr")).to_have_count(25)  # a page, newest first
    expect(page.locator("#results tbody tr").first).to_have_attribute("data-id", "em_0039")
    page.click("#next-page")
    expect(page.locator("#results tbody tr")).to_have_count(15)
    expect(page.locator("#results tbody tr").last).to_have_attribute("data-id", "em_0000")
    expect(page.locator("#next-page")).to_have_count(0)
    page.screenshot(path=tmp_path / "history-search.png", full_page=True)

    page.fill("input[name=to]", ANN)
    page.select_option("select[name=status]", "failed")
    page.click("#search button[type=submit]")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(20)  # the 20 odd emails: all to ann, all failed
    expect(rows.first).to_have_attribute("data-id", "em_0039")
    page.fill("input[name=tag]", "reset")
    page.click("#search button[type=submit]")
    expect(rows).to_have_count(7)  # odd multiples of 3 below 40
    ids = [f"em_{n:04d}" for n in (39, 33, 27, 21, 15, 9, 3)]
    assert [rows.nth(i).get_attribute("data-id") for i in range(7)] == ids
    expect(page.locator("#next-page")).to_have_count(0)

    page.select_option("select[name=status]", "sent")
    page.click("#search button[type=submit]")
    expect(page.locator("#results")).to_contain_text("No email matches")  # ann's all failed

    page.goto(f"{server.base_url}/dashboard/emails/?to={ANN}")
    page.click("#results tr[data-id=em_0039] a")
    expect(page.locator("#record")).to_contain_text("failed")
    expect(page.locator("#recipients tbody tr")).to_have_count(2)
    expect(page.locator("#recipients")).to_contain_text("554 no")
    timeline = page.locator("#timeline li")
    expect(timeline).to_have_count(3)
    assert [timeline.nth(i).get_attribute("data-type") for i in range(3)] == [
        "email.queued", "email.deferred", "email.failed"
    ]  # fmt: skip
    expect(timeline.nth(1)).to_contain_text("attempt 1; reply: 451 4.3.0 busy")
    page.screenshot(path=tmp_path / "history-email.png", full_page=True)

    page.goto(f"{server.base_url}/dashboard/emails/em_0000")
    expect(page.locator("#recipients")).to_contain_text("550 5.1.1 unknown")
    expect(page.locator("#timeline li").nth(1)).to_contain_text("audit@example.net refused")


def test_the_pages_say_what_is_wrong_instead_of_failing(
    api_factory: Any, service_env: dict[str, str], database_url: str
) -> None:
    with_history = api_factory(load_settings({**service_env, "DATABASE_URL": database_url}))
    without = api_factory(load_settings(service_env))
    for api in (with_history, without):
        assert api.client.get("/dashboard/emails/").status_code == 302  # to the sign-in form
        api.client.post("/dashboard/login", data={"key": API_KEY})
    bad_cursor = with_history.client.get("/dashboard/emails/?cursor=bm9wZQ")
    assert bad_cursor.status_code == 400 and b"not valid any more" in bad_cursor.data
    bad_status = with_history.client.get("/dashboard/emails/?status=lost")
    assert bad_status.status_code == 400 and b"status" in bad_status.data
    unknown = with_history.client.get("/dashboard/emails/em_nope")
    assert unknown.status_code == 404 and b"No email with id em_nope" in unknown.data
    assert without.client.get("/dashboard/emails/").status_code == 404
    assert b"DATABASE_URL is not set" in without.client.get("/dashboard/emails/em_0001").data
    since = with_history.client.get("/dashboard/emails/?since=2025-11-24T16:30")
    assert since.status_code == 200
    assert since.data.count(b"<tr data-id=") == 40 - 30  # accepted from 16:30 UTC (n >= 30)
