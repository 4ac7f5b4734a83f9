"""`postbox standalone` (the image's default command): API, worker and an embedded Redis
keeping its append-only file in POSTBOX_DATA_DIR, restarted mid-queue with nothing lost.

A stop and a start here is what `docker restart` does to the container: SIGTERM to the
command (through tini), then the same command on the same /data volume.
"""

from __future__ import annotations

import datetime
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from postbox.dev.ports import free_port
from tests.conftest import SmtpServer
from tests.integration.serving import Process, get_json, post_json, start, wait_serving
from tests.support import email_payload, wait_until

BAD = "bounce@example.org"
QUEUED = 60


def _standalone(service_env: dict[str, str], data: Path, tmp_path: Path, name: str) -> Process:
    port = free_port()
    env = {
        **service_env,
        "REDIS_URL": "",  # none: the embedded one
        "POSTBOX_DATA_DIR": str(data),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "LOG_FORMAT": "json",
    }
    process = start(name, ["standalone"], env, tmp_path, port)
    wait_serving(process, timeout=60)
    return process


def _subjects(smtp_server: SmtpServer) -> Counter[str]:
    return Counter(str(message.message["Subject"]) for message in smtp_server.handler.received)


@pytest.mark.smtp_replies(rcpt={BAD: "550 5.1.1 no such user"})
def test_a_restarted_standalone_container_loses_nothing(
    service_env: dict[str, str], smtp_server: SmtpServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first = _standalone(service_env, data, tmp_path, "first")
    later = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).isoformat()
    status, scheduled = post_json(
        f"{first.base_url}/v1/emails", email_payload(subject="later", send_at=later)
    )
    assert status == 202, scheduled
    status, bounced = post_json(
        f"{first.base_url}/v1/emails", email_payload(subject="bounce", to=[BAD])
    )
    assert status == 202
    wait_until(lambda: _dead_letters(first), timeout=30)
    queued = [
        post_json(f"{first.base_url}/v1/emails", email_payload(subject=f"queued #{i}"))
        for i in range(QUEUED)
    ]
    assert {status for status, _ in queued} == {202}
    assert first.stop(signal.SIGTERM) == 0, first.log_tail()
    assert (data / "redis" / "appendonlydir").is_dir()

    second = _standalone(service_env, data, tmp_path, "second")
    try:
        wait_until(
            lambda: sum(_subjects(smtp_server)[f"queued #{i}"] for i in range(QUEUED)) >= QUEUED,
            timeout=60,
        )
        counts = _subjects(smtp_server)
        assert all(counts[f"queued #{i}"] == 1 for i in range(QUEUED)), counts
        assert get_json(f"{second.base_url}/v1/emails/{scheduled['id']}")["status"] == "scheduled"
        assert [entry["id"] for entry in _dead_letters(second)] == [bounced["id"]]
        status, again = post_json(
            f"{second.base_url}/v1/emails", email_payload(subject="queued #0")
        )
        assert status == 200 and again["duplicate"] is True
        assert counts["later"] == 0
        lines = second.log_path.read_text().splitlines()
        assert all(json.loads(line) for line in lines if line.strip())
    finally:
        assert second.stop(signal.SIGTERM) == 0, second.log_tail()


def _dead_letters(process: Process) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = get_json(f"{process.base_url}/v1/dead-letters")["data"]
    return found
