"""SMTP servers for relay tests that the shared fixtures do not start: TLS with a certificate
from a private CA made for the test (trustme), STARTTLS required or absent, SMTPUTF8 offered.

Each server records what it accepted through conftest's `RecordingHandler`.
"""

from __future__ import annotations

import gc
import ssl
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller

from postbox.dev.ports import free_port
from tests.conftest import Received, RecordingHandler

HOST = "127.0.0.1"


@dataclass
class PrivateCa:
    """A private certificate authority and the PEM file a client needs to trust it."""

    ca: trustme.CA
    ca_file: Path

    def server_context(self, *names: str) -> ssl.SSLContext:
        """A server-side TLS context with a certificate for `names` signed by this CA."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*names).configure_cert(context)
        return context


def make_ca(directory: Path) -> PrivateCa:
    """A fresh CA whose certificate is written to `directory/ca.pem`."""
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return PrivateCa(ca, ca_file)


class _Controller(Controller):
    """aiosmtpd's controller checks readiness by opening a client socket with the server's
    own TLS context, which a server-only context refuses; a plain TCP connect is enough."""

    def _trigger_server(self) -> None:
        import socket  # noqa: PLC0415

        with socket.create_connection((self.hostname, self.port), 1.0):
            pass


@dataclass
class Relay:
    """A running SMTP server and where it listens."""

    host: str
    port: int
    handler: RecordingHandler

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def env(self, **extra: str) -> dict[str, str]:
        """Worker settings pointing at this relay."""
        return {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port), **extra}


@contextmanager
def running_relay(
    *,
    implicit_tls: ssl.SSLContext | None = None,
    starttls: ssl.SSLContext | None = None,
    smtputf8: bool = False,
) -> Iterator[Relay]:
    """Serve SMTP on a free port: implicit TLS, STARTTLS (then required), or plain."""
    handler = RecordingHandler()
    port = free_port()
    server_kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
    if starttls is not None:
        server_kwargs.update(tls_context=starttls, require_starttls=True)
    controller = _Controller(
        handler, hostname=HOST, port=port, ssl_context=implicit_tls, **server_kwargs
    )
    controller.start()
    try:
        yield Relay(HOST, port, handler)
    finally:
        controller.stop()
        # aiosmtpd never closes the socket of a TLS handshake the client aborted (as a
        # client that distrusts the certificate does); collect it here, quietly, rather
        # than let its ResourceWarning surface in whichever test runs next.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
