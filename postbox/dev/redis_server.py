"""A private `redis-server` process on loopback, for `postbox dev`, the tests and bench/.

It never touches the system Redis: its own port, its own data directory, no daemonising.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

from postbox.dev.ports import free_port, wait_for_port
from postbox.errors import RedisServerError
from postbox.supervisor import stop_processes

MINIMUM_VERSION = (7, 0, 8)


def redis_server_binary() -> str:
    """The path of a redis-server new enough for bullmq, or `RedisServerError` saying why not."""
    path = shutil.which("redis-server")
    if path is None:
        raise RedisServerError(
            "redis-server is not on PATH: install it (make dev does: apt-get install redis-server)"
        )
    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", output)
    version = tuple(int(part) for part in match.groups()) if match else (0, 0, 0)
    if version < MINIMUM_VERSION:
        raise RedisServerError(f"redis-server {version} is older than 7.0.8, which bullmq needs")
    return path


class RedisServer:
    """One redis-server child process with its data in `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        appendonly: bool = False,
        password: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendonly = appendonly
        # A password keeps other local processes (another test run's leftovers, other users)
        # from reading or taking this server's jobs.
        self.password = password
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of this server."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the server process lives."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        log = (self.data_dir / "redis.log").open("ab")
        self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            wait_for_port("127.0.0.1", self.port, timeout=10)
        except TimeoutError:
            self.stop()
            raise

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the server (SIGKILL simulates a crash) and wait for it to exit."""
        if self._process is None:
            return
        stop_processes([self._process], timeout=10, sig=sig)
        self._process = None
