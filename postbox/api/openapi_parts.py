"""Pieces every part of the OpenAPI document uses: the error answers and their envelope.

openapi.py builds the document; it and openapi_webhooks.py describe operations with these.
"""

from __future__ import annotations

from typing import Any

ERRORS = {
    "400": "The body or a header cannot be read (bad JSON, repeated key, bad header).",
    "401": "No valid API key.",
    "403": "The key may not send from this address.",
    "404": "No such email, dead letter or webhook (or not one this key may see).",
    "409": "The idempotency key was used with another payload.",
    "413": "The body is larger than MAX_REQUEST_BYTES.",
    "415": "The body is not JSON.",
    "422": "A field or query parameter is invalid.",
    "429": "The key is over its rate limit; see Retry-After.",
    "503": "Redis is unreachable (`queue_unavailable`), out of memory (`queue_full`), or the "
    "process is saturated (`overloaded`); retry after Retry-After.",
}


def json_content(schema: dict[str, Any] | str) -> dict[str, Any]:
    """A JSON body: an inline schema, or the name of a component schema."""
    ref = {"$ref": f"#/components/schemas/{schema}"} if isinstance(schema, str) else schema
    return {"application/json": {"schema": ref}}


def answers(
    status: str,
    description: str,
    schema: dict[str, Any] | str | None,
    errors: tuple[str, ...],
    notes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The responses of one operation: its success, then each error it can answer (with
    `notes` in place of the usual description of some)."""
    found: dict[str, Any] = {status: {"description": description}}
    if schema:
        found[status]["content"] = json_content(schema)
    for code in errors:
        text = (notes or {}).get(code, ERRORS[code])
        found[code] = {"description": text, "content": json_content("Error")}
    return found
