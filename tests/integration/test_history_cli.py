"""`postbox emails search|show|cancel` as real processes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from postbox.config.history import HistorySettings
from postbox.history.database import create_history_engine
from postbox.history.migrations import migrate
from tests.integration.test_history_store import _lifecycle, _write
from tests.support import email_payload, run_postbox


def test_search_and_show_read_the_history(tmp_path, service_env) -> None:
    """(SQLite only: the commands share every line with the API, tested on both.)"""
    database_url = f"sqlite:///{tmp_path / 'history.db'}"
    engine = create_history_engine(HistorySettings(database_url=database_url))
    migrate(engine)
    _write(engine, [item for n in range(12) for item in _lifecycle(n)])
    engine.dispose()
    env = {**service_env, "DATABASE_URL": database_url}

    found = run_postbox(env, "emails", "search", "--to", "user3@example.org", "--json")
    assert found.returncode == 0, found.stderr
    page = json.loads(found.stdout)
    assert [e["id"] for e in page["data"]] == ["e00010", "e00003"]
    assert page["next_cursor"] is None

    shown = run_postbox(env, "emails", "show", "e00004")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["status"] == "sent"
    assert [e["type"] for e in record["events"]] == ["email.queued", "email.sent", "email.bounced"]


def test_cancel_from_the_command_line(api, service_env) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    posted = api.post("/v1/emails", json=email_payload(send_at=later)).json
    done = run_postbox(service_env, "emails", "cancel", posted["id"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{posted['id']} canceled"
    assert api.get(f"/v1/emails/{posted['id']}").json["status"] == "canceled"
    assert run_postbox(service_env, "emails", "cancel", "em_" + "0" * 64).returncode == 1
