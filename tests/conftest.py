"""Fixtures that start real services: redis-server, an aiosmtpd SMTP server, worker processes.

Nothing here is mocked. A missing redis-server fails the test run with the reason (the
README's test command installs it), it never skips.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from playwright.sync_api import Browser

from postbox.api.app import create_app
from postbox.config import Settings, load_settings
from postbox.dev.ports import free_port
from postbox.dev.redis_server import RedisServer
from tests.browser import chromium
from tests.history_fixtures import (  # noqa: F401
    database_url,
    history_env,
    pg_history_env,
    postgres_server,
    postgres_url,
    recorder_factory,
)
from tests.support import API_KEY, TEST_ENCRYPTION_KEY
from tests.tcp_proxy import TcpProxy
from tests.webhook_receiver import Receiver, running_receiver
from tests.webhook_support import DispatcherProcess

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), password=secrets.token_hex(12))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A clean database for each test."""
    client = sync_redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[sync_redis.Redis]:
    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def redis_proxy(redis_server: RedisServer, redis_url: str) -> Iterator[TcpProxy]:
    """A TCP proxy to the test's Redis (tests/tcp_proxy.py), closed after the test."""
    proxy = TcpProxy("127.0.0.1", redis_server.port)
    yield proxy
    proxy.close()


# ---------------------------------------------------------------- SMTP


@dataclass
class Received:
    """One message as the SMTP server took it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: float  # when DATA ended (the server took the message)
    started_at: float  # when MAIL FROM came (the transaction began)

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class RecordingHandler:
    """Answers per the test's `smtp_replies` marker and records what it accepted.

    `mail` is a reply to every MAIL command instead of "250 OK"; `rcpt` maps a recipient to a
    reply such as "550 5.1.1 no such user"; `data` is a list of replies given to successive
    DATA commands before the server starts accepting. The EHLO reply offers PIPELINING, as
    real relays do, unless `pipelining` is False.

    With `credentials` (the `smtp_auth` marker) the server offers AUTH PLAIN and LOGIN,
    refuses other credentials with 535 and answers MAIL with 530 until a client logged in.
    While `stalled` is set the server still takes connections and greets, then answers no
    command until it is cleared: a relay that hangs.
    """

    mail_reply: str | None = None
    pipelining: bool = True
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    data_delay: float = 0.0
    credentials: tuple[str, str] | None = None
    stalled: bool = False
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        await self._while_stalled()
        session.host_name = hostname  # aiosmtpd leaves this to a handler with this hook
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        await self._while_stalled()
        if self.credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        session.started_at = time.time()  # type: ignore[attr-defined]
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        await self._while_stalled()
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        await self._while_stalled()
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self.lock:
            if self.data_replies:
                return self.data_replies.pop(0)
            assert isinstance(envelope.content, bytes)
            self.received.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    envelope.content,
                    time.time(),
                    getattr(session, "started_at", 0.0),
                )
            )
        return "250 2.0.0 Message accepted"

    def authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        """aiosmtpd's authenticator: only `credentials` log in."""
        given = (
            (data.login.decode(), data.password.decode())
            if isinstance(data, LoginPassword)
            else None
        )
        if given == self.credentials:
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8

    async def _while_stalled(self) -> None:
        while self.stalled:
            await asyncio.sleep(0.05)


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler
    controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> None:
        auth: dict[str, Any] = {}
        if self.handler.credentials is not None:
            # AUTH over plain text is fine on loopback; the server asks for it before MAIL.
            auth = {"auth_require_tls": False, "authenticator": self.handler.authenticate}
        self.controller = Controller(self.handler, hostname=self.host, port=self.port, **auth)
        self.controller.start()

    def stop(self) -> None:
        """Stop listening (an outage); `start` brings it back on the same port."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> Iterator[SmtpServer]:
    replies = request.node.get_closest_marker("smtp_replies")
    delay = request.node.get_closest_marker("smtp_delay")
    auth = request.node.get_closest_marker("smtp_auth")
    handler = RecordingHandler(
        mail_reply=replies.kwargs.get("mail") if replies else None,
        rcpt_replies=dict((replies.kwargs.get("rcpt") or {}) if replies else {}),
        data_replies=list((replies.kwargs.get("data") or []) if replies else []),
        data_delay=delay.args[0] if delay else 0.0,
        credentials=(auth.args[0], auth.args[1]) if auth else None,
    )
    server = SmtpServer("127.0.0.1", free_port(), handler)
    server.start()
    yield server
    server.stop()


# ---------------------------------------------------------------- settings and app


@pytest.fixture
def service_env(redis_url: str, smtp_server: SmtpServer) -> dict[str, str]:
    """Environment for Postbox processes pointed at this test's Redis and SMTP server."""
    return {
        "REDIS_URL": redis_url,
        "SMTP_HOST": smtp_server.host,
        "SMTP_PORT": str(smtp_server.port),
        "SMTP_SECURITY": "none",
        "API_KEYS": API_KEY,
        # Webhook secrets are kept encrypted under it (a configured deployment has one).
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "INSTANCE_ID": "test",
        "EMAIL_BACKOFF_MS": "200",
        "LOG_LEVEL": "info",
        # `postbox worker` stays one process; webhook tests start dispatchers themselves.
        "WEBHOOK_DISPATCHER": "false",
        # Tests of retries and dead letters refuse the same address with 5.1.1 again and
        # again; the suppression feed's own tests turn this back on.
        "SUPPRESS_ON_HARD_REFUSALS": "false",
    }


@pytest.fixture
def settings(service_env: dict[str, str]) -> Settings:
    return load_settings(service_env)


class ApiClient:
    """A Flask test client that sends the API key and JSON by default."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.client = self.app.test_client()
        self.auth = {"Authorization": f"Bearer {API_KEY}"}

    def post(
        self, path: str, json: Any = None, headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        return self.client.post(path, json=json, headers={**self.auth, **(headers or {})}, **kw)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.client.get(path, headers={**self.auth, **(headers or {})})

    def close(self) -> None:
        self.app.extensions["postbox"].gateway.close()
        if self.app.extensions.get("postbox_history"):
            self.app.extensions["postbox_history"].close()


@pytest.fixture
def api_factory() -> Iterator[Callable[[Settings], ApiClient]]:
    made: list[ApiClient] = []

    def make(settings: Settings) -> ApiClient:
        made.append(ApiClient(settings))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def api(api_factory: Callable[[Settings], ApiClient], settings: Settings) -> ApiClient:
    return api_factory(settings)


# ---------------------------------------------------------------- worker processes


class WorkerProcess:
    """A real `postbox worker` process."""

    def __init__(self, env: dict[str, str], args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "postbox", "worker", *args],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture
def worker_factory(
    service_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `postbox worker` processes; each is stopped at the end of the test."""
    made: list[WorkerProcess] = []

    def start(args: list[str] | None = None, **env: str) -> WorkerProcess:
        log = tmp_path / f"worker-{len(made)}.log"
        made.append(WorkerProcess({**service_env, **env}, args or ["--processes", "1"], log))
        return made[-1]

    yield start
    for worker in made:
        worker.stop()


# ---------------------------------------------------------------- webhooks


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver that verifies every webhook signature (tests/webhook_receiver.py)."""
    with running_receiver() as server:
        yield server


@pytest.fixture
def dispatcher_env(redis_url: str) -> dict[str, str]:
    """Environment for `postbox webhooks dispatch`: this test's Redis, the test encryption
    key, loopback receivers allowed, and a short retry schedule."""
    return {
        "REDIS_URL": redis_url,
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "WEBHOOK_RETRY_SCHEDULE": "0.2,0.2,0.2",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "INSTANCE_ID": "test",
        "LOG_LEVEL": "info",
    }


@pytest.fixture
def dispatcher_factory(
    dispatcher_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., DispatcherProcess]]:
    """Start `postbox webhooks dispatch` processes; each is stopped at the end of the test."""
    made: list[DispatcherProcess] = []

    def start(**env: str) -> DispatcherProcess:
        log = tmp_path / f"dispatcher-{len(made)}.log"
        made.append(DispatcherProcess({**dispatcher_env, **env}, log, ROOT))
        return made[-1]

    yield start
    for dispatcher in made:
        dispatcher.stop()


# ---------------------------------------------------------------- pages


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless Chromium (tests/browser.py), closed after the test."""
    with chromium() as opened:
        yield opened
