"""Parse and normalise one email address as posted: `user@example.com` or `Name <user@...>`.

Normalising means: no surrounding space, the domain in lower case and in its ASCII (IDNA)
form, the local part kept as given. Anything that could smuggle a header or a second
recipient (line breaks, NUL, commas or angle brackets in the address) is refused.
"""

from __future__ import annotations

import re

import idna

from postbox.queue.contract import Mailbox

MAX_ADDRESS_LENGTH = 254
MAX_DISPLAY_NAME_LENGTH = 200

_NAMED = re.compile(r'^\s*(?:"(?P<quoted>[^"]*)"|(?P<plain>[^"<>]*?))\s*<(?P<addr>[^<>]*)>\s*$')
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_FORBIDDEN = ("\r", "\n", "\x00")


class AddressError(ValueError):
    """Raised when a posted address cannot be used."""


def parse_mailbox(value: str) -> Mailbox:
    """Return the normalised mailbox for `value` or raise `AddressError` saying why."""
    if any(char in value for char in _FORBIDDEN):
        raise AddressError("Must not contain line breaks or NUL characters.")
    match = _NAMED.match(value)
    name = ""
    address = value.strip()
    if match:
        name = (match.group("quoted") or match.group("plain") or "").strip()
        address = match.group("addr").strip()
    mailbox: Mailbox = {"email": normalise_address(address)}
    if name:
        mailbox["name"] = _display_name(name)
    return mailbox


def normalise_address(address: str) -> str:
    """`local@domain` with the domain lower-cased and IDNA-encoded."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise AddressError("Not a valid email address.")
    if not local.isascii():
        raise AddressError("Non-ASCII local parts are not supported.")
    if not _LOCAL.match(local) or len(local) > 64:
        raise AddressError("Not a valid email address.")
    ascii_domain = _ascii_domain(domain)
    full = f"{local}@{ascii_domain}"
    if len(full) > MAX_ADDRESS_LENGTH:
        raise AddressError(f"Longer than {MAX_ADDRESS_LENGTH} characters.")
    return full


def _ascii_domain(domain: str) -> str:
    try:
        # IDNA 2008 with UTS 46 mapping, as browsers and mail providers use (Python's own
        # "idna" codec is IDNA 2003, which turns ß into ss: another domain).
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        raise AddressError("The domain is not a valid host name.") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise AddressError("The domain is not a valid host name.")
    if labels[-1].isdigit():
        raise AddressError("The domain is not a valid host name.")
    return ascii_domain


def _display_name(name: str) -> str:
    if len(name) > MAX_DISPLAY_NAME_LENGTH:
        raise AddressError(f"The display name is longer than {MAX_DISPLAY_NAME_LENGTH} characters.")
    if not name.isprintable():
        raise AddressError("The display name has control characters.")
    return name
