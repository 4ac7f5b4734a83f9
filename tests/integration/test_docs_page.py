"""`/docs` in a real browser (headless Chromium, Playwright) against `postbox serve`: Swagger
UI shows every operation and the fields of a request body, sends a documented example with
the API key (202), and loads nothing from anywhere but the server itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.integration.serving import Process, api_only, get_json
from tests.support import API_KEY


@pytest.fixture
def server(service_env: dict[str, str], tmp_path: Path) -> Iterator[Process]:
    with api_only(service_env, tmp_path, 1) as api:
        yield api


def test_docs_show_every_operation_and_send_an_example(
    server: Process, browser: Browser, tmp_path: Path
) -> None:
    document = get_json(f"{server.base_url}/openapi.json")
    operations = sum(len(ops) for ops in document["paths"].values())
    page = browser.new_page(viewport={"width": 1280, "height": 2000})
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.base_url}/docs")
    expect(page.locator(".opblock")).to_have_count(operations, timeout=30_000)

    page.click(".btn.authorize")
    page.fill(".modal-ux input", API_KEY)
    page.click(".modal-ux .auth-btn-wrapper .authorize")
    page.click(".modal-ux .btn-done")

    send = page.locator("#operations-default-sendEmail")
    send.locator(".opblock-summary").click()
    body = send.locator(".opblock-section-request-body")
    expect(body).to_contain_text("A text email")
    body.get_by_text("Schema", exact=True).click()
    for field in ("reply_to", "attachments", "send_at", "maxItems"):
        expect(body).to_contain_text(field)
    send.locator(".try-out__btn").click()
    send.locator(".execute").click()
    status = send.locator(".live-responses-table tr.response .response-col_status")
    expect(status).to_have_text("202", timeout=20_000)
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)

    assert [url for url in requested if not url.startswith(server.base_url)] == []
    assert problems == []
