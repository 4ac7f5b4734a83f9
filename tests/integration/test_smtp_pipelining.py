"""SmtpPool with SMTP PIPELINING: what callers see is what they saw with aiosmtplib's
sendmail, the bytes on the wire are the same, and they go in two writes per message.

Every scenario runs against an aiosmtpd relay that offers PIPELINING and one that does not
(one command at a time), on uvloop (the worker's loop) and on asyncio's own loop. The relay
records each chunk of bytes it reads, which shows how the commands were written. Each
scenario is played on a connection that has sent one message already, so that it tests a
reused connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import uvloop
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from prometheus_client import CollectorRegistry

from postbox.config import SmtpSettings
from postbox.dev.ports import free_port
from postbox.errors import (
    DeliveryError,
    OutcomeUnknown,
    PermanentDeliveryError,
    RelayUnavailable,
    TemporaryDeliveryError,
)
from postbox.workers.metrics import WorkerMetrics
from postbox.workers.smtp_pool import Reply, SendResult, SmtpPool
from tests.conftest import RecordingHandler
from tests.relay_support import DroppingHandler, HangingUpHandler

T = TypeVar("T")
METRICS: dict[SmtpPool, WorkerMetrics] = {}
SENDER = "sender@example.com"
ACCEPTED = SendResult("2.0.0 Message accepted", {})
# Lines that start with a dot must reach the relay dot-stuffed and come out unchanged.
MESSAGE = "\r\n".join(
    [
        "From: sender@example.com",
        "To: a@example.org",
        "Subject: dots",
        "MIME-Version: 1.0",
        "",
        ".starts with a dot",
        ".",
        "..two dots",
        "last line",
    ]
)


class _WireRecordingSMTP(SMTPServer):  # type: ignore[misc]
    """aiosmtpd's server, keeping each chunk it reads from the client as it came."""

    def __init__(self, handler: Any, chunks: list[bytes], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._chunks = chunks

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        super().data_received(data)


class _Controller(Controller):  # type: ignore[misc]
    def __init__(self, handler: Any, chunks: list[bytes], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.chunks = chunks

    def factory(self) -> SMTPServer:
        return _WireRecordingSMTP(self.handler, self.chunks, **self.SMTP_kwargs)


@dataclass
class Relay:
    handler: RecordingHandler
    port: int
    chunks: list[bytes] = field(default_factory=list)

    def wire(self) -> bytes:
        return b"".join(self.chunks)


@contextmanager
def serve(handler: RecordingHandler, **server_kwargs: Any) -> Iterator[Relay]:
    relay = Relay(handler, free_port())
    controller = _Controller(
        handler, relay.chunks, hostname="127.0.0.1", port=relay.port, **server_kwargs
    )
    controller.start()
    try:
        yield relay
    finally:
        controller.stop()


def make_pool(relay: Relay, timeout: float = 5.0) -> SmtpPool:
    """A pool of one connection to `relay`, its metrics in `METRICS[pool]`."""
    settings = SmtpSettings(port=relay.port, pool_size=1, timeout_seconds=timeout)
    metrics = WorkerMetrics(CollectorRegistry())
    pool = SmtpPool(settings, metrics.for_relay("default"))
    METRICS[pool] = metrics
    return pool


def replies(pool: SmtpPool) -> dict[str, float]:
    """The pool's `postbox_smtp_replies_total` by code."""
    metric = METRICS.pop(pool).smtp_replies
    return {
        sample.labels["code"]: sample.value
        for sample in next(iter(metric.collect())).samples
        if sample.name.endswith("_total")
    }


def pipelined_group(relay: Relay) -> list[bytes]:
    """Chunks that held a MAIL command together with what follows it."""
    return [c for c in relay.chunks if c.startswith(b"MAIL FROM:") and c.endswith(b"DATA\r\n")]


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine to completion on a fresh loop of the kind the test is parametrized
    with."""
    runner: Callable[[Coroutine[Any, Any, T]], T] = (
        uvloop.run if request.param == "uvloop" else asyncio.run
    )
    return runner


@pytest.fixture(params=[True, False], ids=["pipelining", "no-pipelining"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@dataclass(frozen=True)
class Send:
    """One `SmtpPool.send` call."""

    recipients: list[str]
    message: str = MESSAGE
    sender: str = SENDER
    mail_options: tuple[str, ...] = ()


async def play(pool: SmtpPool, *steps: Send | Callable[[], object]) -> list[Any]:
    """Send one message to open the connection and learn the relay's extensions, then play
    `steps`: the result of each `Send` (or the DeliveryError it raised) goes in the returned
    list, a callable (changing how the relay answers) is called. The pool is closed at the end.
    """
    results: list[Any] = []
    try:
        await pool.send(SENDER, ["warm@example.org"], MESSAGE)
        for step in steps:
            if not isinstance(step, Send):
                step()
                continue
            try:
                results.append(
                    await pool.send(
                        step.sender, step.recipients, step.message, None, step.mail_options
                    )
                )
            except DeliveryError as exc:
                results.append(exc)
    finally:
        await pool.close()
    return results


def test_pipelined_send_writes_the_bytes_sendmail_writes_in_two_writes(run):
    streams = {}
    for pipelining in (True, False):
        with serve(RecordingHandler(pipelining=pipelining)) as relay:
            [result] = run(play(make_pool(relay), Send(["a@example.org", "b@example.org"])))
            assert result == ACCEPTED
            assert relay.handler.received[-1].data == MESSAGE.encode() + b"\r\n"
            streams[pipelining] = relay
    with_pipelining, without = streams[True], streams[False]

    assert with_pipelining.wire() == without.wire()
    assert b"\r\n..starts with a dot\r\n..\r\n...two dots\r\n" in with_pipelining.wire()
    _warm, group = pipelined_group(with_pipelining)  # the first message is pipelined too
    assert group.startswith(b"MAIL FROM:<sender@example.com> size=")
    assert group.endswith(b"\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    assert with_pipelining.chunks[-3:-1] == [group, without.chunks[-2]]  # then the message
    assert pipelined_group(without) == []


def test_refused_recipient_among_accepted_ones_is_reported_and_the_rest_delivered(run, pipelining):
    handler = RecordingHandler(
        pipelining=pipelining, rcpt_replies={"bad@example.org": "550 5.1.1 no such user"}
    )
    with serve(handler) as relay:
        pool = make_pool(relay)
        [result] = run(play(pool, Send(["a@example.org", "bad@example.org", "b@example.org"])))

    assert result == SendResult(
        ACCEPTED.reply, {"bad@example.org": Reply(550, "5.1.1 no such user")}
    )
    assert handler.received[-1].rcpt_tos == ["a@example.org", "b@example.org"]
    assert replies(pool) == {"250": 2, "550": 1}
    assert len(pipelined_group(relay)) == 2 * int(pipelining)


def test_all_recipients_refused_sends_no_message_and_leaves_the_connection_clean(run, pipelining):
    handler = RecordingHandler(
        pipelining=pipelining,
        rcpt_replies={"x@example.org": "550 5.1.1 no such user", "y@example.org": "450 busy"},
    )
    with serve(handler) as relay:
        pool = make_pool(relay)
        refused, after = run(
            play(pool, Send(["x@example.org", "y@example.org"]), Send(["ok@x.org"]))
        )

    assert refused == SendResult(
        None,
        {"x@example.org": Reply(550, "5.1.1 no such user"), "y@example.org": Reply(450, "busy")},
    )
    assert after == ACCEPTED
    assert [r.rcpt_tos for r in handler.received] == [["warm@example.org"], ["ok@x.org"]]
    assert pool.connections_opened == 1
    assert replies(pool) == {"250": 2, "550": 1, "450": 1}
    assert b"RSET\r\n" in relay.wire()


def test_sender_refused_raises_the_relays_reply_and_the_connection_stays_usable(run, pipelining):
    handler = RecordingHandler(pipelining=pipelining)
    with serve(handler) as relay:
        pool = make_pool(relay)
        error, after = run(
            play(
                pool,
                lambda: setattr(handler, "mail_reply", "553 5.7.1 sender not allowed"),
                Send(["a@example.org"]),
                lambda: setattr(handler, "mail_reply", None),
                Send(["a@example.org"]),
            )
        )

    assert type(error) is PermanentDeliveryError
    assert str(error) == "553 5.7.1 sender not allowed"
    assert error.smtp_code == 553
    assert after == ACCEPTED
    assert pool.connections_opened == 1
    assert replies(pool) == {"250": 2, "553": 1}
    assert len(handler.received) == 2


@pytest.mark.parametrize(
    ("reply", "error_class"),
    [
        ("451 4.3.0 Try again later", TemporaryDeliveryError),
        ("554 5.6.0 bad", PermanentDeliveryError),
    ],
)
def test_refused_message_raises_the_relays_reply_and_the_connection_stays_usable(
    run, pipelining, reply, error_class
):
    handler = RecordingHandler(pipelining=pipelining)
    with serve(handler) as relay:
        pool = make_pool(relay)
        error, after = run(
            play(
                pool,
                lambda: handler.data_replies.append(reply),
                Send(["a@example.org"]),
                Send(["a@example.org"]),
            )
        )

    assert type(error) is error_class
    assert str(error) == reply
    assert error.smtp_code == int(reply[:3])
    assert after == ACCEPTED
    assert pool.connections_opened == 1
    assert replies(pool) == {"250": 2, reply[:3]: 1}
    assert len(handler.received) == 2


def test_reused_connection_the_relay_closed_is_replaced_and_the_message_sent_once(run, pipelining):
    handler = DroppingHandler(pipelining=pipelining)
    with serve(handler) as relay:
        pool = make_pool(relay)
        [result] = run(play(pool, lambda: setattr(handler, "drops", 1), Send(["a@example.org"])))

    assert result == ACCEPTED
    assert pool.connections_opened == 2
    assert [r.rcpt_tos for r in handler.received] == [["warm@example.org"], ["a@example.org"]]


def test_relay_slower_than_the_command_timeout_before_the_message_is_unavailable(run, pipelining):
    handler = RecordingHandler(pipelining=pipelining)
    with serve(handler) as relay:
        pool = make_pool(relay, timeout=0.3)
        [error] = run(
            play(
                pool,
                lambda: setattr(handler, "stalled", True),
                Send(["a@x.org"]),
                lambda: setattr(handler, "stalled", False),
            )
        )

    assert type(error) is RelayUnavailable
    assert str(error) == (
        "Relay unreachable: SMTPReadTimeoutError: Timed out waiting for server response"
    )


def test_no_reply_to_the_message_within_the_timeout_is_an_unknown_outcome(run, pipelining):
    handler = RecordingHandler(pipelining=pipelining)
    with serve(handler) as relay:
        pool = make_pool(relay, timeout=0.3)
        [error] = run(play(pool, lambda: setattr(handler, "data_delay", 1.0), Send(["a@x.org"])))

    assert type(error) is OutcomeUnknown
    assert "Timed out waiting for server response" in str(error)
    assert pool.connections_opened == 1


def test_connection_lost_after_the_message_is_not_sent_again(run, pipelining):
    handler = HangingUpHandler(pipelining=pipelining)
    with serve(handler) as relay:
        pool = make_pool(relay)
        [error, after] = run(
            play(
                pool,
                lambda: setattr(handler, "hang_ups", 1),
                Send(["a@example.org"]),
                Send(["b@example.org"]),
            )
        )

    assert type(error) is OutcomeUnknown
    assert "Outcome unknown" in str(error)
    assert after == ACCEPTED
    # The relay had the message once; the pool did not send it again on a new connection.
    assert [r.rcpt_tos for r in handler.received] == [
        ["warm@example.org"],
        ["a@example.org"],
        ["b@example.org"],
    ]
    assert pool.connections_opened == 2


@pytest.mark.parametrize("offered", [True, False])
def test_smtputf8_is_used_when_offered_and_a_permanent_failure_when_not(run, pipelining, offered):
    handler = RecordingHandler(pipelining=pipelining)
    send = Send(["jörg@example.org"], "Subject: Grüße\r\n\r\nHi", "zoë@example.com", ("SMTPUTF8",))
    with serve(handler, enable_SMTPUTF8=offered) as relay:
        [result] = run(play(make_pool(relay), send))

    if offered:
        assert result == ACCEPTED
        assert handler.received[-1].rcpt_tos == ["jörg@example.org"]
        assert handler.received[-1].data == "Subject: Grüße\r\n\r\nHi\r\n".encode()
    else:
        assert type(result) is PermanentDeliveryError
        assert "SMTPUTF8" in str(result)
        assert len(handler.received) == 1
