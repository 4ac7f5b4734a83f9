"""`postbox suppressions ...` as a real process against the test's Redis: add, list, remove,
CSV import (100,000 addresses in under 10 s) and an export that imports again."""

from __future__ import annotations

import json
from pathlib import Path

from postbox.queue.keys import PostboxKeys
from tests.support import run_postbox

KEYS = PostboxKeys("email")


def test_add_list_remove(service_env):
    added = run_postbox(service_env, "suppressions", "add", "Ann@Example.ORG", "--note", "x")
    again = run_postbox(service_env, "suppressions", "add", "Ann@example.org")
    scoped = run_postbox(
        service_env, "suppressions", "add", "bo@example.org", "--domain", "Shop.Example"
    )
    listed = run_postbox(service_env, "suppressions", "list", "--json")

    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "Ann@example.org: added"
    assert again.stdout.strip() == "Ann@example.org: already suppressed"
    assert scoped.returncode == 0, scoped.stderr
    entries = json.loads(listed.stdout)["data"]
    assert [(e["address"], e["scope"], e["note"]) for e in entries] == [
        ("Ann@example.org", "*", "x"),
        ("bo@example.org", "shop.example", ""),
    ]
    removed = run_postbox(service_env, "suppressions", "remove", "Ann@example.org")
    missing = run_postbox(service_env, "suppressions", "remove", "Ann@example.org")
    assert removed.returncode == 0 and missing.returncode == 1
    assert "not suppressed" in missing.stderr


def test_import_of_100000_addresses(service_env, tmp_path, redis_client):
    """Every line imported or refused with its line number; how long it takes is a
    benchmark figure (`python -m bench.suppression_intake` times this import), not a test."""
    path = tmp_path / "list.csv"
    lines = ["address,reason,note", "not an address,,", "x@example.org,bounced,"]
    lines += [
        f"user{n}@example{n % 50}.com,{'unsubscribe' if n % 3 else ''},n" for n in range(100_000)
    ]
    path.write_text("\n".join(lines) + "\n")

    done = run_postbox(service_env, "suppressions", "import", str(path))

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "100000 added, 0 already suppressed, 2 refused"
    assert "line 2: address" in done.stderr and "line 3: reason" in done.stderr
    assert redis_client.hlen(KEYS.suppressions()) == 100_000
    assert redis_client.zcard(KEYS.suppressions_index()) == 100_000


def test_an_export_imports_again(service_env, tmp_path: Path, redis_client):
    run_postbox(service_env, "suppressions", "add", "a@example.org", "--reason", "complaint")
    run_postbox(service_env, "suppressions", "add", "b@example.org", "--note", "by hand, really")
    exported = run_postbox(service_env, "suppressions", "export")
    redis_client.delete(KEYS.suppressions(), KEYS.suppressions_index())
    path = tmp_path / "export.csv"
    path.write_text(exported.stdout)

    done = run_postbox(service_env, "suppressions", "import", str(path))
    listed = json.loads(run_postbox(service_env, "suppressions", "list", "--json").stdout)

    assert len(exported.stdout.splitlines()) == 3, exported.stdout + exported.stderr
    assert exported.stdout.splitlines()[0].startswith("address,reason,note,")
    assert done.stdout.strip() == "2 added, 0 already suppressed, 0 refused"
    assert [(e["address"], e["reason"], e["note"]) for e in listed["data"]] == [
        ("a@example.org", "complaint", ""),
        ("b@example.org", "manual", "by hand, really"),
    ]
