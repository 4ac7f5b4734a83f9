"""gunicorn hooks for the API; `postbox serve` passes `--config python:postbox.api.gunicorn_conf`.

- Logging: set up here, in the arbiter before it forks, so every process logs in
  LOG_FORMAT with the instance id; gunicorn's own error log goes through the same handler
  from its first line (`PostboxGunicornLogger`: with the `on_starting` hook alone, "Starting
  gunicorn" came out in gunicorn's text format, the one non-JSON line of a container).
- Metrics: each process writes to PROMETHEUS_MULTIPROC_DIR; when one exits, its files are
  marked dead (live gauges stop counting it; counters keep their totals).
- Cluster registry: each process registers once it has loaded the app, and leaves on exit.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from gunicorn.glogging import Logger
from prometheus_client.multiprocess import mark_process_dead

from postbox.api.instance import start_heartbeat
from postbox.api.webhooks import sync_owners_at_start
from postbox.config import load_settings
from postbox.logs import secret_values, setup_logging
from postbox.metrics import MULTIPROC_ENV

BATCH_PATH = "/v1/emails/batch"

_settings = load_settings()
setup_logging(
    _settings.log_level, _settings.log_format, _settings.instance_id, secret_values(_settings)
)


class PostboxGunicornLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, its error log sent through the root handler set up above."""

    def setup(self, cfg: Any) -> None:
        """Let gunicorn configure its loggers, then hand the error log to ours."""
        super().setup(cfg)
        error_log = logging.getLogger("gunicorn.error")
        error_log.handlers[:] = []
        error_log.propagate = True


logger_class = PostboxGunicornLogger


def pre_request(worker: Any, req: Any) -> None:
    """Close the connection after each batch, so the next one goes to a free process.

    A keep-alive connection stays with the process that accepted it. A client posting
    batches over a few connections could have them all on one process, which then works
    alone while the others idle: measured with 4 connections and 2 processes, all 4 landed
    on one process in about a third of the runs, at two thirds of the throughput. A new
    connection is taken by whichever process gets to `accept` first, most often an idle
    one; a batch is 100s of emails, so one connection more per batch costs nothing.
    Single sends keep their connection: for them a new one would be a real cost.
    """
    worker.log.debug("%s %s", req.method, req.path)
    if req.method == "POST" and req.path == BATCH_PATH:
        req.force_close()


def post_worker_init(worker: Any) -> None:
    """The process has loaded the app: register it in the cluster registry, and bring the
    webhook endpoints in line with this process's API_KEYS."""
    start_heartbeat(worker.wsgi, worker.cfg.threads)
    sync_owners_at_start(worker.wsgi)


def worker_exit(server: Any, worker: Any) -> None:
    """Leave the registry and release the process's connections."""
    worker.wsgi.extensions["postbox"].gateway.close()


def child_exit(server: Any, worker: Any) -> None:
    """In the arbiter: a process ended, so its live gauges no longer count."""
    if os.environ.get(MULTIPROC_ENV):
        mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
