"""The history as a serving process reads it: one engine per process, made on first use.

An API process is forked by gunicorn after the app is made, and a connection pool must not
cross a fork, so the engine is made lazily in the process that uses it (the pid is checked).
The first use also applies any missing migration, so an API that starts before any recorder
still answers (migrate is cheap when there is nothing to do).
"""

from __future__ import annotations

import os
import threading
import time

from sqlalchemy import Engine

from postbox.config.history import HistorySettings
from postbox.errors import HistoryUnavailable
from postbox.history.database import create_history_engine
from postbox.history.migrations import migrate

RETRY_SECONDS = 5.0


class HistoryAccess:
    """Hands out this process's engine for the history database."""

    def __init__(self, settings: HistorySettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._pid = 0
        self._retry_at = 0.0

    def engine(self) -> Engine:
        """This process's engine, the schema migrated (`HistoryUnavailable` if the database
        cannot be reached: a call after RETRY_SECONDS tries again, those before fail at
        once, so requests do not queue behind connection timeouts)."""
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                if time.monotonic() < self._retry_at:
                    raise HistoryUnavailable("history database: unreachable a moment ago")
                engine = create_history_engine(self._settings)
                try:
                    migrate(engine)
                except BaseException:
                    engine.dispose()
                    self._retry_at = time.monotonic() + RETRY_SECONDS
                    raise
                self._engine, self._pid = engine, os.getpid()
            return self._engine

    def close(self) -> None:
        """Close this process's connections."""
        with self._lock:
            if self._engine is not None and self._pid == os.getpid():
                self._engine.dispose()
            self._engine = None
