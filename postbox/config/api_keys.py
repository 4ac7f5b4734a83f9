"""API keys as configured in `API_KEYS`: SHA-256 digests, each optionally tied to sender domains.

    API_KEYS=sha256:<64 hex digits>@example.com|example.org,sha256:<64 hex digits>,<raw key>

An entry is a raw key (16+ characters, taken verbatim: for development) or `sha256:` and the
hex digest of a key, optionally followed by `@` and the `|`-separated domains the key may send
from. Only digests are kept, so a leaked configuration does not leak a usable key; a key is
named in logs and rate-limit counters by `key_id`, a short prefix of its digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import idna

DIGEST_PREFIX = "sha256:"
MIN_RAW_KEY_LENGTH = 16
KEY_ID_LENGTH = 12
# The example values shipped in .env.example and k8s/base/secret.example.yaml: public, so a
# deployment that forgot to replace one would be open to anyone who read the repository.
PLACEHOLDER_KEYS = frozenset({"change-me-to-a-long-random-key"})
MAKE_A_KEY = (
    "make one with `postbox keys create` (in Docker: docker run --rm postbox:local postbox keys"
    " create) and put the API_KEYS entry it prints in .env"
)
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its digest and, if restricted, the sender domains it may use."""

    digest: str = field(repr=False)
    allowed_from: tuple[str, ...] = ()

    @property
    def key_id(self) -> str:
        """A short, non-secret name for the key (a prefix of its digest)."""
        return self.digest[:KEY_ID_LENGTH]

    def may_send_from(self, domain: str) -> bool:
        """True when the key is unrestricted or `domain` (ASCII, lower case) is one of its own."""
        return not self.allowed_from or domain in self.allowed_from


def key_digest(key: str) -> str:
    """The SHA-256 hex digest under which an API key is configured and compared."""
    return hashlib.sha256(key.encode()).hexdigest()


_PLACEHOLDER_DIGESTS = frozenset(key_digest(key) for key in PLACEHOLDER_KEYS)


def find_key(keys: tuple[ApiKey, ...], digest: str) -> ApiKey | None:
    """The key whose digest is `digest`, compared in constant time against every key (no
    early stop), so timing says nothing about which key, if any, matched."""
    found: ApiKey | None = None
    for key in keys:
        if hmac.compare_digest(digest, key.digest):
            found = key
    return found


def parse_api_keys(value: str) -> tuple[ApiKey, ...]:
    """The keys of an `API_KEYS` value; `ValueError` saying what is wrong (never the key)."""
    return tuple(_parse_entry(item) for item in (p.strip() for p in value.split(",")) if item)


def _parse_entry(item: str) -> ApiKey:
    if not item.startswith(DIGEST_PREFIX):
        if item in PLACEHOLDER_KEYS:
            raise ValueError(f"a key is the example placeholder, known to everyone: {MAKE_A_KEY}")
        if len(item) < MIN_RAW_KEY_LENGTH:
            raise ValueError(f"each key must be at least {MIN_RAW_KEY_LENGTH} characters long")
        return ApiKey(key_digest(item))
    digest, at, domains = item.removeprefix(DIGEST_PREFIX).partition("@")
    digest = digest.lower()
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise ValueError("a sha256: entry must be followed by 64 hex digits")
    if digest in _PLACEHOLDER_DIGESTS:
        raise ValueError(f"a key is the digest of the example placeholder: {MAKE_A_KEY}")
    if at and not domains.strip():
        raise ValueError("a sha256: entry with '@' needs at least one domain after it")
    return ApiKey(digest, _allowed_domains(domains) if at else ())


def sender_domains(names: Sequence[str]) -> tuple[str, ...]:
    """Domain names as keys hold them (IDNA, ASCII, lower case, each once); `ValueError`
    naming one that is not a domain."""
    return _allowed_domains("|".join(names)) if names else ()


def _allowed_domains(value: str) -> tuple[str, ...]:
    domains = []
    for name in (part.strip() for part in value.split("|")):
        try:
            domains.append(idna.encode(name, uts46=True).decode("ascii").lower())
        except (idna.IDNAError, UnicodeError):
            raise ValueError(f"{name!r} is not a domain name") from None
    return tuple(dict.fromkeys(domains))


def new_key() -> str:
    """A fresh random key: 256 bits, URL-safe, with a prefix that secret scanners can find."""
    return "pbx_" + secrets.token_urlsafe(32)


def config_entry(key: str, allowed_from: tuple[str, ...] = ()) -> str:
    """The `API_KEYS` entry for `key`: its digest, and the domains it may send from."""
    domains = _allowed_domains("|".join(allowed_from)) if allowed_from else ()
    entry = DIGEST_PREFIX + key_digest(key)
    return f"{entry}@{'|'.join(domains)}" if domains else entry
