"""A Postbox command stopped while it is still starting exits 0, not "killed by SIGTERM".

`docker compose up --scale worker=2` right after `--scale worker=4` stopped the new workers
while they imported: exit codes 143 and 15 for processes that had taken no job (issue 19's
compose test). postbox/startup.py.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.integration.serving import start

STARTING_SECONDS = 0.3  # well before the imports end (about 1.5 s here)


def test_a_worker_stopped_while_starting_exits_0(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    worker = start("worker", ["worker", "--processes", "1"], service_env, tmp_path)
    time.sleep(STARTING_SECONDS)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.stop() == 0, worker.log_tail()
