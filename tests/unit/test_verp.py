"""VERP addresses: one per email and recipient, signed, found again in any case; and the
settings that turn them on."""

from __future__ import annotations

import pytest

from postbox.bounces.verp import VerpSigner
from postbox.config import load_settings
from postbox.errors import ConfigError

KEY = "7a" * 32
SIGNER = VerpSigner(KEY, "bounces.example.com")
EMAIL = "em_" + "ab" * 32


def test_an_address_names_one_email_and_recipient_and_fits_a_local_part() -> None:
    address = SIGNER.address(EMAIL, "ann@example.org")
    local, _, domain = address.partition("@")

    assert domain == "bounces.example.com"
    assert len(local) <= 64
    assert address == SIGNER.address(EMAIL, "ann@example.org")  # a re-run: the same
    assert address != SIGNER.address(EMAIL, "bob@example.org")
    assert address != VerpSigner("11" * 32, "bounces.example.com").address(EMAIL, "ann@example.org")


def test_a_token_is_found_in_any_case_and_verified_only_for_its_own_pair() -> None:
    address = SIGNER.address(EMAIL, "ann@example.org")
    token = SIGNER.token_in(f"<{address.upper()}>")

    assert token is not None
    assert SIGNER.verify(token, EMAIL, "ann@example.org")
    assert not SIGNER.verify(token, EMAIL, "bob@example.org")
    assert SIGNER.token_in(address.replace("bounces.example.com", "other.example")) is None
    assert SIGNER.token_in("bounces+short@bounces.example.com") is None
    assert SIGNER.token_in("postmaster@bounces.example.com") is None


def test_bounce_domain_needs_the_encryption_key() -> None:
    with pytest.raises(ConfigError, match="BOUNCE_DOMAIN needs ENCRYPTION_KEY"):
        load_settings({"BOUNCE_DOMAIN": "bounces.example.com"})
    with pytest.raises(ConfigError, match="BOUNCE_DOMAIN"):
        load_settings({"BOUNCE_DOMAIN": "not a domain", "ENCRYPTION_KEY": KEY})
    settings = load_settings({"BOUNCE_DOMAIN": "Bounces.Example.COM", "ENCRYPTION_KEY": KEY})
    assert settings.bounces.domain == "bounces.example.com"


def test_suppression_expiry_is_read_per_reason() -> None:
    settings = load_settings({"SUPPRESSION_TTL_DAYS_HARD_BOUNCE": "30"})

    assert settings.suppressions.ttl_seconds("hard_bounce") == 30 * 86400
    assert settings.suppressions.ttl_seconds("manual") is None
    with pytest.raises(ConfigError, match="SUPPRESSION_TTL_DAYS_COMPLAINT"):
        load_settings({"SUPPRESSION_TTL_DAYS_COMPLAINT": "soon"})
