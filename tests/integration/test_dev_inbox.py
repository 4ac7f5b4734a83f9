"""The development inbox in a real browser (headless Chromium, Playwright) against a real
`postbox serve` whose relay is the dev SMTP inbox: a message opens to its HTML (in a
sandboxed frame that loads nothing from elsewhere: a remote image is never fetched), its
text, headers, raw source and attachment; the search finds by recipient and subject; the
clear button empties it. A screenshot of a message is saved as `dev-inbox.png` in the
test's tmp dir (the README's is one of those)."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from postbox.dev.inbox import DevInbox
from postbox.dev.ports import free_port
from tests.integration.serving import Process, post_json, start, wait_serving
from tests.support import wait_until

REPORT = b"Order 1234: 2 items, 24.00 EUR\n"


class _Tracker(BaseHTTPRequestHandler):
    """A remote image host: counts what it is asked for."""

    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tracker() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Tracker)
    _Tracker.hits = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def server(service_env: dict[str, str], tmp_path: Path) -> Iterator[Process]:
    inbox = DevInbox(tmp_path / "maildir")
    inbox.start()
    port = free_port()
    env = {
        **service_env,
        "SMTP_PORT": str(inbox.port),
        "POSTBOX_DEV_INBOX_DIR": str(inbox.maildir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "EMAIL_WORKER_PROCESSES": "1",
        "TMPDIR": str(tmp_path),
    }
    process = start("serve", ["serve"], env, tmp_path, port)
    try:
        wait_serving(process)
        yield process
    finally:
        process.stop()
        inbox.stop()


def send(server: Process, **fields: object) -> None:
    payload = {"from": "Shop <shop@example.com>", **fields}
    status, body = post_json(f"{server.base_url}/v1/emails", payload)
    assert status == 202, body


def test_a_message_opens_to_its_parts_and_the_inbox_searches_and_clears(
    server: Process, browser: Browser, tracker: ThreadingHTTPServer, tmp_path: Path
) -> None:
    pixel = f"http://127.0.0.1:{tracker.server_address[1]}/pixel.png"
    send(
        server,
        to="ann@example.org",
        subject="Your order 1234",
        text="Thanks, Ann! Your receipt is attached.",
        html=f'<h1 style="color:#2a6">Thanks, Ann!</h1><p>Receipt attached.</p><img src="{pixel}">',
        headers={"X-Order-Id": "1234"},
        attachments=[{"filename": "receipt.txt", "content": base64.b64encode(REPORT).decode()}],
    )
    send(server, to="bob@example.org", subject="Welcome", text="Hello Bob.")
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    inbox = f"{server.base_url}/dev/inbox"
    wait_until(lambda: page.goto(inbox) and page.locator("tr.message").count() == 2, timeout=30)

    search(page, "bob@example")
    expect(page.locator("tr.message")).to_have_count(1)
    expect(page.locator("tr.message")).to_contain_text("Welcome")
    search(page, "ORDER 1234")
    expect(page.locator("tr.message")).to_have_count(1)
    page.get_by_role("link", name="Your order 1234").click()

    frame = page.frame_locator("iframe[title='HTML body']")
    expect(frame.locator("h1")).to_have_text("Thanks, Ann!")
    expect(page.locator("#text pre")).to_contain_text("Your receipt is attached.")
    headers = page.locator("#headers")
    expect(headers).to_contain_text("X-Order-Id")
    expect(headers).to_contain_text("Message-ID")
    page.screenshot(path=str(tmp_path / "dev-inbox.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="receipt.txt").click()
    assert Path(download.value.path()).read_bytes() == REPORT
    page.get_by_role("link", name="Open the raw message").click()
    expect(page.locator("body")).to_contain_text("Subject: Your order 1234")
    expect(page.locator("body")).to_contain_text("Content-Disposition: attachment")
    assert _Tracker.hits == []  # the remote image was never fetched

    page.goto(inbox)
    page.get_by_role("button", name="Clear inbox").click()
    expect(page.locator("tr.message")).to_have_count(0)
    expect(page.locator("body")).to_contain_text("Nothing here")


def search(page: Page, text: str) -> None:
    page.fill("input[type=search]", text)
    page.get_by_role("button", name="Search").click()
