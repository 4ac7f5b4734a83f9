"""`postbox standalone`: the image's default command (postbox/standalone.py)."""

from __future__ import annotations

import os
import sys

import click

from postbox.config import load_settings
from postbox.logs import secret_values, setup_logging


@click.command()
def standalone() -> None:
    """API, a worker and, without REDIS_URL, an embedded Redis keeping its data in
    POSTBOX_DATA_DIR (/data): all of Postbox in one container."""
    from postbox.standalone import run_standalone  # noqa: PLC0415

    settings = load_settings({**os.environ, "REDIS_URL": "redis://127.0.0.1:6379/0"})
    setup_logging(
        settings.log_level, settings.log_format, settings.instance_id, secret_values(settings)
    )
    sys.exit(run_standalone(os.environ))
