"""Read a request's JSON body strictly: JSON content type, UTF-8, no duplicated keys."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from postbox.api.errors import BadRequest, UnsupportedMediaType, ValidationFailed


def read_json_object() -> dict[str, Any]:
    """The body as a JSON object, or an `ApiError` naming what is wrong with it."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            "Send the body as JSON.",
            {"Content-Type": ["Must be application/json."]},
        )
    raw = request.get_data(cache=True)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The body is not valid UTF-8.", {"body": ["Not valid UTF-8."]}) from None
    try:
        payload = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as exc:
        raise BadRequest("The body repeats a key.", {str(exc): ["Key given twice."]}) from None
    except RecursionError:
        raise BadRequest(
            "The body is nested too deeply.", {"body": ["Too deeply nested."]}
        ) from None
    except ValueError as exc:
        raise BadRequest(
            "The body is not valid JSON.", {"body": [f"Invalid JSON: {exc}"]}
        ) from None
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(
            "The body has an invalid character.", {"body": ["Lone surrogate in a string."]}
        ) from None
    if not isinstance(payload, dict):
        raise ValidationFailed("The body must be a JSON object.", {"body": ["Not an object."]})
    return payload


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result
