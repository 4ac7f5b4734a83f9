"""Rules for text that ends up in a header: a subject, a header value, a display name, a file name.

Such text must stay one line: it may not hold a character that a mail parser (or Python's
email package) could take for the end of a line, nor a NUL. A file name also may not hold
the bidirectional controls that make it display in another order than it is stored:
"invoice\u202efdp.exe" shows as "invoiceexe.pdf".
"""

from __future__ import annotations

import re

# C0 controls but tab, DEL, C1 controls, and the Unicode line and paragraph separators,
# escaped so that both Python's `re` and JSON Schema (ECMA 262) read the class alike.
CONTROL_CHARACTERS = "\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f\\u2028\\u2029"
# What `line_problem` lets through, as a pattern (the OpenAPI document shows it).
SINGLE_LINE_PATTERN = f"^[^{CONTROL_CHARACTERS}]*$"
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")
# Bidi embeddings, overrides and isolates.
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")

LINE_BREAK_PROBLEM = "Must not contain line breaks or control characters."
BIDI_PROBLEM = "Must not contain bidirectional override characters."
OUTER_SPACE_PROBLEM = "Must not start or end with white space."


def line_problem(value: str) -> str | None:
    """Why `value` cannot be one line of header text, or None when it can."""
    return LINE_BREAK_PROBLEM if _CONTROL.search(value) else None


def file_name_problem(value: str) -> str | None:
    """Why `value` cannot be an attachment's file name, or None when it can.

    Outer white space is refused: every parser drops it (so " a.pdf" arrives as "a.pdf"),
    and "invoice.pdf .exe"-style names rely on it.
    """
    if _BIDI_CONTROL.search(value):
        return BIDI_PROBLEM
    if value != value.strip():
        return OUTER_SPACE_PROBLEM
    return line_problem(value)
