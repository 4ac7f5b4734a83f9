"""`API_KEYS` syntax, the limits and TLS settings of this issue, and `postbox keys create`."""

from __future__ import annotations

import pytest
from limits import parse

from postbox.config import EmailLimits, key_digest, load_settings
from postbox.config.api_keys import ApiKey, config_entry, new_key, parse_api_keys
from postbox.errors import ConfigError

RAW = "a-raw-key-long-enough-1234"
DIGEST = "ab" * 32


def test_entries_are_raw_keys_or_digests_optionally_with_sender_domains():
    keys = parse_api_keys(f"{RAW}, sha256:{DIGEST.upper()}, sha256:{DIGEST}@Bücher.DE|example.com")

    assert keys == (
        ApiKey(key_digest(RAW)),
        ApiKey(DIGEST),
        ApiKey(DIGEST, ("xn--bcher-kva.de", "example.com")),
    )
    assert keys[0].key_id == key_digest(RAW)[:12]
    assert keys[1].may_send_from("anything.example")
    assert keys[2].may_send_from("example.com")
    assert not keys[2].may_send_from("sub.example.com")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("short", "at least 16 characters"),
        ("sha256:abc", "64 hex digits"),
        (f"sha256:{'zz' * 32}", "64 hex digits"),
        (f"sha256:{DIGEST}@", "at least one domain"),
        (f"sha256:{DIGEST}@a.com||b.com", "not a domain name"),
        (f"sha256:{DIGEST}@bad domain.com", "not a domain name"),
    ],
)
def test_a_bad_entry_stops_start_up_without_showing_the_value(value, problem):
    with pytest.raises(ConfigError, match=problem) as raised:
        load_settings({"API_KEYS": value})

    assert "API_KEYS" in str(raised.value)
    assert value not in str(raised.value)


def test_a_new_key_and_its_entry_go_together():
    key = new_key()
    entry = config_entry(key, ("Example.COM", "bücher.de"))

    assert key.startswith("pbx_")
    assert len(key) > 40
    assert entry == f"sha256:{key_digest(key)}@example.com|xn--bcher-kva.de"
    [parsed] = parse_api_keys(entry)
    assert parsed.digest == key_digest(key)
    assert key not in entry


def test_limit_and_tls_settings_have_documented_defaults():
    settings = load_settings({})

    assert settings.api.rate_limit is None
    assert settings.api.email_limits == EmailLimits(
        max_recipients=50,
        max_subject_chars=998,
        max_body_bytes=5 * 1024 * 1024,
        max_attachment_bytes=7 * 1024 * 1024,
        blocked_attachment_types=frozenset(),
    )
    assert settings.smtp.ca_file is None


def test_limit_settings_are_read(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until the worker connects")

    settings = load_settings(
        {
            "API_RATE_LIMIT": "100 per minute",
            "EMAIL_MAX_RECIPIENTS": "5",
            "EMAIL_BLOCKED_ATTACHMENT_TYPES": ".EXE, js ,application/x-msdownload,",
            "SMTP_CA_FILE": str(ca),
        }
    )

    assert settings.api.rate_limit == parse("100 per minute")
    assert settings.api.email_limits.max_recipients == 5
    assert settings.api.email_limits.blocked_attachment_types == {
        "exe",
        "js",
        "application/x-msdownload",
    }
    assert settings.smtp.ca_file == str(ca)
    assert load_settings({"API_RATE_LIMIT": "off"}).api.rate_limit is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("API_RATE_LIMIT", "lots"),
        ("EMAIL_MAX_BODY_BYTES", "0"),
        ("EMAIL_MAX_ATTACHMENT_BYTES", "big"),
        ("EMAIL_BLOCKED_ATTACHMENT_TYPES", "exe,*.bat"),
        ("SMTP_CA_FILE", "/nonexistent/ca.pem"),
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})
