"""`postbox serve` and `postbox worker` as real processes, and plain HTTP to them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from prometheus_client.parser import text_string_to_metric_families

from postbox.dev.ports import free_port
from tests.conftest import ROOT
from tests.support import API_KEY, wait_until


@dataclass
class Process:
    """One Postbox command running as a child of the test."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def start(
    name: str, args: list[str], env: dict[str, str], tmp_path: Path, port: int | None = None
) -> Process:
    """`python -m postbox ARGS` with `env` over the test's environment."""
    log_path = tmp_path / f"{name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "postbox", *args],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    return Process(name, process, log_path, log, port)


@contextmanager
def api_only(
    service_env: dict[str, str], tmp_path: Path, web_concurrency: int
) -> Iterator[Process]:
    """`postbox serve --no-worker` on a free loopback port, serving, then stopped."""
    port = free_port()
    env = {
        **service_env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(web_concurrency),
    }
    api = start("api", ["serve", "--no-worker"], env, tmp_path, port)
    try:
        wait_serving(api)
        yield api
    finally:
        api.stop()


def get(url: str, key: str | None = API_KEY, timeout: float = 5) -> tuple[int, bytes]:
    """GET `url` on a fresh connection; (status, body), also for error statuses."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def get_json(url: str) -> dict[str, Any]:
    status, body = get(url)
    assert status == 200, body
    found: dict[str, Any] = json.loads(body)
    return found


def serving(process: Process) -> bool:
    """True once `process` answers /healthz; fails the test if it died."""
    assert process.process.poll() is None, f"{process.name} exited:\n{process.log_tail()}"
    try:
        return get(f"{process.base_url}/healthz", key=None, timeout=1)[0] == 200
    except OSError:
        return False


def wait_serving(process: Process, timeout: float = 30) -> None:
    wait_until(lambda: serving(process), timeout=timeout)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by (name, sorted labels)."""
    status, body = get(url, key=None)
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(
        value for (found, keys), value in samples.items() if found == name and wanted <= set(keys)
    )


def post_json(url: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST `payload` as JSON with the API key; (status, JSON body)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
