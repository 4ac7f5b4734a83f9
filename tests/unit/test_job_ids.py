"""The job id rule: the canonical JSON must stay byte for byte what it has always been.

Ids are compared across API instances and releases (a retry lands on another process, a
deploy happens inside the dedup window), so the canonical form is pinned to its original
definition, `json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`,
for any text at all, and to a fingerprint computed before orjson produced it.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from postbox.api.schemas import EmailSchema
from postbox.queue.job_ids import canonical_json, fingerprint, job_id_for
from tests.support import email_payload

# Any text a request can hold: every code point but the surrogates the API refuses.
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_box = st.fixed_dictionaries({"email": _text}, optional={"name": _text})
_requests = st.fixed_dictionaries(
    {
        "sender": _box,
        "to": st.lists(_box, max_size=3),
        "cc": st.lists(_box, max_size=2),
        "bcc": st.lists(_box, max_size=2),
        "reply_to": st.lists(_box, max_size=2),
        "subject": _text,
        "text": st.none() | _text,
        "html": st.none() | _text,
        "headers": st.dictionaries(_text, _text, max_size=4),
        "attachments": st.lists(
            st.fixed_dictionaries({"filename": _text, "content": _text, "content_type": _text}),
            max_size=2,
        ),
        "tags": st.lists(_text, max_size=3),
        "send_at": st.none() | _text,
    }
)


def _original_canonical_json(request: Any) -> bytes:
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


@settings(max_examples=500, deadline=None)
@given(_requests)
def test_canonical_json_is_the_original_definition_for_any_text(request: Any):
    assert canonical_json(request) == _original_canonical_json(request)


def test_fingerprint_of_a_known_email_is_unchanged():
    request = EmailSchema().load(
        email_payload(
            **{
                "from": "Zoë <zoe@Bücher.de>",
                "subject": 'Grüße "quoted" \\ back\tslash',
                "text": "line\r\nnext\x7f \u2028 😀",
                "headers": {"X-B": "b", "X-A": "a"},
                "tags": ["t1"],
            }
        )
    )
    # Computed with the json.dumps definition before canonical_json moved to orjson.
    known = "0c600f7526719ecc4ba0252109c0249d5728d3d97a5331d289757d6fbe97aa58"
    assert fingerprint(request) == known
    assert job_id_for(fingerprint(request), None) == f"em_{known}"
