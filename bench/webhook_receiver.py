"""A local webhook receiver for the benchmark: `python -m bench.webhook_receiver --port P`.

Answers every POST with 204 and remembers, per delivery, when it arrived, its `webhook-id`,
and the event's type and email id. `GET /stats` gives the counts, `GET /events` every record
(JSON lines: arrival time, webhook-id, type, email id). With `--secret` it verifies every
signature with `standardwebhooks`, as a customer's receiver would (and counts failures);
without, it only parses the body, so the dispatcher, not the receiver, is what is measured.
"""

from __future__ import annotations

import argparse
import json
import time

from aiohttp import web
from standardwebhooks import Webhook


class Receiver:
    """What arrived, in memory."""

    def __init__(self, secret: str | None) -> None:
        self._verifier = Webhook(secret) if secret else None
        self.records: list[tuple[float, str, str, str]] = []
        self.bad_signatures = 0
        self.ids: set[str] = set()

    async def deliver(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.time()
        if self._verifier is not None:
            try:
                self._verifier.verify(body, dict(request.headers))
            except Exception:
                self.bad_signatures += 1
                return web.Response(status=400)
        event = json.loads(body)
        webhook_id = request.headers.get("webhook-id", "")
        self.ids.add(webhook_id)
        email_id = event.get("data", {}).get("email_id", "")
        self.records.append((arrived, webhook_id, event.get("type", ""), email_id))
        return web.Response(status=204)

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "received": len(self.records),
                "distinct": len(self.ids),
                "bad_signatures": self.bad_signatures,
            }
        )

    async def events(self, _: web.Request) -> web.Response:
        lines = "\n".join(json.dumps(record) for record in self.records)
        return web.Response(text=lines, content_type="application/x-ndjson")


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_receiver")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret")
    args = parser.parse_args()
    receiver = Receiver(args.secret)
    app = web.Application()
    app.router.add_get("/stats", receiver.stats)
    app.router.add_get("/events", receiver.events)
    app.router.add_post("/{tail:.*}", receiver.deliver)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
