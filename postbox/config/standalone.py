"""Settings of `postbox standalone`, the image's default command: one container with the
API, a worker and, unless `REDIS_URL` names a Redis, an embedded one.

    POSTBOX_DATA_DIR   where the embedded Redis keeps its append-only file (default /data,
                       the volume of `docker run -v postbox-data:/data`)

Without a volume the queue lives and dies with the container's own filesystem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = "/data"
# `docker stop` waits 10 s before SIGKILL: the worker's drain must end before that.
DEFAULT_SHUTDOWN_GRACE_SECONDS = "8"


@dataclass(frozen=True)
class StandaloneSettings:
    """Whether to embed Redis, and where its data goes."""

    embed_redis: bool
    data_dir: Path


def load_standalone(environ: Mapping[str, str]) -> StandaloneSettings:
    """Read the standalone settings; an empty variable counts as unset."""
    data_dir = (environ.get("POSTBOX_DATA_DIR") or "").strip() or DEFAULT_DATA_DIR
    return StandaloneSettings(
        embed_redis=not (environ.get("REDIS_URL") or "").strip(),
        data_dir=Path(data_dir),
    )


def serve_environment(environ: Mapping[str, str], redis_url: str | None) -> dict[str, str]:
    """The environment `postbox serve` gets in a standalone container: the embedded Redis
    (if any), workers on, and defaults that suit one container (one worker process, whatever
    the host's cores; a drain that fits `docker stop`'s 10 s), each overridable."""
    env = {
        "EMAIL_WORKER_PROCESSES": "1",
        "WORKER_SHUTDOWN_GRACE_SECONDS": DEFAULT_SHUTDOWN_GRACE_SECONDS,
        **{name: value for name, value in environ.items() if value.strip()},
        "START_EMAIL_WORKER": "true",
    }
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return env
