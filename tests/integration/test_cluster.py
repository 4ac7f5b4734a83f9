"""The cluster view: every API and worker process registers in Redis and shows in
`GET /v1/queue/stats` with its health; a killed one turns `gone`, then is dropped.

The processes beat every 2 s here (INSTANCE_HEARTBEAT_SECONDS) instead of 10 s, so the
thresholds scale down with it: `gone` 6 s after the last beat (30 s by default), dropped
after 12 s (60 s by default).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from postbox.dev.ports import free_port
from tests.integration.serving import Process, get_json, start, wait_serving
from tests.support import wait_until

HEARTBEAT = "2"


def _instances(api: Process) -> dict[str, dict[str, Any]]:
    """The registry's processes by instance name (one process per instance here)."""
    stats = get_json(f"{api.base_url}/v1/queue/stats")
    return {entry.get("instance", entry["id"]): entry for entry in stats["instances"]}


def test_two_workers_and_two_apis_are_listed_and_a_killed_one_goes(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**service_env, "INSTANCE_HEARTBEAT_SECONDS": HEARTBEAT, "HOST": "127.0.0.1"}
    started = time.monotonic()
    apis = []
    for name in ("api-1", "api-2"):
        port = free_port()
        api_env = {**env, "INSTANCE_ID": name, "PORT": str(port), "WEB_CONCURRENCY": "1"}
        apis.append(start(name, ["serve", "--no-worker"], api_env, tmp_path, port))
    workers = [
        start(name, ["worker", "--processes", "1"], {**env, "INSTANCE_ID": name}, tmp_path)
        for name in ("worker-1", "worker-2")
    ]
    try:
        wait_serving(apis[0])
        everyone = {"api-1", "api-2", "worker-1", "worker-2"}
        listed = wait_until(
            lambda: (
                (found := _instances(apis[0])).keys() == everyone
                and all(e["health"] == "healthy" for e in found.values())
                and found
            ),
            timeout=10 - (time.monotonic() - started),
        )
        assert listed["worker-1"]["pid"] == workers[0].process.pid
        assert {listed[name]["role"] for name in everyone} == {"api", "worker"}
        stats = get_json(f"{apis[1].base_url}/v1/queue/stats")
        assert stats["cluster"]["roles"]["worker"]["processes"] == 2
        assert stats["cluster"]["roles"]["worker"]["concurrency"] == 200
        assert stats["cluster"]["roles"]["api"]["processes"] == 2

        workers[1].stop(signal.SIGKILL)
        killed = time.monotonic()
        gone = wait_until(lambda: _instances(apis[0])["worker-2"]["health"] == "gone", timeout=30)
        assert gone
        assert any(
            a["code"] == "processes_gone"
            for a in get_json(f"{apis[0].base_url}/v1/queue/stats")["advice"]
        )
        wait_until(
            lambda: "worker-2" not in _instances(apis[0]), timeout=30 - (time.monotonic() - killed)
        )
        assert _instances(apis[0])["worker-1"]["health"] == "healthy"

        # A process that stops on purpose leaves at once: it never shows as gone.
        assert apis[1].stop() == 0
        assert "api-2" not in _instances(apis[0])
    finally:
        for process in apis + workers:
            process.stop()
