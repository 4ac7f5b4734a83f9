"""`postbox standalone`: the whole of Postbox in one container, for `docker run`.

    docker run -p 8080:8080 -v postbox-data:/data -e API_KEYS=... -e SMTP_HOST=... postbox

Without `REDIS_URL` it starts a private redis-server on loopback with its append-only file
(fsync every second) in `POSTBOX_DATA_DIR`, then `postbox serve` (the API and one worker)
against it. On SIGTERM (`docker stop`, `docker restart`) it stops `serve` first, which
drains its worker, and Redis last, which writes out its file: the next start reloads the
queue, scheduled emails, dead letters and the deduplication records as they were. With
`REDIS_URL` it is `postbox serve` with workers on, for a container pointed at shared Redis.

Redis' data directory is the way to a cluster: the shared Redis of docker-compose.yml or k8s
loads the same append-only file (README "From one container to a cluster").
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType

from postbox.config.standalone import load_standalone, serve_environment
from postbox.dev.redis_server import RedisServer
from postbox.supervisor import stop_processes

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
# serve's own stop: its worker's drain (WORKER_SHUTDOWN_GRACE_SECONDS) and gunicorn's.
SERVE_STOP_SECONDS = 90.0


def run_standalone(environ: Mapping[str, str]) -> int:
    """Run until SIGTERM/SIGINT or until `serve` or the embedded Redis ends; exit code."""
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    settings = load_standalone(environ)
    redis = None
    if settings.embed_redis:
        redis = RedisServer(settings.data_dir / "redis", appendonly=True)
        redis.start()
        logger.info("Embedded Redis on 127.0.0.1:%d, data in %s", redis.port, redis.data_dir)
    env = serve_environment(environ, redis.url if redis else None)
    serve = subprocess.Popen([sys.executable, "-m", "postbox", "serve"], env=env)
    try:
        while not stopping and serve.poll() is None and (redis is None or redis.running):
            time.sleep(POLL_SECONDS)
        if serve.poll() is None:
            logger.info("Stopping: the API and its worker first, then Redis")
        [code] = stop_processes([serve], timeout=SERVE_STOP_SECONDS)
    finally:
        if redis is not None:
            redis.stop()
    if stopping:  # asked to stop: a clean drain is a clean exit
        return 0 if code in (0, -signal.SIGTERM) else 1
    return code if code > 0 else 1  # serve or Redis ended on its own: let Docker restart us
