"""One mail transaction on an aiosmtplib connection, with SMTP PIPELINING (RFC 2920) when
the relay offers it, and knowing whether the message's content was written.

Why: aiosmtplib's `sendmail` waits for a reply after MAIL, after every RCPT, after DATA and
after the message, so each email costs 3 + recipients round trips and as many event-loop
wake-ups. When the relay's EHLO offers PIPELINING, `send_transaction` writes MAIL, every RCPT
and DATA at once, reads their replies, then sends the message: two round trips. Without
PIPELINING it writes one command at a time, as `sendmail` does.

Why not `sendmail` for the relays without PIPELINING: it raises the same
`SMTPServerDisconnected` whether the connection was lost before the message was written or
after, and only the first is safe to send again. A relay may commit the message and then lose
the connection before its 250 arrives: sending it again on another connection delivers it
twice. So once the content has been written, a lost connection or a timeout raises
`ContentUnanswered` here, and the caller must not resend it at once.

aiosmtplib has no pipelining, and its protocol cannot read several replies to one write: it
parses one reply per `data_received` and drops bytes that arrive while no command awaits a
reply. So for the length of the transaction a `_ReplyReader` stands in for aiosmtplib's
protocol on the transport (asyncio's `set_protocol`): it queues every complete reply, and
hands connection loss on to aiosmtplib's protocol, which then closes the `SMTP` object as it
always does. The commands and message bytes are those `sendmail` writes (same address
quoting, SIZE option, line endings and dot-stuffing, with aiosmtplib's own helpers), and the
result and exceptions are `sendmail`'s, so `SmtpPool` handles both paths alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPStatus
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import (
    COMMAND_INJECTION_REGEX,
    PERIOD_REGEX,
    SMTPProtocol,
    normalize_message_line_endings,
)

# Unparsed bytes allowed to wait for the end of a reply (aiosmtplib allows 32 KiB too).
_MAX_PENDING_REPLY = 32 * 1024
_ACCEPTED_RECIPIENT = frozenset({SMTPStatus.completed, SMTPStatus.will_forward})


class ContentUnanswered(aiosmtplib.SMTPException):
    """Raised when the connection was lost, or the reply timed out, after the message's
    content was written: the relay may have accepted it."""


@dataclass(frozen=True)
class _Transaction:
    """The bytes of one mail transaction, built (and checked) before any is sent."""

    sender: str
    recipients: Sequence[str]
    lines: tuple[bytes, ...]  # MAIL, every RCPT and DATA
    commands: bytes  # the same lines as one write
    content: bytes  # the dot-stuffed message and the line that ends it


async def send_transaction(
    smtp: aiosmtplib.SMTP,
    sender: str,
    recipients: Sequence[str],
    message: str | bytes,
    mail_options: Sequence[str] = (),
) -> tuple[dict[str, SMTPResponse], str]:
    """`smtp.sendmail(sender, recipients, message, mail_options=...)`, in two round trips if
    the relay offers PIPELINING (after EHLO, sent first if the connection has had none).

    Returns and raises what `sendmail` does: the refused recipients and the text of the reply
    to the message; `SMTPSenderRefused`, `SMTPRecipientsRefused` (nothing was delivered),
    `SMTPDataError`, `SMTPServerDisconnected`, `SMTPReadTimeoutError`, `SMTPNotSupported`
    (SMTPUTF8); and `ContentUnanswered`. A refusal leaves the connection usable (RSET); a lost,
    timed-out or closing (421) one is closed.
    """
    if smtp.is_ehlo_or_helo_needed:
        await _greet(smtp)
    transaction = _build(smtp, sender, recipients, message, mail_options)
    try:
        return await _run(smtp, transaction, smtp.supports_extension("pipelining"))
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        if smtp.is_connected:
            # Reset the envelope as `sendmail` does; a failed RSET is not the error to report.
            with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
                await smtp.rset()
        raise


async def _greet(smtp: aiosmtplib.SMTP) -> None:
    """EHLO, or HELO for a relay that refuses it, as `sendmail` does first."""
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError:
        await smtp.helo()


def _build(
    smtp: aiosmtplib.SMTP,
    sender: str,
    recipients: Sequence[str],
    message: str | bytes,
    mail_options: Sequence[str],
) -> _Transaction:
    """The transaction's bytes; raises, as `sendmail` does, before anything is sent."""
    utf8 = any(option.lower() == "smtputf8" for option in mail_options)
    encoding = "utf-8" if utf8 else "ascii"
    mailboxes = [quote_address(address).encode(encoding) for address in (sender, *recipients)]
    if utf8 and not smtp.supports_extension("smtputf8"):
        raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
    data = normalize_message_line_endings(
        message.encode("ascii") if isinstance(message, str) else message
    )
    # RFC 1870: the size of the message as sent, before dot-stuffing (as aiosmtplib counts).
    options = [f"size={len(data)}"] if smtp.supports_extension("size") else []
    mail = _command(b"MAIL FROM:" + mailboxes[0], [*options, *mail_options])
    rcpts = [_command(b"RCPT TO:" + mailbox, []) for mailbox in mailboxes[1:]]
    lines = (mail, *rcpts, b"DATA\r\n")
    return _Transaction(
        sender, recipients, lines, b"".join(lines), PERIOD_REGEX.sub(b"..", data) + b".\r\n"
    )


def _command(verb_and_mailbox: bytes, options: list[str]) -> bytes:
    line = b" ".join([verb_and_mailbox, *(option.encode("ascii") for option in options)])
    if COMMAND_INJECTION_REGEX.search(line):
        raise ValueError("Command arg contains a prohibited control character")
    return line + b"\r\n"


async def _run(
    smtp: aiosmtplib.SMTP, transaction: _Transaction, pipelined: bool
) -> tuple[dict[str, SMTPResponse], str]:
    """Run the transaction with a `_ReplyReader` in place of aiosmtplib's protocol."""
    protocol = smtp.protocol
    transport = protocol.transport if protocol is not None else None
    if protocol is None or transport is None:
        raise aiosmtplib.SMTPServerDisconnected("Server not connected")
    reader = _ReplyReader(protocol, smtp.timeout)
    transport.set_protocol(reader)
    try:
        if pipelined:
            return await _exchange(reader, transaction)
        return await _exchange_in_lockstep(reader, transaction)
    except (
        aiosmtplib.SMTPRecipientsRefused,
        aiosmtplib.SMTPDataError,
        aiosmtplib.SMTPSenderRefused,
    ):
        if reader.closing is not None:
            smtp.close()
        raise
    except Exception as exc:
        # Lost, timed out, malformed: replies may be out of step with commands.
        smtp.close()
        if reader.content_written:
            raise ContentUnanswered(f"No reply to the message's content: {exc}") from exc
        raise
    except BaseException:
        smtp.close()  # cancelled
        raise
    finally:
        transport.set_protocol(protocol)


async def _exchange(
    reader: _ReplyReader, transaction: _Transaction
) -> tuple[dict[str, SMTPResponse], str]:
    """Send the commands, read a reply to each, then send the message if DATA was accepted."""
    reader.write(transaction.commands)
    mail = await reader.read()
    rcpts = [await reader.read() for _ in transaction.recipients]
    start = await reader.read()
    refused = [
        aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient)
        for recipient, reply in zip(transaction.recipients, rcpts, strict=True)
        if reply.code not in _ACCEPTED_RECIPIENT
    ]
    if start.code == SMTPStatus.start_input and (
        mail.code != SMTPStatus.completed or len(refused) == len(rcpts)
    ):
        # A relay that says 354 with no transaction open: end the data at once (RFC 2920).
        reader.write(b".\r\n")
        await reader.read()
    if mail.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, transaction.sender)
    if reader.closing is not None:
        raise aiosmtplib.SMTPDataError(reader.closing.code, reader.closing.message)
    if len(refused) == len(rcpts):
        raise aiosmtplib.SMTPRecipientsRefused(refused)
    if start.code != SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    return await _send_content(reader, transaction, refused)


async def _exchange_in_lockstep(
    reader: _ReplyReader, transaction: _Transaction
) -> tuple[dict[str, SMTPResponse], str]:
    """The transaction one command and one reply at a time, as `sendmail` runs it."""
    mail_line, *rcpt_lines, data_line = transaction.lines
    reader.write(mail_line)
    mail = await reader.read()
    if mail.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, transaction.sender)
    refused = []
    for recipient, line in zip(transaction.recipients, rcpt_lines, strict=True):
        if reader.closing is not None:
            break
        reader.write(line)
        reply = await reader.read()
        if reply.code not in _ACCEPTED_RECIPIENT:
            refused.append(aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient))
    if reader.closing is not None:
        raise aiosmtplib.SMTPDataError(reader.closing.code, reader.closing.message)
    if len(refused) == len(rcpt_lines):
        raise aiosmtplib.SMTPRecipientsRefused(refused)
    reader.write(data_line)
    start = await reader.read()
    if start.code != SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    return await _send_content(reader, transaction, refused)


async def _send_content(
    reader: _ReplyReader,
    transaction: _Transaction,
    refused: list[aiosmtplib.SMTPRecipientRefused],
) -> tuple[dict[str, SMTPResponse], str]:
    """Write the message once the relay said 354, and read its verdict."""
    reader.write_content(transaction.content)
    end = await reader.read()
    if end.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(end.code, end.message)
    return {r.recipient: SMTPResponse(r.code, r.message) for r in refused}, end.message


class _ReplyReader(asyncio.Protocol):
    """Collects the replies to pipelined commands while it is the transport's protocol."""

    def __init__(self, smtp_protocol: SMTPProtocol, timeout: float | None) -> None:
        self._smtp_protocol = smtp_protocol
        self._timeout = timeout
        self._buffer = bytearray()
        self._replies: deque[SMTPResponse] = deque()
        self._failure: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        # A 421 reply: the relay is closing the connection and answers nothing more.
        self.closing: SMTPResponse | None = None
        # From here on, a lost connection leaves the message's fate unknown.
        self.content_written = False

    def write(self, data: bytes) -> None:
        """Send bytes on the connection (raises `SMTPServerDisconnected` once it is lost)."""
        self._smtp_protocol.write(data)

    def write_content(self, content: bytes) -> None:
        """Send the message's content; a write that raised sent nothing."""
        self._smtp_protocol.write(content)
        self.content_written = True

    async def read(self) -> SMTPResponse:
        """The next reply, waiting at most the connection's command timeout for it."""
        if self.closing is not None:
            return self.closing
        if not self._replies and self._failure is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, self._timeout)
            except TimeoutError as exc:
                raise aiosmtplib.SMTPReadTimeoutError(
                    "Timed out waiting for server response"
                ) from exc
        if not self._replies:
            raise self._failure or aiosmtplib.SMTPServerDisconnected("Connection lost")
        reply = self._replies.popleft()
        if reply.code == SMTPStatus.domain_unavailable:
            self.closing = reply
        return reply

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            while (reply := _take_reply(self._buffer)) is not None:
                self._replies.append(reply)
        except aiosmtplib.SMTPResponseException as exc:
            self._failure = exc
        self._wake()

    def eof_received(self) -> bool:
        self._failure = aiosmtplib.SMTPServerDisconnected("Unexpected EOF received")
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not isinstance(self._failure, aiosmtplib.SMTPServerDisconnected):
            self._failure = aiosmtplib.SMTPServerDisconnected("Connection lost")
            self._failure.__cause__ = exc
        self._wake()
        self._smtp_protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self._smtp_protocol.pause_writing()

    def resume_writing(self) -> None:
        self._smtp_protocol.resume_writing()

    def _wake(self) -> None:
        if (self._replies or self._failure) and self._waiter and not self._waiter.done():
            self._waiter.set_result(None)


def _take_reply(buffer: bytearray) -> SMTPResponse | None:
    """Remove the first complete reply from `buffer` and return it (None while it is not all
    there), parsed as aiosmtplib parses one: the text of its lines joined by newlines."""
    texts: list[bytes] = []
    start = 0
    while (end := buffer.find(b"\n", start)) != -1:
        line = bytes(buffer[start : end + 1])
        start = end + 1
        code = _reply_code(line)
        texts.append(line[4:].strip(b" \t\r\n"))
        if line[3:4] != b"-":
            del buffer[:start]
            return SMTPResponse(code, b"\n".join(texts).decode("utf-8", "surrogateescape"))
    if len(buffer) > _MAX_PENDING_REPLY:
        raise aiosmtplib.SMTPResponseException(SMTPStatus.invalid_response, "Response too long")
    return None


def _reply_code(line: bytes) -> int:
    try:
        return int(line[:3])
    except ValueError:
        text = line.decode("utf-8", errors="ignore")
        raise aiosmtplib.SMTPResponseException(
            SMTPStatus.invalid_response, f"Malformed SMTP response line: {text}"
        ) from None
