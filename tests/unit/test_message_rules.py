"""Rules the API applies to headers and attachments, beyond what the property test draws."""

from __future__ import annotations

import base64
from email.headerregistry import HeaderRegistry

import pytest

from postbox.api.schemas import RESERVED_HEADERS, RESERVED_PREFIXES
from postbox.message.attachments import attachment_problem, content_type_problem, decoded_size

BLOCKED = frozenset({"exe", "js", "application/x-msdownload"})


def test_every_header_the_email_package_parses_as_structured_is_reserved():
    # A custom header with one of these names would be parsed as a date or an address list
    # by readers (and by Python), so its value would not come back as sent.
    for name in HeaderRegistry().registry:
        assert name in RESERVED_HEADERS or name.startswith(RESERVED_PREFIXES), name


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("setup.exe", None),
        ("setup.EXE", "application/pdf"),
        ("setup.exe. ", None),
        ("setup.exe...", None),
        ("notes.txt", "application/x-msdownload"),
        ("run.js", "text/plain"),
    ],
)
def test_blocked_types_match_extension_declared_and_implied_type(filename, content_type):
    problem, _ = attachment_problem(filename, content_type, BLOCKED)

    assert problem is not None


@pytest.mark.parametrize("filename", ["report.pdf", "exe", ".exe", "archive.exe.zip"])
def test_other_attachments_pass_and_get_a_type(filename):
    problem, content_type = attachment_problem(filename, None, BLOCKED)

    assert problem is None
    assert "/" in content_type


@pytest.mark.parametrize(
    "content_type",
    ["multipart/mixed", "Multipart/Alternative", "message/rfc822", "text", "application/pdf\n"],
)
def test_container_and_malformed_types_are_refused(content_type):
    assert content_type_problem(content_type)


@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", b"abcd" * 100])
def test_decoded_size_without_decoding(data):
    assert decoded_size(base64.b64encode(data).decode()) == len(data)
