"""What an attachment may be: its MIME type, and the types an operator has blocked.

A `multipart/*` or `message/*` type is refused: such a part must hold MIME structure, not
opaque base64 bytes, so declaring it would make the message invalid (and would let a caller
smuggle a whole message into a part). Blocked types (`EMAIL_BLOCKED_ATTACHMENT_TYPES`) match
the file name's extension, the declared type, and the type the extension implies, so
neither a harmless-looking type nor trailing dots or spaces (`evil.exe. `) get one through.
"""

from __future__ import annotations

import mimetypes
import re

CONTENT_TYPE_PATTERN = r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}$"
_CONTENT_TYPE = re.compile(CONTENT_TYPE_PATTERN)
_CONTAINER_TYPES = ("multipart/", "message/")
DEFAULT_TYPE = "application/octet-stream"


def content_type_problem(content_type: str) -> str | None:
    """Why `content_type` cannot be declared for an attachment, or None."""
    if not _CONTENT_TYPE.fullmatch(content_type):
        return "Not a MIME type such as application/pdf."
    if content_type.lower().startswith(_CONTAINER_TYPES):
        return "multipart/* and message/* types cannot be attachments; use another type."
    return None


def attachment_problem(
    filename: str, content_type: str | None, blocked: frozenset[str]
) -> tuple[str | None, str]:
    """(why the attachment is refused or None, its content type: declared or guessed)."""
    guessed, _ = mimetypes.guess_type(filename.rstrip(". "))
    chosen = (content_type or guessed or DEFAULT_TYPE).lower()
    if blocked:
        extension = _extension(filename)
        named = {extension, chosen, (guessed or "").lower()} & blocked
        if named:
            return f"Attachments of type {sorted(named)[0]} are not accepted.", chosen
    return None, chosen


def _extension(filename: str) -> str:
    # Windows ignores trailing dots and spaces: "evil.exe. " opens as "evil.exe".
    stem, dot, extension = filename.rstrip(". ").rpartition(".")
    return extension.lower() if dot and stem else ""


def decoded_size(content: str) -> int:
    """Bytes that valid, padded base64 `content` decodes to, without decoding it."""
    return len(content) // 4 * 3 - content[-2:].count("=")
