"""Stand-in for Mailpit in scripts/compose-test.sh: accept every email on port 1025 and
answer the part of Mailpit's API the test reads on 8025, from memory.

    GET    /api/v1/messages?start=0&limit=N   {"total": n, "messages": [{"MessageID", "Subject"}]}
    DELETE /api/v1/messages                    forget them all

Unlike Mailpit, it refuses recipients whose address starts with `bounce` (550), so the test
can make dead letters.
"""

import json
import threading
from email.parser import BytesHeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

MESSAGES: list[dict[str, str]] = []
LOCK = threading.Lock()


class Sink:
    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        # A permanent refusal on demand, for dead letters (Mailpit itself accepts all).
        if address.startswith("bounce"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        headers = BytesHeaderParser().parsebytes(envelope.original_content or b"")
        entry = {
            "MessageID": str(headers.get("Message-ID", "")).strip().strip("<>"),
            "Subject": str(headers.get("Subject", "")),
        }
        with LOCK:
            MESSAGES.append(entry)
        return "250 OK"


class Api(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        query = parse_qs(urlsplit(self.path).query)
        start = int(query.get("start", ["0"])[0])
        limit = int(query.get("limit", ["50"])[0])
        with LOCK:
            page = MESSAGES[start : start + limit]
            body = {"total": len(MESSAGES), "start": start, "messages": page}
        self._answer(200, body)

    def do_DELETE(self):  # noqa: N802
        with LOCK:
            MESSAGES.clear()
        self._answer(200, {})

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    Controller(Sink(), hostname="0.0.0.0", port=1025, data_size_limit=0).start()
    ThreadingHTTPServer(("0.0.0.0", 8025), Api).serve_forever()
