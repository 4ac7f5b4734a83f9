"""`postbox webhooks list|create|delete` against the real Redis, as an operator runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from postbox.queue.keys import PostboxKeys
from postbox.webhooks.secret_box import SecretBox
from tests.conftest import ROOT

KEY = "6b" * 32


def _postbox(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postbox", "webhooks", *args],
        check=False,
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_create_list_and_delete_from_the_command_line(redis_url, redis_client):
    env = {"REDIS_URL": redis_url, "ENCRYPTION_KEY": KEY, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1"}

    created = _postbox(
        env,
        "create",
        "http://127.0.0.1:9/hook",
        "--event",
        "email.sent",
        "--allowed-from",
        "Example.COM",
        "--description",
        "ops",
    )
    assert created.returncode == 0, created.stderr
    endpoint_id = re.search(r"^Webhook (wh_\S+) ", created.stdout, re.MULTILINE).group(1)
    secret = re.search(r"^\s+(whsec_\S+)$", created.stdout, re.MULTILINE).group(1)
    stored = redis_client.hgetall(PostboxKeys("email").webhook(endpoint_id))
    assert SecretBox(KEY).decrypt(stored["secret"], endpoint_id) == secret

    listed = _postbox(env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [shown] = json.loads(listed.stdout)["data"]
    assert (shown["id"], shown["events"], shown["domains"]) == (
        endpoint_id,
        ["email.sent"],
        ["example.com"],
    )
    assert secret not in listed.stdout + listed.stderr
    table = _postbox(env, "list")
    assert endpoint_id in table.stdout and "enabled" in table.stdout

    deleted = _postbox(env, "delete", endpoint_id, "wh_" + "z" * 22)
    assert deleted.returncode == 1
    assert f"deleted {endpoint_id}" in deleted.stdout
    assert "not a webhook: wh_zzzz" in deleted.stderr
    assert not redis_client.exists(PostboxKeys("email").webhook(endpoint_id))


def test_create_refuses_private_urls_and_a_missing_key(redis_url, redis_client):
    private = _postbox(
        {"REDIS_URL": redis_url, "ENCRYPTION_KEY": KEY}, "create", "https://169.254.169.254/"
    )
    assert private.returncode == 2
    assert "Resolves to 169.254.169.254" in private.stderr

    no_key = _postbox(
        {"REDIS_URL": redis_url, "ENCRYPTION_KEY": ""}, "create", "https://93.184.215.14/"
    )
    assert no_key.returncode == 1
    assert "ENCRYPTION_KEY" in no_key.stderr
    assert redis_client.keys("*") == []
