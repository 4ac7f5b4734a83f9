"""Postbox (and peer) processes as the benchmark runs them: real subprocesses with a log file.

Each gets an environment built from scratch for the run, so a Postbox variable exported in
the caller's shell cannot change the defaults being measured.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from bench.services import ROOT

API_KEY = "bench-key-0123456789abcdef"
# Every variable Postbox reads (README, configuration): none may leak in from the caller.
_POSTBOX_PREFIXES = ("EMAIL_", "SMTP_", "WORKER_", "API_", "REDIS_", "POSTBOX_")
_POSTBOX_NAMES = frozenset(
    {
        "QUEUE_NAME",
        "START_EMAIL_WORKER",
        "HOST",
        "PORT",
        "WEB_CONCURRENCY",
        "MAX_REQUEST_BYTES",
        "METRICS_PORT",
        "INSTANCE_ID",
        "LOG_LEVEL",
        "LOG_FORMAT",
    }
)


def postbox_env(redis_url: str, queue: str, smtp_port: int, **extra: str) -> dict[str, str]:
    """The environment of a Postbox process: this run's Redis, queue and sink, defaults
    for everything else."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _POSTBOX_NAMES and not name.startswith(_POSTBOX_PREFIXES)
    }
    env.update(
        REDIS_URL=redis_url,
        QUEUE_NAME=queue,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp_port),
        API_KEYS=API_KEY,
        INSTANCE_ID="bench",
    )
    env.update(extra)
    return env


class Child:
    """One subprocess writing to its own log file; `stop` ends it and its children."""

    def __init__(
        self, argv: list[str], env: Mapping[str, str], log_path: Path, cwd: Path = ROOT
    ) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT, cwd=cwd
            )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def log(self) -> str:
        """Everything it wrote so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, count: int, timeout: float) -> None:
        """Wait until `text` appears `count` times in the log (e.g. each worker's start)."""
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.log_path.name} exited early:\n{self.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.log_path.name}: no {count}x {text!r} in {timeout} s")
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL if it does not exit within `timeout`; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_worker(env: Mapping[str, str], args: list[str], log_path: Path) -> Child:
    """`postbox worker ARGS`, as an operator would run it."""
    return Child([sys.executable, "-m", "postbox", "worker", *args], env, log_path)


def start_api(env: Mapping[str, str], port: int, log_path: Path, source: Path = ROOT) -> Child:
    """`postbox serve --no-worker` on loopback (from the checkout `source`), returned once
    /healthz answers."""
    argv = [sys.executable, "-m", "postbox", "serve", "--no-worker"]
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port)}
    if source != ROOT:
        env["PYTHONPATH"] = str(source)
    child = Child(argv, env, log_path, cwd=source)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return child
        except OSError:
            if child.process.poll() is not None or time.monotonic() > deadline:
                child.stop()
                raise RuntimeError(f"the API did not start:\n{child.log()[-2000:]}") from None
            time.sleep(0.1)


WORKER_READY = "taking jobs from"
