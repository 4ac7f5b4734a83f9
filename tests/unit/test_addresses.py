"""`parse_mailbox`: the shapes of address Postbox takes, their normal form, and what it refuses."""

from __future__ import annotations

import pytest

from postbox.errors import AddressError
from postbox.message.addresses import parse_mailbox


@pytest.mark.parametrize(
    ("posted", "expected"),
    [
        ("user@example.com", {"email": "user@example.com"}),
        ("  user@example.com\t", {"email": "user@example.com"}),
        ("User@EXAMPLE.Com", {"email": "User@example.com"}),
        ("first.last+tag@mail.example.co.uk", {"email": "first.last+tag@mail.example.co.uk"}),
        ("o'brien@example.ie", {"email": "o'brien@example.ie"}),
        ("user@123.example.com", {"email": "user@123.example.com"}),
        ("<user@example.com>", {"email": "user@example.com"}),
        ("Jane Doe <jane@Example.COM>", {"email": "jane@example.com", "name": "Jane Doe"}),
        ("Jane<jane@example.com>", {"email": "jane@example.com", "name": "Jane"}),
        ('"Doe, Jane" <jane@example.com>', {"email": "jane@example.com", "name": "Doe, Jane"}),
        ('  "  Jane  " < jane@example.com >  ', {"email": "jane@example.com", "name": "Jane"}),
        ('"" <jane@example.com>', {"email": "jane@example.com"}),
        ("user@bücher.de", {"email": "user@xn--bcher-kva.de"}),
        (
            "Jörg Müller <joerg@BÜCHER.de>",
            {"email": "joerg@xn--bcher-kva.de", "name": "Jörg Müller"},
        ),
        ("user@XN--BCHER-KVA.de", {"email": "user@xn--bcher-kva.de"}),
        ("user@пример.рф", {"email": "user@xn--e1afmkfd.xn--p1ai"}),
        ("a" * 64 + "@example.com", {"email": "a" * 64 + "@example.com"}),
        # Internationalised local parts (RFC 6531) are kept, in Unicode NFC.
        ("jörg@example.com", {"email": "jörg@example.com"}),
        ("jo\u0308rg@Bücher.de", {"email": "jörg@xn--bcher-kva.de"}),
        ("用户@例子.广告", {"email": "用户@xn--fsqu00a.xn--4rr70v"}),
        ("é" * 32 + "@example.com", {"email": "é" * 32 + "@example.com"}),
    ],
)
def test_accepted_address_is_normalised(posted, expected):
    assert parse_mailbox(posted) == expected


def test_domain_with_sharp_s_keeps_its_own_idna_2008_form():
    # IDNA 2003 (Python's "idna" codec) would map ß to ss: fass.de, another domain.
    assert parse_mailbox("user@faß.de") == {"email": "user@xn--fa-hia.de"}


@pytest.mark.parametrize(
    "posted",
    [
        "",
        "   ",
        "plainaddress",
        "@example.com",
        "user@",
        "user@@example.com",
        "user@localhost",
        "user@example",
        "user@example.com.",
        "user@.example.com",
        "user@example..com",
        "user@-example.com",
        "user@example-.com",
        "user@exa_mple.com",
        "user@ex ample.com",
        "user@example.123",
        "user@1.2.3.4",
        "user@[127.0.0.1]",
        "user@☃.net",
        "user@" + "a" * 64 + ".com",
        "u@" + ("a" * 63 + ".") * 4 + "com",
        "a" * 65 + "@example.com",
        "a..b@example.com",
        ".user@example.com",
        "user.@example.com",
        "us er@example.com",
        '"quoted local"@example.com',
        "é" * 33 + "@example.com",
        "a\u200bb@example.com",
        "a\u202eb@example.com",
        "a\u00a0b@example.com",
        "a\u3000b@example.com",
        "user@example.com>",
        "<user@example.com",
        "Jane <>",
        "Jane <jane@example.com> trailing",
        "a@example.com, b@example.com",
        "Jane <a@example.com>, Joe <b@example.com>",
        "Eve <evil@attacker.com> <jane@example.com>",
        '"Ev"il" <jane@example.com>',
        "a@example.com\r\nBcc: x@y.com",
        "a@example.com\nBcc: x@y.com",
        "Eve\r\nBcc: x@y.com <a@example.com>",
        "a@example.com\x00",
        "Eve\x07 <a@example.com>",
        "Eve\u2028Bcc <a@example.com>",
        "é" * 201 + " <a@example.com>",
    ],
)
def test_unusable_address_is_rejected(posted):
    with pytest.raises(AddressError):
        parse_mailbox(posted)


@pytest.mark.parametrize(
    ("posted", "reason"),
    [
        ("a@example.com\r\nBcc: x@y.com", "line breaks"),
        ("zero\u200bwidth@example.com", "invisible, space or control"),
        ("é" * 33 + "@example.com", "longer than 64 octets"),
        ("user@localhost", "not a valid host name"),
        ("é" * 201 + " <a@example.com>", "longer than 200"),
    ],
)
def test_rejection_says_why(posted, reason):
    with pytest.raises(AddressError, match=reason):
        parse_mailbox(posted)
