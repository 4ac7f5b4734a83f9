"""A Redis Cluster on loopback for the tests: three masters, each with one replica.

Six `redis-server --cluster-enabled yes` children on free ports, each with its own folder,
joined by `redis-cli --cluster create ... --cluster-replicas 1`. A node is taken for failed
after `NODE_TIMEOUT_MS` (1 s here, 15 s by default), so a replica takes over a SIGKILLed
master within a few seconds. A password on every node keeps other local processes out.
With a `PrivateCa` (tests/tls_support.py) every node speaks TLS only, to clients, to its
replicas and on the cluster bus.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis as sync_redis
from redis.crc import key_slot

from postbox.dev.ports import free_port, wait_for_port
from postbox.dev.redis_server import redis_server_binary
from postbox.supervisor import stop_processes
from tests.tls_support import PrivateCa

HOST = "127.0.0.1"
NODE_TIMEOUT_MS = 1000
MASTERS = 3


class RedisCluster:
    """The six processes, started by `start` and ended by `stop`."""

    def __init__(self, root: Path, password: str, ca: PrivateCa | None = None) -> None:
        self.root = root
        self.password = password
        self.ca = ca
        # The cluster bus defaults to the port + 10000, which can be past 65535: each node
        # gets a bus port of its own, and no two of the twelve ports are the same.
        ports: list[int] = []
        while len(ports) < MASTERS * 4:
            if (port := free_port()) not in ports:
                ports.append(port)
        self.ports = ports[: MASTERS * 2]
        self._bus_ports = dict(zip(self.ports, ports[MASTERS * 2 :], strict=True))
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """REDIS_URL for Postbox: every node as a seed."""
        nodes = ",".join(f"{HOST}:{port}" for port in self.ports)
        if self.ca:
            return f"rediss+cluster://:{self.password}@{nodes}?ssl_ca_certs={self.ca.ca_file}"
        return f"redis+cluster://:{self.password}@{nodes}"

    def start(self) -> None:
        """Start the nodes, join them, and return once every node sees all slots served."""
        if self.ca:
            cert = self.ca.ca.issue_cert(HOST)
            cert.private_key_pem.write_to_path(str(self.root / "node.key"))
            cert.cert_chain_pems[0].write_to_path(str(self.root / "node.crt"))
        for port in self.ports:
            self._start(port)
        tls = ["--tls", "--cacert", str(self.ca.ca_file)] if self.ca else []
        redis_cli = shutil.which("redis-cli")
        if redis_cli is None:
            raise RuntimeError("redis-cli is not on PATH (apt-get install redis-tools)")
        joined = subprocess.run(
            [
                redis_cli,
                "-a",
                self.password,
                "--no-auth-warning",
                *tls,
                "--cluster",
                "create",
                *(f"{HOST}:{port}" for port in self.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if joined.returncode != 0:  # what redis-cli said, for the test's report
            said = (joined.stdout + joined.stderr)[-3000:]
            raise RuntimeError(f"redis-cli --cluster create failed ({joined.returncode}):\n{said}")
        self.wait_healthy()

    def stop(self) -> None:
        """Stop every node still running."""
        stop_processes(list(self._processes.values()), timeout=10, sig=signal.SIGTERM)
        self._processes.clear()

    def kill(self, port: int) -> None:
        """SIGKILL the node on `port` (a crash: nothing is flushed or handed over)."""
        process = self._processes.pop(port)
        process.kill()
        process.wait()

    def restart(self, port: int) -> None:
        """Start a killed node again: from its `nodes.conf` it rejoins, as a replica of
        whichever node took over its slots."""
        self._start(port)

    def wait_replicas(self, port: int, count: int, timeout: float = 30) -> None:
        """Block until the master on `port` has `count` replicas online."""
        deadline = time.monotonic() + timeout
        with self.client(port) as client:
            while time.monotonic() < deadline:
                info = client.info("replication")
                links = [v for k, v in info.items() if k.startswith("slave")]
                if sum(1 for r in links if isinstance(r, dict) and r["state"] == "online") >= count:
                    return
                time.sleep(0.05)
        raise TimeoutError(f"{port} has not {count} replicas online within {timeout} s")

    def client(self, port: int) -> sync_redis.Redis:
        """A client straight to the node on `port`."""
        return sync_redis.Redis(
            host=HOST,
            port=port,
            password=self.password,
            decode_responses=True,
            socket_timeout=5,
            ssl=self.ca is not None,
            ssl_ca_certs=str(self.ca.ca_file) if self.ca else None,
        )

    def master_of(self, key: str) -> int:
        """The port of the master serving `key`'s slot, as the first live node sees it."""
        slot = key_slot(key.encode())
        for port in self._processes:
            try:
                with self.client(port) as client:
                    for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                        if start <= slot <= end:
                            return int(master[1])
            except sync_redis.RedisError:
                continue
        raise RuntimeError(f"no live node knows who serves slot {slot}")

    def wait_healthy(self, timeout: float = 30) -> None:
        """Block until every live node reports `cluster_state:ok` with all slots served."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(port) for port in self._processes):
                return
            time.sleep(0.05)
        raise TimeoutError(f"the cluster is not healthy within {timeout} s")

    def _ok(self, port: int) -> bool:
        try:
            with self.client(port) as client:
                info = client.execute_command("CLUSTER", "INFO")
        except sync_redis.RedisError:
            return False
        text = info if isinstance(info, str) else str(info)
        return "cluster_state:ok" in text and "cluster_slots_ok:16384" in text

    def _start(self, port: int) -> None:
        directory = self.root / str(port)
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "redis.conf"
        if conf.exists():  # a restart
            self._launch(port, conf)
            return
        listen = [f"port {port}"]
        if self.ca:
            listen = [
                "port 0",
                f"tls-port {port}",
                f"tls-cert-file {self.root / 'node.crt'}",
                f"tls-key-file {self.root / 'node.key'}",
                f"tls-ca-cert-file {self.ca.ca_file}",
                "tls-auth-clients no",
                "tls-cluster yes",
                "tls-replication yes",
            ]
        conf.write_text(
            "\n".join(
                [
                    *listen,
                    f"bind {HOST}",
                    f"dir {directory}",
                    "cluster-enabled yes",
                    f"cluster-config-file {directory / 'nodes.conf'}",
                    f"cluster-port {self._bus_ports[port]}",
                    f"cluster-node-timeout {NODE_TIMEOUT_MS}",
                    'save ""',
                    "appendonly no",
                    "maxmemory-policy noeviction",
                    "loglevel warning",
                    f"requirepass {self.password}",
                    f"masterauth {self.password}",
                    "repl-diskless-sync yes",
                    "repl-diskless-sync-delay 0",
                ]
            )
            + "\n"
        )
        self._launch(port, conf)

    def _launch(self, port: int, conf: Path) -> None:
        log = (conf.parent / "out.log").open("ab")
        self._processes[port] = subprocess.Popen(
            [redis_server_binary(), str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_for_port(HOST, port, timeout=10)
