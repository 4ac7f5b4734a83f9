"""Bounce tests' processes: `postbox bounces` as a real listener, and a relay of the test's
own (aiosmtpd) that takes every message with 250 and then, like a real MTA whose next hop
refused it, sends a DSN by SMTP to the message's envelope sender at the listener."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from postbox.dev.ports import free_port
from tests.support import ROOT

CORPUS = ROOT / "tests" / "bounce_corpus"
DOMAIN = "bounces.example.com"


def dsn_for(verp_sender: str, corpus_file: str = "postfix_user_unknown.eml") -> bytes:
    """A corpus report addressed to `verp_sender` (its `bounces+TOKEN@...` replaced)."""
    raw = (CORPUS / corpus_file).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return raw.replace(f"bounces+TOKEN@{DOMAIN}".encode(), verp_sender.encode())


def send_to(port: int, mail_from: str, rcpt: str, raw: bytes) -> tuple[int, bytes]:
    """One SMTP transaction to the listener; its reply to DATA (or to the refused step)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("mx.test")
        smtp.mail(mail_from)
        code, text = smtp.rcpt(rcpt)
        if code >= 400:
            return code, text
        return smtp.data(raw)


@dataclass
class BouncingRelay:
    """Accepts everything; recipients in `bounce` get a DSN sent back to the listener."""

    listener_port: int
    bounce: set[str] = field(default_factory=set)
    received: list[tuple[str, list[str]]] = field(default_factory=list)
    dsn_replies: list[Any] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    controller: Controller | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos)))
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.bounce:
                # After our 250, as an MTA does once its next hop refused the message.
                threading.Timer(0.2, self._bounce, (envelope.mail_from,)).start()
        return "250 2.0.0 Ok: queued"

    def _bounce(self, verp_sender: str) -> None:
        reply = send_to(self.listener_port, "", verp_sender, dsn_for(verp_sender))
        self.dsn_replies.append(reply)

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()


class BounceListener:
    """A real `postbox bounces` process on a free loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        listen = {"BOUNCE_SMTP_HOST": "127.0.0.1", "BOUNCE_SMTP_PORT": str(self.port)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "postbox", "bounces"],
            env={**os.environ, **env, **listen},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postbox bounces ended:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"postbox bounces did not listen:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
