"""`/dev/inbox`: what the development SMTP inbox received (only in `postbox dev`).

The list (searchable by sender, recipient or subject, and cleared with a button; also as
JSON with `?format=json`), and a page per message: its HTML in a sandboxed frame that may
load nothing (no scripts, no remote images or styles: the frame's own
Content-Security-Policy refuses them, so opening a message tells no tracker it was read),
its text, headers, raw source and attachments to download.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from postbox.dev.inbox import clear, list_messages, read_raw
from postbox.dev.inbox_message import InboxMessage, parse_message

_PAGE_POLICY = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; frame-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
)
# The message's own HTML: inline styles and embedded (data:) images, nothing from anywhere.
_HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"
)


def blueprint(maildir: str) -> Blueprint:
    """The inbox pages, reading `maildir`."""
    bp = Blueprint("dev_inbox", __name__, template_folder="templates")
    bp.after_request(_policy)
    _add_list(bp, maildir)
    _add_message(bp, maildir)
    return bp


def _policy(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _PAGE_POLICY)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _add_list(bp: Blueprint, maildir: str) -> None:
    """The list, its search and its clear button."""

    @bp.get("/dev/inbox")
    def inbox() -> ResponseReturnValue:
        query = request.args.get("q", "").strip()
        messages = list_messages(maildir, query)
        wants_json = request.args.get("format") == "json" or (
            request.accept_mimetypes.best == "application/json"
        )
        if wants_json:
            return {"count": len(messages), "messages": messages}
        return render_template("dev_inbox.html", messages=messages, query=query)

    @bp.post("/dev/inbox/clear")
    def clear_inbox() -> ResponseReturnValue:
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            abort(403)  # another site's page may not empty it
        clear(maildir)
        return redirect(url_for("dev_inbox.inbox"), 303)


def _add_message(bp: Blueprint, maildir: str) -> None:
    """A message's page, and its HTML, raw source and attachments."""

    @bp.get("/dev/inbox/<key>")
    def message(key: str) -> ResponseReturnValue:
        return render_template("dev_message.html", key=key, message=_parsed(key))

    @bp.get("/dev/inbox/<key>/html")
    def html(key: str) -> ResponseReturnValue:
        body = _parsed(key).html
        if body is None:
            abort(404)
        return Response(
            body, mimetype="text/html", headers={"Content-Security-Policy": _HTML_POLICY}
        )

    @bp.get("/dev/inbox/<key>/raw")
    def raw(key: str) -> ResponseReturnValue:
        return Response(_raw(key), mimetype="text/plain")

    @bp.get("/dev/inbox/<key>/attachments/<int:index>")
    def attachment(key: str, index: int) -> ResponseReturnValue:
        found = [a for a in _parsed(key).attachments if a.index == index]
        if not found:
            abort(404)
        [item] = found
        disposition = {"Content-Disposition": f'attachment; filename="{_safe(item.filename)}"'}
        return Response(item.content, mimetype="application/octet-stream", headers=disposition)

    def _raw(key: str) -> bytes:
        found = read_raw(maildir, key)
        if found is None:
            abort(404)
        return found

    def _parsed(key: str) -> InboxMessage:
        return parse_message(_raw(key))


def _safe(filename: str) -> str:
    """A file name fit for a quoted header value."""
    return "".join(c if c.isalnum() or c in "._- " else "_" for c in filename)[:100] or "file"
