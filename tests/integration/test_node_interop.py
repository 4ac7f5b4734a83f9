"""Node tools on Postbox's queue, as the README's interop section promises: Node BullMQ
reads Postbox's counts and jobs, Bull Board's API (`@bull-board/api` + `@bull-board/express`)
lists the queue and a dead letter with its reason, and a Node BullMQ worker with the
documented backoff strategy takes a Postbox job, fails it once and completes it on the
retry. The Node packages are pinned by tests/node/package-lock.json and installed into
tests/node/.modules by scripts/setup.sh."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ApiClient
from tests.support import ROOT, email_payload, wait_until

NODE_DIR = ROOT / "tests" / "node"
MODULES = NODE_DIR / ".modules"
BAD = "bad@example.org"


def node(command: str, redis_url: str, *args: str, tmp_path: Path) -> Any:
    """Run tests/node/interop.mjs COMMAND; its one line of JSON."""
    executable = shutil.which("node")
    assert executable, "node is missing: scripts/setup.sh installs Debian's nodejs"
    assert (MODULES / "node_modules" / "bullmq").is_dir(), "run scripts/setup.sh"
    # Node resolves packages from the script's folder: run a copy beside the modules.
    script = MODULES / "interop.mjs"
    shutil.copyfile(NODE_DIR / "interop.mjs", script)
    done = subprocess.run(
        [executable, str(script), command, redis_url, "email", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.smtp_replies(rcpt={BAD: "550 5.1.1 no such user"})
def test_node_bullmq_and_bull_board_read_postbox_jobs_and_a_dead_letter(
    api: ApiClient, worker_factory: Any, redis_url: str, redis_client: Any, tmp_path: Path
) -> None:
    dead = api.post("/v1/emails", json=email_payload(to=BAD, subject="Nope")).json["id"]
    worker = worker_factory()
    wait_until(lambda: redis_client.zcard("bull:email:failed") == 1, timeout=30)
    worker.stop()
    waiting = api.post("/v1/emails", json=email_payload(subject="Queued")).json["id"]

    read = node("read", redis_url, waiting, tmp_path=tmp_path)
    assert read["counts"]["waiting"] == 1 and read["counts"]["failed"] == 1
    assert read["job"]["id"] == waiting
    assert read["job"]["opts"]["backoff"]["type"] == "postbox-jittered-exponential"
    [failed] = read["failed"]
    assert failed["id"] == dead and failed["failedReason"].startswith("rejected")
    assert "550 5.1.1" in failed["failedReason"]

    board = node("board", redis_url, tmp_path=tmp_path)
    assert board["status"] == 200 and board["ui"] == 200
    [queue] = [q for q in board["body"]["queues"] if q["name"] == "email"]
    assert queue["counts"]["failed"] == 1 and queue["counts"]["waiting"] == 1
    [listed] = queue["jobs"]
    assert listed["id"] == dead and "550 5.1.1" in listed["failedReason"]


def test_a_node_worker_with_the_documented_backoff_retries_a_postbox_job(
    api: ApiClient, tmp_path: Path, redis_url: str
) -> None:
    email_id = api.post("/v1/emails", json=email_payload()).json["id"]
    worked = node("work", redis_url, email_id, tmp_path=tmp_path)
    assert worked["state"] == "completed" and worked["result"] == {"sentBy": "node"}
    assert worked["attemptsMade"] == 2
    first, second = worked["tries"]
    delay = api.app.extensions["postbox"].settings.worker.backoff_ms
    # Retried after the strategy's delay: the first retry waits 50-100 % of backoff.delay.
    assert second["at"] - first["at"] >= delay * 0.5 - 50


def test_without_the_strategy_a_node_worker_leaves_a_failed_try_stuck(
    api: ApiClient, tmp_path: Path, redis_url: str
) -> None:
    """Why the README says a Node consumer must set it: BullMQ cannot compute the retry's
    delay, reports an error, and leaves the job active until its lock expires."""
    email_id = api.post("/v1/emails", json=email_payload()).json["id"]
    worked = node("bare", redis_url, email_id, tmp_path=tmp_path)
    assert worked["state"] == "active" and worked["attemptsMade"] == 0
    assert any("postbox-jittered-exponential" in error for error in worked["errors"])
