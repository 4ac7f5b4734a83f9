"""SMTP_ROUTES: recipients of a routed domain go only through the relays their rule names; an
email with recipients in several routes is one transaction per route, each part journalled,
so a worker killed between the parts' sends makes the re-run send neither accepted part
again. A relay's own rate limit (`rate_limit=` in its URL) holds it. Each relay counts what
it received."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import redis.asyncio as redis

from postbox.queue import events
from postbox.queue.events import parse_entry
from postbox.queue.keys import PostboxKeys
from tests.conftest import RecordingHandler, SmtpServer
from tests.relay_support import relay
from tests.support import wait_until

CRASH_ENV = {
    # A SIGKILLed worker never reports: short locks and send marks let the re-run come soon.
    "EMAIL_LOCK_DURATION_MS": "3000",
    "EMAIL_STALLED_INTERVAL_MS": "1000",
    "EMAIL_SEND_MARK_SECONDS": "2",
}


async def _register(redis_url: str) -> None:
    """An event consumer, so that the worker writes the events."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await events.register_consumer(client, "email", "test")
    finally:
        await client.aclose()


def _routes_env(bulk: SmtpServer, primary: SmtpServer) -> dict[str, str]:
    return {
        "SMTP_HOST": "",
        "SMTP_PORT": "",
        "SMTP_RELAYS": (
            f"primary=smtp://127.0.0.1:{primary.port},bulk=smtp://127.0.0.1:{bulk.port}"
        ),
        "SMTP_ROUTES": "gmail.com|googlemail.com=bulk,*=primary",
    }


def _post(api: Any, to: list[str], subject: str) -> str:
    email = {"from": "s@example.com", "to": to, "subject": subject, "text": "x"}
    response = api.post("/v1/emails", json=email)
    assert response.status_code == 202, response.json
    email_id: str = response.json["id"]
    return email_id


def _got(server: SmtpServer) -> list[tuple[str, list[str]]]:
    return [(str(r.message["Subject"]), r.rcpt_tos) for r in list(server.received)]


def _sent(api: Any, email_id: str, timeout: float = 30) -> dict[str, Any]:
    status: dict[str, Any] = wait_until(
        lambda: (s := api.get(f"/v1/emails/{email_id}").json)["status"] == "sent" and s,
        timeout=timeout,
    )
    return status


def test_routed_domain_goes_only_through_its_relay_and_a_mixed_email_is_split(
    api, worker_factory, redis_url, redis_client
):
    asyncio.run(_register(redis_url))
    with relay(RecordingHandler()) as bulk, relay(RecordingHandler()) as primary:
        worker_factory(**_routes_env(bulk, primary))
        only_gmail = _post(api, ["a@gmail.com", "b@googlemail.com"], "gmail")
        mixed = _post(api, ["c@gmail.com", "d@example.org", "e@example.net"], "mixed")

        _sent(api, only_gmail)
        status = _sent(api, mixed)
        time.sleep(0.3)
        assert sorted(_got(bulk)) == [
            ("gmail", ["a@gmail.com", "b@googlemail.com"]),
            ("mixed", ["c@gmail.com"]),
        ]
        assert _got(primary) == [("mixed", ["d@example.org", "e@example.net"])]
        part, last = status["history"]
        assert (part["outcome"], part["relay"], part["recipients"]) == (
            "part_sent",
            "bulk",
            ["c@gmail.com"],
        )
        assert (last["outcome"], last["relay"]) == ("sent", "primary")
        assert sorted(status["delivery"]["accepted"]) == [
            "c@gmail.com",
            "d@example.org",
            "e@example.net",
        ]
        assert status["delivery"]["relays"] == {
            "c@gmail.com": "bulk",
            "d@example.org": "primary",
            "e@example.net": "primary",
        }
        gmail = api.get(f"/v1/emails/{only_gmail}").json["delivery"]
        assert (gmail["relay"], gmail["relays"]) == (
            "bulk",
            {"a@gmail.com": "bulk", "b@googlemail.com": "bulk"},
        )
        # `email.sent` names the relay of each recipient.
        stream = [parse_entry(i, f) for i, f in redis_client.xrange(PostboxKeys("email").events())]
        [sent] = [
            e.payload()["data"] for e in stream if (e.type, e.email_id) == ("email.sent", mixed)
        ]
        assert sent["relay"] == "primary"
        assert {r["address"]: r["relay"] for r in sent["recipients"]} == {
            "c@gmail.com": "bulk",
            "d@example.org": "primary",
            "e@example.net": "primary",
        }


def test_worker_killed_between_the_parts_re_sends_neither_accepted_part(
    api, worker_factory, redis_url, redis_client
):
    asyncio.run(_register(redis_url))
    stalling = RecordingHandler()
    with relay(RecordingHandler()) as bulk, relay(stalling) as primary:
        env = {**_routes_env(bulk, primary), **CRASH_ENV}
        stalling.stalled = True  # the second part hangs: the worker is killed during it
        victim = worker_factory(**env)
        email_id = _post(api, ["a@gmail.com", "b@example.org"], "crash")
        wait_until(lambda: _got(bulk), timeout=30)
        time.sleep(0.5)  # the second part's MAIL is waiting at the primary
        victim.signal(signal.SIGKILL)
        victim.wait(timeout=10)
        stalling.stalled = False
        # The first part is journalled with its relay, and shown while the email waits.
        journal = redis_client.hgetall(PostboxKeys("email").journal(email_id))
        assert journal["v:a@gmail.com"] == "bulk"
        waiting = api.get(f"/v1/emails/{email_id}").json["delivery"]
        assert (waiting["relay"], waiting["relays"]) == ("bulk", {"a@gmail.com": "bulk"})

        worker_factory(**env)
        status = _sent(api, email_id, timeout=40)
        time.sleep(0.3)
        assert _got(bulk) == [("crash", ["a@gmail.com"])]  # once: the journal had it
        assert _got(primary) == [("crash", ["b@example.org"])]
        assert sorted(status["delivery"]["accepted"]) == ["a@gmail.com", "b@example.org"]
        # The re-run knows the first part's relay from the journal alone.
        relays = {"a@gmail.com": "bulk", "b@example.org": "primary"}
        assert status["delivery"]["relays"] == relays
        stream = [parse_entry(i, f) for i, f in redis_client.xrange(PostboxKeys("email").events())]
        [sent] = [
            e.payload()["data"] for e in stream if (e.type, e.email_id) == ("email.sent", email_id)
        ]
        assert {r["address"]: r["relay"] for r in sent["recipients"]} == relays


def test_relay_rate_limit_holds_that_relay_to_it(api, worker_factory):
    with relay(RecordingHandler()) as limited:
        worker_factory(
            SMTP_HOST="",
            SMTP_PORT="",
            SMTP_RELAYS=f"limited=smtp://127.0.0.1:{limited.port}?rate_limit=5/second",
        )
        started = time.time()
        for i in range(15):
            _post(api, [f"r{i}@example.org"], f"limited-{i}")
        wait_until(lambda: len(limited.received) == 15, timeout=40)
        elapsed = time.time() - started

        # As for EMAIL_RATE_LIMIT (test_rate_limits.py): windows a little short of the
        # second at MAIL, for the scheduling noise between admission and MAIL.
        starts = sorted(r.started_at for r in limited.received)
        busiest = max(sum(1 for t in starts if first <= t < first + 0.9) for first in starts)
        assert busiest <= 5, busiest
        assert elapsed >= 2  # 15 sends at 5/second
