"""Read a request's JSON body strictly: JSON content type, UTF-8, no duplicated keys."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import request

from postbox.errors import BadRequest, UnsupportedMediaType, ValidationFailed

# The body is strict UTF-8, which cannot hold a surrogate, so a lone one in the parsed JSON
# comes from a \uD800-\uDFFF escape: only a body with such an escape needs the (costly)
# check. A false match (an escaped backslash before "ud8..") only costs the check.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


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
    payload = _parse(text)
    if _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(payload)
    if not isinstance(payload, dict):
        raise ValidationFailed("The body must be a JSON object.", {"body": ["Not an object."]})
    return payload


def _refuse_lone_surrogates(payload: Any) -> None:
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(
            "The body has an invalid character.", {"body": ["Lone surrogate in a string."]}
        ) from None


def _parse(text: str) -> Any:
    marked: list[_RepeatedKey] = []
    try:
        payload = json.loads(text, object_pairs_hook=lambda pairs: _unique(pairs, marked))
    except RecursionError:
        raise BadRequest(
            "The body is nested too deeply.", {"body": ["Too deeply nested."]}
        ) from None
    except ValueError as exc:
        raise BadRequest(
            "The body is not valid JSON.", {"body": [f"Invalid JSON: {exc}"]}
        ) from None
    if marked:
        path = _path_to_repeated(payload)
        raise BadRequest(f"The body repeats the key {_dotted(path)}.", _nested(path))
    return payload


class _RepeatedKey(dict[str, Any]):
    """A JSON object in which `key` was given twice.

    The hook cannot know where in the document its object sits (it sees the innermost
    objects first), so it marks the object and `_path_to_repeated` walks down to it
    afterwards: the error then names the whole path, such as `emails[3].subject`.
    """

    key: str


def _unique(pairs: list[tuple[str, Any]], marked: list[_RepeatedKey]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            repeated = _RepeatedKey(result)
            repeated.key = key
            marked.append(repeated)
            return repeated
        result[key] = value
    return result


def _path_to_repeated(payload: Any) -> list[str | int]:
    """The path to the first marked object's repeated key (iterative: documents are deep)."""
    stack: list[tuple[Any, list[str | int]]] = [(payload, [])]
    while stack:
        value, path = stack.pop()
        if isinstance(value, _RepeatedKey):
            return [*path, value.key]
        if isinstance(value, dict):
            stack.extend((child, [*path, key]) for key, child in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((child, [*path, i]) for i, child in reversed(list(enumerate(value))))
    return ["body"]


def _dotted(path: list[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _nested(path: list[str | int]) -> dict[str, Any]:
    """Field errors shaped like marshmallow's: {"emails": {3: {"subject": [...]}}}."""
    errors: Any = ["Key given twice."]
    for part in reversed(path):
        errors = {part: errors}
    return dict(errors)
