"""A Sentinel deployment on loopback (one primary, two replicas, three Sentinels), for the
tests and bench/ (tests/integration/test_sentinel.py, bench/replica_ack.py).

Every process is a `redis-server` child on a free port with its own directory (Debian's
package ships no `redis-sentinel` binary; `redis-server file.conf --sentinel` is the same
program). The Sentinels take the primary for down after `DOWN_AFTER_MS` (1 s here, 30 s by
default) so a failover is over in a few seconds. Passwords on everything keep other local
processes out, and exercise REDIS_PASSWORD and REDIS_SENTINEL_PASSWORD.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import redis as sync_redis

from postbox.dev.ports import free_port, wait_for_port
from postbox.dev.redis_server import redis_server_binary
from postbox.supervisor import stop_processes

MASTER = "pbx"
DOWN_AFTER_MS = 1000
HOST = "127.0.0.1"


class SentinelGroup:
    """The six processes, started by `start` and ended by `stop`."""

    def __init__(self, root: Path, password: str, sentinel_password: str) -> None:
        self.root = root
        self.password = password
        self.sentinel_password = sentinel_password
        self.redis_ports = [free_port() for _ in range(3)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self.first_primary = self.redis_ports[0]

    def env(self) -> dict[str, str]:
        """What a Postbox process needs to find the primary (REDIS_URL blanked)."""
        return {
            "REDIS_URL": "",
            "REDIS_SENTINELS": ",".join(f"{HOST}:{port}" for port in self.sentinel_ports),
            "REDIS_SENTINEL_MASTER": MASTER,
            "REDIS_SENTINEL_PASSWORD": self.sentinel_password,
            "REDIS_PASSWORD": self.password,
        }

    def start(self) -> None:
        """Start the primary, its replicas, then the Sentinels; return once all agree."""
        primary, *replicas = self.redis_ports
        self._start(primary, self._redis_conf(primary, None))
        for port in replicas:
            self._start(port, self._redis_conf(port, primary))
        for port in self.sentinel_ports:
            self._start(port, self._sentinel_conf(port, primary), "--sentinel")
        self.wait_replicas(primary, 2)
        self._wait_sentinels_see(primary, replicas=2)

    def stop(self) -> None:
        """Stop every process still running."""
        stop_processes(list(self._processes.values()), timeout=10, sig=signal.SIGTERM)
        self._processes.clear()

    def kill(self, port: int) -> None:
        """SIGKILL the server on `port` (a crash: nothing is flushed or handed over)."""
        process = self._processes.pop(port)
        process.kill()
        process.wait()

    def pause(self, port: int) -> None:
        """Freeze the server on `port` (SIGSTOP): it takes connections and answers nothing."""
        self._processes[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        """Let a paused server run again."""
        self._processes[port].send_signal(signal.SIGCONT)

    def cut_off_replicas(self) -> None:
        """Freeze the first primary's replicas and drop its links to them: what the primary
        takes from now on reaches no replica (a frozen replica alone would still read what
        its kernel buffered, once resumed). `resume` them to let them reconnect."""
        for port in self.redis_ports[1:]:
            self.pause(port)
        primary = self.client(self.first_primary)
        try:
            primary.client_kill_filter(_type="replica")
        finally:
            primary.close()

    def client(self, port: int) -> sync_redis.Redis:
        """A client straight to the server on `port`."""
        return sync_redis.Redis(
            host=HOST, port=port, password=self.password, decode_responses=True, socket_timeout=5
        )

    def primary_port(self) -> int:
        """The port the first Sentinel currently names primary."""
        sentinel = sync_redis.Redis(
            host=HOST, port=self.sentinel_ports[0], password=self.sentinel_password
        )
        try:
            # redis-py types the reply loosely: it is (host, port).
            address = cast(tuple[str, int], sentinel.sentinel_get_master_addr_by_name(MASTER))
            return int(address[1])
        finally:
            sentinel.close()

    def wait_new_primary(self, timeout: float = 20) -> int:
        """Block until the Sentinels have promoted a replica; its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.primary_port()
            if port != self.first_primary and self._role(port) == "master":
                return port
            time.sleep(0.1)
        raise TimeoutError(f"no replica promoted within {timeout} s")

    def wait_replicas(self, primary: int, count: int, timeout: float = 20) -> None:
        """Block until `primary` has `count` replicas online."""
        deadline = time.monotonic() + timeout
        client = self.client(primary)
        try:
            while time.monotonic() < deadline:
                info = client.info("replication")
                links = [v for k, v in info.items() if k.startswith("slave")]
                if sum(1 for r in links if isinstance(r, dict) and r["state"] == "online") >= count:
                    return
                time.sleep(0.05)
        finally:
            client.close()
        raise TimeoutError(f"{primary} has not {count} replicas online within {timeout} s")

    def _role(self, port: int) -> str:
        client = self.client(port)
        try:
            return str(client.info("replication")["role"])
        except sync_redis.RedisError:
            return "unreachable"
        finally:
            client.close()

    def _wait_sentinels_see(self, primary: int, replicas: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._sentinel_ready(port, primary, replicas) for port in self.sentinel_ports):
                return
            time.sleep(0.1)
        raise TimeoutError("the Sentinels do not agree on the primary and its replicas")

    def _sentinel_ready(self, port: int, primary: int, replicas: int) -> bool:
        sentinel = sync_redis.Redis(host=HOST, port=port, password=self.sentinel_password)
        try:
            state = cast(dict[str, Any], sentinel.sentinel_master(MASTER))
        except sync_redis.RedisError:
            return False
        finally:
            sentinel.close()
        return (
            int(state["port"]) == primary
            and int(state["num-slaves"]) >= replicas
            and int(state["num-other-sentinels"]) >= len(self.sentinel_ports) - 1
        )

    def _start(self, port: int, conf: str, *extra: str) -> None:
        directory = self.root / str(port)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "redis.conf"
        path.write_text(conf)
        log = (directory / "out.log").open("ab")
        self._processes[port] = subprocess.Popen(
            [redis_server_binary(), str(path), *extra], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_for_port(HOST, port, timeout=10)

    def _redis_conf(self, port: int, primary: int | None) -> str:
        lines = [
            f"port {port}",
            f"bind {HOST}",
            f"dir {self.root / str(port)}",
            'save ""',
            "appendonly no",
            "maxmemory-policy noeviction",
            "loglevel warning",
            f"requirepass {self.password}",
            f"masterauth {self.password}",
            "repl-diskless-sync yes",
            "repl-diskless-sync-delay 0",
        ]
        if primary is not None:
            lines.append(f"replicaof {HOST} {primary}")
        return "\n".join(lines) + "\n"

    def _sentinel_conf(self, port: int, primary: int) -> str:
        return (
            "\n".join(
                [
                    f"port {port}",
                    f"bind {HOST}",
                    f"dir {self.root / str(port)}",
                    "loglevel notice",
                    f"requirepass {self.sentinel_password}",
                    f"sentinel sentinel-pass {self.sentinel_password}",
                    f"sentinel monitor {MASTER} {HOST} {primary} 2",
                    f"sentinel auth-pass {MASTER} {self.password}",
                    f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER} 10000",
                    f"sentinel parallel-syncs {MASTER} 1",
                ]
            )
            + "\n"
        )
