"""Log lines: JSON with the instance and email ids; secrets never written."""

from __future__ import annotations

import json
import logging

import pytest

from postbox.config import load_settings
from postbox.logs import email_id, secret_values, setup_logging


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_instance_and_email_id_and_hide_secrets(
    restore_root_logger, capsys
) -> None:
    settings = load_settings(
        {
            "REDIS_URL": "redis://:redis-pass-123@127.0.0.1:6379/0",
            "SMTP_PASSWORD": "smtp-pass-456",
            "SECRET_KEY": "session-secret-789",
        }
    )
    setup_logging("INFO", "json", "node-7", secret_values(settings))
    log = logging.getLogger("postbox.test")
    log.info("no email here")
    token = email_id.set("em_" + "a" * 64)
    try:
        log.warning("password %s, url %s", "smtp-pass-456", settings.redis.url)
        try:
            raise RuntimeError("session-secret-789")
        except RuntimeError:
            log.exception("boom")
    finally:
        email_id.reset(token)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["instance"] for line in lines] == ["node-7"] * 3
    assert "email_id" not in lines[0]
    assert lines[1]["email_id"] == lines[1]["job_id"] == "em_" + "a" * 64
    assert lines[1]["message"] == "password ***, url redis://:***@127.0.0.1:6379/0"
    text = "\n".join(json.dumps(line) for line in lines)
    for secret in ("redis-pass-123", "smtp-pass-456", "session-secret-789"):
        assert secret not in text


def test_the_encryption_key_is_hidden_in_log_lines(restore_root_logger, capsys) -> None:
    key = "5e" * 32
    settings = load_settings({"ENCRYPTION_KEY": key})
    setup_logging("INFO", "text", "node-7", secret_values(settings))
    logging.getLogger("postbox.test").warning("key %s", key)
    assert key not in capsys.readouterr().err
