"""A private PostgreSQL cluster on loopback, for the history tests and bench/: `initdb` and
`pg_ctl` from Debian's `postgresql` package (scripts/setup.sh installs it; its system
service is never started or used).

The cluster lives in its own temporary directory, owned by an unprivileged user: initdb
refuses to run as root, and the tests run as root in CI. It listens on a free loopback port,
trusts local connections (the port is on 127.0.0.1 only, and the cluster lives as long as
the test session) and keeps no Unix socket.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from postbox.dev.ports import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
# The user that owns the cluster when the tests run as root (Debian's postgres user if the
# package made one, else nobody).
CLUSTER_USERS = ("postgres", "nobody")


def _cluster_user() -> str | None:
    """Who runs initdb and the server: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in CLUSTER_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and no unprivileged user to own the PostgreSQL cluster")


class PostgresServer:
    """One PostgreSQL server process with its cluster in a temporary directory."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"{PG_BIN}/initdb is missing: install Debian's postgresql package")
        self.port = free_port()
        self.user = _cluster_user()
        self.root = Path(tempfile.mkdtemp(prefix="postbox-pg-"))
        self.data_dir = self.root / "data"
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the `postgres` database (psycopg 3)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        """The SQLAlchemy URL of database `name`."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def init(self) -> None:
        """Create the cluster (fsync off: a test cluster need not survive a power cut)."""
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        options = [
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = ''",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "max_connections = 200",
        ]
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(options) + "\n")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        log = self.root / "postgres.log"
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server (fast: open connections are cut, as in an outage)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """Create database `name`; its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.database_url(name)

    def remove(self) -> None:
        """Stop the server if it runs, and delete the cluster."""
        subprocess.run(
            self._argv("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "stop"),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def _argv(self, program: str, *args: str) -> list[str]:
        argv = [str(PG_BIN / program), *args]
        return ["runuser", "-u", self.user, "--", *argv] if self.user else argv

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            self._argv(program, *args), capture_output=True, text=True, check=False, cwd=self.root
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stderr.strip() or done.stdout.strip()}")
