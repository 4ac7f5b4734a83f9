"""Liveness and readiness probes (no auth: orchestrators call them)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from postbox.api.extension import state
from postbox.errors import QueueFull, QueueUnavailable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    """The process is up and serving."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Ready when Redis takes a write; 503 otherwise (unreachable, or out of memory, where
    every POST would be refused), so a load balancer routes around us."""
    try:
        state().gateway.probe_write()
    except QueueFull:
        return {"status": "unavailable", "redis": "full"}, 503
    except QueueUnavailable:
        return {"status": "unavailable", "redis": "unreachable"}, 503
    return {"status": "ok", "redis": "ok"}, 200
