"""The servers a benchmark run starts for itself: a private Redis and Postfix's smtp-sink.

smtp-sink accepts and throws away mail at a rate no Python SMTP server reaches, so the
relay is never what the benchmark measures. It comes from Debian's postfix package,
unpacked by bench/setup.sh into .tools/ and run as a plain child process, never as a
daemon. With a dump directory it writes one file per message, whose modification time is
when the message arrived (used by the end-to-end latency measurement).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
from pathlib import Path

import redis as sync_redis

from postbox.dev.ports import free_port, wait_for_port
from postbox.dev.redis_server import RedisServer
from postbox.queue.keys import PostboxKeys

ROOT = Path(__file__).resolve().parent.parent
SMTP_SINK = ROOT / ".tools" / "bin" / "smtp-sink"
_COUNTER = re.compile(rb"(\d+)\s*$")


class SmtpSink:
    """One smtp-sink process on a free loopback port."""

    def __init__(self, work_dir: Path, name: str, dump_dir: Path | None = None) -> None:
        self.port = free_port()
        self.dump_dir = dump_dir
        self._log_path = work_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start listening; needs bench/setup.sh to have unpacked smtp-sink."""
        if not SMTP_SINK.exists():
            raise RuntimeError(f"{SMTP_SINK} is missing: run bash bench/setup.sh first")
        args = [str(SMTP_SINK), "-c"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # smtp-sink refuses to keep root privileges
        if self.dump_dir is not None:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            # smtp-sink writes here after dropping to nobody: let it in, and through.
            self.dump_dir.chmod(0o777)
            parent = self.dump_dir.parent
            parent.chmod(parent.stat().st_mode | 0o011)
            # %H%M%S makes the random file-name suffix collide only within one second.
            args += ["-d", f"{self.dump_dir}/%H%M%S."]
        args += [f"127.0.0.1:{self.port}", "1000"]
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port("127.0.0.1", self.port, timeout=10)

    @property
    def pid(self) -> int:
        """The process id (0 when not running)."""
        return self._process.pid if self._process is not None else 0

    def messages_received(self) -> int | None:
        """The message counter smtp-sink's -c prints (None before the first message)."""
        tail = self._log_path.read_bytes()[-200:]
        last = tail.replace(b"\r", b"\n").strip().split(b"\n")[-1] if tail else b""
        match = _COUNTER.search(last)
        return int(match.group(1)) if match else None

    def stop(self) -> None:
        """Stop the sink and wait for it to exit."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


class BenchRedis:
    """A private redis-server plus a synchronous client for counting and clean-up."""

    def __init__(self, work_dir: Path) -> None:
        # A password, as Postbox's own private servers have: nothing else on this machine
        # can touch (or drain) the benchmark's queues.
        self.server = RedisServer(work_dir / "redis", password=secrets.token_hex(16))
        self.client: sync_redis.Redis | None = None
        self.pid = 0

    @property
    def url(self) -> str:
        """The server's redis:// URL (with the password)."""
        return self.server.url

    @property
    def port(self) -> int:
        """The server's port."""
        return self.server.port

    @property
    def password(self) -> str:
        """The server's password."""
        return self.server.password or ""

    def start(self) -> None:
        """Start the server and learn its pid (for its CPU time)."""
        self.server.start()
        self.client = sync_redis.Redis.from_url(self.url, decode_responses=True)
        self.pid = int(self.client.info("server")["process_id"])

    def completed(self, queue: str) -> int:
        """Jobs completed: Postbox's sent counter (it keeps only the newest completed jobs
        whole), or the queue's completed set (the Node peer keeps all of its jobs)."""
        assert self.client is not None
        sent = self.client.get(PostboxKeys(queue).sent_total())
        return max(int(self.client.zcard(f"bull:{queue}:completed")), int(sent or 0))

    def failed(self, queue: str) -> int:
        """Jobs in the queue's failed set."""
        assert self.client is not None
        return int(self.client.zcard(f"bull:{queue}:failed"))

    def calls(self) -> tuple[int, int]:
        """(commands, Lua script calls) Redis has run so far; commands include those that
        scripts issue, so together they show how much work each email costs Redis."""
        assert self.client is not None
        stats = self.client.info("commandstats")
        scripts = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_fcall")
        total = sum(int(v["calls"]) for v in stats.values())
        return total, sum(int(stats[name]["calls"]) for name in scripts if name in stats)

    def stop(self) -> None:
        """Close the client and stop the server."""
        if self.client is not None:
            self.client.close()
        self.server.stop()
