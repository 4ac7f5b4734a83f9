"""`postbox dev` as a newcomer runs it: start, send, see it in the inbox, a bounce marks the
recipient, Ctrl-C, nothing left."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from postbox.dev.ports import free_port, port_is_free
from tests.bounce_support import dsn_for, send_to
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _processes_in_session(session_id: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # field 6 of stat: the session id
            found.append(int(stat.parent.name))
    return found


def _request(url: str, key: str | None = None, body: dict | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=10) as reply:
        return json.loads(reply.read())


def test_dev_run_delivers_to_its_inbox_and_cleans_up_on_ctrl_c():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "postbox", "dev", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "ENCRYPTION_KEY": ""},
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    try:
        banner = wait_until(lambda: "Press Ctrl-C" in "".join(output) and "".join(output), 60)
        key = re.search(r"API key\s+(\S+)", banner).group(1)
        redis_port = int(re.search(r"redis://\S*127.0.0.1:(\d+)", banner).group(1))
        smtp_port = int(re.search(r"SMTP on 127.0.0.1:(\d+)", banner).group(1))
        bounce_port = int(re.search(r"Bounces\s+SMTP on 127.0.0.1:(\d+)", banner).group(1))
        base = f"http://127.0.0.1:{port}"

        sent = _request(
            f"{base}/v1/emails",
            key,
            {
                "from": "dev@example.com",
                "to": "you@example.com",
                "subject": "Smoke",
                "text": "It works.",
            },
        )
        assert sent["status"] == "queued"
        inbox = wait_until(
            lambda: (i := _request(f"{base}/dev/inbox?format=json"))["count"] == 1 and i, 30
        )
        [message] = inbox["messages"]
        assert message["subject"] == "Smoke"
        assert message["message_id"] == sent["message_id"]
        # The banner's three lines of Python, as a newcomer pastes them, send with the client.
        snippet = banner.split("clients/python):\n", 1)[1].split("\n\n", 1)[0]
        pasted = "\n".join(line.strip() for line in snippet.splitlines())
        printed = subprocess.run(
            [sys.executable, "-c", pasted], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        assert "'status': 'queued'" in printed
        wait_until(lambda: _request(f"{base}/dev/inbox?format=json")["count"] == 2, 30)
        # An ENCRYPTION_KEY of its own, and local receivers allowed (port 9: nothing listens).
        hook = {"url": "http://127.0.0.1:9/hook", "events": ["*"]}
        assert _request(f"{base}/v1/webhooks", key, hook)["secret"].startswith("whsec_")
        # The bounce listener runs too: a DSN to the first email's VERP sender marks its
        # recipient bounced (and suppressed, so this comes last).
        verp = message["envelope_from"]
        assert verp.startswith("bounces+") and verp.endswith("@bounces.localhost")
        dsn = dsn_for(verp).replace(b"nobody@example.org", b"you@example.com")
        assert send_to(bounce_port, "", verp, dsn)[0] == 250
        bounced = wait_until(
            lambda: _request(f"{base}/v1/emails/{sent['id']}", key)["delivery"]["bounced"], 30
        )
        assert bounced["you@example.com"]["bounce_type"] == "hard"
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
        reader.join(timeout=5)
        process.stdout.close()
    assert code == 0, "".join(output)
    assert _processes_in_session(process.pid) == []
    for used in (port, redis_port, smtp_port, bounce_port):
        assert port_is_free(used)
