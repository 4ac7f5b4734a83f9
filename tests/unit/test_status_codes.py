"""Which refusals say a mailbox is gone for good (RFC 3463 enhanced status codes)."""

from __future__ import annotations

import pytest

from postbox.suppressions.status_codes import enhanced_code, is_hard_bounce


@pytest.mark.parametrize(
    ("text", "hard"),
    [
        ("550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown", True),
        ("550-5.1.1 The email account that you tried to reach does not exist.", True),
        ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found", True),
        ("552 5.2.1 Mailbox disabled, not accepting messages", True),
        ("5.1.1", True),
        ("550 5.7.1 Message rejected as spam", False),
        ("554 5.7.26 Unauthenticated email is not accepted (DMARC)", False),
        ("552 5.2.2 Mailbox full", False),  # over quota: it may take mail again
        ("450 4.2.1 Mailbox busy, try later", False),
        ("421 4.1.1 odd but temporary", False),
        ("550 no such user here", False),  # no enhanced code: not sure enough
        ("250 2.0.0 Ok: queued as 12345.1.1", False),
    ],
)
def test_only_mailbox_does_not_exist_codes_are_hard_bounces(text: str, hard: bool) -> None:
    assert is_hard_bounce(text) is hard


def test_policy_refusals_count_when_configured() -> None:
    assert is_hard_bounce("550 5.7.1 blocked", policy_suppresses=True)
    assert not is_hard_bounce("450 4.7.1 greylisted", policy_suppresses=True)


def test_the_code_is_found_inside_text_not_in_other_numbers() -> None:
    assert enhanced_code("Status: 5.1.1 (bad destination mailbox)") == "5.1.1"
    assert enhanced_code("version 10.5.1.1 build") is None
    assert enhanced_code("nothing here") is None
