"""A body over MAX_REQUEST_BYTES gets its JSON 413 with every common client, against a real
`postbox serve`, even when the client sends the whole body before it reads (urllib), and
the server neither reads without bound nor waits without bound (lingering_close.py)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests

from postbox.api import lingering_close
from tests.integration.serving import Process, api_only
from tests.support import API_KEY

LIMIT = 1 << 20
# Far more than the socket buffers and gunicorn's own 64 KiB drain hold: before the
# lingering close, urllib got `[Errno 32] Broken pipe` for such a body on every try.
BODY = b'{"text": "' + b"x" * (12 * LIMIT) + b'"}'
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
NODE_FETCH = """
const [url, size, headers] = process.argv.slice(2);
const body = Buffer.alloc(Number(size), 120);
const answer = await fetch(url, {method: "POST", body, headers: JSON.parse(headers)});
console.log(JSON.stringify({status: answer.status, body: await answer.json()}));
"""


@pytest.fixture
def server(service_env: dict[str, str], tmp_path: Path) -> Iterator[Process]:
    with api_only({**service_env, "MAX_REQUEST_BYTES": str(LIMIT)}, tmp_path, 1) as api:
        yield api


def assert_json_413(status: int, body: bytes | dict) -> None:
    error = (json.loads(body) if isinstance(body, bytes) else body)["error"]
    assert status == 413
    assert error["code"] == "request_entity_too_large" and "body" in error["fields"]


def test_every_client_reads_the_413(server: Process, tmp_path: Path) -> None:
    """One server for all the clients: each makes its own connections."""
    for _ in range(3):  # it was every try, not some
        urllib_reads_the_413(server.base_url)
    requests_reads_the_413_and_its_pool_goes_on(server.base_url)
    answer = httpx.post(f"{server.base_url}/v1/emails", content=BODY, headers=HEADERS, timeout=30)
    assert_json_413(answer.status_code, answer.content)
    curl_reads_the_413_with_and_without_expect(server.base_url, tmp_path)
    node_fetch_reads_the_413(server.base_url, tmp_path)


def urllib_reads_the_413(base_url: str) -> None:
    """urllib sends the whole body before it reads."""
    request = urllib.request.Request(f"{base_url}/v1/emails", BODY, HEADERS)
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    assert_json_413(answer.value.code, answer.value.read())


def requests_reads_the_413_and_its_pool_goes_on(base_url: str) -> None:
    with requests.Session() as session:
        answer = session.post(f"{base_url}/v1/emails", data=BODY, headers=HEADERS, timeout=30)
        assert_json_413(answer.status_code, answer.content)
        assert session.get(f"{base_url}/healthz", timeout=10).status_code == 200


def curl_reads_the_413_with_and_without_expect(base_url: str, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(BODY)
    for expect in ("Expect: 100-continue", "Expect:"):
        args = [f"-H{name}: {value}" for name, value in HEADERS.items()]
        command = ["curl", "-sS", "-H", expect, *args, "--data-binary", f"@{body}"]
        printed = subprocess.run(
            [*command, "-w", "\n%{http_code}", f"{base_url}/v1/emails"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        answer, _, status = printed.rpartition(b"\n")
        assert_json_413(int(status), answer)


def node_fetch_reads_the_413(base_url: str, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is missing: scripts/setup.sh installs Debian's nodejs"
    script = tmp_path / "fetch.mjs"
    script.write_text(NODE_FETCH)
    printed = subprocess.run(
        [node, str(script), f"{base_url}/v1/emails", str(len(BODY)), json.dumps(HEADERS)],
        capture_output=True,
        check=True,
        timeout=60,
        text=True,
    ).stdout
    answer = json.loads(printed)
    assert_json_413(answer["status"], answer["body"])


def test_the_server_neither_waits_nor_reads_without_bound(server: Process) -> None:
    """A client that stops sending is closed after the idle bound; a body announced beyond
    the byte bound is not read (the client's sends fail)."""
    with _connection(server, len(BODY)) as sock:
        sock.sendall(BODY[: 2 * LIMIT])  # then nothing more
        started = time.monotonic()
        received = b""
        while chunk := _recv(sock):
            received += chunk
        waited = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 413"), received[:100]
    assert waited < lingering_close.IDLE_SECONDS + 5

    huge = lingering_close.MAX_BYTES + 8 * LIMIT
    sent = 0
    with _connection(server, huge) as sock, pytest.raises(OSError):
        while sent < huge:
            sent += sock.send(b"x" * LIMIT)
    assert sent < huge


def _connection(server: Process, content_length: int) -> socket.socket:
    """A connection with a POST's head sent, announcing `content_length` bytes of body."""
    sock = socket.create_connection(("127.0.0.1", server.port or 0), timeout=30)
    head = (
        f"POST /v1/emails HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {API_KEY}\r\nContent-Length: {content_length}\r\n\r\n"
    )
    sock.sendall(head.encode())
    return sock


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""
