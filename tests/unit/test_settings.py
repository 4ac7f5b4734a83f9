"""`load_settings(environ)`: defaults, one error naming each bad variable, secrets kept out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from postbox.config import SmtpSecurity, key_digest, load_settings
from postbox.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Pa55word"
API_KEY = "api-key-that-is-long-enough-1234"


def test_empty_environment_gives_the_documented_defaults():
    settings = load_settings({})

    assert settings.redis.url == "redis://127.0.0.1:6379/0"
    assert settings.redis.queue_name == "email"
    assert settings.smtp.host == "127.0.0.1"
    assert settings.smtp.port == 25
    assert settings.smtp.password is None
    assert settings.smtp.security is SmtpSecurity.NONE
    assert settings.worker.start_with_api is True
    assert settings.worker.concurrency == 100
    assert settings.worker.rate_limit is None
    assert settings.worker.domain_rate_limits == ()
    assert settings.api.host == "0.0.0.0"
    assert settings.api.port == 8080
    assert settings.api.api_key_digests == ()
    assert settings.dedup_window_seconds == 24 * 3600
    assert settings.log_format == "text"


def test_values_from_the_environment_are_parsed():
    settings = load_settings(
        {
            "REDIS_URL": "redis://cache:6380/2",
            "QUEUE_NAME": "mail",
            "START_EMAIL_WORKER": "false",
            "EMAIL_WORKER_CONCURRENCY": "7",
            "SMTP_SECURITY": "STARTTLS",
            "SMTP_PORT": "587",
            "EMAIL_RATE_LIMIT": "100/second",
            "EMAIL_DOMAIN_RATE_LIMITS": "Gmail.com=20/second, yahoo.com=10/second",
            "API_KEYS": f"{API_KEY},sha256:{'ab' * 32}",
            "PORT": "9000",
        }
    )

    assert settings.redis.url == "redis://cache:6380/2"
    assert settings.redis.queue_name == "mail"
    assert settings.worker.start_with_api is False
    assert settings.worker.concurrency == 7
    assert settings.smtp.security is SmtpSecurity.STARTTLS
    assert settings.smtp.port == 587
    assert str(settings.worker.rate_limit) == "100/second"
    assert [(d, str(limit)) for d, limit in settings.worker.domain_rate_limits] == [
        ("gmail.com", "20/second"),
        ("yahoo.com", "10/second"),
    ]
    assert settings.api.api_key_digests == (key_digest(API_KEY), "ab" * 32)
    assert settings.api.port == 9000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EMAIL_WORKER_CONCURRENCY", "abc"),
        ("EMAIL_WORKER_CONCURRENCY", "0"),
        ("SMTP_SECURITY", "maybe"),
        ("REDIS_URL", "http://x"),
        ("REDIS_URL", "redis://:pw@host:notaport"),
        ("EMAIL_RATE_LIMIT", "lots"),
        ("EMAIL_DOMAIN_RATE_LIMITS", "gmail.com"),
        ("EMAIL_DOMAIN_RATE_LIMITS", "gmail.com=lots"),
        ("START_EMAIL_WORKER", "maybe"),
        ("PORT", "70000"),
        ("SMTP_PORT", "smtp"),
        ("API_KEYS", "short"),
        ("API_KEYS", "sha256:not-hex"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_bad_value_raises_config_error_naming_the_variable(name, value):
    with pytest.raises(ConfigError) as raised:
        load_settings({name: value})

    message = str(raised.value)
    assert message.startswith(f"{name} ")
    assert "\n" not in message


@pytest.mark.parametrize(
    "environ",
    [
        {"REDIS_URL": f"redis://:{SECRET}@host:notaport"},
        {"REDIS_URL": f"redis://user:{SECRET}@host:99999/0"},
        {"REDIS_URL": f"http://:{SECRET}@host/"},
        {"API_KEYS": f"{SECRET}-long-enough,short"},
        {"API_KEYS": f"sha256:{SECRET}"},
        {"SMTP_PASSWORD": SECRET, "SMTP_PORT": "smtp"},
    ],
    ids=[
        "redis-url-bad-port",
        "redis-url-port-out-of-range",
        "redis-url-bad-scheme",
        "api-keys-one-too-short",
        "api-keys-bad-digest",
        "smtp-password-with-bad-port",
    ],
)
def test_config_error_message_never_shows_a_secret(environ):
    with pytest.raises(ConfigError) as raised:
        load_settings(environ)

    assert SECRET not in str(raised.value)


def test_malformed_redis_url_host_raises_config_error():
    with pytest.raises(ConfigError) as raised:
        load_settings({"REDIS_URL": f"redis://:{SECRET}@[::1"})

    assert str(raised.value).startswith("REDIS_URL ")
    assert SECRET not in str(raised.value)


def test_repr_of_settings_never_shows_a_secret():
    settings = load_settings(
        {
            "SMTP_USERNAME": "relay-user",
            "SMTP_PASSWORD": SECRET,
            "API_KEYS": f"{API_KEY},sha256:{'cd' * 32}",
            "REDIS_URL": f"redis://default:{SECRET}@cache:6379/0",
        }
    )

    text = repr(settings)

    assert SECRET not in text
    assert API_KEY not in text
    assert key_digest(API_KEY) not in text
    assert "cd" * 32 not in text
    assert "relay-user" in text
    assert settings.smtp.password == SECRET
    assert SECRET not in settings.redis.safe_url


def test_worker_with_bad_config_exits_2_with_one_line_naming_the_variable():
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EMAIL_", "REDIS_", "SMTP_", "API_KEYS"))
    }
    env["EMAIL_WORKER_CONCURRENCY"] = "abc"

    completed = subprocess.run(
        [sys.executable, "-m", "postbox", "worker"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert completed.returncode == 2
    lines = completed.stderr.splitlines()
    assert len(lines) == 1, completed.stderr
    assert "EMAIL_WORKER_CONCURRENCY" in lines[0]


def test_api_rate_limit_takes_one_limit_only():
    with pytest.raises(ConfigError, match="API_RATE_LIMIT"):
        load_settings({"API_RATE_LIMIT": "10/second;100/minute"})
