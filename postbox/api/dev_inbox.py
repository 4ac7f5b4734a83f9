"""`GET /dev/inbox`: what the development SMTP inbox received (only in `postbox dev`)."""

from __future__ import annotations

from flask import Blueprint, render_template_string, request
from flask.typing import ResponseReturnValue

from postbox.dev.inbox import list_messages

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Postbox dev inbox</title>
<meta http-equiv="refresh" content="5">
<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 8px;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}pre{white-space:pre-wrap;margin:0}</style></head>
<body><h1>Dev inbox</h1><p>{{ messages|length }} message(s); this page refreshes every 5 s.
JSON: <a href="?format=json">?format=json</a></p>
<table><tr><th>From</th><th>To (envelope)</th><th>Subject</th><th>Message-ID</th><th>Text</th></tr>
{% for m in messages %}<tr><td>{{ m.from }}</td><td>{{ m.envelope_to }}</td><td>{{ m.subject }}</td>
<td>{{ m.message_id }}</td><td><pre>{{ (m.text or '')[:500] }}</pre></td></tr>{% endfor %}
</table></body></html>"""


def blueprint(maildir: str) -> Blueprint:
    """The inbox pages, reading `maildir`."""
    bp = Blueprint("dev_inbox", __name__)

    @bp.get("/dev/inbox")
    def inbox() -> ResponseReturnValue:
        messages = list_messages(maildir)
        wants_json = request.args.get("format") == "json" or (
            request.accept_mimetypes.best == "application/json"
        )
        if wants_json:
            return {"count": len(messages), "messages": messages}
        return render_template_string(_PAGE, messages=messages)

    return bp
