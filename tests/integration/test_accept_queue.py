"""Requests that waited in the kernel's accept queue: none is queued after its client gave
up, and those still waited for are answered 503 at once, not served late.

Before: the process's clock started at `accept`, so a request that had waited in the
listen queue past its client's timeout (a starved process, measured at 3,000 requests/s)
was then accepted, served and queued: the client believed it failed, and it was sent.
Here the API's one process is stopped (SIGSTOP) while requests arrive, as a process that
gets no CPU: the kernel completes their connections and receives them.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis

from bench.emails import payload_bytes
from bench.proc_stats import children, tree
from postbox.dev.ports import free_port
from tests.integration.serving import Process, api_only, start
from tests.support import API_KEY

GONE = 20  # clients that give up while the process is stopped
WAITING = 5  # clients that wait for their answer
STOPPED_SECONDS = 1.0  # longer than API_MAX_QUEUE_WAIT_MS (250) and the 0.5 s deadline


@pytest.fixture
def one_process(service_env: dict[str, str], tmp_path: Path) -> Iterator[Process]:
    with api_only(service_env, tmp_path, web_concurrency=1) as api:
        yield api


def gunicorn_worker(api: Process) -> int:
    """The pid of the process serving requests: the one leaf of `postbox serve`'s tree."""
    [leaf] = [pid for pid in tree(api.process.pid) if not children(pid)]
    return leaf


def post(port: int, index: int) -> socket.socket:
    """Connect and send one POST /v1/emails; the answer is left to read."""
    body = payload_bytes("accept-queue", index)
    head = (
        f"POST /v1/emails HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head + body)
    return sock


def probe(port: int) -> socket.socket:
    """Connect and send GET /healthz (probes are never shed)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    return sock


def answer(sock: socket.socket) -> bytes:
    """Everything the server sent before closing (or 5 s)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
    finally:
        sock.close()
    return b"".join(chunks)


def test_requests_older_than_the_wait_bound_are_shed_and_none_given_up_is_queued(
    one_process: Process, redis_client: sync_redis.Redis
) -> None:
    assert one_process.port is not None
    worker = gunicorn_worker(one_process)
    os.kill(worker, signal.SIGSTOP)
    try:
        gone = [post(one_process.port, index) for index in range(GONE)]
        waiting = [post(one_process.port, GONE + index) for index in range(WAITING)]
        health = probe(one_process.port)
        time.sleep(STOPPED_SECONDS)
        for sock in gone:
            sock.close()
    finally:
        os.kill(worker, signal.SIGCONT)
    heads = [answer(sock) for sock in waiting]
    # Read by the accept loop to see what it was, then handed to gunicorn's parser.
    assert answer(health).startswith(b"HTTP/1.1 200 ")
    for head in heads:
        assert head.startswith(b"HTTP/1.1 503 "), head
        assert b"Retry-After: 1" in head, head
    time.sleep(0.5)  # anything still being served
    assert redis_client.llen("bull:email:wait") == 0
    # The process serves as before once it gets the CPU.
    assert answer(post(one_process.port, GONE + WAITING)).startswith(b"HTTP/1.1 202 ")
    assert redis_client.llen("bull:email:wait") == 1


def test_a_request_that_came_while_the_process_started_is_served(
    service_env: dict[str, str], tmp_path: Path, redis_client: sync_redis.Redis
) -> None:
    # The listening socket is open before the process has loaded the app (~1 s): a request
    # sent then waited for the start, not behind other requests, and was shed as overloaded.
    port = free_port()
    env = {**service_env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1"}
    api = start("api", ["serve", "--no-worker"], env, tmp_path, port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sent_at = time.monotonic()
                sock = post(port, 0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        head = answer(sock)
        waited = time.monotonic() - sent_at
        assert head.startswith(b"HTTP/1.1 202 "), head
        assert redis_client.llen("bull:email:wait") == 1
        print(f"the first request waited {waited:.2f} s for the process to start")
    finally:
        api.stop()
